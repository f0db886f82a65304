"""Saving with a SHA-256 checksum beside the file, and loading only if it
matches.

Keras refuses a `.keras` archive that is truncated or corrupted, a config
with an invalid value or an unknown option (the layers validate their
arguments), and a weight of the wrong shape. What it cannot see is a VALID
change: a weight edited by hand, a file swapped for another model's. A
checksum written at save time and checked before loading catches those too.

`save_with_checksum(model, "m.keras")` writes the model and `m.keras.sha256`
in the format of `sha256sum` (so `sha256sum -c m.keras.sha256` checks it
too); `load_with_checksum("m.keras")` checks the file against it and only
then calls `keras.saving.load_model` with `safe_mode=True`. Both files are
written to temporary names first and renamed into place, so a save killed
halfway never leaves a truncated model under the final name. The same pair
works for any file: `write_checksum` and `verify_checksum` (a
`.weights.h5` file, a `ModelCheckpoint` file).

A checksum proves the file is the one saved, not that the one saved can be
trusted: keep the `.sha256` where the model's producer, not its consumer,
can write it, or sign it.
"""

import hashlib
import os
import pathlib
import re
import tempfile
import zipfile
from typing import Any

import keras

#: Suffix added to a file's name for its checksum file.
CHECKSUM_SUFFIX = ".sha256"
_CHUNK = 1 << 20
_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


class IntegrityError(ValueError):
    """A file does not match its checksum, has none, or is not a `.keras`
    archive."""


def _path(name: str, value: Any) -> pathlib.Path:
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(
            f"`{name}` must be a path (str or os.PathLike). "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    return pathlib.Path(value)


def file_sha256(filepath: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, as 64 lowercase hex digits.

    Args:
        filepath: str or path. The file to hash.

    Returns:
        The hex digest.

    Example:

    ```python
    import pathlib
    import tempfile
    from keras_masknet.integrity import file_sha256

    path = pathlib.Path(tempfile.mkdtemp()) / "empty.bin"
    path.write_bytes(b"")
    assert file_sha256(path) == (
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    )
    ```
    """
    path = _path("filepath", filepath)
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _checksum_path(
    filepath: pathlib.Path, checksum_path: str | os.PathLike | None
) -> pathlib.Path:
    if checksum_path is None:
        return filepath.with_name(filepath.name + CHECKSUM_SUFFIX)
    return _path("checksum_path", checksum_path)


def _write_atomically(path: pathlib.Path, data: bytes) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def write_checksum(
    filepath: str | os.PathLike,
    checksum_path: str | os.PathLike | None = None,
) -> str:
    """Write the SHA-256 of `filepath` to a checksum file beside it.

    The checksum file holds one line, `<hex digest>  <file name>`, the
    format of `sha256sum`.

    Args:
        filepath: str or path. The file to protect.
        checksum_path: str or path, optional. Where to write the checksum.
            Defaults to `filepath` + `".sha256"`.

    Returns:
        The hex digest written.

    Example:

    ```python
    import pathlib
    import tempfile
    from keras_masknet.integrity import verify_checksum
    from keras_masknet.integrity import write_checksum

    path = pathlib.Path(tempfile.mkdtemp()) / "weights.bin"
    path.write_bytes(b"trained")
    digest = write_checksum(path)
    assert path.with_name("weights.bin.sha256").read_text() == (
        f"{digest}  weights.bin\\n"
    )
    assert verify_checksum(path) == digest
    ```
    """
    path = _path("filepath", filepath)
    digest = file_sha256(path)
    target = _checksum_path(path, checksum_path)
    _write_atomically(target, f"{digest}  {path.name}\n".encode())
    return digest


def verify_checksum(
    filepath: str | os.PathLike,
    checksum_path: str | os.PathLike | None = None,
) -> str:
    """Check a file against the checksum `write_checksum` wrote for it.

    Args:
        filepath: str or path. The file to check.
        checksum_path: str or path, optional. Its checksum file. Defaults to
            `filepath` + `".sha256"`.

    Returns:
        The hex digest, if the file matches.

    Raises:
        FileNotFoundError: if `filepath` does not exist.
        IntegrityError: if the checksum file is missing or malformed, names
            another file, or the file's SHA-256 differs (the file changed
            since it was saved).

    Example:

    ```python
    import pathlib
    import tempfile
    from keras_masknet.integrity import IntegrityError
    from keras_masknet.integrity import verify_checksum
    from keras_masknet.integrity import write_checksum

    path = pathlib.Path(tempfile.mkdtemp()) / "weights.bin"
    path.write_bytes(b"trained")
    write_checksum(path)
    path.write_bytes(b"trainee")  # changed by hand
    try:
        verify_checksum(path)
    except IntegrityError as error:
        assert "does not match" in str(error)
    else:
        raise AssertionError("not detected")
    ```
    """
    path = _path("filepath", filepath)
    if not path.is_file():
        raise FileNotFoundError(
            f"No such file: `filepath`. Received: filepath={str(path)!r}"
        )
    target = _checksum_path(path, checksum_path)
    if not target.is_file():
        raise IntegrityError(
            f"No checksum file {str(target)!r} for {str(path)!r}: it cannot "
            "be verified. Save with `keras_masknet.save_with_checksum` (or "
            "`write_checksum`), or load without verification. Received: "
            f"filepath={str(path)!r}"
        )
    lines = target.read_text(errors="replace").splitlines()
    match = _LINE.match(lines[0].strip()) if len(lines) == 1 else None
    if match is None:
        raise IntegrityError(
            f"Checksum file {str(target)!r} is malformed: expected one line "
            f"'<64 hex digits>  <file name>'. Received: {lines[:2]!r}"
        )
    want, name = match.group(1).lower(), match.group(2)
    if name != path.name:
        raise IntegrityError(
            f"Checksum file {str(target)!r} is for {name!r}, not for "
            f"{path.name!r}. Received: filepath={str(path)!r}"
        )
    got = file_sha256(path)
    if got != want:
        raise IntegrityError(
            f"File {str(path)!r} does not match its checksum: it changed "
            f"after it was saved (or was replaced, truncated or corrupted). "
            f"Expected SHA-256 {want}, received {got}."
        )
    return got


def save_with_checksum(
    model: keras.Model, filepath: str | os.PathLike, **kwargs: Any
) -> str:
    """Save `model` to a `.keras` file atomically, with a checksum beside it.

    The model is saved to a temporary file in the same directory and renamed
    to `filepath`, then its checksum is written to `filepath + ".sha256"`
    the same way. A save killed halfway leaves the previous file and
    checksum, or (killed between the two renames) a new file whose old
    checksum fails verification: never a truncated file under `filepath`
    nor a pair that verifies but holds the wrong model.

    Args:
        model: `keras.Model`. The model to save.
        filepath: str or path. Where to save it; must end in `.keras`.
        **kwargs: passed to `model.save` (e.g. `zipped`).

    Returns:
        The SHA-256 hex digest of the saved file.

    Example:

    ```python
    import pathlib
    import tempfile
    import numpy as np
    import keras
    import keras_masknet

    inputs = keras.Input((6,))
    net = keras_masknet.MaskNet(
        mask_blocks=[{"output_size": 4, "aggregation_size": 4}]
    )
    model = keras.Model(inputs, net(inputs))
    path = pathlib.Path(tempfile.mkdtemp()) / "model.keras"
    keras_masknet.save_with_checksum(model, path)
    loaded = keras_masknet.load_with_checksum(path)
    x = np.ones((2, 6), "float32")
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded(x)),
        keras.ops.convert_to_numpy(model(x)),
    )
    ```
    """
    path = _path("filepath", filepath)
    if not path.name.endswith(".keras"):
        raise ValueError(
            f"`filepath` must end in `.keras`. Received: filepath={str(path)!r}"
        )
    fd, tmp = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".keras"
    )
    os.close(fd)
    try:
        model.save(tmp, **kwargs)
        # Flushed to disk before the rename makes it the model.
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        digest = file_sha256(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    target = _checksum_path(path, None)
    _write_atomically(target, f"{digest}  {path.name}\n".encode())
    return digest


def load_with_checksum(
    filepath: str | os.PathLike,
    *,
    custom_objects: dict[str, Any] | None = None,
    compile: bool = True,
    safe_mode: bool = True,
    checksum_path: str | os.PathLike | None = None,
    verify: bool = True,
) -> keras.Model:
    """Load a `.keras` model after checking it against its checksum.

    Args:
        filepath: str or path. The `.keras` file.
        custom_objects: dict, optional. Passed to `keras.saving.load_model`.
            keras_masknet's layers are registered and need none.
        compile: bool. Passed to `keras.saving.load_model`. Defaults to
            `True`.
        safe_mode: bool. Passed to `keras.saving.load_model`: with `True`,
            loading never runs code stored in the file (lambdas).
            keras_masknet's layers load with it. Defaults to `True`.
        checksum_path: str or path, optional. The checksum file. Defaults to
            `filepath` + `".sha256"`.
        verify: bool. Whether to check the checksum; with `False` only the
            archive itself is checked (readable zip, intact members).
            Defaults to `True`.

    Returns:
        The loaded model.

    Raises:
        IntegrityError: if the file does not match its checksum, the checksum
            file is missing or malformed, or the file is not an intact
            `.keras` archive (truncated, corrupted).
        ValueError, TypeError: from Keras, if the config or the weights are
            invalid (the message names what is wrong).

    Example:

    ```python
    import pathlib
    import tempfile
    import keras
    import keras_masknet

    inputs = keras.Input((6,))
    net = keras_masknet.MaskNet(
        mask_blocks=[{"output_size": 4, "aggregation_size": 4}]
    )
    path = pathlib.Path(tempfile.mkdtemp()) / "model.keras"
    keras_masknet.save_with_checksum(keras.Model(inputs, net(inputs)), path)
    with open(path, "r+b") as f:  # change one byte in the middle
        f.seek(path.stat().st_size // 2)
        byte = f.read(1)
        f.seek(-1, 1)
        f.write(bytes([byte[0] ^ 1]))
    try:
        keras_masknet.load_with_checksum(path)
    except keras_masknet.IntegrityError as error:
        assert "does not match its checksum" in str(error)
    else:
        raise AssertionError("not detected")
    ```
    """
    path = _path("filepath", filepath)
    if verify:
        verify_checksum(path, checksum_path)
    elif not path.is_file():
        raise FileNotFoundError(
            f"No such file: `filepath`. Received: filepath={str(path)!r}"
        )
    _check_archive(path)
    return keras.saving.load_model(
        str(path),
        custom_objects=custom_objects,
        compile=compile,
        safe_mode=safe_mode,
    )


def _check_archive(path: pathlib.Path) -> None:
    """Refuse a `.keras` file that is not a whole, readable zip archive."""
    if not zipfile.is_zipfile(path):
        raise IntegrityError(
            f"{str(path)!r} is not a `.keras` archive (a zip file): it is "
            "truncated, corrupted or of another format. Received: "
            f"filepath={str(path)!r} of {path.stat().st_size} bytes"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (zipfile.BadZipFile, OSError, EOFError) as error:
        raise IntegrityError(
            f"{str(path)!r} is a damaged `.keras` archive: {error}. "
            f"Received: filepath={str(path)!r}"
        ) from error
    if bad is not None:
        raise IntegrityError(
            f"{str(path)!r} is a damaged `.keras` archive: member {bad!r} "
            f"fails its CRC check. Received: filepath={str(path)!r}"
        )
