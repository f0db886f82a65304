"""Small helpers shared by the layers."""

from typing import Any


def clone(obj: Any) -> Any:
    """A fresh copy of an initializer or regularizer, so none is shared."""
    if obj is None:
        return None
    return obj.__class__.from_config(obj.get_config())
