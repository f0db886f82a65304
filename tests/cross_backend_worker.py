"""Child process of test_cross_backend.py: save or load under one backend.

    python -m tests.cross_backend_worker save DIR   # writes DIR/<backend>/
    python -m tests.cross_backend_worker load DIR   # loads the others' files
    python -m tests.cross_backend_worker save-load DIR tensorflow jax

`save-load` saves, then loads; the backends named after DIR are the ones
whose files `load` reads (default: every other one in DIR). The backend is
the child's KERAS_BACKEND. Prints one JSON line.

Models are called directly, not through a compiled `predict`: the files,
not the compiler, are what is tested here.
"""

import json
import pathlib
import sys

import keras
import numpy as np

import keras_masknet

BACKEND = keras.backend.backend()
CONFIGS = {
    "parallel": {
        "mask_blocks": [
            {
                "output_size": 12,
                "reduction_factor": 0.5,
                "input_layer_norm": True,
            },
            {"output_size": 8, "aggregation_size": 16},
        ],
        "mlp": {
            "layer_sizes": [16, 4],
            "batch_norm": {"affine": True, "momentum": 0.1},
            "dropout": {"rate": 0.2},
            "final_layer_activation": True,
        },
        "use_parallel": True,
    },
    "serial": {
        "mask_blocks": [
            {"output_size": 10, "aggregation_size": 7},
            {
                "output_size": 6,
                "reduction_factor": 1.5,
                "input_layer_norm": True,
            },
        ],
        "mlp": {"layer_sizes": [5, 3], "batch_norm": {"affine": False}},
        "use_parallel": False,
    },
    # Every option of the paper and of the other implementations, on a
    # list of fields of different widths (the most involved input).
    "fields_every_option": {
        "mask_blocks": [
            {
                "output_size": 8,
                "reduction_factor": 2.0,
                "reduction_factor_base": "inputs",
                "output_activation": "relu",
                "use_hidden_bias": False,
                "dropout_rate": 0.2,
                "mask_projection_dim": 3,
            },
            {
                "output_size": 6,
                "aggregation_size": 5,
                "output_activation": "tanh",
                "input_layer_norm": True,
            },
        ],
        "mlp": {"layer_sizes": [6], "final_layer_activation": True},
        "use_parallel": True,
        "embedding_layer_norm": True,
        "normalize_mask_input": True,
    },
}
#: How each model takes the 20 input features: a 2-D tensor (absent), or a
#: list of fields of these widths.
INPUTS = {"fields_every_option": [4, 6, 10]}


def _inputs(name):
    if name not in INPUTS:
        return keras.Input((20,))
    return [keras.Input((width,)) for width in INPUTS[name]]


def _split(name, x):
    """The (batch, 20) features `x` in the structure model `name` takes."""
    if name not in INPUTS:
        return x
    return np.split(x, np.cumsum(INPUTS[name])[:-1], axis=-1)


def save(root: pathlib.Path) -> dict:
    out = root / BACKEND
    out.mkdir(parents=True)
    keras.utils.set_random_seed(0)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 20)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] > 0).astype("float32")
    for name, config in CONFIGS.items():
        inputs = _inputs(name)
        net = keras_masknet.MaskNet(**config)
        outputs = keras.layers.Dense(1, activation="sigmoid")(net(inputs))
        model = keras.Model(inputs, outputs)
        # Eager training is the quicker on TensorFlow and torch for these
        # few steps; on JAX, eager operations compile one by one.
        model.compile(
            "adam", "binary_crossentropy", run_eagerly=BACKEND != "jax"
        )
        # Train briefly so that BatchNorm statistics and weights move.
        model.fit(_split(name, x), y, epochs=2, batch_size=16, verbose=0)
        model.save(out / f"{name}.keras")
        np.save(out / f"{name}_x.npy", x)
        np.save(out / f"{name}_y.npy", _predict(model, _split(name, x)))
    return {"backend": BACKEND, "saved": sorted(CONFIGS)}


def _predict(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def load(root: pathlib.Path, sources=()) -> dict:
    errors = {}
    if not sources:
        sources = sorted(p.name for p in root.iterdir() if p.is_dir())
    for source in sources:
        if source == BACKEND:
            continue
        for name in CONFIGS:
            # compile=False: Keras does not carry an optimizer state saved
            # under torch to the other backends; the weights do carry.
            model = keras.saving.load_model(
                root / source / f"{name}.keras", compile=False, safe_mode=True
            )
            x = np.load(root / source / f"{name}_x.npy")
            want = np.load(root / source / f"{name}_y.npy")
            got = _predict(model, _split(name, x))
            errors[f"{source}->{BACKEND}/{name}"] = float(
                np.max(np.abs(got - want))
            )
    return {"backend": BACKEND, "errors": errors}


if __name__ == "__main__":
    mode, root, sources = sys.argv[1], pathlib.Path(sys.argv[2]), sys.argv[3:]
    assert mode in ("save", "load", "save-load"), mode
    result = {"backend": BACKEND, "errors": {}}
    if mode in ("save", "save-load"):
        result.update(save(root))
    if mode in ("load", "save-load"):
        result.update(load(root, sources))
    print(json.dumps(result))
