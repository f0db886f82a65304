"""keras_masknet.callbacks: NonFiniteCheck, assert_finite and friends.

The docstring examples run in tests/test_docstrings.py.
"""

import keras
import numpy as np
import pytest

from keras_masknet import MaskNet
from keras_masknet import NonFiniteCheck
from keras_masknet import NonFiniteError
from keras_masknet import ReseedEachEpoch
from keras_masknet import assert_finite
from keras_masknet import non_finite_variables


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"check_weights": 1}, TypeError, "check_weights=1"),
        ({"every_n_batches": 0}, ValueError, "every_n_batches=0"),
        ({"every_n_batches": 2.0}, TypeError, "every_n_batches=2.0"),
        ({"every_n_batches": True}, TypeError, "every_n_batches=True"),
        ({"on_non_finite": "ignore"}, ValueError, "on_non_finite='ignore'"),
        ({"on_non_finite": None}, ValueError, "on_non_finite=None"),
    ],
    ids=lambda v: str(v),
)
def test_non_finite_check_validates_its_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        NonFiniteCheck(**kwargs)


def _model():
    inputs = keras.Input((6,))
    net = MaskNet(
        mask_blocks=[{"output_size": 4, "aggregation_size": 4}],
        mlp={"layer_sizes": [4, 2], "batch_norm": {}},
    )
    model = keras.Model(inputs, keras.layers.Dense(1)(net(inputs)))
    model.compile("sgd", "mse", jit_compile=False)
    return model


def _data(nan_row=None):
    x = np.random.default_rng(0).normal(size=(32, 6)).astype("float32")
    if nan_row is not None:
        x[nan_row, 2] = np.nan
    return x, np.ones((32, 1), "float32")


class _Spoil(keras.callbacks.Callback):
    """Writes a NaN into one BatchNorm moving variance after `batch`."""

    def __init__(self, batch):
        super().__init__()
        self.batch = batch

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.batch:
            variable = next(
                w for w in self.model.weights if "moving_variance" in w.path
            )
            value = keras.ops.convert_to_numpy(variable).copy()
            value[0] = np.nan
            variable.assign(value)


def test_a_non_finite_weight_is_found_although_the_loss_is_finite():
    # Training uses batch statistics: a NaN moving variance leaves the loss
    # finite and would only show in inference.
    model = _model()
    x, y = _data()
    check = NonFiniteCheck()
    with pytest.raises(NonFiniteError, match="moving_variance") as error:
        model.fit(x, y, batch_size=8, callbacks=[_Spoil(1), check], verbose=0)
    assert (error.value.epoch, error.value.batch) == (0, 1)
    assert error.value.logs == {}
    assert len(error.value.weights) == 1
    assert error.value.weights[0].endswith("moving_variance")
    assert check.error is error.value


def test_without_the_weight_check_only_logs_are_checked():
    model = _model()
    x, y = _data()
    history = model.fit(
        x,
        y,
        batch_size=8,
        callbacks=[_Spoil(1), NonFiniteCheck(check_weights=False)],
        verbose=0,
    )
    assert np.isfinite(history.history["loss"]).all()


def test_stop_mode_stops_after_the_batch_and_warns():
    model = _model()
    x, y = _data(nan_row=17)  # batch 2 of batch size 8
    check = NonFiniteCheck(on_non_finite="stop")
    with pytest.warns(RuntimeWarning, match="epoch 0, batch 2"):
        history = model.fit(
            x,
            y,
            batch_size=8,
            epochs=3,
            shuffle=False,
            callbacks=[check],
            verbose=0,
        )
    assert len(history.history["loss"]) == 1  # epochs 1 and 2 never ran
    assert check.error.batch == 2
    assert np.isnan(check.error.logs["loss"])
    assert check.error.weights  # the update spread it into the weights


def test_every_n_batches_checks_less_often_and_at_epoch_end():
    model = _model()
    x, y = _data(nan_row=9)  # batch 1 of 4
    with pytest.raises(NonFiniteError, match="batch 2") as error:
        model.fit(
            x,
            y,
            batch_size=8,
            shuffle=False,
            callbacks=[NonFiniteCheck(every_n_batches=3)],
            verbose=0,
        )
    assert error.value.batch == 2
    model = _model()
    with pytest.raises(NonFiniteError, match=r"epoch 0 \(end\)"):
        model.fit(
            x,
            y,
            batch_size=8,
            shuffle=False,
            callbacks=[NonFiniteCheck(every_n_batches=100)],
            verbose=0,
        )


def test_non_finite_variables_of_a_model_and_its_optimizer():
    model = _model()
    x, y = _data()
    model.fit(x, y, batch_size=8, verbose=0)
    assert non_finite_variables(model) == []
    assert non_finite_variables(model.optimizer) == []
    kernel = model.layers[-1].kernel
    kernel.assign(np.full(kernel.shape, np.inf, "float32"))
    assert non_finite_variables(model) == [kernel.path]
    assert non_finite_variables([kernel, model.layers[-1].bias]) == [
        kernel.path
    ]


def test_assert_finite_names_every_bad_row_of_nested_inputs():
    fields = {
        "a": np.ones((5, 2), "float32"),
        "b": np.ones((5, 3, 2), "float32"),
        "ids": np.arange(5),  # integers are always finite
    }
    assert_finite(fields)
    fields["a"][4, 0] = -np.inf
    fields["b"][1, 2, 1] = np.nan
    with pytest.raises(NonFiniteError, match="features") as error:
        assert_finite(fields, name="features")
    assert error.value.rows == [1, 4]
    assert "2 row(s): 1, 4" in str(error.value)


def test_assert_finite_checks_low_precision_tensors():
    x = keras.ops.cast(np.array([[1.0, 2.0], [np.nan, 0.0]]), "bfloat16")
    with pytest.raises(NonFiniteError) as error:
        assert_finite(x)
    assert error.value.rows == [1]
    with np.errstate(over="ignore"):  # 70000 overflows float16: Inf
        x = keras.ops.cast(np.array([[1.0], [70000.0]]), "float16")
    with pytest.raises(NonFiniteError) as error:
        assert_finite(x)
    assert error.value.rows == [1]


@pytest.mark.parametrize(
    "seed, error", [(-1, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_reseed_each_epoch_wants_a_non_negative_int(seed, error):
    with pytest.raises(error, match=f"seed={seed}"):
        ReseedEachEpoch(seed)


class _Record(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.states = []

    def on_epoch_begin(self, epoch, logs=None):
        self.states.append(
            [
                keras.ops.convert_to_numpy(v)
                for v in self.model.variables
                if v.path.endswith("seed_generator_state")
            ]
        )


def test_reseed_each_epoch_sets_seed_states_from_seed_and_epoch():
    def run(seed, initial_epoch=0):
        inputs = keras.Input((6,))
        net = MaskNet(
            mask_blocks=[
                {"output_size": 4, "aggregation_size": 4, "dropout_rate": 0.5}
            ]
            * 2,
            mlp={"layer_sizes": [4, 2], "dropout": {"rate": 0.5}},
        )
        model = keras.Model(inputs, net(inputs))
        model.compile("sgd", "mse", jit_compile=False)
        reseed, record = ReseedEachEpoch(seed), _Record()
        model.fit(
            np.ones((8, 6)),
            np.ones((8, 2)),
            epochs=3,
            initial_epoch=initial_epoch,
            callbacks=[reseed, record],
            verbose=0,
        )
        assert len(reseed.seed_states()) == 3  # 2 blocks, 1 MLP dropout
        return record.states

    first, again, other = run(5), run(5), run(6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, other)
    # Epochs differ, and an epoch's states do not depend on where fit began.
    assert not np.array_equal(first[0], first[1])
    np.testing.assert_array_equal(run(5, initial_epoch=2)[0], first[2])
