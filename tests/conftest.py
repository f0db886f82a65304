"""Shared fixtures. The backend is fixed per process by KERAS_BACKEND."""

import json
import os

import hypothesis
import keras
import numpy as np
import pytest

from tests.helpers import DATA
from tests.helpers import REPO

# Hypothesis profiles (tests/test_properties.py): "ci", the default, keeps
# `make test` short; KERAS_MASKNET_HYPOTHESIS_PROFILE=thorough runs 20 times
# as many examples. Examples build and train layers: no deadline.
hypothesis.settings.register_profile(
    "ci",
    max_examples=10,
    deadline=None,
    print_blob=True,
    suppress_health_check=[hypothesis.HealthCheck.too_slow],
)
hypothesis.settings.register_profile(
    "thorough",
    parent=hypothesis.settings.get_profile("ci"),
    max_examples=200,
)
hypothesis.settings.load_profile(
    os.environ.get("KERAS_MASKNET_HYPOTHESIS_PROFILE", "ci")
)


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
