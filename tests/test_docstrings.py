"""Every example in the docs runs, on the current backend.

Two sources of examples, each run with `exec` in a fresh namespace:

- the ```` ```python ```` blocks of the docstrings of every public name
  (`keras_masknet.__all__`), of their public methods and properties, and of
  the public modules and their public functions;
- the ```` ```python ```` blocks of the docs pages (`docs/**/*.md`), each
  page's blocks in order in one namespace, as a reader would paste them.
  Blocks that include a file (`--8<--`) are skipped: the examples they show
  run in `tests/test_examples.py`. A block right after a line
  `<!-- no-test -->` is skipped too.
"""

import contextlib
import importlib
import inspect
import linecache
import pathlib
import re

import keras
import pytest

import keras_masknet
from tests.helpers import REPO

DOCS = REPO / "docs"
#: Modules whose docstrings and public functions are documented too, next
#: to the modules that the public names come from.
MODULES = ("keras_masknet", "keras_masknet.datasets", "keras_masknet.reference")
SKIP_MARK = "<!-- no-test -->"
_FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```[ \t]*$", re.M | re.S)


def python_blocks(text: str) -> list[str]:
    """The bodies of the ```` ```python ```` fenced blocks of `text`."""
    blocks = []
    for match in _FENCE.finditer(text):
        before = text[: match.start()].rstrip().splitlines()
        if before and before[-1].strip() == SKIP_MARK:
            continue
        if "--8<--" in match.group(1):
            continue
        blocks.append(match.group(1))
    return blocks


def _own_members(cls: type) -> list[tuple[str, object]]:
    """Public methods and properties that `cls` itself defines."""
    members = []
    for name, member in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(member, property):
            members.append((name, member.fget))
        elif inspect.isfunction(member):
            members.append((name, member))
    return members


def documented_objects() -> dict[str, object]:
    """Qualified name -> object, for every documented public object."""
    objects = {}
    modules = set(MODULES)
    for name in keras_masknet.__all__:
        module_name = getattr(getattr(keras_masknet, name), "__module__", "")
        if module_name and module_name.startswith("keras_masknet"):
            modules.add(module_name)
    for module_name in sorted(modules):
        module = importlib.import_module(module_name)
        objects[module_name] = module
        for name, member in vars(module).items():
            if name.startswith("_") or not inspect.isfunction(member):
                continue
            if member.__module__ == module_name:
                objects[f"{module_name}.{name}"] = member
    for name in keras_masknet.__all__:
        obj = getattr(keras_masknet, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            objects[f"keras_masknet.{name}"] = obj
        if inspect.isclass(obj):
            for member_name, member in _own_members(obj):
                objects[f"keras_masknet.{name}.{member_name}"] = member
    return objects


def docstring_examples() -> list:
    cases = []
    for qualname, obj in sorted(documented_objects().items()):
        for i, code in enumerate(python_blocks(inspect.getdoc(obj) or "")):
            cases.append(pytest.param(qualname, code, id=f"{qualname}-{i}"))
    return cases


def docs_pages() -> list[pathlib.Path]:
    return sorted(DOCS.rglob("*.md"))


def _run(code: str, filename: str, namespace: dict) -> None:
    # Registered with linecache, so that a traceback shows the failing line.
    linecache.cache[filename] = (len(code), None, code.splitlines(True), "")
    exec(compile(code, filename, "exec"), namespace)


@pytest.mark.parametrize("qualname, code", docstring_examples())
def test_docstring_example_runs(qualname, code):
    # A fresh Keras session, as a reader who pastes the example has: layer
    # names such as "mask_block" are not yet taken.
    keras.backend.clear_session()
    _run(code, f"<docstring of {qualname}>", {"__name__": "__docstring__"})


@pytest.mark.parametrize(
    "page",
    docs_pages(),
    ids=[str(p.relative_to(DOCS)) for p in docs_pages()],
)
def test_docs_page_examples_run(page):
    keras.backend.clear_session()
    namespace = {"__name__": "__docs__"}
    with _aten_gemms_when_autotuning():
        for i, code in enumerate(python_blocks(page.read_text())):
            _run(code, f"<{page.relative_to(REPO)}, block {i}>", namespace)


@contextlib.contextmanager
def _aten_gemms_when_autotuning():
    """On torch: Inductor's `max_autotune` (the performance guide's
    AOTInductor block) picks each matrix product's kernel by generating,
    compiling and timing C++ templates against ATen's kernel: 40 of the
    block's 60 s on 2 cores with an empty Inductor cache, as in CI. Here it
    takes ATen's kernel: the block still exports, compiles ahead of time
    with frozen weights, loads the package and checks its outputs against
    the model's; only the search for the fastest kernel, which changes no
    result, is left to the reader's machine."""
    if keras.backend.backend() != "torch":
        yield
        return
    import torch._inductor.config

    with torch._inductor.config.patch(max_autotune_gemm_backends="ATEN"):
        yield


def test_every_public_callable_has_an_example():
    missing = []
    for name in keras_masknet.__all__:
        obj = getattr(keras_masknet, name)
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if inspect.isclass(obj) and issubclass(obj, BaseException):
            continue  # an exception is shown where it is raised
        if not python_blocks(inspect.getdoc(obj) or ""):
            missing.append(name)
    assert not missing, f"public names without a ```python example: {missing}"


def test_examples_are_collected():
    """The collection itself works: it finds the examples it must run."""
    names = {case.values[0] for case in docstring_examples()}
    assert {"keras_masknet.MaskNet", "keras_masknet.MaskBlock"} <= names
    assert "keras_masknet.datasets.make_click_data" in names
    assert python_blocks((DOCS / "index.md").read_text())
    text = "```python\na = 1\n```\n<!-- no-test -->\n```python\nb\n```\n"
    assert python_blocks(text) == ["a = 1\n"]
    included = '```python\n--8<-- "examples/quickstart.py"\n```\n'
    assert python_blocks(included) == []


def test_a_broken_example_fails():
    """A failing block raises: `_run` does not swallow errors."""
    with pytest.raises(AssertionError):
        _run("assert 1 == 2", "<broken>", {})
