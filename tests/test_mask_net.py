"""MaskNet: validation, parallel/serial wiring, shapes, training, saving."""

import keras
import numpy as np
import pytest

import keras_masknet
from keras_masknet import MaskNet
from keras_masknet import export_reference_weights
from tests import numpy_reference as npref
from tests.helpers import relative_error
from tests.helpers import to_numpy

BLOCK = {"output_size": 6, "aggregation_size": 5}


def _randomize(layer, seed=0):
    rng = np.random.default_rng(seed)
    for w in layer.weights:
        value = rng.normal(0, 0.5, size=w.shape)
        if w.path.endswith("moving_variance"):
            value = np.abs(value) + 0.5
        elif w.path.endswith("gamma"):
            value = value + 1.0
        w.assign(value.astype("float32"))


# ---------------------------------------------------------------- validation


def test_empty_mask_blocks_is_a_clear_error():
    with pytest.raises(
        ValueError, match=r"at least one block.*mask_blocks=\[\]"
    ):
        MaskNet(mask_blocks=[])


@pytest.mark.parametrize(
    "value",
    [BLOCK, "blocks", 3, None],
    ids=["a single mapping", "a string", "an int", "None"],
)
def test_mask_blocks_must_be_a_list(value):
    with pytest.raises(TypeError, match=r"mask_blocks.*Received: mask_blocks="):
        MaskNet(mask_blocks=value)


def test_mask_blocks_entries_must_be_mappings():
    with pytest.raises(TypeError, match=r"mask_blocks\[1\].*mapping"):
        MaskNet(mask_blocks=[BLOCK, 6])


def test_unknown_key_in_a_block_is_refused():
    with pytest.raises(
        ValueError, match=r"mask_blocks\[0\].*unknown.*outputsize"
    ):
        MaskNet(mask_blocks=[{"outputsize": 3, "aggregation_size": 2}])


def test_unknown_key_in_mlp_is_refused():
    with pytest.raises(ValueError, match=r"`mlp` has unknown key.*layers"):
        MaskNet(mask_blocks=[BLOCK], mlp={"layer_sizes": [3], "layers": 2})


def test_unknown_key_in_batch_norm_is_refused():
    with pytest.raises(ValueError, match=r"batch_norm.*unknown key.*eps"):
        MaskNet([BLOCK], mlp={"layer_sizes": [3, 2], "batch_norm": {"eps": 1}})


def test_unknown_key_in_dropout_is_refused():
    with pytest.raises(ValueError, match=r"dropout.*unknown key.*keep"):
        MaskNet([BLOCK], mlp={"layer_sizes": [3, 2], "dropout": {"keep": 1}})


@pytest.mark.parametrize(
    "mlp,error",
    [
        pytest.param(
            {"final_layer_activation": True}, ValueError, id="missing"
        ),
        pytest.param({"layer_sizes": None}, ValueError, id="null"),
        pytest.param({"layer_sizes": []}, ValueError, id="empty"),
        pytest.param({"layer_sizes": [4, 0]}, ValueError, id="non-positive"),
    ],
)
def test_mlp_layer_sizes_must_be_given_and_positive(mlp, error):
    with pytest.raises(error, match="layer_sizes"):
        MaskNet([BLOCK], mlp=mlp)


def test_mlp_momentum_outside_0_1_is_refused():
    with pytest.raises(ValueError, match=r"momentum.*Received: momentum=1.5"):
        MaskNet(
            [BLOCK],
            mlp={"layer_sizes": [3, 2], "batch_norm": {"momentum": 1.5}},
        )


def test_mlp_dropout_rate_outside_0_1_is_refused():
    with pytest.raises(ValueError, match=r"rate.*Received: dropout.rate=1.0"):
        MaskNet([BLOCK], mlp={"layer_sizes": [3, 2], "dropout": {"rate": 1.0}})


def test_bad_block_argument_is_reported_at_construction():
    with pytest.raises(
        ValueError, match="output_size.*Received: output_size=0"
    ):
        MaskNet([BLOCK, {"output_size": 0, "aggregation_size": 3}])


def test_unknown_constructor_keyword_is_refused():
    with pytest.raises(TypeError, match="unexpected keyword.*parallel"):
        MaskNet([BLOCK], parallel=True)


def test_use_parallel_must_be_a_bool():
    with pytest.raises(TypeError, match="use_parallel.*Received"):
        MaskNet([BLOCK], use_parallel="yes")


# Rank 3 is field embeddings (batch, num_fields, dim): see test_variants.py.
@pytest.mark.parametrize(
    "shape", [(None, 2, 3, 4), (None,)], ids=["rank 4", "rank 1"]
)
def test_inputs_of_rank_other_than_2_fail_before_any_weight(shape):
    net = MaskNet([BLOCK], mlp={"layer_sizes": [3]})
    with pytest.raises(ValueError, match=r"rank 2.*inputs.shape="):
        net.build(shape)
    assert net.weights == []


def test_a_later_block_truncating_to_zero_leaves_no_weight_at_all():
    net = MaskNet([BLOCK, {"output_size": 3, "reduction_factor": 0.01}])
    with pytest.raises(ValueError, match=r"int\(10 \* 0.01\) == 0"):
        net.build((None, 10))
    assert net.weights == []


def test_input_whose_last_axis_differs_from_the_built_one_is_refused():
    net = MaskNet([BLOCK], use_parallel=True)
    net(np.zeros((2, 8), "float32"))
    with pytest.raises(ValueError, match=r"last axis 8.*inputs.shape=\(2, 9\)"):
        net(np.zeros((2, 9), "float32"))


# ------------------------------------------------------------------- wiring


def test_parallel_concatenates_blocks_that_all_read_the_inputs():
    net = MaskNet(
        [
            {"output_size": 3, "aggregation_size": 4},
            {"output_size": 5, "reduction_factor": 0.5},
        ],
        use_parallel=True,
    )
    net.build((None, 10))
    a, b = net.mask_block_layers
    assert (a.input_dim, a.mask_input_dim) == (10, 10)
    assert (b.input_dim, b.mask_input_dim, b.aggregation_width) == (10, 10, 5)
    x = np.random.default_rng(0).normal(size=(4, 10)).astype("float32")
    out = to_numpy(net(x))
    np.testing.assert_allclose(out[:, :3], to_numpy(a(x)), rtol=1e-6)
    np.testing.assert_allclose(out[:, 3:], to_numpy(b(x)), rtol=1e-6)


def test_serial_chains_blocks_and_masks_every_one_with_the_inputs():
    net = MaskNet(
        [
            {"output_size": 7, "aggregation_size": 4},
            {"output_size": 5, "reduction_factor": 0.5},
        ],
    )
    net.build((None, 12))
    a, b = net.mask_block_layers
    assert (b.input_dim, b.mask_input_dim, b.aggregation_width) == (7, 12, 6)
    x = np.random.default_rng(1).normal(size=(4, 12)).astype("float32")
    np.testing.assert_allclose(
        to_numpy(net(x)), to_numpy(b(a(x), mask_input=x)), rtol=1e-6
    )


@pytest.mark.parametrize(
    "use_parallel", [False, True], ids=["serial", "parallel"]
)
def test_mlp_works_in_both_modes_and_matches_numpy(use_parallel):
    config = {
        "mask_blocks": [
            {"output_size": 7, "aggregation_size": 4, "input_layer_norm": True},
            {
                "output_size": 5,
                "reduction_factor": 0.5,
                "input_layer_norm": False,
            },
        ],
        "mlp": {
            "layer_sizes": [6, 3],
            "batch_norm": {"affine": True, "momentum": 0.1},
            "final_layer_activation": False,
        },
        "use_parallel": use_parallel,
    }
    net = MaskNet(**config)
    x = np.random.default_rng(2).normal(size=(16, 12)).astype("float32")
    net.build(x.shape)
    _randomize(net)
    sd = export_reference_weights(net)
    out = net(x, return_shared_layer=True)
    want_out, want_shared = npref.mask_net(sd, config, x)
    assert relative_error(to_numpy(out["output"]), want_out) <= 1e-5
    assert relative_error(to_numpy(out["shared_layer"]), want_shared) <= 1e-5


def test_shared_layer_in_a_functional_model():
    inputs = keras.Input((10,))
    net = MaskNet([BLOCK, BLOCK], mlp={"layer_sizes": [4]}, use_parallel=True)
    out = net(inputs, return_shared_layer=True)
    assert tuple(out["shared_layer"].shape) == (None, 12)
    assert tuple(out["output"].shape) == (None, 4)
    model = keras.Model(inputs, out)
    pred = model.predict(np.ones((3, 10), "float32"), verbose=0)
    assert pred["shared_layer"].shape == (3, 12)
    assert pred["output"].shape == (3, 4)


@pytest.mark.parametrize("batch", [1, 3, 1024], ids=lambda b: f"batch {b}")
@pytest.mark.parametrize(
    "use_parallel", [False, True], ids=["serial", "parallel"]
)
@pytest.mark.parametrize("with_mlp", [False, True], ids=["no MLP", "MLP"])
def test_symbolic_eager_and_computed_shapes_agree(
    batch, use_parallel, with_mlp
):
    net = MaskNet(
        [
            {"output_size": 4, "aggregation_size": 3},
            {"output_size": 6, "reduction_factor": 2.0},
        ],
        mlp={"layer_sizes": [5, 2]} if with_mlp else None,
        use_parallel=use_parallel,
    )
    symbolic = net(keras.Input((9,)))
    eager = net(np.ones((batch, 9), "float32"))
    computed = net.compute_output_shape((batch, 9))
    assert tuple(symbolic.shape)[1:] == tuple(eager.shape)[1:] == computed[1:]
    assert tuple(eager.shape)[0] == batch == computed[0]
    assert computed[1] == (2 if with_mlp else 10 if use_parallel else 6)


def test_reference_yaml_config_works_as_keyword_arguments(golden):
    cases, _ = golden
    for name, case in cases.items():
        if name == "block":
            continue
        net = MaskNet(**case["config"])
        net.build((None, case["in_features"]))
        assert net.built


def test_production_config_has_about_42_5_million_parameters():
    # REFERENCE.md: the production backbone on a ~2776-wide input.
    net = MaskNet(
        mask_blocks=[
            {
                "output_size": 1024,
                "aggregation_size": 1024,
                "input_layer_norm": False,
            }
        ]
        * 4,
        mlp={"layer_sizes": [2048], "final_layer_activation": True},
        use_parallel=True,
    )
    net.build((None, 2776))
    assert 42.0e6 < net.count_params() < 43.0e6


# ---------------------------------------------------------- training, saving


@pytest.mark.parametrize(
    "use_parallel", [False, True], ids=["serial", "parallel"]
)
def test_model_fit_trains_and_lowers_the_loss(use_parallel):
    rng = np.random.default_rng(3)
    x = rng.normal(size=(512, 12)).astype("float32")
    y = ((x[:, 0] * x[:, 1] + x[:, 2]) > 0).astype("float32")[:, None]
    inputs = keras.Input((12,))
    backbone = MaskNet(
        [{"output_size": 16, "aggregation_size": 16}] * 2,
        mlp={
            "layer_sizes": [16, 8],
            "batch_norm": {"momentum": 0.1},
            "dropout": {"rate": 0.1},
            "final_layer_activation": True,
        },
        use_parallel=use_parallel,
    )
    outputs = keras.layers.Dense(1, activation="sigmoid")(backbone(inputs))
    model = keras.Model(inputs, outputs)
    model.compile(keras.optimizers.Adam(0.01), "binary_crossentropy")
    history = model.fit(x, y, epochs=5, batch_size=64, verbose=0)
    losses = history.history["loss"]
    assert np.all(np.isfinite(losses))
    assert losses[-1] < 0.8 * losses[0]


def _save_load(model, x, path):
    model.save(path)
    loaded = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        to_numpy(loaded.predict(x, verbose=0)),
        to_numpy(model.predict(x, verbose=0)),
    )
    return loaded


CONFIG = {
    "mask_blocks": [
        {"output_size": 8, "reduction_factor": 0.75, "input_layer_norm": True},
        {"output_size": 4, "aggregation_size": 5},
    ],
    "mlp": {
        "layer_sizes": [6, 3],
        "batch_norm": {"affine": False, "momentum": 0.2},
        "dropout": {"rate": 0.3},
        "final_layer_activation": True,
    },
}


@pytest.mark.parametrize(
    "use_parallel", [False, True], ids=["serial", "parallel"]
)
def test_keras_file_round_trip_in_a_functional_model(tmp_path, use_parallel):
    inputs = keras.Input((10,))
    net = MaskNet(**CONFIG, use_parallel=use_parallel)
    model = keras.Model(inputs, keras.layers.Dense(1)(net(inputs)))
    _randomize(net)
    x = np.random.default_rng(4).normal(size=(6, 10)).astype("float32")
    loaded = _save_load(model, x, tmp_path / "f.keras")
    assert isinstance(loaded.layers[1], MaskNet)
    assert loaded.layers[1].get_config() == net.get_config()


def test_keras_file_round_trip_in_a_sequential_model(tmp_path):
    model = keras.Sequential(
        [keras.Input((10,)), MaskNet(**CONFIG), keras.layers.Dense(1)]
    )
    _randomize(model.layers[0])
    x = np.random.default_rng(5).normal(size=(6, 10)).astype("float32")
    _save_load(model, x, tmp_path / "s.keras")


@keras.saving.register_keras_serializable(package="keras_masknet_tests")
class Ranker(keras.Model):
    def __init__(self, backbone_config, **kwargs):
        super().__init__(**kwargs)
        self.backbone_config = backbone_config
        self.backbone = MaskNet(**backbone_config)
        self.head = keras.layers.Dense(1, activation="sigmoid")

    def call(self, inputs, training=None):
        return self.head(self.backbone(inputs, training=training))

    def get_config(self):
        return {**super().get_config(), "backbone_config": self.backbone_config}


def test_keras_file_round_trip_in_a_subclassed_model(tmp_path):
    model = Ranker(CONFIG)
    x = np.random.default_rng(6).normal(size=(6, 10)).astype("float32")
    model(x)
    _randomize(model.backbone)
    _save_load(model, x, tmp_path / "m.keras")


def test_get_config_round_trip_rebuilds_an_identical_layer():
    net = MaskNet(**CONFIG, use_parallel=True, name="backbone")
    config = net.get_config()
    clone = MaskNet.from_config(config)
    assert clone.get_config() == config
    x = np.random.default_rng(7).normal(size=(5, 10)).astype("float32")
    net(x)
    clone(x)
    clone.set_weights(net.get_weights())
    np.testing.assert_array_equal(to_numpy(clone(x)), to_numpy(net(x)))


def test_registered_names_are_stable():
    for cls in (
        keras_masknet.MaskNet,
        keras_masknet.MaskBlock,
        keras_masknet.MLP,
    ):
        assert keras.saving.get_registered_name(cls) == (
            f"keras_masknet>{cls.__name__}"
        )
