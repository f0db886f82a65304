"""Property-based tests over random valid and invalid configurations.

Valid configurations (every option of MaskBlock, MLP and MaskNet; parallel
and serial; 1 to 6 blocks; widths 1 to 257; batch 1 to 64; dense inputs,
field embeddings and lists of fields): the output shape equals
`compute_output_shape` and the symbolic shape, outputs and gradients are
finite in training and inference, and `get_config`/`from_config` and a
`.keras` save/load (with `safe_mode=True`) reproduce the outputs exactly.

Invalid configurations (one argument of a valid one made invalid, or an
input shape the layer cannot take): always a `ValueError` or `TypeError`
whose message names the argument, and a layer that raised in `build` has no
weights.

The number of examples comes from the Hypothesis profile loaded in
tests/conftest.py: small by default; KERAS_MASKNET_HYPOTHESIS_PROFILE=thorough
runs 20 times more.
"""

import inspect
import math
import pathlib
import re
import tempfile

import keras
import numpy as np
import pytest
from hypothesis import given
from hypothesis import note
from hypothesis import settings
from hypothesis import strategies as st

from keras_masknet import MLP
from keras_masknet import MaskBlock
from keras_masknet import MaskNet
from keras_masknet.layers.mask_block import REDUCTION_FACTOR_BASES
from keras_masknet.layers.mask_net import MASK_BLOCK_KEYS
from keras_masknet.layers.mask_net import MLP_KEYS
from tests.autodiff import outputs_and_gradients
from tests.helpers import BACKEND
from tests.helpers import to_numpy

#: Examples of the loaded profile; the costlier tests run a fraction of them.
EXAMPLES = settings.default.max_examples
#: Eager JAX compiles every operation anew for each new shape, and every
#: example has new shapes: 3 to 5 times the cost of the other backends.
BACKEND_COST = {"jax": 0.3}.get(BACKEND, 1.0)


def _examples(fraction, cost=1.0):
    """Settings for a test that runs `fraction` of the profile's examples;
    `cost` scales that down for tests whose examples are slow on a backend.
    """
    n = math.ceil(EXAMPLES * fraction * cost)
    return settings(max_examples=max(2, n))


MAX_WIDTH = 257
widths = st.integers(1, MAX_WIDTH)

# ------------------------------------------------------ option strategies
# One strategy per constructor argument. `test_strategies_cover_every_option`
# fails when a layer gains an argument that is not listed here.

ACTIVATIONS = [None, "linear", "relu", "gelu", "tanh", "sigmoid", "swish"]
KERNEL_INITIALIZERS = st.sampled_from(
    ["glorot_uniform", "glorot_normal", "he_uniform", "lecun_normal"]
) | st.builds(
    keras.initializers.RandomNormal,
    stddev=st.floats(0.01, 0.5),
    seed=st.integers(0, 1000),
)
BIAS_INITIALIZERS = st.sampled_from(["zeros", "ones", "random_normal"])
REGULARIZERS = st.sampled_from([None, "l1", "l2"]) | st.builds(
    keras.regularizers.L1L2, l1=st.floats(0, 0.1), l2=st.floats(0, 0.1)
)
RATES = st.just(0.0) | st.floats(0.0, 0.9)

#: MaskBlock options other than the aggregation width (see `block_configs`).
BLOCK_OPTIONS = {
    "output_size": widths,
    "input_layer_norm": st.booleans(),
    "kernel_initializer": KERNEL_INITIALIZERS,
    "bias_initializer": BIAS_INITIALIZERS,
    "kernel_regularizer": REGULARIZERS,
    "bias_regularizer": REGULARIZERS,
    "output_activation": st.sampled_from(ACTIVATIONS),
    "dropout_rate": RATES,
    "use_hidden_bias": st.booleans(),
    "mask_projection_dim": st.none() | widths,
}
#: Handled by `block_configs` itself: exactly one of the first two.
BLOCK_WIDTH_OPTIONS = (
    "reduction_factor",
    "aggregation_size",
    "reduction_factor_base",
)
MLP_OPTIONS = {
    "batch_norm": st.none()
    | st.fixed_dictionaries(
        {},
        optional={
            "affine": st.none() | st.booleans(),
            "momentum": st.none() | st.floats(0.01, 1.0),
        },
    ),
    "dropout": st.none()
    | st.fixed_dictionaries({}, optional={"rate": st.none() | RATES}),
    "final_layer_activation": st.none() | st.booleans(),
    "kernel_initializer": KERNEL_INITIALIZERS,
    "bias_initializer": BIAS_INITIALIZERS,
}
MASK_NET_OPTIONS = (
    "mask_blocks",
    "mlp",
    "use_parallel",
    "embedding_layer_norm",
    "normalize_mask_input",
)
INPUT_KINDS = ("dense", "fields", "field_list")


def _own_arguments(cls):
    return {
        p.name
        for p in inspect.signature(cls.__init__).parameters.values()
        if p.name != "self" and p.kind is p.POSITIONAL_OR_KEYWORD
    }


def _call_options(cls):
    return {
        p.name
        for p in inspect.signature(cls.call).parameters.values()
        if p.name not in ("self", "inputs", "training")
    }


def test_strategies_cover_every_option():
    assert _call_options(MaskNet) == {"return_shared_layer", "return_masks"}
    assert _call_options(MaskBlock) == {"mask_input", "return_mask"}
    assert _call_options(MLP) == set()
    assert _own_arguments(MaskBlock) == set(BLOCK_OPTIONS) | set(
        BLOCK_WIDTH_OPTIONS
    )
    assert set(MASK_BLOCK_KEYS) == _own_arguments(MaskBlock)
    assert _own_arguments(MLP) == set(MLP_OPTIONS) | {"layer_sizes"}
    assert set(MLP_KEYS) == _own_arguments(MLP)
    assert _own_arguments(MaskNet) == set(MASK_NET_OPTIONS)


def _draw_options(draw, options, exclude=()):
    """Each option present or absent (its default), drawn independently."""
    config = {}
    for key, strategy in options.items():
        if key not in exclude and draw(st.booleans()):
            config[key] = draw(strategy)
    return config


@st.composite
def block_configs(draw, mask_input_dim, masked_dim):
    """A valid MaskBlock config for a mask input and a masked layer of the
    given widths."""
    config = _draw_options(draw, BLOCK_OPTIONS, exclude=["output_size"])
    config["output_size"] = draw(widths)
    if draw(st.booleans()):
        config["aggregation_size"] = draw(widths)
        return config
    base_name = draw(st.sampled_from(REDUCTION_FACTOR_BASES))
    base = mask_input_dim if base_name == "mask_input" else masked_dim
    # int(base * factor) truncates to `width`; the fraction keeps it there
    # whatever the float rounding.
    width = draw(st.integers(1, min(MAX_WIDTH, 4 * base)))
    config["reduction_factor"] = (width + draw(st.floats(0.01, 0.99))) / base
    if base_name != "mask_input" or draw(st.booleans()):
        config["reduction_factor_base"] = base_name
    return config


@st.composite
def mlp_configs(draw):
    config = _draw_options(draw, MLP_OPTIONS)
    config["layer_sizes"] = draw(st.lists(widths, min_size=1, max_size=3))
    return config


@st.composite
def input_layouts(draw):
    """`(kind, field widths)`: one dense tensor, a 3-D tensor of equal
    fields, or a list of fields of any widths."""
    kind = draw(st.sampled_from(INPUT_KINDS))
    if kind == "dense":
        return kind, [draw(widths)]
    if kind == "fields":
        num = draw(st.integers(1, 8))
        return kind, [draw(st.integers(1, MAX_WIDTH // num))] * num
    return kind, draw(st.lists(st.integers(1, 64), min_size=1, max_size=6))


@st.composite
def mask_net_cases(draw):
    kind, field_dims = draw(input_layouts())
    input_dim = sum(field_dims)
    use_parallel = draw(st.booleans())
    blocks = []
    masked = input_dim
    for _ in range(draw(st.integers(1, 6))):
        block = draw(block_configs(input_dim, masked))
        blocks.append(block)
        if not use_parallel:
            masked = block["output_size"]
    config = {"mask_blocks": blocks}
    if draw(st.booleans()):
        config["use_parallel"] = use_parallel
    elif use_parallel:
        config["use_parallel"] = True
    mlp = draw(st.none() | mlp_configs())
    if mlp is not None or draw(st.booleans()):
        config["mlp"] = mlp
    if draw(st.booleans()):
        config["embedding_layer_norm"] = True
        if draw(st.booleans()):
            config["normalize_mask_input"] = draw(st.booleans())
    elif draw(st.booleans()):
        config["embedding_layer_norm"] = False
    batch = draw(st.integers(1, 64))
    seed = draw(st.integers(0, 2**31 - 1))
    return config, kind, field_dims, batch, seed


def _inputs(kind, field_dims, batch, seed):
    """NumPy inputs, their shape and a matching symbolic input."""
    rng = np.random.default_rng(seed)
    scale = rng.choice([0.1, 1.0, 3.0])
    if kind == "dense":
        x = (rng.normal(size=(batch, field_dims[0])) * scale).astype("float32")
        return x, x.shape, keras.Input(x.shape[1:])
    if kind == "fields":
        shape = (batch, len(field_dims), field_dims[0])
        x = (rng.normal(size=shape) * scale).astype("float32")
        return x, x.shape, keras.Input(x.shape[1:])
    xs = [
        (rng.normal(size=(batch, d)) * scale).astype("float32")
        for d in field_dims
    ]
    return xs, [x.shape for x in xs], [keras.Input((d,)) for d in field_dims]


def _assert_finite(arrays, what):
    for i, a in enumerate(keras.tree.flatten(arrays)):
        a = np.asarray(a, "float32")
        assert np.isfinite(a).all(), f"{what}[{i}] has non-finite values"


def _assert_identical(got, want):
    got, want = keras.tree.flatten(got), keras.tree.flatten(want)
    assert len(got) == len(want)
    for g, w in zip(got, want):
        np.testing.assert_array_equal(to_numpy(g), to_numpy(w))


def _save_and_load(model):
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "model.keras"
        model.save(path)
        return keras.saving.load_model(path, safe_mode=True)


# ------------------------------------------------------------ valid cases


#: MaskNet's call options besides `inputs` and `training`.
MASK_NET_CALL_OPTIONS = st.fixed_dictionaries(
    {},
    optional={
        "return_shared_layer": st.booleans(),
        "return_masks": st.booleans(),
    },
)


def _want_shapes(net, batch, options):
    """The output structure `net(..., **options)` must have, as shapes."""
    output = (batch, net.output_size)
    if not (options.get("return_shared_layer") or options.get("return_masks")):
        return output
    want = {"output": output}
    if options.get("return_shared_layer"):
        want["shared_layer"] = (batch, net.blocks_output_size)
    if options.get("return_masks"):
        want["masks"] = [(batch, w) for w in net.masked_widths()]
    return want


def _shapes(structure):
    return keras.tree.map_structure(lambda t: tuple(t.shape), structure)


@given(case=mask_net_cases(), options=MASK_NET_CALL_OPTIONS)
@_examples(1.0, BACKEND_COST)
def test_any_valid_mask_net_has_right_shapes_finite_values_and_round_trips(
    case, options
):
    config, kind, field_dims, batch, seed = case
    note(f"config={config!r} kind={kind} field_dims={field_dims} batch={batch}")
    keras.utils.set_random_seed(seed)
    net = MaskNet(**config)
    x, shape, symbolic = _inputs(kind, field_dims, batch, seed)

    symbolic_out = net(symbolic, **options)
    assert net.compute_output_shape(shape) == (batch, net.output_size)
    want = _want_shapes(net, batch, options)
    assert _shapes(symbolic_out) == _want_shapes(net, None, options)
    y = net(x, training=False, **options)
    assert _shapes(y) == want
    _assert_finite(keras.tree.map_structure(to_numpy, y), "inference output")

    for training in (True, False):
        out, weight_grads, input_grads = outputs_and_gradients(
            net, {"inputs": x}, training=training, **options
        )
        assert _shapes(out) == want
        _assert_finite(out, f"output (training={training})")
        _assert_finite(weight_grads, f"weight gradients ({training=})")
        _assert_finite(input_grads, f"input gradients ({training=})")
    y = net(x, training=False, **options)  # BatchNorm statistics moved

    clone = MaskNet.from_config(net.get_config())
    assert clone.get_config() == net.get_config()
    clone(x, training=False)
    clone.set_weights(net.get_weights())
    _assert_identical(clone(x, training=False, **options), y)

    model = keras.Model(symbolic, symbolic_out)
    loaded = _save_and_load(model)
    _assert_identical(loaded(x, training=False), y)


@st.composite
def mask_block_cases(draw):
    input_dim = draw(widths)
    mask_input_dim = draw(st.none() | widths)
    config = draw(block_configs(mask_input_dim or input_dim, input_dim))
    return (
        config,
        input_dim,
        mask_input_dim,
        draw(st.booleans()),
        draw(st.integers(1, 64)),
        draw(st.integers(0, 2**31 - 1)),
    )


@given(case=mask_block_cases())
@_examples(0.5, BACKEND_COST)
def test_any_valid_mask_block_has_right_shapes_finite_values_and_round_trips(
    case,
):
    config, input_dim, mask_input_dim, return_mask, batch, seed = case
    note(f"config={config!r} input_dim={input_dim} mask={mask_input_dim}")
    keras.utils.set_random_seed(seed)
    rng = np.random.default_rng(seed)
    block = MaskBlock(**config)
    args = {"inputs": rng.normal(size=(batch, input_dim)).astype("float32")}
    symbolic = {"inputs": keras.Input((input_dim,), name="inputs")}
    if mask_input_dim is not None:
        args["mask_input"] = rng.normal(size=(batch, mask_input_dim)).astype(
            "float32"
        )
        symbolic["mask_input"] = keras.Input(
            (mask_input_dim,), name="mask_input"
        )
    symbolic_out = block(**symbolic, return_mask=return_mask)
    want_shape = (batch, config["output_size"])
    shapes = {f"{k}_shape": v.shape for k, v in args.items()}
    assert block.compute_output_shape(**shapes) == want_shape
    if return_mask:
        assert tuple(symbolic_out["output"].shape) == (None, want_shape[1])
        assert tuple(symbolic_out["mask"].shape) == (None, input_dim)
    else:
        assert tuple(symbolic_out.shape) == (None, want_shape[1])
    y = block(**args, training=False, return_mask=return_mask)
    if return_mask:
        assert tuple(y["output"].shape) == want_shape
        assert tuple(y["mask"].shape) == (batch, input_dim)
    else:
        assert tuple(y.shape) == want_shape

    for training in (True, False):
        out, weight_grads, input_grads = outputs_and_gradients(
            block, args, training=training
        )
        assert out.shape == want_shape
        _assert_finite(out, f"output ({training=})")
        _assert_finite(weight_grads, f"weight gradients ({training=})")
        _assert_finite(input_grads, f"input gradients ({training=})")

    clone = MaskBlock.from_config(block.get_config())
    assert clone.get_config() == block.get_config()
    clone(**args)
    clone.set_weights(block.get_weights())
    _assert_identical(clone(**args, training=False, return_mask=return_mask), y)
    model = keras.Model(symbolic, symbolic_out)
    loaded = _save_and_load(model)
    _assert_identical(loaded(args, training=False), y)


@given(
    config=mlp_configs(),
    input_dim=widths,
    batch=st.integers(1, 64),
    seed=st.integers(0, 2**31 - 1),
)
@_examples(0.5, BACKEND_COST)
def test_any_valid_mlp_has_right_shapes_finite_values_and_round_trips(
    config, input_dim, batch, seed
):
    keras.utils.set_random_seed(seed)
    x = np.random.default_rng(seed).normal(size=(batch, input_dim))
    x = x.astype("float32")
    mlp = MLP(**config)
    symbolic = keras.Input((input_dim,))
    symbolic_out = mlp(symbolic)
    want_shape = (batch, config["layer_sizes"][-1])
    assert mlp.compute_output_shape(x.shape) == want_shape
    assert tuple(symbolic_out.shape) == (None, want_shape[1])
    for training in (True, False):
        out, weight_grads, input_grads = outputs_and_gradients(
            mlp, {"inputs": x}, training=training
        )
        assert out.shape == want_shape
        _assert_finite([out, weight_grads, input_grads], f"{training=}")
    y = to_numpy(mlp(x, training=False))
    clone = MLP.from_config(mlp.get_config())
    assert clone.get_config() == mlp.get_config()
    clone(x)
    clone.set_weights(mlp.get_weights())
    _assert_identical(clone(x, training=False), y)
    loaded = _save_and_load(keras.Model(symbolic, symbolic_out))
    _assert_identical(loaded(x, training=False), y)


# ---------------------------------------------------------- invalid cases
# Each mutation makes ONE argument of a valid config invalid and says which
# name the error message must contain.

NAN, INF = float("nan"), float("inf")
BAD_POSITIVE_INTS = [0, -1, -257, 2.0, 1.5, "8", True, False, [4], NAN]
BAD_OPTIONAL_POSITIVE_INTS = BAD_POSITIVE_INTS  # None is valid: not listed
BAD_FACTORS = [0, 0.0, -0.5, -INF, INF, NAN, "0.5", True, [0.5]]
BAD_BOOLS = [0, 1, 1.0, "yes", "True", [True]]
BAD_RATES = [-0.1, 1.0, 1.5, INF, NAN, "0.1", True, None, [0.1]]
BAD_ACTIVATIONS = ["no_such_activation", "", 3, True, 1.5]
BAD_INITIALIZERS = ["no_such_initializer", 3, True, {"class_name": "Nope"}]
BAD_REGULARIZERS = ["no_such_regularizer", 3, True]
BAD_BLOCK_VALUES = {
    "output_size": BAD_POSITIVE_INTS + [None],
    "aggregation_size": BAD_OPTIONAL_POSITIVE_INTS,
    "reduction_factor": BAD_FACTORS,
    "reduction_factor_base": ["input", "", "INPUTS", 3, None],
    "input_layer_norm": BAD_BOOLS + [None],
    "use_hidden_bias": BAD_BOOLS + [None],
    "output_activation": BAD_ACTIVATIONS,
    "dropout_rate": BAD_RATES,
    "mask_projection_dim": BAD_OPTIONAL_POSITIVE_INTS,
    "kernel_initializer": BAD_INITIALIZERS,
    "bias_initializer": BAD_INITIALIZERS,
    "kernel_regularizer": BAD_REGULARIZERS,
    "bias_regularizer": BAD_REGULARIZERS,
}
BAD_MLP_VALUES = {
    "layer_sizes": [[], [0], [8, -1], [2.0], ["4"], "16", 16, [True], None],
    "batch_norm": [
        "yes",
        [0.1],
        True,
        {"nope": 1},
        {"momentum": 0},
        {"momentum": 0.0},
        {"momentum": 1.5},
        {"momentum": -0.1},
        {"momentum": NAN},
        {"momentum": "0.1"},
        {"momentum": True},
        {"affine": 1},
        {"affine": "yes"},
    ],
    "dropout": [
        "yes",
        0.1,
        {"p": 0.1},
        {"rate": 1.0},
        {"rate": -0.1},
        {"rate": "0.1"},
    ],
    "final_layer_activation": BAD_BOOLS,
    "kernel_initializer": BAD_INITIALIZERS,
    "bias_initializer": BAD_INITIALIZERS,
}
BAD_MASK_NET_VALUES = {
    "mask_blocks": [[], {}, "blocks", 3, None, [3], [None], ["x"]],
    "mlp": [[], "mlp", 3, [16], {}, {"layer_sizes": None}],
    "use_parallel": BAD_BOOLS + [None],
    "embedding_layer_norm": BAD_BOOLS + [None],
    "normalize_mask_input": BAD_BOOLS + [None],
}


def _bad_value_names(key, value):
    """Names the message may use for `key` (nested keys may be qualified)."""
    names = {key}
    if isinstance(value, dict) and value:
        names |= set(value)
    return names


@st.composite
def invalid_block_configs(draw):
    """`(config, names)`: a MaskBlock config with one invalid argument and
    the argument names the error may give."""
    config = draw(block_configs(16, 16))
    kind = draw(
        st.sampled_from(
            ["value", "value", "value", "both", "neither", "base", "unknown"]
        )
    )
    if kind == "value":
        key = draw(st.sampled_from(sorted(BAD_BLOCK_VALUES)))
        value = draw(st.sampled_from(BAD_BLOCK_VALUES[key]))
        if key == "reduction_factor_base" and "aggregation_size" in config:
            config.pop("aggregation_size")
            config["reduction_factor"] = 0.5
        config[key] = value
        return config, {key}
    if kind == "both":
        config.pop("reduction_factor_base", None)
        config.update(aggregation_size=8, reduction_factor=0.5)
        return config, {"reduction_factor", "aggregation_size"}
    if kind == "neither":
        config.pop("aggregation_size", None)
        config.pop("reduction_factor", None)
        config.pop("reduction_factor_base", None)
        return config, {"reduction_factor", "aggregation_size"}
    if kind == "base":
        config.pop("reduction_factor", None)
        config.update(aggregation_size=8, reduction_factor_base="inputs")
        return config, {"reduction_factor_base"}
    name = draw(st.sampled_from(["bogus_option", "reductionfactor", "mask"]))
    config[name] = 1
    return config, {name}


@st.composite
def invalid_mlp_configs(draw):
    config = draw(mlp_configs())
    if draw(st.integers(0, 5)) == 0:
        name = draw(st.sampled_from(["bogus_option", "layers", "activation"]))
        config[name] = 1
        return config, {name}
    key = draw(st.sampled_from(sorted(BAD_MLP_VALUES)))
    value = draw(st.sampled_from(BAD_MLP_VALUES[key]))
    config[key] = value
    return config, _bad_value_names(key, value)


@st.composite
def invalid_mask_net_configs(draw):
    config, *_ = draw(mask_net_cases())
    where = draw(st.sampled_from(["block", "mlp", "own", "own", "pair"]))
    if where == "block":
        bad, names = draw(invalid_block_configs())
        i = draw(st.integers(0, len(config["mask_blocks"]) - 1))
        config["mask_blocks"][i] = bad
        return config, names
    if where == "mlp":
        config["mlp"], names = draw(invalid_mlp_configs())
        return config, names
    if where == "pair":
        config["embedding_layer_norm"] = False
        config["normalize_mask_input"] = True
        return config, {"normalize_mask_input"}
    if draw(st.integers(0, 5)) == 0:
        name = draw(st.sampled_from(["bogus_option", "blocks", "parallel"]))
        config[name] = True
        return config, {name}
    key = draw(st.sampled_from(sorted(BAD_MASK_NET_VALUES)))
    value = draw(st.sampled_from(BAD_MASK_NET_VALUES[key]))
    config[key] = value
    names = _bad_value_names(key, value)
    if key == "mlp":
        names.add("layer_sizes")  # `mlp` without `layer_sizes`
    return config, names


def _assert_names_argument(error, names):
    message = str(error)
    assert any(re.search(rf"\b{re.escape(n)}\b", message) for n in names), (
        f"the message names none of {sorted(names)}: {message}"
    )


@given(case=invalid_block_configs())
@_examples(3.0)
def test_an_invalid_mask_block_argument_raises_a_clear_error(case):
    config, names = case
    with pytest.raises((ValueError, TypeError)) as error:
        MaskBlock(**config)
    _assert_names_argument(error.value, names)


@given(case=invalid_mlp_configs())
@_examples(3.0)
def test_an_invalid_mlp_argument_raises_a_clear_error(case):
    config, names = case
    with pytest.raises((ValueError, TypeError)) as error:
        MLP(**config)
    _assert_names_argument(error.value, names)


@given(case=invalid_mask_net_configs())
@_examples(3.0)
def test_an_invalid_mask_net_argument_raises_a_clear_error(case):
    config, names = case
    with pytest.raises((ValueError, TypeError)) as error:
        MaskNet(**config)
    _assert_names_argument(error.value, names)


@st.composite
def unbuildable_mask_nets(draw):
    """`(config, input shape, names)`: a valid config and an input shape it
    cannot be built for."""
    config, kind, field_dims, batch, _ = draw(mask_net_cases())
    input_dim = sum(field_dims)
    what = draw(st.sampled_from(["width", "rank", "unknown", "no fields"]))
    if what == "width":
        # A reduction factor whose width truncates to 0 for these inputs.
        i = draw(st.integers(0, len(config["mask_blocks"]) - 1))
        block = config["mask_blocks"][i]
        block.pop("aggregation_size", None)
        block.pop("reduction_factor_base", None)
        block["reduction_factor"] = draw(st.floats(1e-6, 0.99)) / input_dim
        shape = (batch, input_dim)
        return config, shape, {"reduction_factor"}
    if what == "rank":
        rank = draw(st.sampled_from([1, 4, 5]))
        shape = tuple(draw(st.integers(1, 8)) for _ in range(rank))
        return config, shape, {"inputs"}
    if what == "unknown":
        return config, (batch, None), {"inputs"}
    return config, [], {"inputs"}


@given(case=unbuildable_mask_nets())
@_examples(1.0)
def test_a_mask_net_that_cannot_be_built_raises_and_stays_unbuilt(case):
    config, shape, names = case
    net = MaskNet(**config)
    with pytest.raises((ValueError, TypeError)) as error:
        net.build(shape)
    _assert_names_argument(error.value, names)
    assert not net.built
    assert net.weights == []
    assert all(not block.built for block in net.mask_block_layers)


@given(
    case=mask_block_cases(),
    what=st.sampled_from(["inputs", "mask_input", "width"]),
    rank=st.sampled_from([1, 3]),
)
@_examples(1.0)
def test_a_mask_block_that_cannot_be_built_raises_and_stays_unbuilt(
    case, what, rank
):
    config, input_dim, mask_input_dim, _, batch, _ = case
    mask_input_dim = mask_input_dim or input_dim
    inputs_shape = (batch, input_dim)
    mask_shape = (batch, mask_input_dim)
    if what == "width":
        config.pop("aggregation_size", None)
        config["reduction_factor_base"] = "mask_input"
        config["reduction_factor"] = 0.99 / mask_input_dim
        names = {"reduction_factor"}
    else:
        bad = (batch, 3, 4) if rank == 3 else (batch,)
        inputs_shape, mask_shape = (
            (bad, mask_shape) if what == "inputs" else (inputs_shape, bad)
        )
        names = {what}
    block = MaskBlock(**config)
    with pytest.raises((ValueError, TypeError)) as error:
        block.build(inputs_shape, mask_shape)
    _assert_names_argument(error.value, names)
    assert not block.built
    assert block.weights == []
