"""Data parallelism with `tf.distribute.MirroredStrategy` on TensorFlow.

Trains a MaskNet click model with `model.fit` under a `MirroredStrategy`
(one model replica per device, gradients all-reduced every step), saves it
to a `.keras` file and reloads it outside the strategy. It prints one JSON
line: the replicas, the loss curve of the same training on one device
(same weights, same batches), and how far the reloaded model's predictions
are from the trained model's.

Without GPUs, TensorFlow can split the CPU into logical devices
(`--cpu-devices`, the default 2):

    python examples/distributed_tensorflow.py

On a machine with GPUs, pass `--cpu-devices 0`: the strategy then mirrors
the model on every visible GPU. The script forces the TensorFlow backend.
"""

import argparse
import json
import os
import tempfile
from typing import Any

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_masknet  # noqa: E402
from keras_masknet.datasets import make_click_data  # noqa: E402


def build_model(num_features: int) -> keras.Model:
    """A click model: features -> MaskNet -> Dense(1, sigmoid)."""
    inputs = keras.Input(shape=(num_features,), name="features")
    backbone = keras_masknet.MaskNet(
        mask_blocks=[
            {"output_size": 32, "aggregation_size": 64},
            {"output_size": 32, "aggregation_size": 64},
        ],
        # No BatchNorm here: each replica would normalize its own slice of
        # the batch, and the loss would differ from one device's.
        mlp={"layer_sizes": [32, 16]},
        use_parallel=True,
    )
    outputs = keras.layers.Dense(1, activation="sigmoid")(backbone(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="bce")
    return model


# --8<-- [start:devices]
def logical_cpu_devices(count: int) -> list[str]:
    """Split the CPU into `count` logical devices (before TF uses it)."""
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * count
    )
    return [device.name for device in tf.config.list_logical_devices("CPU")]


# --8<-- [end:devices]


# --8<-- [start:mirrored]
def fit_mirrored(
    devices: list[str] | None,
    x: np.ndarray,
    y: np.ndarray,
    initial_weights: list[np.ndarray],
    **fit_args: Any,
) -> tuple[tf.distribute.MirroredStrategy, keras.Model, list[float]]:
    """One replica per device; `fit` splits each batch across them and
    all-reduces the gradients. `devices=None`: every visible GPU."""
    strategy = tf.distribute.MirroredStrategy(devices)
    with strategy.scope():
        # Variables created here are mirrored on every replica.
        model = build_model(x.shape[1])
        model.set_weights(initial_weights)
    history = model.fit(x, y, **fit_args)
    return strategy, model, history.history["loss"]


def save_and_reload(model: keras.Model) -> keras.Model:
    """Save the trained model and load it back, outside the strategy."""
    path = os.path.join(tempfile.mkdtemp(), "masknet.keras")
    model.save(path)
    return keras.saving.load_model(path)


# --8<-- [end:mirrored]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=2,
        help="logical CPU devices to mirror on; 0 uses the GPUs",
    )
    args = parser.parse_args()
    devices = (
        logical_cpu_devices(args.cpu_devices) if args.cpu_devices else None
    )

    data = make_click_data(num_samples=args.samples, seed=0)
    keras.utils.set_random_seed(0)
    fit_args = dict(
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=False,  # the same batches in the same order in both runs
        verbose=0,
    )

    # One device: the reference run.
    model = build_model(data.x.shape[1])
    initial_weights = model.get_weights()
    single = model.fit(data.x, data.y, **fit_args).history["loss"]

    strategy, model, mirrored_loss = fit_mirrored(
        devices, data.x, data.y, initial_weights, **fit_args
    )
    reloaded = save_and_reload(model)

    predictions = model.predict(data.x, batch_size=512, verbose=0)
    reloaded_predictions = reloaded.predict(data.x, batch_size=512, verbose=0)
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "replicas": strategy.num_replicas_in_sync,
                "devices": list(strategy.extended.worker_devices),
                "mirrored_variables": sum(
                    isinstance(v.value, tf.distribute.DistributedValues)
                    for v in model.weights
                ),
                "weights": len(model.weights),
                "single_device_loss": single,
                "mirrored_loss": mirrored_loss,
                "reload_max_abs_diff": float(
                    np.max(np.abs(reloaded_predictions - predictions))
                ),
            }
        )
    )


if __name__ == "__main__":
    main()
