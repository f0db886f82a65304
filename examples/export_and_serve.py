"""Export a MaskNet model for serving: TensorFlow SavedModel and ONNX.

Trains a small MaskNet click model, exports it with `model.export` to a
TensorFlow SavedModel (what TensorFlow Serving loads) and to ONNX (what ONNX
Runtime loads), reloads each artifact without Keras or keras_masknet, and
checks that it predicts what the Keras model predicts. It prints one JSON
line with the largest differences.

    KERAS_BACKEND=jax python examples/export_and_serve.py

What each backend can export (Keras 3.15):

- TensorFlow and JAX: both formats, with a dynamic batch size.
- PyTorch: ONNX with a fixed batch size only (`batch_size`); no SavedModel
  (Keras needs torch-xla for it, which has no build for this torch). Save
  a `.keras` file and export it from a TensorFlow or JAX process instead.

`tests/test_export.py` runs these functions on every backend.
"""

import argparse
import json
import os
import tempfile

import keras
import numpy as np

import keras_masknet
from keras_masknet.datasets import make_click_data


def build_model(num_features: int) -> keras.Model:
    """A click model: features -> MaskNet -> Dense(1, sigmoid)."""
    inputs = keras.Input(shape=(num_features,), name="features")
    backbone = keras_masknet.MaskNet(
        mask_blocks=[
            {"output_size": 16, "aggregation_size": 32},
            {"output_size": 16, "reduction_factor": 1.0},
        ],
        mlp={"layer_sizes": [16, 8], "batch_norm": {"affine": True}},
        use_parallel=True,
    )
    outputs = keras.layers.Dense(1, activation="sigmoid")(backbone(inputs))
    return keras.Model(inputs, outputs)


# --8<-- [start:saved_model]
def export_saved_model(model: keras.Model, path: str) -> None:
    """Write a TensorFlow SavedModel with a `serving_default` signature."""
    # The signature takes the model's inputs by name (`features`), with a
    # dynamic batch size, and returns {"output_0": predictions}.
    model.export(path, format="tf_saved_model", verbose=False)


def serve_saved_model(path: str, x: np.ndarray) -> np.ndarray:
    """Predict with the SavedModel as TensorFlow Serving would."""
    import tensorflow as tf

    serving_fn = tf.saved_model.load(path).signatures["serving_default"]
    return serving_fn(features=tf.constant(x))["output_0"].numpy()


# --8<-- [end:saved_model]


# --8<-- [start:onnx]
def export_onnx(
    model: keras.Model, path: str, batch_size: int | None = None
) -> None:
    """Write an ONNX model; `batch_size` fixes the batch (needed on torch)."""
    # An explicit signature: without one, Keras reads it from the model's
    # first call, and refuses a model never called (on JAX, even after
    # `fit` and `predict`, which do not call it directly).
    shape = (batch_size, *model.inputs[0].shape[1:])  # None: any batch
    input_signature = [
        keras.InputSpec(shape=shape, dtype="float32", name="features")
    ]
    model.export(
        path, format="onnx", input_signature=input_signature, verbose=False
    )


def serve_onnx(path: str, x: np.ndarray) -> np.ndarray:
    """Predict with ONNX Runtime."""
    import onnxruntime

    session = onnxruntime.InferenceSession(
        path, providers=["CPUExecutionProvider"]
    )
    (output,) = session.run(None, {"features": x})
    return output


# --8<-- [end:onnx]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument(
        "--keras-file",
        help="export this saved .keras model instead of training one",
    )
    parser.add_argument(
        "--output", help="folder for saved_model/ and model.onnx"
    )
    args = parser.parse_args()

    if args.keras_file:
        # e.g. a model trained on torch, exported from a TensorFlow process:
        # KERAS_BACKEND=tensorflow python examples/export_and_serve.py \
        #     --keras-file model.keras --output exported/
        model = keras.saving.load_model(args.keras_file)
        rng = np.random.default_rng(0)
        x = rng.normal(size=(64, model.inputs[0].shape[1])).astype("float32")
    else:
        data = make_click_data(num_samples=args.samples, seed=0)
        keras.utils.set_random_seed(0)
        model = build_model(data.x.shape[1])
        model.compile(optimizer="adam", loss="bce")
        model.fit(data.x, data.y, batch_size=256, epochs=args.epochs, verbose=0)
        x = data.x[:64]
    want = keras.ops.convert_to_numpy(model.predict(x, verbose=0))

    backend = keras.backend.backend()
    root = args.output or tempfile.mkdtemp()
    result = {"backend": backend}
    if backend != "torch":
        export_saved_model(model, os.path.join(root, "saved_model"))
        got = serve_saved_model(os.path.join(root, "saved_model"), x)
        result["saved_model_max_abs_diff"] = float(np.max(np.abs(got - want)))
    batch_size = len(x) if backend == "torch" else None
    export_onnx(model, os.path.join(root, "model.onnx"), batch_size)
    got = serve_onnx(os.path.join(root, "model.onnx"), x)
    result["onnx_max_abs_diff"] = float(np.max(np.abs(got - want)))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
