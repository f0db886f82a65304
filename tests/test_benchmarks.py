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
serving = _load("serving")


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


@pytest.mark.parametrize(
    "name, backend, env",
    [
        ("torch-malloc", "torch", {"MALLOC_MMAP_MAX_": "0"}),
        (
            "jax-nocopy",
            "jax",
            {"XLA_FLAGS": "--xla_cpu_copy_insertion_use_region_analysis=true"},
        ),
    ],
)
def test_a_contender_with_settings_runs_in_a_process_under_them(
    monkeypatch, name, backend, env
):
    spec = workloads.contender_spec(name)
    assert spec["backend"] == backend
    assert env.items() <= spec["env"].items()
    assert name in run.PAIRED_CONTENDERS
    assert name in run.SHOWN_MODES[backend]
    argv = ["worker.py", "--contender", name, "--out", "x.json"]
    monkeypatch.setattr(sys, "argv", argv)
    calls = []
    monkeypatch.setattr(worker.os, "execve", lambda *a: calls.append(a))
    for name in spec["env"]:
        monkeypatch.delenv(name, raising=False)
    worker.restart_under(spec["env"])
    # Started again: the same worker, the same arguments, under the env.
    ((executable, args, env),) = calls
    assert executable == sys.executable
    assert args[1] == str(BENCH / "worker.py") and args[2:] == argv[1:]
    assert {k: env[k] for k in spec["env"]} == spec["env"]
    # Already under it: the worker goes on in this process.
    for name, value in spec["env"].items():
        monkeypatch.setenv(name, value)
    worker.restart_under(spec["env"])
    assert len(calls) == 1


def test_memory_target_counts_each_backend_in_its_default_mode():
    results = _results(
        reference=_figures(2.0, memory=800),
        jax=_figures(1.9, memory=700),
        tensorflow=_figures(2.2, memory=820),
        torch=_figures(2.0, memory=900),
        **{"torch-compile": _figures(2.1, memory=1200)},
    )
    _, status, figures = _target(results, 5)
    assert status == "met", figures
    counted, others = figures.split("not counted (another mode or setting): ")
    assert "torch 900 MiB (1.12x)" in counted
    assert "torch-compile 1200 MiB (1.50x)" in others
    # Eager torch over 1.2x: not met, whatever torch.compile or XLA show.
    results["torch"] = {"workloads": {"recap": _figures(2, 1200)}}
    results["torch-compile"] = {"workloads": {"recap": _figures(2, 900)}}
    assert _target(results, 5)[1] == "NOT met"
    results["torch"] = {"workloads": {"recap": _figures(2, 900)}}
    results["tensorflow-xla"] = {"workloads": {"recap": _figures(2, 700)}}
    results["tensorflow"] = {"workloads": {"recap": _figures(2, 1000)}}
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
        torch=_figures(2.0),
        **{
            "torch-compile": _figures(1.8),
            "torch-malloc": _figures(2.6),
            "tensorflow-xla": _figures(2.5),
        },
    )
    status, figures = _target(results, 1)[1:]
    assert status == "met", figures
    counted, others = figures.split("not counted (another mode or setting): ")
    assert "recap/torch 1.00x" in counted
    assert "recap/tensorflow 1.03x" in counted
    # The other modes and settings are shown, not counted.
    assert "recap/torch-compile 1.11x" in others
    assert "recap/torch-malloc 0.77x" in others
    assert "recap/tensorflow-xla 0.80x" in others
    # Eager torch counts: torch.compile does not make up for it ...
    results["torch"] = {"workloads": {"recap": _figures(2.5)}}
    assert _target(results, 1)[1] == "NOT met"
    # ... nor XLA for TensorFlow.
    results["torch"] = results["jax"]
    results["tensorflow"] = {"workloads": {"recap": _figures(2.5)}}
    results["tensorflow-xla"] = {"workloads": {"recap": _figures(1.0)}}
    status, figures = _target(results, 1)[1:]
    assert status == "NOT met"
    assert "recap/tensorflow 0.80x (fails)" in figures
    # A backend without a figure: not shown, even if the others pass.
    del results["tensorflow"], results["tensorflow-xla"]
    status, figures = _target(results, 1)[1:]
    assert status == "NOT shown" and "no figure: recap/tensorflow" in figures


def test_each_missed_target_names_its_measured_cause_or_none():
    results = _results(
        reference=_figures(2.0, memory=800),
        jax=_figures(1.9, memory=700),
        tensorflow=_figures(2.5, memory=700),
        torch=_figures(2.2, memory=1200),
    )
    found = run.targets(run.rows(results))
    lines = run.causes(found)
    # torch misses 1 and 5, tensorflow misses 1: one line each, in order.
    assert [line.split(":")[0] for line in lines] == [
        "- target 1, tensorflow",
        "- target 1, torch",
        "- target 5, torch",
    ]
    assert lines[0].endswith("cause not measured.")
    assert "Keras' Adam" in lines[1] and "probes.py adam" in lines[1]
    assert "Keras' Adam" in lines[2]
    # Nothing to explain where every target is met.
    results["tensorflow"] = results["torch"] = results["jax"]
    assert run.causes(run.targets(run.rows(results))) == []


def test_a_contender_without_inference_figures_renders():
    results = _results(
        reference=_figures(2.0, memory=800),
        jax=_figures(2.0, memory=800),
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
    header, cells = _row(text, "| torch-bf16 |")
    assert cells[header.index("infer samples/s @1024")] == "-", cells
    # The bfloat16 rows have a table of their own: none of their ratios
    # stands among the float32 ones.
    header, cells = _row(text, "| jax-bf16 |")
    assert "x reference-bf16" in header and "x its float32" in header
    assert cells[header.index("x reference-bf16")] == "45.45"
    for table_rows in _tables(text):
        if any("% of GEMM" in h for h in table_rows[0]):
            assert not any("bf16" in "".join(r) for r in table_rows)
    # Without bfloat16 units the reference's bfloat16 is emulated and run
    # once: target 3 is not measured, and no ratio to it is printed.
    name, status, figures = run.targets(table, bf16_units=False)[2]
    assert status.startswith("not measured"), status
    assert "45.45" not in figures
    assert "jax-bf16 trains at 0.91x the speed of jax in float32" in figures


def _tables(text):
    """Every Markdown table of `text`: a list of rows of stripped cells,
    the header first. A cell may hold an escaped `\\|`."""
    tables, current = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            if not line.startswith("|---"):
                cells = line.replace("\\|", "\0").split("|")[1:-1]
                current.append([c.strip().replace("\0", "|") for c in cells])
        elif current:
            tables.append(current)
            current = []
    return tables


def _row(text, marker):
    """(header, cells) of the first table row whose line has `marker`."""
    for table in _tables(text):
        for row in table[1:]:
            if marker.strip("| ") in row:
                return table[0], row
    raise AssertionError(f"no row {marker!r} in:\n{text}")


def test_tables_and_lists_render_as_tables_and_lists():
    """Every table row has its header's number of cells (a `|` in a
    figure is escaped), and a list starts after a blank line (else
    Markdown runs it into the paragraph before)."""
    folder = REPO / "docs" / "benchmarks"
    for page in (folder / "index.md", folder / "paired" / "index.md"):
        text = page.read_text()
        for table in _tables(text):
            assert {len(r) for r in table} == {len(table[0])}, table
        lines = text.splitlines()
        for before, line in zip(lines, lines[1:]):
            if line.startswith("- "):
                assert before == "" or before.startswith(("- ", "  ")), (
                    f"{page.name}: a list item after {before!r}"
                )
        assert "max |p" not in text  # the | of |p - p_f32| is escaped


def test_every_met_is_checked_against_the_figures_it_prints():
    with pytest.raises(AssertionError):
        run._checked(("t", "met", "a 0.90x"), [("a 0.90x", False)])
    with pytest.raises(AssertionError):
        run._checked(("t", "NOT met", "a 1.10x"), [("a 1.10x", True)])
    with pytest.raises(AssertionError):  # a counted figure not printed
        run._checked(("t", "met", ""), [("a 1.10x", True)])
    assert run.shown(0.997, 2, 1.0) == "0.997"  # not "1.00" beside 1.0
    assert run.shown(1.0, 2, 1.0) == "1.00"
    # Target 5 prints the figure each backend counts with first; the other
    # modes come after, marked as not counted, and change nothing.
    results = _results(
        reference=_figures(2.0, memory=800),
        jax=_figures(1.9, memory=700),
        tensorflow=_figures(2.2, memory=820),
        torch=_figures(2.0, memory=1300),
        **{"torch-compile": _figures(2.1, memory=900)},
    )
    status, figures = _target(results, 5)[1:]
    counted, others = figures.split("not counted (another mode or setting): ")
    assert status == "NOT met" and "torch-compile 900 MiB" in others
    assert "torch 1300 MiB (1.62x) (fails)" in counted


def test_a_timed_out_contender_says_where():
    results = _results(reference=_figures(2.0), jax=_figures(1.9))
    results["tensorflow-xla"] = {
        "error": "timed out after 58 s",
        "spec": {"workloads": ["recap", "paper-parallel"]},
        "workloads": {"recap": _figures(2.0)},
    }
    results["torch-bf16"] = {"error": "skipped: over the time budget"}
    table = run.rows(results)
    doc = {"table": table, "gemm": {}, "targets": run.targets(table)}
    doc.update(results=results, workloads=list(workloads.WORKLOADS))
    text = run.markdown(doc)
    assert (
        "- tensorflow-xla: timed out after 58 s during `paper-parallel`; "
        "its `recap` figures above are complete." in text
    ), text
    assert "- torch-bf16: skipped: over the time budget; none of" in text


def test_every_chart_gives_a_backend_one_colour():
    assert run.backend_of("torch-compile") == run.backend_of("torch")
    assert run.backend_of("tensorflow-xla") == "tensorflow"
    assert run.backend_of("jax-bf16") == "jax"
    assert run.backend_of("reference-bf16") == "reference"
    assert set(run.BACKEND_COLOURS) == {
        "reference",
        "tensorflow",
        "jax",
        "torch",
    }


def test_the_benchmark_pages_lead_with_the_paired_ratios():
    folder = REPO / "docs" / "benchmarks"
    main = (folder / "index.md").read_text()
    paired = (folder / "paired" / "index.md").read_text()
    # Distinct pages, distinct titles.
    assert main.splitlines()[0] == "# Benchmarks"
    assert paired.splitlines()[0] == "# Training in turns with the reference"
    # The first figure and the first table of the main page are the paired
    # ratios (with their range), before the separate processes' ones.
    images = [line for line in main.splitlines() if line.startswith("![")]
    assert "paired/chart.png" in main.split("](chart.png)")[0]
    assert images and "paired" in images[0]
    first = _tables(main)[0]
    assert "x ref, paired (min - max)" in first[0], first
    # Each page says which machine produced its figures, and whether it
    # has bfloat16 units.
    for text in (main, paired):
        assert "bfloat16 units" in text.split("\n## ")[1], text[:2000]


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
    # docs/benchmarks/paired/results.json --out-dir docs/benchmarks/paired`
    # brings both pages up to date (the main page leads with the paired
    # ratios, so it is rendered again after the paired one).
    folder = REPO / "docs" / "benchmarks" / page
    with open(folder / "results.json") as f:
        doc = json.load(f)
    # The main page leads with the paired run's ratios.
    paired = run.load_paired(str(folder)) if page == "" else None
    assert (paired is not None) == (page == "")
    run.render(doc, str(tmp_path), paired)
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
    header, cells = _row(text, "| torch |")
    column = header.index("x ref, paired (min - max)")
    assert cells[column] == "0.95 (0.93 - 0.97, n=3)"
    # The reference is the baseline: it has no paired row.
    (paired,) = [t for t in _tables(text) if header == t[0]]
    assert not any(r[1] == "reference" for r in paired[1:]), paired
    # Without paired figures: the separate processes' ratios, no column.
    for name in ("jax", "tensorflow", "torch"):
        del results[name]["workloads"]["recap"]["paired"]
    assert _target(results, 1)[1] == "met"  # 2.0 s / 1.9 s: 1.05x each
    table = run.rows(results)
    doc = {"table": table, "gemm": {}, "targets": run.targets(table)}
    doc["results"] = results
    assert "paired" not in run.markdown(doc)


def test_paired_bf16_ratios_count_for_the_bf16_target_when_measured():
    # Separate processes put tensorflow-bf16 ahead of reference-bf16; in
    # turns with the reference under autocast it is behind: the paired
    # ratios decide, and torch-malloc-bf16 and torch-compile-bf16 are
    # shown, not counted.
    def bf16(seconds, ratios):
        return _figures(seconds, bf16_max_abs_diff=1e-4, paired=_paired(ratios))

    results = _results(
        reference=_figures(2.0),
        **{
            "reference-bf16": _figures(1.0),
            "jax-bf16": bf16(0.9, [1.1, 1.2, 1.0]),
            "tensorflow-bf16": bf16(0.9, [0.96, 0.98, 0.97]),
            "torch-bf16": bf16(0.9, [1.0, 1.02, 1.01]),
            "torch-malloc-bf16": bf16(0.9, [0.5, 0.6, 0.55]),
            "torch-compile-bf16": bf16(0.9, [1.3, 1.2, 1.25]),
        },
    )
    name, status, figures = _target(results, 3)
    assert name.endswith("(paired rounds)")
    assert status == "NOT met", figures
    assert "tensorflow-bf16 0.97x (max |p - p_f32| 1.0e-04) (fails)" in figures
    assert "jax-bf16 1.10x" in figures and "torch-bf16 1.01x" in figures
    counted, others = figures.split("not counted (another mode or setting): ")
    assert "torch-malloc-bf16 0.55x" in others
    assert "torch-compile-bf16 1.25x" in others
    assert "torch-malloc-bf16" not in counted
    assert "torch-compile-bf16" not in counted
    # The float32 target is not changed by the bfloat16 pairs.
    assert "bf16" not in _target(results, 1)[2]
    # Without paired figures: the separate processes' ratios, 1.11x each.
    for name in ("jax-bf16", "tensorflow-bf16", "torch-bf16"):
        del results[name]["workloads"]["recap"]["paired"]
    name, status, figures = _target(results, 3)
    assert status == "met" and not name.endswith("(paired rounds)")


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


def test_the_worker_times_repeats_and_pairs_with_the_reference(
    tiny_workload, monkeypatch
):
    import keras

    def run(**kwargs):
        return worker.run_keras(
            tiny_workload,
            keras.backend.backend(),
            "auto",
            "float32",
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
    # In bfloat16 the reference it pairs with trains under autocast.
    seen = []
    monkeypatch.setattr(
        worker, "paired_rounds", lambda *a, **kw: seen.append(kw) or {}
    )
    worker.run_keras(
        tiny_workload,
        keras.backend.backend(),
        "auto",
        "bfloat16",
        repeats=1,
        warmup=0,
        do_latency=False,
        do_inference=False,
        check_samples=8,
        paired=1,
    )
    assert seen == [{"precision": "bfloat16"}]


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


def _serving_table(**x_reference):
    """A serving table: each path's ratio to the reference at batch 1 and
    32 (`(x1, x32)`), the reference at 1 ms and 3 ms."""
    table = {
        "reference": {
            "recommended": False,
            "1": {"p50_ms": 1.0, "x_reference": 1.0},
            "32": {"p50_ms": 3.0, "x_reference": 1.0},
        }
    }
    for path, (x1, x32) in x_reference.items():
        table[path.replace("_", "-")] = {
            "recommended": serving.PATHS[path.replace("_", "-")][1],
            "1": {"p50_ms": 1.0 / x1, "x_reference": x1},
            "32": {"p50_ms": 3.0 / x32, "x_reference": x32},
        }
    for entry in table.values():
        for batch in ("1", "32"):
            entry[batch]["range_ms"] = [entry[batch]["p50_ms"]] * 2
    return table


def test_serving_targets_need_each_backend_at_both_batches():
    table = _serving_table(
        torch_eager=(0.3, 0.5),
        torch_aoti=(2.0, 1.2),
        jax_jit=(2.8, 1.5),
        tensorflow=(0.5, 0.8),
        tensorflow_xla=(1.01, 0.997),
    )
    found = {
        name: (status, figures)
        for name, status, figures in serving.targets(table)
    }
    # The best recommended path counts; 0.997x is not printed as 1.00x.
    assert found[
        "serving, tensorflow (tensorflow-xla) >= 1.0x the reference"
    ] == ("NOT met", "b1 1.01x, b32 0.997x")
    assert found["serving, torch (torch-aoti) >= 1.0x the reference"] == (
        "met",
        "b1 2.00x, b32 1.20x",
    )
    # Keras' eager torch path: within 2x at batch 32 (6.0 ms vs 3.0 ms).
    (eager,) = [v for k, v in found.items() if k.startswith("torch eager")]
    assert eager == ("met", "2.00x slower (6.00 ms vs 3.00 ms)")
    table["torch-eager"]["32"] = {"p50_ms": 6.3, "x_reference": 3.0 / 6.3}
    (eager,) = [
        status
        for name, status, _ in serving.targets(table)
        if name.startswith("torch eager")
    ]
    assert eager == "NOT met"
    # A backend whose recommended path failed: not shown.
    table["jax-jit"] = {"recommended": True, "failed": "ImportError: ..."}
    assert ("serving, jax", "NOT shown", "no figures") in serving.targets(table)


def test_a_missed_serving_target_names_its_measured_cause():
    met = dict(torch_eager=(0.3, 0.6), torch_aoti=(2.0, 1.2))
    met.update(jax_jit=(2.8, 1.5), tensorflow=(0.5, 0.8))
    doc = {
        "calls": 200,
        "rounds": 3,
        "date": "today",
        "load": [0.5, 0.5],
        "machine": {"cpu": "cpu", "cores": 2, "bf16_units": "no"},
    }
    for xla, why in (((1.2, 1.1), None), ((1.2, 0.9), "fixed cost per call")):
        doc["table"] = _serving_table(**met, tensorflow_xla=xla)
        doc["targets"] = serving.targets(doc["table"])
        text = serving.markdown(doc)
        assert ("not met, and why" in text) == (why is not None)
        if why:
            line = text.split("not met, and why:")[1].strip()
            assert line.startswith("- serving, tensorflow (tensorflow-xla)")
            assert why in line and "probes.py call-overhead" in line


def test_the_committed_serving_page_matches_its_results(tmp_path, capsys):
    # After a change to serving.py's rendering or targets: `python
    # benchmarks/serving.py --from-json docs/benchmarks/serving.json
    # --out-dir docs/benchmarks`.
    folder = REPO / "docs" / "benchmarks"
    doc = json.loads((folder / "serving.json").read_text())
    serving.write(doc, str(tmp_path))
    for name in ("serving.md", "serving.json"):
        assert (tmp_path / name).read_text() == (folder / name).read_text()
