"""XLA:CPU's bfloat16 dot against its float32 dot, on a CPU with bfloat16
units.

A minimal reproducer for an upstream XLA report (JAX only, no Keras): one
jitted `a @ b` of shape (1024, 2776) x (2776, 1024) in float32 and in
bfloat16, GFLOP/s (median of `--repeats`), first with XLA's default flags
and then, each in a process of its own (`XLA_FLAGS` is read at start-up),
with the flags that hand dots to oneDNN or XNNPACK. PyTorch's bfloat16
`torch.mm` on the same shape is printed beside, if torch is installed.

    python benchmarks/upstream/xla_cpu_bf16_dot.py

Expected on a CPU with `avx512_bf16` or `amx_bf16`: bfloat16 about twice
float32's rate, as PyTorch and TensorFlow (without XLA) get. Measured on a
2-core AMD EPYC with `avx512_bf16` (see UPSTREAM.md): bfloat16 at float32's
rate, or below, with every flag.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

import numpy as np

SHAPE = (1024, 2776, 1024)
VARIANTS = {
    "default": "",
    "onednn": "--xla_cpu_use_onednn=true",
    "onednn custom call": "--xla_cpu_use_onednn=true "
    "--xla_cpu_experimental_onednn_custom_call=true",
    "xnnpack": "--xla_cpu_use_xnnpack=true",
}


def rate(fn, repeats):
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    m, k, n = SHAPE
    return 2.0 * m * k * n / statistics.median(times) / 1e9


def measure(repeats):
    import jax
    import jax.numpy as jnp

    m, k, n = SHAPE
    rng = np.random.default_rng(0)
    a = rng.random((m, k), dtype="float32")
    b = rng.random((k, n), dtype="float32")
    matmul = jax.jit(lambda x, y: x @ y)
    cells = []
    for dtype in (jnp.float32, jnp.bfloat16):
        x, y = jnp.asarray(a, dtype), jnp.asarray(b, dtype)
        gflops = rate(lambda: matmul(x, y).block_until_ready(), repeats)
        cells.append(f"{jnp.dtype(dtype).name} {gflops:6.1f}")
    return f"jax {jax.__version__}: " + ", ".join(cells) + " GFLOP/s"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(measure(args.repeats), flush=True)
        return
    with open("/proc/cpuinfo") as f:
        flags = {w for w in f.read().split() if "bf16" in w}
    print(f"CPU bfloat16 flags: {sorted(flags) or 'none'}; shape {SHAPE}")
    for name, variant in VARIANTS.items():
        env = dict(os.environ, XLA_FLAGS=variant)
        cmd = [sys.executable, __file__, "--worker", "--repeats"]
        out = subprocess.run(
            [*cmd, str(args.repeats)], env=env, capture_output=True, text=True
        )
        lines = out.stdout.strip().splitlines() or [out.stderr.strip()[-300:]]
        print(f"{name:20} {lines[-1]}", flush=True)
    try:
        import torch
    except ImportError:
        return
    m, k, n = SHAPE
    rng = np.random.default_rng(0)
    a = torch.from_numpy(rng.random((m, k), dtype="float32"))
    b = torch.from_numpy(rng.random((k, n), dtype="float32"))
    cells = []
    for dtype in (torch.float32, torch.bfloat16):
        x, y = a.to(dtype), b.to(dtype)
        gflops = rate(lambda: torch.mm(x, y), args.repeats)
        cells.append(f"{dtype} {gflops:6.1f}")
    print(f"{'torch ' + torch.__version__:20} " + ", ".join(cells) + " GFLOP/s")


if __name__ == "__main__":
    main()
