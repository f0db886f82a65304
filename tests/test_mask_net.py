"""MaskNet: the layer harness, validation, wiring, field embeddings, numbers
against the NumPy references, training, mixed precision, saving, compilers.

Numbers are checked against `tests/numpy_reference.py` (the reference's
equations, on the weights `export_reference_weights` gives) and
`tests/numpy_paper.py` (the paper's, with every option, on its own
parameters, which `assign_paper_params` copies into the layer: a width the
layer computes differently fails there, on shape).
"""

import json

import keras
import numpy as np
import pytest

import keras_masknet
from keras_masknet.layers import MaskNet
from keras_masknet.layers import _utils
from keras_masknet.reference import export_reference_weights
from tests import numpy_paper as paper
from tests import numpy_reference as npref
from tests.helpers import BACKEND
from tests.helpers import assert_symbolic_width_9_is_refused
from tests.helpers import assert_zero_width_is_refused
from tests.helpers import assign_paper_params
from tests.helpers import equal_kernel_pairs
from tests.helpers import field_inputs
from tests.helpers import kernels_of
from tests.helpers import paper_block
from tests.helpers import random_fields
from tests.helpers import randomize
from tests.helpers import relative_error
from tests.helpers import requires_keras
from tests.helpers import seeded_initializer
from tests.helpers import to_numpy
from tests.helpers import wrong_width_error
from tests.testing import run_layer_test
from tests.testing import save_and_load

#: float32 through a few matmuls and normalizations: 1e-5 relative.
TOL = 1e-5
#: `return_masks=True` gives a dict holding a list; as a functional model's
#: outputs, Keras accepts that nesting from 3.4.0 on (the layer works before).
NESTED_FUNCTIONAL_OUTPUTS = requires_keras(
    "3.4.0", "a functional model with nested outputs (a list in a dict)"
)
SERIAL_PARALLEL = pytest.mark.parametrize(
    "use_parallel", [False, True], ids=["serial", "parallel"]
)

BLOCK = {"output_size": 6, "aggregation_size": 5}
#: Two reference blocks and an MLP with every option of its own.
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
#: Every option of the paper and of the other implementations.
EVERY_OPTION = {
    "mask_blocks": [
        paper_block(6, mask_projection_dim=2, dropout_rate=0.2),
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
#: The widths of the fields of the EVERY_OPTION inputs, by structure.
EVERY_OPTION_FIELDS = {"2-D": [12], "3-D": [4, 4, 4], "list": [4, 2, 6]}


# ------------------------------------------------------------------ harness

HARNESS_CASES = {
    "serial blocks and an MLP with non-affine BatchNorm and dropout": dict(
        init_kwargs=CONFIG,
        input_data=random_fields("2-D", [10], batch=6, seed=4),
        expected_output_shape=(6, 3),
        # 10 in the block with an input LayerNorm, 8, 2 dense layers
        expected_num_trainable_weights=22,
        expected_num_non_trainable_weights=2,
        expected_num_seed_generators=1,
        # BatchNorm subtracts the batch mean: a constant offset before it
        # gets no gradient, the first MLP bias and the offset of the last
        # block's LayerNorm.
        expected_untrained_weights=[
            "mask_block_1/layer_norm/beta",
            "mlp/dense_0/bias",
        ],
    ),
    "parallel blocks and the same MLP": dict(
        init_kwargs={**CONFIG, "use_parallel": True},
        input_data=random_fields("2-D", [10], batch=6, seed=4),
        expected_output_shape=(6, 3),
        expected_num_trainable_weights=22,
        expected_num_non_trainable_weights=2,
        expected_num_seed_generators=1,
        # As above: here every block feeds the MLP.
        expected_untrained_weights=[
            "mask_block_0/layer_norm/beta",
            "mask_block_1/layer_norm/beta",
            "mlp/dense_0/bias",
        ],
    ),
    "one block without an MLP, on a batch of one": dict(
        init_kwargs={"mask_blocks": [BLOCK]},
        input_data=random_fields("2-D", [8], batch=1),
        expected_output_shape=(1, 6),
        expected_num_trainable_weights=8,
    ),
    "every option in series, on a list of fields of different widths": dict(
        init_kwargs={**EVERY_OPTION, "use_parallel": False},
        input_data=random_fields("list", [4, 2, 6], batch=5),
        expected_output_shape=(5, 3),
        # 3 field LayerNorms, 8 in the paper block, 10, the MLP's 2
        expected_num_trainable_weights=26,
        expected_num_seed_generators=1,
    ),
    "every option in parallel on 3-D fields, returning masks and shared": (
        dict(
            init_kwargs=EVERY_OPTION,
            input_data=random_fields("3-D", [4, 4, 4], batch=5),
            call_kwargs={"return_masks": True, "return_shared_layer": True},
            expected_output_shape={
                "output": (5, 3),
                "shared_layer": (5, 10),
                "masks": [(5, 12), (5, 12)],
            },
            expected_num_trainable_weights=26,
            expected_num_seed_generators=1,
        )
    ),
}
_NEEDS_NESTED_OUTPUTS = {
    "every option in parallel on 3-D fields, returning masks and shared"
}


@pytest.mark.parametrize(
    "case",
    [
        pytest.param(
            case,
            marks=[NESTED_FUNCTIONAL_OUTPUTS]
            if case in _NEEDS_NESTED_OUTPUTS
            else [],
        )
        for case in HARNESS_CASES
    ],
)
def test_layer_harness_passes_for(case):
    run_layer_test(MaskNet, **HARNESS_CASES[case])


def test_the_package_exports_the_layer():
    assert keras_masknet.MaskNet is MaskNet


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


def test_a_bad_block_option_is_reported_when_the_net_is_constructed():
    with pytest.raises(ValueError, match=r"Received: dropout_rate=1.0"):
        MaskNet([paper_block(4), paper_block(3, dropout_rate=1.0)])


def test_unknown_constructor_keyword_is_refused():
    with pytest.raises(
        ValueError, match="Unrecognized keyword arguments.*parallel"
    ):
        MaskNet([BLOCK], parallel=True)


@pytest.mark.parametrize(
    "argument", ["use_parallel", "embedding_layer_norm", "normalize_mask_input"]
)
def test_flags_must_be_bools(argument):
    with pytest.raises(TypeError, match=rf"{argument}.*Received"):
        MaskNet([paper_block(4)], **{argument: "yes"})


def test_normalize_mask_input_needs_embedding_layer_norm():
    with pytest.raises(
        ValueError, match=r"needs `embedding_layer_norm=True`.*Received"
    ):
        MaskNet([paper_block(4)], normalize_mask_input=True)


# Rank 3 is field embeddings (batch, num_fields, dim).
@pytest.mark.parametrize(
    "shape", [(None, 2, 3, 4), (None,)], ids=["rank 4", "rank 1"]
)
def test_inputs_of_rank_other_than_2_fail_before_any_weight(shape):
    net = MaskNet([BLOCK], mlp={"layer_sizes": [3]})
    with pytest.raises(ValueError, match=r"rank 2.*inputs.shape="):
        net.build(shape)
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
def test_bad_field_shapes_fail_before_any_weight(shape):
    net = MaskNet([paper_block(4)], embedding_layer_norm=True)
    with pytest.raises(ValueError, match=r"inputs(\[1\])?\.shape="):
        net.build(shape)
    assert net.weights == []


def test_a_later_block_truncating_to_zero_leaves_no_weight_at_all():
    net = MaskNet([BLOCK, {"output_size": 3, "reduction_factor": 0.01}])
    with pytest.raises(ValueError, match=r"int\(10 \* 0.01\) == 0"):
        net.build((None, 10))
    assert net.weights == []


def test_a_serial_block_truncating_on_its_masked_layer_leaves_no_weight():
    # Block 1 masks the 2-wide output of block 0: int(2 * 0.4) == 0.
    net = MaskNet(
        [paper_block(2), paper_block(3, reduction_factor=0.4)],
        embedding_layer_norm=True,
    )
    with pytest.raises(ValueError, match=r"int\(2 \* 0.4\) == 0"):
        net.build([(None, 4), (None, 6)])
    assert net.weights == []


def test_input_whose_last_axis_differs_from_the_built_one_is_refused():
    net = MaskNet([BLOCK], use_parallel=True)
    net(np.zeros((2, 8), "float32"))
    with pytest.raises(ValueError, match=wrong_width_error(8, (2, 9))):
        net(np.zeros((2, 9), "float32"))


def test_a_field_list_whose_widths_change_after_build_is_refused():
    net = MaskNet([paper_block(4)], embedding_layer_norm=True)
    net.build([(None, 3), (None, 5), (None, 2)])
    with pytest.raises(
        ValueError,
        match=r"fields of widths \[3, 5, 2\]\. Received: a list of 3 fields "
        r"of widths \[3, 6, 2\]",
    ):
        net(random_fields("list", [3, 6, 2], batch=2))


def test_a_field_list_with_another_number_of_fields_is_refused():
    net = MaskNet([paper_block(4)])
    net.build([(None, 3), (None, 5)])
    with pytest.raises(ValueError, match=r"Received: a list of 3 fields"):
        net(random_fields("list", [3, 5, 2], batch=2))


def test_fields_of_different_batch_sizes_are_refused():
    net = MaskNet([paper_block(4)])
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
    net = MaskNet([paper_block(4)], embedding_layer_norm=True)
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
    net = MaskNet([paper_block(4)])
    shapes = {"list": [(None, 4), (None, 4)], "2-D": (None, 8)}
    net.build(shapes.get(built, (None, 2, 4)))
    with pytest.raises(ValueError, match=r"was built for .*Received"):
        net(random_fields(called, [4, 4], batch=2))


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
    x = random_fields("2-D", [10], batch=4, seed=0)
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
    x = random_fields("2-D", [12], batch=4, seed=1)
    np.testing.assert_allclose(
        to_numpy(net(x)), to_numpy(b(a(x), mask_input=x)), rtol=1e-6
    )


@SERIAL_PARALLEL
def test_mlp_works_and_matches_the_reference_numpy_equations(use_parallel):
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
    x = random_fields("2-D", [12], batch=16, seed=2)
    net.build(x.shape)
    randomize(net)
    sd = export_reference_weights(net)
    out = net(x, return_shared_layer=True)
    want_out, want_shared = npref.mask_net(sd, config, x)
    assert relative_error(to_numpy(out["output"]), want_out) <= TOL
    assert relative_error(to_numpy(out["shared_layer"]), want_shared) <= TOL


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


def test_return_masks_alone_returns_output_and_masks():
    net = MaskNet([paper_block(4)] * 3)
    out = net(random_fields("2-D", [6], batch=2), return_masks=True)
    assert set(out) == {"output", "masks"}
    assert [tuple(m.shape) for m in out["masks"]] == [(2, 6), (2, 4), (2, 4)]
    assert net.masked_widths() == [6, 4, 4]


@NESTED_FUNCTIONAL_OUTPUTS
@SERIAL_PARALLEL
def test_return_masks_in_a_functional_model(use_parallel):
    dims = [3, 5]
    config = {
        "mask_blocks": [paper_block(4), paper_block(6)],
        "mlp": {"layer_sizes": [2]},
        "use_parallel": use_parallel,
        "embedding_layer_norm": True,
    }
    inputs = field_inputs("list", dims)
    net = MaskNet(**config)
    out = net(inputs, return_masks=True, return_shared_layer=True)
    widths = [8, 8] if use_parallel else [8, 4]
    assert [tuple(m.shape) for m in out["masks"]] == [(None, w) for w in widths]
    assert tuple(out["shared_layer"].shape) == (None, 10 if use_parallel else 6)
    model = keras.Model(inputs, out)
    x = random_fields("list", dims, batch=3)
    params = paper.init_params(config, dims)
    assign_paper_params(net, params)
    pred = model.predict(x, verbose=0)
    want = paper.mask_net(params, config, x)
    assert relative_error(pred["output"], want["output"]) <= TOL
    assert relative_error(pred["shared_layer"], want["shared_layer"]) <= TOL
    for mask, expected in zip(pred["masks"], want["masks"]):
        assert relative_error(mask, expected) <= TOL


@SERIAL_PARALLEL
@pytest.mark.parametrize("with_mlp", [False, True], ids=["no MLP", "MLP"])
def test_symbolic_eager_and_computed_shapes_agree_for_any_batch(
    use_parallel, with_mlp
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
    for batch in (1, 1024):
        eager = net(np.ones((batch, 9), "float32"))
        computed = net.compute_output_shape((batch, 9))
        assert (
            tuple(symbolic.shape)[1:] == tuple(eager.shape)[1:] == computed[1:]
        )
        assert tuple(eager.shape)[0] == batch == computed[0]
        assert computed[1] == (2 if with_mlp else 10 if use_parallel else 6)


@pytest.mark.parametrize("structure", ["2-D", "3-D", "list"])
def test_symbolic_eager_and_computed_shapes_agree_on_fields(structure):
    dims = [4, 4, 4] if structure != "list" else [4, 2, 6]
    net = MaskNet([paper_block(5), paper_block(3)], embedding_layer_norm=True)
    symbolic = net(field_inputs(structure, dims))
    x = random_fields(structure, dims, batch=7)
    eager = net(x)
    shape = [(7, d) for d in dims] if structure == "list" else tuple(x.shape)
    assert tuple(symbolic.shape) == (None, 3)
    assert tuple(eager.shape) == net.compute_output_shape(shape) == (7, 3)


# -------------------------------------------- field embeddings, paper options

NETS = {
    "paper SerMaskNet on fields of different widths": (
        "list",
        [3, 5, 2],
        {
            "mask_blocks": [paper_block(6), paper_block(4)],
            "embedding_layer_norm": True,
        },
    ),
    "paper ParaMaskNet + MLP on 3-D field embeddings": (
        "3-D",
        [3, 3, 3, 3],
        {
            "mask_blocks": [paper_block(5), paper_block(4)],
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
                paper_block(5, output_activation="tanh", dropout_rate=0.2),
                paper_block(3, dropout_rate=0.2, reduction_factor=1.0),
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
                paper_block(5, input_layer_norm=True),
                paper_block(6, mask_projection_dim=2),
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
def test_outputs_and_masks_match_the_papers_equations_for(case):
    structure, dims, config = NETS[case]
    net = MaskNet(**config)
    inputs = random_fields(structure, dims)
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
    config = {"mask_blocks": [paper_block(4), paper_block(3)]}
    on_fields, on_concat = MaskNet(**config), MaskNet(**config)
    inputs = random_fields(structure, dims, batch=5)
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
    a, b = random_fields("list", [4, 6], batch=3)
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
    fields = random_fields("list", [3, 4], batch=4)
    masks = {}
    for normalize in (False, True):
        net = MaskNet(
            [paper_block(4)],
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
        [paper_block(16, dropout_rate=0.5, output_activation=None)] * 2,
        use_parallel=True,
        embedding_layer_norm=True,
    )
    x = random_fields("3-D", [4, 4], batch=32)
    inference = to_numpy(net(x, training=False))
    np.testing.assert_array_equal(to_numpy(net(x)), inference)
    training = to_numpy(net(x, training=True))
    kept = training != 0
    np.testing.assert_allclose(
        training[kept], inference[kept] * 2.0, rtol=1e-5, atol=1e-6
    )
    assert 0.4 < 1.0 - kept.mean() < 0.6


# ---------------------------------------------------------------- training


@SERIAL_PARALLEL
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


def _compile_test_model(use_parallel: bool) -> keras.Model:
    keras.utils.set_random_seed(7)
    inputs = keras.Input((12,))
    backbone = MaskNet(
        mask_blocks=[
            {"output_size": 8, "aggregation_size": 6},
            {"output_size": 6, "reduction_factor": 1.5},
        ],
        mlp={"layer_sizes": [8], "batch_norm": {}} if use_parallel else None,
        use_parallel=use_parallel,
        embedding_layer_norm=True,
    )
    head = keras.layers.Dense(1, activation="sigmoid")
    return keras.Model(inputs, head(backbone(inputs)))


@pytest.mark.slow  # torch.compile: about a minute on 2 cores
def test_jit_compiled_training_equals_the_uncompiled_step():
    # `jit_compile=True` is XLA on TensorFlow and JAX and torch.compile on
    # PyTorch (docs/guide/performance.md recommends it). The parallel net
    # holds every layer (blocks, MLP, BatchNorm, LayerNorms); the compiled
    # step must accept all of it (Keras silently falls back to no XLA on
    # TensorFlow when a layer does not support it) and train to the same
    # weights as the uncompiled step.
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 12)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] > 0).astype("float32")
    weights = {}
    for jit in (False, True):
        model = _compile_test_model(use_parallel=True)
        model.compile(
            keras.optimizers.SGD(0.1), "binary_crossentropy", jit_compile=jit
        )
        # Two steps: Keras' torch trainer compiles the second one again
        # (the gradients are set from then on).
        history = model.fit(
            x, y, batch_size=32, epochs=1, shuffle=False, verbose=0
        )
        # Keras turns XLA off without a word when a layer cannot compile.
        assert model.jit_compile is jit, (BACKEND, model.jit_compile)
        assert np.isfinite(history.history["loss"][-1])
        weights[jit] = [np.asarray(w) for w in model.get_weights()]
    assert len(weights[True]) == len(weights[False])
    for compiled, eager in zip(weights[True], weights[False]):
        np.testing.assert_allclose(compiled, eager, rtol=1e-4, atol=1e-5)
    # The step moved the weights: the comparison is not of two copies.
    first = _compile_test_model(use_parallel=True).get_weights()
    assert any(not np.allclose(w, w0) for w, w0 in zip(weights[True], first))


# ----------------------------------------------------------- mixed precision

MIXED_CONFIG = {
    "mask_blocks": [
        {"output_size": 32, "aggregation_size": 48, "input_layer_norm": True},
        {"output_size": 16, "reduction_factor": 0.5},
    ],
    "mlp": {
        "layer_sizes": [24, 8],
        "batch_norm": {"momentum": 0.1},
        "final_layer_activation": True,
    },
}
LOW = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}


def _dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


@pytest.mark.parametrize("policy", list(LOW))
@SERIAL_PARALLEL
def test_weights_stay_float32_and_compute_is_low_precision_under(
    policy, use_parallel
):
    keras.config.set_dtype_policy(policy)
    net = MaskNet(**MIXED_CONFIG, use_parallel=use_parallel)
    x = random_fields("2-D", [40], batch=8, seed=0)
    y = net(x, training=False)
    assert _dtype(y) == LOW[policy]
    assert net.compute_dtype == LOW[policy]
    assert {_dtype(w) for w in net.weights} == {"float32"}
    for block in net.mask_block_layers:
        assert block.compute_dtype == LOW[policy]
        assert block.output_norm.compute_dtype == LOW[policy]
    # Close to the float32 result, within the low dtype's precision.
    keras.config.set_dtype_policy("float32")
    ref = MaskNet(**MIXED_CONFIG, use_parallel=use_parallel)
    ref.build(x.shape)
    ref.set_weights([to_numpy(w) for w in net.weights])
    want = to_numpy(ref(x, training=False))
    got = to_numpy(y).astype("float32")
    tol = 0.05 if policy == "mixed_float16" else 0.25
    np.testing.assert_allclose(got, want, atol=tol, rtol=tol)


def test_bfloat16_stays_finite_on_inputs_up_to_1e4():
    keras.config.set_dtype_policy("mixed_bfloat16")
    net = MaskNet(**MIXED_CONFIG, use_parallel=True)
    rng = np.random.default_rng(1)
    x = (rng.uniform(-1, 1, size=(64, 40)) * 1e4).astype("float32")
    for training in (False, True):
        y = to_numpy(net(x, training=training)).astype("float32")
        assert np.isfinite(y).all()


def test_float16_stays_finite_on_unit_scale_inputs():
    keras.config.set_dtype_policy("mixed_float16")
    net = MaskNet(**MIXED_CONFIG, use_parallel=False)
    rng = np.random.default_rng(2)
    x = rng.uniform(-10, 10, size=(64, 40)).astype("float32")
    for training in (False, True):
        y = to_numpy(net(x, training=training)).astype("float32")
        assert np.isfinite(y).all()


@pytest.mark.parametrize("policy", list(LOW))
def test_model_fit_under(policy):
    keras.config.set_dtype_policy(policy)
    inputs = keras.Input((40,))
    net = MaskNet(**MIXED_CONFIG, use_parallel=True)
    head = keras.layers.Dense(1, activation="sigmoid", dtype="float32")
    model = keras.Model(inputs, head(net(inputs)))
    model.compile("adam", "binary_crossentropy")
    rng = np.random.default_rng(3)
    x = rng.normal(size=(256, 40)).astype("float32")
    y = (x[:, :1] * x[:, 1:2] > 0).astype("float32")
    history = model.fit(x, y, epochs=2, batch_size=64, verbose=0)
    assert np.isfinite(history.history["loss"]).all()
    assert {_dtype(w) for w in model.weights} <= {"float32", "int64"}


# ------------------------------------------------------------ serialization


def test_keras_file_round_trip_in_a_sequential_model():
    model = keras.Sequential(
        [keras.Input((10,)), MaskNet(**CONFIG), keras.layers.Dense(1)]
    )
    randomize(model.layers[0])
    save_and_load(model, random_fields("2-D", [10], batch=6, seed=5))


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


def test_keras_file_round_trip_in_a_subclassed_model():
    model = Ranker(CONFIG)
    x = random_fields("2-D", [10], batch=6, seed=6)
    model(x)
    randomize(model.backbone)
    save_and_load(model, x)


@NESTED_FUNCTIONAL_OUTPUTS
@pytest.mark.parametrize("structure", list(EVERY_OPTION_FIELDS))
def test_a_loaded_net_with_every_option_computes_the_papers_numbers(
    structure,
):
    dims = EVERY_OPTION_FIELDS[structure]
    inputs = field_inputs(structure, dims)
    net = MaskNet(**EVERY_OPTION)
    model = keras.Model(inputs, net(inputs, return_masks=True))
    params = paper.init_params(EVERY_OPTION, dims)
    assign_paper_params(net, params)
    x = random_fields(structure, dims, batch=5)
    loaded = save_and_load(model, x)
    got = loaded.predict(x, verbose=0)
    expected = paper.mask_net(params, EVERY_OPTION, x)
    assert relative_error(got["output"], expected["output"]) <= TOL
    restored = [layer for layer in loaded.layers if isinstance(layer, MaskNet)]
    assert restored[0].get_config() == net.get_config()
    assert restored[0].field_dims == dims


def test_get_config_holds_every_option():
    net = MaskNet(**EVERY_OPTION)
    config = net.get_config()
    assert config["embedding_layer_norm"] is True
    assert config["normalize_mask_input"] is True
    assert config["mask_blocks"][0]["mask_projection_dim"] == 2
    clone = MaskNet.from_config(config)
    assert clone.get_config() == config


def test_a_config_saved_before_the_options_still_loads_as_the_reference():
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
    assert block.output_activation is keras.activations.linear


# ------------------------------------------ seeds, specs, widths, NumPy


def _seeded_net(seed=42):
    block = {
        "output_size": 8,
        "aggregation_size": 8,
        "kernel_initializer": seeded_initializer(seed),
    }
    net = MaskNet(
        [block] * 3,
        mlp={
            "layer_sizes": [8, 8],
            "kernel_initializer": seeded_initializer(seed),
        },
        use_parallel=True,
    )
    net.build((None, 8))
    return net


def test_a_seeded_initializer_gives_every_kernel_its_own():
    # Every kernel here is 8 x 8: with one seed copied to all of them, the
    # three parallel blocks were identical and never diverged.
    kernels = kernels_of(_seeded_net())
    assert len(kernels) == 3 * 3 + 2
    assert equal_kernel_pairs(kernels) == []


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
    net = MaskNet([{"output_size": 4, "aggregation_size": 4}] * 2)
    net.build((None, 4))
    first = kernels_of(net)
    keras.utils.set_random_seed(3)
    again = MaskNet([{"output_size": 4, "aggregation_size": 4}] * 2)
    again.build((None, 4))
    assert len(first) == 6 and equal_kernel_pairs(first) == []
    for kernel, same in zip(first.values(), kernels_of(again).values()):
        np.testing.assert_array_equal(kernel, same)


def test_a_net_built_for_width_6_refuses_a_symbolic_width_9_at_once():
    net = MaskNet([{"output_size": 4, "aggregation_size": 4}])
    net.build((None, 6))
    assert_symbolic_width_9_is_refused(net)


def test_a_net_built_for_fields_refuses_other_fields_symbolically():
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


def test_a_zero_width_input_is_refused_before_any_weight():
    assert_zero_width_is_refused(
        lambda: MaskNet([{"output_size": 4, "aggregation_size": 4}]),
        lambda layer, zero, x: layer(zero),
        "inputs",
    )


def test_numpy_numbers_are_accepted_where_python_ones_are():
    net = MaskNet(
        [{"output_size": np.int32(4), "aggregation_size": np.int64(4)}],
        mlp={"layer_sizes": np.array([4, 2])},
        use_parallel=np.True_,
    )
    assert tuple(net(np.ones((2, 10), "float32")).shape) == (2, 2)
    config = net.get_config()
    assert json.loads(json.dumps(config)) == config
    assert config["use_parallel"] is True
    assert config["mask_blocks"][0]["output_size"] == 4


def test_masked_widths_before_build_needs_the_input_width():
    net = MaskNet([{"output_size": 4, "aggregation_size": 4}] * 2)
    with pytest.raises(ValueError, match="not built yet.*input_dim"):
        net.masked_widths()
    assert net.masked_widths(6) == [6, 4]


# ------------------------------------------------ sublayers called directly
#
# Inside `MaskNet.call` and `MaskBlock.call`, the blocks, the MLP and the
# LayerNorms are called through `layer.call` where `Layer.__call__` would do
# nothing more (`_utils.call_sublayer`): a Keras layer call costs about
# 100 us of Python on eager PyTorch. The numbers must be those of the layer
# calls, and whatever `__call__` adds must still happen where it applies.

DIRECT_CONFIG = {**MIXED_CONFIG, "embedding_layer_norm": True}


def _through_layer_calls(monkeypatch):
    """Every sublayer called as a layer, as before the direct calls."""
    monkeypatch.setattr(_utils, "_call_does_nothing_more", lambda *a: False)


@pytest.mark.parametrize("policy", ["float32", *LOW])
@SERIAL_PARALLEL
def test_direct_sublayer_calls_give_the_layer_calls_numbers(
    policy, use_parallel, monkeypatch
):
    keras.config.set_dtype_policy(policy)
    net = MaskNet(**DIRECT_CONFIG, use_parallel=use_parallel)
    x = random_fields("list", [24, 16], batch=8, seed=4)
    net(x)  # built
    blocks = net.mask_block_layers
    assert all(_utils._call_does_nothing_more(b, net) for b in blocks)
    assert _utils._call_does_nothing_more(net.mlp_layer, net)
    start = net.get_weights()  # training moves the BatchNorm statistics

    def outputs():
        got = []
        for training in (False, True, False):
            out = net(x, training=training, return_masks=True)
            got += [to_numpy(out["output"]), *map(to_numpy, out["masks"])]
        net.set_weights(start)
        return got

    direct = outputs()
    _through_layer_calls(monkeypatch)
    for got, want in zip(direct, outputs(), strict=True):
        np.testing.assert_array_equal(got, want)


def test_an_activity_regularizer_on_a_block_still_adds_its_loss():
    net = MaskNet(**MIXED_CONFIG, use_parallel=True)
    x = random_fields("2-D", [40], batch=8, seed=0)
    net(x)
    assert not net.losses
    block = net.mask_block_layers[1]
    block.activity_regularizer = keras.regularizers.L1(0.5)
    assert not _utils._call_does_nothing_more(block, net)
    net(x, training=False)
    assert len(net.losses) == 1
    assert float(to_numpy(net.losses[0])) > 0


def test_sublayers_of_another_dtype_policy_are_called_as_layers():
    net = MaskNet(**MIXED_CONFIG)
    net(random_fields("2-D", [40], batch=2))
    other = keras.layers.LayerNormalization(dtype="mixed_bfloat16")
    other.build((2, 40))
    assert not _utils._call_does_nothing_more(other, net)
    unbuilt = keras.layers.LayerNormalization()
    assert not _utils._call_does_nothing_more(unbuilt, net)


@pytest.mark.skipif(
    not hasattr(keras, "RematScope"), reason="keras.RematScope: Keras 3.8+"
)
def test_rematerialized_blocks_are_called_as_layers():
    with keras.RematScope(mode="full"):
        net = MaskNet(**MIXED_CONFIG)
    net.build((2, 40))
    assert not _utils._call_does_nothing_more(net.mask_block_layers[0], net)
    if BACKEND != "jax":  # see NOTES: jax.checkpoint traces `return_mask`
        y = net(random_fields("2-D", [40], batch=2), training=False)
        assert tuple(y.shape) == (2, 8)


@pytest.mark.skipif(BACKEND != "torch", reason="PyTorch module hooks")
def test_torch_forward_hooks_on_a_block_still_run():
    net = MaskNet(**MIXED_CONFIG, use_parallel=True)
    x = random_fields("2-D", [40], batch=4)
    net(x)
    seen = []
    handle = net.mask_block_layers[0].register_forward_hook(
        lambda module, args, output: seen.append(tuple(output.shape))
    )
    net(x, training=False)
    handle.remove()
    assert seen == [(4, 32)]


@pytest.mark.skipif(BACKEND != "jax", reason="Keras distribution: JAX only")
def test_under_a_keras_distribution_sublayers_are_called_as_layers():
    net = MaskNet(**MIXED_CONFIG)
    x = random_fields("2-D", [40], batch=4)
    want = to_numpy(net(x, training=False))
    with keras.distribution.DataParallel().scope():
        assert not _utils._call_does_nothing_more(net.mlp_layer, net)
        np.testing.assert_array_equal(to_numpy(net(x, training=False)), want)
