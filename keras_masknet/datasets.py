"""Synthetic click data with planted feature interactions.

`make_click_data` draws dense features and 0/1 click labels from a known
logistic model whose logit has a linear part and a few planted pairwise
products of features. Because the true click probability is known, the best
AUC any model can reach on the data is known too (`best_auc`), and a model
that ignores the interactions (a logistic regression, say) falls clearly
short of it: a quick check that a model such as MaskNet learns multiplicative
feature crosses.

Only NumPy is used here: no Keras, no backend.
"""

import math
from typing import Any
from typing import NamedTuple

import numpy as np


class ClickData(NamedTuple):
    """Synthetic click data and its true click probability.

    Attributes:
        x: float32 array of shape `(num_samples, num_features)`. The features.
        y: float32 array of shape `(num_samples, 1)`. The 0/1 click labels.
        probability: float32 array of shape `(num_samples, 1)`. The true click
            probability each label was drawn from.
    """

    x: np.ndarray
    y: np.ndarray
    probability: np.ndarray


class _LogitModel(NamedTuple):
    """The planted logistic model: `bias + x @ weights + interactions`."""

    weights: np.ndarray  # (num_features,)
    pairs: np.ndarray  # (num_interactions, 2), feature indices i < j
    coefficients: np.ndarray  # (num_interactions,)


def make_click_data(
    num_samples: int = 10000,
    num_features: int = 32,
    num_interactions: int = 8,
    seed: int = 0,
    *,
    linear_strength: float = 1.0,
    interaction_strength: float = 2.0,
    base_rate: float = 0.25,
) -> ClickData:
    """Generate click data with planted multiplicative feature interactions.

    The features are independent standard normal, `x ~ N(0, 1)`, and each
    label is a Bernoulli draw, `y ~ Bernoulli(p)`, with the true click
    probability

    ```
    p = sigmoid(bias + sum_i w_i * x_i + sum_k a_k * x_{i_k} * x_{j_k})
    ```

    where the `num_interactions` pairs `(i_k, j_k)`, `i_k < j_k`, are distinct
    pairs of features drawn at random, `w_i ~ N(0, 1) * linear_strength /
    sqrt(num_features)` and `a_k = +-interaction_strength /
    sqrt(num_interactions)` with a random sign. The linear term and the
    interaction term thus both have mean 0 and standard deviation
    `linear_strength` and `interaction_strength`. `bias` is then chosen so
    that the mean of `p` over the samples is `base_rate`.

    With the defaults, the labels are about 25% clicks, the best achievable
    AUC (see `best_auc`) is about 0.88 and a logistic regression on `x`
    reaches about 0.64: most of the signal is in the interactions.

    The same arguments (`seed` included) always give the same data. The
    pairs, weights and coefficients depend only on `seed`, `num_features` and
    `num_interactions`, not on `num_samples`.

    Args:
        num_samples: int. Number of samples (rows). Must be positive.
            Defaults to `10000`.
        num_features: int. Number of features (columns). Must be positive.
            Defaults to `32`.
        num_interactions: int. Number of planted feature pairs. Must be
            between 0 and `num_features * (num_features - 1) // 2`.
            Defaults to `8`.
        seed: int. Seed of the random generator. Must be non-negative.
            Defaults to `0`.
        linear_strength: float. Standard deviation of the linear term of the
            logit. Must be non-negative. Defaults to `1.0`.
        interaction_strength: float. Standard deviation of the interaction
            term of the logit. Must be non-negative. Defaults to `2.0`.
        base_rate: float. Mean click probability. Must be in `(0, 1)`.
            Defaults to `0.25`.

    Returns:
        A `ClickData` named tuple `(x, y, probability)` of float32 arrays of
        shapes `(num_samples, num_features)`, `(num_samples, 1)` and
        `(num_samples, 1)`. `probability` is strictly inside `(0, 1)` and the
        labels `y` (0 or 1) are drawn from it.

    Example:

    ```python
    from keras_masknet.datasets import best_auc
    from keras_masknet.datasets import make_click_data

    data = make_click_data(num_samples=5000, num_features=16, seed=1)
    x, y, probability = data
    assert x.shape == (5000, 16) and y.shape == probability.shape == (5000, 1)
    assert set(y.ravel().tolist()) == {0.0, 1.0}
    print(f"click rate {y.mean():.2f}, best AUC {best_auc(data):.3f}")
    ```
    """
    num_samples = _check_int("num_samples", num_samples, minimum=1)
    num_features = _check_int("num_features", num_features, minimum=1)
    max_pairs = num_features * (num_features - 1) // 2
    num_interactions = _check_int(
        "num_interactions", num_interactions, minimum=0
    )
    if num_interactions > max_pairs:
        raise ValueError(
            "`num_interactions` must be at most the number of feature pairs, "
            f"num_features * (num_features - 1) // 2 = {max_pairs}. "
            f"Received: num_interactions={num_interactions} "
            f"with num_features={num_features}"
        )
    seed = _check_int("seed", seed, minimum=0)
    linear_strength = _check_strength("linear_strength", linear_strength)
    interaction_strength = _check_strength(
        "interaction_strength", interaction_strength
    )
    base_rate = _check_base_rate(base_rate)

    # One generator; the model is drawn first, so it does not depend on
    # `num_samples`. A future variant with categorical fields can plant the
    # same kind of model on its (embedded) fields.
    rng = np.random.default_rng(seed)
    model = _plant_logit_model(
        rng,
        num_features,
        num_interactions,
        linear_strength=linear_strength,
        interaction_strength=interaction_strength,
    )
    x = rng.standard_normal((num_samples, num_features)).astype(np.float32)
    logits = _logits(model, x)
    logits += _bias_for_rate(logits, base_rate)
    probability = _sigmoid_float32(logits)
    uniform = rng.random(num_samples)
    y = (uniform < probability).astype(np.float32)
    return ClickData(
        x=x, y=y.reshape(-1, 1), probability=probability.reshape(-1, 1)
    )


def best_auc(data: ClickData) -> float:
    """The best achievable AUC on `data`: the AUC of its true probability.

    No model can rank the samples better, on average, than the true click
    probability they were drawn with, so this is the ceiling for a model's
    AUC on the same samples (up to sampling noise).

    Args:
        data: ClickData. Data from `make_click_data` (or a subset of its rows,
            e.g. a test split).

    Returns:
        The AUC (a float in `[0, 1]`) of `data.probability` against `data.y`,
        as computed by `roc_auc`.

    Example:

    ```python
    from keras_masknet.datasets import best_auc
    from keras_masknet.datasets import make_click_data

    data = make_click_data(num_samples=2000)
    assert 0.5 < best_auc(data) < 1.0
    ```
    """
    return roc_auc(data.y, data.probability)


def roc_auc(y_true: Any, scores: Any) -> float:
    """Area under the ROC curve, computed exactly from ranks.

    This is the Mann-Whitney statistic: the probability that a random
    positive sample scores higher than a random negative one, ties counting
    one half.

    ```
    auc = (sum of the ranks of the positives - P * (P + 1) / 2) / (P * N)
    ```

    with `P` positives, `N` negatives and 1-based ranks of `scores`, where tied
    scores all get the average of their ranks.

    Args:
        y_true: array-like of 0/1 (or bool) labels, any shape.
        scores: array-like of finite scores, the same number of elements as
            `y_true` (it is flattened, like `y_true`). Higher means more
            likely positive.

    Returns:
        The AUC, a float in `[0, 1]`.

    Raises:
        ValueError: if the sizes differ, a label is not 0 or 1, a score is
            not finite, or `y_true` does not hold both classes.

    Example:

    ```python
    from keras_masknet.datasets import roc_auc

    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5  # a tie counts one half
    ```
    """
    y = np.asarray(y_true).ravel()
    s = np.asarray(scores, dtype=np.float64).ravel()
    if y.shape != s.shape:
        raise ValueError(
            "`y_true` and `scores` must have the same number of elements. "
            f"Received: y_true.size={y.size}, scores.size={s.size}"
        )
    positive = y == 1
    if not np.all(positive | (y == 0)):
        raise ValueError(
            "`y_true` must hold only 0 and 1 labels. "
            f"Received: y_true with values {np.unique(y)[:10].tolist()}"
        )
    if not np.all(np.isfinite(s)):
        raise ValueError("`scores` must be finite. Received: NaN or inf")
    num_pos = int(np.count_nonzero(positive))
    num_neg = y.size - num_pos
    if num_pos == 0 or num_neg == 0:
        raise ValueError(
            "`y_true` must hold both classes to define an AUC. Received: "
            f"{num_pos} positive and {num_neg} negative labels"
        )
    # Average 1-based ranks: a value seen `count` times after `before` smaller
    # values takes ranks before + 1 ... before + count, of mean
    # before + (count + 1) / 2.
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    before = np.cumsum(counts) - counts
    ranks = before + (counts + 1) / 2.0
    rank_sum = float(np.sum(ranks[inverse.ravel()][positive]))
    return (rank_sum - num_pos * (num_pos + 1) / 2.0) / (num_pos * num_neg)


#: The categorical columns of `make_raw_click_data`: name -> number of
#: distinct values. A value is a string such as `"site_7"`.
RAW_CATEGORICAL_COLUMNS = {
    "site": 20,
    "app_category": 12,
    "device_type": 4,
    "user_segment": 50,
    "hour": 24,
    "ad_id": 1000,
}
#: The numeric columns of `make_raw_click_data`, in order.
RAW_NUMERIC_COLUMNS = (
    "bid_price",
    "user_age",
    "ad_position",
    "session_minutes",
)
#: Exponent of the Zipf-like frequencies of the categorical values: value
#: `k` (0-based) of a column is drawn with probability proportional to
#: `1 / (k + 1) ** RAW_ZIPF_EXPONENT`.
RAW_ZIPF_EXPONENT = 1.1


class RawClickData(NamedTuple):
    """Raw click data (string and numeric columns) and its true probability.

    Attributes:
        features: dict from column name to a NumPy array of shape
            `(num_samples,)`: a string array (`numpy.str_`) for each column
            of `RAW_CATEGORICAL_COLUMNS`, a float32 array for each of
            `RAW_NUMERIC_COLUMNS`, in that order.
        y: float32 array of shape `(num_samples, 1)`. The 0/1 click labels.
        probability: float32 array of shape `(num_samples, 1)`. The true click
            probability each label was drawn from.
    """

    features: dict[str, np.ndarray]
    y: np.ndarray
    probability: np.ndarray


def make_raw_click_data(
    num_samples: int = 10000,
    num_interactions: int = 8,
    seed: int = 0,
    *,
    latent_dim: int = 4,
    linear_strength: float = 1.0,
    interaction_strength: float = 2.0,
    base_rate: float = 0.2,
) -> RawClickData:
    """Generate raw click logs: string and numeric columns, planted crosses.

    The columns look like the logs a click-through-rate model is trained on:
    six categorical columns of strings (`RAW_CATEGORICAL_COLUMNS`, from 4 to
    1000 distinct values each, drawn with Zipf-like frequencies so that rare
    values of `ad_id` are often missing from a training split) and four
    skewed numeric columns (`RAW_NUMERIC_COLUMNS`). A model has to encode
    them first (string lookup or hashing, normalization), as in production.

    Each column `c` has a standardized score `z_c` and a latent vector `r_c`
    of width `latent_dim`:

    - categorical: a value `v` has a random score `b_c[v]` and a random
      latent vector `V_c[v]`; `z_c = b_c[v]`, `r_c = V_c[v]`;
    - numeric: a fixed function of the raw value that is standard normal
      (about standard normal for the integer columns), `z_c`, and
      `r_c = z_c * u_c` for a random vector `u_c`:

    ```
    column           raw value                            z
    bid_price        1.5 * exp(0.75 * n)                  log(x / 1.5) / 0.75
    user_age         clip(round(40 + 13 * n), 18, 90)     (x - 40) / 13
    ad_position      clip(geometric(0.3), 1, 10)          (3.3 - x) / 2.8
    session_minutes  exp(2 + 0.8 * n)                     (log(x) - 2) / 0.8
    ```

    with `n ~ N(0, 1)`. The true click probability is

    ```
    p = sigmoid(bias + sum_c w_c * z_c + sum_k a_k * <r_{c_k}, r_{d_k}>)
    ```

    where `w_c ~ N(0, 1) * linear_strength / sqrt(10)` (for a categorical
    column `w_c = linear_strength / sqrt(10)`), the `num_interactions` pairs
    of columns `(c_k, d_k)` are distinct pairs drawn at random among the 45,
    and `a_k = +-interaction_strength / sqrt(num_interactions)`. Latent
    entries are `N(0, 1) / latent_dim ** 0.25`, so every product
    `<r_c, r_d>` has a variance of about 1: the interaction term's standard
    deviation is about `interaction_strength`. The products are
    multiplicative feature interactions (a factorization-machine cross
    between two categorical columns, a value-dependent slope between a
    categorical and a numeric one, a plain product of two numeric ones).
    `bias` is chosen so that the mean of `p` is `base_rate`.

    With the defaults, about 20% of the labels are clicks and the best
    achievable AUC (the AUC of `probability`) is about 0.87.

    The same arguments always give the same data; the planted model (scores,
    latent vectors, pairs and coefficients) depends only on `seed`,
    `num_interactions` and `latent_dim`, not on `num_samples`.

    Args:
        num_samples: int. Number of samples (rows). Must be positive.
            Defaults to `10000`.
        num_interactions: int. Number of planted column pairs, between 0
            and 45. Defaults to `8`.
        seed: int. Seed of the random generator. Must be non-negative.
            Defaults to `0`.
        latent_dim: int. Width of the latent vectors. Must be positive.
            Defaults to `4`.
        linear_strength: float. Standard deviation (about) of the linear
            term of the logit. Must be non-negative. Defaults to `1.0`.
        interaction_strength: float. Standard deviation (about) of the
            interaction term of the logit. Must be non-negative.
            Defaults to `2.0`.
        base_rate: float. Mean click probability. Must be in `(0, 1)`.
            Defaults to `0.2`.

    Returns:
        A `RawClickData` named tuple `(features, y, probability)`: a dict of
        column arrays of shape `(num_samples,)`, and float32 arrays of shape
        `(num_samples, 1)`.

    Example:

    ```python
    from keras_masknet.datasets import make_raw_click_data
    from keras_masknet.datasets import roc_auc

    data = make_raw_click_data(num_samples=2000, seed=1)
    print(sorted(data.features))
    assert data.features["site"].dtype.kind == "U"  # strings
    assert str(data.features["site"][0]).startswith("site_")
    assert data.features["bid_price"].dtype == "float32"
    assert data.y.shape == data.probability.shape == (2000, 1)
    print(f"best AUC {roc_auc(data.y, data.probability):.3f}")
    ```
    """
    num_samples = _check_int("num_samples", num_samples, minimum=1)
    columns = list(RAW_CATEGORICAL_COLUMNS) + list(RAW_NUMERIC_COLUMNS)
    max_pairs = len(columns) * (len(columns) - 1) // 2
    num_interactions = _check_int(
        "num_interactions", num_interactions, minimum=0
    )
    if num_interactions > max_pairs:
        raise ValueError(
            f"`num_interactions` must be at most {max_pairs}, the number of "
            f"pairs of the {len(columns)} columns. "
            f"Received: num_interactions={num_interactions}"
        )
    seed = _check_int("seed", seed, minimum=0)
    latent_dim = _check_int("latent_dim", latent_dim, minimum=1)
    linear_strength = _check_strength("linear_strength", linear_strength)
    interaction_strength = _check_strength(
        "interaction_strength", interaction_strength
    )
    base_rate = _check_base_rate(base_rate)

    # The planted model first, so that it does not depend on num_samples.
    rng = np.random.default_rng(seed)
    latent_scale = latent_dim**-0.25
    scores, latents, weights = {}, {}, {}
    for name in columns:
        if name in RAW_CATEGORICAL_COLUMNS:
            size = RAW_CATEGORICAL_COLUMNS[name]
            scores[name] = rng.standard_normal(size)
            latents[name] = rng.standard_normal((size, latent_dim))
            weights[name] = 1.0
        else:
            latents[name] = rng.standard_normal(latent_dim)
            weights[name] = rng.standard_normal()
        latents[name] *= latent_scale
    pairs = _unrank_pairs(
        rng.choice(max_pairs, size=num_interactions, replace=False),
        len(columns),
    )
    signs = rng.choice(np.array([-1.0, 1.0]), size=num_interactions)
    coefficients = signs * (
        interaction_strength / math.sqrt(max(num_interactions, 1))
    )

    # The samples.
    features: dict[str, np.ndarray] = {}
    z: dict[str, np.ndarray] = {}
    r: dict[str, np.ndarray] = {}
    for name, size in RAW_CATEGORICAL_COLUMNS.items():
        frequency = 1.0 / np.arange(1, size + 1) ** RAW_ZIPF_EXPONENT
        index = rng.choice(
            size, size=num_samples, p=frequency / frequency.sum()
        )
        features[name] = np.array([f"{name}_{k}" for k in range(size)])[index]
        z[name] = scores[name][index]
        r[name] = latents[name][index]
    n = rng.standard_normal((3, num_samples))
    bid_price = (1.5 * np.exp(0.75 * n[0])).astype(np.float32)
    user_age = np.clip(np.round(40.0 + 13.0 * n[1]), 18, 90)
    ad_position = np.clip(rng.geometric(0.3, size=num_samples), 1, 10)
    session_minutes = np.exp(2.0 + 0.8 * n[2]).astype(np.float32)
    raw = {
        "bid_price": bid_price,
        "user_age": user_age.astype(np.float32),
        "ad_position": ad_position.astype(np.float32),
        "session_minutes": session_minutes,
    }
    standardized = {
        "bid_price": np.log(bid_price / 1.5) / 0.75,
        "user_age": (user_age - 40.0) / 13.0,
        "ad_position": (3.3 - ad_position) / 2.8,
        "session_minutes": (np.log(session_minutes) - 2.0) / 0.8,
    }
    for name in RAW_NUMERIC_COLUMNS:
        features[name] = raw[name]
        z[name] = standardized[name].astype(np.float64)
        r[name] = z[name][:, None] * latents[name][None, :]

    logits: np.ndarray = np.asarray(
        sum(weights[name] * z[name] for name in columns)
    )
    logits = logits * (linear_strength / math.sqrt(len(columns)))
    for (i, j), a in zip(pairs, coefficients):
        logits = logits + a * np.sum(r[columns[i]] * r[columns[j]], axis=1)
    logits = logits + _bias_for_rate(logits, base_rate)
    probability = _sigmoid_float32(logits)
    y = (rng.random(num_samples) < probability).astype(np.float32)
    return RawClickData(
        features=features,
        y=y.reshape(-1, 1),
        probability=probability.reshape(-1, 1),
    )


def _plant_logit_model(
    rng: np.random.Generator,
    num_features: int,
    num_interactions: int,
    *,
    linear_strength: float,
    interaction_strength: float,
) -> _LogitModel:
    """Draws the weights, the distinct pairs and their coefficients."""
    weights = rng.standard_normal(num_features)
    weights *= linear_strength / math.sqrt(num_features)
    num_pairs = num_features * (num_features - 1) // 2
    pairs = _unrank_pairs(
        rng.choice(num_pairs, size=num_interactions, replace=False),
        num_features,
    )
    signs = rng.choice(np.array([-1.0, 1.0]), size=num_interactions)
    coefficients = signs * (
        interaction_strength / math.sqrt(max(num_interactions, 1))
    )
    return _LogitModel(weights, pairs, coefficients)


def _unrank_pairs(indices: np.ndarray, num_features: int) -> np.ndarray:
    """Pairs `(i, j)`, `i < j`, at `indices` in the row-major list of pairs."""
    indices = np.asarray(indices, dtype=np.int64)
    # Row i holds the pairs (i, i + 1) ... (i, num_features - 1).
    row_sizes = np.arange(num_features - 1, 0, -1, dtype=np.int64)
    row_ends = np.cumsum(row_sizes)
    i = np.searchsorted(row_ends, indices, side="right")
    row_starts = row_ends - row_sizes
    j = indices - row_starts[i] + i + 1
    return np.stack([i, j], axis=-1).astype(np.int64).reshape(-1, 2)


def _logits(model: _LogitModel, x: np.ndarray) -> np.ndarray:
    """The logit without the bias, in float64, of shape `(num_samples,)`."""
    x = x.astype(np.float64)
    logits: np.ndarray = x @ model.weights
    for (i, j), a in zip(model.pairs, model.coefficients):
        logits += a * x[:, i] * x[:, j]
    return logits


def _bias_for_rate(logits: np.ndarray, base_rate: float) -> float:
    """The bias `b` with `mean(sigmoid(logits + b)) == base_rate`.

    The mean is increasing in `b`, so bisection finds it.
    """
    low, high = -50.0 - logits.max(), 50.0 - logits.min()
    for _ in range(64):
        mid = 0.5 * (low + high)
        if np.mean(_sigmoid(logits + mid)) < base_rate:
            low = mid
        else:
            high = mid
    return float(0.5 * (low + high))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    # Stable for large |z|: exp of a non-positive number only.
    e = np.exp(-np.abs(z))
    out: np.ndarray = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
    return out


def _sigmoid_float32(z: np.ndarray) -> np.ndarray:
    """Sigmoid rounded to float32 and kept strictly inside `(0, 1)`."""
    p = _sigmoid(z).astype(np.float32)
    tiny = np.finfo(np.float32).tiny
    return np.clip(p, tiny, np.nextafter(np.float32(1), np.float32(0)))


def _check_int(name: str, value: Any, minimum: int) -> int:
    kind = "a positive integer" if minimum == 1 else "a non-negative integer"
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(
            f"`{name}` must be {kind}. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if value < minimum:
        raise ValueError(f"`{name}` must be {kind}. Received: {name}={value!r}")
    return int(value)


def _check_strength(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            f"`{name}` must be a non-negative finite number. "
            f"Received: {name}={value!r} of type {type(value).__name__}"
        )
    if not math.isfinite(value) or value < 0:
        raise ValueError(
            f"`{name}` must be a non-negative finite number. "
            f"Received: {name}={value!r}"
        )
    return float(value)


def _check_base_rate(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(
            "`base_rate` must be a number in (0, 1). "
            f"Received: base_rate={value!r} of type {type(value).__name__}"
        )
    if not (0.0 < value < 1.0):
        raise ValueError(
            "`base_rate` must be a number in (0, 1). "
            f"Received: base_rate={value!r}"
        )
    return float(value)
