"""The benchmark's bookkeeping (benchmarks/run.py and workloads.py): the
settings a contender runs with, the time budget, and how the table and
the targets follow from the workers' figures; and the worker's timing on
a tiny workload. No real contender runs here: the benchmark itself is
`make bench`."""

import importlib.util
import json
import sys

import numpy as np
import pytest

from tests.helpers import REPO

BENCH = REPO / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(
        f"_bench_{name}", BENCH / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


run = _load("run")
workloads = _load("workloads")
worker = _load("worker")


def test_slow_bf16_settings_apply_only_on_a_cpu_without_bf16_units():
    assert workloads.has_bf16_units(["avx2", "avx512_bf16", "fma"])
    assert workloads.has_bf16_units(["amx_bf16"])
    assert not workloads.has_bf16_units(["avx", "avx2", "fma"])
    for name in ("reference-bf16", "torch-bf16"):
        slow = workloads.contender_spec(name, bf16_units=False)
        assert slow["max_repeats"] == 1
        assert slow["warmup"] == 0
        assert slow["inference"] is False
        fast = workloads.contender_spec(name, bf16_units=True)
        assert "max_repeats" not in fast and "warmup" not in fast
        assert fast.get("inference", True) is True
        for spec in (slow, fast):
            assert "without_bf16_units" not in spec
    # The others are the same either way.
    for name, spec in workloads.CONTENDERS.items():
        if "without_bf16_units" not in spec:
            assert workloads.contender_spec(name, False) == spec


def _figures(seconds, memory=None, infer=True, **extra):
    """A worker's figures for one workload: 5 repeats of `seconds`."""
    train = {
        "seconds": [seconds] * 5,
        "samples_per_repeat": 1024,
        "median_samples_per_s": 1024 / seconds,
        "best_samples_per_s": 1024 / seconds,
    }
    out = {
        "train": train,
        "memory": {"base_mib": 500.0, "growth_mib": memory or 0.0},
        **extra,
    }
    if infer:
        out["infer"] = dict(train, median_samples_per_s=4096.0)
    return out


def _results(**contenders):
    return {
        name: {"contender": name, "workloads": {"recap": figures}}
        for name, figures in contenders.items()
    }


def _target(results, number):
    table = run.rows(results)
    (found,) = [t for t in run.targets(table) if t[0].startswith(f"{number}.")]
    return found


def test_memory_target_counts_each_backend_in_its_best_mode():
    results = _results(
        reference=_figures(2.0, memory=800),
        jax=_figures(1.9, memory=700),
        tensorflow=_figures(2.2, memory=820),
        torch=_figures(2.0, memory=1200),
        **{"torch-compile": _figures(2.1, memory=900)},
    )
    _, status, figures = _target(results, 5)
    assert status == "met", figures
    assert "torch 1200 MiB (1.50x)" in figures
    assert "torch-compile 900 MiB (1.12x)" in figures
    results["tensorflow-xla"] = {"workloads": {"recap": _figures(2, 700)}}
    results["tensorflow"] = {"workloads": {"recap": _figures(2, 1000)}}
    assert _target(results, 5)[1] == "NOT met"  # XLA does not count
    results["tensorflow"] = {"workloads": {"recap": _figures(2, 820)}}
    del results["torch-compile"]
    assert _target(results, 5)[1] == "NOT met"
    # A backend without a figure: not shown, even if the others pass.
    results = _results(
        reference=_figures(2.0, memory=800), jax=_figures(1.9, memory=700)
    )
    status, figures = _target(results, 5)[1:]
    assert status == "NOT shown"
    assert "no figure: tensorflow, torch" in figures


def test_training_target_needs_every_backend_at_or_above_the_reference():
    results = _results(
        reference=_figures(2.0),
        jax=_figures(1.9),
        tensorflow=_figures(1.95),
        torch=_figures(2.5),
        **{"torch-compile": _figures(2.0), "tensorflow-xla": _figures(2.5)},
    )
    status, figures = _target(results, 1)[1:]
    assert status == "met", figures
    # torch counts with torch.compile, which the docs recommend for it.
    assert "recap/torch-compile 1.00x" in figures
    assert "recap/tensorflow 1.03x" in figures
    del results["torch-compile"]
    assert _target(results, 1)[1] == "NOT met"
    # XLA on TensorFlow is not recommended on a CPU: it does not count.
    results["torch-compile"] = results["jax"]
    results["tensorflow"] = {"workloads": {"recap": _figures(2.5)}}
    results["tensorflow-xla"] = {"workloads": {"recap": _figures(1.0)}}
    status, figures = _target(results, 1)[1:]
    assert status == "NOT met" and "tensorflow-xla" not in figures
    # A backend without a figure: not shown, even if the others pass.
    del results["tensorflow"], results["tensorflow-xla"]
    status, figures = _target(results, 1)[1:]
    assert status == "NOT shown" and "no figure: recap/tensorflow" in figures


def test_a_contender_without_inference_figures_renders():
    results = _results(
        reference=_figures(2.0, memory=800),
        **{
            "reference-bf16": _figures(100.0, memory=900, infer=False),
            "torch-bf16": _figures(
                120.0, memory=950, infer=False, bf16_max_abs_diff=4e-3
            ),
            "jax-bf16": _figures(2.2, memory=820, bf16_max_abs_diff=1e-4),
        },
    )
    table = run.rows(results)
    row = next(r for r in table if r["contender"] == "torch-bf16")
    assert row["infer"] is None and "infer_x" not in row
    assert row["vs"] == "reference-bf16"
    assert row["train_x"] == pytest.approx(100.0 / 120.0)
    status, figures = _target(results, 3)[1:]
    assert status == "NOT met"  # torch-bf16 0.83x; tensorflow: no figure
    assert "torch-bf16 0.83x" in figures and "jax-bf16 45.45x" in figures
    doc = {"table": table, "gemm": {}, "targets": run.targets(table)}
    doc["results"] = results
    text = run.markdown(doc)
    line = next(s for s in text.splitlines() if "| torch-bf16 |" in s)
    cells = [c.strip() for c in line.split("|")]
    header = [c.strip() for c in text.splitlines()[0].split("|")]
    infer = header.index("infer samples/s @1024")
    assert cells[infer] == "-" and cells[infer + 1] == "-", line


def test_the_budget_counts_from_started_at(tmp_path, monkeypatch, capsys):
    # A budget already spent (make started long ago): nothing runs, every
    # contender is reported as skipped, and the page still renders.
    monkeypatch.setattr(
        sys,
        "argv",
        ["run.py", "--started-at", "0", "--out-dir", str(tmp_path)],
    )
    monkeypatch.setattr(
        run, "run_contender", lambda *a: pytest.fail("ran a contender")
    )
    run.main()
    doc = json.loads((tmp_path / "results.json").read_text())
    assert set(doc["results"]) == set(run.DEFAULT_CONTENDERS)
    for result in doc["results"].values():
        assert result == {"error": "skipped: over the time budget"}
    assert doc["machine"]["make_seconds"] > 1e9
    page = (tmp_path / "index.md").read_text()
    assert "skipped: over the time budget" in page
    assert "with `make bench`'s set-up" in page


@pytest.mark.parametrize("page", ["", "paired"])
def test_the_committed_benchmark_page_matches_its_results(
    page, tmp_path, capsys
):
    # docs/benchmarks/index.md (`make bench`) and paired/index.md (`make
    # bench-paired`) are rendered from their results.json: after a change to
    # run.py's rendering, `python benchmarks/run.py --from-json
    # docs/benchmarks/results.json` (--out-dir docs/benchmarks/paired with
    # paired/results.json) brings a page up to date.
    folder = REPO / "docs" / "benchmarks" / page
    with open(folder / "results.json") as f:
        doc = json.load(f)
    run.render(doc, str(tmp_path))
    got = (tmp_path / "index.md").read_text()
    assert got == (folder / "index.md").read_text()


def _paired(ratios):
    return {"ratios": ratios, "median_ratio": sorted(ratios)[len(ratios) // 2]}


def test_paired_ratios_count_for_the_training_target_when_measured():
    # Side by side in separate processes every backend looks faster; in
    # turns with the reference (same process) torch is slower: the paired
    # ratios decide.
    results = _results(
        reference=_figures(2.0),
        jax=_figures(1.9, paired=_paired([1.01, 1.05, 1.02])),
        tensorflow=_figures(1.9, paired=_paired([1.1, 1.0, 1.2])),
        torch=_figures(1.9, paired=_paired([0.93, 0.97, 0.95])),
    )
    status, figures = _target(results, 1)[1:]
    assert status == "NOT met", figures
    assert "recap/torch 0.95x" in figures and "recap/jax 1.02x" in figures
    assert _target(results, 1)[0].endswith("(paired rounds)")
    table = run.rows(results)
    doc = {"table": table, "gemm": {}, "targets": run.targets(table)}
    doc["results"] = results
    text = run.markdown(doc)
    header = [c.strip() for c in text.splitlines()[0].split("|")]
    column = header.index("x ref, paired (min - max)")
    line = next(s for s in text.splitlines() if "| torch |" in s)
    assert line.split("|")[column].strip() == "0.95 (0.93 - 0.97, n=3)"
    line = next(s for s in text.splitlines() if "| reference |" in s)
    assert line.split("|")[column].strip() == "-"
    # Without paired figures: the separate processes' ratios, no column.
    for name in ("jax", "tensorflow", "torch"):
        del results[name]["workloads"]["recap"]["paired"]
    assert _target(results, 1)[1] == "met"  # 2.0 s / 1.9 s: 1.05x each
    table = run.rows(results)
    doc = {"table": table, "gemm": {}, "targets": run.targets(table)}
    doc["results"] = results
    assert "paired" not in run.markdown(doc)


@pytest.fixture
def tiny_workload(monkeypatch):
    """A MaskNet small enough to train in a moment, 2 steps a repeat."""
    name = "tiny"
    monkeypatch.setitem(
        worker.WORKLOADS,
        name,
        {
            "input_dim": 6,
            "config": {
                "mask_blocks": [{"output_size": 4, "reduction_factor": 1.0}],
                "mlp": {"layer_sizes": [4], "final_layer_activation": True},
                "use_parallel": True,
            },
        },
    )
    monkeypatch.setitem(worker.STEPS, name, 2)
    return name


def test_the_worker_times_repeats_and_pairs_with_the_reference(tiny_workload):
    import keras

    def run(**kwargs):
        return worker.run_keras(
            tiny_workload,
            keras.backend.backend(),
            "auto",
            "float32",
            False,
            do_latency=False,
            do_inference=False,
            **kwargs,
        )

    res = run(repeats=3, warmup=1, paired=2)
    # The warm-up epoch (not the workload whose memory growth is shown: no
    # step more), then 3 timed repeats in one epoch.
    assert len(res["warmup_seconds"]) == 1
    assert len(res["train"]["seconds"]) == 3
    assert res["train"]["samples_per_repeat"] == 2 * worker.BATCH
    assert res["memory"]["growth_mib"] >= 0
    # One untimed pair, then 2 timed ones: each ratio is the reference's
    # seconds over Keras' of the same round.
    paired = res["paired"]
    assert len(paired["ratios"]) == 2 and len(paired["warmup_seconds"]) == 2
    for ratio, ref, ks in zip(
        paired["ratios"],
        paired["reference"]["seconds"],
        paired["keras"]["seconds"],
    ):
        assert ratio == pytest.approx(ref / ks)
        assert ks > 0 and ref > 0
    # Without warm-up (the emulated-bfloat16 contenders): the memory growth
    # is measured over the timed repeats themselves.
    res = run(repeats=1, warmup=0)
    assert res["warmup_seconds"] == [] and len(res["train"]["seconds"]) == 1
    assert res["memory"]["growth_mib"] >= 0 and "paired" not in res


def test_the_step_timer_leaves_out_what_runs_between_repeats(monkeypatch):
    import types

    import keras

    # The worker's clock only moves when `after` runs (between repeats):
    # what it times must then be zero.
    clock = [0.0]
    monkeypatch.setattr(
        worker, "time", types.SimpleNamespace(perf_counter=lambda: clock[0])
    )
    calls = []

    def after():
        clock[0] += 100.0
        calls.append(1)

    timer = worker.step_timer(2, after=after)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    x = np.zeros((8, 3), "float32")
    model.fit(x, x[:, :1], batch_size=2, epochs=1, verbose=0, callbacks=[timer])
    assert len(calls) == 2  # 4 batches, 2 a repeat
    assert timer.times == [0.0, 0.0]
