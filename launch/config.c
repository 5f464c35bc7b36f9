// config.c: reading and validating the experiment config with libconfig (config.h).
// The schema table below is the single description of every key outside model.layers; the
// keys of an entry of model.layers are its layer kind's (LayerKind.keys, core/layer.h), besides
// name and type. Reading, --set and --help all work from these tables, and reading walks the
// file and rejects any key that no table knows, so a typo is an error, never a silently
// ignored setting. A setting --set made carries its argument (libconfig's hook), so an error
// in it names the argument, not the file.
#include "config.h"

#include <errno.h>
#include <libconfig.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

// K_SHAPE: an array of 1 to SHAPE_MAX_DIMS sizes in [lo, hi] (model.input).
typedef enum { K_INT, K_I64, K_U32, K_FLOAT, K_BOOL, K_ENUM, K_SHAPE } KeyType;

typedef struct {
    const char *path;     // "train.epochs"
    KeyType type;
    size_t offset;        // into Config
    double lo, hi;        // valid range (numbers)
    const char *dflt;     // default, as it would be written after --set key=
    const char *const *choices;  // K_ENUM: the names, NULL-terminated; index = stored int
    const char *help;
} Key;

static const char *const off_on[] = {"off", "on", NULL};
static const char *const stop_skip[] = {"stop", "skip", NULL};
// stored as AUGMENT_PAD_* / AUGMENT_ERASE_* (core/augment.h): the index is the value
static const char *const crop_modes[] = {"zero", "reflect", NULL};
static const char *const erase_values[] = {"zero", "noise", NULL};

#define OFF(f) offsetof(Config, f)
static const Key schema[] = {
    {"data.train_size", K_I64, OFF(train_size), 0, 1e12, "0", NULL,
     "use the first N training samples (0 = all)"},
    {"data.val_size", K_I64, OFF(val_size), 0, 1e12, "0", NULL,
     "use the first N validation samples (0 = all)"},
    {"data.memory_mb", K_INT, OFF(memory_mb), 0, 1 << 30, "4096", NULL,
     "MiB of training data a rank may hold; a larger shard is streamed from the file, a few "
     "steps ahead, by a prefetch thread (0 = always stream)"},
    {"model.input", K_SHAPE, OFF(input), 1, 1 << 24, "data", NULL,
     "per-sample input shape [C, H, W] or [D] (--set model.input=1,64,64); data = the data "
     "file's sample shape, which a pinned shape must match"},
    {"model.batchnorm", K_ENUM, OFF(batchnorm), 0, 0, "on", off_on,
     "off leaves every batchnorm layer out (the layer before it gets a bias instead)"},
    {"model.drop_path", K_FLOAT, OFF(drop_path), 0, 0.999, "0", NULL,
     "DropPath rate of the last residual block, linear from 0 over the blocks (0 = off)"},
    {"train.epochs", K_INT, OFF(epochs), 1, 1e6, "10", NULL, "passes over the training data"},
    {"train.batch", K_INT, OFF(batch), 1, 1e6, "128", NULL, "global batch size"},
    {"train.max_steps", K_I64, OFF(max_steps), -1, 1e15, "-1", NULL,
     "stop after this many optimizer steps in total (-1 = no limit, 0 = save the initial state)"},
    {"train.seed", K_U32, OFF(seed), 0, 4294967295.0, "0", NULL,
     "seed of initialization, shuffling and every dropout mask"},
    {"train.shuffle", K_BOOL, OFF(shuffle), 0, 1, "true", NULL,
     "reshuffle the training set every epoch (false = file order)"},
    {"train.patience", K_INT, OFF(patience), 0, 1e6, "0", NULL,
     "early stopping: epochs without a better validation accuracy (0 = off)"},
    {"train.keep", K_INT, OFF(keep), 0, 1 << 20, "0", NULL,
     "also keep the checkpoints of the last K epochs as DIR/epoch-NNNN.h5 (0 = only last.h5 "
     "and best.h5)"},
    {"train.nonfinite", K_ENUM, OFF(nonfinite_skip), 0, 0, "stop", stop_skip,
     "a NaN or Inf gradient: stop (naming the step and the last checkpoint) or skip the step "
     "and count it"},
    {"train.threads", K_INT, OFF(threads), 0, 1024, "0", NULL,
     "OpenBLAS threads per rank (0 = cores / ranks on the host)"},
    {"train.accum", K_INT, OFF(accum), 1, 1024, "1", NULL,
     "micro-batches per optimizer step: the global batch is split in this many, gradients "
     "accumulate and are all-reduced once"},
    {"bn.group", K_INT, OFF(bn_group), 0, 1 << 20, "0", NULL,
     "ranks whose samples form one BatchNorm statistic: 0 = all (SyncBN), 1 = local BN, k = "
     "groups of k consecutive ranks"},
    {"dist.bucket_kb", K_INT, OFF(bucket_kb), 1, 1 << 20, "1024", NULL,
     "gradient all-reduce bucket size in KiB"},
    {"dist.first_bucket_kb", K_INT, OFF(first_bucket_kb), 1, 1 << 20, "256", NULL,
     "size of the first bucket (the last layers' gradients) in KiB"},
    {"dist.check_every", K_INT, OFF(check_every), 0, 1 << 30, "0", NULL,
     "verify that every rank holds identical parameters every N steps (0 = never)"},
    {"dist.timeout", K_FLOAT, OFF(timeout), 0, 1e6, "300", NULL,
     "seconds a rank may wait in one collective before the job is ended with a report (0 = "
     "never)"},
    {"optim.name", K_ENUM, OFF(optim.kind), 0, 0, "adamw", optim_kind_names,
     "sgd, adam (coupled L2 weight decay) or adamw (decoupled)"},
    {"optim.lr", K_FLOAT, OFF(optim.lr), 0, 1e3, "0.001", NULL, "base learning rate"},
    {"optim.weight_decay", K_FLOAT, OFF(optim.weight_decay), 0, 1e3, "0", NULL,
     "weight decay on weight matrices and kernels only"},
    {"optim.momentum", K_FLOAT, OFF(optim.momentum), 0, 1, "0", NULL, "SGD momentum"},
    {"optim.dampening", K_FLOAT, OFF(optim.dampening), 0, 1, "0", NULL, "SGD dampening"},
    {"optim.nesterov", K_BOOL, OFF(optim.nesterov), 0, 1, "false", NULL, "SGD Nesterov momentum"},
    {"optim.beta1", K_FLOAT, OFF(optim.beta1), 0, 0.999999, "0.9", NULL, "Adam beta1"},
    {"optim.beta2", K_FLOAT, OFF(optim.beta2), 0, 0.999999999, "0.999", NULL, "Adam beta2"},
    {"optim.eps", K_FLOAT, OFF(optim.eps), 1e-30, 1, "1e-08", NULL, "Adam epsilon"},
    {"sched.name", K_ENUM, OFF(sched.kind), 0, 0, "constant", sched_kind_names,
     "learning-rate schedule per optimizer step"},
    {"sched.warmup_steps", K_I64, OFF(sched.warmup_steps), 0, 1e15, "0", NULL,
     "linear warmup steps"},
    {"sched.step_size", K_I64, OFF(sched.step_size), 1, 1e15, "1000", NULL,
     "step: steps between decays"},
    {"sched.gamma", K_FLOAT, OFF(sched.gamma), 0, 1, "0.1", NULL, "step: decay factor"},
    {"sched.min_lr", K_FLOAT, OFF(sched.min_lr), 0, 1e3, "0", NULL,
     "cosine: the floor the rate decays to"},
    {"reg.dropout", K_ENUM, OFF(dropout_on), 0, 0, "on", off_on,
     "off disables every dropout-family layer"},
    {"reg.label_smoothing", K_FLOAT, OFF(label_smoothing), 0, 0.999, "0", NULL,
     "label smoothing epsilon"},
    {"reg.l1", K_FLOAT, OFF(l1), 0, 1e3, "0", NULL, "L1 penalty coefficient (coupled)"},
    {"reg.l2", K_FLOAT, OFF(l2), 0, 1e3, "0", NULL,
     "L2 penalty coefficient (coupled: gradient += l2 * w)"},
    {"reg.clip_norm", K_FLOAT, OFF(clip_norm), 0, 1e9, "0", NULL,
     "clip the global gradient norm to this (0 = off)"},
    {"eval.precise_bn", K_INT, OFF(precise_bn), 0, 1 << 20, "0", NULL,
     "after training, also evaluate with PreciseBN: BatchNorm statistics averaged over this "
     "many training batches with frozen weights (0 = off)"},
    {"bn.ghost", K_INT, OFF(bn_ghost), 0, 1e6, "0", NULL,
     "BatchNorm ghost batch size: normalize over sub-batches of this many samples (0 = whole "
     "batch)"},
    // augmentation (docs/regularization.md): every default is off, so a config without the
    // section trains exactly as before; ranges the image size decides are augment_check's
    {"augment.enable", K_ENUM, OFF(augment_on), 0, 0, "on", off_on,
     "off turns every augmentation off whatever the other augment keys say (augment = \"off\"; "
     "--set augment=off)"},
    {"augment.crop_pad", K_INT, OFF(augment.crop_pad), 0, 1 << 16, "0", NULL,
     "random crop: pad every side by this many pixels, take an HxW window (0 = off)"},
    {"augment.crop_mode", K_ENUM, OFF(augment.crop_mode), 0, 0, "zero", crop_modes,
     "the crop's padding: zeros or a reflection without the edge pixel (needs crop_pad < H, W)"},
    {"augment.hflip", K_FLOAT, OFF(augment.hflip), 0, 1, "0", NULL,
     "probability of a left-right flip"},
    {"augment.vflip", K_FLOAT, OFF(augment.vflip), 0, 1, "0", NULL,
     "probability of a top-bottom flip"},
    {"augment.erase", K_FLOAT, OFF(augment.erase), 0, 1, "0", NULL,
     "probability of random erasing (a box, as torchvision's RandomErasing)"},
    {"augment.erase_area_min", K_FLOAT, OFF(augment.erase_area[0]), 1e-6, 1, "0.02", NULL,
     "erasing: the smallest box area, as a fraction of the image"},
    {"augment.erase_area_max", K_FLOAT, OFF(augment.erase_area[1]), 1e-6, 1, "0.33", NULL,
     "erasing: the largest box area, as a fraction of the image"},
    {"augment.erase_aspect_min", K_FLOAT, OFF(augment.erase_aspect[0]), 1e-3, 1e3, "0.3", NULL,
     "erasing: the smallest aspect ratio height/width (log-uniform)"},
    {"augment.erase_aspect_max", K_FLOAT, OFF(augment.erase_aspect[1]), 1e-3, 1e3, "3.3", NULL,
     "erasing: the largest aspect ratio height/width"},
    {"augment.erase_value", K_ENUM, OFF(augment.erase_value), 0, 0, "zero", erase_values,
     "erasing: the box becomes zeros or N(0,1) noise per pixel"},
    {"augment.mixup", K_FLOAT, OFF(augment.mixup), 0, 1e3, "0", NULL,
     "mixup: alpha of lambda ~ Beta(alpha, alpha) (0 = off; else in [0.001, 1000])"},
    {"augment.cutmix", K_FLOAT, OFF(augment.cutmix), 0, 1e3, "0", NULL,
     "cutmix: alpha of lambda ~ Beta(alpha, alpha) (0 = off; else in [0.001, 1000])"},
    {"augment.mix_prob", K_FLOAT, OFF(augment.mix_prob), 0, 1, "1", NULL,
     "probability that a global batch is mixed (mixup or cutmix)"},
    {"augment.mix_switch", K_FLOAT, OFF(augment.mix_switch), 0, 1, "0.5", NULL,
     "with mixup and cutmix both on: probability that a batch takes cutmix"},
};
#define NKEYS (int)(sizeof schema / sizeof schema[0])

// The keys every entry of model.layers has, besides its kind's (LayerKind.keys): read by
// read_layer itself, never changed by --set (they would rename or retype the layer).
static const struct {
    const char *key, *help;
} common_layer_keys[] = {
    {"name", "the layer's name and its parameters' prefix (NAME.weight): unique, no '.', '/' or "
             "spaces"},
    {"type", "the layer kind"},
};
#define NCOMMON (int)(sizeof common_layer_keys / sizeof common_layer_keys[0])

static int is_common_layer_key(const char *key) {
    for (int i = 0; i < NCOMMON; i++)
        if (strcmp(common_layer_keys[i].key, key) == 0) return 1;
    return 0;
}

// The first kind's description of key (every kind that takes a key takes it in the same
// form), or NULL when no kind has it.
static const LayerKeyDesc *any_layer_key(const char *key) {
    for (int i = 0; i < layer_kind_count(); i++) {
        const LayerKeyDesc *k = layer_kind_key(layer_kind_at(i), key);
        if (k) return k;
    }
    return NULL;
}

static const Key *schema_find(const char *path) {
    for (int i = 0; i < NKEYS; i++)
        if (strcmp(schema[i].path, path) == 0) return &schema[i];
    return NULL;
}

// Edit distance, to suggest the key a typo meant.
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 63 || lb > 63) return 99;
    int d[64][64];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int best = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            d[i][j] = best;
        }
    return d[la][lb];
}

static const char *suggest(const char *path) {
    const char *best = NULL;
    int bd = 4;
    for (int i = 0; i < NKEYS; i++) {
        int d = edit_distance(path, schema[i].path);
        if (d < bd) bd = d, best = schema[i].path;
    }
    return best;
}

// "file:line" of a setting, or "--set key=value" for one an override made (set_done hangs
// the argument on it as its hook).
static const char *where(const Config *c, const config_setting_t *s) {
    static char buf[1100];
    int line = s ? config_setting_source_line(s) : 0;
    const char *arg = s ? (const char *)config_setting_get_hook(s) : NULL;
    if (arg)
        snprintf(buf, sizeof buf, "--set %s", arg);
    else if (line > 0)
        snprintf(buf, sizeof buf, "%s:%d", c->source, line);
    else
        snprintf(buf, sizeof buf, "%s", c->source);
    return buf;
}

static int enum_index(const char *const *choices, const char *v) {
    for (int i = 0; choices[i]; i++)
        if (strcmp(choices[i], v) == 0) return i;
    return -1;
}

// "sgd|adam|adamw", for messages and --help.
static const char *choices_text(const char *const *choices) {
    static char buf[256];
    buf[0] = 0;
    for (int i = 0; choices[i]; i++)
        snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s%s", i ? "|" : "", choices[i]);
    return buf;
}

// A K_SHAPE key: absent = no dimensions (the data's shape).
static int read_shape(Config *c, const Key *k, const config_setting_t *s, Err *e) {
    Shape *dst = (Shape *)((char *)c + k->offset);
    dst->ndim = 0;
    if (!s) return ERR_OK;
    int n = config_setting_length(s);
    if (!config_setting_is_array(s) || n < 1 || n > SHAPE_MAX_DIMS)
        return err_set(e, ERR_INPUT, "%s: %s must be [D] or [C, H, W]", where(c, s), k->path);
    for (int i = 0; i < n; i++) {
        const config_setting_t *d = config_setting_get_elem(s, (unsigned)i);
        int t = config_setting_type(d);
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return err_set(e, ERR_INPUT, "%s: %s sizes must be integers", where(c, s), k->path);
        long long v = config_setting_get_int64(d);
        if (v < k->lo || v > k->hi)
            return err_set(e, ERR_INPUT, "%s: %s sizes must be in [%g, %g], got %lld",
                           where(c, s), k->path, k->lo, k->hi, v);
        dst->d[i] = (int)v;
    }
    dst->ndim = n;
    return ERR_OK;
}

// Stores setting s (or the key's default when s is NULL) into c.
static int read_key(Config *c, const Key *k, const config_setting_t *s, Err *e) {
    if (k->type == K_SHAPE) return read_shape(c, k, s, e);
    void *dst = (char *)c + k->offset;
    int t = s ? config_setting_type(s) : CONFIG_TYPE_NONE;
    double num = 0;
    const char *str = NULL;
    if (!s) {
        // defaults are written as text in the table: parse them the way --set would
        if (k->type == K_ENUM) str = k->dflt;
        else if (k->type == K_BOOL) num = strcmp(k->dflt, "true") == 0;
        else num = strtod(k->dflt, NULL);
    } else if (k->type == K_ENUM) {
        if (t != CONFIG_TYPE_STRING)
            return err_set(e, ERR_INPUT, "%s: %s must be one of %s", where(c, s), k->path,
                           choices_text(k->choices));
        str = config_setting_get_string(s);
    } else if (k->type == K_BOOL) {
        if (t != CONFIG_TYPE_BOOL)
            return err_set(e, ERR_INPUT, "%s: %s must be true or false", where(c, s), k->path);
        num = config_setting_get_bool(s);
    } else if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64) {
        num = (double)config_setting_get_int64(s);
    } else if (t == CONFIG_TYPE_FLOAT && k->type == K_FLOAT) {
        num = config_setting_get_float(s);
    } else {
        return err_set(e, ERR_INPUT, "%s: %s must be %s", where(c, s), k->path,
                       k->type == K_FLOAT ? "a number" : "an integer");
    }
    if (k->type == K_ENUM) {
        int idx = enum_index(k->choices, str);
        if (idx < 0)
            return err_set(e, ERR_INPUT, "%s: %s must be one of %s, got '%s'", where(c, s),
                           k->path, choices_text(k->choices), str);
        *(int *)dst = idx;
        return ERR_OK;
    }
    if (!(num >= k->lo && num <= k->hi))  // also rejects NaN
        return err_set(e, ERR_INPUT, "%s: %s must be in [%g, %g], got %g", where(c, s), k->path,
                       k->lo, k->hi, num);
    switch (k->type) {
    case K_INT: *(int *)dst = (int)num; break;
    case K_I64: *(int64_t *)dst = (int64_t)num; break;
    case K_U32: *(uint32_t *)dst = (uint32_t)num; break;
    case K_FLOAT: *(float *)dst = (float)num; break;
    case K_BOOL: *(int *)dst = (int)num; break;
    case K_ENUM:
    case K_SHAPE: break;
    }
    return ERR_OK;
}

static const char *layer_key_form(LayerKeyType t) {
    switch (t) {
    case LAYER_KEY_INT: return "an integer";
    case LAYER_KEY_OUT: return "an integer or \"classes\"";
    case LAYER_KEY_BOOL: return "true or false";
    case LAYER_KEY_FLOAT: return "a number";
    case LAYER_KEY_LAYERS: return "a list";
    }
    return "?";
}

// One numeric key of layer l (a group of type type): stores it, or its default, into sp.
static int read_layer_key(Config *c, const config_setting_t *l, const char *lname,
                          const char *type, const LayerKeyDesc *k, LayerSpec *sp, Err *e) {
    const config_setting_t *s = config_setting_get_member(l, k->key);
    double v = k->dflt;
    if (!s) {
        if (!k->dflt_text)
            return err_set(e, ERR_INPUT, "%s: layer %s (%s) needs %s = <%s>", where(c, l), lname,
                           type, k->key, layer_key_form(k->type));
    } else {
        int t = config_setting_type(s);
        if (k->type == LAYER_KEY_OUT && t == CONFIG_TYPE_STRING &&
            strcmp(config_setting_get_string(s), "classes") == 0) {
            *(int *)((char *)sp + k->offset) = LAYER_OUT_CLASSES;
            return ERR_OK;
        }
        if (t == CONFIG_TYPE_INT || t == CONFIG_TYPE_INT64)
            v = (double)config_setting_get_int64(s);
        else if (t == CONFIG_TYPE_FLOAT && k->type == LAYER_KEY_FLOAT)
            v = config_setting_get_float(s);
        else if (t == CONFIG_TYPE_BOOL && k->type == LAYER_KEY_BOOL)
            v = config_setting_get_bool(s);
        else
            return err_set(e, ERR_INPUT, "%s: layer %s: %s must be %s", where(c, s), lname,
                           k->key, layer_key_form(k->type));
        if (!(v >= k->lo && v <= k->hi))
            return err_set(e, ERR_INPUT, "%s: layer %s: %s must be in [%g, %g], got %g",
                           where(c, s), lname, k->key, k->lo, k->hi, v);
    }
    if (k->type == LAYER_KEY_FLOAT)
        *(float *)((char *)sp + k->offset) = (float)v;
    else
        *(int *)((char *)sp + k->offset) = (int)v;
    return ERR_OK;
}

static int read_layer_list(Config *c, const config_setting_t *list, const char *what,
                           LayerSpec **out, int *n_out, Err *e);

// One entry of a layer list: its type, name and the keys its type takes.
static int read_layer(Config *c, const config_setting_t *l, const char *what, int i,
                      LayerSpec *sp, Err *e) {
    if (!config_setting_is_group(l))
        return err_set(e, ERR_INPUT, "%s: %s[%d] must be a group { ... }", where(c, l), what, i);
    const char *type = NULL, *name = NULL;
    if (!config_setting_lookup_string(l, "type", &type))
        return err_set(e, ERR_INPUT, "%s: %s[%d] needs type = \"...\"", where(c, l), what, i);
    if (!config_setting_lookup_string(l, "name", &name))
        return err_set(e, ERR_INPUT, "%s: %s[%d] needs name = \"...\"", where(c, l), what, i);
    if (strlen(type) >= sizeof sp->type || strlen(name) >= sizeof sp->name || !name[0] ||
        strpbrk(name, "./ "))
        return err_set(e, ERR_INPUT,
                       "%s: %s[%d]: bad name '%s' (1-%zu characters, no '.', '/' or spaces)",
                       where(c, l), what, i, name, sizeof sp->name - 1);
    const LayerKind *kind = layer_kind_find(type);
    if (!kind)
        return err_set(e, ERR_INPUT, "%s: layer %s: unknown type '%s' (known: %s)", where(c, l),
                       name, type, layer_kind_names());
    snprintf(sp->type, sizeof sp->type, "%s", type);
    snprintf(sp->name, sizeof sp->name, "%s", name);
    for (int j = 0; j < config_setting_length(l); j++) {
        const config_setting_t *m = config_setting_get_elem(l, (unsigned)j);
        const char *key = config_setting_name(m);
        if (!is_common_layer_key(key) && !layer_kind_key(kind, key))
            return err_set(e, ERR_INPUT, "%s: layer %s (%s) has no key '%s'", where(c, m), name,
                           type, key);
    }
    // the kind's keys in its order, so the first mistake in a layer is the one reported;
    // every field no key of the kind sets stays 0
    for (int j = 0; j < kind->nkeys; j++) {
        const LayerKeyDesc *k = &kind->keys[j];
        if (k->type != LAYER_KEY_LAYERS) {
            if (read_layer_key(c, l, name, type, k, sp, e)) return e->code;
            continue;
        }
        char sub[LAYER_NAME_MAX + 64];
        snprintf(sub, sizeof sub, "%s.%s", name, k->key);
        if (read_layer_list(c, config_setting_get_member(l, k->key), sub, &sp->children,
                            &sp->nchildren, e))
            return e->code;
    }
    return ERR_OK;
}

// A list of layers: model.layers, or a residual block's branch.
static int read_layer_list(Config *c, const config_setting_t *list, const char *what,
                           LayerSpec **out, int *n_out, Err *e) {
    if (!list)
        return err_set(e, ERR_INPUT, "%s: %s is missing: it has no layers", c->source, what);
    if (!config_setting_is_list(list))
        return err_set(e, ERR_INPUT, "%s: %s must be a list ( {...}, {...} )", where(c, list),
                       what);
    int n = config_setting_length(list);
    if (n == 0) return err_set(e, ERR_INPUT, "%s: %s is empty", where(c, list), what);
    *out = calloc((size_t)n, sizeof **out);
    if (!*out) return err_set(e, ERR_RUNTIME, "out of memory");
    *n_out = n;
    for (int i = 0; i < n; i++)
        if (read_layer(c, config_setting_get_elem(list, (unsigned)i), what, i, &(*out)[i], e))
            return e->code;
    return ERR_OK;
}

static void free_layer_list(LayerSpec *specs, int n) {
    for (int i = 0; specs && i < n; i++) free_layer_list(specs[i].children, specs[i].nchildren);
    free(specs);
}

// Whether a (read, so known) layer is a batchnorm one: a kind with running statistics.
static int is_batchnorm(const LayerSpec *sp) {
    return (layer_kind_find(sp->type)->flags & LAYER_RUNNING_STATS) != 0;
}

// model.batchnorm = off: every batchnorm layer is left out, and the layer it followed gets a
// bias in its place (the BN's shift) if its kind has one (conv2d, linear), so only
// normalization goes.
static void drop_batchnorm(LayerSpec *specs, int *n) {
    int k = 0;
    for (int i = 0; i < *n; i++) {
        drop_batchnorm(specs[i].children, &specs[i].nchildren);
        if (is_batchnorm(&specs[i])) {
            if (k > 0 && layer_kind_key(layer_kind_find(specs[k - 1].type), "bias"))
                specs[k - 1].bias = 1;
            continue;
        }
        specs[k++] = specs[i];
    }
    *n = k;
}

// bn.ghost is one global key: every batchnorm layer, residual branches included, takes it.
static void set_bn_ghost(LayerSpec *specs, int n, int ghost) {
    for (int i = 0; i < n; i++) {
        if (is_batchnorm(&specs[i])) specs[i].ghost = ghost;
        set_bn_ghost(specs[i].children, specs[i].nchildren, ghost);
    }
}

// Whether a layer is a residual block: a kind with a drop_path key.
static int is_residual(const LayerSpec *sp) {
    return layer_kind_key(layer_kind_find(sp->type), "drop_path") != NULL;
}

// model.drop_path: block i of n top-level residual blocks drops its branch with probability
// rate * i / (n - 1) (rate for a single block), the linear rule of Huang et al. 2016 and timm.
// s is the model.drop_path setting, for messages.
static int set_drop_path(Config *c, const config_setting_t *s, Err *e) {
    if (c->drop_path <= 0.0f) return ERR_OK;
    int n = 0, i = 0;
    for (int k = 0; k < c->nlayers; k++) n += is_residual(&c->layers[k]);
    if (n == 0)
        return err_set(e, ERR_INPUT, "%s: model.drop_path needs residual blocks, and the model "
                       "has none", where(c, s));
    for (int k = 0; k < c->nlayers; k++) {
        LayerSpec *sp = &c->layers[k];
        if (!is_residual(sp)) continue;
        if (sp->drop_path > 0.0f)
            return err_set(e, ERR_INPUT, "%s: layer %s sets drop_path and so does model.drop_path;"
                           " use one", where(c, s), sp->name);
        sp->drop_path = n == 1 ? c->drop_path : c->drop_path * (float)i / (float)(n - 1);
        i++;
    }
    return ERR_OK;
}

// Every setting in the tree must be known: walks groups, building "a.b" paths.
static int check_unknown(Config *c, const config_setting_t *g, const char *prefix, Err *e) {
    for (int i = 0; i < config_setting_length(g); i++) {
        const config_setting_t *s = config_setting_get_elem(g, (unsigned)i);
        char path[256];
        snprintf(path, sizeof path, "%s%s%s", prefix, *prefix ? "." : "", config_setting_name(s));
        if (strcmp(path, "model.layers") == 0) continue;
        if (config_setting_is_group(s)) {
            if (check_unknown(c, s, path, e)) return e->code;
            continue;
        }
        if (!schema_find(path)) {
            const char *hint = suggest(path);
            return err_set(e, ERR_INPUT, "%s: unknown key '%s'%s%s%s", where(c, s), path,
                           hint ? " (did you mean " : "", hint ? hint : "", hint ? "?)" : "");
        }
    }
    return ERR_OK;
}

// Finds or creates the group chain of "a.b.c" and returns the parent group of the leaf.
static config_setting_t *parent_group(config_t *cf, const char *path, const char **leaf) {
    config_setting_t *g = config_root_setting(cf);
    char part[128];
    const char *p = path;
    for (const char *dot; (dot = strchr(p, '.')); p = dot + 1) {
        size_t n = (size_t)(dot - p);
        if (n == 0 || n >= sizeof part) return NULL;
        memcpy(part, p, n);
        part[n] = 0;
        config_setting_t *child = config_setting_get_member(g, part);
        if (!child) child = config_setting_add(g, part, CONFIG_TYPE_GROUP);
        if (!child || !config_setting_is_group(child)) return NULL;
        g = child;
    }
    *leaf = p;
    return g;
}

// The group of the layer called name in list, residual branches included, or NULL.
static config_setting_t *find_layer(config_setting_t *list, const char *name) {
    for (int i = 0; list && config_setting_is_list(list) && i < config_setting_length(list); i++) {
        config_setting_t *l = config_setting_get_elem(list, (unsigned)i);
        const char *n = NULL;
        if (!config_setting_is_group(l)) continue;
        if (config_setting_lookup_string(l, "name", &n) && strcmp(n, name) == 0) return l;
        config_setting_t *in = find_layer(config_setting_get_member(l, "layers"), name);
        if (in) return in;
    }
    return NULL;
}

// Whether s is, whole, a decimal integer (into *v).
static int parse_int(const char *s, long long *v) {
    char *end = NULL;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return *s && !*end && !errno;
}

// Whether s is, whole, a finite number (into *v).
static int parse_num(const char *s, double *v) {
    char *end = NULL;
    errno = 0;
    *v = strtod(s, &end);
    return *s && !*end && !errno && isfinite(*v);
}

// A new setting leaf of g holding v, of the type v has; NULL when libconfig cannot add it.
static config_setting_t *add_int(config_setting_t *g, const char *leaf, long long v) {
    config_setting_t *s = config_setting_add(g, leaf, CONFIG_TYPE_INT64);
    if (s) config_setting_set_int64(s, v);
    return s;
}

static config_setting_t *add_float(config_setting_t *g, const char *leaf, double v) {
    config_setting_t *s = config_setting_add(g, leaf, CONFIG_TYPE_FLOAT);
    if (s) config_setting_set_float(s, v);
    return s;
}

static config_setting_t *add_bool(config_setting_t *g, const char *leaf, int v) {
    config_setting_t *s = config_setting_add(g, leaf, CONFIG_TYPE_BOOL);
    if (s) config_setting_set_bool(s, v);
    return s;
}

static config_setting_t *add_string(config_setting_t *g, const char *leaf, const char *v) {
    config_setting_t *s = config_setting_add(g, leaf, CONFIG_TYPE_STRING);
    if (s) config_setting_set_string(s, v);
    return s;
}

// The end of every --set: s is the setting it added (NULL: libconfig could not), and carries
// arg as its hook, so that where() names the --set in a later message about the value.
static int set_done(config_setting_t *s, const char *arg, Err *e) {
    if (!s) return err_set(e, ERR_RUNTIME, "--set %s: cannot store the value", arg);
    config_setting_set_hook(s, (void *)arg);
    return ERR_OK;
}

// --set layer.NAME.KEY=value: one key of one layer (p of a dropout, out of a linear...),
// typed by the value's form (a word only for keys that take one: out=classes) and checked
// when the layer is read, like any other.
static int apply_layer_set(config_t *cf, const char *arg, const char *key, const char *val,
                           Err *e) {
    char name[LAYER_NAME_MAX + 1];
    const char *dot = strchr(key + 6, '.');
    if (!dot || dot == key + 6 || (size_t)(dot - key - 6) >= sizeof name || !dot[1])
        return err_set(e, ERR_INPUT, "--set %s: expected layer.NAME.KEY=value", arg);
    memcpy(name, key + 6, (size_t)(dot - key - 6));
    name[dot - key - 6] = 0;
    const char *lkey = dot + 1;
    const LayerKeyDesc *k = any_layer_key(lkey);
    if (!k || k->type == LAYER_KEY_LAYERS)
        return err_set(e, ERR_INPUT, "--set %s: '%s' is not a layer setting one can override",
                       arg, lkey);
    config_setting_t *l = find_layer(config_lookup(cf, "model.layers"), name);
    if (!l) return err_set(e, ERR_INPUT, "--set %s: the model has no layer named '%s'", arg, name);
    if (config_setting_get_member(l, lkey)) config_setting_remove(l, lkey);
    long long iv;
    double fv;
    config_setting_t *st;
    if (!strcmp(val, "true") || !strcmp(val, "false"))
        st = add_bool(l, lkey, !strcmp(val, "true"));
    else if (parse_int(val, &iv))
        st = add_int(l, lkey, iv);
    else if (parse_num(val, &fv))
        st = add_float(l, lkey, fv);
    else if (k->type == LAYER_KEY_OUT)  // a word: read_layer says whether out takes it
        st = add_string(l, lkey, val);
    else
        return err_set(e, ERR_INPUT, "--set %s: the value must be a number, true or false", arg);
    return set_done(st, arg, e);
}

// Stores "1,64,64" (or "[1, 64, 64]", "784") as the array leaf of g in *out: -1 if the text
// is not integers separated by commas, 0 otherwise (*out NULL when out of memory). How many
// sizes and their range are checked when the key is read, as for one from the file.
static int set_shape(config_setting_t *g, const char *leaf, const char *val,
                     config_setting_t **out) {
    *out = NULL;
    while (*val == ' ') val++;
    int bracket = *val == '[';
    const char *p = val + bracket;
    long long dims[16];
    int n = 0;
    for (;;) {
        char *end = NULL;
        errno = 0;
        long long v = strtoll(p, &end, 10);
        if (end == p || errno || n == (int)(sizeof dims / sizeof dims[0])) return -1;
        dims[n++] = v;
        for (p = end; *p == ' ';) p++;
        if (*p != ',') break;
        p++;
    }
    if (bracket && *p++ != ']') return -1;
    while (*p == ' ') p++;
    if (*p) return -1;
    // plain ints, as a file would have them, unless a size needs more (for its error)
    int wide = 0;
    for (int i = 0; i < n; i++) wide |= dims[i] < INT_MIN || dims[i] > INT_MAX;
    config_setting_t *a = config_setting_add(g, leaf, CONFIG_TYPE_ARRAY);
    for (int i = 0; a && i < n; i++)
        if (!(wide ? config_setting_set_int64_elem(a, -1, dims[i])
                   : config_setting_set_int_elem(a, -1, (int)dims[i])))
            return 0;
    *out = a;
    return 0;
}

// Stores val (of --set arg) as leaf of g, in the type the schema gives key k: so
// "--set train.epochs=abc" fails here, clearly.
static int set_typed(config_setting_t *g, const char *leaf, const Key *k, const char *key,
                     const char *val, const char *arg, Err *e) {
    long long iv;
    double fv;
    config_setting_t *s = NULL;
    switch (k->type) {
    case K_INT:
    case K_I64:
    case K_U32:
        if (!parse_int(val, &iv))
            return err_set(e, ERR_INPUT, "--set %s: %s must be an integer", arg, key);
        s = add_int(g, leaf, iv);
        break;
    case K_FLOAT:
        if (!parse_num(val, &fv))
            return err_set(e, ERR_INPUT, "--set %s: %s must be a number", arg, key);
        s = add_float(g, leaf, fv);
        break;
    case K_BOOL:
        if (strcmp(val, "true") && strcmp(val, "false"))
            return err_set(e, ERR_INPUT, "--set %s: %s must be true or false", arg, key);
        s = add_bool(g, leaf, strcmp(val, "true") == 0);
        break;
    case K_ENUM:
        if (enum_index(k->choices, val) < 0)
            return err_set(e, ERR_INPUT, "--set %s: %s must be one of %s", arg, key,
                           choices_text(k->choices));
        s = add_string(g, leaf, val);
        break;
    case K_SHAPE:
        if (strcmp(val, k->dflt) == 0) return ERR_OK;  // model.input=data: unpin it
        if (set_shape(g, leaf, val, &s) < 0)
            return err_set(e, ERR_INPUT, "--set %s: %s must be sizes separated by commas, "
                           "e.g. %s=1,64,64 (or %s=%s)", arg, key, key, key, k->dflt);
        break;
    }
    return set_done(s, arg, e);
}

// --set key=value: the key found in the schema (or layer.NAME.KEY), its old value replaced.
static int apply_set(Config *c, config_t *cf, const char *arg, Err *e) {
    const char *eq = strchr(arg, '=');
    char key[256];
    if (!eq || eq == arg || (size_t)(eq - arg) >= sizeof key)
        return err_set(e, ERR_INPUT, "--set %s: expected key=value", arg);
    memcpy(key, arg, (size_t)(eq - arg));
    key[eq - arg] = 0;
    const char *val = eq + 1;
    if (strncmp(key, "layer.", 6) == 0) return apply_layer_set(cf, arg, key, val, e);
    // --set augment=off: the one switch, kept beside the section's other keys
    if (strcmp(key, "augment") == 0) snprintf(key, sizeof key, "augment.enable");
    const Key *k = schema_find(key);
    if (!k) {
        const char *hint = suggest(key);
        return err_set(e, ERR_INPUT, "--set %s: unknown key '%s'%s%s%s", arg, key,
                       hint ? " (did you mean " : "", hint ? hint : "", hint ? "?)" : "");
    }
    const char *leaf;
    config_setting_t *g = parent_group(cf, key, &leaf);
    if (!g) return err_set(e, ERR_INPUT, "--set %s: %s is not a group in %s", arg, key, c->source);
    config_setting_t *old = config_setting_get_member(g, leaf);
    if (old) config_setting_remove(g, leaf);
    return set_typed(g, leaf, k, key, val, arg, e);
}

// augment = "off" (or "on") in a file, a word where the section would be: the same as
// augment: { enable = "off"; }, so --set can still add keys to the section.
static int augment_switch(Config *c, config_t *cf, Err *e) {
    config_setting_t *root = config_root_setting(cf);
    config_setting_t *s = config_setting_get_member(root, "augment");
    if (!s || config_setting_is_group(s)) return ERR_OK;
    const char *v = config_setting_type(s) == CONFIG_TYPE_STRING ? config_setting_get_string(s)
                                                                 : NULL;
    int idx = v ? enum_index(off_on, v) : -1;
    if (idx < 0)
        return err_set(e, ERR_INPUT, "%s: augment must be a group { ... } or \"off\"",
                       where(c, s));
    config_setting_remove(root, "augment");
    config_setting_t *g = config_setting_add(root, "augment", CONFIG_TYPE_GROUP);
    config_setting_t *en = g ? config_setting_add(g, "enable", CONFIG_TYPE_STRING) : NULL;
    if (!en || !config_setting_set_string(en, off_on[idx]))
        return err_set(e, ERR_RUNTIME, "out of memory");
    return ERR_OK;
}

// The effective config as text (for checkpoints and eval).
static char *config_to_text(config_t *cf) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return NULL;
    config_write(cf, f);
    fclose(f);
    return buf;
}

int config_load(Config *c, const char *path, const char *text, const char *const *sets, int nsets,
                Err *e) {
    memset(c, 0, sizeof *c);
    snprintf(c->source, sizeof c->source, "%s", path);
    config_t cf;
    config_init(&cf);
    int ok = text ? config_read_string(&cf, text) : config_read_file(&cf, path);
    int rc = ERR_OK;
    if (!ok) {
        if (config_error_type(&cf) == CONFIG_ERR_FILE_IO)
            rc = err_set(e, ERR_INPUT, "%s: cannot read the config file: %s", path,
                         strerror(errno ? errno : ENOENT));
        else
            rc = err_set(e, ERR_INPUT, "%s:%d: %s", path, config_error_line(&cf),
                         config_error_text(&cf));
        goto done;
    }
    if ((rc = augment_switch(c, &cf, e))) goto done;
    for (int i = 0; i < nsets; i++)
        if ((rc = apply_set(c, &cf, sets[i], e))) goto done;
    config_setting_t *root = config_root_setting(&cf);
    if ((rc = check_unknown(c, root, "", e))) goto done;
    for (int i = 0; i < NKEYS; i++)
        if ((rc = read_key(c, &schema[i], config_lookup(&cf, schema[i].path), e))) goto done;
    if ((rc = read_layer_list(c, config_lookup(&cf, "model.layers"), "model.layers", &c->layers,
                              &c->nlayers, e)))
        goto done;
    if (!c->batchnorm) drop_batchnorm(c->layers, &c->nlayers);
    set_bn_ghost(c->layers, c->nlayers, c->bn_ghost);
    if ((rc = set_drop_path(c, config_lookup(&cf, "model.drop_path"), e))) goto done;
    if (!c->augment_on) c->augment = augment_defaults();  // off means off, every key
    c->text = config_to_text(&cf);
    if (!c->text) rc = err_set(e, ERR_RUNTIME, "out of memory");
done:
    config_destroy(&cf);
    if (rc) config_free(c);
    return rc;
}

void config_free(Config *c) {
    free_layer_list(c->layers, c->nlayers);
    free(c->text);
    c->layers = NULL;
    c->text = NULL;
    c->nlayers = 0;
}

// "[lo, hi]" as --help shows a range: integers in full, other numbers as %g does.
static const char *range_text(double lo, double hi) {
    static char buf[80];
    snprintf(buf, sizeof buf, "[%.15g, %.15g]", lo, hi);
    return buf;
}

// Appends to the string buf (of cap bytes), as printf formats.
static void catf(char *buf, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void catf(char *buf, size_t cap, const char *fmt, ...) {
    size_t n = strlen(buf);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + n, cap - n, fmt, ap);
    va_end(ap);
}

static const char *dflt_or_required(const LayerKeyDesc *k) {
    return k->dflt_text ? k->dflt_text : "required";
}

// What --help says of a kind's key: its help (what 0) or its default (what 1).
static const char *key_text(const LayerKeyDesc *k, int what) {
    return what ? dflt_or_required(k) : k->help;
}

// Whether a kind before kind i that takes key says text of it (key_text).
static int said_before(const char *key, int i, const char *text, int what) {
    for (int h = 0; h < i; h++) {
        const LayerKeyDesc *o = layer_kind_key(layer_kind_at(h), key);
        if (o && strcmp(key_text(o, what), text) == 0) return 1;
    }
    return 0;
}

// The --help line of a kind key: its default, help, form and range, and the kinds that take
// it. Kinds may differ in the default (stride: 1 for conv2d, the kernel for pooling); the
// line then says which is whose.
static void print_layer_key(FILE *out, const char *key) {
    char kinds[256] = "", dflts[64] = "", helps[512] = "", whose[256] = "", path[64];
    const LayerKeyDesc *first = NULL;
    int ndflt = 0;
    for (int i = 0; i < layer_kind_count(); i++) {
        const LayerKeyDesc *k = layer_kind_key(layer_kind_at(i), key);
        if (!k) continue;
        if (!first) first = k;
        catf(kinds, sizeof kinds, "%s%s", *kinds ? ", " : "", layer_kind_at(i)->type);
        if (!said_before(key, i, k->help, 0))
            catf(helps, sizeof helps, "%s%s", *helps ? "; " : "", k->help);
        if (said_before(key, i, dflt_or_required(k), 1)) continue;
        catf(dflts, sizeof dflts, "%s%s", ndflt++ ? "|" : "", dflt_or_required(k));
        // " (default 1 for conv2d; kernel for maxpool2d, avgpool2d)", if there are several
        catf(whose, sizeof whose, "%s%s for", *whose ? "; " : " (default ", dflt_or_required(k));
        for (int j = i, m = 0; j < layer_kind_count(); j++) {
            const LayerKeyDesc *o = layer_kind_key(layer_kind_at(j), key);
            if (o && strcmp(dflt_or_required(o), dflt_or_required(k)) == 0)
                catf(whose, sizeof whose, "%s %s", m++ ? "," : "", layer_kind_at(j)->type);
        }
    }
    if (ndflt > 1)
        catf(whose, sizeof whose, ")");
    else
        whose[0] = 0;
    snprintf(path, sizeof path, "layer.NAME.%s", key);
    fprintf(out, "  %-22s %-9s %s%s; ", path, dflts, helps, whose);
    if (first->type == LAYER_KEY_INT || first->type == LAYER_KEY_OUT)
        fprintf(out, "an integer in %s%s", range_text(first->lo, first->hi),
                first->type == LAYER_KEY_OUT ? " or \"classes\"" : "");
    else if (first->type == LAYER_KEY_FLOAT)
        fprintf(out, "in %s", range_text(first->lo, first->hi));
    else
        fprintf(out, "%s", layer_key_form(first->type));
    fprintf(out, " (%s)\n", kinds);
}

void config_print_keys(FILE *out) {
    for (int i = 0; i < NKEYS; i++) {
        const Key *k = &schema[i];
        fprintf(out, "  %-22s %-9s %s", k->path, k->dflt, k->help);
        if (k->type == K_ENUM)
            fprintf(out, ": %s", choices_text(k->choices));
        else if (k->type == K_SHAPE)
            fprintf(out, "; 1 to %d sizes in %s", SHAPE_MAX_DIMS, range_text(k->lo, k->hi));
        else if (k->type != K_BOOL)
            fprintf(out, "; in %s", range_text(k->lo, k->hi));
        fputc('\n', out);
    }
    fprintf(out, "\nLayer keys, in each entry of model.layers (and of a residual block's layers);\n"
                 "--set layer.NAME.KEY=value changes one layer's KEY (all but name, type and "
                 "layers):\n");
    for (int i = 0; i < NCOMMON; i++) {
        const char *key = common_layer_keys[i].key;
        char path[64];
        snprintf(path, sizeof path, "layer.NAME.%s", key);
        fprintf(out, "  %-22s %-9s %s; ", path, "required", common_layer_keys[i].help);
        if (strcmp(key, "type") == 0)
            fprintf(out, "one of %s (every type)\n", layer_kind_names());
        else
            fprintf(out, "a string (every type)\n");
    }
    // each kind key once, where the registry first gives it
    for (int i = 0; i < layer_kind_count(); i++)
        for (int j = 0; j < layer_kind_at(i)->nkeys; j++) {
            const LayerKeyDesc *k = &layer_kind_at(i)->keys[j];
            if (any_layer_key(k->key) == k) print_layer_key(out, k->key);
        }
}
