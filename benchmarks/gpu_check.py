"""Train `recap` for a few steps on one GPU; print samples/s and TFLOP/s.

Run by `benchmarks/gpu_check.sh` (see there how to prepare the machine).
`python benchmarks/gpu_check.py` runs one process per backend (jax, torch)
and the reference (PyTorch eager); `--allow-cpu` lets it run without a GPU
(a dry run of the script: the figures then mean nothing).
"""

import argparse
import json
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(1, REPO)

from workloads import WORKLOADS  # noqa: E402
from workloads import train_flops  # noqa: E402

SPEC = WORKLOADS["recap"]


def data(batch: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * steps, SPEC["input_dim"])).astype("float32")
    y = (rng.random((batch * steps, 1)) < 0.3).astype("float32")
    return x, y


def report(name: str, precision: str, times: list[float], n: int) -> dict:
    med = float(np.median(times))
    rate = n / med
    out = {
        "contender": name,
        "precision": precision,
        "samples_per_s": rate,
        "best_samples_per_s": n / min(times),
        "tflops": rate * train_flops("recap") / 1e12,
    }
    print(json.dumps(out), flush=True)
    return out


def run_keras(backend: str, args: argparse.Namespace) -> None:
    import keras

    import keras_masknet

    on_gpu = False
    if backend == "jax":
        import jax

        on_gpu = jax.devices()[0].platform == "gpu"
        device = str(jax.devices()[0])
    else:
        import torch

        on_gpu = torch.cuda.is_available()
        device = torch.cuda.get_device_name(0) if on_gpu else "cpu"
    print(f"# keras {keras.__version__} on {backend}: {device}", flush=True)
    if not on_gpu and not args.allow_cpu:
        raise SystemExit(f"{backend}: no GPU (use --allow-cpu for a dry run)")
    x, y = data(args.batch, args.steps)
    for precision in ("float32", "bfloat16"):
        policy = "mixed_bfloat16" if precision == "bfloat16" else "float32"
        keras.config.set_dtype_policy(policy)
        inputs = keras.Input((SPEC["input_dim"],))
        backbone = keras_masknet.MaskNet(**SPEC["config"])
        head = keras.layers.Dense(1, activation="sigmoid", dtype="float32")
        model = keras.Model(inputs, head(backbone(inputs)))
        model.compile(
            keras.optimizers.Adam(1e-4),
            "binary_crossentropy",
            jit_compile=True if args.jit_compile else "auto",
        )
        keras.config.set_dtype_policy("float32")
        times: list[float] = []

        class Timer(keras.callbacks.Callback):
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self.start = time.perf_counter()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                float(logs["loss"])
                times.append(time.perf_counter() - self.start)

        model.fit(
            x,
            y,
            batch_size=args.batch,
            epochs=1 + args.repeats,
            shuffle=False,
            verbose=0,
            callbacks=[Timer()],
        )
        # The weights, the optimizer's slots and the computation: on the GPU.
        variables = model.variables + model.optimizer.variables
        if backend == "jax":
            kinds = {d.platform for v in variables for d in v.value.devices()}
        else:
            import torch

            kinds = {v.value.device.type for v in variables}
            if on_gpu:
                weights = sum(v.value.numel() * 4 for v in variables)
                peak = torch.cuda.max_memory_allocated()
                assert peak > weights, (peak, weights)
        print(f"# {precision}: variables on {sorted(kinds)}", flush=True)
        if on_gpu:
            assert kinds == {"gpu" if backend == "jax" else "cuda"}, kinds
        name = f"keras-{backend}" + ("-jit" if args.jit_compile else "")
        report(name, precision, times[1:], len(x))


def run_reference(args: argparse.Namespace) -> None:
    import torch
    from torch import nn

    from tests.reference_torch import TorchMaskNet

    on_gpu = torch.cuda.is_available()
    if not on_gpu and not args.allow_cpu:
        raise SystemExit("reference: no GPU (use --allow-cpu for a dry run)")
    dev = torch.device("cuda" if on_gpu else "cpu")
    print(f"# torch {torch.__version__} reference on {dev}", flush=True)
    x, y = data(args.batch, args.steps)
    tx, ty = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    for precision in ("float32", "bfloat16"):
        torch.manual_seed(0)
        backbone = TorchMaskNet(SPEC["config"], SPEC["input_dim"]).to(dev)
        head = nn.Linear(2048, 1).to(dev)
        params = list(backbone.parameters()) + list(head.parameters())
        opt = torch.optim.Adam(params, lr=1e-4)
        loss_fn = nn.BCELoss()
        autocast = precision == "bfloat16"
        times = []
        for epoch in range(1 + args.repeats):
            start = time.perf_counter()
            for i in range(args.steps):
                sl = slice(i * args.batch, (i + 1) * args.batch)
                opt.zero_grad(set_to_none=True)
                with torch.autocast(
                    dev.type, dtype=torch.bfloat16, enabled=autocast
                ):
                    p = torch.sigmoid(head(backbone(tx[sl])["output"]))
                loss = loss_fn(p.float(), ty[sl])
                loss.backward()
                opt.step()
            float(loss.detach())
            times.append(time.perf_counter() - start)
        assert all(p.device.type == dev.type for p in params)
        report("reference", precision, times[1:], len(x))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--allow-cpu", action="store_true")
    parser.add_argument("--batch", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=10, help="per epoch")
    parser.add_argument("--repeats", type=int, default=5, help="epochs")
    parser.add_argument("--only", choices=["jax", "torch", "reference"])
    parser.add_argument(
        "--jit-compile",
        action="store_true",
        help="compile(jit_compile=True): torch.compile on torch",
    )
    args = parser.parse_args()
    if args.only == "reference":
        return run_reference(args)
    if args.only:
        return run_keras(args.only, args)
    passed = [a for a in sys.argv[1:]]
    failed = []
    for only in ("jax", "torch", "reference"):
        env = dict(os.environ, KERAS_BACKEND=only)
        if only == "reference":
            env.pop("KERAS_BACKEND")
        cmd = [sys.executable, __file__, *passed, "--only", only]
        if subprocess.run(cmd, env=env).returncode != 0:
            failed.append(only)
    if failed:
        raise SystemExit(f"failed: {failed}")


if __name__ == "__main__":
    main()
