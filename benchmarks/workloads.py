"""The benchmark's workloads and contenders, and the FLOP count of a model.

Shared by `run.py` (the driver) and `worker.py` (one contender per
process); imports neither keras nor a backend.
"""

from typing import Any

BATCH = 1024

#: `MaskNet` keyword arguments and input width of each workload. The
#: reference's block options (bias, no activation after the LayerNorm);
#: `reduction_factor` relative to the mask input (the reference's
#: convention), so the paper workloads aggregate to 2 * 390 = 780.
WORKLOADS: dict[str, dict[str, Any]] = {
    "recap": {
        "input_dim": 2776,
        "config": {
            "mask_blocks": [
                {
                    "output_size": 1024,
                    "aggregation_size": 1024,
                    "input_layer_norm": False,
                }
            ]
            * 4,
            "mlp": {"layer_sizes": [2048], "final_layer_activation": True},
            "use_parallel": True,
        },
    },
    "paper-parallel": {
        "input_dim": 390,
        "config": {
            "mask_blocks": [{"output_size": 400, "reduction_factor": 2.0}] * 3,
            "mlp": {
                "layer_sizes": [400, 400, 400],
                "final_layer_activation": True,
            },
            "use_parallel": True,
        },
    },
    "paper-serial": {
        "input_dim": 390,
        "config": {
            "mask_blocks": [{"output_size": 400, "reduction_factor": 2.0}] * 3,
            "mlp": None,
            "use_parallel": False,
        },
    },
}

#: Contenders: each runs in a process of its own (`worker.py`). `kind`
#: "reference" is the PyTorch eager re-implementation of the reference
#: (tests/reference_torch.py) with a plain training loop; "keras" is
#: keras-masknet through `model.fit`. `jit` is `model.compile(jit_compile=)`.
#: `workloads`: the ones it runs (None: all). `fused`: the prototype of the
#: parallel blocks computed on stacked weights (benchmarks/fused.py).
CONTENDERS: dict[str, dict[str, Any]] = {
    "reference": {"kind": "reference", "precision": "float32"},
    "reference-bf16": {
        "kind": "reference",
        "precision": "bfloat16",
        "workloads": ["recap"],
        "latency": False,
        # Without bfloat16 units (this CPU: AVX2 only) autocast is about 50x
        # slower than float32 (a recap step: about 2 minutes, idle): one
        # timed repeat, no warm-up (eager: nothing to compile), keeps
        # `make bench` under 15 minutes. The table shows n = 1.
        "max_repeats": 1,
        "warmup": 0,
    },
    "tensorflow": {"kind": "keras", "backend": "tensorflow", "jit": "auto"},
    "tensorflow-xla": {"kind": "keras", "backend": "tensorflow", "jit": True},
    "jax": {"kind": "keras", "backend": "jax", "jit": "auto"},
    "torch": {"kind": "keras", "backend": "torch", "jit": "auto"},
    "torch-compile": {
        "kind": "keras",
        "backend": "torch",
        "jit": True,
        "workloads": ["recap"],
        "latency": False,
    },
    "tensorflow-bf16": {
        "kind": "keras",
        "latency": False,
        "backend": "tensorflow",
        "jit": "auto",
        "precision": "bfloat16",
        "workloads": ["recap"],
    },
    "tensorflow-xla-bf16": {
        "kind": "keras",
        "latency": False,
        "backend": "tensorflow",
        "jit": True,
        "precision": "bfloat16",
        "workloads": ["recap"],
    },
    "jax-bf16": {
        "kind": "keras",
        "latency": False,
        "backend": "jax",
        "jit": "auto",
        "precision": "bfloat16",
        "workloads": ["recap"],
    },
    "torch-bf16": {
        "kind": "keras",
        "latency": False,
        "backend": "torch",
        "jit": "auto",
        "precision": "bfloat16",
        "workloads": ["recap"],
        # oneDNN's emulated bfloat16 dots on a CPU without bfloat16 units:
        # more than a minute a step (idle); as for reference-bf16.
        "max_repeats": 1,
        "warmup": 0,
    },
    "jax-fused": {
        "kind": "keras",
        "backend": "jax",
        "jit": "auto",
        "fused": True,
        "workloads": ["recap", "paper-parallel"],
    },
    "torch-fused": {
        "kind": "keras",
        "backend": "torch",
        "jit": "auto",
        "fused": True,
        "workloads": ["recap", "paper-parallel"],
    },
}

#: The contenders `make bench` runs, in this order (of priority: those the
#: time budget leaves out are reported as skipped). `--contenders all` adds
#: the others.
DEFAULT_CONTENDERS = [
    "reference",
    "jax",
    "tensorflow",
    "torch",
    "tensorflow-xla",
    "jax-bf16",
    "tensorflow-bf16",
    # Last: on a CPU without bfloat16 units these two take minutes a step;
    # the reference first, as target 3 compares every backend with it.
    "reference-bf16",
    "torch-bf16",
]


def dense_shapes(input_dim: int, config: dict[str, Any]) -> list[tuple]:
    """(in, out) of every dense layer of MaskNet + the 1-unit head."""
    shapes = []
    width = input_dim
    outputs = []
    for block in config["mask_blocks"]:
        masked = input_dim if config["use_parallel"] else width
        if block.get("aggregation_size") is not None:
            aggregation = block["aggregation_size"]
        else:
            aggregation = int(input_dim * block["reduction_factor"])
        shapes += [
            (input_dim, aggregation),
            (aggregation, masked),
            (masked, block["output_size"]),
        ]
        width = block["output_size"]
        outputs.append(width)
    if config["use_parallel"]:
        width = sum(outputs)
    if config.get("mlp"):
        for size in config["mlp"]["layer_sizes"]:
            shapes.append((width, size))
            width = size
    shapes.append((width, 1))
    return shapes


def forward_flops(workload: str) -> int:
    """Multiply-add FLOPs (2 per MAC) of one sample's forward pass."""
    spec = WORKLOADS[workload]
    return 2 * sum(
        i * o for i, o in dense_shapes(spec["input_dim"], spec["config"])
    )


def train_flops(workload: str) -> int:
    """One sample's training step: forward + 2x for the backward."""
    return 3 * forward_flops(workload)


#: The dominant GEMM of `recap` (batch x input width x block width); its
#: float32 rate is the "hardware" yardstick.
GEMM_SHAPE = (BATCH, 2776, 1024)
