// signals.h: preemption. SIGTERM and SIGUSR1 (SLURM's warnings before it ends a job; mpirun
// forwards SIGUSR1 to every rank) and SIGINT (Ctrl-C) ask training to stop at the next step
// boundary, where the ranks agree, write one checkpoint and exit 0. A second signal ends the
// process at once.
#pragma once

// Installs the handlers, for the rest of the process: a signal after training has saved
// its last checkpoint only marks the stop as asked (a study then stops after its point).
void signals_install(void);
// The signal that asked to stop (SIGTERM, SIGUSR1 or SIGINT), or 0.
int signals_pending(void);
// "SIGTERM", "SIGUSR1", "SIGINT" for messages.
const char *signal_name(int sig);
