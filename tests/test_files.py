"""Damaged and edited `.keras` files never load as a silently wrong model.

- A truncated or corrupted archive, a config with an invalid value or an
  unknown option, and a weight of the wrong shape (or a missing one) each
  fail to load with an error that says what is wrong.
- A VALID edit (a weight value, a config value whose weights still fit)
  loads: nothing in the file can tell it from the original. A SHA-256 kept
  beside it (the `hashlib` recipe of docs/reliability.md) shows the edit.
- A custom activation that is not registered saves, and loading says how
  to register it (Keras' own hint is kept).
- Loading never runs code: every option loads with `safe_mode=True`, and
  the configs hold no serialized functions.
"""

import hashlib
import io
import json
import pathlib
import re
import zipfile

import h5py
import keras
import numpy as np
import pytest

import keras_masknet
from tests.helpers import BACKEND
from tests.helpers import to_numpy

CONFIG = {
    "mask_blocks": [
        {
            "output_size": 8,
            "reduction_factor": 0.5,
            "input_layer_norm": True,
            "output_activation": "relu",
            "kernel_regularizer": "l2",
        },
        {
            "output_size": 6,
            "aggregation_size": 5,
            "reduction_factor_base": "mask_input",
            "dropout_rate": 0.1,
            "use_hidden_bias": False,
            "mask_projection_dim": 3,
        },
    ],
    "mlp": {
        "layer_sizes": [8, 4],
        "batch_norm": {"affine": True, "momentum": 0.1},
        "dropout": {"rate": 0.1},
        "final_layer_activation": True,
    },
    "use_parallel": True,
    "embedding_layer_norm": True,
}
WIDTH = 12
BLOCK_0 = "layers/mask_net/mask_block_layers/mask_block"


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """`(path, x, want)`: a trained model saved as a `.keras` file, an input
    and the model's output for it."""
    keras.utils.set_random_seed(0)
    inputs = keras.Input((WIDTH,))
    net = keras_masknet.MaskNet(**CONFIG, name="mask_net")
    model = keras.Model(
        inputs, keras.layers.Dense(1, activation="sigmoid")(net(inputs))
    )
    # One XLA program on JAX (eagerly, it compiles every op: 3x slower).
    model.compile("adam", "binary_crossentropy", jit_compile=BACKEND == "jax")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, WIDTH)).astype("float32")
    model.fit(x, (x[:, :1] > 0).astype("float32"), batch_size=16, verbose=0)
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    model.save(path)
    return path, x, to_numpy(model.predict(x, verbose=0))


def _sha256(path):
    """docs/reliability.md's recipe: the SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _copy(saved, tmp_path, data=None):
    path = tmp_path / "model.keras"
    path.write_bytes(saved[0].read_bytes() if data is None else data)
    return path


def _rewrite(src, dst, edit):
    """Copy the archive `src` to `dst`, passing each member through
    `edit(name, bytes) -> bytes` (the zip stays valid: new CRCs)."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            zout.writestr(info, edit(info.filename, zin.read(info.filename)))


def _edit_config(edit):
    def member(name, data):
        if name != "config.json":
            return data
        config = json.loads(data)
        edit(_mask_net_config(config))
        return json.dumps(config).encode()

    return member


def _mask_net_config(model_config):
    (layer,) = [
        layer
        for layer in model_config["config"]["layers"]
        if layer["class_name"] == "MaskNet"
    ]
    return layer["config"]


def _edit_weights(edit):
    def member(name, data):
        if name != "model.weights.h5":
            return data
        buffer = io.BytesIO(data)
        with h5py.File(buffer, "r+") as f:
            edit(f)
        return buffer.getvalue()

    return member


def _load(path):
    return keras.saving.load_model(path, safe_mode=True)


# ------------------------------------------------------- damaged archives

TRUNCATIONS = {
    "to nothing": lambda n: 0,
    "to 100 bytes": lambda n: 100,
    "to half": lambda n: n // 2,
    "by its last 10 bytes": lambda n: n - 10,
}


@pytest.mark.parametrize("cut", list(TRUNCATIONS))
def test_a_truncated_archive_fails_to_load(saved, tmp_path, cut):
    data = saved[0].read_bytes()
    path = _copy(saved, tmp_path, data[: TRUNCATIONS[cut](len(data))])
    with pytest.raises((ValueError, zipfile.BadZipFile)):
        _load(path)
    assert _sha256(path) != _sha256(saved[0])


def _member_offset(path, name):
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(name)
    with open(path, "rb") as f:
        f.seek(info.header_offset + 26)
        name_len, extra_len = np.frombuffer(f.read(4), "<u2")
    return info.header_offset + 30 + int(name_len) + int(extra_len), info


@pytest.mark.parametrize("member", ["config.json", "model.weights.h5"])
@pytest.mark.parametrize("where", ["start", "middle", "end"])
def test_a_corrupted_archive_member_fails_to_load(
    saved, tmp_path, member, where
):
    path = _copy(saved, tmp_path)
    offset, info = _member_offset(path, member)
    size = info.compress_size
    position = (
        offset + {"start": 0, "middle": size // 2, "end": size - 1}[where]
    )
    data = bytearray(path.read_bytes())
    data[position] ^= 0x5A
    path.write_bytes(bytes(data))
    with pytest.raises(Exception, match=rf"CRC|{member}|JSON|decode") as error:
        _load(path)
    assert isinstance(error.value, (ValueError, zipfile.BadZipFile)), error


# --------------------------------------------------------- invalid configs


def _set_block(i, key, value):
    def edit(config):
        config["mask_blocks"][i][key] = value

    return edit


def _set_mlp(key, value):
    def edit(config):
        config["mlp"][key] = value

    return edit


def _set_own(key, value):
    def edit(config):
        config[key] = value

    return edit


INVALID_CONFIGS = {
    "a negative output size": (
        _set_block(0, "output_size", -8),
        r"output_size.*Received: output_size=-8",
    ),
    "a zero reduction factor": (
        _set_block(0, "reduction_factor", 0.0),
        r"reduction_factor=0.0",
    ),
    "a dropout rate of 1": (
        _set_block(1, "dropout_rate", 1.0),
        r"dropout_rate=1.0",
    ),
    "an unknown activation": (
        _set_block(0, "output_activation", "no_such_activation"),
        r"output_activation='no_such_activation'",
    ),
    "an unknown block option": (
        _set_block(1, "bogus_option", 1),
        r"mask_blocks\[1\].*bogus_option",
    ),
    "an unknown MaskNet option": (
        _set_own("bogus_option", True),
        r"Unrecognized keyword arguments passed to MaskNet.*bogus_option",
    ),
    "an unknown MLP option": (
        _set_mlp("bogus_option", 2),
        r"`mlp` has unknown key.*bogus_option",
    ),
    "a negative MLP size": (
        _set_mlp("layer_sizes", [8, -4]),
        r"layer_sizes\[1\]",
    ),
    "a string for a bool": (
        _set_own("use_parallel", "true"),
        r"use_parallel='true'",
    ),
}


@pytest.mark.parametrize("case", list(INVALID_CONFIGS))
def test_a_config_with_an_invalid_value_fails_to_load(saved, tmp_path, case):
    edit, message = INVALID_CONFIGS[case]
    path = tmp_path / "edited.keras"
    _rewrite(saved[0], path, _edit_config(edit))
    with pytest.raises(
        (ValueError, TypeError), match=re.compile(message, re.S)
    ):
        _load(path)


# ------------------------------------------------------------ bad weights


def _replace_dataset(name, new):
    def edit(f):
        del f[name]
        f.create_dataset(name, data=new)

    return edit


def test_a_weight_of_the_wrong_shape_fails_to_load(saved, tmp_path):
    name = f"{BLOCK_0}/hidden/vars/0"  # kernel (WIDTH, 8)
    path = tmp_path / "edited.keras"
    wrong = np.zeros((WIDTH, 9), "float32")
    _rewrite(saved[0], path, _edit_weights(_replace_dataset(name, wrong)))
    with pytest.raises(ValueError, match=r"shape.*\(12, 8\)|\(12, 9\)"):
        _load(path)


def test_a_missing_weight_fails_to_load(saved, tmp_path):
    def edit(f):
        del f[f"{BLOCK_0}/output_norm/vars/1"]

    path = tmp_path / "edited.keras"
    _rewrite(saved[0], path, _edit_weights(edit))
    with pytest.raises(ValueError, match="could not be loaded"):
        _load(path)


def test_a_valid_config_change_that_no_longer_fits_the_weights_fails(
    saved, tmp_path
):
    path = tmp_path / "edited.keras"
    _rewrite(saved[0], path, _edit_config(_set_block(1, "output_size", 7)))
    with pytest.raises(ValueError, match="shape"):
        _load(path)


# ------------------------------------------------- valid edits: a SHA-256


def _scale_dataset(name, factor):
    def edit(f):
        f[name][...] = f[name][...] * factor

    return edit


VALID_EDITS = {
    "a weight value": _edit_weights(
        _scale_dataset(f"{BLOCK_0}/hidden/vars/0", 1.001)
    ),
    "an activation": _edit_config(_set_block(0, "output_activation", "gelu")),
    "a dropout rate": _edit_config(_set_block(1, "dropout_rate", 0.5)),
}


@pytest.mark.parametrize("edit", list(VALID_EDITS))
def test_a_valid_hand_edit_loads_but_changes_the_sha256(saved, tmp_path, edit):
    path = tmp_path / "model.keras"
    _rewrite(saved[0], path, VALID_EDITS[edit])
    # Keras loads it: nothing in the file tells the edit from a real model.
    model = _load(path)
    if edit == "a weight value":
        got = to_numpy(model.predict(saved[1], verbose=0))
        assert not np.array_equal(got, saved[2])
    # The SHA-256 kept from the save shows it.
    assert _sha256(path) != _sha256(saved[0])
    path.write_bytes(saved[0].read_bytes())
    assert _sha256(path) == _sha256(saved[0])


# ------------------------------------------------------------ safe mode


def test_every_option_loads_in_safe_mode_and_the_config_holds_no_code(saved):
    model = keras.saving.load_model(saved[0], safe_mode=True)
    np.testing.assert_array_equal(
        to_numpy(model.predict(saved[1], verbose=0)), saved[2]
    )
    with zipfile.ZipFile(saved[0]) as archive:
        text = archive.read("config.json").decode()
    assert "lambda" not in text.lower()
    assert "__lambda__" not in text
    assert "function_type" not in text


def test_safe_mode_refuses_a_file_that_would_run_code(tmp_path):
    # What safe_mode=True protects from: a Lambda layer holds Python code.
    inputs = keras.Input((WIDTH,))
    net = keras_masknet.MaskNet(**CONFIG)
    outputs = keras.layers.Lambda(lambda t: t * 2)(net(inputs))
    path = pathlib.Path(tmp_path) / "lambda.keras"
    keras.Model(inputs, outputs).save(path)
    with pytest.raises(ValueError, match="safe_mode"):
        keras.saving.load_model(path, safe_mode=True)


def _unregistered_activation(x):
    return keras.ops.tanh(x)


def test_an_unregistered_activation_saves_and_loading_says_to_register_it(
    tmp_path,
):
    inputs = keras.Input((WIDTH,))
    block = keras_masknet.MaskBlock(
        4, aggregation_size=4, output_activation=_unregistered_activation
    )
    path = tmp_path / "custom.keras"
    keras.Model(inputs, block(inputs)).save(path)
    with pytest.raises(Exception) as error:
        keras.saving.load_model(path)
    message = str(error.value)
    # Which argument, what was received, and Keras' hint on the cure.
    assert "`output_activation` must be a Keras activation" in message
    assert "_unregistered_activation" in message
    assert "register_keras_serializable" in message
    # Registered, the same function saves and loads.
    registered = keras.saving.register_keras_serializable("tests")(
        _unregistered_activation
    )
    block = keras_masknet.MaskBlock(
        4, aggregation_size=4, output_activation=registered
    )
    keras.Model(inputs, block(inputs)).save(path)
    loaded = keras.saving.load_model(path)
    assert loaded.layers[1].output_activation is registered
