"""Save the release's `.keras` fixture, which every later version must load.

Run once per release, on the release commit, and commit both files:

    KERAS_BACKEND=jax .venv/bin/python tools/save_release_model.py

It writes `tests/saved_models/keras_masknet-<version>.keras`, a model that
holds every registered `keras_masknet` layer with random weights, and
`keras_masknet-<version>.npz` with inputs and the model's outputs on them
(`x`, `mask_input`, and `y_<output name>` for each output).
`tests/test_packaging.py` loads every such file, under every backend, and
checks that the outputs are unchanged: the deprecation policy in
docs/compatibility.md promises that files saved by one version load in the
next. A released file is never rewritten: the script refuses to overwrite
one unless `--force` is given (for a version that is not released yet).
"""

import argparse
import pathlib
import sys

import keras
import numpy as np

import keras_masknet

REPO = pathlib.Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "tests" / "saved_models"
NUM_FEATURES = 12
MASK_FEATURES = 7


def build_model() -> keras.Model:
    """A model with a parallel and a serial MaskNet, a MaskBlock and an MLP."""
    x = keras.Input((NUM_FEATURES,), name="features")
    m = keras.Input((MASK_FEATURES,), name="mask_features")
    parallel = keras_masknet.MaskNet(
        mask_blocks=[
            {"output_size": 6, "aggregation_size": 5},
            {"output_size": 4, "reduction_factor": 0.5},
        ],
        mlp={
            "layer_sizes": [8, 3],
            "batch_norm": {"affine": True, "momentum": 0.1},
            "dropout": {"rate": 0.2},
            "final_layer_activation": True,
        },
        use_parallel=True,
        name="parallel_masknet",
    )(x)
    serial = keras_masknet.MaskNet(
        mask_blocks=[
            {"output_size": 5, "reduction_factor": 1.5},
            {
                "output_size": 4,
                "aggregation_size": 3,
                "input_layer_norm": True,
            },
        ],
        name="serial_masknet",
    )(x)
    block = keras_masknet.MaskBlock(
        output_size=4,
        aggregation_size=6,
        input_layer_norm=True,
        kernel_regularizer="l2",
        name="mask_block",
    )(x, mask_input=m)
    head = keras_masknet.MLP(
        layer_sizes=[5, 2],
        batch_norm={"affine": False, "momentum": 0.3},
        name="mlp",
    )(keras.layers.Concatenate()([parallel, serial, block]))
    outputs = {
        "parallel": parallel,
        "serial": serial,
        "block": block,
        "head": head,
    }
    return keras.Model([x, m], outputs, name="keras_masknet_release")


def randomize(model: keras.Model, seed: int) -> None:
    """Random weights, so that a swapped or dropped weight changes outputs."""
    rng = np.random.default_rng(seed)
    for w in model.weights:
        shape = tuple(w.shape)
        if w.path.endswith("moving_variance"):
            value = rng.uniform(0.5, 1.5, size=shape)
        else:
            value = rng.normal(0.0, 0.4, size=shape)
            if w.path.endswith("gamma"):
                value += 1.0
        w.assign(value.astype("float32"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output-dir", type=pathlib.Path, default=OUT_DIR)
    parser.add_argument(
        "--force",
        action="store_true",
        help="overwrite this version's files (only before it is released)",
    )
    args = parser.parse_args(argv)
    stem = f"keras_masknet-{keras_masknet.__version__}"
    model_path = args.output_dir / f"{stem}.keras"
    data_path = args.output_dir / f"{stem}.npz"
    if model_path.exists() and not args.force:
        print(f"{model_path} exists; released files are never rewritten.")
        return 1
    keras.utils.set_random_seed(0)
    model = build_model()
    randomize(model, seed=0)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(16, NUM_FEATURES)).astype("float32")
    m = rng.normal(size=(16, MASK_FEATURES)).astype("float32")
    y = model([x, m], training=False)
    y = {f"y_{k}": keras.ops.convert_to_numpy(v) for k, v in y.items()}
    args.output_dir.mkdir(parents=True, exist_ok=True)
    model.save(model_path)
    np.savez(
        data_path,
        x=x,
        mask_input=m,
        **y,
        keras_version=keras.__version__,
        backend=keras.backend.backend(),
    )
    print(f"Saved {model_path} and {data_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
