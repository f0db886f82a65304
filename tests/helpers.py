"""Helpers shared by the tests."""

import os
import pathlib
import re

import keras
import numpy as np
import pytest

import keras_masknet

DATA = pathlib.Path(__file__).parent / "data"
REPO = pathlib.Path(__file__).parent.parent
BACKEND = keras.backend.backend()
#: `make test` runs the suite once per backend. A test whose subject does
#: not depend on the backend under test (a wheel, a docs build, an example
#: compared against other models, one that spawns every backend itself) runs
#: in one of those sessions only; KERAS_MASKNET_EVERY_SESSION=1 runs it in
#: every session.
EVERY_SESSION = os.environ.get("KERAS_MASKNET_EVERY_SESSION") == "1"


def in_one_session(backend: str, why: str):
    """Marks a test that runs in the `backend` session of `make test` only,
    because `why`."""
    return pytest.mark.skipif(
        BACKEND != backend and not EVERY_SESSION,
        reason=f"{why}: runs once, in the {backend} session",
    )


#: Parity tolerance of the issue: max|got - want| / max(1, max|want|).
PARITY_TOL = 2e-5


def relative_error(got, want) -> float:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got - want)) / max(1.0, np.max(np.abs(want))))


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)


def randomize(layer, seed=0):
    """Give every weight of a built layer random values, away from the
    initial ones, so that outputs depend on every weight: LayerNorm and
    BatchNorm scales around 1, moving variances positive."""
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        value = rng.normal(0, 0.5, size=w.shape)
        if w.path.endswith("moving_variance"):
            value = np.abs(value) + 0.5
        elif w.path.endswith("gamma"):
            value = value + 1.0
        w.assign(value.astype("float32"))


def paper_block(output_size, **options):
    """The paper's MaskBlock config: r = 2 of the masked layer, no hidden
    bias, a ReLU after the output LayerNorm; `options` override."""
    return {
        "output_size": output_size,
        "reduction_factor": 2.0,
        "reduction_factor_base": "inputs",
        "output_activation": "relu",
        "use_hidden_bias": False,
        **options,
    }


def random_fields(structure, dims, batch=16, seed=1):
    """Random MaskNet inputs of the field widths `dims`: one "2-D" array of
    their concatenation, a "3-D" array (equal widths) or a "list"."""
    rng = np.random.default_rng(seed)
    if structure == "2-D":
        return rng.normal(size=(batch, sum(dims))).astype("float32")
    if structure == "3-D":
        assert len(set(dims)) == 1
        return rng.normal(size=(batch, len(dims), dims[0])).astype("float32")
    return [rng.normal(size=(batch, d)).astype("float32") for d in dims]


def field_inputs(structure, dims):
    """The `keras.Input`s that `random_fields(structure, dims)` fits."""
    if structure == "2-D":
        return keras.Input((sum(dims),))
    if structure == "3-D":
        return keras.Input((len(dims), dims[0]))
    return [keras.Input((d,)) for d in dims]


def wrong_width_error(built, received):
    """The error for an input of another width than the one a layer was
    built for: the layer's own message, or Keras' InputSpec's, which comes
    first where the layer sets an InputSpec."""
    return (
        rf"(last axis {built}|expected axis -1 of input shape to have value "
        rf"{built}).*{re.escape(str(tuple(received)))}"
    )


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3])


def requires_keras(version: str, why: str):
    """Skip a test on Keras older than `version`, saying why. For tests that
    the oldest-Keras run (`make test-oldest`) cannot pass because Keras
    itself lacks something the test uses, not the layers."""
    return pytest.mark.skipif(
        _version(keras.version()) < _version(version),
        reason=f"needs Keras >= {version}: {why}",
    )


# --------------------------------------------- tests/numpy_paper.py weights


def _set(variable, value, assigned):
    value = np.asarray(value, "float32")
    assert tuple(variable.shape) == value.shape, (variable.path, value.shape)
    variable.assign(value)
    assigned.append(variable.path)


def _set_norm(norm, p, assigned):
    _set(norm.gamma, p["gamma"], assigned)
    _set(norm.beta, p["beta"], assigned)


def _assign_block(block, p, assigned):
    if p["ln_in"] is not None:
        _set_norm(block.input_norm, p["ln_in"], assigned)
    if p["P"] is not None:
        _set(block.mask_low_rank.kernel, p["P"], assigned)
    _set(block.mask_aggregation.kernel, p["W1"], assigned)
    _set(block.mask_aggregation.bias, p["b1"], assigned)
    _set(block.mask_projection.kernel, p["W2"], assigned)
    _set(block.mask_projection.bias, p["b2"], assigned)
    _set(block.hidden.kernel, p["W"], assigned)
    assert (block.hidden.bias is None) == (p["b"] is None)
    if p["b"] is not None:
        _set(block.hidden.bias, p["b"], assigned)
    _set_norm(block.output_norm, p["ln"], assigned)


def assign_paper_params(layer, params):
    """Copy `tests/numpy_paper.py` parameters into a built MaskNet or
    MaskBlock. Shapes must match, and every weight must receive one."""
    assigned = []
    if isinstance(layer, keras_masknet.MaskBlock):
        _assign_block(layer, params, assigned)
    else:
        if params["ln_emb"] is not None:
            assert len(layer.embedding_norms) == len(params["ln_emb"])
            for norm, p in zip(layer.embedding_norms, params["ln_emb"]):
                _set_norm(norm, p, assigned)
        else:
            assert layer.embedding_norms == []
        for block, p in zip(layer.mask_block_layers, params["blocks"]):
            _assign_block(block, p, assigned)
        if params["mlp"]:
            for dense, p in zip(layer.mlp_layer.dense_layers, params["mlp"]):
                _set(dense.kernel, p["W"], assigned)
                _set(dense.bias, p["b"], assigned)
    assert sorted(assigned) == sorted(w.path for w in layer.weights)


def seeded_initializer(seed=42):
    """A seeded GlorotUniform: what careful users pass for reproducibility."""
    return keras.initializers.GlorotUniform(seed=seed)


def kernels_of(layer):
    """The kernels of a built layer, by weight path, as NumPy arrays."""
    return {
        w.path: to_numpy(w) for w in layer.weights if w.path.endswith("kernel")
    }


def equal_kernel_pairs(kernels):
    """The pairs of paths in `kernels_of(...)` whose values are equal."""
    items = list(kernels.items())
    return [
        (a, b)
        for i, (a, x) in enumerate(items)
        for b, y in items[:i]
        if x.shape == y.shape and np.array_equal(x, y)
    ]


def assert_zero_width_is_refused(make, call, argument):
    """`call(layer, zero, x)` on a zero-width `argument` raises a ValueError
    naming the layer and the argument, before any weight is created; the
    layer then builds on a valid width with the right weights."""
    layer = make()
    zero = np.zeros((2, 0), "float32")
    x = np.ones((2, 5), "float32")
    with pytest.raises(ValueError) as error:
        call(layer, zero, x)
    message = str(error.value)
    assert f"'{layer.name}'" in message
    assert f"`{argument}` of positive width" in message
    assert f"{argument}.shape=(2, 0)" in message
    assert layer.weights == []
    layer(x)
    fresh = make()
    fresh(x)
    assert layer.count_params() == fresh.count_params()


def assert_symbolic_width_9_is_refused(layer):
    """A layer built for width 6 refuses a symbolic width-9 input while the
    functional model is built, not at predict, naming itself and both
    widths (Keras' input spec, or MaskNet's own check)."""
    with pytest.raises(ValueError) as error:
        layer(keras.Input((9,)))
    message = str(error.value).lower()
    # Keras quotes the name with ' (3.15) or " (3.1, the oldest supported).
    assert re.search(rf"layer ['\"]{layer.name}['\"]", message), message
    assert "to have value 6" in message or "last axis 6" in message
    assert "(none, 9)" in message


# ------------------------------------- tests/interruption_worker.py runs

#: The training worker of test_interruption.py and test_determinism.py.
INTERRUPTION_WORKER = "tests.interruption_worker"


def run_interruption_worker(args, env, timeout=600):
    """`python -m tests.interruption_worker ARGS` under `env` (its backend
    in KERAS_BACKEND); it must exit with 0. Returns its JSON line."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-m", INTERRUPTION_WORKER, *map(str, args)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def npz_arrays(path):
    """The arrays that `np.savez(path, *arrays)` wrote, in order."""
    with np.load(path) as f:
        return [f[f"arr_{i}"] for i in range(len(f.files))]


# ------------------------------------------- examples/, in one subprocess

#: Runs `main(argv)` of each (script, argv) of the JSON list given as the
#: argument, one after the other in this process, as `python script argv`
#: would, each run's output after a `=== run I` line and followed by a
#: `=== exit I STATUS` line. An
#: exception is printed, counts as status 1, and the next run goes on.
_RUN_MAINS = """
import json, os, runpy, sys, traceback
for i, (script, argv) in enumerate(json.loads(sys.argv[1])):
    print(f"=== run {i}", flush=True)
    # As `python SCRIPT ARGV...` has them: the script's folder first on the
    # path (mask_analysis.py imports model_quality.py beside it), its argv.
    sys.path.insert(0, os.path.dirname(script))
    sys.argv = [script, *argv]
    try:
        status = runpy.run_path(script, run_name="example")["main"](argv)
    except SystemExit as exit:
        status = exit.code if isinstance(exit.code, (int, type(None))) else 1
    except Exception:
        traceback.print_exc(file=sys.stdout)
        status = 1
    print(f"\\n=== exit {i} {status or 0}", flush=True)
"""
_RUN_OUTPUT = re.compile(
    r"^=== run (\d+)\n(.*?)^=== exit \1 (\S+)$", re.M | re.S
)


def run_examples(runs, cwd, env, timeout):
    """Runs the examples `runs`, a dict name -> (path of a script in
    examples/, argv, the file or folder it writes), in one child process:
    each as `main(argv)`, after the other, so that keras, the backend and
    what the scripts import (5 to 10 s each time on 2 cores) are imported
    once. Returns name -> (exit status, output, what it writes), and the
    child's stderr (its end). A failed run does not stop the next."""
    import json
    import subprocess
    import sys

    names = list(runs)
    result = subprocess.run(
        [sys.executable, "-c", _RUN_MAINS]
        + [json.dumps([[str(runs[n][0]), runs[n][1]] for n in names])],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    stderr = result.stderr[-5000:]
    log = f"stdout:\n{result.stdout}\nstderr:\n{stderr}"
    assert result.returncode == 0, log
    found = {
        names[int(i)]: (int(status), out, runs[names[int(i)]][2])
        for i, out, status in _RUN_OUTPUT.findall(result.stdout)
    }
    assert list(found) == names, log
    return found, stderr


def example_output(example_runs, name):
    """Of `run_examples`' result, run `name`'s output (it exited with 0,
    on this backend), what it wrote, and a log of its output and of the
    process's stderr."""
    runs, stderr = example_runs
    status, out, written = runs[name]
    log = f"{name}, stdout:\n{out}\nstderr (of every run):\n{stderr}"
    assert status == 0, log
    assert f"backend: {BACKEND}" in out, log
    return out, written, log


def selected_tests(request):
    """The selected tests (items) of the module of a module-scoped fixture's
    `request`."""
    return [item for item in request.session.items if item.path == request.path]
