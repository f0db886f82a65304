"""Keras' Adam on the torch backend against torch.optim.Adam: one update.

A minimal reproducer for an upstream Keras report (no keras-masknet code):
the weights of a 42.5 M-parameter model (the shapes of the MaskNet
reference's production backbone: 4 blocks of 1024 on 2776 inputs, an MLP
layer of 2048 and a 1-unit head), one `optimizer.apply` of random
gradients, median of `--repeats` updates, against `torch.optim.Adam`
with its for-loop, foreach and fused implementations on the same shapes
and gradients.

    KERAS_BACKEND=torch python benchmarks/upstream/keras_torch_adam.py

Expected: Keras' update near `torch.optim.Adam`'s (foreach: Keras' torch
Adam calls `torch._foreach_*` too). Measured on a 2-core AMD EPYC (see
UPSTREAM.md): 3.6-3.9x the for-loop's time, 14-18x the fused one's, and a
full-size temporary per `_foreach` op out of place (training's memory grows
1.4-1.5x the reference's).
"""

import argparse
import os
import statistics
import time

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

#: (in, out) of each dense layer: 4 blocks (aggregation, projection,
#: hidden), then the MLP's 4096 -> 2048 and the head 2048 -> 1.
DENSE = [(2776, 1024), (1024, 2776), (2776, 1024)] * 4 + [
    (4096, 2048),
    (2048, 1),
]


def median_ms(fn, repeats):
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def compare(dense, repeats):
    """Print one update's time for Keras' Adam and `torch.optim.Adam` on
    the kernels and biases of dense layers of the given (in, out)."""
    shapes = [s for i, o in dense for s in ((i, o), (o,))]
    rng = np.random.default_rng(0)
    values = [rng.normal(size=s).astype("float32") for s in shapes]
    grads = [
        torch.from_numpy(1e-3 * rng.normal(size=s).astype("float32"))
        for s in shapes
    ]
    count = sum(v.size for v in values)
    print(
        f"keras {keras.__version__}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; {len(shapes)} variables, "
        f"{count / 1e6:.1f} M weights"
    )
    variables = [keras.Variable(v) for v in values]
    adam = keras.optimizers.Adam(1e-4)
    adam.build(variables)
    keras_ms = median_ms(lambda: adam.apply(grads, variables), repeats)
    print(f"keras.optimizers.Adam.apply: {keras_ms:8.1f} ms")
    for kind in ("for-loop", "foreach", "fused"):
        params = [torch.nn.Parameter(torch.from_numpy(v)) for v in values]
        for param, grad in zip(params, grads):
            param.grad = grad
        opt = torch.optim.Adam(
            params, lr=1e-4, foreach=kind == "foreach", fused=kind == "fused"
        )
        ms = median_ms(opt.step, repeats)
        print(
            f"torch.optim.Adam ({kind:8}): {ms:8.1f} ms "
            f"(Keras' takes {keras_ms / ms:.1f}x as long)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    compare(DENSE, parser.parse_args().repeats)


if __name__ == "__main__":
    main()
