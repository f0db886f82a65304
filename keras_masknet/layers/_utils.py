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


def _call_does_nothing_more(layer: Any, caller: Any) -> bool:
    """Whether `layer(...)`, from inside `caller.call`, would compute
    exactly what `layer.call(...)` computes.

    `Layer.__call__` converts the inputs to the layer's dtype, checks them,
    builds the layer, resolves `training`, enters an autocast scope, applies
    an activity regularizer, rematerialization, a distribution's output
    layout and (on PyTorch) module hooks. Inside `caller.call`, for a built
    sublayer of the caller's dtype policy, the inputs are converted and the
    scope entered already; the rest applies only where checked here.
    """
    if not layer.built or layer.activity_regularizer is not None:
        return False
    if getattr(layer, "_remat_mode", None) is not None:
        return False
    policy = layer.dtype_policy
    if getattr(policy, "quantization_mode", None):
        return False
    if policy.name != caller.dtype_policy.name:
        return False
    if not layer.autocast and layer.compute_dtype != layer.variable_dtype:
        return False  # a layer that keeps float32 under mixed precision
    if getattr(layer, "_forward_hooks", None) or getattr(
        layer, "_forward_pre_hooks", None
    ):
        return False  # PyTorch module hooks run in `__call__`
    return keras.distribution.distribution() is None


def call_sublayer(layer: Any, caller: Any, *args: Any, **kwargs: Any) -> Any:
    """`layer(*args, **kwargs)` for a sublayer, from inside `caller.call`.

    A Keras layer call costs about 100 microseconds of Python on eager
    PyTorch, more than a MaskBlock's products at serving batch sizes. Where
    `Layer.__call__` would do nothing but call `layer.call` (a built
    sublayer of the caller's dtype policy, with no activity regularizer,
    rematerialization, distribution or module hook), this calls
    `layer.call` directly: the same computation, the same numbers. Pass
    `training` explicitly: no call context resolves it here.
    """
    if _call_does_nothing_more(layer, caller):
        return layer.call(*args, **kwargs)
    return layer(*args, **kwargs)


def dense(layer: Any, x: Any, caller: Any) -> Any:
    """`layer(x)` for a built `keras.layers.Dense` without an activation,
    from inside `caller.call`, computed with the layer's own ops on its own
    variables (see `call_sublayer`). A Dense with LoRA or quantization
    enabled is called as a layer (its `call` handles them).
    """
    if getattr(layer, "lora_enabled", False) or not _call_does_nothing_more(
        layer, caller
    ):
        return layer(x)
    y = ops.matmul(x, layer.kernel)
    if layer.bias is not None:
        y = ops.add(y, layer.bias)
    return y
