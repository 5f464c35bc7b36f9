// preprocess_h5.h: reading and writing the /preprocessing group (layout in preprocess.h).
// For io/ only: it speaks HDF5 ids.
#pragma once
#include <hdf5.h>

#include "preprocess.h"

// Writes group /preprocessing under loc (a file or group). 0 or -1.
int prep_h5_write(hid_t loc, const Preprocess *p);
// Reads loc's /preprocessing group into p (zeroed first). H5U_OK, H5U_MISSING when loc has
// no such group, or ERR_INPUT with e naming file and the attribute that is wrong.
int prep_h5_read(hid_t loc, const char *file, Preprocess *p, Err *e);
