"""MLP head: the layer harness, validation, BatchNorm conventions, dropout,
numerics against `tests/numpy_reference.py`."""

import json

import numpy as np
import pytest

import keras_masknet
from keras_masknet.layers import MLP
from keras_masknet.reference import export_reference_weights
from tests import numpy_reference as npref
from tests.helpers import BACKEND
from tests.helpers import assert_symbolic_width_9_is_refused
from tests.helpers import assert_zero_width_is_refused
from tests.helpers import equal_kernel_pairs
from tests.helpers import kernels_of
from tests.helpers import randomize
from tests.helpers import relative_error
from tests.helpers import seeded_initializer
from tests.helpers import to_numpy
from tests.helpers import wrong_width_error
from tests.testing import run_layer_test


def _normal(*shape, seed=0):
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


HARNESS_CASES = {
    "BatchNorm, dropout and a final ReLU": dict(
        init_kwargs={
            "layer_sizes": [6, 4],
            "batch_norm": {"affine": True, "momentum": 0.1},
            "dropout": {"rate": 0.2},
            "final_layer_activation": True,
        },
        input_data=_normal(8, 5),
        expected_output_shape=(8, 4),
        expected_num_trainable_weights=6,  # 2 dense layers, BatchNorm
        expected_num_non_trainable_weights=2,  # its moving statistics
        expected_num_seed_generators=1,
        # BatchNorm subtracts the batch mean: the bias before it gets no
        # gradient.
        expected_untrained_weights=["dense_0/bias"],
    ),
    "plain dense layers, on a batch of one": dict(
        init_kwargs={"layer_sizes": [3, 2]},
        input_data=_normal(1, 4),
        expected_output_shape=(1, 2),
        expected_num_trainable_weights=4,
    ),
}


@pytest.mark.parametrize("case", list(HARNESS_CASES))
def test_layer_harness_passes_for(case):
    run_layer_test(MLP, **HARNESS_CASES[case])


def test_the_package_exports_the_layer():
    assert keras_masknet.MLP is MLP


@pytest.mark.parametrize(
    "value,error",
    [
        pytest.param([], ValueError, id="empty"),
        pytest.param([4, 0], ValueError, id="a zero width"),
        pytest.param([4, -2], ValueError, id="a negative width"),
        pytest.param([4.0], TypeError, id="a float width"),
        pytest.param(8, TypeError, id="not a list"),
        pytest.param("8", TypeError, id="a string"),
    ],
)
def test_layer_sizes_must_be_a_non_empty_list_of_positive_ints(value, error):
    with pytest.raises(error, match=r"layer_sizes.*Received: layer_sizes"):
        MLP(layer_sizes=value)


@pytest.mark.parametrize(
    "momentum", [0.0, -0.1, 1.5], ids=["zero", "negative", "above one"]
)
def test_batch_norm_momentum_must_be_in_0_1(momentum):
    with pytest.raises(ValueError, match=r"momentum.*Received: momentum="):
        MLP([4, 2], batch_norm={"momentum": momentum})


@pytest.mark.parametrize(
    "rate", [-0.1, 1.0, 2.0], ids=["negative", "one", "above one"]
)
def test_dropout_rate_must_be_in_0_1(rate):
    with pytest.raises(ValueError, match=r"dropout.rate.*Received"):
        MLP([4, 2], dropout={"rate": rate})


def test_unknown_batch_norm_key_is_refused():
    with pytest.raises(ValueError, match=r"batch_norm.*unknown key.*eps"):
        MLP([4, 2], batch_norm={"affine": True, "eps": 1e-3})


def test_unknown_dropout_key_is_refused():
    with pytest.raises(ValueError, match=r"dropout.*unknown key.*p"):
        MLP([4, 2], dropout={"p": 0.5})


def test_unknown_constructor_keyword_is_refused():
    with pytest.raises(
        ValueError, match="Unrecognized keyword arguments.*layer_size"
    ):
        MLP(layer_sizes=[4], layer_size=[3])


def test_null_keys_take_the_reference_defaults():
    mlp = MLP(
        [4, 2],
        batch_norm={"affine": None, "momentum": None},
        dropout={"rate": None},
        final_layer_activation=None,
    )
    assert mlp.batch_norm == {"affine": True, "momentum": 0.1}
    assert mlp.dropout == {"rate": 0.1}
    assert mlp.final_layer_activation is False


def test_batch_norm_uses_pytorch_epsilon_and_converted_momentum():
    mlp = MLP([4, 3, 2], batch_norm={"affine": False, "momentum": 0.3})
    mlp.build((None, 5))
    assert len(mlp.batch_norm_layers) == 2
    for bn in mlp.batch_norm_layers:
        assert bn.epsilon == 1e-5
        assert bn.momentum == pytest.approx(0.7)
        assert not bn.center and not bn.scale
    # affine=False: no scale or offset, the moving statistics remain.
    names = sorted(w.path.split("/")[-1] for w in mlp.weights)
    assert names.count("gamma") == names.count("beta") == 0
    assert names.count("moving_mean") == 2


def test_rank_other_than_2_fails_before_any_weight():
    mlp = MLP([4])
    with pytest.raises(ValueError, match=r"rank 2.*inputs.shape="):
        mlp.build((None, 3, 5))
    assert mlp.weights == []


def test_last_axis_other_than_the_built_one_is_refused():
    mlp = MLP([4])
    mlp(np.zeros((2, 5), "float32"))
    with pytest.raises(ValueError, match=wrong_width_error(5, (2, 3))):
        mlp(np.zeros((2, 3), "float32"))


@pytest.mark.parametrize(
    "training", [False, True], ids=["in inference", "in training"]
)
@pytest.mark.parametrize("affine", [True, False], ids=["affine", "not affine"])
def test_outputs_match_the_reference_numpy_equations(training, affine):
    config = {
        "layer_sizes": [9, 7, 3],
        "batch_norm": {"affine": affine, "momentum": 0.2},
        "final_layer_activation": True,
    }
    mlp = MLP(**config)
    x = np.random.default_rng(4).normal(size=(32, 6)).astype("float32")
    mlp.build(x.shape)
    randomize(mlp)
    sd = export_reference_weights(mlp)
    got = to_numpy(mlp(x, training=training))
    want = npref.mlp(sd, "layers.", x, config, training=training)
    assert relative_error(got, want) <= 1e-5


def test_training_pass_updates_moving_mean_with_pytorch_momentum():
    mlp = MLP([5, 2], batch_norm={"momentum": 0.25})
    x = np.random.default_rng(5).normal(size=(64, 4)).astype("float32")
    mlp.build(x.shape)
    randomize(mlp)
    bn = mlp.batch_norm_layers[0]
    old = to_numpy(bn.moving_mean).copy()
    hidden = x @ to_numpy(mlp.dense_layers[0].kernel) + to_numpy(
        mlp.dense_layers[0].bias
    )
    mlp(x, training=True)
    want = 0.75 * old + 0.25 * hidden.mean(0)
    np.testing.assert_allclose(
        to_numpy(bn.moving_mean), want, rtol=1e-5, atol=1e-6
    )


def test_dropout_acts_only_in_training():
    mlp = MLP([64, 8], dropout={"rate": 0.5})
    x = np.ones((16, 10), "float32")
    a = to_numpy(mlp(x, training=False))
    b = to_numpy(mlp(x, training=False))
    np.testing.assert_array_equal(a, b)
    hidden_train = to_numpy(
        mlp.dropout_layers[0](np.ones((16, 64), "float32"), training=True)
    )
    assert (hidden_train == 0).mean() > 0.3  # about half dropped
    c = to_numpy(mlp(x, training=True))
    assert not np.allclose(a, c)


def test_final_layer_activation_is_a_relu_on_the_last_layer():
    x = np.random.default_rng(6).normal(size=(50, 4)).astype("float32")
    with_relu = MLP([3], final_layer_activation=True)
    without = MLP([3])
    with_relu.build(x.shape)
    without.build(x.shape)
    without.set_weights(with_relu.get_weights())
    np.testing.assert_allclose(
        to_numpy(with_relu(x)), np.maximum(to_numpy(without(x)), 0)
    )
    assert (to_numpy(without(x)) < 0).any()


# ----------------------------- seeds, specs, widths, NumPy, empty batches


def test_a_seeded_initializer_gives_every_kernel_its_own():
    mlp = MLP([8, 8, 8], kernel_initializer=seeded_initializer())
    mlp.build((None, 8))
    kernels = kernels_of(mlp)
    assert len(kernels) == 3
    assert equal_kernel_pairs(kernels) == []


def test_an_mlp_built_for_width_6_refuses_a_symbolic_width_9_at_once():
    mlp = MLP([4])
    mlp.build((None, 6))
    assert_symbolic_width_9_is_refused(mlp)


def test_a_zero_width_input_is_refused_before_any_weight():
    assert_zero_width_is_refused(
        lambda: MLP([4]), lambda layer, zero, x: layer(zero), "inputs"
    )


def test_numpy_scalars_and_arrays_are_accepted_where_python_ones_are():
    mlp = MLP(
        np.array([8, 4]),
        batch_norm={"affine": np.True_, "momentum": np.float64(0.1)},
        dropout={"rate": np.float32(0.2)},
        final_layer_activation=np.bool_(True),
    )
    assert tuple(mlp(np.ones((2, 10), "float32")).shape) == (2, 4)
    config = mlp.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["layer_sizes"] == [8, 4]
    assert config["batch_norm"]["affine"] is True


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
