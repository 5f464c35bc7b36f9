// h5version.h: which HDF5 regdist runs with, for `regdist --version`. A header of its own
// because launch/ does not see hdf5.h (h5util.h needs it); h5util.c implements it.
#pragma once
#include <stddef.h>

// "HDF5 1.10.8" (the library loaded at run time) into buf (len bytes).
void h5u_library_version(char *buf, size_t len);
