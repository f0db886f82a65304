"""Runs the scripts in `examples/` on the current backend, in subprocesses."""

import json
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


def _run_example(
    script, args, tmp_path, subprocess_env, script_in_examples=True
):
    """Runs `examples/<script> args` (or `python <script> args`) on this
    backend; returns (rc, out, log)."""
    env = dict(subprocess_env, KERAS_BACKEND=BACKEND)
    if script_in_examples:
        script = str(REPO / "examples" / script)
    result = subprocess.run(
        [sys.executable, script] + args,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    log = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr[-5000:]}"
    return result.returncode, result.stdout, log


#: The lines the CTR example prints for each of its two models.
CTR_LINE = re.compile(
    r"^(MaskNet|DNN) +Test AUC: ([0-9.]+) \(best achievable: ([0-9.]+)\), "
    r"log loss: ([0-9.]+) \(best achievable: ([0-9.]+)\)",
    re.M,
)


@pytest.mark.slow
def test_ctr_end_to_end_trains_both_models_and_saves(tmp_path, subprocess_env):
    output = tmp_path / "ctr.keras"
    # 20000 samples: 14000 to train (27 batches of 512), 2000 to validate.
    args = ["--samples", "20000", "--epochs", "3", "--output", str(output)]
    rc, out, log = _run_example(
        "ctr_end_to_end.py", args, tmp_path, subprocess_env
    )
    assert rc == 0, log
    assert f"backend: {BACKEND}" in out, log
    results = {m.group(1): m.groups()[1:] for m in CTR_LINE.finditer(out)}
    print("".join(m.group(0) + "\n" for m in CTR_LINE.finditer(out)))
    assert set(results) == {"MaskNet", "DNN"}, log
    for auc, best_auc, loss, best_loss in results.values():
        auc, best_auc = float(auc), float(best_auc)
        loss, best_loss = float(loss), float(best_loss)
        assert 0.65 < auc <= best_auc + 0.02, log
        assert best_loss - 0.02 <= loss < 0.5, log  # 0.5: 20% clicks, no skill
    # The model and its preprocessing are saved and reload to the same
    # predictions (the script exits with 1 otherwise).
    assert output.is_file()
    assert (tmp_path / "ctr.feature_space.keras").is_file()
    assert "Saved and reloaded" in out, log
    serving = tmp_path / "ctr.serving.keras"
    if BACKEND == "tensorflow":
        assert serving.is_file(), log
        assert "takes the raw columns and predicts the same" in out, log
    else:
        assert not serving.exists()
        assert "Keras models take string inputs only on the TensorFlow" in out


#: Runs `main(argv)` of the script given as the first argument once per
#: argv of the JSON list given as the second, in one process (the backend
#: and torch are imported once), each run's output after a `=== argv` line.
_RUN_MAIN_FOR_EACH = """
import json, runpy, sys
main = runpy.run_path(sys.argv[1], run_name="example")["main"]
for argv in json.loads(sys.argv[2]):
    print("=== " + json.dumps(argv), flush=True)
    if main(argv) != 0:
        sys.exit(1)
"""
MIGRATE_MODES = {"parallel": [], "serial": ["--serial"]}


@pytest.fixture(scope="module")
def migrations(tmp_path_factory, subprocess_env):
    """`examples/migrate_from_reference.py` in each mode: by mode, its
    output and the file it saved; the run's log."""
    tmp_path = tmp_path_factory.mktemp("migrate")
    outputs = {mode: tmp_path / f"{mode}.keras" for mode in MIGRATE_MODES}
    argvs = [
        args + ["--output", str(outputs[mode])]
        for mode, args in MIGRATE_MODES.items()
    ]
    script = str(REPO / "examples" / "migrate_from_reference.py")
    rc, out, log = _run_example(
        "-c",
        [_RUN_MAIN_FOR_EACH, script, json.dumps(argvs)],
        tmp_path,
        subprocess_env,
        script_in_examples=False,
    )
    assert rc == 0, log
    parts = out.split("=== ")[1:]
    assert len(parts) == len(MIGRATE_MODES), log
    return {
        mode: (part, outputs[mode]) for mode, part in zip(MIGRATE_MODES, parts)
    }, log


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MIGRATE_MODES))
def test_migrate_from_reference_matches(mode, migrations):
    runs, log = migrations
    out, output = runs[mode]
    assert f"backend: {BACKEND}" in out, log
    match = re.search(r"forward pass: ([0-9.e+-]+)", out)
    assert match is not None and float(match.group(1)) < 2e-5, log
    assert "the migration is exact" in out, log
    assert f"Built {mode} MaskNet" in out, log
    assert output.is_file()
