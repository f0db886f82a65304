"""`model.export` to a TensorFlow SavedModel and to ONNX, from this backend.

The tests call the functions of `examples/export_and_serve.py` (the code the
docs show) on the session's backend. Where Keras cannot export from the
backend (a SavedModel from torch, ONNX with a dynamic batch from torch),
they check the error that docs/scaling.md documents, and the workaround.
"""

import importlib.util
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from tests.helpers import BACKEND
from tests.helpers import REPO
from tests.helpers import randomize
from tests.helpers import relative_error
from tests.helpers import to_numpy

pytestmark = pytest.mark.slow

#: Exported graphs reorder float32 sums (ONNX Runtime, XLA): about 1e-7.
EXPORT_TOL = 1e-5
NUM_FEATURES = 12


def _load_example():
    path = REPO / "examples" / "export_and_serve.py"
    spec = importlib.util.spec_from_file_location("export_and_serve", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


example = _load_example()


@pytest.fixture
def model():
    """The example's model with random weights and BatchNorm statistics."""
    model = example.build_model(NUM_FEATURES)
    randomize(model)
    return model


def _inputs(batch_size, seed=1):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(batch_size, NUM_FEATURES)).astype("float32")


def _predict(model, x):
    return to_numpy(model.predict(x, verbose=0))


@pytest.mark.skipif(
    BACKEND == "torch", reason="no SavedModel export from torch: see below"
)
def test_saved_model_serving_signature_predicts_like_keras(model, tmp_path):
    path = str(tmp_path / "saved_model")
    example.export_saved_model(model, path)
    assert os.path.isfile(os.path.join(path, "saved_model.pb"))
    # Any batch size: the signature's batch dimension is dynamic.
    for batch_size in (8, 3):
        x = _inputs(batch_size, seed=batch_size)
        got = example.serve_saved_model(path, x)
        assert got.shape == (batch_size, 1)
        assert relative_error(got, _predict(model, x)) <= EXPORT_TOL


@pytest.mark.skipif(
    BACKEND == "torch", reason="no dynamic batch from torch: see below"
)
def test_onnx_export_predicts_like_keras_with_any_batch(model, tmp_path):
    path = str(tmp_path / "model.onnx")
    example.export_onnx(model, path)
    for batch_size in (8, 3):
        x = _inputs(batch_size, seed=batch_size)
        got = example.serve_onnx(path, x)
        assert got.shape == (batch_size, 1)
        assert relative_error(got, _predict(model, x)) <= EXPORT_TOL


def test_onnx_export_with_a_fixed_batch_predicts_like_keras(model, tmp_path):
    # The one ONNX path on torch (TorchDynamo exporter); any backend takes it.
    path = str(tmp_path / "model.onnx")
    example.export_onnx(model, path, batch_size=8)
    x = _inputs(8)
    got = example.serve_onnx(path, x)
    assert got.shape == (8, 1)
    assert relative_error(got, _predict(model, x)) <= EXPORT_TOL


def test_onnx_export_without_a_signature_needs_a_called_model(model, tmp_path):
    # Why `export_onnx` passes a signature: Keras 3.15 refuses a model that
    # was never called directly, even a functional one.
    path = str(tmp_path / "model.onnx")
    with pytest.raises(ValueError, match="has never called"):
        model.export(path, format="onnx", verbose=False)
    if BACKEND == "jax":  # JAX's `predict` (and `fit`) do not count
        model.predict(_inputs(4), verbose=0)
        with pytest.raises(ValueError, match="has never called"):
            model.export(path, format="onnx", verbose=False)


@pytest.mark.skipif(BACKEND != "torch", reason="torch's export limits")
@pytest.mark.filterwarnings("ignore:You are using the legacy TorchScript")
@pytest.mark.filterwarnings("ignore:Converting a tensor to a Python")
@pytest.mark.filterwarnings("ignore:The feature will be removed")
def test_onnx_export_with_a_dynamic_batch_fails_on_torch(model, tmp_path):
    # With a `None` batch Keras takes torch's TorchScript exporter, which
    # cannot trace LayerNormalization's shape arithmetic.
    from torch.onnx.errors import SymbolicValueError

    with pytest.raises(SymbolicValueError, match="because it is not constant"):
        example.export_onnx(model, str(tmp_path / "model.onnx"))


@pytest.mark.skipif(BACKEND != "torch", reason="torch's export limits")
def test_saved_model_export_fails_on_torch(model, tmp_path):
    # Keras exports torch models through torch-xla, which has no build for
    # torch 2.13 (torch-xla 2.9.0's extension fails to load with it).
    signature = [
        keras.InputSpec(
            shape=(8, NUM_FEATURES), dtype="float32", name="features"
        )
    ]
    with pytest.raises(ImportError, match="requires the torch_xla module"):
        model.export(
            str(tmp_path / "fixed"),
            format="tf_saved_model",
            input_signature=signature,
            verbose=False,
        )
    # With the default (dynamic batch) signature, it fails before that.
    from torch._dynamo.exc import UserError

    with pytest.raises(UserError, match="structure of `inputs` and `dynamic"):
        example.export_saved_model(model, str(tmp_path / "dynamic"))


@pytest.mark.skipif(BACKEND != "torch", reason="the torch workaround")
def test_torch_model_serves_from_a_saved_model_exported_by_tensorflow(
    model, tmp_path, subprocess_env
):
    keras_file = tmp_path / "model.keras"
    model.save(keras_file)
    output = tmp_path / "exported"
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "export_and_serve.py"),
            "--keras-file",
            str(keras_file),
            "--output",
            str(output),
        ],
        cwd=tmp_path,
        env=dict(subprocess_env, KERAS_BACKEND="tensorflow"),
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr[-5000:]}"
    assert proc.returncode == 0, log
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["backend"] == "tensorflow", log
    # The artifacts serve what the torch model predicts.
    x = _inputs(5)
    want = _predict(model, x)
    got = example.serve_saved_model(str(output / "saved_model"), x)
    assert relative_error(got, want) <= EXPORT_TOL
    got = example.serve_onnx(str(output / "model.onnx"), x)
    assert relative_error(got, want) <= EXPORT_TOL
