"""Distributed training on each backend's own engine, and the layout map.

The layout-map tests run in every session. Each distributed run is one
subprocess of an `examples/distributed_*.py` script, on the engine of one
backend whatever the session's backend: so each runs once, in the session
of its backend (`make test` runs all three):

- jax: `keras.distribution.DataParallel` and `ModelParallel` over 4
  virtual CPU devices (`XLA_FLAGS`);
- tensorflow: `tf.distribute.MirroredStrategy` over 2 logical CPUs;
- torch: `torch.distributed` DDP, 2 processes over gloo, by `torchrun`.
"""

import json
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_masknet
from keras_masknet.distribution import mask_net_layout_map
from tests.helpers import REPO
from tests.helpers import in_one_session

#: Loss curves of a distributed and a one-device run, same weights and
#: batches: equal but for the order of float32 sums (about 1e-7 here).
LOSS_RTOL = 1e-5


def _mesh(shape=(1, 1), axis_names=("batch", "model")):
    # Building a LayoutMap needs no device: the names are placeholders.
    devices = [f"cpu:{i}" for i in range(int(np.prod(shape)))]
    return keras.distribution.DeviceMesh(shape, axis_names, devices)


def _axes(layout_map, path):
    layout = layout_map[path]
    return None if layout is None else tuple(layout.axes)


# ---------------------------------------------------------------------------
# The layout map (every backend, in process).


@pytest.mark.parametrize(
    "path, axes",
    [
        ("mask_net/mask_block_0/mask_aggregation/kernel", (None, "model")),
        ("mask_net/mask_block_3/mask_projection/kernel", ("model", None)),
        ("mask_net/mask_block_12/hidden/kernel", (None, "model")),
        ("mask_net/mlp/dense_0/kernel", ("model", None)),
        ("mask_net/mlp/dense_11/kernel", ("model", None)),
        # Whatever comes before the block: a renamed MaskNet, a wrapper.
        ("ranker/tower/backbone/mask_block_1/hidden/kernel", (None, "model")),
        ("backbone_2/mlp/dense_1/kernel", ("model", None)),
        # A MaskBlock on its own.
        ("mask_block/mask_aggregation/kernel", (None, "model")),
        ("mask_block_7/hidden/kernel", (None, "model")),
        # Replicated: biases, norms, the low-rank projection, other layers.
        ("mask_net/mask_block_0/mask_aggregation/bias", None),
        ("mask_net/mask_block_0/hidden/bias", None),
        ("mask_net/mask_block_0/layer_norm/gamma", None),
        ("mask_net/mask_block_0/input_layer_norm/beta", None),
        ("mask_net/mask_block_0/mask_low_rank_projection/kernel", None),
        ("mask_net/embedding_layer_norm_0/gamma", None),
        ("mask_net/mlp/batch_norm_0/moving_mean", None),
        ("mask_net/mlp/dense_0/bias", None),
        ("dense/kernel", None),
        ("hidden/kernel", None),
        ("my_mask_block/hidden/kernel", None),
        ("mask_net/mask_block_0/hidden/kernel_extra", None),
    ],
    ids=lambda value: str(value),
)
def test_layout_map_shards_each_path_as_documented(path, axes):
    assert _axes(mask_net_layout_map(_mesh()), path) == axes


def test_layout_map_matches_every_kernel_of_a_built_mask_net_once():
    net = keras_masknet.MaskNet(
        mask_blocks=[
            {
                "output_size": 8,
                "aggregation_size": 16,
                "input_layer_norm": True,
                "mask_projection_dim": 4,
            },
            {"output_size": 8, "reduction_factor": 1.0},
        ],
        mlp={"layer_sizes": [8, 4, 1], "batch_norm": {"affine": True}},
        use_parallel=True,
        embedding_layer_norm=True,
        name="backbone",
    )
    net.build((None, 3, 4))
    layout_map = mask_net_layout_map(_mesh((2, 4)), model_axis="model")
    # A path that matched two keys would raise here.
    got = {w.path: _axes(layout_map, w.path) for w in net.weights}
    sharded = {path: axes for path, axes in got.items() if axes is not None}
    want = {}
    for i in range(2):
        block = f"backbone/mask_block_{i}"
        want[f"{block}/mask_aggregation/kernel"] = (None, "model")
        want[f"{block}/mask_projection/kernel"] = ("model", None)
        want[f"{block}/hidden/kernel"] = (None, "model")
    for i in range(3):
        want[f"backbone/mlp/dense_{i}/kernel"] = ("model", None)
    assert sharded == want
    assert len(got) > len(want)  # the rest is replicated


def test_layout_map_takes_the_model_axis_and_patterns():
    mesh = _mesh((2, 2), ("data", "tensor"))
    layout_map = mask_net_layout_map(
        mesh,
        model_axis="tensor",
        block_pattern=r"block_\d+",
        mlp_pattern=None,
    )
    assert _axes(layout_map, "net/block_0/hidden/kernel") == (None, "tensor")
    assert _axes(layout_map, "net/block_0/mask_projection/kernel") == (
        "tensor",
        None,
    )
    assert _axes(layout_map, "net/mask_block_0/hidden/kernel") is None
    assert _axes(layout_map, "mask_net/mlp/dense_0/kernel") is None
    assert layout_map.device_mesh is mesh
    assert len(layout_map) == 3


def test_layout_map_rejects_an_unknown_model_axis():
    with pytest.raises(ValueError, match="model_axis='model'"):
        mask_net_layout_map(_mesh((2,), ("batch",)))


# ---------------------------------------------------------------------------
# Distributed training, one engine per backend session.


def _run(command, backend, subprocess_env, extra_env=None, timeout=600):
    env = dict(subprocess_env, KERAS_BACKEND=backend, **(extra_env or {}))
    proc = subprocess.run(
        command,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    log = f"stdout:\n{proc.stdout[-3000:]}\nstderr:\n{proc.stderr[-5000:]}"
    assert proc.returncode == 0, log
    return json.loads(proc.stdout.strip().splitlines()[-1]), log


def _only_in(backend):
    return in_one_session(backend, f"spawns its own {backend} processes")


@pytest.fixture(scope="module")
def jax_run(subprocess_env):
    # The tests' XLA flags (tests/conftest.py: quicker to compile), and 4
    # virtual CPU devices.
    flags = subprocess_env.get("XLA_FLAGS", "")
    return _run(
        [sys.executable, str(REPO / "examples" / "distributed_jax.py")],
        "jax",
        subprocess_env,
        {"XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=4"},
    )


@pytest.mark.slow
@_only_in("jax")
def test_jax_data_parallel_fit_matches_one_device(jax_run):
    result, log = jax_run
    assert result["backend"] == "jax", log
    assert result["devices"] == 4, log
    single = result["single_device_loss"]
    assert len(single) == 3 and single[-1] < single[0], log
    np.testing.assert_allclose(
        result["data_parallel_loss"], single, rtol=LOSS_RTOL
    )


@pytest.mark.slow
@_only_in("jax")
def test_jax_model_parallel_shards_kernels_and_matches(jax_run):
    result, log = jax_run
    assert result["mesh"] == [2, 2], log
    kernels = result["kernels"]
    want = {
        "mask_aggregation/kernel": [None, "model"],
        "mask_projection/kernel": ["model", None],
        "hidden/kernel": [None, "model"],
        "mlp/dense_0/kernel": ["model", None],
        "mlp/dense_1/kernel": ["model", None],
    }
    checked = 0
    for path, info in kernels.items():
        spec = next(
            (axes for end, axes in want.items() if path.endswith(end)), None
        )
        # Every array spans the 4 devices, sharded or replicated.
        assert info["devices"] == 4, (path, info)
        if spec is None:  # the output Dense: replicated
            assert info["spec"] == [None, None], (path, info)
            assert info["shard_shape"] == info["shape"], (path, info)
            continue
        checked += 1
        assert info["spec"] == spec, (path, info)
        axis = spec.index("model")
        shard = list(info["shape"])
        shard[axis] //= 2  # the model axis has 2 devices
        assert info["shard_shape"] == shard, (path, info)
        assert info["distinct_shards"] == 2, (path, info)
    assert checked == 3 * 2 + 2, kernels  # 2 blocks and 2 MLP layers
    # The sharded model computes what the unsharded one does.
    assert result["prediction_max_abs_diff"] <= 1e-6, log
    # And trains the same.
    np.testing.assert_allclose(
        result["model_parallel_loss"],
        result["single_device_loss"],
        rtol=LOSS_RTOL,
    )


@pytest.mark.slow
@_only_in("tensorflow")
def test_tensorflow_mirrored_strategy_fits_saves_and_reloads(subprocess_env):
    result, log = _run(
        [
            sys.executable,
            str(REPO / "examples" / "distributed_tensorflow.py"),
            "--cpu-devices",
            "2",
        ],
        "tensorflow",
        subprocess_env,
    )
    assert result["backend"] == "tensorflow", log
    assert result["replicas"] == 2, log
    assert [d.rsplit("/", 1)[-1] for d in result["devices"]] == [
        "device:CPU:0",
        "device:CPU:1",
    ], log
    # Every variable was created mirrored on both replicas.
    assert result["mirrored_variables"] == result["weights"] > 0, log
    single = result["single_device_loss"]
    assert len(single) == 3 and single[-1] < single[0], log
    np.testing.assert_allclose(result["mirrored_loss"], single, rtol=LOSS_RTOL)
    assert result["reload_max_abs_diff"] <= 1e-6, log


@pytest.mark.slow
@_only_in("torch")
def test_torch_ddp_over_gloo_matches_one_process(subprocess_env):
    result, log = _run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(REPO / "examples" / "distributed_torch.py"),
        ],
        "torch",
        subprocess_env,
    )
    assert result["backend"] == "torch", log
    assert result["world_size"] == 2, log
    assert result["process_group_backend"] == "gloo", log
    single = result["single_process_loss"]
    assert len(single) == 3 and single[-1] < single[0], log
    np.testing.assert_allclose(result["ddp_loss"], single, rtol=LOSS_RTOL)
    assert result["weight_max_abs_diff"] <= 1e-5, log
