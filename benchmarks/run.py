"""keras-masknet against the reference: `make bench` or
`python benchmarks/run.py [--quick] [--workloads ...] [--contenders ...]`.

Runs every contender in a process of its own (`worker.py`), one after the
other, then writes `docs/benchmarks/index.md` (the table and the targets),
`results.json` and `chart.png`, and prints the table. `--from-json` renders
an earlier `results.json` again without running anything.
"""

import argparse
import datetime
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from typing import Any

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from workloads import BATCH  # noqa: E402
from workloads import CONTENDERS  # noqa: E402
from workloads import DEFAULT_CONTENDERS  # noqa: E402
from workloads import GEMM_SHAPE  # noqa: E402
from workloads import KEEP_FREED_MEMORY  # noqa: E402
from workloads import MEMORY_WORKLOAD  # noqa: E402
from workloads import WORKLOADS  # noqa: E402
from workloads import XLA_NO_DONATION_COPIES  # noqa: E402
from workloads import cpu_flags  # noqa: E402
from workloads import forward_flops  # noqa: E402
from workloads import has_bf16_units  # noqa: E402
from workloads import shown  # noqa: E402
from workloads import train_flops  # noqa: E402

OUT_DIR = os.path.join(REPO, "docs", "benchmarks")
#: `--quick`: the small workloads, the four float32 contenders.
QUICK_CONTENDERS = ["reference", "tensorflow", "jax", "torch"]
QUICK_WORKLOADS = ["paper-parallel", "paper-serial"]
#: `--paired`: the modes target 1 counts (COUNTED_MODES) and, shown beside
#: them, torch.compile, eager torch under `KEEP_FREED_MEMORY` and JAX
#: under `XLA_NO_DONATION_COPIES`, each in turns with the reference; on a
#: CPU with bfloat16 units, target 3's contenders too, in turns with the
#: reference under autocast, and beside them eager torch under
#: `KEEP_FREED_MEMORY` and torch.compile (PAIRED_BF16_CONTENDERS).
PAIRED_CONTENDERS = [
    "reference",
    "jax",
    "tensorflow",
    "torch",
    "torch-compile",
    "torch-malloc",
    "jax-nocopy",
]
PAIRED_BF16_CONTENDERS = [
    "reference-bf16",
    "jax-bf16",
    "tensorflow-bf16",
    "torch-bf16",
    "torch-malloc-bf16",
    "torch-compile-bf16",
]


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def run_contender(
    name: str,
    workloads: list[str],
    repeats: int,
    timeout: int,
    paired: int = 0,
) -> dict[str, Any]:
    fd, path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    cmd = [
        sys.executable,
        os.path.join(HERE, "worker.py"),
        "--contender",
        name,
        "--workloads",
        ",".join(workloads),
        "--repeats",
        str(repeats),
        "--paired",
        str(paired),
        "--out",
        path,
    ]
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", PYTHONWARNINGS="ignore")
    start = time.perf_counter()
    try:
        proc = subprocess.run(
            cmd, env=env, timeout=timeout, stderr=subprocess.PIPE, text=True
        )
        if proc.returncode != 0:
            return {"error": proc.stderr[-2000:]}
        with open(path) as f:
            return json.load(f)
    except subprocess.TimeoutExpired:
        # The workloads it finished are in the file (worker.py writes it
        # after each one).
        out = {"error": f"timed out after {timeout} s"}
        if os.path.getsize(path):
            with open(path) as f:
                out.update(json.load(f))
        return out
    finally:
        os.unlink(path)
        print(
            f"  {name}: {time.perf_counter() - start:.0f} s",
            file=sys.stderr,
            flush=True,
        )


# --- derived figures ------------------------------------------------------


def gemm_yardstick(results: dict[str, Any]) -> dict[str, Any]:
    """The fastest framework's float32 (and bfloat16) GEMM rate."""
    best: dict[str, Any] = {}
    for res in results.values():
        for fw, rates in res.get("gemm", {}).items():
            for dtype, rate in rates.items():
                cur = best.get(dtype)
                if cur is None or rate["median_gflops"] > cur["gflops"]:
                    best[dtype] = {
                        "gflops": rate["median_gflops"],
                        "framework": fw,
                    }
    return best


def serving(res: dict[str, Any]) -> dict[str, Any]:
    """The faster inference path (predict_on_batch or a direct call)."""
    paths = {"predict_on_batch": res.get("infer")}
    if "infer_direct" in res:
        paths["direct"] = res["infer_direct"]
    paths = {k: v for k, v in paths.items() if v is not None}
    if paths:
        name = max(paths, key=lambda p: paths[p]["median_samples_per_s"])
        out = {"infer_path": name, "infer": paths[name]["median_samples_per_s"]}
    else:  # a contender that skips it (slow emulated bfloat16)
        out = {"infer_path": "not measured", "infer": None}
    lat = res.get("latency")
    if lat:
        for batch in ("1", "32"):
            best = min(lat, key=lambda p: lat[p][batch]["p50_ms"])
            out[f"p50_{batch}"] = lat[best][batch]["p50_ms"]
            out[f"p50_{batch}_path"] = best
    return out


def rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    gemm = gemm_yardstick(results).get("float32", {}).get("gflops")
    out = []
    for workload in WORKLOADS:
        ref = results.get("reference", {}).get("workloads", {}).get(workload)
        ref16 = (
            results.get("reference-bf16", {}).get("workloads", {}).get(workload)
        )
        for name, res in results.items():
            wl = res.get("workloads", {}).get(workload)
            if wl is None:
                continue
            bf16 = CONTENDERS[name].get("precision") == "bfloat16"
            base = ref16 if bf16 and ref16 is not None else ref
            if name == "reference-bf16":
                base = ref  # itself against float32
            train = wl["train"]["median_samples_per_s"]
            row: dict[str, Any] = {
                "workload": workload,
                "contender": name,
                "precision": "bfloat16" if bf16 else "float32",
                "train": train,
                "n": len(wl["train"]["seconds"]),
                "train_best": wl["train"]["best_samples_per_s"],
                "gflops": train * train_flops(workload) / 1e9,
                # Only the first workload of a process measures growth:
                # the later ones reuse memory the allocator already holds.
                "memory_mib": wl["memory"]["growth_mib"]
                if workload == MEMORY_WORKLOAD
                else None,
                "jit_compile": wl.get("jit_compile"),
                "vs": "reference-bf16"
                if base is ref16 and bf16
                else "reference",
            }
            row["gemm_fraction"] = row["gflops"] / gemm if gemm else None
            row.update(serving(wl))
            row["infer_gflops"] = (
                None
                if row["infer"] is None
                else row["infer"] * forward_flops(workload) / 1e9
            )
            if "bf16_max_abs_diff" in wl:
                row["bf16_max_abs_diff"] = wl["bf16_max_abs_diff"]
            if "paired" in wl:
                # Keras and the reference in turns, in this process.
                ratios = wl["paired"]["ratios"]
                row["train_x_paired"] = wl["paired"]["median_ratio"]
                row["paired_range"] = (min(ratios), max(ratios))
                row["paired_n"] = len(ratios)
            if base is not None:
                bs = serving(base)
                row["train_x"] = train / base["train"]["median_samples_per_s"]
                if row["infer"] is not None and bs["infer"] is not None:
                    row["infer_x"] = row["infer"] / bs["infer"]
                for b in ("1", "32"):
                    if f"p50_{b}" in row and f"p50_{b}" in bs:
                        # > 1 means faster (lower latency) than the reference.
                        row[f"p50_{b}_x"] = bs[f"p50_{b}"] / row[f"p50_{b}"]
                if row["memory_mib"] is not None:
                    ref_mem = max(base["memory"]["growth_mib"], 1.0)
                    row["memory_x"] = row["memory_mib"] / ref_mem
            out.append(row)
    return out


# --- targets --------------------------------------------------------------

#: The mode each backend counts with in the targets: its default, what
#: `model.fit` gives a user who sets nothing (eager on PyTorch, no XLA on
#: TensorFlow on a CPU, XLA on JAX, which always compiles).
COUNTED_MODES = {
    "tensorflow": ["tensorflow"],
    "jax": ["jax"],
    "torch": ["torch"],
}
#: Other modes and settings, shown beside the counted ones in targets 1
#: and 5 but not counted: `jit_compile=True` on PyTorch (torch.compile,
#: which docs/guide/performance.md recommends for long runs and tight
#: memory) and on TensorFlow (XLA), eager PyTorch under an allocator
#: that keeps freed memory (`torch-malloc`, the guide's setting for eager
#: training on a CPU) and JAX under the XLA flag that spares the copies of
#: the donated state (`jax-nocopy`, the guide's setting for JAX on a CPU).
SHOWN_MODES = {
    "jax": ["jax-nocopy"],
    "tensorflow": ["tensorflow-xla"],
    "torch": ["torch-compile", "torch-malloc"],
}
#: What precedes the SHOWN_MODES' figures in a target's line.
NOT_COUNTED = "not counted (another mode or setting): "


def has_paired(table: list[dict[str, Any]]) -> bool:
    """Whether the rows have paired-round ratios (`--paired`)."""
    return any("train_x_paired" in r for r in table)


def _by_backend(
    by: dict[tuple[str, str], Any], workload: str, key: str, suffix: str = ""
) -> tuple[dict[str, list[tuple[float, str]]], list[str]]:
    """The backends' figures `key` at `workload`: {backend: [(value,
    contender), ...]} over its counted modes (with `suffix`, e.g. "-bf16"),
    and the backends that have none."""
    found, missing = {}, []
    for backend, names in COUNTED_MODES.items():
        xs = [
            (by[(workload, n + suffix)][key], n + suffix)
            for n in names
            if key in by.get((workload, n + suffix), {})
        ]
        if xs:
            found[backend] = xs
        else:
            missing.append(backend)
    return found, missing


def _shown_rows(
    by: dict[tuple[str, str], Any],
    workloads: list[str],
    key: str,
    suffix: str = "",
) -> list[tuple[str, str, dict[str, Any]]]:
    """(workload, contender, row) of each SHOWN_MODES contender (with
    `suffix`) that has the figure `key`: those printed beside the counted
    ones, not counted."""
    return [
        (workload, n + suffix, by[(workload, n + suffix)])
        for workload in workloads
        for names in SHOWN_MODES.values()
        for n in names
        if key in by.get((workload, n + suffix), {})
    ]


def _status(ok: bool, found: bool, missing: list[str]) -> str:
    """A target over every backend: met only if each has a figure."""
    if not found:
        return "not measured"
    if not ok:
        return "NOT met"
    return "NOT shown" if missing else "met"


def _mark(text: str, passes: bool) -> str:
    """A counted figure as printed: one that misses its target says so."""
    return text if passes else f"{text} (fails)"


def _checked(
    target: tuple[str, str, str], counted: list[tuple[str, bool]]
) -> tuple[str, str, str]:
    """`target`, after checking its status against the counted figures it
    prints, `(text, passes)` each: "met" only if every one passes (and each
    is printed), "NOT met" only if one does not."""
    name, status, figures = target
    for text, passes in counted:
        assert _mark(text, passes) in figures, (target, text)
    if status == "met" or status == "NOT shown":
        assert counted and all(ok for _, ok in counted), (target, counted)
    if status == "NOT met":
        assert not all(ok for _, ok in counted), (target, counted)
    return target


#: What a probe measured as the cause where a counted figure misses its
#: target, by (target number, contender); `benchmarks/NOTES.md` has the
#: runs. A miss without an entry is printed as "cause not measured".
KNOWN_CAUSES = {
    ("1", "torch"): "Keras' Adam on the torch backend: its `_foreach` ops "
    "run out of place, and under glibc's default malloc each full-size "
    "temporary is a fresh `mmap` whose pages fault in one by one: one "
    "update of recap's 42.5 M weights took 222-294 ms and 112,000-177,000 "
    "page faults against 57-80 ms for `torch.optim.Adam` (`probes.py "
    "adam`); with SGD instead, eager keras-masknet trained at 0.99-1.01x "
    "the reference (`probes.py optimizer`). torch-malloc, shown beside, "
    "keeps freed memory (`KEEP_FREED_MEMORY`: the update 71-115 ms, no "
    "faults; at recap 0.93-1.00x the reference in five processes against "
    "0.82-0.89x in five without, taken in alternation: it narrows the "
    "gap, it does not close it); `jit_compile=True` fuses the update "
    "(torch-compile). `probes.py torch-step` takes the step apart, in "
    "turns with the reference, plain loops on the same batches: the "
    "layers' forward and backward pass 0.96-0.98x the reference's at the "
    "paper workloads (0.99x at recap; the profiler finds their kernels' "
    "time level, the rest is Keras' per-op dispatch: 3.5 against 2.1-2.3 "
    "ms a forward and backward pass at batch 1, paper-parallel); with "
    "`torch.optim.Adam` on the same variables 0.97-1.00x "
    "the reference's step (0.99-1.01x), with Keras' Adam 0.94-0.97x "
    "(0.89-0.90x), `model.fit` 0.93-0.94x (0.88x). At paper-parallel "
    "(three runs, steps of 103-118 ms) the layers cost 1.3-3.5 ms a step "
    "more than the reference's, Keras' Adam 3.5-4.6 ms more than "
    "`torch.optim.Adam`, `fit` 1.1-3.4 ms more than the loop. Upstream "
    "report: "
    "benchmarks/upstream/UPSTREAM.md.",
    ("5", "torch"): "Keras' Adam on the torch backend: its `_foreach` ops "
    "run out of place, and one update of recap's 170 MB of weights holds "
    "up to three full-size temporaries at once: its peak 486-497 MiB above "
    "the memory before it, against 64 MiB for `torch.optim.Adam`'s "
    "for-loop (benchmarks/upstream/keras_torch_adam.py). Allocator "
    "settings do not lower it (torch-malloc); torch-compile, shown beside, "
    "fuses the update.",
    ("3", "torch-bf16"): "Keras' Adam again: in turns with the reference "
    "under autocast, 0.77-0.78x with Adam and 1.01x with SGD (`probes.py "
    "optimizer --precision bfloat16`); with Adam under "
    "`KEEP_FREED_MEMORY` (both), 0.96x (torch-malloc-bf16, shown beside); "
    "under `jit_compile=True`, which fuses the update, 1.07x in one probe "
    "and 1.08-1.09x in two runs of `make bench-paired`, in turns "
    "(torch-compile-bf16, shown beside).",
    ("3", "jax-bf16"): "XLA:CPU runs bfloat16 dots at float32 speed, with "
    "or without its oneDNN and XNNPACK flags (`probes.py bf16-gemm "
    "--framework jax`); on a CPU, train JAX in float32. Upstream report: "
    "benchmarks/upstream/UPSTREAM.md.",
    ("1", "jax"): "Keras' JAX trainer donates its state to the jitted "
    "step (`donate_argnums=0`), and XLA:CPU's copy insertion then copies "
    "most donated weights once a step (2.18 M of 3.10 M at "
    "paper-parallel; benchmarks/upstream/xla_cpu_donation.py): in turns "
    "with the reference, the step jitted without donation ran at "
    "0.97-0.99x, donated 0.95x, Keras' `train_function` 0.94-0.95x "
    "(`probes.py jax-step`, two runs). jax-nocopy, shown beside, runs "
    "under `--xla_cpu_copy_insertion_use_region_analysis=true` (no "
    "copies): at paper-parallel 0.97-1.00x against 0.93-0.94x in two "
    "processes each, taken in alternation; paper-serial 0.94-0.97x against "
    "0.93-0.96x. What remains is XLA:CPU's compiled step itself: its "
    "products level with PyTorch's (`probes.py gemm-layouts`: forward, "
    "input and weight gradients 34 / 34 / 35 ms a step at paper-parallel, "
    "25 / 24 / 25 at paper-serial, in both), its column sums (the bias "
    "gradients) 80-180 us against 13-35 us in PyTorch; "
    "`fit` adds 0.4 ms a step (`probes.py fit-overhead`). Upstream report: "
    "benchmarks/upstream/UPSTREAM.md.",
}

#: A counted figure that missed: "[workload/]contender ... (fails)".
_MISS = re.compile(r"(?:^|[,;] )(?:[\w.-]+/)?([\w.-]+) [^,;]*?\(fails\)")


def causes(target_rows: list[tuple[str, str, str]]) -> list[str]:
    """One line per contender whose counted figure misses a target: the
    cause a probe measured (`KNOWN_CAUSES`), or that none was."""
    lines = []
    for name, status, figures in target_rows:
        number = name.split(".", 1)[0]
        if status != "NOT met":
            continue
        for contender in dict.fromkeys(_MISS.findall(figures)):
            cause = KNOWN_CAUSES.get((number, contender), "cause not measured.")
            lines.append(f"- target {number}, {contender}: {cause}")
    return lines


def targets(
    table: list[dict[str, Any]], bf16_units: bool | None = None
) -> list[tuple[str, str, str]]:
    """(target, "met"/"NOT met"/"NOT shown"/"not measured", figures) for
    each target; a backend counts with its default mode (COUNTED_MODES).
    Every "met" is checked against the counted figures printed beside it.
    `bf16_units=False` (a CPU without bfloat16 units, where the reference
    under bfloat16 autocast is emulated and runs once without warm-up)
    leaves target 3 not measured."""
    by = {(r["workload"], r["contender"]): r for r in table}
    out = []
    # 1. every backend >= 1.0x the reference in training, every workload
    # that ran.
    # With paired rounds (`--paired`) the ratios measured in turns with the
    # reference, in each contender's process, count instead.
    paired = has_paired(table)
    key = "train_x_paired" if paired else "train_x"
    figures, ok, seen, missing = [], True, False, []
    judged: list[tuple[str, bool]] = []
    for workload in WORKLOADS:
        if (workload, "reference") not in by:
            continue  # not in this run
        found, lacking = _by_backend(by, workload, key)
        missing += [f"{workload}/{b}" for b in lacking]
        for xs in found.values():
            seen = True
            x, n = max(xs)
            ok &= x >= 1.0
            judged.append((f"{workload}/{n} {shown(x, 2, 1.0)}x", x >= 1.0))
            figures.append(_mark(*judged[-1]))
    if missing:
        figures.append(f"no figure: {', '.join(missing)}")
    ran = [w for w in WORKLOADS if (w, "reference") in by]
    others = [
        f"{workload}/{n} {row[key]:.2f}x"
        for workload, n, row in _shown_rows(by, ran, key)
    ]
    if others:
        figures.append(NOT_COUNTED + ", ".join(others))
    target = (
        "1. training >= 1.0x the reference, every backend in its default "
        "mode, every workload" + (" (paired rounds)" if paired else ""),
        _status(ok, seen, missing),
        ", ".join(figures),
    )
    out.append(_checked(target, judged))
    # 2. recap: the best backend >= 90% of the float32 GEMM rate.
    counted = {n for names in COUNTED_MODES.values() for n in names}
    recap = [
        r
        for r in table
        if r["workload"] == "recap"
        and r["contender"] in counted
        and r["gemm_fraction"] is not None
    ]
    if recap:
        best = max(recap, key=lambda r: r["gemm_fraction"])
        passes = best["gemm_fraction"] >= 0.9
        share = shown(100 * best["gemm_fraction"], 0, 90.0)
        text = f"{best['contender']} {share}%"
        target = (
            "2. recap: best backend >= 90% of the float32 GEMM rate",
            "met" if passes else "NOT met",
            _mark(text, passes),
        )
        out.append(_checked(target, [(text, passes)]))
    else:
        out.append(("2. recap GEMM fraction", "not measured", ""))
    # 3. mixed_bfloat16: every backend >= the reference under autocast;
    # with paired rounds in bfloat16, those ratios count instead.
    paired16 = any(
        "train_x_paired" in by.get(("recap", n + "-bf16"), {})
        for names in COUNTED_MODES.values()
        for n in names
    )
    key16 = "train_x_paired" if paired16 else "train_x"
    found, missing = _by_backend(by, "recap", key16, suffix="-bf16")
    figures, ok = [], True
    judged = []
    for xs in found.values():
        x, n = max(xs)
        ok &= x >= 1.0
        diff = by[("recap", n)].get("bf16_max_abs_diff")
        ratio = shown(x, 2, 1.0)
        judged.append((f"{n} {ratio}x (max |p - p_f32| {diff:.1e})", x >= 1))
        figures.append(_mark(*judged[-1]))
    ref16 = by.get(("recap", "reference-bf16"))
    if ref16 and "train_x" in ref16:
        figures.append(
            f"reference-bf16 vs reference f32: {ref16['train_x']:.2f}x"
        )
    others = [
        f"{n} {row[key16]:.2f}x"
        for _, n, row in _shown_rows(by, ["recap"], key16, "-bf16")
    ]
    if others:
        figures.append(NOT_COUNTED + ", ".join(others))
    status = _status(ok, bool(found), missing)
    if found and missing:
        figures.append(f"no bfloat16 figure: {', '.join(missing)}")
    if ref16 is None and not paired16:
        # The ratios above are then against the float32 reference.
        status = "not measured: no reference-bf16 figure"
        figures = [f.replace("x (", "x the f32 reference (") for f in figures]
    elif bf16_units is False:
        # Emulated bfloat16: the reference's autocast step takes minutes
        # and runs once, without warm-up; no ratio to it is a comparison.
        status = "not measured: no bfloat16 units on this CPU"
        repeats = f"{ref16['n']} timed repeat" + "s" * (ref16["n"] != 1)
        figures = [
            "reference-bf16 is emulated on a CPU without bfloat16 units "
            f"({repeats}), so no ratio to it counts"
        ]
        for xs in found.values():
            _, n = max(xs)
            f32 = by.get(("recap", n.removesuffix("-bf16")))
            if f32 is not None:
                speed = by[("recap", n)]["train"] / f32["train"]
                figures.append(
                    f"{n} trains at {speed:.2f}x the speed of "
                    f"{f32['contender']} in float32"
                )
    target = (
        "3. recap, mixed_bfloat16: every backend >= reference-bf16"
        + (" (paired rounds)" if paired16 else ""),
        status,
        "; ".join(figures),
    )
    if not status.startswith("not measured"):
        target = _checked(target, judged)
    out.append(target)
    # 4. paper-parallel latency at batch 1 and 32 <= the reference's, on at
    # least one backend.
    cand = [
        r
        for r in table
        if r["workload"] == "paper-parallel"
        and r["contender"] in counted
        and "p50_1_x" in r
        and "p50_32_x" in r
    ]
    good = [r for r in cand if r["p50_1_x"] >= 1.0 and r["p50_32_x"] >= 1.0]
    if cand:
        best = max(cand, key=lambda r: min(r["p50_1_x"], r["p50_32_x"]))
        pick = good[0] if good else best
        text = (
            f"{pick['contender']} via {pick['p50_1_path']}: "
            f"b1 {pick['p50_1']:.2f} ms ({pick['p50_1_x']:.2f}x), "
            f"b32 {pick['p50_32']:.2f} ms ({pick['p50_32_x']:.2f}x)"
        )
        passes = pick["p50_1_x"] >= 1.0 and pick["p50_32_x"] >= 1.0
        target = (
            "4. paper-parallel latency (b=1, 32) <= reference, one backend",
            "met" if good else "NOT met",
            _mark(text, passes),
        )
        out.append(_checked(target, [(text, passes)]))
    else:
        out.append(("4. serving latency", "not measured", ""))
    # 5. recap memory growth <= 1.2x the reference's (float32), every
    # backend in its default mode; the other modes are shown.
    found, missing = _by_backend(by, "recap", "memory_x")
    figures, ok = [], True
    judged = []
    for xs in found.values():
        x, n = min(xs)
        ok &= x <= 1.2
        mib = by[("recap", n)]["memory_mib"]
        judged.append((f"{n} {mib:.0f} MiB ({shown(x, 2, 1.2)}x)", x <= 1.2))
        figures.append(_mark(*judged[-1]))
    others = [
        f"{m} {row['memory_mib']:.0f} MiB ({row['memory_x']:.2f}x)"
        for _, m, row in _shown_rows(by, ["recap"], "memory_x")
    ]
    status = _status(ok, bool(found), missing)
    if found and missing:
        figures.append(f"no figure: {', '.join(missing)}")
    if others:
        figures.append(NOT_COUNTED + ", ".join(others))
    target = (
        "5. recap memory growth <= 1.2x the reference's, every backend in "
        "its default mode",
        status,
        ", ".join(figures),
    )
    out.append(_checked(target, judged) if found else target)
    return out


# --- output ---------------------------------------------------------------

#: One colour per backend on every chart (the reference in grey); a
#: backend's other modes keep its colour and add a hatch.
BACKEND_COLOURS = {
    "reference": "#78909c",
    "tensorflow": "#ef6c00",
    "jax": "#3949ab",
    "torch": "#c62828",
}
MODE_HATCHES = {
    "compile": "//",
    "xla": "..",
    "fused": "xx",
    "malloc": "\\\\",
    "nocopy": "++",
}


def fmt(value: Any, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def backend_of(name: str) -> str:
    """The backend whose colour a contender takes ("reference" for it)."""
    spec = CONTENDERS.get(name, {})
    if spec.get("kind") == "reference":
        return "reference"
    return str(spec.get("backend", name.split("-")[0]))


def _cell(value: Any) -> str:
    """A Markdown table cell: a `|` in it would end the cell."""
    return str(value).replace("|", "\\|")


def _table(header: list[str], body: list[list[Any]]) -> list[str]:
    cells = [_cell(c) for c in header]
    lines = ["| " + " | ".join(cells) + " |", "|---" * len(header) + "|"]
    for row in body:
        lines.append("| " + " | ".join(_cell(c) for c in row) + " |")
    return lines


def machine_line(machine: dict[str, Any]) -> str:
    """The machine that produced a run's figures, in one line."""
    units = (
        "with bfloat16 units"
        if has_bf16_units(machine["flags"])
        else "without bfloat16 units"
    )
    return (
        f"{machine['cpu']}, {machine['cores']} cores, {units} "
        f"({', '.join(machine['flags'])}), Python {machine['python']}, "
        f"{machine['date']}"
    )


def _paired_cell(r: dict[str, Any]) -> str:
    low, high = r["paired_range"]
    return (
        f"{r['train_x_paired']:.2f} ({low:.2f} - {high:.2f}, n={r['paired_n']})"
    )


def paired_markdown(table: list[dict[str, Any]]) -> list[str]:
    """The paired training ratios, next to the separate processes' ones."""
    body = [
        [
            r["workload"],
            r["contender"],
            _paired_cell(r),
            fmt(r.get("train_x"), ".2f"),
        ]
        for r in table
        if "train_x_paired" in r
    ]
    header = [
        "workload",
        "contender",
        "x ref, paired (min - max)",
        "x ref, separate processes",
    ]
    return _table(header, body)


def _failures(doc: dict[str, Any]) -> list[str]:
    """One line per contender that failed, saying which workload it was
    on, and which of its workloads have complete figures anyway."""
    lines = []
    for name, res in doc["results"].items():
        if "error" not in res:
            continue
        error = res["error"].strip().splitlines()[-1]
        wanted = res.get("spec", CONTENDERS.get(name, {})).get("workloads")
        planned = [
            w
            for w in doc.get("workloads", WORKLOADS)
            if not wanted or w in wanted
        ]
        done = [w for w in planned if w in res.get("workloads", {})]
        left = [w for w in planned if w not in done]
        if not done and not res.get("workloads") and "spec" not in res:
            lines.append(f"- {name}: {error}; none of its workloads ran.")
            continue
        where = f" during `{left[0]}`" if left else ""
        line = f"- {name}: {error}{where}"
        if done:
            line += f"; its {', '.join(f'`{w}`' for w in done)} figures above "
            line += "are complete"
        if left[1:]:
            line += f"; {', '.join(f'`{w}`' for w in left[1:])} did not run"
        lines.append(line + ".")
    return lines


def markdown(doc: dict[str, Any]) -> str:
    """Every figure of a run: one table per kind of figure, the GEMM
    yardstick, the targets and what failed."""
    table = doc["table"]
    gemm = doc["gemm"]
    f32 = [r for r in table if r["precision"] == "float32"]
    bf16 = [r for r in table if r["precision"] == "bfloat16"]
    lines = []
    if has_paired(table):
        lines += ["### Training, paired rounds", ""]
        lines += paired_markdown(table)
        lines.append("")
    lines += ["### Training, float32", ""]
    lines += _table(
        [
            "workload",
            "contender",
            "n",
            "train samples/s (median / best)",
            "x ref",
            "% of GEMM",
        ],
        [
            [
                r["workload"],
                r["contender"],
                r["n"],
                f"{fmt(r['train'])} / {fmt(r['train_best'])}",
                fmt(r.get("train_x"), ".2f"),
                fmt(
                    None
                    if r["gemm_fraction"] is None
                    else 100 * r["gemm_fraction"]
                ),
            ]
            for r in f32
        ],
    )
    lines += ["", "### Inference and latency, float32", ""]
    lines += _table(
        [
            "workload",
            "contender",
            "infer samples/s @1024",
            "x ref",
            "p50 b=1 ms",
            "x ref",
            "p50 b=32 ms",
            "x ref",
        ],
        [
            [
                r["workload"],
                r["contender"],
                f"{fmt(r['infer'])} ({r['infer_path']})"
                if r["infer"] is not None
                else "-",
                fmt(r.get("infer_x"), ".2f"),
                fmt(r.get("p50_1"), ".2f"),
                fmt(r.get("p50_1_x"), ".2f"),
                fmt(r.get("p50_32"), ".2f"),
                fmt(r.get("p50_32_x"), ".2f"),
            ]
            for r in f32
        ],
    )
    memory = [r for r in f32 if r["memory_mib"] is not None]
    if memory:
        lines += ["", f"### Memory, float32, `{MEMORY_WORKLOAD}`", ""]
        lines += _table(
            ["contender", "train mem growth MiB", "x ref"],
            [
                [
                    r["contender"],
                    fmt(r["memory_mib"]),
                    fmt(r.get("memory_x"), ".2f"),
                ]
                for r in memory
            ],
        )
    if bf16:
        by = {(r["workload"], r["contender"]): r for r in table}
        body = []
        for r in bf16:
            same = by.get((r["workload"], r["contender"].removesuffix("-bf16")))
            if r["contender"] == "reference-bf16":
                same = by.get((r["workload"], "reference"))
            diff = r.get("bf16_max_abs_diff")
            body.append(
                [
                    r["workload"],
                    r["contender"],
                    r["n"],
                    f"{fmt(r['train'])} / {fmt(r['train_best'])}",
                    fmt(
                        None if same is None else r["train"] / same["train"],
                        ".2f",
                    ),
                    fmt(r.get("train_x"), ".2f")
                    if r["vs"] == "reference-bf16"
                    else "-",
                    f"{fmt(r['infer'])} ({r['infer_path']})"
                    if r["infer"] is not None
                    else "-",
                    fmt(r["memory_mib"]),
                    fmt(diff, ".1e"),
                ]
            )
        lines += ["", "### mixed_bfloat16", ""]
        lines += _table(
            [
                "workload",
                "contender",
                "n",
                "train samples/s (median / best)",
                "x its float32",
                "x reference-bf16",
                "infer samples/s @1024",
                "train mem growth MiB",
                "max |p - p_f32|",
            ],
            body,
        )
        flags = doc.get("machine", {}).get("flags")
        if flags is not None and not has_bf16_units(flags):
            lines += [
                "",
                "This CPU has no bfloat16 units: the reference's bfloat16 "
                "autocast is emulated, tens of times slower, and ran once "
                "without warm-up, so `x reference-bf16` is no speed "
                "comparison (target 3 is not measured); `x its float32`, "
                "the same backend in float32, is.",
            ]
    g32 = gemm.get("float32", {})
    g16 = gemm.get("bfloat16", {})
    lines += [
        "",
        "### GEMM yardstick",
        "",
        f"float32 GEMM {GEMM_SHAPE[0]}x{GEMM_SHAPE[1]}x{GEMM_SHAPE[2]}: "
        f"{fmt(g32.get('gflops'), '.1f')} GFLOP/s ({g32.get('framework')}, "
        "fastest median of the frameworks); bfloat16: "
        f"{fmt(g16.get('gflops'), '.1f')} GFLOP/s ({g16.get('framework')}). "
        "GFLOP/s in each framework, median (best):",
        "",
    ]
    for name, res in doc["results"].items():
        for fw, rates in res.get("gemm", {}).items():
            parts = [
                f"{dt} {r['median_gflops']:.1f} ({r['best_gflops']:.1f})"
                for dt, r in rates.items()
            ]
            lines.append(f"- {fw}, in the {name} process: " + ", ".join(parts))
    lines += ["", "### Targets", ""]
    lines += _table(["target", "status", "figures"], doc["targets"])
    missed = causes(doc["targets"])
    if missed:
        lines += ["", "Where a target is not met, and why:", "", *missed]
    extra = [
        f"- {r['contender']} ({r['workload']}): {k} = {r[k]:.2e}"
        for r in table
        for k in ("bf16_max_abs_diff",)
        if k in r
    ]
    if extra:
        lines += ["", "Outputs against float32 keras-masknet:", "", *extra]
    failures = _failures(doc)
    if failures:
        lines += ["", "Contenders that failed:", "", *failures]
    return "\n".join(lines)


PAIRED_METHOD = """\
Each keras-masknet contender trains in turns with the reference in its
own process (`make bench-paired`, `run.py --paired`): one Keras repeat
(the next steps of the same `fit` epoch), then one reference repeat, `n`
times after an untimed pair. The `-bf16` rows (`mixed_bfloat16`, on a CPU
with bfloat16 units only) pair with the reference under bfloat16
autocast, the others with the float32 reference. A pair's ratio is the
reference's seconds over Keras' (above 1, keras-masknet trains faster);
the figure is the median of the pairs' ratios, and the bars and brackets
span the lowest to the highest pair. The machine's drift between
processes and over minutes cancels out of each pair, so targets 1 and 3
count these ratios."""


def _lead(paired_doc: dict[str, Any], chart_path: str, more: str) -> str:
    """The paired training ratios: what the page leads with."""
    table = paired_doc["table"]
    return f"""## Training speed against the reference

{PAIRED_METHOD}

Measured on {machine_line(paired_doc["machine"])}{more}.

![training speed relative to the reference, paired rounds, with the
lowest and highest pair]({chart_path})

{chr(10).join(paired_markdown(table))}
"""


def page(doc: dict[str, Any], paired_doc: dict[str, Any] | None = None) -> str:
    """The page of a run: `make bench`'s (led by the paired ratios of
    `paired_doc`, the `make bench-paired` run, if there is one) or `make
    bench-paired`'s (led by its own)."""
    m = doc["machine"]
    is_paired = has_paired(doc["table"])
    bf16 = "yes" if has_bf16_units(m["flags"]) else "none"
    took = f"run took {m['wall_seconds']:.0f} s"
    if m.get("make_seconds") is not None:
        took += f" ({m['make_seconds']:.0f} s with `make bench`'s set-up)"
    malloc_env, xla_env = (
        " ".join(f"{k}={v}" for k, v in env.items())
        for env in (KEEP_FREED_MEMORY, XLA_NO_DONATION_COPIES)
    )
    compile_infer = ""
    if any(
        r["contender"] == "torch-compile" and r["infer"] is None
        for r in doc["table"]
    ):
        compile_infer = (
            ", no inference at 1024 (its predict step would compile too)"
        )
    if is_paired:
        title = "Training in turns with the reference"
        intro = """\
The figures of `make bench-paired`: the training ratios that targets 1
and 3 count, measured in turns with the reference, then every other
figure of the same run. The main benchmark page is [Benchmarks](../index.md)."""
        lead = _lead(doc, "chart.png", "")
        run_name = "make bench-paired"
        separate = """\
- `x ref` (training): from separate processes, the reference's and each
  contender's; the machine's drift moves them by 10-30% from run to run.
  The paired ratios above count instead."""
    else:
        title = "Benchmarks"
        intro = """\
keras-masknet against the reference (a PyTorch eager implementation
written from the reference's description, `tests/reference_torch.py`), on
a CPU. Rerun with `make bench` and `make bench-paired` (`python
benchmarks/run.py --help` for shorter runs); how it measures, and what was
tried, is in `benchmarks/NOTES.md` in the repository."""
        run_name = "make bench"
        if paired_doc is not None:
            lead = _lead(
                paired_doc,
                "paired/chart.png",
                ", by `make bench-paired`; every figure of that run: "
                "[training in turns with the reference](paired/index.md)",
            )
        else:
            lead = """\
## Training speed against the reference

No paired figures yet: `make bench-paired` measures the training ratios
that targets 1 and 3 count, in turns with the reference.
"""
        separate = """\
- `x ref` (training): from separate processes, the reference's and each
  contender's; the machine's drift moves them by 10-30% from run to run
  (on the 2-core machine of `benchmarks/NOTES.md`), which is why the
  paired ratios above lead. The chart below shows these noisier ratios,
  float32 only."""
    serving_link = "../serving.md" if is_paired else "serving.md"
    gpu_link = "../gpu.md" if is_paired else "gpu.md"
    chart_md = ""
    if not is_paired:
        chart_md = (
            "\n![training speed relative to the reference, separate "
            "processes, float32](chart.png)\n"
        )
    return f"""# {title}

{intro}

{lead}
## Every figure of `{run_name}`

- Machine: {m["cpu"]}, {m["cores"]} cores ({", ".join(m["flags"])}),
  Python {m["python"]}; {m["date"]}; {took}.
  bfloat16 units (`avx512_bf16` or `amx_bf16` in /proc/cpuinfo): {bf16}.
  Every figure in this section comes from this machine.
- Load average (1 min) at start / end: {m["load_start"]:.1f} /
  {m["load_end"]:.1f}. Above the core count means other work shared the
  cores while this ran: the figures are then noisy, and only the ratios
  measured side by side in one run mean much.
- Batch {BATCH}; training is `model.fit` on in-memory NumPy data (Adam,
  binary cross-entropy), one process per contender, default thread
  settings; the reference is a plain PyTorch loop (Adam, `BCELoss`), in
  float32 and under `torch.autocast("cpu", dtype=torch.bfloat16)`.
  Medians of `n` timed repeats after warm-up (a repeat: 1 step of 1024 at
  `recap`, 8 steps at the paper workloads); keras-masknet's repeats are
  consecutive steps of one `fit` epoch, so per-epoch costs, which a real
  epoch spreads over thousands of steps, are left out (on TensorFlow,
  tf.data's autotuning delays the start of some epochs by about a
  second). `torch-compile`: 2 warm-up steps (the second step compiles
  again){compile_infer}. On a CPU without bfloat16 units,
  where `reference-bf16` and `torch-bf16` take minutes a step: 1 repeat,
  no warm-up, no inference at 1024, the bfloat16 check on 64 samples.
- `x ref`: the ratio to the float32 reference; for latency, above 1 is
  faster. The bfloat16 rows have a table of their own, with their ratio
  to the same contender in float32 and to the reference under bfloat16
  autocast (`x reference-bf16`; the `reference-bf16` row: to the float32
  reference). Memory growth is measured at `recap` only (it runs first in
  each process; later workloads reuse memory the allocator already
  holds).
  `% of GEMM`: the training FLOP rate (3x the forward FLOPs of the dense
  layers) as a fraction of the fastest float32 GEMM at the dominant
  shape. The serving path of each row is the faster of
  `predict_on_batch` and a direct compiled call (`tf.function`,
  `jax.jit` of `stateless_call`, or the module under
  `torch.inference_mode()`).
- Contenders: `tensorflow` is `jit_compile="auto"`, which Keras resolves
  to no XLA on a CPU-only machine; `tensorflow-xla` is `jit_compile=True`;
  `jax` always compiles with XLA; `torch` is eager (Keras' default) and
  `torch-compile` is `jit_compile=True` (torch.compile); `torch-malloc`
  is eager `torch` in a process whose glibc malloc keeps freed memory
  (`{malloc_env}`; in the paired rounds the reference runs under it
  too); `jax-nocopy` is `jax` in a process started with `{xla_env}`
  (XLA:CPU then does not copy the training state Keras donates to its
  step; the reference beside it is unaffected); `-bf16` is the
  `mixed_bfloat16` policy.
  The targets count each backend's default mode, what `model.fit` gives
  without settings: `tensorflow`, `jax` and eager `torch`;
  `torch-compile`, `torch-malloc`, `jax-nocopy` and `tensorflow-xla` are
  shown beside them, not counted.
  Every "met" is checked against the counted figures printed beside it;
  a counted figure that misses says "(fails)".
{separate}
{chart_md}
{markdown(doc)}

## Serving latency

Each backend's recommended serving path (docs/guide/performance.md), Keras'
eager PyTorch path and the reference, at batch 1 and 32 (the PyTorch
paths side by side with the reference in one process, JAX and TensorFlow
in their own): [Serving latency]({serving_link}) (`make bench-serving`;
`make bench` runs it after the training table).

## GPU

`benchmarks/gpu_check.sh` measures training on one NVIDIA H100 or H200
(JAX and PyTorch backends, and the reference); `make bench` does not run
it. Its figures, from one NVIDIA H200: [GPU]({gpu_link}).
"""


def chart(doc: dict[str, Any], path: str) -> None:
    """Training speed against the reference, one colour per backend: the
    paired ratios with the range of the pairs when the run has them, else
    the separate processes' float32 ratios."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paired = has_paired(doc["table"])
    key = "train_x_paired" if paired else "train_x"
    # float32 only: the bfloat16 rows compare with the reference under
    # autocast, tens of times slower without bfloat16 units (the table has
    # them).
    table = [
        r
        for r in doc["table"]
        if key in r
        and r["precision"] == "float32"
        and r["contender"] != "reference"
    ]
    if not table:
        print("no training figures: no chart", file=sys.stderr)
        return
    workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in table)]
    names = [n for n in CONTENDERS if any(r["contender"] == n for r in table)]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(len(names), 1)
    top = 1.0
    for i, name in enumerate(names):
        xs, ys, low, high = [], [], [], []
        for j, w in enumerate(workloads):
            for r in table:
                if r["workload"] == w and r["contender"] == name:
                    xs.append(j + i * width)
                    ys.append(r[key])
                    lo, hi = r.get("paired_range", (r[key], r[key]))
                    low.append(r[key] - lo)
                    high.append(hi - r[key])
                    top = max(top, hi)
        hatch = "".join(
            MODE_HATCHES.get(part, "") for part in name.split("-")[1:]
        )
        ax.bar(
            xs,
            ys,
            width,
            label=name,
            color=BACKEND_COLOURS.get(backend_of(name), "#9e9e9e"),
            hatch=hatch or None,
            edgecolor="white" if hatch else None,
            yerr=[low, high] if paired else None,
            capsize=3 if paired else 0,
            error_kw={"elinewidth": 1, "ecolor": "#212121"},
        )
    ax.axhline(1.0, color="black", linewidth=0.8)
    # Room above the bars for the legend.
    ax.set_ylim(0, 1.35 * top)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(workloads))])
    ax.set_xticklabels(workloads)
    ax.set_ylabel("training speed, x the reference")
    m = doc["machine"]
    units = "with" if has_bf16_units(m["flags"]) else "without"
    how = (
        "in turns with the reference (median pair; brackets: lowest to "
        "highest pair)"
        if paired
        else "separate processes"
    )
    ax.set_title(
        f"keras-masknet vs the reference, float32, {how}\n{m['cpu']}, "
        f"{m['cores']} cores, {units} bfloat16 units, {m['date']}",
        fontsize=10,
    )
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(
        handles,
        labels,
        fontsize=8,
        ncol=len(names),
        loc="upper center",
        title="colour: backend; hatch: mode or setting",
        title_fontsize=7,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def load_paired(out_dir: str) -> dict[str, Any] | None:
    """The `make bench-paired` run beside the page in `out_dir` (its
    `paired/results.json`), whose ratios `make bench`'s page leads with."""
    path = os.path.join(out_dir, "paired", "results.json")
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        doc = json.load(f)
    doc["table"] = rows(doc["results"])
    return doc if has_paired(doc["table"]) else None


def render(
    doc: dict[str, Any], out_dir: str, paired_doc: dict[str, Any] | None = None
) -> None:
    doc["table"] = rows(doc["results"])
    doc["gemm"] = gemm_yardstick(doc["results"])
    flags = doc.get("machine", {}).get("flags")
    doc["targets"] = targets(
        doc["table"], None if flags is None else has_bf16_units(flags)
    )
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(out_dir, "index.md"), "w") as f:
        f.write(page(doc, paired_doc))
    try:
        chart(doc, os.path.join(out_dir, "chart.png"))
    except ImportError:
        print("matplotlib is missing: no chart", file=sys.stderr)
    print(markdown(doc))


def publish(doc: dict[str, Any], out_dir: str) -> None:
    """Render `doc` into `out_dir`. `make bench`'s page leads with the
    paired ratios of `out_dir/paired/`; after a paired run rendered into a
    `paired/` folder, the `make bench` page above it (if any) is rendered
    again, so that it leads with the new ratios."""
    render(doc, out_dir, load_paired(out_dir))
    parent = os.path.dirname(os.path.abspath(out_dir))
    main_json = os.path.join(parent, "results.json")
    if (
        has_paired(doc["table"])
        and os.path.basename(os.path.abspath(out_dir)) == "paired"
        and os.path.isfile(main_json)
    ):
        with open(main_json) as f:
            main_doc = json.load(f)
        if not main_doc.get("paired_rounds"):
            render(main_doc, parent, load_paired(parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workloads", help="comma-separated; default all")
    parser.add_argument(
        "--contenders",
        help="comma-separated; default: "
        + ",".join(DEFAULT_CONTENDERS)
        + "; 'all' adds "
        + ",".join(c for c in CONTENDERS if c not in DEFAULT_CONTENDERS),
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="paper workloads, reference/tensorflow/jax/torch, 3 repeats",
    )
    parser.add_argument("--timeout", type=int, default=600, help="per worker")
    parser.add_argument(
        "--budget",
        type=int,
        default=860,
        help="seconds from --started-at to the last worker's end (default "
        "860: `make bench`, set-up included, stays under 15 minutes); "
        "contenders it leaves out are reported as skipped, one it cuts "
        "short keeps the workloads it finished",
    )
    parser.add_argument(
        "--started-at",
        type=float,
        help="Unix time the budget counts from (`make bench` passes its "
        "own start, so that the set-up counts); default: now",
    )
    parser.add_argument(
        "--paired",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="also train each keras-masknet contender in ROUNDS turns with "
        "the reference in its precision (bfloat16: under autocast, on a CPU "
        "with bfloat16 units only), in its own process; targets 1 and 3 "
        "then count those ratios. Default contenders: "
        + ",".join(PAIRED_CONTENDERS)
        + ", and on a CPU with bfloat16 units "
        + ",".join(PAIRED_BF16_CONTENDERS)
        + " (`make bench-paired`: 7 rounds, docs/benchmarks/paired/)",
    )
    parser.add_argument("--out-dir", default=OUT_DIR)
    parser.add_argument("--from-json", help="re-render a results.json")
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            doc = json.load(f)
        publish(doc, args.out_dir)
        return
    workloads = list(WORKLOADS)
    contenders = list(DEFAULT_CONTENDERS)
    repeats = args.repeats
    if args.paired < 0:
        parser.error(f"--paired must be >= 0. Received: {args.paired}")
    if args.paired:
        contenders = list(PAIRED_CONTENDERS)
        if has_bf16_units():
            contenders += PAIRED_BF16_CONTENDERS
    if args.quick:
        workloads, contenders, repeats = QUICK_WORKLOADS, QUICK_CONTENDERS, 3
    if args.workloads:
        workloads = args.workloads.split(",")
    if args.contenders == "all":
        contenders = list(CONTENDERS)
    elif args.contenders:
        contenders = args.contenders.split(",")
    for name in contenders:
        if name not in CONTENDERS:
            parser.error(f"unknown contender {name!r}: {list(CONTENDERS)}")
    for name in workloads:
        if name not in WORKLOADS:
            parser.error(f"unknown workload {name!r}: {list(WORKLOADS)}")
    if "reference" not in contenders:
        contenders.insert(0, "reference")
    start = time.perf_counter()
    started_at = time.time() if args.started_at is None else args.started_at
    deadline = started_at + args.budget
    load_start = os.getloadavg()[0]
    results = {}
    for name in contenders:
        wanted = CONTENDERS[name].get("workloads") or list(WORKLOADS)
        mine = [w for w in workloads if w in wanted]
        left = int(deadline - time.time())
        if not mine:
            continue
        if left < 30:
            results[name] = {"error": "skipped: over the time budget"}
            continue
        timeout = min(args.timeout, left)
        results[name] = run_contender(name, mine, repeats, timeout, args.paired)
    doc = {
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "flags": cpu_flags(),
            "python": platform.python_version(),
            "date": datetime.datetime.now(datetime.timezone.utc).strftime(
                "%Y-%m-%d %H:%M UTC"
            ),
            "load_start": load_start,
            "load_end": os.getloadavg()[0],
            "wall_seconds": time.perf_counter() - start,
            "make_seconds": None
            if args.started_at is None
            else time.time() - args.started_at,
        },
        "repeats": repeats,
        "paired_rounds": args.paired,
        "budget_seconds": args.budget,
        "workloads": workloads,
        "results": results,
    }
    publish(doc, args.out_dir)


if __name__ == "__main__":
    main()
