"""Data and model parallelism with `keras.distribution` on JAX.

Trains one MaskNet click model three times from the same weights on the
same batches: on one device, with `keras.distribution.DataParallel` over all
devices, and with `keras.distribution.ModelParallel`, whose layout map
(`keras_masknet.distribution.mask_net_layout_map`) splits the MaskBlocks'
and MLP's kernels along the `model` axis of a `(batch, model)` device
mesh. It prints one JSON line: the three loss curves, how each kernel is
sharded, and how far the sharded model's predictions are from the
unsharded model's.

Without accelerators, XLA can split the CPU into virtual devices:

    XLA_FLAGS=--xla_force_host_platform_device_count=4 \\
        python examples/distributed_jax.py

On a machine with 4 (or 8) GPUs or TPU cores, run it without the flag: the
devices are the accelerators. The script forces the JAX backend.
"""

import argparse
import json
import os
from typing import Any

os.environ["KERAS_BACKEND"] = "jax"

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_masknet  # noqa: E402
from keras_masknet.datasets import make_click_data  # noqa: E402


# --8<-- [start:model]
def build_model(num_features: int) -> keras.Model:
    """A click model: features -> MaskNet -> Dense(1, sigmoid)."""
    inputs = keras.Input(shape=(num_features,), name="features")
    backbone = keras_masknet.MaskNet(
        mask_blocks=[
            {"output_size": 32, "aggregation_size": 64},
            {"output_size": 32, "aggregation_size": 64},
        ],
        # BatchNorm: under DataParallel, JAX computes its batch statistics
        # over the global batch, as on one device.
        mlp={"layer_sizes": [32, 16], "batch_norm": {"affine": True}},
        use_parallel=True,
    )
    outputs = keras.layers.Dense(1, activation="sigmoid")(backbone(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="bce")
    return model


# --8<-- [end:model]


# --8<-- [start:data_parallel]
def fit_data_parallel(
    x: np.ndarray,
    y: np.ndarray,
    initial_weights: list[np.ndarray],
    **fit_args: Any,
) -> tuple[keras.Model, list[float]]:
    """Data parallel: each device holds all the weights and a slice of
    every batch; the gradients are averaged over the global batch."""
    devices = keras.distribution.list_devices()  # GPUs, TPU cores or CPUs
    distribution = keras.distribution.DataParallel(devices=devices)
    with distribution.scope():
        model = build_model(x.shape[1])
        model.set_weights(initial_weights)
        history = model.fit(x, y, **fit_args)
    return model, history.history["loss"]


# --8<-- [end:data_parallel]


# --8<-- [start:model_parallel]
def fit_model_parallel(
    x: np.ndarray,
    y: np.ndarray,
    initial_weights: list[np.ndarray],
    model_parallel: int,
    **fit_args: Any,
) -> tuple[keras.Model, np.ndarray, list[float]]:
    """Model parallel on a (batch, model) mesh: the layout map splits the
    MaskBlocks' and the MLP's kernels along `model`, and the batches are
    split along `batch`."""
    devices = keras.distribution.list_devices()
    mesh = keras.distribution.DeviceMesh(
        shape=(len(devices) // model_parallel, model_parallel),
        axis_names=("batch", "model"),
        devices=devices,
    )
    layout_map = keras_masknet.distribution.mask_net_layout_map(
        mesh, model_axis="model"
    )
    distribution = keras.distribution.ModelParallel(
        layout_map=layout_map, batch_dim_name="batch"
    )
    with distribution.scope():
        model = build_model(x.shape[1])
        model.set_weights(initial_weights)
        predictions = model.predict(x, batch_size=512, verbose=0)
        history = model.fit(x, y, **fit_args)
    return model, predictions, history.history["loss"]


# --8<-- [end:model_parallel]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument(
        "--model-parallel",
        type=int,
        default=2,
        help="size of the mesh's model axis (it must divide the devices)",
    )
    args = parser.parse_args()

    data = make_click_data(num_samples=args.samples, seed=0)
    keras.utils.set_random_seed(0)
    fit_args = dict(
        batch_size=args.batch_size,
        epochs=args.epochs,
        shuffle=False,  # the same batches in the same order in every run
        verbose=0,
    )

    # One device: the reference run.
    model = build_model(data.x.shape[1])
    initial_weights = model.get_weights()
    single = model.fit(data.x, data.y, **fit_args).history["loss"]
    # Unsharded predictions of the initial weights, to compare with.
    model.set_weights(initial_weights)
    unsharded_predictions = model.predict(data.x, batch_size=512, verbose=0)

    _, data_parallel_loss = fit_data_parallel(
        data.x, data.y, initial_weights, **fit_args
    )
    model, predictions, model_parallel_loss = fit_model_parallel(
        data.x, data.y, initial_weights, args.model_parallel, **fit_args
    )
    devices = keras.distribution.list_devices()
    mesh = [len(devices) // args.model_parallel, args.model_parallel]

    # How each kernel ended up laid out: the partition spec and the shape
    # of the shards (and how many distinct shards the devices hold).
    kernels = {}
    for variable in model.weights:
        if not variable.path.endswith("kernel"):
            continue
        value = variable.value
        shards = value.addressable_shards
        kernels[variable.path] = {
            "shape": list(value.shape),
            "spec": [
                None if axis is None else str(axis)
                for axis in value.sharding.spec
            ],
            "shard_shape": list(shards[0].data.shape),
            "distinct_shards": len({str(shard.index) for shard in shards}),
            "devices": len(value.sharding.device_set),
        }
    print(
        json.dumps(
            {
                "backend": keras.backend.backend(),
                "devices": len(devices),
                "mesh": mesh,
                "single_device_loss": single,
                "data_parallel_loss": data_parallel_loss,
                "model_parallel_loss": model_parallel_loss,
                "prediction_max_abs_diff": float(
                    np.max(np.abs(predictions - unsharded_predictions))
                ),
                "kernels": kernels,
            }
        )
    )


if __name__ == "__main__":
    main()
