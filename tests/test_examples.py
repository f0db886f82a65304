"""Runs the scripts in `examples/` on the current backend, in a subprocess.

The examples this module's selected tests read run one after the other in
one child process (`example_runs`): the backend, TensorFlow (the CTR
example's `tf.data`) and torch (the migration's reference) are imported once
(5 to 10 s each time on 2 cores), not once per example. Each runs as
`main(argv)` of its script, with the arguments a user would pass; a run that
fails or raises does not stop the next one, and each test checks its own.
"""

import re

import pytest

from tests.helpers import BACKEND
from tests.helpers import REPO
from tests.helpers import example_output
from tests.helpers import run_examples
from tests.helpers import selected_tests

#: (script, extra arguments): smaller than the defaults to keep tests short.
EXAMPLES = [
    # 25600 = 5 test batches of 1024 + 40 training batches of 512.
    ("quickstart.py", ["--samples", "25600", "--epochs", "3"]),
]
#: 20000 samples: 14000 to train (27 batches of 512), 2000 to validate.
CTR_ARGS = ["--samples", "20000", "--epochs", "3"]
MIGRATE_MODES = {"parallel": [], "serial": ["--serial"]}
#: Every run: name -> (script, arguments but --output, the --output file).
RUNS = {
    **{script: (script, args, "model.keras") for script, args in EXAMPLES},
    "ctr": ("ctr_end_to_end.py", CTR_ARGS, "ctr.keras"),
    **{
        f"migrate {mode}": ("migrate_from_reference.py", args, f"{mode}.keras")
        for mode, args in MIGRATE_MODES.items()
    },
}


def _runs_read_by(item):
    """The names in `RUNS` of the runs that a test of this module reads."""
    params = item.callspec.params if hasattr(item, "callspec") else {}
    if "script" in params:
        return [params["script"]]
    if "mode" in params:
        return [f"migrate {params['mode']}"]
    return ["ctr"]


@pytest.fixture(scope="module")
def example_runs(request, tmp_path_factory, subprocess_env):
    """`run_examples` of the runs of `RUNS` that the selected tests of this
    module read: name -> (exit status, output, --output file), and the
    end of the stderr of the process they ran in."""
    names = {
        name for item in selected_tests(request) for name in _runs_read_by(item)
    }
    tmp_path = tmp_path_factory.mktemp("examples")
    runs = {}
    for name in (name for name in RUNS if name in names):  # in RUNS' order
        script, args, output = RUNS[name]
        output = tmp_path / output
        runs[name] = (
            REPO / "examples" / script,
            args + ["--output", str(output)],
            output,
        )
    return run_examples(
        runs,
        cwd=tmp_path,
        env=dict(subprocess_env, KERAS_BACKEND=BACKEND),
        timeout=1800,
    )


#: The line every example prints with its model's test AUC.
AUC_LINE = re.compile(r"Test AUC: ([0-9.]+) \(best achievable: ([0-9.]+)")


@pytest.mark.slow
@pytest.mark.parametrize(
    "script, args", EXAMPLES, ids=[script for script, _ in EXAMPLES]
)
def test_example_runs_and_learns(script, args, example_runs):
    out, output, log = example_output(example_runs, script)
    match = AUC_LINE.search(out)
    assert match is not None, log
    auc, best = float(match.group(1)), float(match.group(2))
    assert auc > 0.6, log
    assert auc <= best + 0.02, log
    assert output.is_file()


#: The lines the CTR example prints for each of its two models.
CTR_LINE = re.compile(
    r"^(MaskNet|DNN) +Test AUC: ([0-9.]+) \(best achievable: ([0-9.]+)\), "
    r"log loss: ([0-9.]+) \(best achievable: ([0-9.]+)\)",
    re.M,
)


@pytest.mark.slow
def test_ctr_end_to_end_trains_both_models_and_saves(example_runs):
    out, output, log = example_output(example_runs, "ctr")
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
    assert (output.parent / "ctr.feature_space.keras").is_file()
    assert "Saved and reloaded" in out, log
    serving = output.parent / "ctr.serving.keras"
    if BACKEND == "tensorflow":
        assert serving.is_file(), log
        assert "takes the raw columns and predicts the same" in out, log
    else:
        assert not serving.exists()
        assert "Keras models take string inputs only on the TensorFlow" in out


@pytest.mark.slow
@pytest.mark.parametrize("mode", list(MIGRATE_MODES))
def test_migrate_from_reference_matches(mode, example_runs):
    out, output, log = example_output(example_runs, f"migrate {mode}")
    match = re.search(r"forward pass: ([0-9.e+-]+)", out)
    assert match is not None and float(match.group(1)) < 2e-5, log
    assert "the migration is exact" in out, log
    assert f"Built {mode} MaskNet" in out, log
    assert output.is_file()
