"""test_bridge.py: the PyTorch bridge (launch/pytorch/regdist_torch.py) against regdist.

Trains a few steps of launch/configs/cnn6_mlp4.cfg, rescnn.cfg and mlp.cfg, and of this
directory's all_layers.cfg (every layer type with non-default keys) and flat.cfg (a (D)
model), on synthetic data whose files carry a mean and std, predicts the test split with
`regdist predict`, and checks that load(checkpoint)'s eval-mode softmax on the same images,
scaled as ToTensor scales them (uint8 / 255), equals probs_mean within 1e-5. Each comparison
also checks that it could fail: the probabilities are not uniform, and the same module with
the normalization or the BatchNorm running statistics left out misses by far more than 1e-5.
Then: state_dict names and order are regdist's, out = "classes" resolves, ONNX export writes
a file, unsupported types and keys are refused naming them, bad files exit 2.

Run by run.sh (which finds a python3 with torch and h5py); environment: REGDIST_BIN,
REGDIST_SOURCE_DIR, REGDIST_TEST_TMP.
"""
import contextlib
import io
import os
import re
import shutil
import subprocess
import sys
import unittest

import h5py
import numpy as np
import torch

SRC = os.environ["REGDIST_SOURCE_DIR"]
BIN = os.environ["REGDIST_BIN"]
TMP = os.path.join(os.environ["REGDIST_TEST_TMP"], "torch_bridge")
HERE = os.path.dirname(os.path.abspath(__file__))
BRIDGE = os.path.join(SRC, "launch", "pytorch", "regdist_torch.py")
sys.path.insert(0, os.path.dirname(BRIDGE))
import regdist_torch  # noqa: E402

TOL = 1e-5
# A few steps at a rate that leaves every model's answer depending on its input, unsaturated
# (cnn6_mlp4's deep head needs more to move than the others)
STEPS = ["--set", "data.train_size=0", "--set", "train.batch=32", "--set", "sched.warmup_steps=0"]
FEW = ["--set", "train.max_steps=6", "--set", "optim.lr=3e-3"]
CNN6 = ["--set", "train.max_steps=10", "--set", "optim.lr=1e-2"]


def regdist(*args):
    r = subprocess.run([BIN, *args], cwd=TMP, capture_output=True, text=True)
    if r.returncode != 0:
        raise AssertionError(f"regdist {' '.join(args)} exited {r.returncode}:\n{r.stderr}")
    return r


def bridge_cli(*args):
    return subprocess.run([sys.executable, BRIDGE, *args], cwd=TMP, capture_output=True,
                          text=True)


_data = {}


def dataset(name, shape, classes, mean, std):
    """A synthetic dataset whose root attributes carry mean and std, made once."""
    if name not in _data:
        path = os.path.join(TMP, name + ".h5")
        regdist("data", "synth", "--out", path, "--train", "256", "--val", "32", "--test", "60",
                "--shape", shape, "--classes", str(classes), "--seed", "5")
        with h5py.File(path, "r+") as f:
            f.attrs["mean"] = np.array(mean, dtype=np.float32)
            f.attrs["std"] = np.array(std, dtype=np.float32)
        _data[name] = (path, mean, std)
    return _data[name]


_runs = {}


def trained(name, config, data, *sets):
    """(checkpoint, probs_mean of regdist predict, data) for config trained a few steps."""
    if name not in _runs:
        path, mean, std = data
        out = os.path.join(TMP, name)
        regdist("train", "--config", config, "--data", path, "--out", out, "--overwrite",
                *STEPS, *(sets or FEW))
        ckpt = os.path.join(out, "last.h5")
        pred = os.path.join(TMP, name + "-pred.h5")
        regdist("predict", "--checkpoint", ckpt, "--data", path, "--split", "test", "--out", pred)
        with h5py.File(pred, "r") as f:
            probs = f["probs_mean"][()]
        _runs[name] = (ckpt, probs, data)
    return _runs[name]


def test_images(path):
    """The test split as ToTensor gives 8-bit images: float32 pixel / 255."""
    with h5py.File(path, "r") as f:
        x = f["test/x"][()]
    assert x.dtype == np.uint8
    return torch.from_numpy(x).to(torch.float32).div(255)


def quiet_load(ckpt, **kw):
    """load(), with the normalization from /preprocessing when the checkpoint has it and else
    (older checkpoints, no /preprocessing) passed in as the data file's, stderr captured."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        return regdist_torch.load(ckpt, **kw), err.getvalue()


def has_prep_norm(ckpt):
    with h5py.File(ckpt, "r") as f:
        return "preprocessing" in f and "mean" in f["preprocessing"].attrs


def softmax(net, x):
    with torch.no_grad():
        return net(x).softmax(1).numpy()


class PredictMatches(unittest.TestCase):
    """Eval-mode softmax equals regdist predict's probs_mean within 1e-5."""

    def check(self, run, x=None):
        ckpt, probs, (path, mean, std) = run
        kw = {} if has_prep_norm(ckpt) else {"mean": mean, "std": std}
        net, _ = quiet_load(ckpt, **kw)
        self.assertFalse(net.training)
        x = test_images(path) if x is None else x
        p = softmax(net, x)
        self.assertEqual(p.shape, probs.shape)
        diff = float(np.abs(p - probs).max())
        print(f"  {os.path.basename(os.path.dirname(ckpt))}: max |torch - regdist| = {diff:.3g}",
              file=sys.stderr)
        self.assertLessEqual(diff, TOL)
        # the comparison could fail: the answer depends on the input, far beyond the
        # tolerance, without saturating ...
        self.assertGreater(float(probs.std(0).max()), 100 * TOL)
        self.assertLess(float(probs.max()), 0.999)
        # ... and the module without the normalization misses it
        raw, _ = quiet_load(ckpt, mean=[0.0], std=[1.0])
        self.assertGreater(float(np.abs(softmax(raw, x) - probs).max()), 2 * TOL)
        return net, x, probs

    def check_running_stats_matter(self, net, x, probs):
        for m in net.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
                m.track_running_stats, m.running_mean, m.running_var = False, None, None
        self.assertGreater(float(np.abs(softmax(net, x) - probs).max()), 2 * TOL)

    def test_cnn6_mlp4(self):
        data = dataset("gray", "1,28,28", 10, [0.3], [0.4])
        run = trained("cnn6_mlp4", os.path.join(SRC, "launch/configs/cnn6_mlp4.cfg"), data,
                      *CNN6)
        self.check_running_stats_matter(*self.check(run))

    def test_rescnn(self):
        data = dataset("gray", "1,28,28", 10, [0.3], [0.4])
        run = trained("rescnn", os.path.join(SRC, "launch/configs/rescnn.cfg"), data)
        self.check_running_stats_matter(*self.check(run))

    def test_mlp(self):
        data = dataset("gray", "1,28,28", 10, [0.3], [0.4])
        self.check(trained("mlp", os.path.join(SRC, "launch/configs/mlp.cfg"), data))

    def test_every_layer_type_three_channels(self):
        data = dataset("rgb", "3,12,12", 6, [0.2, 0.4, 0.6], [0.5, 0.25, 0.3])
        net, x, probs = self.check(trained("all_layers", os.path.join(HERE, "all_layers.cfg"),
                                           data))
        self.check_running_stats_matter(net, x, probs)
        # one normalization per channel: the same mean and std for all three miss
        ckpt = _runs["all_layers"][0]
        same, _ = quiet_load(ckpt, mean=[0.4], std=[0.35])
        self.assertGreater(float(np.abs(softmax(same, x) - probs).max()), 2 * TOL)

    def test_batchnorm_off(self):
        data = dataset("rgb", "3,12,12", 6, [0.2, 0.4, 0.6], [0.5, 0.25, 0.3])
        run = trained("all_nobn", os.path.join(HERE, "all_layers.cfg"), data,
                      *FEW, "--set", "model.batchnorm=off")
        net, _, _ = self.check(run)
        names = list(net.state_dict())
        # the layer before each batchnorm got a bias, in the residual branch too
        for name in ("conv1.bias", "res1.conv.bias", "fc1.bias"):
            self.assertIn(name, names)
        self.assertFalse(any(".running_mean" in n for n in names))

    def test_flat_model(self):
        data = dataset("flat", "64", 5, [0.5], [0.2])
        net, x, probs = self.check(trained("flat", os.path.join(HERE, "flat.cfg"), data))
        self.assertEqual(net.input_shape, (64,))
        self.assertIsInstance(net.bn1, torch.nn.BatchNorm1d)
        # (N, 64) or (N, 1, 8, 8): flattened either way
        self.assertLessEqual(float(np.abs(softmax(net, x.view(-1, 1, 8, 8)) - probs).max()), TOL)


class Structure(unittest.TestCase):
    def test_state_dict_is_regdist_model(self):
        data = dataset("gray", "1,28,28", 10, [0.3], [0.4])
        ckpt, _, _ = trained("rescnn", os.path.join(SRC, "launch/configs/rescnn.cfg"), data)
        net, _ = quiet_load(ckpt)
        with h5py.File(ckpt, "r") as f:
            names = list(f["model"])
            nbt = f["model/res2.bn1.num_batches_tracked"][()]
        self.assertEqual(list(net.state_dict()), names)  # same names, same order
        self.assertIn("res1.conv1.weight", names)
        self.assertEqual(int(net.res2.bn1.num_batches_tracked), int(nbt))
        self.assertEqual(net.res3.drop_path, float(np.float32(0.1)))  # model.drop_path's rule
        self.assertEqual(net.res2.drop_path, float(np.float32(0.05)))
        self.assertEqual(net.res1.drop_path, 0.0)

    def test_out_classes(self):
        # the head's width as a number and as "classes" (launch/config.c resolves the latter
        # from the data): the same module either way
        data = dataset("gray", "1,28,28", 10, [0.3], [0.4])
        ckpt, probs, (path, mean, std) = trained(
            "mlp", os.path.join(SRC, "launch/configs/mlp.cfg"), data)
        head = re.compile(r'(name = "head";\s*type = "linear";\s*out = )(\d+|"classes")')
        for out in ('"classes"', "10"):
            edited = edit_config(ckpt, "head-out.h5", lambda t: head.sub(r"\g<1>" + out, t),
                                 must_change=False)
            with h5py.File(edited, "r") as f:
                self.assertEqual(head.search(f.attrs["config"]).group(2), out)
            net, _ = quiet_load(edited, mean=mean, std=std)
            self.assertEqual(net.head.out_features, 10)
            self.assertLessEqual(float(np.abs(softmax(net, test_images(path)) - probs).max()),
                                 TOL)

    def test_train_mode_runs(self):
        data = dataset("rgb", "3,12,12", 6, [0.2, 0.4, 0.6], [0.5, 0.25, 0.3])
        ckpt, _, _ = trained("all_layers", os.path.join(HERE, "all_layers.cfg"), data)
        net, _ = quiet_load(ckpt)
        net.train()
        out = net(torch.rand(8, 3, 12, 12))
        out.sum().backward()
        self.assertEqual(tuple(out.shape), (8, 6))
        self.assertIsNotNone(net.fc1.weight.grad)


def edit_config(ckpt, name, edit, must_change=True):
    """A copy of ckpt whose config attribute is edit(text)."""
    dst = os.path.join(TMP, name)
    shutil.copyfile(ckpt, dst)
    with h5py.File(dst, "r+") as f:
        text = f.attrs["config"]
        text = text.decode() if isinstance(text, bytes) else text
        new = edit(text)
        assert new != text or not must_change, "the edit did not apply"
        f.attrs["config"] = new
    return dst


class Refusals(unittest.TestCase):
    def ckpt(self):
        data = dataset("gray", "1,28,28", 10, [0.3], [0.4])
        return trained("mlp", os.path.join(SRC, "launch/configs/mlp.cfg"), data)[0]

    def test_unsupported_type_named(self):
        bad = edit_config(self.ckpt(), "swish.h5",
                          lambda t: t.replace('type = "gelu";', 'type = "swish";', 1))
        with self.assertRaises(regdist_torch.BridgeError) as cm:
            quiet_load(bad)
        self.assertIn("type 'swish' is not supported", str(cm.exception))
        r = bridge_cli("info", bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn("layer act1: type 'swish' is not supported by the PyTorch bridge",
                      r.stderr)

    def test_unsupported_key_named(self):
        bad = edit_config(self.ckpt(), "groups.h5",
                          lambda t: t.replace('out = 256;', 'out = 256;\n      groups = 2;', 1))
        r = bridge_cli("info", bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn("layer fc1 (linear): key 'groups' is not supported", r.stderr)

    def test_name_clashing_with_module_attribute(self):
        bad = edit_config(self.ckpt(), "clash.h5",
                          lambda t: t.replace('name = "act1";', 'name = "train";', 1))
        r = bridge_cli("info", bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn("layer name 'train' clashes with an attribute of torch.nn.Module", r.stderr)

    def test_onnx_unwritable_exit_1(self):
        out = os.path.join(TMP, "no-such-dir", "m.onnx")
        r = bridge_cli("onnx", self.ckpt(), out)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn(f"cannot write {out}: No such file or directory", r.stderr)
        self.assertFalse(os.path.exists(os.path.dirname(out)))

    def test_config_syntax_error_names_line(self):
        bad = edit_config(self.ckpt(), "syntax.h5", lambda t: "model : { layers = ( { } ; \n")
        r = bridge_cli("info", bad)
        self.assertEqual(r.returncode, 2)
        self.assertIn("config line 1", r.stderr)

    def test_not_a_checkpoint(self):
        path, _, _ = dataset("gray", "1,28,28", 10, [0.3], [0.4])
        r = bridge_cli("info", path)
        self.assertEqual(r.returncode, 2)
        self.assertIn("not a regdist checkpoint", r.stderr)
        r = bridge_cli("info", os.path.join(TMP, "missing.h5"))
        self.assertEqual(r.returncode, 2)
        self.assertIn("cannot open as HDF5", r.stderr)

    def test_no_preprocessing_warns(self):
        bare = os.path.join(TMP, "bare.h5")
        shutil.copyfile(self.ckpt(), bare)
        with h5py.File(bare, "r+") as f:
            if "preprocessing" in f:
                del f["preprocessing"]
        r = bridge_cli("info", bare)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("has no /preprocessing group", r.stderr)
        self.assertIn("normalization: none", r.stdout)

    def test_input_shape_inferred(self):
        # neither model.input nor /preprocessing: the first layers say what they can
        bare = edit_config(self.ckpt(), "noinput.h5",
                           lambda t: re.sub(r"\binput = \[[^]]*\];", "", t), must_change=False)
        with h5py.File(bare, "r+") as f:
            self.assertNotIn("input =", f.attrs["config"])
            if "preprocessing" in f:
                del f["preprocessing"]
        net, err = quiet_load(bare, mean=[0.3], std=[0.4])
        self.assertIn("records no input shape", err)
        self.assertIsNone(net.input_shape)  # flatten, then fc1: only the size is known
        self.assertEqual(tuple(net(torch.rand(2, 1, 28, 28)).shape), (2, 10))
        out = os.path.join(TMP, "noinput.onnx")
        r = bridge_cli("onnx", bare, out)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--input-shape", r.stderr)
        self.assertFalse(os.path.exists(out))
        r = bridge_cli("onnx", bare, out, "--input-shape", "1,28,28")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertGreater(os.path.getsize(out), 0)


class Onnx(unittest.TestCase):
    def test_export(self):
        data = dataset("gray", "1,28,28", 10, [0.3], [0.4])
        ckpt, probs, (path, mean, std) = trained(
            "rescnn", os.path.join(SRC, "launch/configs/rescnn.cfg"), data)
        out = os.path.join(TMP, "rescnn.onnx")
        if os.path.exists(out):
            os.remove(out)
        args = [] if has_prep_norm(ckpt) else ["--mean", "0.3", "--std", "0.4"]
        r = bridge_cli("onnx", ckpt, out, *args)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("wrote", r.stdout)
        with open(out, "rb") as f:
            blob = f.read()
        self.assertGreater(len(blob), 4 * 480000)  # rescnn's float32 weights are in it
        # the graph's input and output names, the dynamic batch axis, a few operators
        # (BatchNorm is folded into the convolutions in eval mode)
        for name in (b"input", b"logits", b"batch", b"Conv", b"MaxPool", b"ReduceMean", b"Gemm"):
            self.assertTrue(name in blob, f"{name} is not in {out}")
        try:
            import onnxruntime
        except ImportError:
            print("  onnxruntime not installed: ONNX file checked by content only",
                  file=sys.stderr)
            return
        sess = onnxruntime.InferenceSession(out)
        logits = sess.run(None, {"input": test_images(path).numpy()})[0]
        e = np.exp(logits - logits.max(1, keepdims=True))
        self.assertLessEqual(float(np.abs(e / e.sum(1, keepdims=True) - probs).max()), 1e-4)


class ConfigParser(unittest.TestCase):
    def test_libconfig_forms(self):
        cfg = regdist_torch.parse_config(
            '# comment\n// another\n/* block\n comment */\n'
            'a : { i = 0x10; j = 5L; k = -3; f = 1e-05; g = .5; h = 2.; b = TRUE; '
            's = "x\\"y\\n" "z"; arr = [1, 2, 3]; lst = ( { n = 1; }, "q", [ 4 ] ); };\n'
            'top = false')
        a = cfg["a"]
        self.assertEqual((a["i"], a["j"], a["k"]), (16, 5, -3))
        self.assertEqual((a["f"], a["g"], a["h"]), (1e-05, 0.5, 2.0))
        self.assertIs(a["b"], True)
        self.assertIs(cfg["top"], False)
        self.assertEqual(a["s"], 'x"y\nz')
        self.assertEqual(a["arr"], [1, 2, 3])
        self.assertEqual(a["lst"], [{"n": 1}, "q", [4]])
        self.assertIsInstance(a["i"], int)
        self.assertIsInstance(a["h"], float)

    def test_errors_name_the_line(self):
        for text, msg in (("a = 1;\nb = ;", "config line 2"), ("a = { b = 1; ", "found the end"),
                          ("a = 1;\na = 2;", "'a' is set twice"), ("a = [ { } ];", "scalars"),
                          ('a = "\\q";', "unknown escape")):
            with self.assertRaises(regdist_torch.BridgeError) as cm:
                regdist_torch.parse_config(text)
            self.assertIn(msg, str(cm.exception))


class ModelSpecs(unittest.TestCase):
    """launch/config.c's rules, applied to the parsed text."""

    def specs(self, text):
        return regdist_torch.model_specs(regdist_torch.parse_config(text))

    def test_defaults_and_rewrites(self):
        specs = self.specs(
            'model = { batchnorm = "off"; drop_path = 0.2; layers = ('
            '{ name = "c"; type = "conv2d"; out = 4; kernel = 3; bias = false; },'
            '{ name = "b"; type = "batchnorm"; }, { name = "p"; type = "maxpool2d"; kernel = 2; },'
            '{ name = "r1"; type = "residual"; layers = ( { name = "c"; type = "conv2d"; out = 4;'
            ' kernel = 1; bias = false; }, { name = "b"; type = "batchnorm"; } ); },'
            '{ name = "r2"; type = "residual"; layers = ( { name = "d"; type = "dropout"; } ); },'
            '{ name = "r3"; type = "residual"; layers = ( { name = "d"; type = "dropout"; } ); }'
            '); };')
        self.assertEqual([s["name"] for s in specs], ["c", "p", "r1", "r2", "r3"])
        self.assertIs(specs[0]["bias"], True)                 # the batchnorm's shift
        self.assertEqual((specs[0]["stride"], specs[0]["padding"]), (0, 0))
        self.assertEqual([s["name"] for s in specs[2]["layers"]], ["c"])
        self.assertIs(specs[2]["layers"][0]["bias"], True)    # in the branch too
        self.assertEqual(specs[3]["layers"][0]["p"], 0.5)
        self.assertEqual([s["drop_path"] for s in specs[2:]],
                         [0.0, float(np.float32(0.1)), float(np.float32(0.2))])

    def test_bad_layers_named(self):
        for text, msg in (
                ('{ name = "c"; type = "conv2d"; out = 4; }', "layer c (conv2d) has no kernel"),
                ('{ name = "c"; type = "conv2d"; out = 4; kernel = 2.5; }',
                 "layer c (conv2d): kernel must be an integer"),
                ('{ name = "d"; type = "dropout"; p = "x"; }', "layer d (dropout): p must be"),
                ('{ name = "d"; type = "dropout"; out = 3; }',
                 "layer d (dropout): key 'out' is not supported"),
                ('{ name = "x"; type = "attention"; }', "type 'attention' is not supported")):
            with self.assertRaises(regdist_torch.BridgeError) as cm:
                self.specs("model = { layers = ( " + text + " ); };")
            self.assertIn(msg, str(cm.exception))


if __name__ == "__main__":
    shutil.rmtree(TMP, ignore_errors=True)
    os.makedirs(TMP)
    torch.set_num_threads(1)
    unittest.main(verbosity=2)
