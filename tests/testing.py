"""A trimmed layer-test harness for the layers of keras_masknet.

After Keras' `keras.src.testing.TestCase.run_layer_test` (and the trimmed
copies keras-rs and keras-hub keep): one call runs every check that each
layer must pass, so the layer test files hold only what is particular to a
layer (validation messages, wiring, numbers against the references).
Backend-agnostic (`keras.ops` and NumPy only) and meant for tiny shapes.

    run_layer_test(
        MaskBlock,
        init_kwargs={"output_size": 4, "aggregation_size": 3},
        input_data={"inputs": x, "mask_input": m},
        expected_output_shape=(2, 4),
        expected_num_trainable_weights=8,
    )
"""

import json
import pathlib
import tempfile

import keras
import numpy as np

from tests.helpers import randomize
from tests.helpers import to_numpy

#: The mixed-precision policies every layer must support, and the dtype
#: each computes in.
MIXED_POLICIES = {"mixed_float16": "float16", "mixed_bfloat16": "bfloat16"}
#: The package under which the layers are registered for `.keras` files.
PACKAGE = "keras_masknet"
#: On JAX an eager call compiles each operation for its shapes, one by one:
#: several times slower than compiling the whole call (or training step) at
#: once. On TensorFlow and torch eager calls are the quicker. The harness
#: calls each layer eagerly where that is the check, else the quicker way.
COMPILED_IS_QUICKER = keras.backend.backend() == "jax"


# ------------------------------------------------------------------ helpers


def standardize_dtype(x):
    return keras.backend.standardize_dtype(x.dtype)


def _is_shape(value):
    return isinstance(value, tuple) and all(
        d is None or isinstance(d, int) for d in value
    )


def map_shapes(fn, structure):
    """`fn` applied to every shape tuple of a nested dict/list of shapes."""
    if _is_shape(structure):
        return fn(structure)
    if isinstance(structure, dict):
        return {k: map_shapes(fn, v) for k, v in structure.items()}
    return [map_shapes(fn, v) for v in structure]


def shapes_of(structure):
    """The shapes of a nested dict/list of tensors, as tuples."""
    if isinstance(structure, dict):
        return {k: shapes_of(v) for k, v in structure.items()}
    if isinstance(structure, (list, tuple)):
        return [shapes_of(v) for v in structure]
    return tuple(structure.shape)


def _without_batch(shape):
    return (None, *shape[1:])


def _main(structure):
    """The main output of a layer: `output` of a mapping, else itself."""
    return structure["output"] if isinstance(structure, dict) else structure


def assert_outputs(what, outputs, shapes, dtype=None):
    """`outputs` (a nested dict/list of tensors) have these shapes and,
    unless `dtype` is None, all that dtype."""
    got = shapes_of(outputs)
    assert got == shapes, f"{what} output shapes: {got} != {shapes}"
    if dtype is not None:
        dtypes = [standardize_dtype(t) for t in keras.tree.flatten(outputs)]
        assert set(dtypes) == {dtype}, f"{what} output dtypes: {dtypes}"


def assert_identical(got, want, what="outputs"):
    got, want = keras.tree.flatten(got), keras.tree.flatten(want)
    assert len(got) == len(want), what
    for i, (g, w) in enumerate(zip(got, want)):
        np.testing.assert_array_equal(
            to_numpy(g), to_numpy(w), err_msg=f"{what}[{i}]"
        )


def seed_generators(layer):
    """Every `keras.random.SeedGenerator` of `layer` and its sublayers."""
    found, seen = [], set()
    for sublayer in layer._flatten_layers(include_self=True, recursive=True):
        for generator in getattr(sublayer, "_seed_generators", []):
            if id(generator) not in seen:
                seen.add(id(generator))
                found.append(generator)
    return found


# ------------------------------------------------- checks used on their own


def assert_registered(layer_cls, name=None):
    """`.keras` files name the layer `name` (`keras_masknet>ClassName` by
    default); that name must stay and resolve to the class."""
    name = name or f"{PACKAGE}>{layer_cls.__name__}"
    assert keras.saving.get_registered_name(layer_cls) == name
    assert keras.saving.get_registered_object(name) is layer_cls


def run_config_round_trip(layer):
    """`from_config(get_config())` and a JSON serialization round trip
    rebuild a layer of identical config; returns the revived layer."""
    cls = type(layer)
    config = layer.get_config()
    revived = cls.from_config(config)
    assert type(revived) is cls
    assert revived.get_config() == config
    serialized = keras.saving.serialize_keras_object(layer)
    assert serialized["registered_name"] == f"{PACKAGE}>{cls.__name__}"
    revived_json = keras.saving.deserialize_keras_object(
        json.loads(json.dumps(serialized))
    )
    assert type(revived_json) is cls
    assert json.dumps(revived_json.get_config(), sort_keys=True) == (
        json.dumps(config, sort_keys=True)
    )
    return revived


def save_and_load(model, data, directory=None):
    """Save `model` to a `.keras` file, load it with `safe_mode=True`, and
    check the loaded model computes exactly the same on `data` (called in
    inference, eagerly: a compiled `predict` costs a compilation per model
    on JAX); returns it."""
    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(directory or tmp) / "model.keras"
        model.save(path)
        loaded = keras.saving.load_model(path, safe_mode=True)
    assert_identical(
        loaded(data, training=False),
        model(data, training=False),
        "loaded model's outputs",
    )
    return loaded


def assert_a_training_step_changes_every_weight(
    model, layer, x, y, check_non_trainable=True, untrained=()
):
    """One `fit` step of `model` (SGD, mean squared error to `y`): the
    loss is finite and every weight of `layer` moves (BatchNorm's moving
    statistics too, unless `check_non_trainable=False`), but those whose
    path ends with one of `untrained`: those must NOT move (a bias right
    before a BatchNorm has a zero gradient)."""
    trainable = [(w.path, to_numpy(w).copy()) for w in layer.trainable_weights]
    non_trainable = [
        (w.path, to_numpy(w).copy()) for w in layer.non_trainable_weights
    ]
    model.compile(
        keras.optimizers.SGD(0.1), "mse", run_eagerly=not COMPILED_IS_QUICKER
    )
    batch = len(keras.tree.flatten(x)[0])
    history = model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"]).all(), history.history
    after = {w.path: to_numpy(w) for w in layer.weights}
    for path, old in trainable:
        if path.endswith(tuple(untrained)):
            np.testing.assert_allclose(
                after[path], old, atol=1e-6, err_msg=path
            )
        else:
            assert not np.allclose(after[path], old), f"{path} did not train"
    if check_non_trainable:
        for path, old in non_trainable:
            assert not np.allclose(after[path], old), f"{path} did not move"


# ------------------------------------------------------------ the harness


def _symbolic(data):
    """`keras.Input`s with the structure and widths of `data`."""
    if isinstance(data, (list, tuple)):
        return [_symbolic(x) for x in data]
    return keras.Input(tuple(data.shape[1:]))


def _call(fn, arguments, **kwargs):
    """`fn(inputs, other=...)`: `inputs` positional, as Keras layers take
    their first argument, the other arguments by name."""
    rest = {k: v for k, v in arguments.items() if k != "inputs"}
    return fn(arguments["inputs"], **rest, **kwargs)


def _call_mixed(layer, arguments, call_kwargs):
    """The layer's outputs on `arguments`: eagerly, or through a compiled
    `predict` where that is the quicker (`COMPILED_IS_QUICKER`)."""
    if not COMPILED_IS_QUICKER:
        return _call(layer, arguments, **call_kwargs)
    symbolic = {name: _symbolic(value) for name, value in arguments.items()}
    model = keras.Model(
        _model_io(symbolic), _call(layer, symbolic, **call_kwargs)
    )
    return model.predict(_model_io(arguments), verbose=0)


def _model_io(arguments):
    """Model inputs (or data) from call arguments: `inputs` alone as is,
    else the flat list of every argument's tensors, in order."""
    if list(arguments) == ["inputs"]:
        return arguments["inputs"]
    return keras.tree.flatten(list(arguments.values()))


def run_layer_test(
    layer_cls,
    init_kwargs,
    input_data,
    expected_output_shape,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights=0,
    expected_num_seed_generators=0,
    call_kwargs=None,
    expected_output_dtype="float32",
    run_training_check=True,
    run_saving_check=True,
    run_mixed_precision_check=True,
    expected_untrained_weights=(),
):
    """Every check a layer must pass, on one configuration.

    Args:
        layer_cls: the layer class.
        init_kwargs: dict of constructor arguments.
        input_data: the first call argument (an array, or a list of arrays
            for a list of fields), or a dict of call arguments by name
            (`{"inputs": x, "mask_input": m}`). The first axis is the batch.
        expected_output_shape: shape tuple of the output for `input_data`,
            or the nested dict/list of shapes when `call_kwargs` make the
            layer return a mapping.
        expected_num_trainable_weights: trainable weights after `build`.
        expected_num_non_trainable_weights: non-trainable weights after
            `build` (BatchNorm's moving statistics).
        expected_num_seed_generators: `SeedGenerator`s (one per dropout).
        call_kwargs: dict of other call arguments (`return_mask=True`, ...).
        expected_output_dtype: dtype of every output in float32.
        run_training_check: run a `fit` step and check that the loss is
            finite and every weight moves (BatchNorm's moving statistics
            too).
        run_saving_check: save to a `.keras` file and load it again.
        run_mixed_precision_check: check `mixed_float16`/`mixed_bfloat16`.
        expected_untrained_weights: path endings of the trainable weights
            that a training step must leave as they are (the bias of a
            dense layer right before a BatchNorm: its gradient is zero).

    Checks, in order: registered name and config round trips; weight and
    seed-generator counts after `build` and after a symbolic call; symbolic
    output shapes and dtypes, `compute_output_shape` and
    `compute_output_spec` against the expected ones; an eager call, equal
    to the functional model built on the symbolic call; a layer revived
    from its config with the same weights computes the same; `.keras`
    save/load predicts the same; a training step; mixed precision
    (float32 variables, outputs in the compute dtype, finite).

    Returns:
        The eagerly called (and, with the training check, trained) layer.
    """
    call_kwargs = dict(call_kwargs or {})
    arguments = (
        dict(input_data)
        if isinstance(input_data, dict)
        else {"inputs": input_data}
    )
    build_shapes = {
        f"{name}_shape": map_shapes(tuple, shapes_of(value))
        for name, value in arguments.items()
    }
    expected_main = _main(expected_output_shape)

    # Registered name and config.
    assert_registered(layer_cls)
    run_config_round_trip(layer_cls(**init_kwargs))

    def assert_counts(layer, when):
        assert layer.built, when
        counts = (
            len(layer.trainable_weights),
            len(layer.non_trainable_weights),
            len(seed_generators(layer)),
        )
        expected = (
            expected_num_trainable_weights,
            expected_num_non_trainable_weights,
            expected_num_seed_generators,
        )
        assert counts == expected, (
            f"{when}: (trainable, non-trainable, seed generators) "
            f"{counts} != {expected}"
        )
        if keras.backend.backend() == "torch" and hasattr(
            layer, "torch_params"
        ):
            assert len(layer.torch_params) == sum(expected), when

    # Build.
    layer = layer_cls(**init_kwargs)
    layer.build(**build_shapes)
    assert_counts(layer, "after build")
    computed = tuple(layer.compute_output_shape(**build_shapes))
    assert computed == tuple(expected_main), (
        f"compute_output_shape: {computed} != {expected_main}"
    )

    # Symbolic call, compute_output_spec.
    layer = layer_cls(**init_kwargs)
    symbolic = {name: _symbolic(value) for name, value in arguments.items()}
    symbolic_out = _call(layer, symbolic, **call_kwargs)
    assert_counts(layer, "after a symbolic call")
    symbolic_shapes = map_shapes(_without_batch, expected_output_shape)
    assert_outputs(
        "symbolic", symbolic_out, symbolic_shapes, expected_output_dtype
    )
    spec = _call(layer.compute_output_spec, symbolic, **call_kwargs)
    assert_outputs("compute_output_spec", spec, symbolic_shapes)

    # Eager call, and the functional model built on the symbolic call.
    output = _call(layer, arguments, **call_kwargs)
    expected_shapes = map_shapes(tuple, expected_output_shape)
    assert_outputs("eager", output, expected_shapes, expected_output_dtype)
    model = keras.Model(_model_io(symbolic), symbolic_out)
    data = _model_io(arguments)
    functional = model(data, training=False)
    for got, want in zip(
        keras.tree.flatten(functional), keras.tree.flatten(output)
    ):
        np.testing.assert_allclose(
            to_numpy(got), to_numpy(want), rtol=1e-6, atol=1e-6
        )

    # A layer revived from the config, given the weights, is the same layer.
    revived = run_config_round_trip(layer)
    _call(revived, arguments, **call_kwargs)
    assert_counts(revived, "revived from its config")
    revived.set_weights(layer.get_weights())
    assert_identical(
        _call(revived, arguments, **call_kwargs), output, "revived outputs"
    )

    if run_saving_check:
        # Random weights (and BatchNorm statistics), not the initial ones.
        randomize(layer, seed=1)
        loaded = save_and_load(model, data)
        (restored,) = [x for x in loaded.layers if isinstance(x, layer_cls)]
        assert restored.get_config() == layer.get_config()

    if run_training_check:
        main = _main(symbolic_out)
        train_model = keras.Model(_model_io(symbolic), main)
        rng = np.random.default_rng(0)
        target = rng.normal(size=tuple(expected_main)).astype("float32")
        assert_a_training_step_changes_every_weight(
            train_model,
            layer,
            data,
            target,
            untrained=expected_untrained_weights,
        )

    if run_mixed_precision_check:
        for policy, low in MIXED_POLICIES.items():
            mixed = layer_cls(**init_kwargs, dtype=policy)
            out = _call_mixed(mixed, arguments, call_kwargs)
            assert mixed.compute_dtype == low, policy
            assert_outputs(policy, out, expected_shapes, low)
            for tensor in keras.tree.flatten(out):
                values = to_numpy(tensor).astype("float32")
                assert np.isfinite(values).all(), f"{policy}: not finite"
            spec = _call(mixed.compute_output_spec, symbolic, **call_kwargs)
            assert_outputs(
                f"{policy} compute_output_spec", spec, symbolic_shapes, low
            )
            for weight in mixed.weights:
                dtype = standardize_dtype(weight)
                assert dtype == "float32", f"{policy}: {weight.path} {dtype}"
    return layer
