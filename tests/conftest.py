"""Shared fixtures. The backend is fixed per process by KERAS_BACKEND."""

import os

# Before anything imports jax (through keras): XLA compiles every eager JAX
# operation anew for each new shape (some 4,000 compilations in the JAX
# session, 20 to 30 ms each on 2 cores); the tests' arrays are tiny, so
# optimized code saves nothing. LLVM's optimization level 0 and, in the
# XLA:CPU of jaxlib 0.8 and later, its older loop emitters instead of the
# fusion emitters (half the compile time of a small computation) cut the
# JAX session by half; numbers stay IEEE float32, within every test's
# tolerance. XLA_FLAGS that already set either are left alone; child
# processes get the same flags (`subprocess_env`).
_XLA_FLAGS = os.environ.get("XLA_FLAGS")
_TEST_XLA_FLAGS = _XLA_FLAGS or ""
if "xla_backend_optimization_level" not in _TEST_XLA_FLAGS:
    _TEST_XLA_FLAGS += " --xla_backend_optimization_level=0"


def _jaxlib_at_least(major: int, minor: int) -> bool:
    from importlib import metadata

    try:
        version = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return False
    parts = [int(p) for p in version.split(".")[:2] if p.isdigit()]
    return tuple(parts) >= (major, minor)


# An XLA that does not know a flag aborts the process: older jaxlibs (the
# oldest-Keras venv's 0.4.25) do not get this one.
if "xla_cpu_use_fusion_emitters" not in _TEST_XLA_FLAGS and _jaxlib_at_least(
    0, 8
):
    _TEST_XLA_FLAGS += " --xla_cpu_use_fusion_emitters=false"
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

# `make test` runs 2 xdist processes on 2 cores. PyTorch's default of one
# thread per core in each (the reference runs in every session) makes its
# OpenMP threads wait for each other: with an equal share of the cores per
# process the torch session takes a third less time. Child processes get
# the same share (`subprocess_env`).
_WORKERS = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
_THREADS = max(1, (os.cpu_count() or 1) // _WORKERS)
try:
    import torch  # noqa: E402
except ImportError:  # pragma: no cover - torch is in every test venv
    torch = None
if torch is not None and "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(_THREADS)

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


#: Test files in the order their tests run, the slowest first (on any
#: backend; the others follow in name order). With `make test`'s 2 xdist
#: processes a file stays on one process: long files last would leave the
#: other process idle at the end (the Makefile keeps xdist to this order).
SLOWEST_FIRST = (
    "test_quality_examples.py",
    "test_examples.py",
    "test_docs_site.py",
    "test_mask_net.py",
    "test_cross_backend.py",
    "test_interruption.py",
    "test_docstrings.py",
    "test_numerics.py",
    "test_properties.py",
    "test_reference.py",
    "test_determinism.py",
    "test_packaging.py",
    "test_mask_block.py",
    "test_distribution.py",
    "test_files.py",
    "test_export.py",
)


def pytest_collection_modifyitems(items):
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}

    def key(item):
        name = item.path.name
        return rank.get(name, len(rank)), name

    items.sort(key=key)  # stable: a file's tests keep their order


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
    """Environment for child Python processes that import keras_masknet
    (the examples, the tests' own workers): this process's XLA flags and
    share of the cores."""
    env = dict(os.environ)
    # The share of the cores of this test process (see `_THREADS`): a child
    # PyTorch with a thread per core, beside the other test process, runs
    # its example twice as long.
    env.setdefault("OMP_NUM_THREADS", str(_THREADS))
    env["XLA_FLAGS"] = _TEST_XLA_FLAGS.strip()
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env
