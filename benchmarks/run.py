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
from workloads import MEMORY_WORKLOAD  # noqa: E402
from workloads import WORKLOADS  # noqa: E402
from workloads import cpu_flags  # noqa: E402
from workloads import forward_flops  # noqa: E402
from workloads import has_bf16_units  # noqa: E402
from workloads import train_flops  # noqa: E402

OUT_DIR = os.path.join(REPO, "docs", "benchmarks")
#: `--quick`: the small workloads, the four float32 contenders.
QUICK_CONTENDERS = ["reference", "tensorflow", "jax", "torch"]
QUICK_WORKLOADS = ["paper-parallel", "paper-serial"]
#: `--paired`: the modes target 1 counts (COUNTED_MODES), in turns with the
#: reference.
PAIRED_CONTENDERS = ["reference", "jax", "tensorflow", "torch", "torch-compile"]


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
            for key in ("bf16_max_abs_diff", "fused_max_abs_diff"):
                if key in wl:
                    row[key] = wl[key]
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

#: The modes each backend counts with in the targets: its default, and the
#: compiled one where docs/guide/performance.md recommends it (torch.compile
#: on PyTorch, for long runs and tight memory). XLA on TensorFlow is what
#: "auto" gives on an accelerator; on a CPU the docs leave it as an option
#: (no reliable win in benchmarks/NOTES.md), so `tensorflow-xla` is shown
#: side by side but does not count. JAX always compiles.
COUNTED_MODES = {
    "tensorflow": ["tensorflow"],
    "jax": ["jax"],
    "torch": ["torch", "torch-compile"],
}


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


def _status(ok: bool, found: bool, missing: list[str]) -> str:
    """A target over every backend: met only if each has a figure."""
    if not found:
        return "not measured"
    if not ok:
        return "NOT met"
    return "NOT shown" if missing else "met"


def targets(table: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(target, "met"/"NOT met"/"NOT shown"/"not measured", figures) for
    each target; a backend counts with its best mode in COUNTED_MODES."""
    by = {(r["workload"], r["contender"]): r for r in table}
    out = []
    # 1. every backend >= 1.0x the reference in training, every workload
    # that ran.
    # With paired rounds (`--paired`) the ratios measured in turns with the
    # reference, in each contender's process, count instead.
    paired = has_paired(table)
    key = "train_x_paired" if paired else "train_x"
    figures, ok, seen, missing = [], True, False, []
    for workload in WORKLOADS:
        if (workload, "reference") not in by:
            continue  # not in this run
        found, lacking = _by_backend(by, workload, key)
        missing += [f"{workload}/{b}" for b in lacking]
        for xs in found.values():
            seen = True
            x, n = max(xs)
            ok &= x >= 1.0
            figures.append(f"{workload}/{n} {x:.2f}x")
    if missing:
        figures.append(f"no figure: {', '.join(missing)}")
    out.append(
        (
            "1. training >= 1.0x the reference, every backend and workload"
            + (" (paired rounds)" if paired else ""),
            _status(ok, seen, missing),
            ", ".join(figures),
        )
    )
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
        out.append(
            (
                "2. recap: best backend >= 90% of the float32 GEMM rate",
                "met" if best["gemm_fraction"] >= 0.9 else "NOT met",
                f"{best['contender']} {100 * best['gemm_fraction']:.0f}%",
            )
        )
    else:
        out.append(("2. recap GEMM fraction", "not measured", ""))
    # 3. mixed_bfloat16: every backend >= the reference under autocast.
    found, missing = _by_backend(by, "recap", "train_x", suffix="-bf16")
    figures, ok = [], True
    for xs in found.values():
        x, n = max(xs)
        ok &= x >= 1.0
        diff = by[("recap", n)].get("bf16_max_abs_diff")
        figures.append(f"{n} {x:.2f}x (max |p - p_f32| {diff:.1e})")
    ref16 = by.get(("recap", "reference-bf16"))
    if ref16 and "train_x" in ref16:
        figures.append(
            f"reference-bf16 vs reference f32: {ref16['train_x']:.2f}x"
        )
    status = _status(ok, bool(found), missing)
    if found and missing:
        figures.append(f"no bfloat16 figure: {', '.join(missing)}")
    if ref16 is None:
        # The ratios above are then against the float32 reference.
        status = "not measured: no reference-bf16 figure"
        figures = [f.replace("x (", "x the f32 reference (") for f in figures]
    out.append(
        (
            "3. recap, mixed_bfloat16: every backend >= reference-bf16",
            status,
            "; ".join(figures),
        )
    )
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
        out.append(
            (
                "4. paper-parallel latency (b=1, 32) <= reference, one backend",
                "met" if good else "NOT met",
                f"{pick['contender']} via {pick['p50_1_path']}: "
                f"b1 {pick['p50_1']:.2f} ms ({pick['p50_1_x']:.2f}x), "
                f"b32 {pick['p50_32']:.2f} ms ({pick['p50_32_x']:.2f}x)",
            )
        )
    else:
        out.append(("4. serving latency", "not measured", ""))
    # 5. recap memory growth <= 1.2x the reference's (float32), every
    # backend, in its best mode (the compiled one counts: the docs
    # recommend torch.compile for memory on PyTorch).
    found, missing = _by_backend(by, "recap", "memory_x")
    figures, ok = [], True
    for xs in found.values():
        ok &= min(xs)[0] <= 1.2
        figures += [
            f"{n} {by[('recap', n)]['memory_mib']:.0f} MiB ({x:.2f}x)"
            for x, n in xs
        ]
    status = _status(ok, bool(found), missing)
    if found and missing:
        figures.append(f"no figure: {', '.join(missing)}")
    out.append(
        (
            "5. recap memory growth <= 1.2x the reference's, every backend",
            status,
            ", ".join(figures),
        )
    )
    return out


# --- output ---------------------------------------------------------------


def fmt(value: Any, spec: str = ".0f") -> str:
    return "-" if value is None else format(value, spec)


def markdown(doc: dict[str, Any]) -> str:
    table = doc["table"]
    gemm = doc["gemm"]
    paired = has_paired(table)
    header = [
        "workload",
        "contender",
        "n",
        "train samples/s (median / best)",
        "x ref",
        *(["x ref, paired (min - max)"] if paired else []),
        "% of GEMM",
        "infer samples/s @1024",
        "x ref",
        "p50 b=1 ms",
        "x ref",
        "p50 b=32 ms",
        "x ref",
        "train mem growth MiB",
        "x ref",
    ]
    lines = ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"]
    for r in table:
        pair = []
        if paired:
            pair = ["-"]
            if "train_x_paired" in r:
                low, high = r["paired_range"]
                pair = [
                    f"{r['train_x_paired']:.2f} ({low:.2f} - {high:.2f}, "
                    f"n={r['paired_n']})"
                ]
        lines.append(
            "| "
            + " | ".join(
                [
                    r["workload"],
                    r["contender"],
                    str(r["n"]),
                    f"{fmt(r['train'])} / {fmt(r['train_best'])}",
                    fmt(r.get("train_x"), ".2f"),
                    *pair,
                    fmt(
                        None
                        if r["gemm_fraction"] is None
                        else 100 * r["gemm_fraction"]
                    ),
                    f"{fmt(r['infer'])} ({r['infer_path']})"
                    if r["infer"] is not None
                    else "-",
                    fmt(r.get("infer_x"), ".2f"),
                    fmt(r.get("p50_1"), ".2f"),
                    fmt(r.get("p50_1_x"), ".2f"),
                    fmt(r.get("p50_32"), ".2f"),
                    fmt(r.get("p50_32_x"), ".2f"),
                    fmt(r["memory_mib"]),
                    fmt(r.get("memory_x"), ".2f"),
                ]
            )
            + " |"
        )
    g32 = gemm.get("float32", {})
    g16 = gemm.get("bfloat16", {})
    lines += [
        "",
        f"float32 GEMM {GEMM_SHAPE[0]}x{GEMM_SHAPE[1]}x{GEMM_SHAPE[2]}: "
        f"{fmt(g32.get('gflops'), '.1f')} GFLOP/s ({g32.get('framework')}, "
        "fastest median of the frameworks); bfloat16: "
        f"{fmt(g16.get('gflops'), '.1f')} GFLOP/s ({g16.get('framework')}).",
    ]
    for name, res in doc["results"].items():
        for fw, rates in res.get("gemm", {}).items():
            parts = [
                f"{dt} {r['median_gflops']:.1f} (best {r['best_gflops']:.1f})"
                for dt, r in rates.items()
            ]
            lines.append(f"- GEMM in {fw} ({name}): " + ", ".join(parts))
    lines += ["", "| target | status | figures |", "|---|---|---|"]
    for name, status, figures in doc["targets"]:
        lines.append(f"| {name} | {status} | {figures} |")
    extra = [
        f"- {r['contender']} ({r['workload']}): {k} = {r[k]:.2e}"
        for r in table
        for k in ("bf16_max_abs_diff", "fused_max_abs_diff")
        if k in r
    ]
    if extra:
        lines += ["", "Outputs against float32 keras-masknet:", *extra]
    errors = [
        f"- {n}: {res['error'].strip().splitlines()[-1]}"
        for n, res in doc["results"].items()
        if "error" in res
    ]
    if errors:
        lines += ["", "Contenders that failed:", *errors]
    return "\n".join(lines)


def page(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    bf16 = "yes" if has_bf16_units(m["flags"]) else "none"
    took = f"run took {m['wall_seconds']:.0f} s"
    if m.get("make_seconds") is not None:
        took += f" ({m['make_seconds']:.0f} s with `make bench`'s set-up)"
    compile_infer = ""
    if any(
        r["contender"] == "torch-compile" and r["infer"] is None
        for r in doc["table"]
    ):
        compile_infer = (
            ", no inference at 1024 (its predict step would compile too)"
        )
    paired = """\
- The training ratios below come from separate processes, which the
  machine's drift moves (by 10-30% from run to run on the 2-core machine
  of `benchmarks/NOTES.md`). `make bench-paired` trains each backend in
  turns with the reference in one process:
  [training in turns with the reference](paired/index.md).
"""
    if has_paired(doc["table"]):
        paired = """\
- `x ref, paired`: training measured in turns with the float32 reference
  in each contender's own process (`make bench-paired`, `run.py
  --paired`): one Keras repeat (the next steps of the same `fit` epoch),
  then one reference repeat, `n` times after an untimed pair. The median
  of the pairs' ratios (reference seconds / Keras seconds; above 1, Keras
  trains faster) and their range. The machine's drift between processes
  and over minutes cancels out of each pair, so target 1 counts these
  ratios, and the chart shows them.
"""
    return f"""# Benchmarks

keras-masknet against the reference (a PyTorch eager implementation written
from the reference's description, `tests/reference_torch.py`), on the
machine below. Rerun with `make bench` (`python benchmarks/run.py --help`
for shorter runs); how it measures, and what was tried, is in
`benchmarks/NOTES.md` in the repository.

- Machine: {m["cpu"]}, {m["cores"]} cores ({", ".join(m["flags"])}),
  Python {m["python"]}; {m["date"]}; {took}.
  bfloat16 units (`avx512_bf16` or `amx_bf16` in /proc/cpuinfo): {bf16}.
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
- `x ref`: the ratio to the reference (bfloat16 rows: to the reference
  under bfloat16 autocast, or to the float32 reference when that row is
  missing; the `reference-bf16` row: to the float32 reference); for
  latency, above 1 is faster. Memory growth is measured at `recap` only (it
  runs first in each process; later workloads reuse memory the allocator
  already holds).
  `% of GEMM`: the training FLOP rate (3x the forward FLOPs of the dense
  layers) as a fraction of the fastest float32 GEMM at the dominant
  shape. The serving path of each row is the faster of
  `predict_on_batch` and a direct compiled call (`tf.function`,
  `jax.jit` of `stateless_call`, or the module under
  `torch.inference_mode()`).
- Contenders: `tensorflow` is `jit_compile="auto"`, which Keras resolves
  to no XLA on a CPU-only machine; `tensorflow-xla` is `jit_compile=True`;
  `jax` always compiles with XLA; `torch` is eager (Keras' default) and
  `torch-compile` is `jit_compile=True` (torch.compile); `-bf16` is the
  `mixed_bfloat16` policy; `-fused` is the prototype of the parallel blocks
  on stacked weights (`benchmarks/fused.py`), not part of the package.
  The targets count each backend's default mode, and `torch-compile` for
  PyTorch (the docs recommend `torch.compile` for long runs); on a CPU
  they do not recommend XLA on TensorFlow: `tensorflow-xla` is shown, not
  counted.
{paired}
![training throughput relative to the reference](chart.png)

{markdown(doc)}

## GPU

The GPU figures are missing: no GPU was available when this was run.
`benchmarks/gpu_check.sh` is the prepared script that measures them on one
NVIDIA H100 or H200 (JAX and PyTorch backends).
"""


def chart(doc: dict[str, Any], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "train_x_paired" if has_paired(doc["table"]) else "train_x"
    # float32 only: the bfloat16 rows compare with the reference under
    # autocast, tens of times slower without bfloat16 units (the table has
    # them).
    table = [
        r for r in doc["table"] if key in r and r["precision"] == "float32"
    ]
    if not table:
        print("no training figures: no chart", file=sys.stderr)
        return
    workloads = [w for w in WORKLOADS if any(r["workload"] == w for r in table)]
    names = [n for n in CONTENDERS if any(r["contender"] == n for r in table)]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(len(names), 1)
    for i, name in enumerate(names):
        xs, ys = [], []
        for j, w in enumerate(workloads):
            for r in table:
                if r["workload"] == w and r["contender"] == name:
                    xs.append(j + i * width)
                    ys.append(r[key])
        ax.bar(xs, ys, width, label=name)
    ax.axhline(1.0, color="black", linewidth=0.8)
    # Room above the bars for the legend.
    top = max([r[key] for r in table] + [1.0])
    ax.set_ylim(0, 1.3 * top)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(workloads))])
    ax.set_xticklabels(workloads)
    ax.set_ylabel(
        "training samples/s, x the reference"
        + (" (paired rounds)" if key == "train_x_paired" else "")
    )
    ax.set_title(
        f"keras-masknet vs the reference, {doc['machine']['cores']}-core CPU,"
        " float32"
    )
    ax.legend(fontsize=7, ncol=3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(doc: dict[str, Any], out_dir: str) -> None:
    doc["table"] = rows(doc["results"])
    doc["gemm"] = gemm_yardstick(doc["results"])
    doc["targets"] = targets(doc["table"])
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(doc, f, indent=1)
    with open(os.path.join(out_dir, "index.md"), "w") as f:
        f.write(page(doc))
    try:
        chart(doc, os.path.join(out_dir, "chart.png"))
    except ImportError:
        print("matplotlib is missing: no chart", file=sys.stderr)
    print(markdown(doc))


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
        help="also train each float32 keras-masknet contender in ROUNDS "
        "turns with the float32 reference, in its own process; target 1 "
        "then counts those ratios. Default contenders: "
        + ",".join(PAIRED_CONTENDERS)
        + " (`make bench-paired`: 7 rounds, docs/benchmarks/paired/)",
    )
    parser.add_argument("--out-dir", default=OUT_DIR)
    parser.add_argument("--from-json", help="re-render a results.json")
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            doc = json.load(f)
        render(doc, args.out_dir)
        return
    workloads = list(WORKLOADS)
    contenders = list(DEFAULT_CONTENDERS)
    repeats = args.repeats
    if args.paired < 0:
        parser.error(f"--paired must be >= 0. Received: {args.paired}")
    if args.paired:
        contenders = list(PAIRED_CONTENDERS)
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
    render(doc, args.out_dir)


if __name__ == "__main__":
    main()
