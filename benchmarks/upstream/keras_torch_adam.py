"""Keras' Adam on the torch backend against torch.optim.Adam: one update.

A minimal reproducer for an upstream Keras report (no keras-masknet code):
the weights of a 42.5 M-parameter model (the shapes of the MaskNet
reference's production backbone: 4 blocks of 1024 on 2776 inputs, an MLP
layer of 2048 and a 1-unit head), one `optimizer.apply` of random
gradients, median of `--repeats` updates, against `torch.optim.Adam`
with its for-loop, foreach and fused implementations on the same shapes
and gradients.

    KERAS_BACKEND=torch python benchmarks/upstream/keras_torch_adam.py

and again with glibc's malloc keeping freed memory (no fresh `mmap`, whose
pages fault in one by one, for each large temporary):

    MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=17179869184 \
        KERAS_BACKEND=torch python benchmarks/upstream/keras_torch_adam.py

Expected: Keras' update near `torch.optim.Adam`'s (foreach: Keras' torch
Adam calls `torch._foreach_*` too). Measured on a 2-core AMD EPYC (see
UPSTREAM.md): 3.6-4.3x the for-loop's time, 14-18x the fused one's, and a
full-size temporary per `_foreach` op out of place (training's memory grows
1.4-1.5x the reference's); most of the time goes to the page faults of
those temporaries (the second command).
"""

import argparse
import os
import resource
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
    """The median time of `fn()` in ms, and the minor page faults (pages
    the kernel had to map on first touch) of one call, on average."""
    fn()
    fn()
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    return 1e3 * statistics.median(times), faults / repeats


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
    keras_ms, faults = median_ms(lambda: adam.apply(grads, variables), repeats)
    print(
        f"keras.optimizers.Adam.apply: {keras_ms:8.1f} ms, "
        f"{faults:9,.0f} page faults"
    )
    for kind in ("for-loop", "foreach", "fused"):
        params = [torch.nn.Parameter(torch.from_numpy(v)) for v in values]
        for param, grad in zip(params, grads):
            param.grad = grad
        opt = torch.optim.Adam(
            params, lr=1e-4, foreach=kind == "foreach", fused=kind == "fused"
        )
        ms, faults = median_ms(opt.step, repeats)
        print(
            f"torch.optim.Adam ({kind:8}): {ms:8.1f} ms, {faults:9,.0f} "
            f"page faults (Keras' takes {keras_ms / ms:.1f}x as long)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    compare(DENSE, parser.parse_args().repeats)


if __name__ == "__main__":
    main()
