"""Serving latency: each backend's recommended path against the reference.

    python benchmarks/serving.py                 # 5 rounds, paper-parallel
    python benchmarks/serving.py --rounds 3 --calls 200 --out-dir DIR

The model is `paper-parallel` of benchmarks/workloads.py (inputs 390 wide,
3 parallel MaskBlocks of 400 with r = 2, an MLP of 3 x 400, a sigmoid
head). On a machine with a CUDA GPU, the PyTorch paths (the reference's too)
and JAX run on the GPU (inputs copied in, outputs copied out on each
call). Each backend's paths run in a process of their own (two frameworks
in one process slow each other down): the PyTorch paths with the
reference, then JAX's, then TensorFlow's, in `--rounds` rounds. Inside a
process the paths take their calls in turns of 10 calls, so that the
machine's drift hits them alike; each path's `--calls` calls at batch 1
and at batch 32, after a warm-up, give its median (p50). The table gives
the median over the rounds of those p50s, their range, and the ratio to
the reference of the same round (> 1: faster than the reference): for the
PyTorch paths measured side by side in one process, for JAX and
TensorFlow one process after the other.

Paths (the `recommended` ones are what docs/guide/performance.md says to
serve with on each backend):

- `reference`: the reference implementation (tests/reference_torch.py),
  eager PyTorch under `torch.inference_mode()`;
- `torch-eager`: the Keras model called eagerly under
  `torch.inference_mode()`: what a PyTorch user gets without reading;
- `torch-export`: `model.export(path, format="torch")` with a dynamic
  batch, loaded with `torch.export.load` and called as `program.module()`:
  an ExportedProgram of ATen ops, run op by op by PyTorch's eager
  interpreter, with no Keras at serving time;
- `torch-aoti` (recommended on PyTorch): that ExportedProgram, traced at
  batch 32, compiled ahead of time by AOTInductor with frozen weights and
  tuned kernels (`torch._inductor.aoti_compile_and_package(program,
  inductor_configs={"freezing": True, "max_autotune": True})`), loaded
  with `torch._inductor.aoti_load_package`: PyTorch's own path from
  `torch.export` to a compiled inference artifact;
- `jax-jit` (recommended on JAX): `jax.jit` of `model.stateless_call`;
- `tensorflow` and `tensorflow-xla` (recommended on TensorFlow: the faster
  of the two): `tf.function` of the model, without and with XLA.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(1, REPO)

from workloads import WORKLOADS  # noqa: E402
from workloads import cpu_flags  # noqa: E402
from workloads import has_bf16_units  # noqa: E402
from workloads import shown  # noqa: E402

WORKLOAD = "paper-parallel"
BATCHES = (1, 32)
#: path -> (backend, recommended on that backend)
PATHS = {
    "reference": ("torch", False),
    "torch-eager": ("torch", False),
    "torch-export": ("torch", False),
    "torch-aoti": ("torch", True),
    "jax-jit": ("jax", True),
    "tensorflow": ("tensorflow", True),
    "tensorflow-xla": ("tensorflow", True),
}
#: Target 1 of the serving benchmark: every backend's recommended path at
#: least as fast as the reference at both batches; Keras' eager torch path
#: within 2x of the reference at batch 32.
EAGER_TORCH_LIMIT = 2.0
#: The batch that the exported program is traced at, and AOTInductor
#: tunes for (`torch-aoti`).
AOTI_BATCH = 32
#: Calls a path makes in a row before the next path's turn (`measure`).
TURN = 10


# --- one path, in its own process -------------------------------------------


def _inputs(batch: int) -> np.ndarray:
    rng = np.random.default_rng(batch)
    width = WORKLOADS[WORKLOAD]["input_dim"]
    return rng.normal(size=(batch, width)).astype("float32")


def _keras_model() -> Any:
    import keras

    import keras_masknet

    keras.utils.set_random_seed(0)
    spec = WORKLOADS[WORKLOAD]
    inputs = keras.Input((spec["input_dim"],))
    backbone = keras_masknet.MaskNet(**spec["config"])
    head = keras.layers.Dense(1, activation="sigmoid")
    return keras.Model(inputs, head(backbone(inputs)))


def _reference_fn() -> Any:
    import torch
    from torch import nn

    from tests.reference_torch import TorchMaskNet

    spec = WORKLOADS[WORKLOAD]
    device = _torch_device()
    torch.manual_seed(0)
    backbone = TorchMaskNet(spec["config"], spec["input_dim"])
    width = backbone(torch.zeros(1, spec["input_dim"]))["output"].shape[-1]
    head = nn.Linear(width, 1)
    backbone.eval().to(device)
    head.to(device)

    def fn(x: np.ndarray) -> Any:
        def call() -> np.ndarray:
            with torch.inference_mode():
                xt = torch.from_numpy(x).to(device)
                out = torch.sigmoid(head(backbone(xt)["output"]))
                return out.cpu().numpy()

        return call

    return fn


def _torch_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_fn(model: Any, mode: str) -> Any:
    """`mode`: "eager" (the Keras model), "export" (its ExportedProgram's
    module) or "aoti" (that program compiled by AOTInductor)."""
    import keras
    import torch

    device = _torch_device()
    call_model = model
    if mode != "eager":
        folder = tempfile.mkdtemp()
        path = os.path.join(folder, "model.pt2")
        batch = torch.export.Dim("batch", min=1, max=4096)
        width = WORKLOADS[WORKLOAD]["input_dim"]
        # Traced at batch 32: AOTInductor tunes its kernels for the
        # example's shapes (the batch stays dynamic).
        signature = [keras.InputSpec(shape=(AOTI_BATCH, width))]
        model.export(
            path,
            format="torch",
            verbose=False,
            input_signature=signature,
            dynamic_shapes={0: batch},
        )
        program = torch.export.load(path)
        call_model = program.module()
        if mode == "aoti":
            package = torch._inductor.aoti_compile_and_package(
                program,
                package_path=os.path.join(folder, "model_aoti.pt2"),
                inductor_configs={"freezing": True, "max_autotune": True},
            )
            call_model = torch._inductor.aoti_load_package(package)

    def fn(x: np.ndarray) -> Any:
        if mode != "eager":  # the program computes what the model computes
            with torch.inference_mode():
                xt = torch.from_numpy(x).to(device)
                got = call_model(xt).cpu().numpy()
                want = model(xt, training=False).cpu().numpy()
            np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)

        def call() -> np.ndarray:
            with torch.inference_mode():
                xt = torch.from_numpy(x).to(device)
                if mode == "eager":
                    return call_model(xt, training=False).cpu().numpy()
                return call_model(xt).cpu().numpy()

        return call

    return fn


def _jax_fn(model: Any) -> Any:
    import jax

    @jax.jit
    def forward(tv: Any, ntv: Any, x: Any) -> Any:
        return model.stateless_call(tv, ntv, x, training=False)[0]

    tv = [v.value for v in model.trainable_variables]
    ntv = [v.value for v in model.non_trainable_variables]

    def fn(x: np.ndarray) -> Any:
        return lambda: np.asarray(forward(tv, ntv, x))

    return fn


def _tensorflow_fn(model: Any, xla: bool) -> Any:
    import tensorflow as tf

    # Traced once, for any batch, and called as a concrete function: a
    # `tf.function` binds and checks its arguments on every call (0.5 ms at
    # batch 32 here, a sixth of the call).
    forward = tf.function(
        lambda x: model(x, training=False), jit_compile=xla
    ).get_concrete_function(tf.TensorSpec((None, *model.input_shape[1:])))

    def fn(x: np.ndarray) -> Any:
        xt = tf.constant(x)
        return lambda: forward(xt).numpy()

    return fn


def _path_fn(path: str) -> Any:
    backend = PATHS[path][0]
    if path == "reference":
        return _reference_fn()
    model = _keras_model()
    if backend == "torch":
        return _torch_fn(model, path.split("-")[1])
    if backend == "jax":
        return _jax_fn(model)
    return _tensorflow_fn(model, xla=path == "tensorflow-xla")


def measure(paths: list[str], calls: int, warmup: int) -> dict[str, Any]:
    """p50 milliseconds per batch size for paths of one backend, in this
    process, their calls taken in turns of `TURN` calls (a server calls one
    model again and again: its weights stay in the caches), so that a
    change in the machine's speed hits them all alike. A path that fails
    to build gets its error message instead."""
    if PATHS[paths[0]][0] == "torch":
        import torch

        torch.set_num_threads(os.cpu_count() or 1)
        if torch.cuda.is_available():  # the GPU's name, for the log
            print("# device: " + torch.cuda.get_device_name(0), flush=True)
    fns: dict[str, Any] = {}
    out: dict[str, Any] = {}
    for path in paths:
        try:
            fns[path] = _path_fn(path)
            out[path] = {}
        except Exception as error:  # noqa: BLE001 - reported, not hidden
            message = f"{type(error).__name__}: {error}".splitlines()[0]
            out[path] = f"failed: {message[:300]}"
    for batch in BATCHES:
        x = _inputs(batch)
        call = {path: fn(x) for path, fn in fns.items()}
        times: dict[str, list[float]] = {path: [] for path in call}
        for _ in range(warmup):
            for path in call:
                call[path]()
        for first in range(0, calls, TURN):
            for path in call:
                for _ in range(min(TURN, calls - first)):
                    start = time.perf_counter()
                    call[path]()
                    times[path].append(time.perf_counter() - start)
        for path in call:
            out[path][str(batch)] = 1e3 * statistics.median(times[path])
    return out


# --- the driver -------------------------------------------------------------


def run_group(paths: list[str], calls: int, warmup: int) -> dict[str, Any]:
    """`measure` in a process of its own (one backend's paths)."""
    env = dict(os.environ)
    env["KERAS_BACKEND"] = PATHS[paths[0]][0]
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env["PYTHONPATH"] = REPO + os.pathsep + env.get("PYTHONPATH", "")
    cmd = [
        sys.executable,
        os.path.abspath(__file__),
        "--worker",
        ",".join(paths),
        "--calls",
        str(calls),
        "--warmup",
        str(warmup),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        # The exception's own line, not the warnings printed after it.
        errors = [
            ln.strip()
            for ln in proc.stderr.splitlines()
            if ln[:1].isalpha() and ("Error" in ln or "Exception" in ln)
        ]
        last = errors[-1:] or proc.stderr.strip().splitlines()[-1:]
        return {path: f"failed: {last}" for path in paths}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def summarize(rounds: list[dict[str, Any]]) -> dict[str, Any]:
    """Per path and batch: median p50 over rounds, range, ratio to the
    reference of the same round (median and range)."""
    table: dict[str, Any] = {}
    for path in PATHS:
        entry: dict[str, Any] = {"recommended": PATHS[path][1]}
        for batch in map(str, BATCHES):
            p50 = [r[path][batch] for r in rounds if isinstance(r[path], dict)]
            ratios = [
                r["reference"][batch] / r[path][batch]
                for r in rounds
                if isinstance(r[path], dict)
                and isinstance(r["reference"], dict)
            ]
            if p50:
                entry[batch] = {
                    "p50_ms": statistics.median(p50),
                    "range_ms": [min(p50), max(p50)],
                    "x_reference": statistics.median(ratios)
                    if ratios
                    else None,
                    "x_range": [min(ratios), max(ratios)] if ratios else None,
                }
        failures = [r[path] for r in rounds if isinstance(r[path], str)]
        if failures:
            entry["failed"] = failures[0]
        table[path] = entry
    return table


#: What a probe measured as the cause where a serving target is missed,
#: by the target's backend ("torch-eager": Keras' eager path);
#: `benchmarks/NOTES.md` has the runs.
KNOWN_CAUSES = {
    "tensorflow": "TensorFlow's fixed cost per call of a concrete function, "
    "about 0.2 ms before any arithmetic against 0.03 ms for JAX's jitted "
    "call and eager PyTorch (`probes.py call-overhead`), 8% of a batch-32 "
    "call here; its products run at PyTorch's rate.",
    "torch-eager": "Keras' Python for each op and layer call on eager "
    "PyTorch; the layers call their own sublayers directly, the ops' "
    "conversions remain (`benchmarks/NOTES.md`).",
}


def targets(table: dict[str, Any]) -> list[tuple[str, str, str]]:
    """Each target, met or not, with the figures that decide it."""
    out = []
    for backend in ("tensorflow", "jax", "torch"):
        paths = [
            p
            for p, (b, rec) in PATHS.items()
            if b == backend and rec and "1" in table[p] and "32" in table[p]
        ]
        if not paths:
            out.append((f"serving, {backend}", "NOT shown", "no figures"))
            continue
        best = max(
            paths,
            key=lambda p: min(
                table[p]["1"]["x_reference"], table[p]["32"]["x_reference"]
            ),
        )
        x1 = table[best]["1"]["x_reference"]
        x32 = table[best]["32"]["x_reference"]
        status = "met" if min(x1, x32) >= 1.0 else "NOT met"
        out.append(
            (
                f"serving, {backend} ({best}) >= 1.0x the reference",
                status,
                f"b1 {shown(x1, 2, 1.0)}x, b32 {shown(x32, 2, 1.0)}x",
            )
        )
    eager = table["torch-eager"].get("32")
    if eager is None:
        out.append(("torch eager within 2x, b32", "NOT shown", "no figure"))
    else:
        slower = 1.0 / eager["x_reference"]
        status = "met" if slower <= EAGER_TORCH_LIMIT else "NOT met"
        out.append(
            (
                "torch eager (Keras, no reading) within 2x of the reference,"
                " b32",
                status,
                f"{slower:.2f}x slower ({eager['p50_ms']:.2f} ms vs "
                f"{table['reference']['32']['p50_ms']:.2f} ms)",
            )
        )
    return out


def markdown(doc: dict[str, Any]) -> str:
    table, machine = doc["table"], doc["machine"]
    lines = [
        f"Serving latency, `{WORKLOAD}`, p50 of {doc['calls']} calls per "
        f"path, median of {doc['rounds']} rounds (a process per backend "
        f"and round); machine: {machine['cpu']}, {machine['cores']} cores, "
        f"bfloat16 units: {machine['bf16_units']}; GPU: "
        f"{machine.get('gpu', 'none')}; {doc['date']}.",
        "",
        f"Load average (1 min) at start / end: {doc['load'][0]:.1f} / "
        f"{doc['load'][1]:.1f}. Above the core count, other work shared the "
        "cores: PyTorch's threads then wait for each other, and its figures "
        "(the reference's too) mean little.",
        "",
        "| path | recommended | b1 p50 ms (range) | b1 x ref | "
        "b32 p50 ms (range) | b32 x ref |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for path, entry in table.items():
        cells = [f"`{path}`", "yes" if entry["recommended"] else ""]
        for batch in ("1", "32"):
            e = entry.get(batch)
            if e is None:
                cells += [entry.get("failed", "-"), "-"]
                continue
            lo, hi = e["range_ms"]
            cells.append(f"{e['p50_ms']:.3f} ({lo:.3f}-{hi:.3f})")
            x = e["x_reference"]
            cells.append("-" if path == "reference" else f"{x:.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "| target | status | figures |", "| --- | --- | --- |"]
    for name, status, text in doc["targets"]:
        lines.append(f"| {name} | {status} | {text} |")
    missed = []
    for name, status, _ in doc["targets"]:
        if status == "NOT met":
            key = "torch-eager" if "eager" in name else name.split()[1]
            cause = KNOWN_CAUSES.get(key, "cause not measured.")
            missed.append(f"- {name}: {cause}")
    if missed:
        lines += ["", "Where a target is not met, and why:", "", *missed]
    return "\n".join(lines) + "\n"


def page(table_text: str) -> str:
    """The docs page of a run (docs/benchmarks/serving.md)."""
    return f"""# Serving latency

Each backend's recommended serving path (see [Serving one request at a
time](../guide/performance.md#serving-one-request-at-a-time)), Keras'
eager PyTorch path (what a PyTorch user gets without reading) and the
reference (eager PyTorch, `tests/reference_torch.py`), on the
`paper-parallel` model: inputs 390 wide, 3 parallel MaskBlocks of 400 with
r = 2, an MLP of 3 x 400 and a sigmoid head. Rerun with `make
bench-serving` (`python benchmarks/serving.py --help`). `x ref` is the
reference's p50 over the path's, per round, then the median over rounds:
above 1 is faster than the reference. The PyTorch paths and the reference
share one process per round and take their calls in turns of 10, so
their ratios are side by side; JAX and TensorFlow each run in a process
of their own.

{table_text}"""


def machine() -> dict[str, Any]:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    gpu = "none"
    try:  # the GPU that the PyTorch and JAX paths then run on
        query = ["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"]
        names = subprocess.run(query, capture_output=True, text=True)
        gpu = names.stdout.strip().splitlines()[0] or gpu
    except (OSError, IndexError):
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "bf16_units": "yes" if has_bf16_units(cpu_flags()) else "none",
        "gpu": gpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--paths", default=",".join(PATHS))
    parser.add_argument("--out-dir", default=None)
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    parser.add_argument(
        "--from-json",
        help="render an earlier serving.json again (its targets too), "
        "without measuring",
    )
    args = parser.parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            doc = json.load(f)
        write(doc, args.out_dir)
        return
    for name in ("rounds", "calls"):
        if getattr(args, name) < 1:
            parser.error(
                f"--{name} must be >= 1. Received: {getattr(args, name)}"
            )
    if args.worker:
        worker_paths = args.worker.split(",")
        print(json.dumps(measure(worker_paths, args.calls, args.warmup)))
        return
    paths = args.paths.split(",")
    unknown = [p for p in paths if p not in PATHS]
    if unknown or "reference" not in paths:
        parser.error(
            f"--paths must name the reference and known paths {list(PATHS)}."
            f" Received: {args.paths}"
        )
    load_start = os.getloadavg()[0]
    rounds = []
    for i in range(args.rounds):
        result: dict[str, Any] = {p: "not run" for p in PATHS}
        for backend in ("torch", "jax", "tensorflow"):
            group = [p for p in paths if PATHS[p][0] == backend]
            if group:
                result.update(run_group(group, args.calls, args.warmup))
                for path in group:
                    print(f"round {i + 1} {path}: {result[path]}", flush=True)
        rounds.append(result)
    doc = {
        "workload": WORKLOAD,
        "rounds": args.rounds,
        "calls": args.calls,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": machine(),
        "load": [load_start, os.getloadavg()[0]],
        "raw": rounds,
    }
    doc["table"] = summarize(rounds)
    write(doc, args.out_dir)


def write(doc: dict[str, Any], out_dir: str | None) -> None:
    """Judge `doc`'s table against the targets, print its page, and write
    serving.json and serving.md into `out_dir` (if given)."""
    doc["targets"] = targets(doc["table"])
    text = markdown(doc)
    print(text)
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        with open(os.path.join(out_dir, "serving.json"), "w") as f:
            json.dump(doc, f, indent=1)
        with open(os.path.join(out_dir, "serving.md"), "w") as f:
            f.write(page(text))


if __name__ == "__main__":
    main()
