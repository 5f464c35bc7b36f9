// cli.h: what the subcommands share: argument parsing helpers, failing, threads, evaluation.
#pragma once
#include <stdint.h>
#include <stdio.h>

#include "config.h"
#include "core/calibration.h"
#include "core/model.h"
#include "dist/dist.h"
#include "io/checkpoint.h"
#include "io/dataset.h"

#define MAX_SETS 128

// Ends the job with e's message and exit code (2 for bad input, 1 for runtime failures).
_Noreturn void cli_fail(const Dist *d, const Err *e);
// Ends the job with a usage error (exit 2): "<cmd>: <msg>; see regdist <cmd> --help".
_Noreturn void cli_usage_fail(const Dist *d, const char *cmd, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

// Checks an --out file before any work (outpath.h): rank 0 looks, every rank learns the
// outcome, and a path the user must fix ends the job with exit 2. Collective.
void cli_check_out_file(const Dist *d, const char *opt, const char *path, int overwrite);

// Parses a non-negative integer option value strictly; fails the job otherwise.
int64_t cli_parse_int(const Dist *d, const char *cmd, const char *opt, const char *v, int64_t lo,
                      int64_t hi);

// Sets OpenBLAS threads per rank: requested, or cores / ranks on this host when 0.
// Returns the number chosen.
int cli_set_threads(const Dist *d, int requested);

// Builds cfg's model for data of this shape and class count; checks model.input.
int cli_build_model(Model *m, const Config *cfg, const Dataset *data, int max_batch, Err *e);
// The same for samples of `shape` and `num_classes` outputs; `what` says whose samples in
// messages ("data.h5: /test/x samples").
int cli_build_model_for(Model *m, const Config *cfg, Shape shape, int num_classes,
                        const char *what, int max_batch, Err *e);

typedef struct {
    int64_t count;
    double loss;      // mean cross-entropy (no label smoothing)
    double accuracy;  // fraction correct
    double ece;       // expected calibration error, 15 bins
    double confidence;  // mean largest class probability
} EvalResult;

// The parts of cli_evaluate, for data a rank reads in pieces: cli_eval_rows evaluates split
// rows [lo, hi) (which data must hold) into s, with no communication; cli_eval_finish sums
// every rank's s (collective) into the result over n samples.
typedef struct {
    double loss, hits;
    EceBins bins;
} EvalSums;
void cli_eval_rows(Model *m, const Dataset *data, int64_t lo, int64_t hi, float *x, int32_t *y,
                   int64_t *ids, float *probs, EvalSums *s);
void cli_eval_finish(const Dist *d, EvalSums *s, int64_t n, EvalResult *r);

// Evaluates the model (eval mode) over all of data in batches of the planned size, each rank
// a contiguous share, the sums combined over ranks (collective). probs is scratch of
// (max_batch, num_classes) floats; x, y, ids hold max_batch samples.
void cli_evaluate(const Dist *d, Model *m, const Dataset *data, float *x, int32_t *y,
                  int64_t *ids, float *probs, EvalResult *r);

double now_seconds(void);

// OpenBLAS's kernel family ("Cooperlake", "Haswell", ...). OpenBLAS picks it from the CPU
// when it loads, unless the environment forces one with OPENBLAS_CORETYPE.
const char *blas_kernel_name(void);

// For eval and predict: reads a checkpoint's config and preprocessing record, loads the split
// of data (its labels too, or only when present if need_y is 0), builds the model (planned
// for batches of max(256, train.batch)) and loads the weights. The data is normalized as the
// checkpoint's run was, whatever the data file says: a difference gets one line on stderr
// (rank 0), and a checkpoint that predates the record one notice that the file's values are
// used. Samples of another shape or another class count than the checkpoint's are bad input.
// Fails the job with a one-line message on any problem.
void cli_load_checkpoint_model(const Dist *d, const char *ckpt, const char *data,
                               const char *split, int need_y, Config *cfg, Model *m, Dataset *ds,
                               CkptMeta *meta);
// For predict on files that are not a dataset: the model's input shape and classes come from
// the checkpoint's preprocessing record; a checkpoint without one is bad input.
void cli_load_checkpoint_alone(const Dist *d, const char *ckpt, Config *cfg, Model *m,
                               CkptMeta *meta);

int cmd_train(Dist *d, int argc, char **argv);
int cmd_eval(Dist *d, int argc, char **argv);
int cmd_data(Dist *d, int argc, char **argv);
int cmd_bench(Dist *d, int argc, char **argv);
int cmd_predict(Dist *d, int argc, char **argv);
int cmd_plot(Dist *d, int argc, char **argv);
int cmd_study(Dist *d, int argc, char **argv);
