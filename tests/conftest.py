"""Shared fixtures. The backend is fixed per process by KERAS_BACKEND."""

import json
import os

import keras
import numpy as np
import pytest

from tests.helpers import DATA
from tests.helpers import REPO


@pytest.fixture(scope="session")
def golden():
    with open(DATA / "reference_cases.json") as f:
        cases = json.load(f)
    arrays = np.load(DATA / "reference_cases.npz")
    return cases, {k: arrays[k] for k in arrays.files}


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    """Every test starts in float32 with a fixed seed, and leaves it so."""
    keras.config.set_dtype_policy("float32")
    keras.utils.set_random_seed(1234)
    yield
    keras.config.set_dtype_policy("float32")


@pytest.fixture
def subprocess_env():
    """Environment for child Python processes that import keras_masknet."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env
