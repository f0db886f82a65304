"""`.keras` files saved under each backend load under each of the others.

Three processes, one per backend, run at the same time: each saves its
files, waits for the other two to have saved theirs, and loads them (one
process per backend: keras and each backend are imported once). The test
spawns all three backends itself, so it runs once, from the tensorflow
session of `make test` (in every session with KERAS_MASKNET_EVERY_SESSION=1).
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


def _start(backend, root, env):
    """`save-wait-load` under `backend`, reading the other two backends'
    files; its output goes to files (a full pipe would block it)."""
    log = root / f"{backend}.log"
    with open(log.with_suffix(".out"), "w") as out, open(log, "w") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.cross_backend_worker"]
            + ["save-wait-load", str(root)]
            + [other for other in BACKENDS if other != backend],
            cwd=REPO,
            env={**env, "KERAS_BACKEND": backend},
            stdout=out,
            stderr=err,
        )


def test_save_under_each_backend_and_load_under_each_other(
    tmp_path, subprocess_env
):
    processes = {b: _start(b, tmp_path, subprocess_env) for b in BACKENDS}
    try:
        for proc in processes.values():
            proc.wait(timeout=900)
    finally:
        for proc in processes.values():
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    errors = {}
    for backend, proc in processes.items():
        err = (tmp_path / f"{backend}.log").read_text()
        assert proc.returncode == 0, (backend, err[-4000:])
        out = (tmp_path / f"{backend}.out").read_text()
        result = json.loads(out.strip().splitlines()[-1])
        assert result["backend"] == backend
        errors.update(result["errors"])
    # 3 sources x 2 targets x 3 models (one on a list of field embeddings).
    assert len(errors) == 18, errors
    worst = max(errors.values())
    assert worst <= 1e-6, errors
