"""Memory soak: resident memory stays flat while a `recap` MaskNet trains.

Trains the reference's production backbone (`recap`: inputs 2776 wide, a
parallel MaskNet of 4 blocks of aggregation and output width 1024, an MLP
layer of 2048 with ReLU, about 42.5M parameters) plus a 1-unit sigmoid head
with Adam and binary cross-entropy, and reads the process's resident memory
(RSS, from /proc/self/statm) after every training step. It prints RSS after
the model is built and compiled, after the first step (compilation), after
epoch 1, at the end, the peak, and the least-squares slope of RSS per step
over the steps after epoch 1, then PASS or FAIL against `--max-slope-kib`
(exit status 1 on FAIL; the limit is widened by two standard errors of the
slope, as the allocator moves RSS by tens of MiB from step to step). A
leak of a batch's activations (256 x 2776 float32
= 2.7 MiB) or of one weight copy per step would show as a slope in MiB.

Run it on its own, on an otherwise idle machine (it is not part of
`make test`); the backend is KERAS_BACKEND:

    KERAS_BACKEND=jax python benchmarks/memory_soak.py           # quick
    KERAS_BACKEND=jax python benchmarks/memory_soak.py --full    # 200 x 1024

The quick default trains 60 steps at batch 256 (3 epochs of 20; about a
quarter of a full step's work each); `--full` trains the issue's 200 steps
at batch 1024 (4 epochs of 50), which takes seconds per step on a 2-core
CPU. `--steps`, `--batch-size` and `--steps-per-epoch` set any other size.
The batches come from a pool of 4 fixed random batches, so the data do not
grow with the number of steps. Linux only (/proc).
"""

import argparse
import gc
import os
import resource
import sys
import time

import keras
import numpy as np

import keras_masknet

INPUT_WIDTH = 2776
POOL = 4
MIB = 1024 * 1024


def rss_bytes() -> int:
    """The process's current resident set size."""
    with open("/proc/self/statm") as f:
        resident_pages = int(f.read().split()[1])
    return resident_pages * os.sysconf("SC_PAGE_SIZE")


def peak_rss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class Batches(keras.utils.PyDataset):
    """`steps_per_epoch` batches cycled from a small fixed pool."""

    def __init__(self, batch_size: int, steps_per_epoch: int, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(POOL, batch_size, INPUT_WIDTH)).astype(
            "float32"
        )
        logits = self.x[..., 0] * self.x[..., 1]
        self.y = (logits > 0).astype("float32")[..., None]
        self.steps = steps_per_epoch

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, index: int):
        return self.x[index % POOL], self.y[index % POOL]


class RssRecorder(keras.callbacks.Callback):
    """RSS after every training step and at the end of every epoch."""

    def __init__(self):
        super().__init__()
        self.steps: list[int] = []
        self.epoch_ends: list[int] = []
        self.started = time.perf_counter()
        self.step_times: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        # Reading the loss waits for asynchronous backends (JAX).
        if logs and "loss" in logs:
            float(logs["loss"])
        self.steps.append(rss_bytes())
        self.step_times.append(time.perf_counter())

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_ends.append(len(self.steps))


def slope_per_step(values: list[int]) -> tuple[float, float]:
    """Least-squares slope of `values` against their index and its standard
    error, in bytes per step."""
    if len(values) < 3:
        return 0.0, float("inf")
    steps = np.arange(len(values), dtype="float64")
    values = np.asarray(values, "float64")
    slope, intercept = np.polyfit(steps, values, 1)
    residuals = values - (slope * steps + intercept)
    sigma2 = float(np.sum(residuals**2)) / (len(values) - 2)
    spread = float(np.sum((steps - steps.mean()) ** 2))
    return float(slope), float(np.sqrt(sigma2 / spread))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--full", action="store_true")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--steps-per-epoch", type=int)
    parser.add_argument(
        "--max-slope-kib",
        type=float,
        default=64.0,
        help="largest RSS growth per step after epoch 1 that passes (KiB)",
    )
    args = parser.parse_args(argv)
    steps = args.steps or (200 if args.full else 60)
    batch_size = args.batch_size or (1024 if args.full else 256)
    per_epoch = args.steps_per_epoch or (50 if args.full else 20)
    if steps % per_epoch or steps // per_epoch < 2:
        parser.error("--steps must be a multiple of at least 2 epochs")
    epochs = steps // per_epoch

    keras.utils.set_random_seed(0)
    data = Batches(batch_size, per_epoch)
    inputs = keras.Input((INPUT_WIDTH,))
    backbone = keras_masknet.presets.reference_production_mask_net()
    outputs = keras.layers.Dense(1, activation="sigmoid")(backbone(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(1e-4), "binary_crossentropy")
    gc.collect()
    after_build = rss_bytes()

    recorder = RssRecorder()
    start = time.perf_counter()
    history = model.fit(
        data, epochs=epochs, callbacks=[recorder], verbose=0, shuffle=False
    )
    wall = time.perf_counter() - start
    after_epoch_1 = recorder.steps[recorder.epoch_ends[0] - 1]
    later = recorder.steps[recorder.epoch_ends[0] :]
    slope, stderr = slope_per_step(later)
    growth = recorder.steps[-1] - after_epoch_1
    times = np.diff(recorder.step_times[recorder.epoch_ends[0] - 1 :])

    print(
        f"backend            {keras.backend.backend()} (keras "
        f"{keras.__version__}), {os.cpu_count()} CPUs"
    )
    print(f"model              recap: {model.count_params():,} parameters")
    print(
        f"run                {steps} steps = {epochs} epochs x "
        f"{per_epoch}, batch {batch_size}, {wall:.0f} s "
        f"({np.median(times):.2f} s/step after epoch 1)"
    )
    print(f"final loss         {history.history['loss'][-1]:.4f}")
    print(f"RSS after build    {after_build / MIB:9.1f} MiB")
    print(f"RSS after step 1   {recorder.steps[0] / MIB:9.1f} MiB")
    print(f"RSS after epoch 1  {after_epoch_1 / MIB:9.1f} MiB")
    print(f"RSS at the end     {recorder.steps[-1] / MIB:9.1f} MiB")
    print(f"RSS peak           {peak_rss_bytes() / MIB:9.1f} MiB")
    print(
        f"RSS min/max after epoch 1  {min(later) / MIB:.1f} / "
        f"{max(later) / MIB:.1f} MiB"
    )
    print(
        f"growth after epoch 1       {growth / MIB:+.2f} MiB over "
        f"{len(later)} steps"
    )
    medians = [
        np.median(recorder.steps[a:b]) / MIB
        for a, b in zip(recorder.epoch_ends[:-1], recorder.epoch_ends[1:])
    ]
    print(
        "median RSS per epoch after epoch 1: "
        + ", ".join(f"{m:.1f}" for m in medians)
        + " MiB"
    )
    print(
        f"slope after epoch 1        {slope / 1024:+.1f} KiB/step "
        f"(standard error {stderr / 1024:.1f}; limit {args.max_slope_kib:g}"
        " + 2 standard errors)"
    )
    ok = slope <= args.max_slope_kib * 1024 + 2 * stderr
    print(
        "PASS: resident memory is flat after epoch 1"
        if ok
        else "FAIL: resident memory grows after epoch 1"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
