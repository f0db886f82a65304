"""Runs the scripts in `examples/` on the current backend, in subprocesses."""

import re
import subprocess
import sys

import pytest

from tests.helpers import BACKEND
from tests.helpers import REPO

#: (script, extra arguments): smaller than the defaults to keep tests short.
EXAMPLES = [
    # 25600 = 5 test batches of 1024 + 40 training batches of 512.
    ("quickstart.py", ["--samples", "25600", "--epochs", "3"]),
]

#: The line every example prints with its model's test AUC.
AUC_LINE = re.compile(r"Test AUC: ([0-9.]+) \(best achievable: ([0-9.]+)")


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args", EXAMPLES, ids=[script for script, _ in EXAMPLES]
)
def test_example_runs_and_learns(script, args, tmp_path, subprocess_env):
    output = tmp_path / "model.keras"
    env = dict(subprocess_env, KERAS_BACKEND=BACKEND)
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / script)]
        + args
        + ["--output", str(output)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    log = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-5000:]}"
    assert result.returncode == 0, log
    assert f"backend: {BACKEND}" in result.stdout, log
    match = AUC_LINE.search(result.stdout)
    assert match is not None, log
    auc, best = float(match.group(1)), float(match.group(2))
    assert auc > 0.6, log
    assert auc <= best + 0.02, log
    assert output.is_file()
