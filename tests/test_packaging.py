"""Release readiness: the built sdist and wheel, and the stable API.

The sdist and the wheel are built once per session with `python -m build`, as
`make dist` does. Besides their contents and metadata, the wheel is installed
into a virtual environment that holds only keras and this session's backend
(the pins of requirements.txt), where the package's modules are imported and
`examples/quickstart.py` runs: a file missing from the wheel or a dependency
used but not declared fails there. `make test` runs one session per backend,
so each backend gets its own environment. Those environments are cached under
`.venvs/`, keyed by the pins, and reused while the pins stay the same.

The last part checks what saved `.keras` files depend on: the registered
names, and that the model each release saved (`tests/saved_models/`, made by
`tools/save_release_model.py`) still loads and computes the same numbers.
"""

import contextlib
import email.parser
import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
import tomllib

import keras_masknet
from tests.helpers import BACKEND
from tests.helpers import REPO
from tests.helpers import in_one_session
from tests.helpers import to_numpy
from tests.testing import assert_registered

VERSION = keras_masknet.__version__
VENVS = REPO / ".venvs"
SAVED_MODELS = REPO / "tests" / "saved_models"
#: The distributions that make up each backend in requirements.txt.
BACKEND_PACKAGES = {
    "tensorflow": ("tensorflow", "tensorflow-cpu"),
    "jax": ("jax", "jaxlib"),
    "torch": ("torch",),
}
#: Names under which `.keras` files refer to the layers: never change them.
STABLE_REGISTERED_NAMES = {
    "keras_masknet>MaskBlock": keras_masknet.MaskBlock,
    "keras_masknet>MaskNet": keras_masknet.MaskNet,
    "keras_masknet>MLP": keras_masknet.MLP,
}
#: Small sizes: the example only has to run, test_examples checks it learns.
QUICKSTART_ARGS = ["--samples", "2000", "--epochs", "1"]
#: Run in the fresh environment: every module of the installed package
#: imports, and it is the installed copy, not the source tree (one JSON
#: line). Then, in the same process (one backend import, not two), the
#: script given as the first argument runs with the other arguments.
IMPORT_CHECK = """
import importlib, json, pkgutil, runpy, sys
import keras, keras_masknet
modules = [m.name for m in pkgutil.walk_packages(
    keras_masknet.__path__, "keras_masknet.")]
for name in modules:
    importlib.import_module(name)
print(json.dumps({"file": keras_masknet.__file__,
                  "version": keras_masknet.__version__,
                  "backend": keras.backend.backend(),
                  "modules": modules}), flush=True)
if len(sys.argv) > 1:
    sys.argv = sys.argv[1:]
    runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _pins(path: Path) -> dict[str, str]:
    """`name==version` lines of a requirements file, by lower-case name."""
    pins = {}
    for line in path.read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)", line.strip())
        if match:
            pins[match.group(1).lower()] = match.group(2)
    return pins


def _keras_floor() -> str:
    """The `keras>=` floor of pyproject.toml's dependencies."""
    with open(REPO / "pyproject.toml", "rb") as f:
        dependencies = tomllib.load(f)["project"]["dependencies"]
    floors = [
        re.fullmatch(r"keras>=([0-9.]+)", d.replace(" ", ""))
        for d in dependencies
    ]
    assert len(dependencies) == 1 and floors[0], (
        f"keras (with a >= floor) must be the only dependency: {dependencies}"
    )
    return floors[0].group(1)


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


def _run(args, timeout=900, **kwargs) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )
    assert proc.returncode == 0, (
        f"{' '.join(map(str, args))} exited with {proc.returncode}\n"
        f"stdout:\n{proc.stdout[-4000:]}\nstderr:\n{proc.stderr[-4000:]}"
    )
    return proc


def _clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that points Python at
    the source tree or at another environment. Bytecode may be written: it
    only goes into the test environments, which install without it."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "PYTHONPATH",
            "PYTHONHOME",
            "VIRTUAL_ENV",
            "PYTHONDONTWRITEBYTECODE",
            "PYTHONPYCACHEPREFIX",
        )
    }
    env.update(PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1", **extra)
    return env


# ------------------------------------------------------ single-sourced facts


def test_version_is_single_sourced_in_version_py():
    text = (REPO / "keras_masknet" / "version.py").read_text()
    assert re.search(rf'^__version__ = "{re.escape(VERSION)}"$', text, re.M)
    with open(REPO / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert "version" not in project
    assert "version" in project["dynamic"]
    assert re.fullmatch(r"\d+\.\d+\.\d+((a|b|rc)\d+)?(\.dev\d+)?", VERSION)


def test_keras_floor_is_the_oldest_keras_that_make_test_runs():
    oldest = _pins(REPO / "requirements-oldest.txt")
    assert oldest["keras"] == _keras_floor(), (
        "pyproject.toml's `keras>=` floor and requirements-oldest.txt's "
        "keras pin must name the same version"
    )
    current = _pins(REPO / "requirements.txt")["keras"]
    assert _version_tuple(current) >= _version_tuple(oldest["keras"])


@pytest.mark.parametrize(
    "name", ["torch", "pytest", "pytest-xdist", "hypothesis"]
)
def test_oldest_keras_venv_pins_the_same_test_tools(name):
    # torch: an unpinned one would resolve to a multi-GB CUDA build.
    oldest = _pins(REPO / "requirements-oldest.txt")
    assert oldest[name] == _pins(REPO / "requirements.txt")[name]


# --------------------------------------------------------- sdist and wheel


#: The wheel and sdist do not depend on the backend: built, checked and
#: installed (with keras and torch) once.
BUILDS_THE_WHEEL = in_one_session("torch", "builds and installs the wheel")


@pytest.fixture(scope="session")
def dist_dir(tmp_path_factory):
    """`python -m build`: the sdist, then the wheel built from the sdist."""
    out = tmp_path_factory.mktemp("dist")
    _run(
        [sys.executable, "-m", "build", "--outdir", out, REPO],
        env=_clean_env(),
    )
    return out


@pytest.fixture(scope="session")
def wheel(dist_dir):
    (path,) = dist_dir.glob("*.whl")
    return path


@pytest.fixture(scope="session")
def sdist(dist_dir):
    (path,) = dist_dir.glob("*.tar.gz")
    return path


@pytest.fixture(scope="session")
def metadata(wheel):
    with zipfile.ZipFile(wheel) as z:
        text = z.read(f"keras_masknet-{VERSION}.dist-info/METADATA")
    return email.parser.Parser().parsestr(text.decode("utf-8"))


def _source_files() -> set[str]:
    root = REPO / "keras_masknet"
    return {
        p.relative_to(REPO).as_posix()
        for p in root.rglob("*")
        if p.is_file()
        and "__pycache__" not in p.parts
        and p.suffix in (".py", ".typed")
    }


@pytest.mark.slow
@BUILDS_THE_WHEEL
def test_wheel_is_named_after_the_version_and_pure_python(wheel):
    assert wheel.name == f"keras_masknet-{VERSION}-py3-none-any.whl"


@pytest.mark.slow
@BUILDS_THE_WHEEL
def test_wheel_holds_the_package_and_nothing_else(wheel):
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
    top = {name.split("/", 1)[0] for name in names}
    assert top == {"keras_masknet", f"keras_masknet-{VERSION}.dist-info"}
    assert not [
        n for n in names if re.search(r"(^|/)(tests|examples|benchmarks)/", n)
    ]
    assert _source_files() <= names, _source_files() - names
    assert "keras_masknet/py.typed" in names
    assert f"keras_masknet-{VERSION}.dist-info/licenses/LICENSE" in names


@pytest.mark.slow
@BUILDS_THE_WHEEL
def test_wheel_metadata(metadata):
    assert metadata["Name"] == "keras-masknet"
    assert metadata["Version"] == VERSION
    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata.get_all("License-File") == ["LICENSE"]
    assert metadata["Requires-Python"] == ">=3.10"
    assert metadata["Summary"]
    classifiers = metadata.get_all("Classifier")
    assert "Programming Language :: Python :: 3.11" in classifiers
    assert "Typing :: Typed" in classifiers
    assert metadata.get_all("Project-URL")


@pytest.mark.slow
@BUILDS_THE_WHEEL
def test_long_description_is_the_markdown_readme(metadata):
    assert metadata["Description-Content-Type"].startswith("text/markdown")
    readme = (REPO / "README.md").read_text()
    assert metadata.get_payload().strip() == readme.strip()


@pytest.mark.slow
@BUILDS_THE_WHEEL
def test_keras_is_the_only_required_dependency(metadata):
    requires = metadata.get_all("Requires-Dist")
    required = [r for r in requires if "extra ==" not in r]
    assert required == [f"keras>={_keras_floor()}"], requires


@pytest.mark.slow
@BUILDS_THE_WHEEL
def test_sdist_holds_the_sources_license_and_changelog(sdist):
    with tarfile.open(sdist) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    for name in ("LICENSE", "README.md", "CHANGELOG.md", "pyproject.toml"):
        assert name in names
    assert {n for n in _source_files()} <= names
    assert not [n for n in names if n.startswith(("tests/", "examples/"))]


@pytest.mark.slow
@BUILDS_THE_WHEEL
def test_twine_check_passes(wheel, sdist):
    proc = _run(
        [sys.executable, "-m", "twine", "check", "--strict", wheel, sdist],
        env=_clean_env(),
    )
    assert proc.stdout.count("PASSED") == 2, proc.stdout


# ------------------------------------- the wheel in a keras + backend venv


def _backend_pins(backend: str) -> list[str]:
    pins = _pins(REPO / "requirements.txt")
    names = ("keras", *BACKEND_PACKAGES[backend])
    found = [f"{name}=={pins[name]}" for name in names if name in pins]
    assert len(found) >= 2, (
        f"requirements.txt must pin keras and the {backend} backend: {found}"
    )
    return found


@contextlib.contextmanager
def _backend_venv(backend: str):
    """A venv with only keras and `backend`, cached by their pins, locked
    against other test runs while it is in use."""
    pins = _backend_pins(backend)
    key = "\n".join([sys.version, *pins]).encode()
    key = hashlib.sha256(key).hexdigest()[:12]
    VENVS.mkdir(exist_ok=True)
    venv = VENVS / f"wheel-{backend}-{key}"
    marker = venv / "pins.txt"
    with open(VENVS / f"wheel-{backend}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not marker.is_file():
            for old in VENVS.glob(f"wheel-{backend}-*"):
                shutil.rmtree(old)
            _run([sys.executable, "-m", "venv", venv], env=_clean_env())
            _run(
                [venv / "bin" / "python", "-m", "pip", "install", "-q"]
                + ["--no-compile", *pins],
                env=_clean_env(),
            )
            marker.write_text("\n".join(pins) + "\n")
        yield venv / "bin" / "python"


def _installed(python: Path) -> set[tuple[str, str]]:
    proc = _run(
        [python, "-m", "pip", "list", "--format=json"], env=_clean_env()
    )
    return {(d["name"].lower(), d["version"]) for d in json.loads(proc.stdout)}


@pytest.mark.slow
@BUILDS_THE_WHEEL
def test_wheel_installs_and_runs_the_quickstart_with_only_keras_and_backend(
    wheel, tmp_path
):
    env = _clean_env(KERAS_BACKEND=BACKEND, TF_CPP_MIN_LOG_LEVEL="3")
    with _backend_venv(BACKEND) as python:
        venv = python.parent.parent
        before = _installed(python)
        try:
            # With its dependencies: pip must find them all satisfied.
            _run([python, "-m", "pip", "install", "-q", wheel], env=env)
            added = _installed(python) - before
            assert added == {("keras-masknet", VERSION)}, (
                "installing the wheel beside keras and the backend must add "
                f"nothing but keras-masknet; it added {sorted(added)}"
            )
            _run([python, "-m", "pip", "check"], env=env)

            output = tmp_path / "quickstart.keras"
            script = REPO / "examples" / "quickstart.py"
            proc = _run(
                [python, "-c", IMPORT_CHECK, script, *QUICKSTART_ARGS]
                + ["--output", output],
                cwd=tmp_path,
                env=env,
            )
            found = json.loads(proc.stdout.strip().splitlines()[0])
            assert found["version"] == VERSION
            assert found["backend"] == BACKEND
            site = Path(found["file"]).resolve()
            assert site.is_relative_to(venv.resolve()), found["file"]
            assert "keras_masknet.layers.mask_net" in found["modules"]

            assert f"backend: {BACKEND}" in proc.stdout, proc.stdout
            assert output.is_file()
        finally:
            subprocess.run(
                [python, "-m", "pip", "uninstall", "-q", "-y", "keras-masknet"],
                env=env,
                capture_output=True,
                timeout=300,
            )
            if _installed(python) != before:
                # Not just keras and the backend any more: make it afresh.
                shutil.rmtree(venv)


# ------------------------------------------ what saved .keras files rely on


@pytest.mark.parametrize("name", sorted(STABLE_REGISTERED_NAMES))
def test_registered_name_is_stable(name):
    assert_registered(STABLE_REGISTERED_NAMES[name], name)


def test_this_version_has_a_saved_model_fixture():
    path = SAVED_MODELS / f"keras_masknet-{VERSION}.keras"
    assert path.is_file(), (
        f"{path.relative_to(REPO)} is missing: run "
        "`KERAS_BACKEND=jax .venv/bin/python tools/save_release_model.py` "
        "for this release and commit what it writes"
    )


@pytest.mark.parametrize(
    "path",
    sorted(SAVED_MODELS.glob("*.keras")),
    ids=lambda p: f"saved by {p.stem}",
)
def test_a_model_saved_by_a_release_loads_and_computes_the_same(path):
    data = np.load(path.with_suffix(".npz"))
    model = keras.saving.load_model(path, safe_mode=True)
    registered = {
        keras.saving.get_registered_name(type(layer)) for layer in model.layers
    }
    assert set(STABLE_REGISTERED_NAMES) <= registered
    got = model.predict([data["x"], data["mask_input"]], verbose=0)
    wants = {k[2:]: data[k] for k in data.files if k.startswith("y_")}
    assert sorted(got) == sorted(wants)
    for key, want in wants.items():
        # Saved on one backend, loaded on this one: float32 rounding only.
        np.testing.assert_allclose(
            to_numpy(got[key]), want, rtol=1e-5, atol=1e-5, err_msg=key
        )
