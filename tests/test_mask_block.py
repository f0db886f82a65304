"""MaskBlock: the layer harness, validation, weights, numerics, options.

Numbers are checked against two NumPy implementations with their own
parameters: `tests/numpy_reference.py` (the reference's equations, on the
weights `export_reference_weights` gives) and `tests/numpy_paper.py` (the
paper's, with every option; `assign_paper_params` copies its parameters in,
so a width the layer computes differently fails there, on shape).
"""

import json
import math

import keras
import numpy as np
import pytest

import keras_masknet
from keras_masknet.layers import MaskBlock
from keras_masknet.reference import export_reference_weights
from tests import numpy_paper as paper
from tests import numpy_reference as npref
from tests.helpers import assert_symbolic_width_9_is_refused
from tests.helpers import assert_zero_width_is_refused
from tests.helpers import assign_paper_params
from tests.helpers import equal_kernel_pairs
from tests.helpers import kernels_of
from tests.helpers import paper_block
from tests.helpers import randomize
from tests.helpers import relative_error
from tests.helpers import seeded_initializer
from tests.helpers import to_numpy
from tests.helpers import wrong_width_error
from tests.testing import run_layer_test

#: float32 through three matmuls and two normalizations: 1e-5 relative.
TOL = 1e-5


def _normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


# ------------------------------------------------------------------ harness

HARNESS_CASES = {
    "the reference block with an input LayerNorm, on a batch of one": dict(
        init_kwargs={
            "output_size": 4,
            "aggregation_size": 5,
            "input_layer_norm": True,
        },
        input_data=_normal(1, 6),
        expected_output_shape=(1, 4),
        expected_num_trainable_weights=10,
    ),
    "a mask from another tensor, a reduction factor and a regularizer": dict(
        init_kwargs={
            "output_size": 4,
            "reduction_factor": 0.5,
            "input_layer_norm": True,
            "kernel_regularizer": "l2",
            "name": "blk",
        },
        input_data={"inputs": _normal(5, 6), "mask_input": _normal(5, 9)},
        expected_output_shape=(5, 4),
        expected_num_trainable_weights=10,
    ),
    "the paper's block with every option, returning its mask": dict(
        init_kwargs=paper_block(5, mask_projection_dim=2, dropout_rate=0.3),
        input_data={"inputs": _normal(3, 6), "mask_input": _normal(3, 4)},
        call_kwargs={"return_mask": True},
        expected_output_shape={"output": (3, 5), "mask": (3, 6)},
        # low-rank kernel, 2 mask layers, bias-free hidden, LayerNorm
        expected_num_trainable_weights=8,
        expected_num_seed_generators=1,
    ),
}


@pytest.mark.parametrize("case", list(HARNESS_CASES))
def test_layer_harness_passes_for(case):
    run_layer_test(MaskBlock, **HARNESS_CASES[case])


def test_the_package_exports_the_layer():
    assert keras_masknet.MaskBlock is MaskBlock


# ---------------------------------------------------------------- validation

BAD_SIZES = [
    pytest.param(0, ValueError, id="zero"),
    pytest.param(-3, ValueError, id="negative"),
    pytest.param(2.0, TypeError, id="a float"),
    pytest.param("8", TypeError, id="a string"),
    pytest.param(True, TypeError, id="a bool"),
]


@pytest.mark.parametrize("value,error", BAD_SIZES)
def test_output_size_must_be_a_positive_int(value, error):
    with pytest.raises(error, match=r"output_size.*Received: output_size="):
        MaskBlock(output_size=value, aggregation_size=4)


@pytest.mark.parametrize("value,error", BAD_SIZES)
def test_aggregation_size_must_be_a_positive_int(value, error):
    with pytest.raises(
        error, match=r"aggregation_size.*Received: aggregation_size="
    ):
        MaskBlock(output_size=4, aggregation_size=value)


@pytest.mark.parametrize(
    "value,error",
    [
        pytest.param(0, ValueError, id="zero"),
        pytest.param(-0.5, ValueError, id="negative"),
        pytest.param(math.inf, ValueError, id="infinite"),
        pytest.param(math.nan, ValueError, id="nan"),
        pytest.param("2", TypeError, id="a string"),
        pytest.param(True, TypeError, id="a bool"),
    ],
)
def test_reduction_factor_must_be_positive_and_finite(value, error):
    with pytest.raises(
        error, match=r"reduction_factor.*Received: reduction_factor="
    ):
        MaskBlock(output_size=4, reduction_factor=value)


def test_both_reduction_factor_and_aggregation_size_is_refused():
    with pytest.raises(
        ValueError, match="Exactly one of.*reduction_factor=0.5"
    ):
        MaskBlock(output_size=4, reduction_factor=0.5, aggregation_size=3)


def test_neither_reduction_factor_nor_aggregation_size_is_refused():
    with pytest.raises(ValueError, match="Exactly one of.*=None"):
        MaskBlock(output_size=4)


def test_input_layer_norm_must_be_a_bool():
    with pytest.raises(TypeError, match="input_layer_norm.*Received"):
        MaskBlock(output_size=4, aggregation_size=3, input_layer_norm="yes")


def test_unknown_constructor_keyword_is_refused():
    with pytest.raises(
        ValueError, match=r"Unrecognized keyword arguments.*outputsize"
    ):
        MaskBlock(output_size=4, aggregation_size=3, outputsize=5)


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


def test_reduction_factor_truncating_to_zero_fails_before_any_weight():
    block = MaskBlock(output_size=4, reduction_factor=0.09)
    with pytest.raises(ValueError, match=r"int\(10 \* 0.09\) == 0"):
        block.build((None, 10))
    assert block.weights == []
    assert not block.built


def test_reduction_relative_to_the_masked_layer_truncating_to_zero_fails():
    block = MaskBlock(4, reduction_factor=0.2, reduction_factor_base="inputs")
    with pytest.raises(
        ValueError, match=r"int\(3 \* 0.2\) == 0 for a masked layer"
    ):
        block.build((None, 3), (None, 50))
    assert block.weights == []


@pytest.mark.parametrize(
    "shape", [(None,), (None, 3, 4)], ids=["rank 1", "rank 3"]
)
def test_inputs_of_rank_other_than_2_fail_before_any_weight(shape):
    block = MaskBlock(output_size=4, aggregation_size=3)
    with pytest.raises(ValueError, match=r"rank 2.*inputs.shape="):
        block(
            keras.Input(batch_shape=shape)
            if shape[0] is None and len(shape) > 1
            else np.zeros((2,), "float32")
        )
    assert block.weights == []


def test_mask_input_of_rank_other_than_2_fails_before_any_weight():
    block = MaskBlock(output_size=4, aggregation_size=3)
    with pytest.raises(ValueError, match=r"rank 2.*mask_input.shape="):
        block(np.zeros((2, 5), "float32"), mask_input=np.zeros((2, 3, 1)))
    assert block.weights == []


def test_input_whose_last_axis_differs_from_the_built_one_is_refused():
    block = MaskBlock(output_size=4, aggregation_size=3)
    block(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match=wrong_width_error(5, (2, 6))):
        block(np.zeros((2, 6), "float32"))


def test_mask_input_whose_width_differs_from_the_built_one_is_refused():
    block = MaskBlock(output_size=4, aggregation_size=3)
    block(np.zeros((2, 5), "float32"), mask_input=np.zeros((2, 7), "float32"))
    with pytest.raises(ValueError, match=r"mask_input.shape=\(2, 8\)"):
        block(
            np.zeros((2, 5), "float32"), mask_input=np.zeros((2, 8), "float32")
        )


def test_mask_input_whose_batch_size_differs_is_refused():
    block = MaskBlock(output_size=4, aggregation_size=3)
    with pytest.raises(
        ValueError, match=r"same batch size.*\(2, 5\).*\(3, 7\)"
    ):
        block(
            np.zeros((2, 5), "float32"), mask_input=np.zeros((3, 7), "float32")
        )


# ------------------------------------------------------------ weights, init


def _weight_shapes(block):
    return {w.path.split("/", 1)[1]: tuple(w.shape) for w in block.weights}


def test_weights_and_shapes_after_build_with_input_layer_norm():
    block = MaskBlock(output_size=6, aggregation_size=9, input_layer_norm=True)
    block.build((None, 5), (None, 11))
    assert _weight_shapes(block) == {
        "input_layer_norm/gamma": (5,),
        "input_layer_norm/beta": (5,),
        "mask_aggregation/kernel": (11, 9),
        "mask_aggregation/bias": (9,),
        "mask_projection/kernel": (9, 5),
        "mask_projection/bias": (5,),
        "hidden/kernel": (5, 6),
        "hidden/bias": (6,),
        "layer_norm/gamma": (6,),
        "layer_norm/beta": (6,),
    }
    assert len(block.trainable_weights) == 10


def test_no_input_layer_norm_weights_without_the_option():
    block = MaskBlock(output_size=6, aggregation_size=9)
    block.build((None, 5))
    assert len(block.weights) == 8
    assert not any("input_layer_norm" in w.path for w in block.weights)


def test_low_rank_mask_weights_and_shapes():
    block = MaskBlock(6, aggregation_size=9, mask_projection_dim=4)
    block.build((None, 5), (None, 11))
    shapes = _weight_shapes(block)
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


@pytest.mark.parametrize(
    "width,factor,expected",
    [(10, 0.29, 2), (100, 0.57, 56), (33, 1.5, 49), (7, 2, 14)],
    ids=[
        "10x0.29 truncates to 2",
        "100x0.57 truncates to 56",
        "33x1.5 is 49",
        "an int factor",
    ],
)
def test_reduction_factor_width_truncates_like_python_int(
    width, factor, expected
):
    block = MaskBlock(output_size=3, reduction_factor=factor)
    block.build((None, 4), (None, width))
    assert block.aggregation_width == expected == int(width * factor)
    assert tuple(block.mask_aggregation.kernel.shape) == (width, expected)


def test_reduction_factor_is_relative_to_the_mask_input_unless_told_inputs():
    # The reference multiplies the mask input's width (10), the paper's r
    # the masked layer's (40): the option changes only that width.
    widths = {}
    for base in ("mask_input", "inputs"):
        block = MaskBlock(3, reduction_factor=0.5, reduction_factor_base=base)
        block.build((None, 40), (None, 10))
        widths[base] = block.aggregation_width
    assert widths == {"mask_input": 5, "inputs": 20}


def test_initialization_is_glorot_uniform_with_zero_biases_and_unit_norms():
    block = MaskBlock(
        output_size=300, aggregation_size=400, input_layer_norm=True
    )
    block.build((None, 200))
    for dense in (block.mask_aggregation, block.mask_projection, block.hidden):
        kernel = to_numpy(dense.kernel)
        fan_in, fan_out = kernel.shape
        limit = math.sqrt(6.0 / (fan_in + fan_out))
        assert np.abs(kernel).max() <= limit
        # Uniform(-l, l) has std l / sqrt(3); 60k+ samples pin it to ~1%.
        np.testing.assert_allclose(
            kernel.std(), limit / math.sqrt(3), rtol=0.03
        )
        np.testing.assert_array_equal(to_numpy(dense.bias), 0.0)
    for norm in (block.input_norm, block.output_norm):
        assert norm.epsilon == 1e-5
        np.testing.assert_array_equal(to_numpy(norm.gamma), 1.0)
        np.testing.assert_array_equal(to_numpy(norm.beta), 0.0)


def test_two_sublayers_do_not_share_initial_weights():
    block = MaskBlock(output_size=8, aggregation_size=8)
    block.build((None, 8))
    a = to_numpy(block.mask_aggregation.kernel)
    b = to_numpy(block.mask_projection.kernel)
    assert not np.allclose(a, b)


# ------------------------------------------------------------------ numerics


@pytest.mark.parametrize(
    "input_layer_norm",
    [False, True],
    ids=["without input LayerNorm", "with input LayerNorm"],
)
@pytest.mark.parametrize(
    "separate_mask_input",
    [False, True],
    ids=["mask from inputs", "mask from another tensor"],
)
def test_outputs_match_the_reference_numpy_equations(
    input_layer_norm, separate_mask_input
):
    block = MaskBlock(
        output_size=7, reduction_factor=0.7, input_layer_norm=input_layer_norm
    )
    rng = np.random.default_rng(3)
    x = rng.normal(size=(16, 9)).astype("float32")
    m = (
        rng.normal(size=(16, 13)).astype("float32")
        if separate_mask_input
        else x
    )
    block.build(x.shape, m.shape)
    randomize(block)
    got = to_numpy(block(x, mask_input=m if separate_mask_input else None))
    sd = export_reference_weights(block)
    want = npref.mask_block(sd, "", x, m, input_layer_norm)
    assert relative_error(got, want) <= TOL


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
def test_output_and_mask_match_the_papers_equations_with(options):
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


def test_dropout_zeroes_and_rescales_only_in_training():
    block = MaskBlock(32, aggregation_size=8, dropout_rate=0.5)
    x = _normal(64, 6, seed=2)
    plain = to_numpy(block(x, training=False))
    np.testing.assert_array_equal(to_numpy(block(x)), plain)
    trained = to_numpy(block(x, training=True))
    kept = trained != 0
    # Kept units are scaled by 1 / (1 - rate), the others are zero.
    np.testing.assert_allclose(trained[kept], plain[kept] * 2.0, rtol=1e-6)
    assert 0.4 < 1.0 - kept.mean() < 0.6


# ----------------------------------------------------------- mixed precision

# Inputs that are exact in the low dtype but whose normalization fails IN
# that dtype: in float16, 300**2 overflows the variance (max 65504); in
# bfloat16 (8-bit mantissa) the mean 257 of 256 and 258 is not representable.
# Normalized in float32, a width-2 LayerNorm gives exactly -1 and +1.
LN_INPUTS = {
    "mixed_float16": [[-300.0, 300.0]],
    "mixed_bfloat16": [[256.0, 258.0]],
}


@pytest.mark.parametrize("policy", list(LN_INPUTS))
def test_layer_norm_normalizes_in_float32_under(policy):
    keras.config.set_dtype_policy(policy)
    block = MaskBlock(output_size=2, aggregation_size=2)
    block.build((None, 3))
    norm = block.output_norm
    y = to_numpy(norm(np.array(LN_INPUTS[policy], "float32")))
    np.testing.assert_allclose(y.astype("float32"), [[-1.0, 1.0]], atol=1e-2)
    assert keras.backend.standardize_dtype(norm.gamma.dtype) == "float32"


# ------------------------------------------------------------ serialization


def test_get_config_holds_every_option():
    block = MaskBlock(**paper_block(4, mask_projection_dim=2, dropout_rate=0.3))
    config = block.get_config()
    assert config["output_activation"] == "relu"
    assert config["reduction_factor_base"] == "inputs"
    assert config["use_hidden_bias"] is False
    assert config["mask_projection_dim"] == 2
    assert config["dropout_rate"] == 0.3
    assert MaskBlock.from_config(config).get_config() == config


# ------------------------------------------ seeds, specs, widths, NumPy


def test_a_seeded_initializer_gives_every_kernel_its_own():
    block = MaskBlock(
        8, aggregation_size=8, kernel_initializer=seeded_initializer()
    )
    block.build((None, 8))
    kernels = kernels_of(block)
    assert len(kernels) == 3
    assert equal_kernel_pairs(kernels) == []


def test_a_block_built_for_width_6_refuses_a_symbolic_width_9_at_once():
    block = MaskBlock(4, aggregation_size=4)
    block.build((None, 6))
    assert_symbolic_width_9_is_refused(block)


def test_a_symbolic_mask_input_of_another_width_is_refused_at_once():
    block = MaskBlock(4, aggregation_size=4)
    block.build((None, 6), (None, 5))
    inputs, mask_input = keras.Input((6,)), keras.Input((7,))
    with pytest.raises(ValueError) as error:
        block(inputs, mask_input=mask_input)
    message = str(error.value)
    assert block.name in message and "last axis 5" in message
    assert "mask_input.shape=(None, 7)" in message


@pytest.mark.parametrize("argument", ["inputs", "mask_input"])
def test_a_zero_width_input_is_refused_before_any_weight(argument):
    def call(layer, zero, x):
        if argument == "inputs":
            return layer(zero)
        return layer(x, mask_input=zero)

    assert_zero_width_is_refused(
        lambda: MaskBlock(4, aggregation_size=4), call, argument
    )


def test_numpy_scalars_are_accepted_where_python_ones_are():
    block = MaskBlock(
        np.int64(8),
        reduction_factor=np.float32(0.5),
        input_layer_norm=np.True_,
        dropout_rate=np.float32(0.1),
        use_hidden_bias=np.False_,
        mask_projection_dim=np.int32(3),
    )
    assert tuple(block(np.ones((2, 10), "float32")).shape) == (2, 8)
    assert block.aggregation_width == 5
    # The config holds Python numbers: JSON-serializable.
    config = block.get_config()
    assert json.loads(json.dumps(config)) == config
    assert type(config["output_size"]) is int and config["output_size"] == 8
    assert config["dropout_rate"] == pytest.approx(0.1)
    assert config["input_layer_norm"] is True


@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"output_size": True}, TypeError),
        ({"output_size": np.True_}, TypeError),
        ({"output_size": np.float32(8.0)}, TypeError),
        ({"output_size": np.int64(-1)}, ValueError),
        ({"reduction_factor": np.float64("nan")}, ValueError),
        ({"input_layer_norm": np.int64(1)}, TypeError),
    ],
    ids=str,
)
def test_numpy_numbers_are_still_checked(kwargs, error):
    args = {"output_size": 4, "aggregation_size": 4, **kwargs}
    if "reduction_factor" in kwargs:
        del args["aggregation_size"]
    with pytest.raises(error, match=list(kwargs)[0]):
        MaskBlock(**args)


def test_output_activation_none_round_trips_as_none():
    block = MaskBlock(4, aggregation_size=4)
    assert block.get_config()["output_activation"] is None
    again = MaskBlock.from_config(block.get_config())
    assert again.get_config()["output_activation"] is None
    relu = MaskBlock(4, aggregation_size=4, output_activation="relu")
    assert relu.get_config()["output_activation"] == "relu"
