"""Small helpers shared by the layers."""

import zlib
from typing import Any

import keras
from keras import ops


def clone(obj: Any) -> Any:
    """A fresh copy of a regularizer (or any Keras object with a config)."""
    if obj is None:
        return None
    return obj.__class__.from_config(obj.get_config())


def derive_initializer(initializer: Any, salt: str) -> Any:
    """A copy of `initializer` for one weight, told apart by `salt`.

    A Keras initializer seeded with an integer draws the same values on
    every call, and so does a copy of it: one seeded initializer shared by
    several weights of one shape would make them equal. The copy for each
    weight is therefore seeded with a number derived from the user's seed
    and `salt` (the weight's path inside the layer), so the weights differ
    from each other and are the same for the same seed, config and names.
    An unseeded initializer gets a fresh random seed when copied (Keras
    draws one from the global seed, `keras.utils.set_random_seed`). A
    `keras.random.SeedGenerator` seed advances with each draw: that
    initializer is shared, not copied.
    """
    config = initializer.get_config()
    seed = config.get("seed")
    if isinstance(seed, int) and not isinstance(seed, bool):
        digest = zlib.crc32(f"{seed}/{salt}".encode("utf-8"))
        config["seed"] = digest & 0x7FFFFFFF
    elif isinstance(
        getattr(initializer, "seed", None), keras.random.SeedGenerator
    ):
        return initializer
    return initializer.__class__.from_config(config)


def relu(x: Any) -> Any:
    """`max(x, 0)` that keeps NaN (and its gradient at 0 is 0, as ReLU's).

    On TensorFlow, oneDNN fuses a dense product followed by `relu` into one
    kernel that turns NaN into 0 on CPUs with AVX-512, so a NaN input row
    would come out as a plausible score. `where(x <= 0, 0, x)` is not fused
    and keeps NaN (`NaN <= 0` is false). The other backends' `relu` keeps
    NaN already.
    """
    if keras.backend.backend() == "tensorflow":
        return ops.where(x <= 0, ops.zeros_like(x), x)
    return ops.relu(x)


def serialize_activation(activation: Any) -> Any:
    """An activation's config entry: `None` for none (Keras' linear)."""
    if activation is keras.activations.linear:
        return None
    return keras.activations.serialize(activation)


def dense(layer: Any, x: Any) -> Any:
    """`layer(x)` for a built `keras.layers.Dense` without an activation,
    computed with the layer's own ops on its own variables.

    A Keras layer call costs tens of microseconds of Python on eager
    backends (PyTorch above all), more than the product itself at serving
    batch sizes; the calling layer has already converted the input and
    entered the autocast scope of the same dtype policy, so the numbers are
    those of `layer(x)`. A Dense with LoRA or quantization enabled is
    called as a layer (its `call` handles them).
    """
    if getattr(layer, "lora_enabled", False) or getattr(
        layer, "quantization_mode", None
    ):
        return layer(x)
    y = ops.matmul(x, layer.kernel)
    if layer.bias is not None:
        y = ops.add(y, layer.bias)
    return y
