"""Seeds, input specs, zero widths, NumPy numbers, empty batches, configs.

Each of these failed silently or unclearly before 0.2.0, on every backend
unless noted.
"""

import json

import keras
import numpy as np
import pytest

from keras_masknet import MLP
from keras_masknet import MaskBlock
from keras_masknet import MaskNet
from tests.helpers import BACKEND
from tests.helpers import to_numpy

# ----------------------------------------------------- seeded initializers


def _seeded(seed=42):
    return keras.initializers.GlorotUniform(seed=seed)


def _seeded_net(seed=42, **kwargs):
    block = {
        "output_size": 8,
        "aggregation_size": 8,
        "kernel_initializer": _seeded(seed),
    }
    net = MaskNet(
        [block] * 3,
        mlp={"layer_sizes": [8, 8], "kernel_initializer": _seeded(seed)},
        use_parallel=True,
        **kwargs,
    )
    net.build((None, 8))
    return net


def _kernels(layer):
    return {
        w.path: to_numpy(w) for w in layer.weights if w.path.endswith("kernel")
    }


def _equal_pairs(kernels):
    items = list(kernels.items())
    return [
        (a, b)
        for i, (a, x) in enumerate(items)
        for b, y in items[:i]
        if x.shape == y.shape and np.array_equal(x, y)
    ]


def test_a_seeded_initializer_gives_every_kernel_of_a_mask_net_its_own():
    # Every kernel here is 8 x 8: with one seed copied to all of them, the
    # three parallel blocks were identical and never diverged.
    kernels = _kernels(_seeded_net())
    assert len(kernels) == 3 * 3 + 2
    assert _equal_pairs(kernels) == []


@pytest.mark.parametrize(
    "make",
    [
        lambda: MaskBlock(8, aggregation_size=8, kernel_initializer=_seeded()),
        lambda: MLP([8, 8, 8], kernel_initializer=_seeded()),
    ],
    ids=["MaskBlock", "MLP"],
)
def test_a_seeded_initializer_gives_every_kernel_of_a_layer_its_own(make):
    layer = make()
    layer.build((None, 8))
    kernels = _kernels(layer)
    assert len(kernels) == 3
    assert _equal_pairs(kernels) == []


def test_the_same_seed_and_config_give_the_same_weights_another_seed_not():
    first, again = _seeded_net(42), _seeded_net(42)
    other = _seeded_net(7)
    for a, b, c in zip(first.weights, again.weights, other.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))
        if a.path.endswith("kernel"):
            assert not np.array_equal(to_numpy(a), to_numpy(c)), a.path
    # A layer rebuilt from its config draws the same weights too.
    rebuilt = MaskNet.from_config(first.get_config())
    rebuilt.build((None, 8))
    for a, b in zip(first.weights, rebuilt.weights):
        np.testing.assert_array_equal(to_numpy(a), to_numpy(b))


def test_seeded_parallel_blocks_compute_different_outputs():
    net = _seeded_net()
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    shared = to_numpy(net(x, return_shared_layer=True)["shared_layer"])
    blocks = np.split(shared, 3, axis=1)
    assert not np.allclose(blocks[0], blocks[1])
    assert not np.allclose(blocks[1], blocks[2])


def test_an_unseeded_initializer_still_draws_from_the_global_seed():
    keras.utils.set_random_seed(3)
    a = _kernels(MaskNet([{"output_size": 4, "aggregation_size": 4}] * 2))
    keras.utils.set_random_seed(3)
    net = MaskNet([{"output_size": 4, "aggregation_size": 4}] * 2)
    net.build((None, 4))
    b = _kernels(net)
    assert a == {} and len(b) == 6
    assert _equal_pairs(b) == []


# ------------------------------------------------------------ input specs


def _built(layer, shape):
    layer.build(shape)
    return layer


BUILT_FOR_6 = {
    "MaskBlock": lambda: _built(MaskBlock(4, aggregation_size=4), (None, 6)),
    "MaskNet": lambda: _built(
        MaskNet([{"output_size": 4, "aggregation_size": 4}]), (None, 6)
    ),
    "MLP": lambda: _built(MLP([4]), (None, 6)),
}


@pytest.mark.parametrize("name", list(BUILT_FOR_6))
def test_a_layer_built_for_width_6_refuses_a_symbolic_width_9_at_once(name):
    layer = BUILT_FOR_6[name]()
    inputs = keras.Input((9,))
    with pytest.raises(ValueError) as error:
        layer(inputs)  # building the functional model, not at predict
    message = str(error.value).lower()
    assert f"layer '{layer.name}'" in message
    # Both widths: Keras' input spec (MaskBlock, MLP) or MaskNet's own check.
    assert "to have value 6" in message or "last axis 6" in message
    assert "(none, 9)" in message


def test_a_mask_block_refuses_a_symbolic_mask_input_of_another_width():
    block = MaskBlock(4, aggregation_size=4)
    block.build((None, 6), (None, 5))
    inputs, mask_input = keras.Input((6,)), keras.Input((7,))
    with pytest.raises(ValueError) as error:
        block(inputs, mask_input=mask_input)
    message = str(error.value)
    assert block.name in message and "last axis 5" in message
    assert "mask_input.shape=(None, 7)" in message


def test_a_mask_net_built_for_fields_refuses_other_fields_symbolically():
    net = MaskNet([{"output_size": 4, "aggregation_size": 4}])
    net.build((None, 3, 4))
    with pytest.raises(ValueError, match=r"\(batch, 3, 4\).*\(None, 3, 5\)"):
        net(keras.Input((3, 5)))
    listed = MaskNet([{"output_size": 4, "aggregation_size": 4}])
    listed.build([(None, 2), (None, 3)])
    with pytest.raises(ValueError, match="a list of 3 fields"):
        listed([keras.Input((2,)), keras.Input((3,)), keras.Input((1,))])
    with pytest.raises(ValueError, match=r"widths \[2, 3\].*widths \[2, 4\]"):
        listed([keras.Input((2,)), keras.Input((4,))])


# ------------------------------------------------------------ zero widths

ZERO_WIDTH = {
    "MaskBlock inputs": (
        lambda: MaskBlock(4, aggregation_size=4),
        lambda layer, z, x: layer(z),
        "inputs",
    ),
    "MaskBlock mask_input": (
        lambda: MaskBlock(4, aggregation_size=4),
        lambda layer, z, x: layer(x, mask_input=z),
        "mask_input",
    ),
    "MaskNet inputs": (
        lambda: MaskNet([{"output_size": 4, "aggregation_size": 4}]),
        lambda layer, z, x: layer(z),
        "inputs",
    ),
    "MLP inputs": (lambda: MLP([4]), lambda layer, z, x: layer(z), "inputs"),
}


@pytest.mark.parametrize("case", list(ZERO_WIDTH))
def test_a_zero_width_input_is_refused_before_any_weight(case):
    make, call, argument = ZERO_WIDTH[case]
    layer = make()
    zero = np.zeros((2, 0), "float32")
    x = np.ones((2, 5), "float32")
    with pytest.raises(ValueError) as error:
        call(layer, zero, x)
    message = str(error.value)
    assert f"'{layer.name}'" in message
    assert f"`{argument}` of positive width" in message
    assert f"{argument}.shape=(2, 0)" in message
    assert layer.weights == []
    # The layer still builds on a valid width, with the right weights.
    layer(x)
    fresh = make()
    fresh(x)
    assert layer.count_params() == fresh.count_params()


# --------------------------------------------------------- NumPy numbers


def test_numpy_scalars_and_arrays_are_accepted_where_python_ones_are():
    block = MaskBlock(
        np.int64(8),
        reduction_factor=np.float32(0.5),
        input_layer_norm=np.True_,
        dropout_rate=np.float32(0.1),
        use_hidden_bias=np.False_,
        mask_projection_dim=np.int32(3),
    )
    mlp = MLP(
        np.array([8, 4]),
        batch_norm={"affine": np.True_, "momentum": np.float64(0.1)},
        dropout={"rate": np.float32(0.2)},
        final_layer_activation=np.bool_(True),
    )
    net = MaskNet(
        [{"output_size": np.int32(4), "aggregation_size": np.int64(4)}],
        mlp={"layer_sizes": np.array([4, 2])},
        use_parallel=np.True_,
    )
    x = np.ones((2, 10), "float32")
    assert tuple(block(x).shape) == (2, 8)
    assert tuple(mlp(x).shape) == (2, 4)
    assert tuple(net(x).shape) == (2, 2)
    assert block.aggregation_width == 5
    # Configs hold Python numbers: JSON-serializable, and equal to the
    # config of the same layer made from Python numbers.
    for layer in (block, mlp, net):
        config = layer.get_config()
        assert json.loads(json.dumps(config)) == config
    assert block.get_config()["output_size"] == 8
    assert type(block.get_config()["output_size"]) is int
    assert block.get_config()["dropout_rate"] == pytest.approx(0.1)
    assert mlp.get_config()["layer_sizes"] == [8, 4]
    assert net.get_config()["use_parallel"] is True


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


def test_a_numpy_bool_is_named_plainly_in_a_message():
    with pytest.raises(TypeError, match="must be a bool") as error:
        MaskBlock(4, aggregation_size=4, input_layer_norm="yes")
    assert "input_layer_norm='yes' of type str" in str(error.value)


# ------------------------------------------------------- empty batches


def test_an_empty_training_batch_leaves_batch_norm_statistics_as_they_are():
    mlp = MLP([4, 2], batch_norm={"momentum": 0.1})
    rng = np.random.default_rng(0)
    mlp(rng.normal(size=(8, 5)).astype("float32"), training=True)
    before = [to_numpy(w) for w in mlp.non_trainable_weights]
    out = mlp(np.zeros((0, 5), "float32"), training=True)
    assert tuple(out.shape) == (0, 2)
    after = [to_numpy(w) for w in mlp.non_trainable_weights]
    for a, b in zip(before, after):
        np.testing.assert_array_equal(a, b)
    # ... and the next batch updates them as usual.
    mlp(rng.normal(size=(8, 5)).astype("float32"), training=True)
    assert not np.array_equal(to_numpy(mlp.non_trainable_weights[0]), after[0])
    assert all(np.isfinite(to_numpy(w)).all() for w in mlp.weights)


@pytest.mark.skipif(
    BACKEND != "tensorflow",
    reason="only a TensorFlow graph has a batch size unknown until run",
)
def test_an_empty_batch_in_a_graph_with_an_unknown_batch_size():
    import tensorflow as tf

    mlp = MLP([4, 2], batch_norm={"momentum": 0.1})
    mlp.build((None, 5))
    step = tf.function(
        lambda x: mlp(x, training=True),
        input_signature=[tf.TensorSpec((None, 5), "float32")],
    )
    step(np.random.default_rng(0).normal(size=(8, 5)).astype("float32"))
    before = [w.numpy() for w in mlp.non_trainable_weights]
    step(np.zeros((0, 5), "float32"))
    for a, w in zip(before, mlp.non_trainable_weights):
        np.testing.assert_array_equal(a, w.numpy())


# --------------------------------------------------- Keras' own checks


@pytest.mark.parametrize("cls", [MaskBlock, MaskNet, MLP])
def test_unknown_keyword_arguments_get_keras_own_value_error(cls):
    args = {
        MaskBlock: {"output_size": 4, "aggregation_size": 4},
        MaskNet: {"mask_blocks": [{"output_size": 4, "aggregation_size": 4}]},
        MLP: {"layer_sizes": [4]},
    }[cls]
    with pytest.raises(ValueError, match=f"passed to {cls.__name__}.*bogus"):
        cls(**args, bogus=1)
    # Keras' own arguments pass.
    layer = cls(**args, name="x", trainable=False, dtype="float32")
    assert layer.name == "x" and not layer.trainable


def test_output_activation_none_round_trips_as_none():
    block = MaskBlock(4, aggregation_size=4)
    assert block.get_config()["output_activation"] is None
    again = MaskBlock.from_config(block.get_config())
    assert again.get_config()["output_activation"] is None
    relu = MaskBlock(4, aggregation_size=4, output_activation="relu")
    assert relu.get_config()["output_activation"] == "relu"


def test_masked_widths_before_build_needs_the_input_width():
    net = MaskNet([{"output_size": 4, "aggregation_size": 4}] * 2)
    with pytest.raises(ValueError, match="not built yet.*input_dim"):
        net.masked_widths()
    assert net.masked_widths(6) == [6, 4]
