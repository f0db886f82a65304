"""keras_masknet.integrity: SHA-256 checksums beside saved files.

The docstring examples run in tests/test_docstrings.py.
"""

import hashlib
import os

import keras
import numpy as np
import pytest

import keras_masknet
from keras_masknet import IntegrityError
from keras_masknet import load_with_checksum
from keras_masknet import save_with_checksum
from keras_masknet import verify_checksum
from keras_masknet import write_checksum
from tests.helpers import to_numpy


def test_checksum_file_is_in_sha256sum_format(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(b"\x00\x01" * 1000)
    digest = write_checksum(path)
    assert digest == hashlib.sha256(b"\x00\x01" * 1000).hexdigest()
    sidecar = tmp_path / "weights.bin.sha256"
    assert sidecar.read_text() == f"{digest}  weights.bin\n"
    assert verify_checksum(path) == digest
    # `sha256sum -b` writes a '*' before the name: accepted too.
    sidecar.write_text(f"{digest.upper()} *weights.bin\n")
    assert verify_checksum(path) == digest


def test_a_changed_byte_fails_verification(tmp_path):
    path = tmp_path / "weights.bin"
    path.write_bytes(bytes(range(256)))
    write_checksum(path)
    data = bytearray(path.read_bytes())
    data[100] ^= 1
    path.write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="does not match its checksum"):
        verify_checksum(path)


def test_a_missing_or_malformed_or_foreign_checksum_fails(tmp_path):
    path = tmp_path / "a.bin"
    path.write_bytes(b"a")
    with pytest.raises(IntegrityError, match="No checksum file"):
        verify_checksum(path)
    sidecar = tmp_path / "a.bin.sha256"
    for text in ("", "abc  a.bin\n", "0" * 64 + "\n", "x\ny\n"):
        sidecar.write_text(text)
        with pytest.raises(IntegrityError, match="malformed"):
            verify_checksum(path)
    other = tmp_path / "b.bin"
    other.write_bytes(b"a")
    write_checksum(other, checksum_path=sidecar)
    with pytest.raises(IntegrityError, match="is for 'b.bin'"):
        verify_checksum(path)
    with pytest.raises(FileNotFoundError, match="filepath="):
        verify_checksum(tmp_path / "missing.bin")


@pytest.mark.parametrize("value", [None, 3, b"x.keras"], ids=repr)
def test_paths_must_be_paths(value):
    with pytest.raises(TypeError, match="filepath="):
        write_checksum(value)


def _model():
    inputs = keras.Input((6,))
    net = keras_masknet.MaskNet(
        mask_blocks=[{"output_size": 4, "aggregation_size": 3}] * 2,
        mlp={"layer_sizes": [3]},
        use_parallel=True,
    )
    return keras.Model(inputs, net(inputs))


def test_save_with_checksum_replaces_a_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"an older model")
    write_checksum(path)
    model = _model()
    digest = save_with_checksum(model, path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "model.keras",
        "model.keras.sha256",
    ]
    assert verify_checksum(path) == digest
    x = np.random.default_rng(0).normal(size=(3, 6)).astype("float32")
    loaded = load_with_checksum(path, compile=False)
    np.testing.assert_array_equal(to_numpy(loaded(x)), to_numpy(model(x)))


def test_a_failed_save_leaves_the_previous_file_whole(tmp_path, monkeypatch):
    path = tmp_path / "model.keras"
    model = _model()
    digest = save_with_checksum(model, path)

    def broken_save(self, filepath, **kwargs):
        with open(filepath, "wb") as f:
            f.write(b"half a model")
        raise OSError("disk full")

    monkeypatch.setattr(keras.Model, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_with_checksum(model, path)
    assert verify_checksum(path) == digest
    assert sorted(os.listdir(tmp_path)) == [
        "model.keras",
        "model.keras.sha256",
    ]


def test_save_with_checksum_wants_a_keras_file(tmp_path):
    with pytest.raises(ValueError, match=r"\.keras.*filepath="):
        save_with_checksum(_model(), tmp_path / "model.h5")


def test_load_without_verification_still_checks_the_archive(tmp_path):
    path = tmp_path / "model.keras"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(IntegrityError, match="not a `.keras` archive"):
        load_with_checksum(path, verify=False)
    with pytest.raises(FileNotFoundError):
        load_with_checksum(tmp_path / "missing.keras", verify=False)
