"""The model-quality, mask-analysis and keras-rs examples, run small.

Each script runs with settings that take seconds (a few thousand samples,
a few epochs, one seed, narrow models): those that the selected tests read,
one after the other in one subprocess (keras, the backends, keras-rs and
matplotlib are imported once); the tests check the values they write, not
only that they ran. The scripts compare models and read masks; what they
compute on each backend is the layers' business, tested on every backend
by the layer and parity tests. They run once, in the torch session of `make
test`, where they run fastest. The full runs behind the docs pages
(docs/guide/quality.md, docs/guide/masks.md) take minutes and are not run
here.
"""

import json
import math
import re

import pytest

from tests.helpers import BACKEND
from tests.helpers import REPO
from tests.helpers import example_output
from tests.helpers import in_one_session
from tests.helpers import run_examples
from tests.helpers import selected_tests

pytest.importorskip("keras_rs", reason="keras-rs needs Python 3.11+")
pytest.importorskip("matplotlib")

pytestmark = in_one_session("torch", "compares models, not backends")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MODELS = ["para_ref", "para_paper", "ser_ref", "ser_paper", "dnn", "dcn_v2"]


#: name -> (script, arguments); "{out}" stands for the run's own folder.
RUNS = {
    "quality": ("model_quality.py", ["--small", "--out", "{out}"]),
    "masks": ("mask_analysis.py", ["--small", "--out", "{out}"]),
    "keras_rs": (
        "keras_rs_pipeline.py",
        ["--samples", "3000", "--epochs", "3", "--width", "16"]
        + ["--learning-rate", "1e-2", "--batch-size", "256"],
    ),
}
#: The run that each test reads.
READ_BY = {
    "test_model_quality_small_run_writes_every_model": "quality",
    "test_mask_analysis_small_run_reads_the_masks": "masks",
    "test_keras_rs_pipeline_trains_and_is_judged": "keras_rs",
}


@pytest.fixture(scope="module")
def example_runs(request, tmp_path_factory, subprocess_env):
    """`run_examples` of the runs of `RUNS` that the selected tests read:
    name -> (exit status, output, output folder), and the end of the
    stderr of the process they ran in."""
    names = {READ_BY[item.originalname] for item in selected_tests(request)}
    tmp_path = tmp_path_factory.mktemp("quality_examples")
    runs = {
        name: (
            REPO / "examples" / script,
            [arg.format(out=tmp_path / name) for arg in args],
            tmp_path / name,
        )
        for name, (script, args) in RUNS.items()
        if name in names
    }
    return run_examples(
        runs,
        cwd=tmp_path,
        env=dict(subprocess_env, KERAS_BACKEND=BACKEND),
        timeout=1800,
    )


def _is_png(path):
    return path.is_file() and path.read_bytes()[:8] == PNG_SIGNATURE


# 12 training runs (6 models on 2 data sets): about a minute on 2 busy CPU
# cores, mostly compiling (JAX, TensorFlow) or stepping eagerly (PyTorch).
@pytest.mark.slow
def test_model_quality_small_run_writes_every_model(example_runs):
    _, out, log = example_output(example_runs, "quality")
    results = json.loads((out / "results.json").read_text())
    assert results["environment"]["backend"] == BACKEND
    assert set(results["datasets"]) == {"dense", "raw"}, log
    for name, dataset in results["datasets"].items():
        best = dataset["best_auc"]
        assert 0.8 < best < 0.95, (name, best)
        assert list(dataset["models"]) == MODELS, log
        for key, model in dataset["models"].items():
            summary = model["summary"]
            (seed,) = model["seeds"]
            auc = seed["test_auc"]
            # A few thousand rows of data with signal, a few epochs: every
            # model learns something, and none beats the true probability
            # by more than the noise of 800 test rows.
            assert math.isfinite(auc) and 0.5 < auc <= 1.0, (name, key, log)
            assert auc <= best + 0.03, (name, key, auc, best)
            assert summary["min"] == summary["mean"] == auc
            assert 10000 < model["params_after_embeddings"] < 20000
            (run,) = seed["runs"]
            assert 1 <= run["best_epoch"] <= run["epochs"] <= 5
            assert run["fit_seconds"] > 0
            if name == "dense":
                learned = seed["learned"]
                assert all(math.isfinite(v) for v in learned.values())
                assert 0 < learned["r2"] <= 1
    assert _is_png(out / "quality.png")
    table = (out / "dense.md.txt").read_text()
    for name in ["ParaMaskNet", "SerMaskNet", "DNN", "DCN-v2"]:
        assert name in table
    assert "best achievable" in table
    for fragment in ["raw.md.txt", "dense_lr.md.txt", "dense_learned.md.txt"]:
        assert (out / fragment).read_text().startswith("| Model |")
    settings = (out / "settings.md.txt").read_text()
    assert f"on the {BACKEND} backend" in settings and "CPU cores" in settings


def test_mask_analysis_small_run_reads_the_masks(example_runs):
    _, out, log = example_output(example_runs, "masks")
    results = json.loads((out / "masks.json").read_text())
    assert len(results["planted_pairs"]) == 8
    assert set(results["models"]) == {"para_ref", "para_paper"}, log
    for key, model in results["models"].items():
        assert 0.5 < model["test_auc"] <= 1.0, (key, log)
        masks = model["masks"]
        assert len(masks["blocks"]) == 3  # one mask per block
        for block in masks["blocks"]:
            assert math.isfinite(block["std"]) and block["std"] > 0
            assert 0 <= block["negative"] <= 1
            assert sum(block["histogram"]) == 4000 * 32 // 5  # 800 rows
        assert len(masks["mean_abs_mask_per_feature"]) == 32
        pair = masks["pair_scores"]
        assert len(pair) == 32 and all(len(row) == 32 for row in pair)
        assert all(v >= 0 and math.isfinite(v) for row in pair for v in row)
        assert (
            sorted(masks["planted_pair_ranks"]) == masks["planted_pair_ranks"]
        )
        assert 0 <= masks["top_pairs_planted"] <= 8
    assert _is_png(out / "mask_histograms.png")
    assert _is_png(out / "mask_features.png")
    assert "| Model |" in (out / "masks.md.txt").read_text()


#: The line the keras-rs example prints for each model.
RS_LINE = re.compile(
    r"^(MaskNet(?: \+ \d FeatureCross)?) *: AUC ([0-9.]+), NDCG@5 ([0-9.]+), "
    r"MRR ([0-9.]+), pairwise logistic loss ([0-9.]+)",
    re.M,
)


def test_keras_rs_pipeline_trains_and_is_judged(example_runs):
    out, _, log = example_output(example_runs, "keras_rs")
    results = {m.group(1): m.groups()[1:] for m in RS_LINE.finditer(out)}
    assert set(results) == {"MaskNet", "MaskNet + 2 FeatureCross"}, log
    for auc, ndcg, mrr, loss in results.values():
        auc, ndcg, mrr, loss = map(float, (auc, ndcg, mrr, loss))
        assert 0.5 < auc <= 1.0, log
        assert 0 < ndcg <= 1 and 0 < mrr <= 1, log
        assert math.isfinite(loss) and loss > 0, log
