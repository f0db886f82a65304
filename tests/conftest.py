"""Shared fixtures. The backend is fixed per process by KERAS_BACKEND.

With `make test`'s pytest-xdist the first process only hands the tests to
its workers: it does not import keras and the backends (5 to 7 s each time,
before the workers start); each worker, and a run without xdist, sets them up
in `pytest_configure`, before the test modules are imported.
"""

import json
import os
import pathlib

import pytest

TESTS = pathlib.Path(__file__).parent
#: XLA_FLAGS as given, and as the tests run with (see `_set_up_backend`).
_XLA_FLAGS = os.environ.get("XLA_FLAGS")
_TEST_XLA_FLAGS = ""
#: PyTorch threads of each test process (see `_set_up_backend`).
_THREADS = 1


def _jaxlib_at_least(major: int, minor: int) -> bool:
    from importlib import metadata

    try:
        version = metadata.version("jaxlib")
    except metadata.PackageNotFoundError:
        return False
    parts = [int(p) for p in version.split(".")[:2] if p.isdigit()]
    return tuple(parts) >= (major, minor)


def _runs_no_test(config) -> bool:
    """Whether this is pytest-xdist's controller, which collects and runs
    nothing itself (the same test as xdist's own `_is_distribution_mode`;
    a worker runs with `dist` "no")."""
    if hasattr(config, "workerinput") or config.getoption("collectonly"):
        return False
    dist = config.getoption("dist", default="no")
    return dist != "no" and bool(config.getoption("tx", default=None))


def _set_up_backend() -> None:
    global _TEST_XLA_FLAGS, _THREADS
    # Before anything compiles with jax (through keras): XLA compiles every
    # eager JAX operation anew for each new shape (some 4,000 compilations
    # in the JAX session, 20 to 30 ms each on 2 cores); the tests' arrays
    # are tiny, so optimized code saves nothing. LLVM's optimization level 0
    # and, in the XLA:CPU of jaxlib 0.8 and later, its older loop emitters
    # instead of the fusion emitters (half the compile time of a small
    # computation) cut the JAX session by half; numbers stay IEEE float32,
    # within every test's tolerance. XLA_FLAGS that already set either are
    # left alone; child processes get the same flags (`subprocess_env`).
    flags = _XLA_FLAGS or ""
    if "xla_backend_optimization_level" not in flags:
        flags += " --xla_backend_optimization_level=0"
    # An XLA that does not know a flag aborts the process: older jaxlibs
    # (the oldest-Keras venv's 0.4.25) do not get this one.
    if "xla_cpu_use_fusion_emitters" not in flags and _jaxlib_at_least(0, 8):
        flags += " --xla_cpu_use_fusion_emitters=false"
    _TEST_XLA_FLAGS = flags.strip()
    os.environ["XLA_FLAGS"] = _TEST_XLA_FLAGS

    import hypothesis
    import keras

    if keras.backend.backend() == "jax":
        # XLA reads XLA_FLAGS once, when it first compiles: do that now.
        keras.ops.convert_to_numpy(keras.ops.add(keras.ops.ones(1), 1))
    if _XLA_FLAGS is None:
        os.environ.pop("XLA_FLAGS", None)
    else:
        os.environ["XLA_FLAGS"] = _XLA_FLAGS

    # `make test` runs 2 xdist processes on 2 cores. PyTorch's default of
    # one thread per core in each (the reference runs in every session)
    # makes its OpenMP threads wait for each other: with an equal share of
    # the cores per process the torch session takes a third less time.
    # Child processes get the same share (`subprocess_env`).
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    _THREADS = max(1, (os.cpu_count() or 1) // workers)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is in every test venv
        torch = None
    if torch is not None and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(_THREADS)

    # Hypothesis profiles (tests/test_properties.py): "ci", the default,
    # keeps `make test` short; KERAS_MASKNET_HYPOTHESIS_PROFILE=thorough runs
    # 20 times as many examples. Examples build and train layers: no
    # deadline.
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


def _share_jax_compilations(config) -> None:
    """One JAX compilation cache for every process of this run, in a
    temporary folder that the run removes at its end.

    Eager JAX compiles each operation for its shapes (above); both xdist
    processes and the subprocesses that the tests start (examples, the
    interruption and determinism workers, the other backends' processes of
    the cross-backend test) compile many of the same small programs, and a
    worker's jitted training step is the same in each process. Sharing them
    cut the JAX session's CPU time by a sixth (352 s to 291 s on 2 cores).
    Each entry is keyed by its program, the jaxlib version and the XLA
    flags, as JAX's own persistent cache always is. Set in the first
    process, before anything imports JAX: xdist's processes and every
    subprocess inherit the environment. A cache the user set is left as
    it is."""
    if "JAX_COMPILATION_CACHE_DIR" in os.environ:
        return  # the user's, or this run's first process's
    import shutil
    import tempfile

    path = tempfile.mkdtemp(prefix="keras-masknet-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = path
    # Every compilation, however quick or small: the tests' are tiny.
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
    config.add_cleanup(lambda: shutil.rmtree(path, ignore_errors=True))


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    _share_jax_compilations(config)
    if not _runs_no_test(config):
        _set_up_backend()
    # At its end pytest collects garbage 5 times over, to report exceptions
    # raised in `__del__` (constant "determined experimentally by the Trio
    # project"): 1 to 2 s each in a process that holds a session's layers
    # and compiled functions, the last seconds of each session. Once finds
    # them on CPython (its collector frees every unreachable cycle at once).
    try:
        from _pytest.unraisableexception import gc_collect_iterations_key
    except ImportError:  # pragma: no cover - another pytest: its default
        return
    config.stash[gc_collect_iterations_key] = 1


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
    import numpy as np

    from tests.helpers import DATA

    with open(DATA / "reference_cases.json") as f:
        cases = json.load(f)
    arrays = np.load(DATA / "reference_cases.npz")
    return cases, {k: arrays[k] for k in arrays.files}


@pytest.fixture(autouse=True)
def _float32_policy_and_seed():
    """Every test starts in float32 with a fixed seed, and leaves it so."""
    import keras

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
    env["XLA_FLAGS"] = _TEST_XLA_FLAGS
    env["PYTHONPATH"] = (
        str(TESTS.parent) + os.pathsep + env.get("PYTHONPATH", "")
    )
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    return env


@pytest.fixture(scope="session")
def uninterrupted_training(tmp_path_factory, subprocess_env):
    """`python -m tests.interruption_worker full DIR` on this backend, with
    the worker's own seed, in a fresh process: (its JSON line, DIR). The
    reference of test_interruption.py's interrupted run and the first of
    test_determinism.py's two runs: trained once per session, and shared by
    its pytest-xdist processes (whichever asks first trains it, under a
    lock, in a folder of this run that they share)."""
    import fcntl

    import keras

    from tests.helpers import run_interruption_worker

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # this run's folder, above each process's own
    directory = base / "uninterrupted_training"
    result_file = directory / "result.json"
    with open(base / "uninterrupted_training.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not result_file.exists():
            result = run_interruption_worker(
                ["full", directory],
                dict(subprocess_env, KERAS_BACKEND=keras.backend.backend()),
            )
            result_file.write_text(json.dumps(result))
    return json.loads(result_file.read_text()), directory
