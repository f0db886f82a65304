"""Checks for NaN and Inf: in data, in a model's weights, and during `fit`.

MaskBlock, MaskNet and MLP never turn finite inputs into NaN or Inf by
themselves (see docs/reliability.md for the edge cases tested), but they pass
on what they are given:

- In inference (`training=False`, `predict`), every computation is row by
  row, so a NaN or Inf in one input row makes that row's output NaN and
  leaves the other rows exactly as they would be without it.
- In training, an `MLP` with `batch_norm` normalizes each feature with the
  mean and variance of the whole batch: one non-finite row makes the whole
  batch's output NaN, then the loss, the gradients, every trained weight and
  the BatchNorm moving statistics. Without batch norm the loss, as a mean
  over the batch, is NaN too, and so is the next update of every weight.

Keras' own `keras.callbacks.TerminateOnNaN` looks at the loss only and stops
quietly. `NonFiniteCheck` looks at everything `fit` logs and at every weight
and optimizer variable, names the batch and the offending variables, and
raises `NonFiniteError` (or stops training with a warning).
`assert_finite` checks data before it reaches the model.

`ReseedEachEpoch` makes dropout repeatable across an interruption: with it,
a run resumed by `keras.callbacks.BackupAndRestore` ends with the weights of
the uninterrupted run (docs/reliability.md lists the other conditions).
"""

import hashlib
import warnings
from typing import Any

import keras
import numpy as np
from keras import ops

#: What `NonFiniteCheck` does on a non-finite value.
ON_NON_FINITE = ("raise", "stop")
#: At most this many names are listed in an error message.
_MAX_LISTED = 10


class NonFiniteError(FloatingPointError):
    """A NaN or an Inf where only finite values may be.

    Raised by `assert_finite` and `NonFiniteCheck`. Its attributes say where
    the values were found; unset ones are `None`.

    Attributes:
        epoch: int or None. The epoch (0-based) during which training met
            them.
        batch: int or None. The batch (0-based, within `epoch`) after which
            they were found.
        logs: dict. The non-finite values `fit` logged (`{"loss": nan}`).
        weights: list of str. Paths of the variables holding non-finite
            values (model weights, then optimizer variables).
        rows: list of int. Indices (along axis 0) of the data rows holding
            non-finite values, for `assert_finite`.
    """

    def __init__(
        self,
        message: str,
        *,
        epoch: int | None = None,
        batch: int | None = None,
        logs: dict[str, float] | None = None,
        weights: list[str] | None = None,
        rows: list[int] | None = None,
    ) -> None:
        super().__init__(message)
        self.epoch = epoch
        self.batch = batch
        self.logs = dict(logs or {})
        self.weights = list(weights or [])
        self.rows = list(rows or [])


def _listed(names: list[Any]) -> str:
    shown = ", ".join(str(n) for n in names[:_MAX_LISTED])
    more = len(names) - _MAX_LISTED
    return shown + (f" and {more} more" if more > 0 else "")


def _is_float(variable: Any) -> bool:
    dtype = keras.backend.standardize_dtype(variable.dtype)
    return "float" in dtype


def non_finite_variables(variables: Any) -> list[str]:
    """Paths of the variables that hold at least one NaN or Inf.

    Args:
        variables: a `keras.Model`, `keras.layers.Layer` or
            `keras.optimizers.Optimizer` (its `variables` are checked), or a
            list of Keras variables. Integer variables (step counters, seed
            states) are skipped: they cannot be non-finite.

    Returns:
        The `path` of every float variable with a non-finite value, in the
        order given; an empty list if all are finite.

    Example:

    ```python
    import numpy as np
    import keras_masknet
    from keras_masknet.callbacks import non_finite_variables

    block = keras_masknet.MaskBlock(output_size=4, aggregation_size=3)
    block.build((None, 5))
    assert non_finite_variables(block) == []
    block.hidden.bias.assign(np.array([0.0, np.nan, 0.0, 0.0], "float32"))
    assert non_finite_variables(block) == ["mask_block/hidden/bias"]
    ```
    """
    if hasattr(variables, "variables") and not isinstance(
        variables, (list, tuple)
    ):
        variables = variables.variables
    floats = [v for v in variables if _is_float(v)]
    if not floats:
        return []
    finite = ops.stack([ops.all(ops.isfinite(v)) for v in floats])
    finite = np.asarray(ops.convert_to_numpy(finite))
    return [
        getattr(v, "path", v.name) for v, ok in zip(floats, finite) if not ok
    ]


def assert_finite(values: Any, name: str = "x") -> None:
    """Raise `NonFiniteError` if `values` hold a NaN or an Inf.

    Use it on a batch or a whole data set before training, to find the rows
    that would otherwise make the loss and, through batch normalization, the
    whole batch NaN.

    Args:
        values: an array or tensor, or a nested structure of them (a list of
            field embeddings, a dict of features). Axis 0 is the row.
        name: str. What `values` are, for the message. Defaults to `"x"`.

    Raises:
        NonFiniteError: naming the rows (along axis 0) that hold non-finite
            values, in its message and its `rows` attribute.

    Example:

    ```python
    import numpy as np
    from keras_masknet.callbacks import NonFiniteError
    from keras_masknet.callbacks import assert_finite

    x = np.ones((4, 3), "float32")
    assert_finite(x)  # nothing to report
    x[2, 1] = np.nan
    try:
        assert_finite(x, name="features")
    except NonFiniteError as error:
        assert error.rows == [2]
    else:
        raise AssertionError("not detected")
    ```
    """
    leaves = keras.tree.flatten(values)
    bad_rows: set[int] = set()
    for leaf in leaves:
        array = np.asarray(ops.convert_to_numpy(leaf))
        if array.dtype.kind in "biuOSU":
            continue  # booleans, integers, strings: always finite
        # (bfloat16 arrays have kind "V": cast them to check them)
        array = array.astype("float32", copy=False)
        if array.ndim == 0:
            if not np.isfinite(array):
                bad_rows.add(0)
            continue
        finite = np.isfinite(array.reshape(array.shape[0], -1)).all(axis=1)
        bad_rows.update(int(i) for i in np.flatnonzero(~finite))
    if bad_rows:
        rows = sorted(bad_rows)
        raise NonFiniteError(
            f"`{name}` holds NaN or Inf values in {len(rows)} row(s): "
            f"{_listed(rows)}. Received: {name} with non-finite rows {rows}",
            rows=rows,
        )


def _non_finite_logs(logs: dict[str, Any] | None) -> dict[str, float]:
    bad = {}
    for key, value in (logs or {}).items():
        try:
            array = np.asarray(ops.convert_to_numpy(value), dtype="float64")
        except (TypeError, ValueError):
            continue  # not a number: nothing to check
        if not np.isfinite(array).all():
            bad[key] = float(array.reshape(-1)[~np.isfinite(array.ravel())][0])
    return bad


class NonFiniteCheck(keras.callbacks.Callback):
    """Stops training on the first NaN or Inf, and says where it came from.

    After every `every_n_batches`-th training batch (and at the end of each
    epoch, for the validation metrics) the callback checks every value `fit`
    logs (loss, metrics) and, if `check_weights`, every float variable of
    the model and of its optimizer. On a non-finite value it raises a
    `NonFiniteError` naming the epoch, the batch, the logs and the variables
    that are non-finite, or with `on_non_finite="stop"` sets
    `model.stop_training` and warns with the same message (kept in
    `self.error`).

    Raising ends `fit` before `on_train_end`, so a
    `keras.callbacks.BackupAndRestore` backup of the last whole epoch stays on
    disk: fix the data and run the same `fit` again to resume from it.

    Checking the weights costs one pass over them per checked batch (small
    next to a training step); raise `every_n_batches` for very large models.
    The logs alone would catch a non-finite loss, not non-finite moving
    statistics of BatchNorm, which only inference uses.

    Args:
        check_weights: bool. Whether to check the model's and the optimizer's
            variables too. Defaults to `True`.
        every_n_batches: int. Check after every this many batches. Defaults
            to `1`.
        on_non_finite: str. `"raise"` to raise `NonFiniteError`, `"stop"` to
            stop training after the batch and warn. Defaults to `"raise"`.

    Example:

    ```python
    import numpy as np
    import keras
    import keras_masknet
    from keras_masknet.callbacks import NonFiniteCheck
    from keras_masknet.callbacks import NonFiniteError

    inputs = keras.Input((6,))
    net = keras_masknet.MaskNet(
        mask_blocks=[{"output_size": 4, "aggregation_size": 4}]
    )
    model = keras.Model(inputs, keras.layers.Dense(1)(net(inputs)))
    model.compile("sgd", "mse")
    x = np.ones((8, 6), "float32")
    x[5, 0] = np.nan  # batch 1 of batch size 4
    try:
        model.fit(x, np.ones((8, 1)), batch_size=4, shuffle=False,
                  callbacks=[NonFiniteCheck()], verbose=0)
    except NonFiniteError as error:
        assert (error.epoch, error.batch) == (0, 1)
        assert "loss" in error.logs
    else:
        raise AssertionError("not detected")
    ```
    """

    def __init__(
        self,
        check_weights: bool = True,
        every_n_batches: int = 1,
        on_non_finite: str = "raise",
    ) -> None:
        super().__init__()
        if not isinstance(check_weights, bool):
            raise TypeError(
                "`check_weights` must be a bool. "
                f"Received: check_weights={check_weights!r}"
            )
        if isinstance(every_n_batches, bool) or not isinstance(
            every_n_batches, int
        ):
            raise TypeError(
                "`every_n_batches` must be a positive integer. "
                f"Received: every_n_batches={every_n_batches!r}"
            )
        if every_n_batches < 1:
            raise ValueError(
                "`every_n_batches` must be a positive integer. "
                f"Received: every_n_batches={every_n_batches!r}"
            )
        if not isinstance(on_non_finite, str) or (
            on_non_finite not in ON_NON_FINITE
        ):
            raise ValueError(
                f"`on_non_finite` must be one of {list(ON_NON_FINITE)}. "
                f"Received: on_non_finite={on_non_finite!r}"
            )
        self.check_weights = check_weights
        self.every_n_batches = every_n_batches
        self.on_non_finite = on_non_finite
        self.error: NonFiniteError | None = None
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        self._epoch = epoch

    def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
        if (batch + 1) % self.every_n_batches == 0:
            self._check(batch, logs)

    def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
        self._check(None, logs)

    def _variables(self) -> list[Any]:
        variables = list(self.model.variables)
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and getattr(optimizer, "built", True):
            variables += list(optimizer.variables)
        return variables

    def _check(self, batch: int | None, logs: Any) -> None:
        if self.error is not None:
            return
        bad_logs = _non_finite_logs(logs)
        bad_weights = []
        if self.check_weights:
            bad_weights = non_finite_variables(self._variables())
        if not bad_logs and not bad_weights:
            return
        where = f"epoch {self._epoch}" + (
            f", batch {batch}" if batch is not None else " (end)"
        )
        parts = []
        if bad_logs:
            logged = ", ".join(f"{k}={v}" for k, v in bad_logs.items())
            parts.append(f"logged values {logged}")
        if bad_weights:
            parts.append(
                f"{len(bad_weights)} variable(s): {_listed(bad_weights)}"
            )
        message = (
            f"Non-finite values (NaN or Inf) in training at {where}: "
            f"{'; '.join(parts)}. A NaN or Inf in an input row spreads to "
            "the whole batch in training: check the data with "
            "`keras_masknet.assert_finite`, then lower the learning rate or "
            "clip gradients if the data are finite."
        )
        self.error = NonFiniteError(
            message,
            epoch=self._epoch,
            batch=batch,
            logs=bad_logs,
            weights=bad_weights,
        )
        if self.on_non_finite == "raise":
            raise self.error
        self.model.stop_training = True
        warnings.warn(message, RuntimeWarning, stacklevel=2)


class ReseedEachEpoch(keras.callbacks.Callback):
    """Makes dropout's randomness a function of the seed and the epoch.

    Dropout layers (`MaskBlock(dropout_rate=...)`, `MLP(dropout=...)`) draw
    their masks from a seed state that advances with every step. Keras does
    not save that state in checkpoints, so a run resumed by
    `keras.callbacks.BackupAndRestore` (which restarts the interrupted
    epoch) draws other masks than the uninterrupted run did, and ends with
    other weights. This callback sets every seed state of the model, at the
    start of every epoch, to a value computed from `seed`, the epoch and
    the state's position in the model: each epoch's masks then depend only
    on those, whether the run was interrupted or not. It also calls
    `keras.utils.set_random_seed` with a seed computed from `seed` and the
    epoch, since some backends' dropout (PyTorch's) draws from the global
    generators: Python's, NumPy's and the backend's global random state are
    reset at every epoch too.

    Put it in `fit`'s callbacks next to `BackupAndRestore`, with the same
    `seed` in every run. Like any seed, it gives identical results only with
    the other conditions of docs/reliability.md (same backend, a fixed batch
    order, op determinism on TensorFlow).

    Args:
        seed: int. A non-negative integer.

    Example:

    ```python
    import numpy as np
    import keras
    import keras_masknet
    from keras_masknet.callbacks import ReseedEachEpoch

    inputs = keras.Input((6,))
    net = keras_masknet.MaskNet(
        mask_blocks=[{"output_size": 4, "aggregation_size": 4,
                      "dropout_rate": 0.5}]
    )
    model = keras.Model(inputs, net(inputs))
    model.compile("sgd", "mse")
    reseed = ReseedEachEpoch(seed=7)
    model.fit(np.ones((8, 6)), np.ones((8, 4)), epochs=2,
              callbacks=[reseed], verbose=0)
    assert len(reseed.seed_states()) == 1
    ```
    """

    def __init__(self, seed: int) -> None:
        super().__init__()
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise TypeError(
                "`seed` must be a non-negative integer. "
                f"Received: seed={seed!r}"
            )
        if seed < 0:
            raise ValueError(
                f"`seed` must be a non-negative integer. Received: seed={seed}"
            )
        self.seed = seed

    def seed_states(self) -> list[Any]:
        """The seed-state variables of the model's random layers."""
        return [
            v
            for v in self.model.variables
            if getattr(v, "path", v.name).split("/")[-1]
            == "seed_generator_state"
        ]

    def _derived_seed(self, *parts: int) -> int:
        # 31 bits: every backend's seed dtype holds it.
        key = "/".join(str(p) for p in (self.seed, *parts)).encode()
        return int.from_bytes(hashlib.sha256(key).digest()[:4], "big") >> 1

    def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
        # The global generators (Python, NumPy, the backend's): torch's
        # unseeded dropout draws from torch's.
        keras.utils.set_random_seed(self._derived_seed(epoch))
        for index, variable in enumerate(self.seed_states()):
            # The seed, then the counter (the second entry), from 0.
            value = np.zeros(tuple(variable.shape), "int64")
            value.reshape(-1)[0] = self._derived_seed(epoch, index)
            variable.assign(value.astype(variable.dtype))
