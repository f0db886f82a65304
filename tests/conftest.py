"""Shared fixtures. The backend is fixed per process by KERAS_BACKEND."""

import os

# Before anything imports jax (through keras): XLA compiles every eager JAX
# operation anew for each new shape, and on 2 cores LLVM's optimizations
# are most of that time; the tests' arrays are tiny, so optimized code saves
# nothing. Level 0 cuts the JAX session by a third or more; numbers stay
# IEEE float32, within every test's tolerance. XLA_FLAGS that set a level
# are left alone. The examples run in child processes with the environment
# as it was, as a user runs them (`subprocess_env`); the tests' own worker
# processes get the flag too (`worker_env`).
_XLA_FLAGS = os.environ.get("XLA_FLAGS")
_TEST_XLA_FLAGS = _XLA_FLAGS or ""
if "xla_backend_optimization_level" not in _TEST_XLA_FLAGS:
    _TEST_XLA_FLAGS += " --xla_backend_optimization_level=0"
os.environ["XLA_FLAGS"] = _TEST_XLA_FLAGS.strip()

import json  # noqa: E402

import hypothesis  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from tests.helpers import DATA  # noqa: E402
from tests.helpers import REPO  # noqa: E402

if keras.backend.backend() == "jax":
    # XLA reads XLA_FLAGS once, when it first compiles: do that now.
    keras.ops.convert_to_numpy(keras.ops.add(keras.ops.ones(1), 1))
if _XLA_FLAGS is None:
    os.environ.pop("XLA_FLAGS", None)
else:
    os.environ["XLA_FLAGS"] = _XLA_FLAGS

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


@pytest.fixture(scope="session")
def subprocess_env():
    """Environment for child Python processes that import keras_masknet."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


@pytest.fixture(scope="session")
def worker_env(subprocess_env):
    """`subprocess_env` for the tests' own worker processes (not the
    examples): with this process's quicker XLA flags."""
    return dict(subprocess_env, XLA_FLAGS=_TEST_XLA_FLAGS.strip())
