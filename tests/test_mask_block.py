"""MaskBlock: construction, validation, shapes, numerics, training, saving."""

import math

import keras
import numpy as np
import pytest

import keras_masknet
from keras_masknet import MaskBlock
from keras_masknet import export_reference_weights
from tests import numpy_reference as npref
from tests.helpers import relative_error
from tests.helpers import to_numpy


def _random_weights(layer, seed=0):
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        w.assign(
            rng.normal(0, 0.5, size=w.shape).astype("float32")
            + (1.0 if w.path.endswith("gamma") else 0.0)
        )


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
    with pytest.raises(TypeError, match=r"unexpected keyword.*outputsize"):
        MaskBlock(output_size=4, aggregation_size=3, outputsize=5)


def test_reduction_factor_truncating_to_zero_fails_before_any_weight():
    block = MaskBlock(output_size=4, reduction_factor=0.09)
    with pytest.raises(ValueError, match=r"int\(10 \* 0.09\) == 0"):
        block.build((None, 10))
    assert block.weights == []
    assert not block.built


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
    with pytest.raises(ValueError, match=r"last axis 5.*inputs.shape=\(2, 6\)"):
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


def test_weights_and_shapes_after_build_with_input_layer_norm():
    block = MaskBlock(output_size=6, aggregation_size=9, input_layer_norm=True)
    block.build((None, 5), (None, 11))
    shapes = {w.path.split("/", 1)[1]: tuple(w.shape) for w in block.weights}
    assert shapes == {
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


def test_reduction_factor_is_relative_to_the_mask_input_not_the_masked_layer():
    block = MaskBlock(output_size=3, reduction_factor=0.5)
    block.build((None, 40), (None, 10))
    assert block.aggregation_width == 5


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


def test_two_blocks_do_not_share_initial_weights():
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
def test_outputs_match_the_numpy_equations(
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
    _random_weights(block)
    got = to_numpy(block(x, mask_input=m if separate_mask_input else None))
    sd = export_reference_weights(block)
    want = npref.mask_block(sd, "", x, m, input_layer_norm)
    # float32 through three matmuls and two normalizations: 1e-5 relative.
    assert relative_error(got, want) <= 1e-5


# ------------------------------------------------------------------- shapes


@pytest.mark.parametrize("batch", [1, 7, 1000])
def test_symbolic_eager_and_computed_shapes_agree(batch):
    block = MaskBlock(output_size=5, aggregation_size=3)
    symbolic = block(keras.Input(shape=(6,)), mask_input=keras.Input((4,)))
    assert tuple(symbolic.shape) == (None, 5)
    eager = block(
        np.ones((batch, 6), "float32"),
        mask_input=np.ones((batch, 4), "float32"),
    )
    assert tuple(eager.shape) == (batch, 5)
    assert block.compute_output_shape((batch, 6), (batch, 4)) == (batch, 5)
    assert keras.backend.standardize_dtype(eager.dtype) == "float32"


# ---------------------------------------------------------- training, saving


def test_a_training_step_changes_every_weight():
    inputs = keras.Input((6,))
    block = MaskBlock(output_size=4, aggregation_size=5, input_layer_norm=True)
    model = keras.Model(inputs, keras.layers.Dense(1)(block(inputs)))
    model.compile(keras.optimizers.SGD(0.1), "mse")
    before = [to_numpy(w).copy() for w in block.weights]
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    model.fit(x, x[:, :1] * x[:, 1:2], epochs=1, batch_size=32, verbose=0)
    for w, old in zip(block.weights, before):
        assert not np.allclose(to_numpy(w), old), w.path


def test_get_config_round_trip_rebuilds_an_identical_layer():
    block = MaskBlock(
        output_size=4,
        reduction_factor=0.5,
        input_layer_norm=True,
        kernel_regularizer="l2",
        name="blk",
    )
    config = block.get_config()
    clone = MaskBlock.from_config(config)
    assert clone.get_config() == config
    x = np.random.default_rng(1).normal(size=(3, 8)).astype("float32")
    block(x)
    clone(x)
    clone.set_weights(block.get_weights())
    np.testing.assert_array_equal(to_numpy(clone(x)), to_numpy(block(x)))


def test_registered_under_the_package_name():
    assert (
        keras.saving.get_registered_name(MaskBlock) == "keras_masknet>MaskBlock"
    )
    assert keras_masknet.MaskBlock is MaskBlock


def test_keras_file_round_trip_with_a_separate_mask_input(tmp_path):
    x_in, m_in = keras.Input((6,)), keras.Input((9,))
    block = MaskBlock(output_size=4, reduction_factor=0.5)
    model = keras.Model([x_in, m_in], block(x_in, mask_input=m_in))
    rng = np.random.default_rng(2)
    x = rng.normal(size=(5, 6)).astype("float32")
    m = rng.normal(size=(5, 9)).astype("float32")
    path = tmp_path / "block.keras"
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        to_numpy(loaded.predict([x, m], verbose=0)),
        to_numpy(model.predict([x, m], verbose=0)),
    )
