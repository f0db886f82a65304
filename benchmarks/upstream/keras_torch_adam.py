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
UPSTREAM.md): 3.5-4.9x the for-loop's time, 13-21x the fused one's; most
of it goes to the page faults of full-size temporaries (one per
`_foreach` op out of place: the second command has no faults and takes a
third of the time), and they hold the peak about 490 MiB above the memory
before the update (three copies of the weights) against 64 MiB for the
for-loop and none for the fused update: training's memory grows 1.4-1.5x
the reference's. (The peak is read from `VmHWM`, Linux; under the second
command the memory glibc keeps counts before the update, so it reads 0.)
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


def _resident_mib():
    """(peak, current) resident memory of this process in MiB (Linux)."""
    fields = {}
    with open("/proc/self/status") as status:
        for line in status:
            key, _, value = line.partition(":")
            fields[key] = value
    return (
        int(fields["VmHWM"].split()[0]) / 1024,
        int(fields["VmRSS"].split()[0]) / 1024,
    )


def median_ms(fn, repeats):
    """The median time of `fn()` in ms, the minor page faults (pages the
    kernel had to map on first touch) of one call on average, and the peak
    resident memory above the memory before the calls, in MiB (the update's
    temporaries: the weights, gradients and slots exist already)."""
    fn()
    fn()
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")  # the peak (VmHWM) restarts from here
    before = _resident_mib()[1]
    times = []
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
    peak = max(0.0, _resident_mib()[0] - before)
    return 1e3 * statistics.median(times), faults / repeats, peak


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
    keras_ms, faults, peak = median_ms(
        lambda: adam.apply(grads, variables), repeats
    )
    print(
        f"keras.optimizers.Adam.apply: {keras_ms:8.1f} ms, "
        f"{faults:9,.0f} page faults, peak +{peak:4.0f} MiB"
    )
    for kind in ("for-loop", "foreach", "fused"):
        params = [torch.nn.Parameter(torch.from_numpy(v)) for v in values]
        for param, grad in zip(params, grads):
            param.grad = grad
        opt = torch.optim.Adam(
            params, lr=1e-4, foreach=kind == "foreach", fused=kind == "fused"
        )
        ms, faults, peak = median_ms(opt.step, repeats)
        print(
            f"torch.optim.Adam ({kind:8}): {ms:8.1f} ms, {faults:9,.0f} "
            f"page faults, peak +{peak:4.0f} MiB "
            f"(Keras' takes {keras_ms / ms:.1f}x as long)"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7)
    compare(DENSE, parser.parse_args().repeats)


if __name__ == "__main__":
    main()
