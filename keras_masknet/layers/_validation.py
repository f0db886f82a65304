"""Argument checks shared by the layers.

Every check raises a `ValueError` or `TypeError` whose message names the
argument and the value received, in the Keras style. The layers call these
in `__init__` and at the top of `build`, before any weight exists.
"""

import math
import numbers
from collections.abc import Callable
from collections.abc import Mapping
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np


def _is_bool(value: Any) -> bool:
    return isinstance(value, (bool, np.bool_))


def _is_int(value: Any) -> bool:
    """A Python or NumPy integer, not a bool."""
    return isinstance(value, numbers.Integral) and not _is_bool(value)


def _is_real(value: Any) -> bool:
    """A Python or NumPy integer or float, not a bool."""
    return isinstance(value, numbers.Real) and not _is_bool(value)


def check_positive_int(name: str, value: Any) -> int:
    """Return `value` as an `int` if it is a positive integer, else raise.

    Python and NumPy integers pass (a config from a sweep or an array holds
    NumPy ones); a `bool` does not.
    """
    if not _is_int(value):
        raise TypeError(
            f"`{name}` must be a positive integer. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value!r}"
        )
    return int(value)


def check_optional_positive_int(name: str, value: Any) -> int | None:
    """Like `check_positive_int`, but `None` passes through."""
    if value is None:
        return None
    return check_positive_int(name, value)


def check_positive_number(name: str, value: Any) -> float:
    """Return `value` as a float if it is a finite number > 0, else raise."""
    if not _is_real(value):
        raise TypeError(
            f"`{name}` must be a positive finite number. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if not math.isfinite(value) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive finite number. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """Return `value` as a `bool` if it is a Python or NumPy bool."""
    if not _is_bool(value):
        raise TypeError(
            f"`{name}` must be a bool. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    return bool(value)


def check_rate(name: str, value: Any) -> float:
    """Return `value` as a float if it is a number in [0, 1), else raise."""
    if not _is_real(value):
        raise TypeError(
            f"`{name}` must be a number in [0, 1). "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if not (0.0 <= value < 1.0):
        raise ValueError(
            f"`{name}` must be a number in [0, 1). Received: {name}={value!r}"
        )
    return float(value)


def check_mapping(
    name: str, value: Any, allowed: Sequence[str]
) -> dict[str, Any]:
    """Return `value` as a dict if it is a mapping with only `allowed` keys."""
    if not isinstance(value, Mapping):
        raise TypeError(
            f"`{name}` must be a mapping (dict). "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    unknown = [key for key in value if key not in allowed]
    if unknown:
        raise ValueError(
            f"`{name}` has unknown key(s) {sorted(map(str, unknown))}; "
            f"allowed keys are {list(allowed)}. "
            f"Received: {name}={dict(value)!r}"
        )
    return dict(value)


def check_rank2_shape(
    name: str, value: Any, layer_name: str
) -> tuple[Any, ...]:
    """Check a build/call shape is `(batch, features)` with known features."""
    shape: tuple[Any, ...] = tuple(value)
    if len(shape) != 2:
        raise ValueError(
            f"Layer '{layer_name}' expects `{name}` of rank 2 "
            f"(batch, features). Received: {name}.shape={shape}"
        )
    if shape[-1] is None:
        raise ValueError(
            f"Layer '{layer_name}' needs the last axis of `{name}` to be "
            f"known. Received: {name}.shape={shape}"
        )
    if shape[-1] == 0:
        raise ValueError(
            f"Layer '{layer_name}' needs `{name}` of positive width (a "
            f"zero-width `{name}` has no features). "
            f"Received: {name}.shape={shape}"
        )
    return shape


def check_choice(name: str, value: Any, choices: Sequence[str]) -> str:
    """Return `value` if it is one of the strings `choices`, else raise."""
    if not isinstance(value, str):
        raise TypeError(
            f"`{name}` must be one of {list(choices)}. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if value not in choices:
        raise ValueError(
            f"`{name}` must be one of {list(choices)}. "
            f"Received: {name}={value!r}"
        )
    return value


def _check_keras_object(name: str, value: Any, example: str, what: str) -> Any:
    if isinstance(value, bool):
        raise TypeError(
            f"`{name}` must be a Keras {what} (a name such as {example!r}, a "
            f"config dict or an instance). Received: {name}={value!r}"
        )
    try:
        return getattr(keras, f"{what}s").get(value)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"`{name}` must be a Keras {what} (a name such as {example!r}, a "
            f"config dict or an instance). Received: {name}={value!r}. "
            f"Keras says: {error}"
        ) from error


def check_initializer(name: str, value: Any) -> Any:
    """Return the Keras initializer for `value`, else raise naming `name`."""
    return _check_keras_object(name, value, "glorot_uniform", "initializer")


def check_regularizer(name: str, value: Any) -> Any:
    """Return the Keras regularizer for `value` (`None`: none), else raise."""
    return _check_keras_object(name, value, "l2", "regularizer")


def check_activation(name: str, value: Any) -> Callable[..., Any]:
    """Return the Keras activation function for `value` (`None`: linear)."""
    if isinstance(value, bool):
        raise TypeError(
            f"`{name}` must be a Keras activation (a name such as 'relu', "
            f"a callable, or None). Received: {name}={value!r}"
        )
    try:
        activation: Callable[..., Any] = keras.activations.get(value)
        return activation
    except (ValueError, TypeError) as error:
        # Keras' own message says how to register a custom function (the
        # usual cause when a saved file does not load): keep it.
        raise ValueError(
            f"`{name}` must be a Keras activation (a name such as 'relu', "
            f"a callable, or None). Received: {name}={value!r}. "
            f"Keras says: {error}"
        ) from error
