"""Helpers shared by the tests."""

import pathlib

import keras
import numpy as np

DATA = pathlib.Path(__file__).parent / "data"
REPO = pathlib.Path(__file__).parent.parent
BACKEND = keras.backend.backend()
#: Parity tolerance of the issue: max|got - want| / max(1, max|want|).
PARITY_TOL = 2e-5


def relative_error(got, want) -> float:
    got = np.asarray(got, dtype=np.float64)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    return float(np.max(np.abs(got - want)) / max(1.0, np.max(np.abs(want))))


def to_numpy(x):
    return keras.ops.convert_to_numpy(x)
