"""Parity with the reference implementation, and its weight migration.

Two sources of truth:
- `tests/data/` (copied from `shared/golden/`): outputs computed by running
  the reference itself on random weights;
- `tests/reference_torch.py`: a PyTorch re-implementation written from
  REFERENCE.md, with the reference's module structure and state_dict names,
  over many more configurations.
"""

import re

import keras
import numpy as np
import pytest
import torch

from keras_masknet import MLP
from keras_masknet import MaskBlock
from keras_masknet import MaskNet
from keras_masknet.reference import export_reference_weights
from keras_masknet.reference import load_reference_weights
from keras_masknet.reference import reference_weight_names
from tests.helpers import PARITY_TOL
from tests.helpers import random_fields
from tests.helpers import relative_error
from tests.helpers import to_numpy
from tests.reference_torch import TorchMaskBlock
from tests.reference_torch import TorchMaskNet
from tests.reference_torch import randomize_

GOLDEN_NETS = [
    "parallel_ln_rf",
    "serial_agg",
    "parallel_mlp_bn_dropout",
    "serial_mlp_bn_noaffine",
]


def _golden_state_dict(arrays, case):
    prefix = f"{case}/sd/"
    return {
        k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)
    }


# ------------------------------------------------------------------ golden


@pytest.mark.parametrize("case", GOLDEN_NETS)
def test_golden_outputs_of_the_reference_itself(golden, case):
    cases, arrays = golden
    info = cases[case]
    net = MaskNet(**info["config"])
    net.build((None, info["in_features"]))
    load_reference_weights(net, _golden_state_dict(arrays, case))
    x = arrays[f"{case}/x"]

    got = to_numpy(net(x, training=False))
    assert relative_error(got, arrays[f"{case}/y_eval"]) <= PARITY_TOL

    if info["train_check"]:
        got = to_numpy(net(x, training=True))
        assert relative_error(got, arrays[f"{case}/y_train"]) <= PARITY_TOL
        norms = net.mlp_layer.batch_norm_layers if net.mlp_layer else []
        assert len(norms) == info["batch_norms"]
        for i, norm in enumerate(norms):
            want = arrays[f"{case}/running_mean_after_train/{i}"]
            assert relative_error(to_numpy(norm.moving_mean), want) <= 1e-4


def test_reference_yaml_config_works_as_keyword_arguments(golden):
    # Every net of the golden data (the tests above take the same shapes).
    cases, _ = golden
    for name, case in cases.items():
        if name == "block":
            continue
        net = MaskNet(**case["config"])
        net.build((None, case["in_features"]))
        assert net.built


def test_golden_output_of_a_lone_block(golden):
    cases, arrays = golden
    info = cases["block"]
    block = MaskBlock(**info["config"])
    block.build((None, info["input_dim"]), (None, info["mask_input_dim"]))
    load_reference_weights(block, _golden_state_dict(arrays, "block"))
    got = to_numpy(block(arrays["block/x"], mask_input=arrays["block/mask"]))
    assert relative_error(got, arrays["block/y_eval"]) <= PARITY_TOL


# ------------------------------------------------- PyTorch re-implementation


def _block(out, ln=False, rf=None, agg=None):
    return {
        "output_size": out,
        "reduction_factor": rf,
        "aggregation_size": agg,
        "input_layer_norm": ln,
    }


TORCH_CASES = {
    "parallel, input LayerNorm, reduction factors": (
        25,
        {
            "mask_blocks": [
                _block(11, True, rf=0.29),
                _block(40, False, rf=1.37),
                _block(3, True, agg=2),
            ],
            "mlp": None,
            "use_parallel": True,
        },
    ),
    "serial, truncating reduction factors, non-square": (
        100,
        {
            "mask_blocks": [
                _block(37, True, rf=0.57),
                _block(64, False, rf=0.33),
                _block(5, True, agg=19),
            ],
            "mlp": None,
            "use_parallel": False,
        },
    ),
    "serial with an MLP (broken in the reference itself)": (
        17,
        {
            "mask_blocks": [_block(9, False, agg=13), _block(21, True, rf=2.5)],
            "mlp": {
                "layer_sizes": [15, 8, 4],
                "batch_norm": {"affine": True, "momentum": 0.1},
                "dropout": None,
                "final_layer_activation": True,
            },
            "use_parallel": False,
        },
    ),
    "parallel, MLP with non-affine batch norm": (
        30,
        {
            "mask_blocks": [_block(12, True, rf=0.5), _block(7, False, agg=3)],
            "mlp": {
                "layer_sizes": [10, 6],
                "batch_norm": {"affine": False, "momentum": 0.9},
                "dropout": None,
                "final_layer_activation": False,
            },
            "use_parallel": True,
        },
    ),
    "parallel, MLP with batch norm and dropout": (
        14,
        {
            "mask_blocks": [_block(6, False, agg=8), _block(6, True, rf=1.0)],
            "mlp": {
                "layer_sizes": [16, 12, 2],
                "batch_norm": {"affine": True, "momentum": 0.3},
                "dropout": {"rate": 0.25},
                "final_layer_activation": False,
            },
            "use_parallel": True,
        },
    ),
    "single block, MLP with dropout only and null defaults": (
        8,
        {
            "mask_blocks": [_block(5, False, rf=3.0)],
            "mlp": {
                "layer_sizes": [4, 1],
                "batch_norm": None,
                "dropout": {"rate": None},
                "final_layer_activation": None,
            },
            "use_parallel": False,
        },
    ),
}


def _has_dropout(config):
    return (
        config["mlp"] is not None and config["mlp"].get("dropout") is not None
    )


@pytest.mark.parametrize("case", list(TORCH_CASES))
def test_parity_with_the_pytorch_reimplementation(case):
    in_features, config = TORCH_CASES[case]
    torch.manual_seed(0)
    ref = TorchMaskNet(config, in_features)
    randomize_(ref, seed=len(case))
    net = MaskNet(**config)
    net.build((None, in_features))
    load_reference_weights(net, ref.state_dict())
    # Every reference parameter and buffer found its Keras variable.
    float_keys = [
        k for k in ref.state_dict() if not k.endswith("num_batches_tracked")
    ]
    assert sorted(reference_weight_names(net)) == sorted(float_keys)

    x = torch.randn(33, in_features, generator=torch.Generator().manual_seed(1))
    ref.eval()
    with torch.no_grad():
        want = ref(x)
    got = net(x.numpy(), training=False, return_shared_layer=True)
    for key in ("output", "shared_layer"):
        assert (
            relative_error(to_numpy(got[key]), want[key].numpy()) <= PARITY_TOL
        )

    if not _has_dropout(config):
        ref.train()
        with torch.no_grad():
            want = ref(x)["output"].numpy()
        got = to_numpy(net(x.numpy(), training=True))
        assert relative_error(got, want) <= PARITY_TOL
        # The moving means follow the same (converted) momentum.
        ref_state = ref.state_dict()
        keras_state = export_reference_weights(net)
        for key in ref_state:
            if key.endswith("running_mean"):
                assert (
                    relative_error(keras_state[key], ref_state[key].numpy())
                    <= 1e-4
                )


def test_fresh_weights_follow_the_same_initialization_scheme():
    # Same init scheme: identical zero biases and unit norms, and kernels
    # bounded by the same Glorot limit as torch's xavier_uniform_.
    config = TORCH_CASES["parallel, input LayerNorm, reduction factors"][1]
    ref = TorchMaskNet(config, 25).state_dict()
    net = MaskNet(**config)
    net.build((None, 25))
    ours = export_reference_weights(net)
    for key, value in ref.items():
        value = value.numpy()
        if key.endswith("bias") or key.endswith("norm.weight"):
            np.testing.assert_array_equal(ours[key], value)
        else:
            limit = np.sqrt(6.0 / sum(value.shape))
            assert np.abs(ours[key]).max() <= limit
            assert np.abs(value).max() <= limit


# ---------------------------------------------------------- the weight loader


def _small_net():
    net = MaskNet(
        [_block(4, True, agg=3)],
        mlp={"layer_sizes": [5, 2], "batch_norm": {}, "dropout": {"rate": 0.1}},
    )
    net.build((None, 6))
    ref = TorchMaskNet(net.get_config(), 6)
    randomize_(ref, seed=3)
    return net, ref.state_dict()


def test_mlp_module_indices_count_every_module():
    net, state_dict = _small_net()
    # Linear (0), BatchNorm1d (1), ReLU (2), Dropout (3), Linear (4).
    assert "_dense_layers.layers.1.running_var" in state_dict
    assert "_dense_layers.layers.4.weight" in state_dict
    load_reference_weights(net, state_dict)
    np.testing.assert_array_equal(
        to_numpy(net.mlp_layer.dense_layers[1].kernel),
        state_dict["_dense_layers.layers.4.weight"].numpy().T,
    )
    np.testing.assert_array_equal(
        to_numpy(net.mlp_layer.batch_norm_layers[0].moving_variance),
        state_dict["_dense_layers.layers.1.running_var"].numpy(),
    )


def test_prefix_is_stripped_and_other_parts_of_the_model_ignored():
    net, state_dict = _small_net()
    full = {f"_backbone.{k}": v for k, v in state_dict.items()}
    full["_embedding.weight"] = torch.zeros(3, 3)
    full["_towers.0.weight"] = torch.zeros(1, 3)
    load_reference_weights(net, full, prefix="_backbone.")
    np.testing.assert_array_equal(
        export_reference_weights(net)["_mask_blocks.0._hidden_layer.weight"],
        state_dict["_mask_blocks.0._hidden_layer.weight"].numpy(),
    )


def test_numpy_arrays_work_as_well_as_tensors():
    net, state_dict = _small_net()
    load_reference_weights(net, {k: v.numpy() for k, v in state_dict.items()})
    assert (
        relative_error(
            export_reference_weights(net)["_dense_layers.layers.0.weight"],
            state_dict["_dense_layers.layers.0.weight"].numpy(),
        )
        == 0
    )


def _assert_unchanged(net, before):
    for w, old in zip(net.weights, before):
        np.testing.assert_array_equal(to_numpy(w), old)


def test_missing_key_is_reported_and_nothing_is_assigned():
    net, state_dict = _small_net()
    before = [to_numpy(w).copy() for w in net.weights]
    del state_dict["_mask_blocks.0._layer_norm.bias"]
    with pytest.raises(
        ValueError, match=r"Missing keys: \['_mask_blocks.0._layer_norm.bias'"
    ):
        load_reference_weights(net, state_dict)
    _assert_unchanged(net, before)


def test_unexpected_key_is_reported_with_its_prefix():
    net, state_dict = _small_net()
    state_dict = {f"_backbone.{k}": v for k, v in state_dict.items()}
    state_dict["_backbone._mask_blocks.1._hidden_layer.weight"] = torch.ones(1)
    with pytest.raises(
        ValueError,
        match=r"Unexpected keys: \['_backbone._mask_blocks.1._hidden_layer",
    ):
        load_reference_weights(net, state_dict, prefix="_backbone.")


def test_wrong_shape_is_reported_in_pytorch_layout_and_nothing_assigned():
    net, state_dict = _small_net()
    before = [to_numpy(w).copy() for w in net.weights]
    state_dict["_mask_blocks.0._hidden_layer.weight"] = torch.ones(6, 4)
    with pytest.raises(
        ValueError,
        match=r"_hidden_layer.weight: expected "
        r"shape \(4, 6\), received \(6, 4\)",
    ):
        load_reference_weights(net, state_dict)
    _assert_unchanged(net, before)


def test_a_prefix_that_matches_nothing_is_reported():
    net, state_dict = _small_net()
    with pytest.raises(ValueError, match=r"No key.*prefix='_backbone.'"):
        load_reference_weights(net, state_dict, prefix="_backbone.")


def test_an_unbuilt_layer_is_refused():
    with pytest.raises(ValueError, match="not built"):
        load_reference_weights(MaskNet([_block(3, agg=2)]), {"a": 1})


def test_a_non_keras_masknet_layer_is_refused():
    with pytest.raises(TypeError, match="layer.*Dense"):
        load_reference_weights(keras.layers.Dense(2), {})


def test_a_non_mapping_state_dict_is_refused():
    net, _ = _small_net()
    with pytest.raises(TypeError, match="state_dict.*list"):
        load_reference_weights(net, [])


def test_a_lone_block_and_a_lone_mlp_load_their_own_state_dicts():
    ref = TorchMaskBlock(_block(4, True, rf=0.5), input_dim=6, mask_input_dim=9)
    randomize_(ref, seed=9)
    block = MaskBlock(4, reduction_factor=0.5, input_layer_norm=True)
    block.build((None, 6), (None, 9))
    load_reference_weights(block, ref.state_dict())
    x, m = torch.randn(5, 6), torch.randn(5, 9)
    with torch.no_grad():
        want = ref(x, m).numpy()
    got = to_numpy(block(x.numpy(), mask_input=m.numpy()))
    assert relative_error(got, want) <= PARITY_TOL

    net, state_dict = _small_net()
    mlp = MLP([5, 2], batch_norm={}, dropout={"rate": 0.1})
    mlp.build((None, 4))
    mlp_sd = {
        k[len("_dense_layers.") :]: v
        for k, v in state_dict.items()
        if k.startswith("_dense_layers.")
    }
    load_reference_weights(mlp, mlp_sd)
    assert set(reference_weight_names(mlp)) <= set(mlp_sd)


# ------------------------------------ options beyond the reference's weights


def test_options_without_new_weights_keep_the_reference_keys():
    options = {
        "output_activation": "relu",
        "dropout_rate": 0.2,
        "reduction_factor": 2.0,
        "reduction_factor_base": "inputs",
    }
    net = MaskNet(
        [{"output_size": 4, **options}, {"output_size": 3, **options}]
    )
    net(random_fields("list", [3, 5], batch=2))
    state_dict = export_reference_weights(net)
    reference = MaskNet(
        [
            {"output_size": 4, "aggregation_size": 16},
            {"output_size": 3, "aggregation_size": 8},
        ]
    )
    reference.build((None, 8))
    assert reference_weight_names(net) == reference_weight_names(reference)
    load_reference_weights(reference, state_dict)
    fresh = MaskNet(**net.get_config())
    fresh(random_fields("list", [3, 5], batch=2))
    load_reference_weights(fresh, export_reference_weights(reference))
    for a, b in zip(fresh.weights, net.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


NO_REFERENCE = {
    "use_hidden_bias=False": (
        {"use_hidden_bias": False},
        {},
        "use_hidden_bias=False",
    ),
    "a low-rank mask": (
        {"mask_projection_dim": 3},
        {},
        "mask_projection_dim=3",
    ),
    "per-field embedding LayerNorm": (
        {},
        {"embedding_layer_norm": True},
        "embedding_layer_norm=True",
    ),
}


@pytest.mark.parametrize("case", list(NO_REFERENCE))
def test_no_reference_state_dict_exists_for(case):
    block_options, net_options, option = NO_REFERENCE[case]
    net = MaskNet(
        [{"output_size": 4, "aggregation_size": 5, **block_options}],
        **net_options,
    )
    net.build((None, 6))
    message = rf"uses `{re.escape(option)}`.*no reference state_dict"
    with pytest.raises(ValueError, match=message):
        export_reference_weights(net)
    with pytest.raises(ValueError, match=message):
        load_reference_weights(net, {"_mask_blocks.0._layer_norm.bias": 0})
    if block_options:
        block = MaskBlock(4, aggregation_size=5, **block_options)
        block.build((None, 6))
        with pytest.raises(ValueError, match=message):
            export_reference_weights(block)
