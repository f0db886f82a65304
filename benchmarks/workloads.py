"""The benchmark's workloads and contenders, and the FLOP count of a model.

Shared by `run.py` (the driver) and `worker.py` (one contender per
process); imports neither keras nor a backend.
"""

import importlib.util
import os
from typing import Any

BATCH = 1024


def _presets() -> Any:
    """keras_masknet/presets.py, loaded from its file: the package's
    `__init__` would import Keras, and a worker must set its backend first.
    The presets import nothing of Keras until a preset is built."""
    path = os.path.join(
        os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
        "keras_masknet",
        "presets.py",
    )
    spec = importlib.util.spec_from_file_location("_masknet_presets", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: `MaskNet` keyword arguments and input width of each workload. The
#: reference's block options (bias, no activation after the LayerNorm);
#: `reduction_factor` relative to the mask input (the reference's
#: convention), so the paper workloads aggregate to 2 * 390 = 780.
WORKLOADS: dict[str, dict[str, Any]] = {
    # The reference's production backbone on its dense feature vector.
    "recap": {
        "input_dim": 2776,
        "config": _presets().preset_config("reference_production"),
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

#: The workload whose memory growth the table shows: each process runs it
#: first (later workloads reuse memory the allocator already holds).
MEMORY_WORKLOAD = next(iter(WORKLOADS))

#: Settings of the bfloat16 eager contenders on a CPU without bfloat16
#: units, where a recap step takes minutes: one timed repeat, no warm-up
#: (eager: nothing to compile), no inference at batch 1024 (not a target),
#: and the bfloat16-vs-float32 check on 64 samples. The table shows n = 1.
SLOW_BF16 = {
    "max_repeats": 1,
    "warmup": 0,
    "inference": False,
    "check_samples": 64,
}

#: glibc malloc settings (environment variables, read when a process
#: starts) under which freed memory stays in the process for the next
#: allocation: no `mmap` per large block, no heap trimming below 16 GiB.
#: With glibc's defaults every full-size temporary of Keras' torch Adam
#: is a fresh `mmap` whose pages fault in on first touch.
KEEP_FREED_MEMORY = {
    "MALLOC_MMAP_MAX_": "0",
    "MALLOC_TRIM_THRESHOLD_": str(16 << 30),
}

#: An XLA flag (read when JAX starts) under which XLA:CPU's copy insertion
#: analyses regions. Keras' JAX trainer donates its state to the jitted
#: step (`donate_argnums=0`); with XLA:CPU's default copy insertion the
#: compiled step then copies most donated weights once a step (at
#: paper-parallel 2.18 M of 3.10 M; benchmarks/upstream/xla_cpu_donation.py),
#: with this flag none.
XLA_NO_DONATION_COPIES = {
    "XLA_FLAGS": "--xla_cpu_copy_insertion_use_region_analysis=true",
}

#: Contenders: each runs in a process of its own (`worker.py`). `kind`
#: "reference" is the PyTorch eager re-implementation of the reference
#: (tests/reference_torch.py) with a plain training loop; "keras" is
#: keras-masknet through `model.fit`. `jit` is `model.compile(jit_compile=)`.
#: `workloads`: the ones it runs (None: all).
#: Optional: `latency` (False: no serving latencies), `warmup` (untimed
#: repeats, instead of the worker's per-workload default), `max_repeats`,
#: `inference` (False: no inference at batch 1024), `check_samples` (of the
#: bfloat16-vs-float32 check, default 256) and `without_bf16_units` (those
#: settings on a CPU without bfloat16 units; see `contender_spec`) and
#: `env` (environment variables of its process: the reference it trains
#: in turns with, `--paired`, runs under them too).
CONTENDERS: dict[str, dict[str, Any]] = {
    "reference": {"kind": "reference", "precision": "float32"},
    "reference-bf16": {
        "kind": "reference",
        "precision": "bfloat16",
        "workloads": ["recap"],
        "latency": False,
        # Without bfloat16 units (AVX2 only, as here) autocast is about 50x
        # slower than float32: a recap step takes about 2 minutes.
        "without_bf16_units": SLOW_BF16,
    },
    "tensorflow": {"kind": "keras", "backend": "tensorflow", "jit": "auto"},
    "tensorflow-xla": {
        "kind": "keras",
        "backend": "tensorflow",
        "jit": True,
        # Shown, not counted (no XLA by default on a CPU): two workloads.
        "workloads": ["recap", "paper-parallel"],
    },
    "jax": {"kind": "keras", "backend": "jax", "jit": "auto"},
    # JAX under XLA_NO_DONATION_COPIES, a setting a user makes without
    # changing a line of code: shown beside the default, not counted.
    "jax-nocopy": {
        "kind": "keras",
        "backend": "jax",
        "jit": "auto",
        "env": XLA_NO_DONATION_COPIES,
        "latency": False,
        "inference": False,
    },
    "torch": {"kind": "keras", "backend": "torch", "jit": "auto"},
    "torch-compile": {
        "kind": "keras",
        "backend": "torch",
        "jit": True,
        "workloads": ["recap"],
        "latency": False,
        # Its predict step would be compiled too (about 30 s here): left
        # out of the 15 minutes; the training step is what it is for.
        "inference": False,
        # Keras' torch trainer clears the gradients after the forward pass,
        # so the second step finds them set and torch.compile compiles the
        # step again (tens of seconds): both compiles are warm-up.
        "warmup": 2,
    },
    # Eager torch in a process whose allocator keeps freed memory, a
    # setting a user makes without changing a line of code: shown beside
    # the defaults, not counted.
    "torch-malloc": {
        "kind": "keras",
        "backend": "torch",
        "jit": "auto",
        "env": KEEP_FREED_MEMORY,
        "latency": False,
        "inference": False,
    },
    # torch-malloc under `mixed_bfloat16`: shown beside, not counted.
    "torch-malloc-bf16": {
        "kind": "keras",
        "latency": False,
        "inference": False,
        "backend": "torch",
        "jit": "auto",
        "precision": "bfloat16",
        "env": KEEP_FREED_MEMORY,
        "workloads": ["recap"],
        "without_bf16_units": SLOW_BF16,
    },
    # torch.compile under `mixed_bfloat16` (the update fused): shown
    # beside torch-bf16, not counted. In `make bench-paired` on a CPU with
    # bfloat16 units only (without them a compiled step is minutes too).
    "torch-compile-bf16": {
        "kind": "keras",
        "backend": "torch",
        "jit": True,
        "precision": "bfloat16",
        "workloads": ["recap"],
        "latency": False,
        "inference": False,
        "warmup": 2,
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
        # oneDNN's emulated bfloat16 dots without bfloat16 units: more than
        # two minutes a step here.
        "without_bf16_units": SLOW_BF16,
    },
}

#: The contenders `make bench` runs, in this order of priority: those the
#: time budget leaves out are reported as skipped. `--contenders all` adds
#: the others.
DEFAULT_CONTENDERS = [
    "reference",
    "jax",
    "tensorflow",
    "torch",
    # The compiled mode the docs recommend for long runs on PyTorch (it
    # cuts the training memory): shown beside the defaults, not counted.
    "torch-compile",
    "jax-bf16",
    "tensorflow-bf16",
    # On a CPU without bfloat16 units the reference takes minutes a step;
    # target 3 compares every backend with it.
    "reference-bf16",
    # XLA on TensorFlow, side by side with the default; shown, not counted.
    "tensorflow-xla",
    # Last: minutes a step without bfloat16 units (does not fit then).
    "torch-bf16",
]


def cpu_flags() -> list[str]:
    """This CPU's vector flags (avx*, amx*, fma*) from /proc/cpuinfo."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return sorted(
                        f for f in flags if f.startswith(("avx", "amx", "fma"))
                    )
    except OSError:
        pass
    return []


def has_bf16_units(flags: list[str] | None = None) -> bool:
    """Whether the CPU computes bfloat16 dots in hardware (AVX512_BF16 or
    AMX); without them oneDNN emulates them, tens of times slower."""
    flags = cpu_flags() if flags is None else flags
    return bool({"avx512_bf16", "amx_bf16"} & set(flags))


def contender_spec(name: str, bf16_units: bool | None = None) -> dict:
    """`CONTENDERS[name]`, with its `without_bf16_units` settings applied
    on a CPU without bfloat16 units."""
    spec = dict(CONTENDERS[name])
    slow = spec.pop("without_bf16_units", None)
    if bf16_units is None:
        bf16_units = has_bf16_units()
    if slow and not bf16_units:
        spec.update(slow)
    return spec


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


def shown(x: float, digits: int, threshold: float) -> str:
    """`x` with `digits` decimals, or more where that many would round it
    onto `threshold` (0.997 is not "1.00" beside a target of 1.0): the
    bench pages' figures beside their targets."""
    while digits < 6 and x != threshold and round(x, digits) == threshold:
        digits += 1
    return f"{x:.{digits}f}"
