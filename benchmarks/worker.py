"""One benchmark contender in one process: `python benchmarks/worker.py`.

Run by `run.py`, once per contender (the Keras backend is fixed when keras is
imported). Writes one JSON document to `--out`: the float32 (and bfloat16)
GEMM rate of its framework, then per workload the training and inference
times, the serving latencies and the memory growth while training.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(1, REPO)

from workloads import BATCH  # noqa: E402
from workloads import CONTENDERS  # noqa: E402
from workloads import GEMM_SHAPE  # noqa: E402
from workloads import MEMORY_WORKLOAD  # noqa: E402
from workloads import WORKLOADS  # noqa: E402
from workloads import contender_spec  # noqa: E402
from workloads import has_bf16_units  # noqa: E402

#: Timed batches per repeat: a `recap` step takes seconds on a small CPU.
STEPS = {"recap": 1, "paper-parallel": 8, "paper-serial": 8}
#: Latency calls per batch size (the p50 is reported); none at `recap`.
LATENCY_CALLS = {"paper-parallel": 20, "paper-serial": 20}
LATENCY_BATCHES = (1, 32)
#: Untimed repeats first (the first one compiles under XLA/JAX); a
#: contender's `warmup` replaces them.
WARMUP = {"recap": 1, "paper-parallel": 2, "paper-serial": 2}
#: Samples of the bfloat16-vs-float32 output check.
CHECK_SAMPLES = 256


# --- memory ---------------------------------------------------------------


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def rss_mib() -> float:
    return _status_kib("VmRSS") / 1024


class PeakMemory:
    """Peak resident memory over a region: the kernel's high-water mark
    (reset through /proc/self/clear_refs) and a 5 ms sampler, whichever is
    higher (the sampler alone if the reset is not allowed)."""

    def __enter__(self) -> "PeakMemory":
        self.base = rss_mib()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            self.hwm = True
        except OSError:
            self.hwm = False
        self.sampled = self.base
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.sampled = max(self.sampled, rss_mib())

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        peak = self.sampled
        if self.hwm:
            peak = max(peak, _status_kib("VmHWM") / 1024)
        self.peak = peak
        self.growth = peak - self.base


# --- timing ---------------------------------------------------------------


def summary(seconds: list[float], samples: int) -> dict[str, Any]:
    """Throughput (samples/s) from per-repeat times: median and best."""
    med = statistics.median(seconds)
    return {
        "seconds": seconds,
        "samples_per_repeat": samples,
        "median_samples_per_s": samples / med,
        "best_samples_per_s": samples / min(seconds),
    }


def time_calls(fn: Any, repeats: int, warmup: int = 2) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def latency(fn_for_batch: Any, x: np.ndarray, calls: int) -> dict[str, Any]:
    out = {}
    for batch in LATENCY_BATCHES:
        fn = fn_for_batch(x[:batch])
        times = time_calls(fn, calls, warmup=3)
        out[str(batch)] = {
            "p50_ms": 1e3 * statistics.median(times),
            "best_ms": 1e3 * min(times),
        }
    return out


def data(workload: str, samples: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    width = WORKLOADS[workload]["input_dim"]
    x = rng.normal(size=(samples, width)).astype("float32")
    y = (rng.random((samples, 1)) < 0.3).astype("float32")
    return x, y


# --- GEMM rate ------------------------------------------------------------


def gemm_rates(framework: str, repeats: int) -> dict[str, Any]:
    """The rate of `GEMM_SHAPE` in float32 (and bfloat16) in GFLOP/s."""
    m, k, n = GEMM_SHAPE
    flops = 2 * m * k * n
    rng = np.random.default_rng(1)
    a = rng.normal(size=(m, k)).astype("float32")
    b = rng.normal(size=(k, n)).astype("float32")
    out = {}
    dtypes = ["float32", "bfloat16"] if framework != "numpy" else ["float32"]
    for dtype in dtypes:
        if framework == "numpy":

            def fn(a=a, b=b):
                return a @ b

        elif framework == "torch":
            import torch

            # bfloat16 as the reference's autocast runs it: a Linear.
            ta = torch.from_numpy(a)
            tb = torch.from_numpy(np.ascontiguousarray(b.T))
            bf16 = dtype == "bfloat16"

            def fn(ta=ta, tb=tb, bf16=bf16):
                with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
                    return torch.nn.functional.linear(ta, tb)

        elif framework == "jax":
            import jax
            import jax.numpy as jnp

            ja = jnp.asarray(a, dtype=dtype)
            jb = jnp.asarray(b, dtype=dtype)
            mm = jax.jit(jnp.matmul)

            def fn(ja=ja, jb=jb, mm=mm):
                return mm(ja, jb).block_until_ready()

        elif framework == "tensorflow":
            import tensorflow as tf

            ta = tf.cast(tf.constant(a), dtype)
            tb = tf.cast(tf.constant(b), dtype)

            def fn(ta=ta, tb=tb):
                return tf.linalg.matmul(ta, tb).numpy()

        else:
            raise ValueError(framework)
        start = time.perf_counter()
        fn()
        first = time.perf_counter() - start
        # A slow kernel (bfloat16 without bfloat16 units): fewer repeats.
        times = time_calls(fn, repeats if first < 1 else 2, warmup=1)
        out[dtype] = {
            "median_gflops": flops / statistics.median(times) / 1e9,
            "best_gflops": flops / min(times) / 1e9,
        }
    return out


# --- the reference --------------------------------------------------------


def reference_trainer(
    workload: str, precision: str, optimizer: str = "adam"
) -> tuple[Any, ...]:
    """The reference (tests/reference_torch.py) with a Linear + sigmoid
    head: (model, epoch, autocast, x). `epoch()` trains one timed repeat
    (`STEPS[workload]` batches) with a plain loop: Adam (or "sgd", for a
    probe) and `BCELoss`."""
    import torch
    from torch import nn

    from tests.reference_torch import TorchMaskNet

    spec = WORKLOADS[workload]
    torch.manual_seed(0)

    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.backbone = TorchMaskNet(spec["config"], spec["input_dim"])
            width = self.backbone(torch.zeros(1, spec["input_dim"]))[
                "output"
            ].shape[-1]
            self.head = nn.Linear(width, 1)
            nn.init.xavier_uniform_(self.head.weight)
            nn.init.zeros_(self.head.bias)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.sigmoid(self.head(self.backbone(x)["output"]))

    bf16 = precision == "bfloat16"

    def autocast() -> Any:
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16)

    model = Model()
    steps = STEPS[workload]
    x, y = data(workload, steps * BATCH)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    make = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}[optimizer]
    opt = make(model.parameters(), lr=1e-4)
    loss_fn = nn.BCELoss()

    def epoch() -> None:
        for i in range(steps):
            xb = tx[i * BATCH : (i + 1) * BATCH]
            yb = ty[i * BATCH : (i + 1) * BATCH]
            opt.zero_grad(set_to_none=True)
            with autocast():
                p = model(xb)
            loss = loss_fn(p.float(), yb)
            loss.backward()
            opt.step()
        float(loss.detach())

    model.train()
    return model, epoch, autocast, x


def run_reference(
    workload: str,
    precision: str,
    repeats: int,
    warmup: int,
    do_latency: bool,
    do_inference: bool = True,
    check_samples: int = CHECK_SAMPLES,
) -> dict[str, Any]:
    import torch

    model, epoch, autocast, x = reference_trainer(workload, precision)
    bf16 = precision == "bfloat16"
    with PeakMemory() as mem:
        times = time_calls(epoch, repeats, warmup=warmup)
    result = {
        "train": summary(times, STEPS[workload] * BATCH),
        "memory": {"base_mib": mem.base, "growth_mib": mem.growth},
    }
    model.eval()

    def predict(xb: np.ndarray) -> Any:
        def fn() -> np.ndarray:
            with torch.inference_mode(), autocast():
                return model(torch.from_numpy(xb)).float().numpy()

        return fn

    if do_inference:
        times = time_calls(predict(x[:BATCH]), repeats, warmup)
        result["infer"] = summary(times, BATCH)
    if do_latency:
        result["latency"] = {
            "eager": latency(predict, x, LATENCY_CALLS[workload])
        }
    if bf16:
        with torch.inference_mode():
            low = predict(x[:check_samples])()
            with torch.autocast("cpu", enabled=False):
                high = model(torch.from_numpy(x[:check_samples])).numpy()
        result["bf16_max_abs_diff"] = float(np.max(np.abs(low - high)))
    return result


# --- keras-masknet --------------------------------------------------------


def build_keras_model(workload: str, precision: str, jit: Any) -> Any:
    import keras

    import keras_masknet

    spec = WORKLOADS[workload]
    policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
    keras.config.set_dtype_policy(policy)
    keras.utils.set_random_seed(0)
    inputs = keras.Input((spec["input_dim"],))
    backbone = keras_masknet.MaskNet(**spec["config"])
    head = keras.layers.Dense(1, activation="sigmoid", dtype="float32")
    model = keras.Model(inputs, head(backbone(inputs)))
    model.compile(
        optimizer=keras.optimizers.Adam(1e-4),
        loss="binary_crossentropy",
        jit_compile=jit,
    )
    keras.config.set_dtype_policy("float32")
    return model


def serving_fn(model: Any, backend: str, jit: Any) -> Any:
    """A direct compiled forward call, per backend: `fn(x)(...)`."""
    if backend == "tensorflow":
        import tensorflow as tf

        fwd = tf.function(
            lambda x: model(x, training=False), jit_compile=jit is True
        )

        def for_batch(xb: np.ndarray) -> Any:
            return lambda: fwd(tf.constant(xb)).numpy()

    elif backend == "jax":
        import jax

        @jax.jit
        def fwd(tv: Any, ntv: Any, x: Any) -> Any:
            return model.stateless_call(tv, ntv, x, training=False)[0]

        def for_batch(xb: np.ndarray) -> Any:
            def fn() -> np.ndarray:
                # The values now: `fit` and `predict` donate old buffers.
                tv = [v.value for v in model.trainable_variables]
                ntv = [v.value for v in model.non_trainable_variables]
                return np.asarray(fwd(tv, ntv, xb))

            return fn

    else:
        import torch

        def for_batch(xb: np.ndarray) -> Any:
            def fn() -> np.ndarray:
                with torch.inference_mode():
                    out = model(torch.from_numpy(xb), training=False)
                    return out.float().cpu().numpy()

            return fn

    return for_batch


def epoch_timer(times: list[float]) -> Any:
    """A callback appending each epoch's seconds to `times`."""
    import keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
            float(logs["loss"])  # waits for the step (JAX dispatches async)
            times.append(time.perf_counter() - self.start)

    return Timer()


def step_timer(steps: int, after: Any = None) -> Any:
    """A callback that times `model.fit` over one long epoch in groups of
    `steps` batches (`.times`): a group is one repeat. The clock starts at
    the first batch and then runs from one group's end to the next, so
    every per-step cost counts and per-epoch ones do not: those spread over
    a real epoch's thousands of steps, but would weigh on a repeat of 8
    (on TensorFlow, tf.data's autotuning delays the start of some epochs by
    about 1.3 s here; benchmarks/NOTES.md). At each group's end it reads
    the loss (JAX dispatches asynchronously), then runs `after()`,
    untimed."""
    import keras

    class StepTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.times: list[float] = []
            self.start: float | None = None

        def on_train_batch_begin(self, batch: int, logs: Any = None) -> None:
            if self.start is None:
                self.start = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if (batch + 1) % steps:
                return
            float(logs["loss"])
            self.times.append(time.perf_counter() - self.start)
            if after is not None:
                after()
            self.start = time.perf_counter()

    return StepTimer()


def fit_groups(
    model: Any, x: np.ndarray, y: np.ndarray, groups: int, timer: Any
) -> None:
    """`model.fit` for one epoch of `groups` passes over (x, y), in order,
    timed by `timer` (`step_timer`)."""
    x, y = np.tile(x, (groups, 1)), np.tile(y, (groups, 1))
    model.fit(
        x,
        y,
        batch_size=BATCH,
        epochs=1,
        shuffle=False,
        verbose=0,
        callbacks=[timer],
    )


def run_keras(
    workload: str,
    backend: str,
    jit: Any,
    precision: str,
    repeats: int,
    warmup: int,
    do_latency: bool,
    do_inference: bool = True,
    check_samples: int = CHECK_SAMPLES,
    paired: int = 0,
) -> dict[str, Any]:
    model = build_keras_model(workload, precision, jit)
    steps = STEPS[workload]
    x, y = data(workload, steps * BATCH)
    # Warm-up (compiles) and, in the workload whose memory growth the table
    # shows, one step more: the growth of training. Then the timed repeats,
    # in one epoch (`step_timer`). Without warm-up (a step of minutes), the
    # growth is that of the timed repeats.
    first = warmup + (workload == MEMORY_WORKLOAD) if warmup else 0
    warm: list[float] = []
    timer = step_timer(steps)
    with PeakMemory() as mem:
        if first:
            model.fit(
                x,
                y,
                batch_size=BATCH,
                epochs=first,
                shuffle=False,
                verbose=0,
                callbacks=[epoch_timer(warm)],
            )
        else:
            fit_groups(model, x, y, repeats, timer)
    if first:
        fit_groups(model, x, y, repeats, timer)
    result = {
        "train": summary(timer.times, steps * BATCH),
        "warmup_seconds": warm,
        "memory": {"base_mib": mem.base, "growth_mib": mem.growth},
        "jit_compile": model.jit_compile,
    }

    def predict(xb: np.ndarray) -> Any:
        return lambda: model.predict_on_batch(xb)

    if do_inference:
        times = time_calls(predict(x[:BATCH]), repeats, warmup)
        result["infer"] = summary(times, BATCH)
    serve = serving_fn(model, backend, jit)
    if do_latency:
        times = time_calls(serve(x[:BATCH]), repeats, warmup)
        result["infer_direct"] = summary(times, BATCH)
        calls = LATENCY_CALLS[workload]
        result["latency"] = {
            "predict_on_batch": latency(predict, x, calls),
            "direct": latency(serve, x, calls),
        }
    if precision == "bfloat16":
        # The same weights in a float32 MaskNet: the outputs must agree.
        ref = build_keras_model(workload, "float32", jit)
        ref.set_weights(model.get_weights())
        high = np.asarray(ref.predict_on_batch(x[:check_samples]))
        low = np.asarray(
            model.predict_on_batch(x[:check_samples]), dtype="float32"
        )
        result["bf16_max_abs_diff"] = float(np.max(np.abs(low - high)))
    if paired:
        # In bfloat16 the reference trains under autocast.
        result["paired"] = paired_rounds(
            model, workload, x, y, paired, precision=precision
        )
    return result


def paired_rounds(
    model: Any,
    workload: str,
    x: np.ndarray,
    y: np.ndarray,
    rounds: int,
    optimizer: str = "adam",
    precision: str = "float32",
) -> dict[str, Any]:
    """Training side by side with the reference, in this process:
    `rounds` timed pairs of one Keras repeat (`model.fit` goes on) and one
    reference repeat right after it, after one untimed pair. Each pair's
    ratio (reference seconds / Keras seconds: above 1, Keras trains
    faster) shares the machine's state of that moment, so drift between
    processes and over minutes cancels out of it. `optimizer` and
    `precision`: the reference's (see `reference_trainer`); the model's
    are its own."""
    _, ref_epoch, _, _ = reference_trainer(workload, precision, optimizer)
    ref_times: list[float] = []

    def reference_epoch() -> None:
        start = time.perf_counter()
        ref_epoch()
        ref_times.append(time.perf_counter() - start)

    timer = step_timer(STEPS[workload], after=reference_epoch)
    fit_groups(model, x, y, 1 + rounds, timer)
    keras_times = timer.times
    ratios = [r / k for r, k in zip(ref_times[1:], keras_times[1:])]
    samples = STEPS[workload] * BATCH
    return {
        "keras": summary(keras_times[1:], samples),
        "reference": summary(ref_times[1:], samples),
        "warmup_seconds": [keras_times[0], ref_times[0]],
        "ratios": ratios,
        "median_ratio": statistics.median(ratios),
    }


# --- main -----------------------------------------------------------------


def restart_under(env: dict[str, str]) -> None:
    """Start this worker again, with the same arguments, in a process
    with `env` added to its environment, unless it already has it. For
    settings read when a process starts, such as glibc's `MALLOC_*`
    variables: setting them in `os.environ` now would change nothing."""
    if all(os.environ.get(k) == v for k, v in env.items()):
        return
    os.execve(
        sys.executable,
        [sys.executable, os.path.abspath(__file__), *sys.argv[1:]],
        {**os.environ, **env},
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--contender", required=True, choices=CONTENDERS)
    parser.add_argument("--workloads", default=",".join(WORKLOADS))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--paired",
        type=int,
        default=0,
        help="rounds of training paired with the reference in this process, "
        "in the contender's precision (bfloat16: the reference under "
        "autocast, on a CPU with bfloat16 units only; 0: none)",
    )
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    spec = contender_spec(args.contender)
    restart_under(spec.get("env", {}))
    workloads = [
        w
        for w in args.workloads.split(",")
        if w in (spec.get("workloads") or WORKLOADS)
    ]
    backend = spec.get("backend", "torch")
    if spec["kind"] == "keras":
        os.environ["KERAS_BACKEND"] = backend
    result: dict[str, Any] = {
        "contender": args.contender,
        "spec": spec,
        "env": {k: os.environ.get(k) for k in spec.get("env", {})},
        "python": platform.python_version(),
        "workloads": {},
    }
    # A contender may cap its repeats (a step of minutes); the table says so.
    repeats = min(args.repeats, spec.get("max_repeats", args.repeats))
    result["repeats"] = repeats
    options = {
        "do_inference": spec.get("inference", True),
        "check_samples": spec.get("check_samples", CHECK_SAMPLES),
    }
    start = time.perf_counter()
    plain = spec.get("precision", "float32") == "float32"
    # Paired rounds in bfloat16 only where the reference's autocast step
    # takes seconds: on a CPU without bfloat16 units it takes minutes.
    fast_bf16 = not plain and has_bf16_units()
    if plain and spec.get("jit") is not True:
        frameworks = [backend] + (["numpy"] if backend == "torch" else [])
        result["gemm"] = {fw: gemm_rates(fw, args.repeats) for fw in frameworks}
    for workload in workloads:
        t0 = time.perf_counter()
        common = {
            "repeats": repeats,
            "warmup": spec.get("warmup", WARMUP[workload]),
            "do_latency": spec.get("latency", True)
            and workload in LATENCY_CALLS,
            **options,
        }
        if spec["kind"] == "reference":
            res = run_reference(workload, spec["precision"], **common)
        else:
            res = run_keras(
                workload,
                backend,
                spec["jit"],
                spec.get("precision", "float32"),
                **common,
                paired=args.paired if plain or fast_bf16 else 0,
            )
        res["wall_seconds"] = time.perf_counter() - t0
        result["workloads"][workload] = res
        write(args.out, result, spec)  # what is done survives a timeout
        print(
            f"  {args.contender:>20} {workload:>15}: "
            f"{res['train']['median_samples_per_s']:9.0f} samples/s train "
            f"({res['wall_seconds']:.0f} s)",
            flush=True,
        )
    result["wall_seconds"] = time.perf_counter() - start
    write(args.out, result, spec)


def write(path: str, result: dict[str, Any], spec: dict[str, Any]) -> None:
    result["versions"] = versions(spec)
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=1)
    os.replace(path + ".tmp", path)


def versions(spec: dict[str, Any]) -> dict[str, str]:
    out = {"numpy": np.__version__}
    if spec["kind"] == "keras":
        import keras

        import keras_masknet

        out["keras"] = keras.__version__
        out["keras_masknet"] = keras_masknet.__version__
    backend = spec.get("backend", "torch")
    module = __import__(backend)
    out[backend] = module.__version__
    return out


if __name__ == "__main__":
    main()
