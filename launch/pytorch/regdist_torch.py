#!/usr/bin/env python3
"""regdist_torch.py: a regdist checkpoint as a PyTorch module, and its ONNX export.

    from regdist_torch import load
    model = load("run/best.h5")          # torch.nn.Module, eval mode, regdist's names
    probs = model(x).softmax(1)          # x: N x C x H x W float in [0, 1] (ToTensor)

    python3 launch/pytorch/regdist_torch.py onnx run/best.h5 model.onnx
    python3 launch/pytorch/regdist_torch.py info run/best.h5

Reads only the checkpoint (see io/checkpoint.h and io/preprocess.h):
  - the root attribute `config`, the effective libconfig text of the run, from which the
    model is rebuilt with regdist's rules (launch/config.c): model.layers, model.batchnorm,
    model.drop_path, reg.dropout, model.input;
  - /model/<layer>.<param>, loaded with load_state_dict(strict=True), so the module's
    state_dict keys are regdist's names (`conv1a.weight`, `res1.bn1.running_mean`, ...);
  - /preprocessing (when present): mean and std, applied inside the module, as regdist's
    reader does after scaling stored pixels to [0, 1]; input_shape; the class names.
Needs only torch and h5py (and numpy, which h5py needs). Every layer type regdist has is
covered; a type or a layer key this file does not know is refused with a message naming it,
never silently ignored, since a wrong model would give wrong answers quietly.

Eval mode reproduces regdist's deterministic forward (`regdist predict`, no Monte-Carlo
passes). Train mode works (BatchNorm on batch statistics, dropout family active) but draws
masks from torch's generator, not regdist's Philox streams, so it is not bit-compatible.
"""
import argparse
import math
import os
import re
import sys

import h5py
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


class BridgeError(ValueError):
    """A checkpoint this bridge cannot turn into a module; the message says why."""


# ---------------------------------------------------------------------------------------------
# The config text: libconfig syntax as libconfig's config_write prints it (and as people write
# it: comments, '=' or ':', optional ';' or ','). Groups become dicts (in order), lists and
# arrays Python lists, scalars int, float, bool or str. Anything else is an error with a line.

_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\n]+)
  | (?P<comment>\#[^\n]*|//[^\n]*|/\*.*?\*/)
  | (?P<float>[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?(?![A-Za-z0-9_])
             |[-+]?[0-9]+[eE][-+]?[0-9]+(?![A-Za-z0-9_]))
  | (?P<int>[-+]?(?:0[xX][0-9A-Fa-f]+|0[bB][01]+|0[oO][0-7]+|[0-9]+)(?:LL|L)?(?![A-Za-z0-9_.]))
  | (?P<bool>(?i:true|false)(?![A-Za-z0-9_*-]))
  | (?P<name>[A-Za-z*][-A-Za-z0-9_*]*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<punct>[{}()\[\];,:=])
""", re.VERBOSE | re.DOTALL)

_ESCAPES = {"\\": "\\", '"': '"', "n": "\n", "r": "\r", "t": "\t", "f": "\f", "a": "\a",
            "b": "\b", "v": "\v"}


def _unescape(body, line):
    out, i = [], 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        nxt = body[i + 1]
        if nxt in _ESCAPES:
            out.append(_ESCAPES[nxt])
            i += 2
        elif nxt == "x" and re.match(r"[0-9A-Fa-f]{2}", body[i + 2:i + 4]):
            out.append(chr(int(body[i + 2:i + 4], 16)))
            i += 4
        else:
            raise BridgeError(f"config line {line}: unknown escape '\\{nxt}' in a string")
    return "".join(out)


def _tokenize(text):
    tokens, pos, line = [], 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if not m:
            raise BridgeError(f"config line {line}: cannot parse {text[pos:pos + 20]!r}")
        kind, value = m.lastgroup, m.group()
        if kind == "int":
            digits = value.rstrip("L")
            value = int(digits, 0) if not re.fullmatch(r"[-+]?0[0-9]+", digits) else int(digits)
        elif kind == "float":
            value = float(value)
        elif kind == "bool":
            value = value.lower() == "true"
        elif kind == "string":
            value = _unescape(value[1:-1], line)
        if kind not in ("ws", "comment"):
            tokens.append((kind, value, line))
        line += m.group().count("\n")
        pos = m.end()
    tokens.append(("end", None, line))
    return tokens


class _Parser:
    def __init__(self, text):
        self.toks = _tokenize(text)
        self.i = 0

    def peek(self):
        return self.toks[self.i]

    def take(self, kind=None, value=None):
        tok = self.toks[self.i]
        if (kind and tok[0] != kind) or (value is not None and tok[1] != value):
            want = repr(value) if value is not None else kind
            got = "the end" if tok[0] == "end" else repr(tok[1])
            raise BridgeError(f"config line {tok[2]}: expected {want}, found {got}")
        self.i += 1
        return tok

    def settings(self, closer):
        group = {}
        while not (self.peek()[0] == closer or self.peek()[:2] == ("punct", closer)):
            _, name, line = self.take("name")
            if self.peek()[1] not in (":", "="):
                self.take(value="=")
            self.i += 1
            if name in group:
                raise BridgeError(f"config line {line}: '{name}' is set twice")
            group[name] = self.value()
            if self.peek()[1] in (";", ","):
                self.i += 1
        return group

    def value(self):
        kind, v, line = self.peek()
        if v == "{" and kind == "punct":
            self.i += 1
            group = self.settings("}")
            self.take("punct", "}")
            return group
        if kind == "punct" and v in ("(", "["):
            self.i += 1
            close = ")" if v == "(" else "]"
            items = []
            while self.peek()[1] != close or self.peek()[0] != "punct":
                items.append(self.value())
                if self.peek()[1] == "," and self.peek()[0] == "punct":
                    self.i += 1
                elif self.peek()[1] != close:
                    self.take(value=close)
            self.i += 1
            if v == "[" and any(isinstance(x, (dict, list)) for x in items):
                raise BridgeError(f"config line {line}: an array [ ] holds only scalars")
            return items
        if kind == "string":
            self.i += 1
            while self.peek()[0] == "string":  # adjacent strings concatenate
                v += self.take()[1]
            return v
        if kind in ("int", "float", "bool"):
            self.i += 1
            return v
        raise BridgeError(f"config line {line}: expected a value, found "
                          f"{'the end' if kind == 'end' else repr(v)}")


def parse_config(text):
    """The libconfig text as nested dicts and lists. Raises BridgeError naming the line."""
    p = _Parser(text)
    root = p.settings("end")
    p.take("end")
    return root


# ---------------------------------------------------------------------------------------------
# Layer specs, as launch/config.c reads them: the keys each type takes and their defaults.

# key: (types, default). "required" = no default (config.c refuses the layer without it).
_LAYER_KEYS = {
    "name": ("*", None), "type": ("*", None),
    "out": ("linear conv2d", "required"),
    "bias": ("linear conv2d", True),
    "p": ("dropout dropout2d dropblock", 0.5),
    "eps": ("layernorm batchnorm", 1e-5),
    "momentum": ("batchnorm", 0.1),
    "dropconnect": ("linear", 0.0),
    "block_size": ("dropblock", "required"),
    "layers": ("residual", "required"),
    "drop_path": ("residual", 0.0),
    "kernel": ("conv2d maxpool2d avgpool2d", "required"),
    "stride": ("conv2d maxpool2d avgpool2d", 0),
    "padding": ("conv2d maxpool2d avgpool2d", 0),
}


# How each numeric key is typed (out is an integer or "classes": _resolve_out checks it).
_KEY_KIND = {"kernel": "int", "stride": "int", "padding": "int", "block_size": "int",
             "p": "float", "eps": "float", "momentum": "float", "dropconnect": "float",
             "drop_path": "float", "bias": "bool"}
_KEY_FORM = {"int": "an integer", "float": "a number", "bool": "true or false"}


def _f32(v):
    """v rounded to float32, as regdist stores eps, p, momentum (LayerSpec floats)."""
    return float(np.float32(v))


def _layer_specs(items, where):
    """model.layers (or a residual branch) as a list of spec dicts with every default."""
    if not isinstance(items, list) or not items:
        raise BridgeError(f"{where} must be a non-empty list of layers")
    specs = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("type"), str) \
                or not isinstance(item.get("name"), str):
            raise BridgeError(f"{where}[{i}] must be a group with name and type strings")
        name, typ = item["name"], item["type"]
        if typ not in _BUILDERS:
            raise BridgeError(f"layer {name}: type '{typ}' is not supported by the PyTorch "
                              f"bridge (supported: {', '.join(_BUILDERS)})")
        spec = {"name": name, "type": typ}
        for key, value in item.items():
            types = _LAYER_KEYS.get(key, ("", None))[0]
            if types != "*" and typ not in types.split():
                raise BridgeError(f"layer {name} ({typ}): key '{key}' is not supported by the "
                                  f"PyTorch bridge")
        for key, (types, default) in _LAYER_KEYS.items():
            if key in ("name", "type") or typ not in types.split():
                continue
            if key in item:
                spec[key] = item[key]
            elif default == "required":
                raise BridgeError(f"layer {name} ({typ}) has no {key}")
            else:
                spec[key] = default
        for key, value in spec.items():
            kind = _KEY_KIND.get(key)
            ok = (kind is None
                  or (kind == "int" and isinstance(value, int) and not isinstance(value, bool))
                  or (kind == "float" and isinstance(value, (int, float))
                      and not isinstance(value, bool))
                  or (kind == "bool" and (isinstance(value, bool) or value in (0, 1))))
            if not ok:
                raise BridgeError(f"layer {name} ({typ}): {key} must be {_KEY_FORM[kind]}, got "
                                  f"{value!r}")
            if kind == "float":
                spec[key] = _f32(value)
            elif kind == "bool":
                spec[key] = bool(value)
        if typ == "residual":
            spec["layers"] = _layer_specs(spec["layers"], f"{name}.layers")
        specs.append(spec)
    return specs


def _drop_batchnorm(specs):
    """model.batchnorm = "off": batchnorm layers leave, the conv2d or linear before each gets a
    bias (config.c's drop_batchnorm, residual branches first)."""
    kept = []
    for spec in specs:
        if "layers" in spec:
            spec["layers"] = _drop_batchnorm(spec["layers"])
        if spec["type"] == "batchnorm":
            if kept and kept[-1]["type"] in ("conv2d", "linear"):
                kept[-1]["bias"] = True
            continue
        kept.append(spec)
    return kept


def _set_drop_path(specs, rate):
    """model.drop_path: block i of n top-level residual blocks gets rate * i / (n - 1)."""
    blocks = [s for s in specs if s["type"] == "residual"]
    if rate <= 0 or not blocks:
        return
    n = len(blocks)
    for i, s in enumerate(blocks):
        if s["drop_path"] > 0:
            raise BridgeError(f"layer {s['name']} sets drop_path and so does model.drop_path")
        s["drop_path"] = _f32(rate) if n == 1 else float(
            np.float32(rate) * np.float32(i) / np.float32(n - 1))


def model_specs(cfg):
    """The effective layer list of a parsed config, with config.c's rewrites applied."""
    model = cfg.get("model")
    if not isinstance(model, dict) or "layers" not in model:
        raise BridgeError("the config has no model.layers")
    specs = _layer_specs(model["layers"], "model.layers")
    if model.get("batchnorm", "on") == "off":
        specs = _drop_batchnorm(specs)
    _set_drop_path(specs, float(model.get("drop_path", 0.0)))
    return specs


# ---------------------------------------------------------------------------------------------
# Modules for what torch.nn lacks. None of them has parameters of its own.

class GlobalAvgPool(nn.Module):
    """globalavgpool: (N,C,H,W) -> (N,C), the mean over each map (AdaptiveAvgPool2d(1) +
    flatten)."""

    def forward(self, x):
        return x.mean(dim=(2, 3))


class DropBlock(nn.Module):
    """dropblock (Ghiasi et al. 2018) as core/dropblock.c: bs = min(block_size, H, W), anchors
    in the valid region with probability gamma, survivors scaled by count/ones per sample.
    Identity in eval mode. Masks come from torch's generator, not regdist's Philox."""

    def __init__(self, p, block_size):
        super().__init__()
        self.p, self.block_size = p, block_size

    def extra_repr(self):
        return f"p={self.p:g}, block_size={self.block_size}"

    def forward(self, x):
        if not self.training or self.p <= 0:
            return x
        n, c, h, w = x.shape
        bs = min(self.block_size, h, w)
        vh, vw = h - bs + 1, w - bs + 1
        gamma = self.p / (bs * bs) * (h * w) / (vh * vw)
        anchors = torch.zeros_like(x)
        anchors[:, :, :vh, :vw] = torch.bernoulli(
            torch.full((n, c, vh, vw), gamma, dtype=x.dtype, device=x.device))
        dropped = F.max_pool2d(F.pad(anchors, (bs - 1, 0, bs - 1, 0)), bs, stride=1)
        keep = 1.0 - dropped
        ones = keep.flatten(1).sum(1)
        scale = torch.where(ones > 0, keep[0].numel() / ones.clamp(min=1), torch.zeros_like(ones))
        return x * keep * scale.view(n, 1, 1, 1)


class DropConnectLinear(nn.Linear):
    """linear with DropConnect (dropconnect = p > 0): in training, weight * mask / (1-p), one
    mask per forward; plain nn.Linear in eval mode."""

    def __init__(self, in_features, out_features, bias, p):
        super().__init__(in_features, out_features, bias)
        self.p = p

    def extra_repr(self):
        return super().extra_repr() + f", dropconnect={self.p:g}"

    def forward(self, x):
        if not self.training or self.p <= 0:
            return super().forward(x)
        keep = torch.bernoulli(torch.full_like(self.weight, 1.0 - self.p))
        scale = 1.0 / (1.0 - self.p) if self.p < 1 else 0.0
        return F.linear(x, self.weight * keep * scale, self.bias)


class Residual(nn.Module):
    """residual: out = x + drop_path(branch(x)) (core/residual.c). The branch's layers are
    children named as in regdist, so their parameters are `<block>.<layer>.<param>`. DropPath
    drops a sample's branch with probability drop_path in training; identity in eval."""

    def __init__(self, layers, drop_path):
        super().__init__()
        self.drop_path = drop_path
        for name, module in layers:
            _add_layer(self, name, module)

    def extra_repr(self):
        return f"drop_path={self.drop_path:g}" if self.drop_path > 0 else ""

    def forward(self, x):
        y = x
        for module in self.children():
            y = module(y)
        if self.training and self.drop_path > 0:
            keep = torch.rand(x.shape[0], device=x.device) >= self.drop_path
            scale = keep.to(x.dtype) / (1.0 - self.drop_path) if self.drop_path < 1 \
                else torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
            y = y * scale.view(-1, *([1] * (x.dim() - 1)))
        return x + y


def _add_layer(parent, name, module):
    if not name or "." in name:
        raise BridgeError(f"bad layer name '{name}' (regdist's names have no '.')")
    if hasattr(parent, name) and name not in parent._modules:
        raise BridgeError(f"layer name '{name}' clashes with an attribute of torch.nn.Module; "
                          f"the bridge cannot give it that name")
    if name in parent._modules:
        raise BridgeError(f"two layers are named '{name}'")
    parent.add_module(name, module)


class RegdistNet(nn.Module):
    """A regdist model: its layers in order, named as regdist names them, after the input
    normalization the checkpoint records. Takes (N, *input_shape) floats in [0, 1] (what
    torchvision's ToTensor gives for 8-bit images: pixel / pixel_max); a flat model, input
    (D), also takes (N, ...) with D elements per sample. Returns logits (N, classes)."""

    def __init__(self, layers, input_shape, mean, std, classes):
        super().__init__()
        for name, module in layers:
            _add_layer(self, name, module)
        self.input_shape = tuple(input_shape) if input_shape else None
        self.classes = classes
        self.normalize = mean is not None
        nchan = len(mean) if mean is not None else 1
        # non-persistent: the state_dict holds exactly regdist's /model names
        self.register_buffer("input_mean", torch.tensor(
            mean if mean is not None else [0.0], dtype=torch.float32), persistent=False)
        self.register_buffer("input_std", torch.tensor(
            std if std is not None else [1.0], dtype=torch.float32), persistent=False)
        self._nchan = nchan

    def forward(self, x):
        flat = self.input_shape is not None and len(self.input_shape) == 1
        if flat:
            x = torch.flatten(x, 1)
        if self.input_shape is not None and not torch.jit.is_tracing() \
                and tuple(x.shape[1:]) != self.input_shape:
            raise ValueError(f"the model takes (N, {', '.join(map(str, self.input_shape))}) "
                             f"inputs, got {tuple(x.shape)}")
        if self.normalize:
            x = self._normalize(x)
        for module in self.children():
            x = module(x)
        return x

    def _normalize(self, x):
        # as io/dataset.c: channel c is the c-th of nchan equal planes of each sample
        if self._nchan == 1:
            return (x - self.input_mean) / self.input_std
        if x.dim() == 4:
            return (x - self.input_mean.view(1, -1, 1, 1)) / self.input_std.view(1, -1, 1, 1)
        shape = x.shape
        x = x.reshape(shape[0], self._nchan, -1)
        x = (x - self.input_mean.view(1, -1, 1)) / self.input_std.view(1, -1, 1)
        return x.reshape(shape)


# ---------------------------------------------------------------------------------------------
# Builders: one per regdist layer type (core/model.c's registry). Each takes the spec, the
# per-sample input shape (dims may be None where unknown) and the checkpoint's tensors, and
# returns (module, output shape). Sizes come from the checkpoint's tensors and are checked
# against the config and the shape flowing through, so a mismatch is named, not a torch error.

def _want_rank(spec, shape, rank):
    if len(shape) != rank:
        what = "a (C,H,W)" if rank == 3 else "a flat (D)"
        raise BridgeError(f"layer {spec['name']} ({spec['type']}) needs {what} input but gets "
                          f"{len(shape)} dimensions")


def _tensor(tensors, spec, param):
    key = f"{spec['name']}.{param}"
    if key not in tensors:
        raise BridgeError(f"the checkpoint has no /model/{key}, which layer {spec['name']} "
                          f"({spec['type']}) needs")
    return tensors[key]


def _check_dim(spec, what, expected, got):
    if expected is not None and expected != got:
        raise BridgeError(f"layer {spec['name']} ({spec['type']}): {what} is {got} in the "
                          f"checkpoint but {expected} by the config")


def _resolve_out(spec, weight, num_classes):
    out = spec["out"]
    if out == "classes":  # resolved from the data at training time
        return num_classes if num_classes is not None else weight.shape[0]
    if isinstance(out, bool) or not isinstance(out, int):
        raise BridgeError(f"layer {spec['name']} ({spec['type']}): out must be an integer or "
                          f"\"classes\", got {out!r}")
    return out


def _build_linear(spec, shape, tensors, ctx):
    _want_rank(spec, shape, 1)
    weight = _tensor(tensors, spec, "weight")
    out_f, in_f = weight.shape
    _check_dim(spec, "out", _resolve_out(spec, weight, ctx["num_classes"]), out_f)
    _check_dim(spec, "the input size", shape[0], in_f)
    p = spec["dropconnect"] if ctx["dropout_on"] else 0.0
    if p > 0:
        return DropConnectLinear(in_f, out_f, spec["bias"], p), (out_f,)
    return nn.Linear(in_f, out_f, bias=spec["bias"]), (out_f,)


def _window(spec, size, kernel, stride, padding):
    return None if size is None else (size + 2 * padding - kernel) // stride + 1


def _build_conv2d(spec, shape, tensors, ctx):
    _want_rank(spec, shape, 3)
    weight = _tensor(tensors, spec, "weight")
    oc, c, kh, kw = weight.shape
    k, s, p = spec["kernel"], spec["stride"] or 1, spec["padding"]
    _check_dim(spec, "out", _resolve_out(spec, weight, ctx["num_classes"]), oc)
    _check_dim(spec, "the input channels", shape[0], c)
    _check_dim(spec, "kernel", k, kh)
    module = nn.Conv2d(c, oc, k, stride=s, padding=p, bias=spec["bias"])
    return module, (oc, _window(spec, shape[1], k, s, p), _window(spec, shape[2], k, s, p))


def _build_pool(cls, **extra):
    def build(spec, shape, tensors, ctx):
        _want_rank(spec, shape, 3)
        k, s, p = spec["kernel"], spec["stride"] or spec["kernel"], spec["padding"]
        module = cls(k, stride=s, padding=p, ceil_mode=False, **extra)
        return module, (shape[0], _window(spec, shape[1], k, s, p),
                        _window(spec, shape[2], k, s, p))
    return build


def _build_globalavgpool(spec, shape, tensors, ctx):
    _want_rank(spec, shape, 3)
    return GlobalAvgPool(), (shape[0],)


def _build_batchnorm(spec, shape, tensors, ctx):
    if len(shape) not in (1, 3):
        raise BridgeError(f"layer {spec['name']} (batchnorm) normalizes (C,H,W) or (D) inputs "
                          f"but gets {len(shape)} dimensions")
    c = _tensor(tensors, spec, "weight").shape[0]
    _check_dim(spec, "the channels", shape[0], c)
    cls = nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d
    return cls(c, eps=spec["eps"], momentum=spec["momentum"]), shape


def _build_layernorm(spec, shape, tensors, ctx):
    _want_rank(spec, shape, 1)
    d = _tensor(tensors, spec, "weight").shape[0]
    _check_dim(spec, "the features", shape[0], d)
    return nn.LayerNorm(d, eps=spec["eps"]), shape


def _build_dropout(cls):
    def build(spec, shape, tensors, ctx):
        if cls is nn.Dropout2d:
            _want_rank(spec, shape, 3)
        return cls(spec["p"] if ctx["dropout_on"] else 0.0), shape
    return build


def _build_dropblock(spec, shape, tensors, ctx):
    _want_rank(spec, shape, 3)
    return DropBlock(spec["p"] if ctx["dropout_on"] else 0.0, spec["block_size"]), shape


def _build_flatten(spec, shape, tensors, ctx):
    n = None if any(d is None for d in shape) else math.prod(shape)
    return nn.Flatten(1), (n,)


def _build_residual(spec, shape, tensors, ctx):
    layers, out = _build_layers(spec["layers"], shape, tensors, ctx, prefix=spec["name"] + ".")
    if len(out) != len(shape) or any(a is not None and b is not None and a != b
                                      for a, b in zip(out, shape)):
        raise BridgeError(f"residual block {spec['name']}: its layers change the shape of "
                          f"their input")
    p = spec["drop_path"] if ctx["dropout_on"] else 0.0
    return Residual(layers, p), shape


_BUILDERS = {
    "linear": _build_linear,
    "relu": lambda spec, shape, tensors, ctx: (nn.ReLU(), shape),
    "gelu": lambda spec, shape, tensors, ctx: (nn.GELU(approximate="none"), shape),
    "layernorm": _build_layernorm,
    "dropout": _build_dropout(nn.Dropout),
    "flatten": _build_flatten,
    "conv2d": _build_conv2d,
    "maxpool2d": _build_pool(nn.MaxPool2d),
    "avgpool2d": _build_pool(nn.AvgPool2d, count_include_pad=True),
    "globalavgpool": _build_globalavgpool,
    "dropout2d": _build_dropout(nn.Dropout2d),
    "dropblock": _build_dropblock,
    "batchnorm": _build_batchnorm,
    "residual": _build_residual,
}


def _build_layers(specs, shape, tensors, ctx, prefix=""):
    layers = []
    for spec in specs:
        named = dict(spec, name=prefix + spec["name"])
        module, shape = _BUILDERS[spec["type"]](named, shape, tensors, ctx)
        layers.append((spec["name"], module))
    return layers, shape


# ---------------------------------------------------------------------------------------------
# Reading the checkpoint.

def _attr_str(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    if isinstance(v, np.ndarray) and v.shape == ():
        return _attr_str(v[()])
    return str(v)


def _read_preprocessing(f):
    """/preprocessing attributes as a dict of Python values; None when the group is absent."""
    if "preprocessing" not in f:
        return None
    out = {}
    for key, v in f["preprocessing"].attrs.items():
        if isinstance(v, np.ndarray) and v.dtype.kind in "OSU":
            out[key] = [_attr_str(x) for x in v.reshape(-1)]
        elif isinstance(v, np.ndarray):
            out[key] = v.reshape(-1).tolist()
        elif isinstance(v, (bytes, str)):
            out[key] = _attr_str(v)
        else:
            out[key] = v.item() if hasattr(v, "item") else v
    return out


def _first_input_shape(specs, tensors):
    """The input shape the first layer implies, as far as the tensors say (dims may be None)."""
    for spec in specs:
        t = spec["type"]
        if t == "linear":
            return (tensors[spec["name"] + ".weight"].shape[1],) \
                if spec["name"] + ".weight" in tensors else (None,)
        if t == "layernorm" and spec["name"] + ".weight" in tensors:
            return (tensors[spec["name"] + ".weight"].shape[0],)
        if t == "conv2d" and spec["name"] + ".weight" in tensors:
            return (tensors[spec["name"] + ".weight"].shape[1], None, None)
        if t in ("maxpool2d", "avgpool2d", "globalavgpool", "dropout2d", "dropblock", "flatten"):
            return (None, None, None)
        if t == "residual":
            return _first_input_shape(spec["layers"], {k[len(spec["name"]) + 1:]: v for k, v in
                                                       tensors.items()
                                                       if k.startswith(spec["name"] + ".")})
    return None


def _warn(msg):
    print(f"regdist_torch: warning: {msg}", file=sys.stderr)


def load(path, mean=None, std=None, input_shape=None):
    """The checkpoint at path as a torch.nn.Module (RegdistNet) in eval mode.

    mean, std (one float per channel) override or supply the input normalization; without
    them it is /preprocessing's mean and std, or none. input_shape ((C,H,W) or (D,)) supplies
    the per-sample shape when neither model.input nor /preprocessing records it.
    Raises BridgeError (a ValueError) for a checkpoint it cannot rebuild, naming the cause."""
    try:
        f = h5py.File(path, "r")
    except OSError as e:
        raise BridgeError(f"{path}: cannot open as HDF5: {e}") from None
    with f:
        if "config" not in f.attrs:
            raise BridgeError(f"{path}: no 'config' attribute: not a regdist checkpoint")
        if "model" not in f or not isinstance(f["model"], h5py.Group):
            raise BridgeError(f"{path}: no /model group: not a regdist checkpoint")
        text = _attr_str(f.attrs["config"])
        tensors = {k: np.asarray(v[()]) for k, v in f["model"].items()}
        prep = _read_preprocessing(f)
    has_prep = prep is not None
    prep = prep or {}
    try:
        cfg = parse_config(text)
        specs = model_specs(cfg)
    except BridgeError as e:
        raise BridgeError(f"{path}: {e}") from None

    shape, origin = None, None
    if input_shape is not None:
        shape, origin = tuple(int(d) for d in input_shape), "input_shape="
    elif isinstance(cfg["model"].get("input"), list):
        shape, origin = tuple(int(d) for d in cfg["model"]["input"]), "model.input"
    elif prep.get("input_shape"):
        shape, origin = tuple(int(d) for d in prep["input_shape"]), "/preprocessing input_shape"
    if shape is None:
        shape = _first_input_shape(specs, tensors)
        if shape is None or any(d is None for d in shape):
            _warn(f"{path} records no input shape; inferred "
                  f"({', '.join('?' if d is None else str(d) for d in shape or ())}) "
                  f"from the first layers (pass input_shape= to fix it)")
        else:
            _warn(f"{path} records no input shape; inferred {shape} from the first layer's "
                  f"weight")
    known_shape = shape if shape is not None and all(d is not None for d in shape) else None

    if (mean is None) != (std is None):
        raise BridgeError("give both mean and std, or neither")
    if mean is None and "mean" in prep and "std" in prep:
        mean, std = prep["mean"], prep["std"]
    elif mean is None and not has_prep:
        _warn(f"{path} has no /preprocessing group (an older checkpoint): its input "
              f"normalization is unknown, so none is applied (pass mean=, std= to set it)")
    if mean is not None:
        mean = [_f32(m) for m in np.atleast_1d(mean)]
        std = [_f32(s) for s in np.atleast_1d(std)]
        if len(mean) != len(std) or not mean:
            raise BridgeError(f"mean has {len(mean)} values and std {len(std)}; they must match")
        if any(not (s > 0) or not math.isfinite(s) for s in std):
            raise BridgeError(f"std must be positive and finite, got {std}")
        if known_shape is not None and len(known_shape) == 3 and len(mean) not in (1, shape[0]):
            raise BridgeError(f"{len(mean)} normalization channels for a model with "
                              f"{shape[0]} input channels")

    classes = prep.get("classes")
    reg = cfg.get("reg", {}) if isinstance(cfg.get("reg"), dict) else {}
    num_classes = prep.get("num_classes") or (len(classes) if classes else None)
    ctx = {"num_classes": int(num_classes) if num_classes else None,
           "dropout_on": reg.get("dropout", "on") != "off"}
    layers, out = _build_layers(specs, shape if shape is not None else (None, None, None),
                                tensors, ctx)
    if len(out) != 1:
        raise BridgeError(f"{path}: the model's last layer outputs {len(out)} dimensions per "
                          f"sample, not (classes)")
    net = RegdistNet(layers, known_shape, mean, std, classes)
    net.pixel_max = float(prep.get("pixel_max", 255.0))

    expected = net.state_dict()
    missing = [k for k in expected if k not in tensors]
    extra = [k for k in tensors if k not in expected]
    if missing or extra:
        raise BridgeError(f"{path}: the config's model and /model disagree: "
                          + "; ".join(x for x in (
                              f"missing from /model: {', '.join(missing)}" if missing else "",
                              f"not in the model: {', '.join(extra)}" if extra else "") if x))
    for k, v in expected.items():
        if tuple(v.shape) != tuple(tensors[k].shape):
            raise BridgeError(f"{path}: /model/{k} has shape {tuple(tensors[k].shape)}, the "
                              f"model needs {tuple(v.shape)}")
    net.load_state_dict({k: torch.from_numpy(np.ascontiguousarray(tensors[k]))
                         .to(expected[k].dtype) for k in expected}, strict=True)
    net.origin = origin
    return net.eval()


# ---------------------------------------------------------------------------------------------
# The command line.

def _example_input(net):
    if net.input_shape is None:
        raise BridgeError("the checkpoint records no complete input shape; pass --input-shape")
    return torch.rand(1, *net.input_shape)


def export_onnx(net, out_path, opset=13):
    """Writes net (eval mode) to out_path as ONNX with a dynamic batch axis, input "input"
    (N, *input_shape) and output "logits" (N, classes). Written to a temporary file beside
    out_path and renamed over it, so a failed export leaves no half-written file."""
    net.eval()
    x = _example_input(net)
    tmp = os.path.join(os.path.dirname(os.path.abspath(out_path)),
                       f".{os.path.basename(out_path)}.tmp{os.getpid()}")
    try:
        with torch.no_grad():
            torch.onnx.export(net, x, tmp, opset_version=opset, input_names=["input"],
                              output_names=["logits"],
                              dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}})
        os.replace(tmp, out_path)
    except OSError as e:
        raise OSError(f"cannot write {out_path}: {e.strerror or e}") from None
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _parse_floats(text):
    return [float(v) for v in text.split(",")] if text else None


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="regdist_torch.py",
        description="A regdist checkpoint as a PyTorch module: inspect it, or export it to "
                    "ONNX (opset 13, dynamic batch axis).")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, helptext in (("onnx", "export CHECKPOINT to OUT with torch.onnx.export"),
                           ("info", "print the rebuilt module, its input and normalization")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("checkpoint")
        if name == "onnx":
            p.add_argument("out")
            p.add_argument("--opset", type=int, default=13)
        p.add_argument("--mean", help="per-channel mean, comma-separated (overrides the "
                                      "checkpoint's)")
        p.add_argument("--std", help="per-channel std, comma-separated")
        p.add_argument("--input-shape", help="C,H,W or D, when the checkpoint lacks it")
    args = ap.parse_args(argv)
    try:
        shape = _parse_floats(args.input_shape)
        net = load(args.checkpoint, mean=_parse_floats(args.mean), std=_parse_floats(args.std),
                   input_shape=[int(d) for d in shape] if shape else None)
        if args.command == "info":
            nparams = sum(p.numel() for p in net.parameters())
            print(net)
            print(f"input: (N, {', '.join(map(str, net.input_shape or ('?',)))}) floats in "
                  f"[0, 1], pixel / {net.pixel_max:g} (shape from "
                  f"{net.origin or 'the first layer'})")
            print("normalization: " + (
                f"mean {' '.join(f'{v:.6g}' for v in net.input_mean.tolist())} "
                f"std {' '.join(f'{v:.6g}' for v in net.input_std.tolist())}"
                if net.normalize else "none"))
            if net.classes:
                print(f"classes: {', '.join(net.classes)}")
            print(f"parameters: {nparams}")
        else:
            export_onnx(net, args.out, args.opset)
            print(f"wrote {args.out}")
    except (BridgeError, ValueError) as e:
        print(f"regdist_torch: {e}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as e:
        print(f"regdist_torch: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
