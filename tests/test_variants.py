"""The paper's variant and the other implementations' options.

Numbers are checked against `tests/numpy_paper.py`, an implementation of the
paper's equations with its own parameters, which these tests copy into the
layers (`assign_paper_params`): a width the layers compute differently fails
there, on shape.
"""

import re

import keras
import numpy as np
import pytest

import keras_masknet
from keras_masknet import MaskBlock
from keras_masknet import MaskNet
from keras_masknet import export_reference_weights
from keras_masknet import load_reference_weights
from keras_masknet.reference import reference_weight_names
from tests import numpy_paper as paper
from tests.helpers import assign_paper_params
from tests.helpers import relative_error
from tests.helpers import requires_keras
from tests.helpers import to_numpy

#: float32 through a few matmuls and normalizations: 1e-5 relative.
TOL = 1e-5
#: `return_masks=True` gives a dict holding a list; as a functional model's
#: outputs, Keras accepts that nesting from 3.4.0 on (the layer works before).
NESTED_FUNCTIONAL_OUTPUTS = requires_keras(
    "3.4.0", "a functional model with nested outputs (a list in a dict)"
)


# ------------------------------------------------------------------ helpers


def _fields(structure, dims, batch=16, seed=1):
    """Random inputs: a 2-D array, a 3-D array or a list of fields."""
    rng = np.random.default_rng(seed)
    if structure == "2-D":
        return rng.normal(size=(batch, sum(dims))).astype("float32")
    if structure == "3-D":
        assert len(set(dims)) == 1
        return rng.normal(size=(batch, len(dims), dims[0])).astype("float32")
    return [rng.normal(size=(batch, d)).astype("float32") for d in dims]


def _keras_input(structure, dims):
    if structure == "2-D":
        return keras.Input((sum(dims),))
    if structure == "3-D":
        return keras.Input((len(dims), dims[0]))
    return [keras.Input((d,)) for d in dims]


def _paper_block(out, **options):
    return {
        "output_size": out,
        "reduction_factor": 2.0,
        "reduction_factor_base": "inputs",
        "output_activation": "relu",
        "use_hidden_bias": False,
        **options,
    }


# ----------------------------------------------------- MaskBlock validation


@pytest.mark.parametrize(
    "value,error",
    [
        pytest.param("not_an_activation", ValueError, id="an unknown name"),
        pytest.param(3, ValueError, id="an int"),
        pytest.param(True, TypeError, id="a bool"),
    ],
)
def test_output_activation_must_be_a_keras_activation(value, error):
    with pytest.raises(
        error, match=r"output_activation.*Received: output_activation="
    ):
        MaskBlock(4, aggregation_size=3, output_activation=value)


@pytest.mark.parametrize(
    "value,error",
    [
        pytest.param("masked_layer", ValueError, id="an unknown name"),
        pytest.param(None, TypeError, id="None"),
        pytest.param(1, TypeError, id="an int"),
    ],
)
def test_reduction_factor_base_must_be_mask_input_or_inputs(value, error):
    with pytest.raises(
        error,
        match=r"one of \['mask_input', 'inputs'\].*reduction_factor_base=",
    ):
        MaskBlock(4, reduction_factor=0.5, reduction_factor_base=value)


def test_reduction_factor_base_without_reduction_factor_is_refused():
    with pytest.raises(
        ValueError, match=r"only applies with `reduction_factor`.*'inputs'"
    ):
        MaskBlock(4, aggregation_size=3, reduction_factor_base="inputs")


@pytest.mark.parametrize(
    "value,error",
    [
        pytest.param(-0.1, ValueError, id="negative"),
        pytest.param(1.0, ValueError, id="one"),
        pytest.param(1.5, ValueError, id="above one"),
        pytest.param("0.1", TypeError, id="a string"),
        pytest.param(True, TypeError, id="a bool"),
    ],
)
def test_dropout_rate_outside_0_1_is_refused(value, error):
    with pytest.raises(error, match=r"dropout_rate.*Received: dropout_rate="):
        MaskBlock(4, aggregation_size=3, dropout_rate=value)


def test_use_hidden_bias_must_be_a_bool():
    with pytest.raises(TypeError, match=r"use_hidden_bias.*Received"):
        MaskBlock(4, aggregation_size=3, use_hidden_bias=0)


@pytest.mark.parametrize(
    "value,error",
    [
        pytest.param(0, ValueError, id="zero"),
        pytest.param(-2, ValueError, id="negative"),
        pytest.param(2.0, TypeError, id="a float"),
        pytest.param(True, TypeError, id="a bool"),
    ],
)
def test_mask_projection_dim_must_be_a_positive_int(value, error):
    with pytest.raises(
        error, match=r"mask_projection_dim.*Received: mask_projection_dim="
    ):
        MaskBlock(4, aggregation_size=3, mask_projection_dim=value)


def test_reduction_relative_to_the_masked_layer_truncating_to_zero_fails():
    block = MaskBlock(4, reduction_factor=0.2, reduction_factor_base="inputs")
    with pytest.raises(
        ValueError, match=r"int\(3 \* 0.2\) == 0 for a masked layer"
    ):
        block.build((None, 3), (None, 50))
    assert block.weights == []


# ------------------------------------------------------ MaskNet validation


@pytest.mark.parametrize(
    "argument", ["embedding_layer_norm", "normalize_mask_input"]
)
def test_mask_net_flags_must_be_bools(argument):
    with pytest.raises(TypeError, match=rf"{argument}.*Received"):
        MaskNet([_paper_block(4)], **{argument: "yes"})


def test_normalize_mask_input_needs_embedding_layer_norm():
    with pytest.raises(
        ValueError, match=r"needs `embedding_layer_norm=True`.*Received"
    ):
        MaskNet([_paper_block(4)], normalize_mask_input=True)


def test_a_bad_block_option_is_reported_when_the_net_is_constructed():
    with pytest.raises(ValueError, match=r"Received: dropout_rate=1.0"):
        MaskNet([_paper_block(4), _paper_block(3, dropout_rate=1.0)])


def test_a_serial_block_truncating_on_its_masked_layer_leaves_no_weight():
    # Block 1 masks the 2-wide output of block 0: int(2 * 0.4) == 0.
    net = MaskNet(
        [_paper_block(2), _paper_block(3, reduction_factor=0.4)],
        embedding_layer_norm=True,
    )
    with pytest.raises(ValueError, match=r"int\(2 \* 0.4\) == 0"):
        net.build([(None, 4), (None, 6)])
    assert net.weights == []


@pytest.mark.parametrize(
    "shape",
    [
        pytest.param([(None, 4), (None, 3, 2)], id="a field of rank 3"),
        pytest.param([(None, 4), (None, None)], id="a field of unknown width"),
        pytest.param([(None, 4), (None, 0)], id="a field of width 0"),
        pytest.param((None, 3, 0), id="3-D with width 0"),
        pytest.param((None, None, 4), id="3-D with unknown field count"),
        pytest.param((None, 3, None), id="3-D with unknown width"),
        pytest.param((None, 2, 3, 4), id="rank 4"),
        pytest.param([], id="an empty field list"),
    ],
)
def test_bad_input_shapes_fail_before_any_weight(shape):
    net = MaskNet([_paper_block(4)], embedding_layer_norm=True)
    with pytest.raises(ValueError, match=r"inputs(\[1\])?\.shape="):
        net.build(shape)
    assert net.weights == []


def test_a_field_list_whose_widths_change_after_build_is_refused():
    net = MaskNet([_paper_block(4)], embedding_layer_norm=True)
    net.build([(None, 3), (None, 5), (None, 2)])
    with pytest.raises(
        ValueError,
        match=r"fields of widths \[3, 5, 2\]\. Received: a list of 3 fields "
        r"of widths \[3, 6, 2\]",
    ):
        net(_fields("list", [3, 6, 2], batch=2))


def test_a_field_list_with_another_number_of_fields_is_refused():
    net = MaskNet([_paper_block(4)])
    net.build([(None, 3), (None, 5)])
    with pytest.raises(ValueError, match=r"Received: a list of 3 fields"):
        net(_fields("list", [3, 5, 2], batch=2))


def test_fields_of_different_batch_sizes_are_refused():
    net = MaskNet([_paper_block(4)])
    net.build([(None, 3), (None, 5)])
    with pytest.raises(
        ValueError, match=r"same batch size.*\(2, 3\), \(4, 5\)"
    ):
        net([np.zeros((2, 3), "float32"), np.zeros((4, 5), "float32")])


@pytest.mark.parametrize(
    "shape",
    [(2, 5, 4), (2, 4, 3)],
    ids=["another field count", "another embedding width"],
)
def test_a_3d_input_unlike_the_built_one_is_refused(shape):
    net = MaskNet([_paper_block(4)], embedding_layer_norm=True)
    net.build((None, 4, 4))
    with pytest.raises(
        ValueError,
        match=r"built for field embeddings of shape \(batch, 4, 4\).*"
        rf"Received: inputs.shape=\({shape[0]}, {shape[1]}, {shape[2]}\)",
    ):
        net(np.zeros(shape, "float32"))


@pytest.mark.parametrize(
    "built,called",
    [("list", "2-D"), ("2-D", "list"), ("3-D", "2-D"), ("2-D", "3-D")],
    ids=lambda s: s,
)
def test_an_input_structure_unlike_the_built_one_is_refused(built, called):
    net = MaskNet([_paper_block(4)])
    shapes = {"list": [(None, 4), (None, 4)], "2-D": (None, 8)}
    net.build(shapes.get(built, (None, 2, 4)))
    with pytest.raises(ValueError, match=r"was built for .*Received"):
        net(_fields(called, [4, 4], batch=2))


# --------------------------------------------------- numerics: lone block

BLOCK_OPTIONS = {
    "ReLU after the output LayerNorm": {"output_activation": "relu"},
    "tanh after the output LayerNorm": {"output_activation": "tanh"},
    "r relative to the masked layer": {
        "reduction_factor": 1.5,
        "reduction_factor_base": "inputs",
    },
    "no hidden bias": {"use_hidden_bias": False},
    "low-rank mask": {"mask_projection_dim": 3},
    "dropout (identity at inference)": {"dropout_rate": 0.5},
    "all of them, and an input LayerNorm": {
        "output_activation": "sigmoid",
        "reduction_factor": 0.5,
        "reduction_factor_base": "inputs",
        "use_hidden_bias": False,
        "mask_projection_dim": 2,
        "dropout_rate": 0.3,
        "input_layer_norm": True,
    },
}


@pytest.mark.parametrize("options", BLOCK_OPTIONS.values(), ids=BLOCK_OPTIONS)
def test_block_output_and_mask_match_the_papers_equations(options):
    config = {"output_size": 5, "aggregation_size": 7, **options}
    if "reduction_factor" in options:
        del config["aggregation_size"]
    block = MaskBlock(**config)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(16, 9)).astype("float32")
    m = rng.normal(size=(16, 13)).astype("float32")
    block.build(x.shape, m.shape)
    params = paper.init_block_params(config, 9, 13)
    assign_paper_params(block, params)
    got = block(x, mask_input=m, training=False, return_mask=True)
    want, want_mask = paper.lone_block(params, config, x, m)
    assert relative_error(to_numpy(got["output"]), want) <= TOL
    assert relative_error(to_numpy(got["mask"]), want_mask) <= TOL
    assert set(got) == {"output", "mask"}


def test_reduction_factor_base_changes_only_the_aggregation_width():
    widths = {}
    for base in ("mask_input", "inputs"):
        block = MaskBlock(3, reduction_factor=0.5, reduction_factor_base=base)
        block.build((None, 40), (None, 10))
        widths[base] = block.aggregation_width
    assert widths == {"mask_input": 5, "inputs": 20}


def test_low_rank_mask_weights_and_shapes():
    block = MaskBlock(6, aggregation_size=9, mask_projection_dim=4)
    block.build((None, 5), (None, 11))
    shapes = {w.path.split("/", 1)[1]: tuple(w.shape) for w in block.weights}
    assert shapes["mask_low_rank_projection/kernel"] == (11, 4)
    assert "mask_low_rank_projection/bias" not in shapes
    assert shapes["mask_aggregation/kernel"] == (4, 9)
    assert len(block.weights) == 9


def test_bias_free_hidden_layer_has_no_bias_weight():
    block = MaskBlock(6, aggregation_size=9, use_hidden_bias=False)
    block.build((None, 5))
    paths = [w.path.split("/", 1)[1] for w in block.weights]
    assert "hidden/kernel" in paths and "hidden/bias" not in paths
    assert len(paths) == 7


def test_block_dropout_zeroes_and_rescales_only_in_training():
    block = MaskBlock(32, aggregation_size=8, dropout_rate=0.5)
    x = np.random.default_rng(2).normal(size=(64, 6)).astype("float32")
    plain = to_numpy(block(x, training=False))
    np.testing.assert_array_equal(to_numpy(block(x)), plain)
    trained = to_numpy(block(x, training=True))
    kept = trained != 0
    # Kept units are scaled by 1 / (1 - rate), the others are zero.
    np.testing.assert_allclose(trained[kept], plain[kept] * 2.0, rtol=1e-6)
    assert 0.4 < 1.0 - kept.mean() < 0.6


# ------------------------------------------------ numerics: whole network

NETS = {
    "paper SerMaskNet on fields of different widths": (
        "list",
        [3, 5, 2],
        {
            "mask_blocks": [_paper_block(6), _paper_block(4)],
            "embedding_layer_norm": True,
        },
    ),
    "paper ParaMaskNet + MLP on 3-D field embeddings": (
        "3-D",
        [3, 3, 3, 3],
        {
            "mask_blocks": [_paper_block(5), _paper_block(4)],
            "mlp": {"layer_sizes": [6, 3], "final_layer_activation": True},
            "use_parallel": True,
            "embedding_layer_norm": True,
        },
    ),
    "EasyRec: whole-input LN, mask from it, low-rank, on a 2-D input": (
        "2-D",
        [10],
        {
            "mask_blocks": [
                {
                    "output_size": 6,
                    "reduction_factor": 0.8,
                    "mask_projection_dim": 3,
                    "use_hidden_bias": False,
                    "output_activation": "relu",
                },
                {"output_size": 4, "aggregation_size": 5},
            ],
            "embedding_layer_norm": True,
            "normalize_mask_input": True,
        },
    ),
    "FuxiCTR: per-field LN, dropout, tanh, parallel, fields list": (
        "list",
        [4, 1, 6],
        {
            "mask_blocks": [
                _paper_block(5, output_activation="tanh", dropout_rate=0.2),
                _paper_block(3, dropout_rate=0.2, reduction_factor=1.0),
            ],
            "mlp": {"layer_sizes": [4]},
            "use_parallel": True,
            "embedding_layer_norm": True,
        },
    ),
    "serial, per-field LN, masks from the normalized fields": (
        "list",
        [2, 7],
        {
            "mask_blocks": [
                _paper_block(5, input_layer_norm=True),
                _paper_block(6, mask_projection_dim=2),
                {"output_size": 3, "aggregation_size": 4},
            ],
            "embedding_layer_norm": True,
            "normalize_mask_input": True,
        },
    ),
    "fields without any LayerNorm, reference blocks": (
        "list",
        [2, 3, 4],
        {
            "mask_blocks": [
                {"output_size": 5, "reduction_factor": 0.5},
                {"output_size": 3, "aggregation_size": 4},
            ],
        },
    ),
}


@pytest.mark.parametrize("case", list(NETS))
def test_mask_net_matches_the_papers_equations(case):
    structure, dims, config = NETS[case]
    net = MaskNet(**config)
    inputs = _fields(structure, dims)
    net(inputs)  # builds
    params = paper.init_params(config, dims, seed=len(case))
    assign_paper_params(net, params)
    got = net(
        inputs, training=False, return_shared_layer=True, return_masks=True
    )
    want = paper.mask_net(params, config, inputs)
    for key in ("output", "shared_layer"):
        assert relative_error(to_numpy(got[key]), want[key]) <= TOL, key
    assert len(got["masks"]) == len(want["masks"]) == len(net.mask_block_layers)
    for i, (mask, expected) in enumerate(zip(got["masks"], want["masks"])):
        assert relative_error(to_numpy(mask), expected) <= TOL, i


@pytest.mark.parametrize("structure", ["list", "3-D"])
def test_fields_without_layer_norm_equal_their_concatenation(structure):
    dims = [3, 5, 2] if structure == "list" else [4, 4, 4]
    config = {"mask_blocks": [_paper_block(4), _paper_block(3)]}
    on_fields, on_concat = MaskNet(**config), MaskNet(**config)
    inputs = _fields(structure, dims, batch=5)
    flat = (
        np.concatenate(inputs, axis=-1)
        if structure == "list"
        else inputs.reshape(5, -1)
    )
    on_fields(inputs)
    on_concat(flat)
    on_concat.set_weights(on_fields.get_weights())
    np.testing.assert_array_equal(
        to_numpy(on_fields(inputs)), to_numpy(on_concat(flat))
    )


def test_each_field_is_normalized_on_its_own():
    # With every path normalized, an affine change of one field leaves the
    # output unchanged (up to LayerNorm's epsilon) only if that field is
    # normalized on its own; a 2-D input is normalized as a whole.
    config = {
        "mask_blocks": [{"output_size": 3, "aggregation_size": 2}],
        "embedding_layer_norm": True,
        "normalize_mask_input": True,
    }
    per_field, whole = MaskNet(**config), MaskNet(**config)
    a, b = _fields("list", [4, 6], batch=3)
    moved = b * 10.0 + 3.0
    np.testing.assert_allclose(
        to_numpy(per_field([a, moved])), to_numpy(per_field([a, b])), atol=1e-4
    )
    assert [n.gamma.shape[0] for n in per_field.embedding_norms] == [4, 6]
    changed = to_numpy(whole(np.concatenate([a, moved], -1))) - to_numpy(
        whole(np.concatenate([a, b], -1))
    )
    assert np.abs(changed).max() > 0.1
    assert [n.gamma.shape[0] for n in whole.embedding_norms] == [10]


def test_masks_come_from_the_raw_embedding_unless_asked_otherwise():
    fields = _fields("list", [3, 4], batch=4)
    masks = {}
    for normalize in (False, True):
        net = MaskNet(
            [_paper_block(4)],
            embedding_layer_norm=True,
            normalize_mask_input=normalize,
        )
        net(fields)
        block = net.mask_block_layers[0]
        source = np.concatenate(fields, axis=-1)
        if normalize:
            source = np.concatenate(
                [to_numpy(n(f)) for n, f in zip(net.embedding_norms, fields)],
                axis=-1,
            )
        got = to_numpy(net(fields, return_masks=True)["masks"][0])
        want = to_numpy(block.compute_mask_values(source))
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
        masks[normalize] = got
    assert not np.allclose(masks[False], masks[True])


def test_dropout_inside_the_net_acts_only_in_training():
    # Parallel blocks without an activation: in training each output unit
    # is either dropped (0) or kept and scaled by 1 / (1 - rate).
    net = MaskNet(
        [_paper_block(16, dropout_rate=0.5, output_activation=None)] * 2,
        use_parallel=True,
        embedding_layer_norm=True,
    )
    x = _fields("3-D", [4, 4], batch=32)
    inference = to_numpy(net(x, training=False))
    np.testing.assert_array_equal(to_numpy(net(x)), inference)
    training = to_numpy(net(x, training=True))
    kept = training != 0
    np.testing.assert_allclose(
        training[kept], inference[kept] * 2.0, rtol=1e-5, atol=1e-6
    )
    assert 0.4 < 1.0 - kept.mean() < 0.6


# ----------------------------------------------------------- introspection


@NESTED_FUNCTIONAL_OUTPUTS
@pytest.mark.parametrize(
    "use_parallel", [False, True], ids=["serial", "parallel"]
)
def test_return_masks_in_a_functional_model(use_parallel):
    dims = [3, 5]
    config = {
        "mask_blocks": [_paper_block(4), _paper_block(6)],
        "mlp": {"layer_sizes": [2]},
        "use_parallel": use_parallel,
        "embedding_layer_norm": True,
    }
    inputs = _keras_input("list", dims)
    net = MaskNet(**config)
    out = net(inputs, return_masks=True, return_shared_layer=True)
    widths = [8, 8] if use_parallel else [8, 4]
    assert [tuple(m.shape) for m in out["masks"]] == [(None, w) for w in widths]
    assert tuple(out["shared_layer"].shape) == (None, 10 if use_parallel else 6)
    model = keras.Model(inputs, out)
    x = _fields("list", dims, batch=3)
    params = paper.init_params(config, dims)
    assign_paper_params(net, params)
    pred = model.predict(x, verbose=0)
    want = paper.mask_net(params, config, x)
    assert relative_error(pred["output"], want["output"]) <= TOL
    assert relative_error(pred["shared_layer"], want["shared_layer"]) <= TOL
    for mask, expected in zip(pred["masks"], want["masks"]):
        assert relative_error(mask, expected) <= TOL


def test_return_masks_alone_returns_output_and_masks():
    net = MaskNet([_paper_block(4)] * 3)
    out = net(_fields("2-D", [6], batch=2), return_masks=True)
    assert set(out) == {"output", "masks"}
    assert [tuple(m.shape) for m in out["masks"]] == [(2, 6), (2, 4), (2, 4)]
    assert net.masked_widths() == [6, 4, 4]


def test_block_return_mask_symbolic_and_eager_shapes_agree():
    block = MaskBlock(5, aggregation_size=3, mask_projection_dim=2)
    symbolic = block(
        keras.Input((6,)), mask_input=keras.Input((4,)), return_mask=True
    )
    assert tuple(symbolic["output"].shape) == (None, 5)
    assert tuple(symbolic["mask"].shape) == (None, 6)
    eager = block(
        np.ones((3, 6), "float32"),
        mask_input=np.ones((3, 4), "float32"),
        return_mask=True,
    )
    assert tuple(eager["output"].shape) == (3, 5)
    assert tuple(eager["mask"].shape) == (3, 6)


@pytest.mark.parametrize("structure", ["2-D", "3-D", "list"])
def test_symbolic_eager_and_computed_shapes_agree_on_fields(structure):
    dims = [4, 4, 4] if structure != "list" else [4, 2, 6]
    net = MaskNet([_paper_block(5), _paper_block(3)], embedding_layer_norm=True)
    symbolic = net(_keras_input(structure, dims))
    eager = net(_fields(structure, dims, batch=7))
    shape = (
        [(7, d) for d in dims]
        if structure == "list"
        else tuple(_fields(structure, dims, batch=7).shape)
    )
    assert tuple(symbolic.shape) == (None, 3)
    assert tuple(eager.shape) == net.compute_output_shape(shape) == (7, 3)


# ------------------------------------------------- training, mixed precision


def test_a_training_step_changes_every_weight_with_every_option():
    dims = [3, 5]
    inputs = _keras_input("list", dims)
    net = MaskNet(
        [
            _paper_block(6, mask_projection_dim=2, dropout_rate=0.1),
            _paper_block(4, input_layer_norm=True),
        ],
        mlp={"layer_sizes": [3]},
        embedding_layer_norm=True,
        normalize_mask_input=True,
    )
    model = keras.Model(inputs, keras.layers.Dense(1)(net(inputs)))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    before = [to_numpy(w).copy() for w in net.weights]
    x = _fields("list", dims, batch=32)
    model.fit(x, x[0][:, :1] * x[1][:, :1], epochs=1, batch_size=32, verbose=0)
    for w, old in zip(net.weights, before):
        assert not np.allclose(to_numpy(w), old), w.path


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_paper_options_under_mixed_precision(policy):
    keras.config.set_dtype_policy(policy)
    net = MaskNet(
        [_paper_block(8, mask_projection_dim=3), _paper_block(4)],
        mlp={"layer_sizes": [3]},
        embedding_layer_norm=True,
    )
    out = net(_fields("list", [3, 5], batch=4), return_masks=True)
    low = policy.split("_")[1]
    assert keras.backend.standardize_dtype(out["output"].dtype) == low
    assert all(
        keras.backend.standardize_dtype(m.dtype) == low for m in out["masks"]
    )
    assert {keras.backend.standardize_dtype(w.dtype) for w in net.weights} == {
        "float32"
    }
    assert np.isfinite(to_numpy(out["output"]).astype("float32")).all()


# ------------------------------------------------------------ serialization

EVERY_OPTION = {
    "mask_blocks": [
        _paper_block(6, mask_projection_dim=2, dropout_rate=0.2),
        {
            "output_size": 4,
            "aggregation_size": 5,
            "output_activation": "tanh",
            "input_layer_norm": True,
        },
    ],
    "mlp": {"layer_sizes": [3], "final_layer_activation": True},
    "use_parallel": True,
    "embedding_layer_norm": True,
    "normalize_mask_input": True,
}


def test_block_get_config_round_trip_with_every_option():
    block = MaskBlock(
        **_paper_block(4, mask_projection_dim=2, dropout_rate=0.3)
    )
    config = block.get_config()
    assert config["output_activation"] == "relu"
    assert config["reduction_factor_base"] == "inputs"
    assert config["use_hidden_bias"] is False
    assert config["mask_projection_dim"] == 2
    assert config["dropout_rate"] == 0.3
    clone = MaskBlock.from_config(config)
    assert clone.get_config() == config
    x = np.random.default_rng(1).normal(size=(3, 8)).astype("float32")
    block(x)
    clone(x)
    clone.set_weights(block.get_weights())
    np.testing.assert_array_equal(to_numpy(clone(x)), to_numpy(block(x)))


def test_net_get_config_round_trip_with_every_option():
    net = MaskNet(**EVERY_OPTION)
    config = net.get_config()
    assert config["embedding_layer_norm"] is True
    assert config["normalize_mask_input"] is True
    assert config["mask_blocks"][0]["mask_projection_dim"] == 2
    clone = MaskNet.from_config(config)
    assert clone.get_config() == config


def test_a_config_saved_before_these_options_still_loads_as_the_reference():
    old = {
        "name": "old",
        "trainable": True,
        "dtype": "float32",
        "mask_blocks": [
            {
                "output_size": 4,
                "reduction_factor": 0.5,
                "input_layer_norm": False,
            }
        ],
        "mlp": None,
        "use_parallel": True,
    }
    net = MaskNet.from_config(old)
    block = net.mask_block_layers[0]
    assert net.embedding_layer_norm is False
    assert block.use_hidden_bias is True
    assert block.dropout_rate == 0.0
    assert block.mask_projection_dim is None
    assert block.get_config()["output_activation"] == "linear"


@NESTED_FUNCTIONAL_OUTPUTS
@pytest.mark.parametrize("structure", ["2-D", "3-D", "list"])
def test_keras_file_round_trip_with_every_option(tmp_path, structure):
    dims = {"2-D": [12], "3-D": [4, 4, 4], "list": [4, 2, 6]}[structure]
    inputs = _keras_input(structure, dims)
    net = MaskNet(**EVERY_OPTION)
    outputs = net(inputs, return_masks=True)
    model = keras.Model(inputs, outputs)
    params = paper.init_params(EVERY_OPTION, dims)
    assign_paper_params(net, params)
    x = _fields(structure, dims, batch=5)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    got, want = loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    np.testing.assert_array_equal(got["output"], want["output"])
    for a, b in zip(got["masks"], want["masks"]):
        np.testing.assert_array_equal(a, b)
    expected = paper.mask_net(params, EVERY_OPTION, x)
    assert relative_error(got["output"], expected["output"]) <= TOL
    restored = [layer for layer in loaded.layers if isinstance(layer, MaskNet)]
    assert restored[0].get_config() == net.get_config()
    assert restored[0].field_dims == dims


# -------------------------------------------------- reference weights


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
    net(_fields("list", [3, 5], batch=2))
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
    fresh(_fields("list", [3, 5], batch=2))
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
def test_options_with_new_weights_have_no_reference_counterpart(case):
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


# --------------------------------------------------------------------- docs


def _examples(obj):
    return re.findall(r"```python\n(.*?)```", obj.__doc__, re.S)


@pytest.mark.parametrize(
    "obj",
    [
        MaskBlock,
        MaskNet,
        keras_masknet.load_reference_weights,
        keras_masknet.export_reference_weights,
    ],
    ids=lambda o: o.__name__,
)
def test_docstring_examples_run(obj):
    examples = _examples(obj)
    assert examples
    for code in examples:
        code = "\n".join(line[4:] for line in code.splitlines())
        exec(compile(code, f"<{obj.__name__} example>", "exec"), {})
