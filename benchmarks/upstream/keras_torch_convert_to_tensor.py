"""Keras' torch `convert_to_tensor` moves every tensor to the device it is
already on.

A minimal reproducer for an upstream Keras report (no keras-masknet code).
`keras.src.backend.torch.core.convert_to_tensor` compares `x.device` (a
`torch.device`) with `get_device()` (a string such as "cpu" or "cuda"); a
`torch.device` never equals a string, so every op's every tensor argument
goes through `Tensor.to(device)`: a no-op, but a dispatch in eager mode and
an `aten.to` (with `aten._assert_tensor_metadata`) node in a
`torch.export` program. This counts both:

    KERAS_BACKEND=torch python \
        benchmarks/upstream/keras_torch_convert_to_tensor.py

Expected: no `Tensor.to` for tensors already on the device, and no
conversion nodes in the exported program.
"""

import os
import tempfile

os.environ["KERAS_BACKEND"] = "torch"

import keras  # noqa: E402
import torch  # noqa: E402
from keras.src.backend.torch.core import get_device  # noqa: E402


def main():
    print(f"keras {keras.__version__}, torch {torch.__version__}")
    x = torch.zeros(32, 400)
    print(
        f"x.device == {get_device()!r}: {x.device == get_device()}; "
        f"x.device == torch.device({get_device()!r}): "
        f"{x.device == torch.device(get_device())}"
    )
    calls = []
    original = torch.Tensor.to

    def counting_to(self, *args, **kwargs):
        calls.append(args or kwargs)
        return original(self, *args, **kwargs)

    torch.Tensor.to = counting_to
    try:
        keras.ops.matmul(x, x.T)
    finally:
        torch.Tensor.to = original
    print(f"Tensor.to calls for one ops.matmul of 2 tensors: {len(calls)}")

    inputs = keras.Input((400,))
    model = keras.Model(inputs, keras.layers.Dense(8)(inputs))
    path = os.path.join(tempfile.mkdtemp(), "model.pt2")
    model.export(path, format="torch", verbose=False)
    graph = torch.export.load(path).graph
    targets = [str(n.target) for n in graph.nodes if n.op == "call_function"]
    conversions = [
        t for t in targets if t.startswith("aten.to.") or "assert" in t
    ]
    print(
        f"exported program of one Dense layer: {len(targets)} ATen calls, "
        f"{len(conversions)} of them conversions: {sorted(set(conversions))}"
    )


if __name__ == "__main__":
    main()
