"""Tests of the synthetic click data (`keras_masknet.datasets`): NumPy only."""

import itertools
import math

import numpy as np
import pytest

from keras_masknet.datasets import RAW_CATEGORICAL_COLUMNS
from keras_masknet.datasets import RAW_NUMERIC_COLUMNS
from keras_masknet.datasets import ClickData
from keras_masknet.datasets import RawClickData
from keras_masknet.datasets import best_auc
from keras_masknet.datasets import make_click_data
from keras_masknet.datasets import make_raw_click_data
from keras_masknet.datasets import roc_auc


def _logit(p: np.ndarray) -> np.ndarray:
    p = p.astype(np.float64)
    return np.log(p) - np.log1p(-p)


def _logistic_regression_auc(x: np.ndarray, y: np.ndarray) -> float:
    """In-sample AUC of a logistic regression on `x`, fit by Newton steps."""
    features = np.concatenate([np.ones((len(x), 1)), x], axis=1)
    features = features.astype(np.float64)
    labels = y.ravel().astype(np.float64)
    w = np.zeros(features.shape[1])
    for _ in range(12):
        p = 1.0 / (1.0 + np.exp(-features @ w))
        gradient = features.T @ (p - labels)
        hessian = (features * (p * (1.0 - p))[:, None]).T @ features
        w -= np.linalg.solve(hessian + 1e-6 * np.eye(len(w)), gradient)
    return roc_auc(labels, features @ w)


def _brute_force_auc(y: np.ndarray, s: np.ndarray) -> float:
    pos = s[y == 1]
    neg = s[y == 0]
    wins = [1.0 if a > b else 0.5 if a == b else 0.0 for a in pos for b in neg]
    return float(np.mean(wins))


# make_click_data ------------------------------------------------------------


@pytest.mark.parametrize(
    "num_samples, num_features, num_interactions",
    [(10000, 32, 8), (7, 5, 10), (3, 1, 0), (100, 2, 1)],
)
def test_shapes_and_dtypes(num_samples, num_features, num_interactions):
    data = make_click_data(num_samples, num_features, num_interactions)
    assert isinstance(data, ClickData)
    x, y, probability = data
    assert x.shape == (num_samples, num_features)
    assert y.shape == (num_samples, 1)
    assert probability.shape == (num_samples, 1)
    for array in data:
        assert array.dtype == np.float32


def test_defaults():
    data = make_click_data()
    assert data.x.shape == (10000, 32)
    np.testing.assert_array_equal(data.x, make_click_data(seed=0).x)


def test_same_seed_same_data_other_seed_other_data():
    a = make_click_data(2000, seed=3)
    b = make_click_data(2000, seed=3)
    for got, want in zip(a, b):
        np.testing.assert_array_equal(got, want)
    c = make_click_data(2000, seed=4)
    assert not np.array_equal(a.x, c.x)
    assert not np.array_equal(a.probability, c.probability)


def test_planted_model_does_not_depend_on_num_samples():
    small = make_click_data(500, seed=5)
    large = make_click_data(3000, seed=5)
    # The same features, and logits that differ by the bias alone.
    np.testing.assert_array_equal(small.x, large.x[:500])
    shift = _logit(small.probability) - _logit(large.probability[:500])
    np.testing.assert_allclose(shift, np.median(shift), atol=1e-4)


def test_labels_and_probability():
    data = make_click_data(20000, seed=1)
    assert set(np.unique(data.y).tolist()) == {0.0, 1.0}
    assert np.all(data.probability > 0) and np.all(data.probability < 1)
    # The bias puts the mean probability at `base_rate`; labels follow it.
    assert float(np.mean(data.probability)) == pytest.approx(0.25, abs=1e-4)
    assert float(np.mean(data.y)) == pytest.approx(0.25, abs=0.015)
    # The labels are drawn from the probability: calibrated per decile.
    p = data.probability.ravel()
    y = data.y.ravel()
    edges = np.quantile(p, np.linspace(0, 1, 11))
    for low, high in zip(edges[:-1], edges[1:]):
        chosen = (p >= low) & (p < high)
        assert np.mean(y[chosen]) == pytest.approx(np.mean(p[chosen]), abs=0.04)


@pytest.mark.parametrize("base_rate", [0.03, 0.5, 0.9])
def test_base_rate(base_rate):
    data = make_click_data(20000, base_rate=base_rate, seed=2)
    assert float(np.mean(data.probability)) == pytest.approx(
        base_rate, abs=1e-4
    )
    assert float(np.mean(data.y)) == pytest.approx(base_rate, abs=0.015)


@pytest.mark.parametrize(
    "num_interactions, linear_strength, interaction_strength",
    [(8, 1.0, 2.0), (28, 0.5, 3.0), (3, 0.0, 1.0), (0, 1.5, 2.0)],
)
def test_logit_is_bias_plus_linear_plus_planted_products(
    num_interactions, linear_strength, interaction_strength
):
    """The logit is exactly a linear function of x and of x_i * x_j."""
    num_features = 8
    data = make_click_data(
        3000,
        num_features,
        num_interactions,
        seed=7,
        linear_strength=linear_strength,
        interaction_strength=interaction_strength,
    )
    x = data.x.astype(np.float64)
    pairs = list(itertools.combinations(range(num_features), 2))
    products = np.stack([x[:, i] * x[:, j] for i, j in pairs], axis=1)
    design = np.concatenate([np.ones((len(x), 1)), x, products], axis=1)
    # Leave out the samples whose float32 probability is too close to 0/1
    # for an accurate logit.
    p = data.probability.ravel()
    keep = (p > 1e-4) & (p < 1 - 1e-4)
    logit = _logit(p)
    coefficients, *_ = np.linalg.lstsq(design[keep], logit[keep], rcond=None)
    np.testing.assert_allclose(
        design[keep] @ coefficients, logit[keep], atol=1e-3
    )
    product_coefficients = coefficients[1 + num_features :]
    planted = np.abs(product_coefficients) > 1e-2
    assert np.count_nonzero(planted) == num_interactions
    if num_interactions:
        np.testing.assert_allclose(
            np.abs(product_coefficients[planted]),
            interaction_strength / math.sqrt(num_interactions),
            rtol=1e-3,
        )
    linear = coefficients[1 : 1 + num_features]
    if linear_strength == 0:
        np.testing.assert_allclose(linear, 0.0, atol=1e-3)
    else:
        assert np.all(np.abs(linear) < 5 * linear_strength)
        assert np.any(np.abs(linear) > 1e-2)


def test_interactions_matter_a_linear_model_falls_short():
    data = make_click_data(20000, seed=0)
    best = best_auc(data)
    linear = _logistic_regression_auc(data.x, data.y)
    assert 0.82 < best < 0.93
    assert 0.55 < linear < best - 0.15


def test_without_interactions_a_linear_model_is_best():
    """The control of the test above: the same fit is near the best AUC."""
    data = make_click_data(20000, num_interactions=0, seed=0)
    linear = _logistic_regression_auc(data.x, data.y)
    assert linear == pytest.approx(best_auc(data), abs=0.01)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"num_samples": 0},
            ValueError,
            "`num_samples` must be a positive integer. Received: num_samples=0",
        ),
        (
            {"num_samples": 10.0},
            TypeError,
            "`num_samples` must be a positive integer. "
            "Received: num_samples=10.0 of type float",
        ),
        (
            {"num_features": -3},
            ValueError,
            "`num_features` must be a positive integer. "
            "Received: num_features=-3",
        ),
        (
            {"num_features": True},
            TypeError,
            "`num_features` must be a positive integer. "
            "Received: num_features=True of type bool",
        ),
        (
            {"num_interactions": -1},
            ValueError,
            "`num_interactions` must be a non-negative integer. "
            "Received: num_interactions=-1",
        ),
        (
            {"num_interactions": "8"},
            TypeError,
            "`num_interactions` must be a non-negative integer. "
            "Received: num_interactions='8' of type str",
        ),
        (
            {"num_features": 8, "num_interactions": 29},
            ValueError,
            "`num_interactions` must be at most the number of feature pairs, "
            "num_features * (num_features - 1) // 2 = 28. "
            "Received: num_interactions=29 with num_features=8",
        ),
        (
            {"num_features": 1, "num_interactions": 1},
            ValueError,
            "Received: num_interactions=1 with num_features=1",
        ),
        (
            {"seed": -1},
            ValueError,
            "`seed` must be a non-negative integer. Received: seed=-1",
        ),
        (
            {"seed": None},
            TypeError,
            "`seed` must be a non-negative integer. "
            "Received: seed=None of type NoneType",
        ),
        (
            {"linear_strength": -0.5},
            ValueError,
            "`linear_strength` must be a non-negative finite number. "
            "Received: linear_strength=-0.5",
        ),
        (
            {"interaction_strength": float("nan")},
            ValueError,
            "`interaction_strength` must be a non-negative finite number. "
            "Received: interaction_strength=nan",
        ),
        (
            {"interaction_strength": "2"},
            TypeError,
            "`interaction_strength` must be a non-negative finite number. "
            "Received: interaction_strength='2' of type str",
        ),
        (
            {"base_rate": 1.0},
            ValueError,
            "`base_rate` must be a number in (0, 1). Received: base_rate=1.0",
        ),
        (
            {"base_rate": 0},
            ValueError,
            "`base_rate` must be a number in (0, 1). Received: base_rate=0",
        ),
        (
            {"base_rate": None},
            TypeError,
            "`base_rate` must be a number in (0, 1). "
            "Received: base_rate=None of type NoneType",
        ),
    ],
)
def test_invalid_arguments(kwargs, error, message):
    with pytest.raises(error) as info:
        make_click_data(**kwargs)
    assert message in str(info.value)


def test_numpy_integers_are_accepted():
    data = make_click_data(np.int64(50), np.int32(4), np.int64(6), np.int64(1))
    assert data.x.shape == (50, 4)
    # All 6 pairs of 4 features are planted, each once.
    np.testing.assert_array_equal(data.x, make_click_data(50, 4, 6, 1).x)


# roc_auc and best_auc -------------------------------------------------------


def test_roc_auc_known_values():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert roc_auc([0, 1, 0, 1], [1, 2, 3, 4]) == 0.75
    assert roc_auc([0, 0, 1], [0.0, 0.1, 0.9]) == 1.0
    assert roc_auc([1, 1, 0], [0.0, 0.1, 0.9]) == 0.0
    assert roc_auc([0, 1], [0.5, 0.5]) == 0.5
    assert roc_auc([0, 1, 1, 0], [3.0, 3.0, 3.0, 3.0]) == 0.5
    # Labels may be bools or a column, scores any shape with as many values.
    assert roc_auc(np.array([[False], [True]]), np.array([[0.2], [0.7]])) == 1


@pytest.mark.parametrize("seed", range(6))
def test_roc_auc_matches_brute_force_with_ties(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 60))
    y = rng.integers(0, 2, size=n)
    y[:2] = [0, 1]  # both classes
    # Few distinct values, so that there are many ties, across classes too.
    scores = rng.integers(0, 5, size=n) / 4.0
    assert roc_auc(y, scores) == pytest.approx(
        _brute_force_auc(y, scores), abs=1e-12
    )
    continuous = rng.normal(size=n)
    assert roc_auc(y, continuous) == pytest.approx(
        _brute_force_auc(y, continuous), abs=1e-12
    )


def test_roc_auc_is_invariant_to_monotone_transforms():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, size=500)
    scores = rng.normal(size=500) + y
    auc = roc_auc(y, scores)
    assert roc_auc(y, np.exp(scores)) == pytest.approx(auc, abs=1e-12)
    assert roc_auc(y, -scores) == pytest.approx(1 - auc, abs=1e-12)


@pytest.mark.parametrize(
    "y_true, scores, message",
    [
        ([0, 1, 1], [0.1, 0.2], "must have the same number of elements"),
        ([0, 2], [0.1, 0.2], "`y_true` must hold only 0 and 1 labels"),
        ([0.5, 1], [0.1, 0.2], "`y_true` must hold only 0 and 1 labels"),
        ([1, 1], [0.1, 0.2], "must hold both classes"),
        ([0, 0], [0.1, 0.2], "must hold both classes"),
        ([0, 1], [0.1, float("nan")], "`scores` must be finite"),
        ([0, 1], [float("inf"), 0.2], "`scores` must be finite"),
    ],
)
def test_roc_auc_invalid(y_true, scores, message):
    with pytest.raises(ValueError, match=message):
        roc_auc(y_true, scores)


def test_best_auc_is_the_auc_of_the_true_probability():
    data = make_click_data(5000, seed=9)
    assert best_auc(data) == roc_auc(data.y, data.probability)
    # On a split too, and it beats a noisy version of the probability.
    test = ClickData(*(a[-1000:] for a in data))
    noisy = test.probability + np.random.default_rng(0).normal(
        scale=0.2, size=test.probability.shape
    )
    assert best_auc(test) > roc_auc(test.y, noisy)


# make_raw_click_data ---------------------------------------------------------

RAW_COLUMNS = list(RAW_CATEGORICAL_COLUMNS) + list(RAW_NUMERIC_COLUMNS)


def _raw_design(features: dict) -> np.ndarray:
    """One-hot string columns and the documented numeric z-scores."""
    parts = [np.ones((len(features["site"]), 1))]
    for name in RAW_CATEGORICAL_COLUMNS:
        # One column per value present, but the first (the baseline).
        _, index = np.unique(features[name], return_inverse=True)
        parts.append(np.eye(index.max() + 1)[index.ravel()][:, 1:])
    f = {k: features[k].astype(np.float64) for k in RAW_NUMERIC_COLUMNS}
    parts.append(
        np.stack(
            [
                np.log(f["bid_price"] / 1.5) / 0.75,
                (f["user_age"] - 40.0) / 13.0,
                (3.3 - f["ad_position"]) / 2.8,
                (np.log(f["session_minutes"]) - 2.0) / 0.8,
            ],
            axis=1,
        )
    )
    return np.concatenate(parts, axis=1)


def test_raw_columns_dtypes_and_values():
    data = make_raw_click_data(3000, seed=2)
    assert isinstance(data, RawClickData)
    assert list(data.features) == RAW_COLUMNS
    for name, size in RAW_CATEGORICAL_COLUMNS.items():
        column = data.features[name]
        assert column.shape == (3000,) and column.dtype.kind == "U"
        allowed = {f"{name}_{k}" for k in range(size)}
        assert set(column.tolist()) <= allowed
    assert len(set(data.features["device_type"].tolist())) == 4
    for name in RAW_NUMERIC_COLUMNS:
        column = data.features[name]
        assert column.shape == (3000,) and column.dtype == np.float32
        assert np.all(np.isfinite(column))
    assert np.all(data.features["bid_price"] > 0)
    age = data.features["user_age"]
    assert age.min() >= 18 and age.max() <= 90 and np.all(age == np.round(age))
    position = data.features["ad_position"]
    assert set(np.unique(position).tolist()) <= set(range(1, 11))
    assert data.y.shape == data.probability.shape == (3000, 1)
    assert set(np.unique(data.y).tolist()) == {0.0, 1.0}


def test_raw_values_are_zipf_like():
    ad_id = make_raw_click_data(20000, seed=0).features["ad_id"]
    _, counts = np.unique(ad_id, return_counts=True)
    assert counts.max() > 50 * np.median(counts)  # a few frequent ads
    assert len(counts) < 1000  # and rare ones a split can miss


def test_raw_same_seed_same_data():
    a = make_raw_click_data(1000, seed=3)
    b = make_raw_click_data(1000, seed=3)
    c = make_raw_click_data(1000, seed=4)
    for name in RAW_COLUMNS:
        np.testing.assert_array_equal(a.features[name], b.features[name])
    np.testing.assert_array_equal(a.probability, b.probability)
    assert not np.array_equal(a.probability, c.probability)


@pytest.mark.parametrize("base_rate", [0.2, 0.05])
def test_raw_base_rate_and_calibration(base_rate):
    data = make_raw_click_data(20000, base_rate=base_rate, seed=1)
    p, y = data.probability.ravel(), data.y.ravel()
    assert float(np.mean(p)) == pytest.approx(base_rate, abs=1e-4)
    assert float(np.mean(y)) == pytest.approx(base_rate, abs=0.015)
    edges = np.quantile(p, np.linspace(0, 1, 6))
    for low, high in zip(edges[:-1], edges[1:]):
        chosen = (p >= low) & (p < high)
        assert np.mean(y[chosen]) == pytest.approx(np.mean(p[chosen]), abs=0.03)


def test_raw_logit_without_interactions_is_additive_as_documented():
    """With no planted pair, the logit is exactly linear in the one-hot
    string values and the documented numeric z-scores."""
    data = make_raw_click_data(3000, num_interactions=0, seed=5)
    design = _raw_design(data.features)
    p = data.probability.ravel()
    keep = (p > 1e-4) & (p < 1 - 1e-4)
    logit = _logit(p)
    coefficients, *_ = np.linalg.lstsq(design[keep], logit[keep], rcond=None)
    np.testing.assert_allclose(
        design[keep] @ coefficients, logit[keep], atol=2e-3
    )


def test_raw_planted_interactions_are_not_additive():
    data = make_raw_click_data(3000, seed=5)
    design = _raw_design(data.features)
    logit = _logit(data.probability.ravel())
    coefficients, *_ = np.linalg.lstsq(design, logit, rcond=None)
    residual = logit - design @ coefficients
    # The interaction term has a standard deviation of about 2.
    assert np.std(residual) > 0.8


def test_raw_best_auc_and_the_interactions_share():
    data = make_raw_click_data(20000, seed=0)
    best = roc_auc(data.y, data.probability)
    assert 0.82 < best < 0.93
    linear = make_raw_click_data(20000, num_interactions=0, seed=0)
    assert roc_auc(linear.y, linear.probability) < best - 0.1


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (
            {"num_samples": 0},
            ValueError,
            "`num_samples` must be a positive integer. Received: num_samples=0",
        ),
        (
            {"num_interactions": 46},
            ValueError,
            "`num_interactions` must be at most 45, the number of pairs of "
            "the 10 columns. Received: num_interactions=46",
        ),
        (
            {"latent_dim": 0},
            ValueError,
            "`latent_dim` must be a positive integer. Received: latent_dim=0",
        ),
        (
            {"seed": 1.5},
            TypeError,
            "`seed` must be a non-negative integer. "
            "Received: seed=1.5 of type float",
        ),
        (
            {"interaction_strength": -1.0},
            ValueError,
            "`interaction_strength` must be a non-negative finite number.",
        ),
        (
            {"base_rate": 1.5},
            ValueError,
            "`base_rate` must be a number in (0, 1). Received: base_rate=1.5",
        ),
    ],
)
def test_raw_invalid_arguments(kwargs, error, message):
    with pytest.raises(error) as info:
        make_raw_click_data(**kwargs)
    assert message in str(info.value)
