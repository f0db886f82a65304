"""`.keras` files saved under each backend load under each of the others.

Each backend saves in a subprocess and loads the others' files in one
(five processes: a backend that saves after another loads its files in the
same process). The test spawns all three backends itself, so it runs once,
from the tensorflow session of `make test` (in every session with
KERAS_MASKNET_EVERY_SESSION=1).
"""

import json
import subprocess
import sys

import pytest

from tests.helpers import REPO
from tests.helpers import in_one_session

BACKENDS = ("tensorflow", "jax", "torch")

pytestmark = [
    pytest.mark.slow,
    in_one_session("tensorflow", "spawns every backend itself"),
]


def _run(mode, backend, root, env, sources=()):
    env = {**env, "KERAS_BACKEND": backend}
    proc = subprocess.run(
        [sys.executable, "-m", "tests.cross_backend_worker", mode, str(root)]
        + list(sources),
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_save_under_each_backend_and_load_under_each_other(
    tmp_path, subprocess_env
):
    steps = [
        ("save", "tensorflow", ()),
        ("save-load", "jax", ("tensorflow",)),
        ("save-load", "torch", ("tensorflow", "jax")),
        ("load", "tensorflow", ("jax", "torch")),
        ("load", "jax", ("torch",)),
    ]
    errors = {}
    for mode, backend, sources in steps:
        result = _run(mode, backend, tmp_path, subprocess_env, sources)
        errors.update(result["errors"])
    # 3 sources x 2 targets x 3 models (one on a list of field embeddings).
    assert len(errors) == 18, errors
    worst = max(errors.values())
    assert worst <= 1e-6, errors
