"""Is MaskNet worth it? MaskNet vs a DNN and DCN-v2, tuned alike, on data
with a known best achievable AUC.

Two generated data sets from `keras_masknet.datasets`, each with a known
true click probability (so a known ceiling for the AUC):

- `dense`: `make_click_data`, 32 standard-normal features and 8 planted
  pairwise products;
- `raw`: `make_raw_click_data`, click logs with six string columns and four
  numeric ones, encoded (a vocabulary per string column, learned on the
  training rows; the numbers standardized, the log-normal ones logged) and
  fed through one embedding per field, as a CTR model sees them.

Six models, with about the same number of weights after the embeddings
(`--params`): ParaMaskNet and SerMaskNet each with the reference's block
(`LN(W (mask * x) + b)`, the library's defaults) and with the paper's
options (the `keras_masknet.presets` presets narrowed to the common width:
per-field LayerNorm of the embeddings, `ReLU(LN(W (mask * x)))`, r = 2), a
plain DNN (three ReLU layers) and DCN-v2 (three `keras_rs.layers.
FeatureCross` layers, then three ReLU layers). Every model gets the same
tuning budget: for each seed, one training run per learning rate of a small
grid, each with `keras.callbacks.EarlyStopping` on the validation AUC
(restoring the best weights); the run with the best validation AUC is the
one tested. The data are fixed (data seed 0); a seed changes the initial
weights and the order of the batches.

It writes, into `--out`: `results.json` (every run), `quality.png` (test
AUC per model, mean and range over seeds, next to the best achievable),
and Markdown fragments that the docs page includes (`*.md.txt`). Two
studies, on the dense data, look for why: `--study options` (ParaMaskNet's
options one at a time) and `--study data-size` (`--models` at several
`--sizes`, at the learning rates the comparison chose); `--replot` redraws
the chart and tables from `results.json`.

    KERAS_BACKEND=jax python examples/model_quality.py --out docs/assets/quality
    python examples/model_quality.py --small --out /tmp/quality  # seconds

It runs on TensorFlow, JAX and PyTorch, and needs keras-rs (for
`FeatureCross`) and matplotlib.
"""

import argparse
import datetime
import json
import math
import os
import platform
import sys
import time

import keras
import keras_rs
import numpy as np

import keras_masknet
from keras_masknet.datasets import RAW_CATEGORICAL_COLUMNS
from keras_masknet.datasets import RAW_NUMERIC_COLUMNS
from keras_masknet.datasets import make_click_data
from keras_masknet.datasets import make_raw_click_data
from keras_masknet.datasets import roc_auc

#: Model key -> the name the tables and the chart show.
MODELS = {
    "para_ref": "ParaMaskNet (reference block)",
    "para_paper": "ParaMaskNet (paper options)",
    "ser_ref": "SerMaskNet (reference block)",
    "ser_paper": "SerMaskNet (paper options)",
    "dnn": "DNN",
    "dcn_v2": "DCN-v2 (keras-rs FeatureCross)",
}
#: One colour per model, in the chart.
COLORS = {
    "para_ref": "#1f77b4",
    "para_paper": "#6baed6",
    "ser_ref": "#2ca02c",
    "ser_paper": "#98df8a",
    "dnn": "#7f7f7f",
    "dcn_v2": "#d62728",
}
DATASETS = {
    "dense": "Dense features (make_click_data)",
    "raw": "Click logs through embeddings (make_raw_click_data)",
}
#: Skewed (log-normal) numeric columns of the raw logs: logged, then
#: standardized.
LOG_COLUMNS = ("bid_price", "session_minutes")
#: Number of MaskBlocks, FeatureCross layers and DNN layers.
DEPTH = 3


# --------------------------------------------------------------- data


def planted_model(seed, num_features, num_interactions):
    """The planted logistic model of `make_click_data(seed=seed, ...)`.

    `make_click_data` returns the features, labels and true probability,
    not the planted pairs; they are drawn first from the seeded generator,
    so they are drawn again here the same way (for the default strengths)
    and `check_planted_model` verifies them against the true probability.

    Returns:
        `(weights, pairs, coefficients)`: the linear weights
        `(num_features,)`, the planted pairs `(num_interactions, 2)` and
        their coefficients `(num_interactions,)`.
    """
    rng = np.random.default_rng(seed)
    weights = rng.standard_normal(num_features) / math.sqrt(num_features)
    all_pairs = np.array(
        [
            (i, j)
            for i in range(num_features)
            for j in range(i + 1, num_features)
        ]
    )
    pairs = all_pairs[
        rng.choice(len(all_pairs), size=num_interactions, replace=False)
    ]
    signs = rng.choice(np.array([-1.0, 1.0]), size=num_interactions)
    coefficients = signs * 2.0 / math.sqrt(max(num_interactions, 1))
    return weights, pairs, coefficients


def true_parts(x, model):
    """The true logit's linear part `(n,)` and planted products `(n, k)`."""
    weights, pairs, _ = model
    x = x.astype(np.float64)
    products = np.stack([x[:, i] * x[:, j] for i, j in pairs], axis=1)
    return x @ weights, products


def check_planted_model(data, model):
    """Raises if `model` is not the one `data` was drawn from: the true
    logit minus the planted one must be a constant (the bias)."""
    linear, products = true_parts(data.x, model)
    planted = linear + products @ model[2]
    p = data.probability.ravel().astype(np.float64)
    keep = (p > 1e-4) & (p < 1 - 1e-4)
    offset = np.log(p[keep] / (1 - p[keep])) - planted[keep]
    if np.std(offset) > 1e-3:
        raise RuntimeError(
            "the planted model drawn again does not match make_click_data "
            f"(std of the offset {np.std(offset):.3g}): has the generator "
            "changed?"
        )


def split_rows(num_samples, batch_size):
    """70 / 10 / 20 train / validation / test rows; the training rows are
    cut to whole batches (JAX and XLA compile one step per batch shape)."""
    num_train = int(0.7 * num_samples)
    num_train -= num_train % batch_size if num_train >= batch_size else 0
    num_validation = int(0.1 * num_samples)
    start_test = int(0.7 * num_samples) + num_validation
    return (
        np.arange(num_train),
        np.arange(int(0.7 * num_samples), start_test),
        np.arange(start_test, num_samples),
    )


def take(x, rows):
    if isinstance(x, dict):
        return {name: value[rows] for name, value in x.items()}
    return x[rows]


def load_dense(num_samples, batch_size):
    data = make_click_data(num_samples=num_samples, seed=0)
    model = planted_model(0, data.x.shape[1], 8)
    check_planted_model(data, model)
    rows = split_rows(num_samples, batch_size)
    return {
        "x": data.x,
        "y": data.y,
        "probability": data.probability,
        "rows": rows,
        "planted": model,
        "num_features": data.x.shape[1],
    }


def encode_raw(features, train_rows):
    """String columns -> indices (0 for values unseen in training), numbers
    -> standardized floats (the skewed ones logged first); the statistics
    and vocabularies come from the training rows only."""
    encoded, sizes = {}, {}
    for name in RAW_CATEGORICAL_COLUMNS:
        column = features[name]
        vocabulary = np.unique(column[train_rows])
        index = np.searchsorted(vocabulary, column)
        index = np.minimum(index, len(vocabulary) - 1)
        seen = vocabulary[index] == column
        encoded[name] = np.where(seen, index + 1, 0).astype("int32")[:, None]
        sizes[name] = len(vocabulary) + 1
    for name in RAW_NUMERIC_COLUMNS:
        value = features[name].astype(np.float64)
        if name in LOG_COLUMNS:
            value = np.log(value)
        mean, std = value[train_rows].mean(), value[train_rows].std()
        encoded[name] = ((value - mean) / std).astype("float32")[:, None]
    return encoded, sizes


def load_raw(num_samples, batch_size):
    data = make_raw_click_data(num_samples=num_samples, seed=0)
    rows = split_rows(num_samples, batch_size)
    x, sizes = encode_raw(data.features, rows[0])
    return {
        "x": x,
        "y": data.y,
        "probability": data.probability,
        "rows": rows,
        "sizes": sizes,
    }


# --------------------------------------------------------------- models


def model_inputs(dataset, embedding_dim):
    """The model's inputs, its field tensor for MaskNet and the flat one.

    Dense data: one `(batch, 32)` tensor, which MaskNet takes as one field.
    Raw logs: an `Embedding` per string field, a `Dense` unit per numeric
    field (its value times a learned vector), stacked into
    `(batch, fields, dim)` for MaskNet (LN-EMB normalizes each field on
    its own) and flattened for the DNN and DCN-v2.
    """
    if "sizes" not in dataset:
        inputs = keras.Input(shape=(dataset["num_features"],), name="x")
        return inputs, inputs, inputs
    inputs, fields = {}, []
    for name, size in dataset["sizes"].items():
        inputs[name] = keras.Input(shape=(1,), dtype="int32", name=name)
        fields.append(
            keras.layers.Embedding(size, embedding_dim, name=f"emb_{name}")(
                inputs[name]
            )
        )
    for name in RAW_NUMERIC_COLUMNS:
        inputs[name] = keras.Input(shape=(1,), dtype="float32", name=name)
        value = keras.layers.Dense(embedding_dim, name=f"emb_{name}")(
            inputs[name]
        )
        fields.append(keras.layers.Reshape((1, embedding_dim))(value))
    stacked = keras.layers.Concatenate(axis=1, name="fields")(fields)
    flat = keras.layers.Flatten(name="flat")(stacked)
    return inputs, stacked, flat


def reference_block(width):
    """The reference's block (the library's defaults): `LN(W (m * x) + b)`,
    aggregation width `width`, no input LayerNorm."""
    return {
        "output_size": width,
        "aggregation_size": width,
        "input_layer_norm": False,
    }


def backbone_config(key, width):
    """The `MaskNet` arguments of a MaskNet model at width `width`."""
    if key in ("para_paper", "ser_paper"):
        name = "para_mask_net" if key == "para_paper" else "ser_mask_net"
        config = keras_masknet.presets.preset_config(name)
        for block in config["mask_blocks"]:
            block["output_size"] = width
        if config["mlp"] is not None:
            config["mlp"]["layer_sizes"] = [width] * DEPTH
        return config
    mlp = None
    if key == "para_ref":
        mlp = {"layer_sizes": [width] * DEPTH, "final_layer_activation": True}
    return {
        "mask_blocks": [reference_block(width)] * DEPTH,
        "mlp": mlp,
        "use_parallel": key == "para_ref",
    }


def build_model(key, dataset, width, embedding_dim, config_override=None):
    """Model `key` at width `width`, with a `Dense(1, sigmoid)` unit."""
    inputs, fields, flat = model_inputs(dataset, embedding_dim)
    if key in ("dnn", "dcn_v2"):
        net = flat
        if key == "dcn_v2":
            # DCN-v2, stacked: x_{l+1} = x0 * (W x_l + b) + x_l, then deep.
            for i in range(DEPTH):
                net = keras_rs.layers.FeatureCross(name=f"cross_{i}")(flat, net)
        net = keras_masknet.MLP(
            layer_sizes=[width] * DEPTH,
            final_layer_activation=True,
            name="deep",
        )(net)
    else:
        config = config_override or backbone_config(key, width)
        net = keras_masknet.MaskNet(**config, name="masknet")(fields)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="click")(net)
    return keras.Model(inputs, outputs, name=key)


def dense_params(model):
    """Weights after the embeddings (all of them on the dense data)."""
    embedding = sum(
        layer.count_params()
        for layer in model.layers
        if layer.name.startswith("emb_")
    )
    return model.count_params() - embedding


def _mlp_params(input_dim, width):
    return input_dim * width + width + (DEPTH - 1) * (width * width + width)


def _block_params(masked, mask_input, width, paper):
    """A MaskBlock's weights: the mask (two dense layers), the hidden layer
    and its LayerNorm; the paper's has an aggregation width r = 2 of the
    masked layer and no hidden bias, the reference's `width` and a bias."""
    aggregation = 2 * masked if paper else width
    mask = mask_input * aggregation + aggregation + aggregation * masked
    hidden = masked * width + (0 if paper else width)
    return mask + masked + hidden + 2 * width


def count_params(key, input_dim, width):
    """Weights after the embeddings of model `key` (the `Dense(1)` unit
    included) on a flat input of `input_dim`: `build_model` is checked
    against this."""
    d, w = input_dim, width
    paper = key.endswith("_paper")
    if key.startswith("para"):
        count = DEPTH * _block_params(d, d, w, paper)
        count += _mlp_params(DEPTH * w, w)
    elif key.startswith("ser"):
        count = _block_params(d, d, w, paper)
        count += (DEPTH - 1) * _block_params(w, d, w, paper)
    else:
        count = _mlp_params(d, w)
        if key == "dcn_v2":
            count += DEPTH * (d * d + d)
    if paper:
        count += 2 * d  # LN-EMB: a scale and an offset per input value
    return count + w + 1


def input_width(dataset, embedding_dim):
    if "sizes" not in dataset:
        return dataset["num_features"]
    return embedding_dim * (len(dataset["sizes"]) + len(RAW_NUMERIC_COLUMNS))


def width_for(key, dataset, target, embedding_dim):
    """The width whose model has closest to `target` weights after the
    embeddings (at least 2)."""
    d = input_width(dataset, embedding_dim)
    return min(
        range(2, 4097), key=lambda w: abs(count_params(key, d, w) - target)
    )


# --------------------------------------------------------------- training


def fit_one(build, dataset, learning_rate, seed, args):
    """One training run; returns the model and what it did.

    The validation split is one batch (one compiled step, one exact
    validation AUC per epoch up to Keras' 200 thresholds); early stopping
    restores the weights of the best epoch, and that epoch's validation
    AUC is the run's.
    """
    train_rows, validation_rows, _ = dataset["rows"]
    keras.backend.clear_session()
    keras.utils.set_random_seed(seed)
    model = build()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_auc",
        mode="max",
        patience=args.patience,
        restore_best_weights=True,
    )
    start = time.perf_counter()
    history = model.fit(
        take(dataset["x"], train_rows),
        dataset["y"][train_rows],
        validation_data=(
            take(dataset["x"], validation_rows),
            dataset["y"][validation_rows],
        ),
        epochs=args.epochs,
        batch_size=args.batch_size,
        validation_batch_size=len(validation_rows),
        callbacks=[early_stopping],
        verbose=0,
    )
    seconds = time.perf_counter() - start
    val_auc = [float(v) for v in history.history["val_auc"]]
    return model, {
        "learning_rate": learning_rate,
        "validation_auc": max(val_auc),
        "validation_auc_per_epoch": val_auc,
        "epochs": len(val_auc),
        "best_epoch": int(np.argmax(val_auc)) + 1,
        "fit_seconds": seconds,
    }


def logit(p):
    p = np.clip(np.asarray(p, np.float64).ravel(), 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


def decompose(prediction, dataset):
    """What a model learned of the planted logit, on the test rows.

    Least squares of the model's logit on the true linear part and the
    planted products: `linear` is the fitted coefficient of the linear part
    (1 = the true strength), `interactions` the mean of the fitted
    coefficients of the products over their true ones, and `r2` the share
    of the variance of the model's logit that the true terms explain.
    """
    test_rows = dataset["rows"][2]
    linear, products = true_parts(dataset["x"][test_rows], dataset["planted"])
    design = np.column_stack([np.ones_like(linear), linear, products])
    target = logit(prediction)
    if not target.var() > 0:  # a constant prediction: nothing learned
        keys = ("linear", "interactions", "weakest_interaction", "r2")
        return {**dict.fromkeys(keys, 0.0), "spurious_crosses": 0.0}
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    true_coefficients = dataset["planted"][2]
    # Every product of two features (and every square), planted or not:
    # the share of the logit's variance in the crosses that are not planted
    # (products of independent features are uncorrelated, so the shares
    # add up).
    x = dataset["x"][test_rows].astype(np.float64)
    i, j = np.triu_indices(x.shape[1])
    planted = {tuple(p) for p in dataset["planted"][1].tolist()}
    spurious = np.array([(a, b) not in planted for a, b in zip(i, j)])
    crosses = x[:, i] * x[:, j]
    crosses -= crosses.mean(axis=0)
    full = np.column_stack([np.ones_like(linear), x, crosses])
    full_coef, *_ = np.linalg.lstsq(full, target, rcond=None)
    spurious_part = crosses[:, spurious] @ full_coef[1 + x.shape[1] :][spurious]
    return {
        "linear": float(coef[1]),
        "interactions": float(np.mean(coef[2:] / true_coefficients)),
        "weakest_interaction": float(np.min(coef[2:] / true_coefficients)),
        "r2": float(1 - residual.var() / target.var()),
        "spurious_crosses": float(spurious_part.var() / target.var()),
    }


def run_model(key, dataset, width, args, config_override=None):
    """Every seed, every learning rate; the best validation run tested."""
    test_rows = dataset["rows"][2]
    y_test = dataset["y"][test_rows]

    def build():
        return build_model(
            key, dataset, width, args.embedding_dim, config_override
        )

    seeds = []
    for seed in range(args.seeds):
        runs, best = [], None
        for learning_rate in args.learning_rates:
            model, run = fit_one(build, dataset, learning_rate, seed, args)
            runs.append(run)
            if best is None or run["validation_auc"] > best[0]:
                best = (run["validation_auc"], run, model)
            print(
                f"  {key} seed {seed} lr {learning_rate:g}: validation AUC "
                f"{run['validation_auc']:.4f}, best epoch {run['best_epoch']}"
                f" of {run['epochs']}, {run['fit_seconds']:.1f} s",
                flush=True,
            )
        _, run, model = best
        prediction = model.predict(
            take(dataset["x"], test_rows),
            batch_size=len(test_rows),
            verbose=0,
        )
        result = {
            "seed": seed,
            "learning_rate": run["learning_rate"],
            "test_auc": roc_auc(y_test, prediction),
            "runs": runs,
        }
        if "planted" in dataset:
            result["learned"] = decompose(prediction, dataset)
        seeds.append(result)
    expected = count_params(
        key, input_width(dataset, args.embedding_dim), width
    )
    if config_override is None and dense_params(model) != expected:
        raise RuntimeError(
            f"{key}: {dense_params(model)} weights after the embeddings, "
            f"count_params says {expected}"
        )
    return {
        "name": MODELS.get(key, key),
        "width": width,
        "params": model.count_params(),
        "params_after_embeddings": dense_params(model),
        "seeds": seeds,
    }


def summarize(model):
    aucs = [s["test_auc"] for s in model["seeds"]]
    chosen = [s["runs"] for s in model["seeds"]]
    best_runs = [
        next(r for r in runs if r["learning_rate"] == s["learning_rate"])
        for runs, s in zip(chosen, model["seeds"])
    ]
    return {
        "mean": float(np.mean(aucs)),
        "min": float(np.min(aucs)),
        "max": float(np.max(aucs)),
        "fit_seconds": float(np.mean([r["fit_seconds"] for r in best_runs])),
        "tuning_seconds": float(
            sum(r["fit_seconds"] for runs in chosen for r in runs)
        ),
        "epochs": float(np.mean([r["best_epoch"] for r in best_runs])),
        "learning_rates": [s["learning_rate"] for s in model["seeds"]],
    }


# --------------------------------------------------------------- outputs


def write_tables(results, out):
    """Markdown fragments for the docs page, one per table."""
    for name, dataset in results["datasets"].items():
        best = dataset["best_auc"]
        lines = [
            "| Model | Test AUC, mean | range over seeds | gap to best "
            "| weights | width | learning rate(s) | epochs to best "
            "| seconds per fit | seconds, all runs |",
            "| --- | ---: | :---: | ---: | ---: | ---: | --- | ---: | ---: "
            "| ---: |",
        ]
        ranked = sorted(
            dataset["models"].items(), key=lambda kv: -kv[1]["summary"]["mean"]
        )
        for _, model in ranked:
            s = model["summary"]
            rates = ", ".join(f"{r:g}" for r in s["learning_rates"])
            params = f"{model['params_after_embeddings']:,}"
            embedding = model["params"] - model["params_after_embeddings"]
            if embedding:
                params += f" (+{embedding:,} emb.)"
            lines.append(
                f"| {model['name']} | {s['mean']:.4f} | "
                f"{s['min']:.4f} - {s['max']:.4f} | {best - s['mean']:.4f} | "
                f"{params} | {model['width']} | {rates} | "
                f"{s['epochs']:.1f} | {s['fit_seconds']:.1f} "
                f"| {s['tuning_seconds']:.0f} |"
            )
        lines.append(
            f"| best achievable (true probability) | {best:.4f} | | 0 "
            "| | | | | | |"
        )
        with open(os.path.join(out, f"{name}.md.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")

        # Validation AUC per learning rate, mean over seeds.
        rates = results["settings"]["learning_rates"]
        lines = [
            "| Model | " + " | ".join(f"lr {r:g}" for r in rates) + " |",
            "| --- |" + " ---: |" * len(rates),
        ]
        for _, model in ranked:
            cells = []
            for rate in rates:
                values = [
                    run["validation_auc"]
                    for s in model["seeds"]
                    for run in s["runs"]
                    if run["learning_rate"] == rate
                ]
                cells.append(f"{np.mean(values):.4f}")
            lines.append(f"| {model['name']} | " + " | ".join(cells) + " |")
        with open(os.path.join(out, f"{name}_lr.md.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")

        if name != "dense":
            continue
        lines = [
            "| Model | linear part learned | interactions learned, mean "
            "| weakest interaction | logit explained by the true terms "
            "| logit in crosses that are not planted |",
            "| --- | ---: | ---: | ---: | ---: | ---: |",
        ]
        for _, model in ranked:
            learned = [s["learned"] for s in model["seeds"]]
            cells = [
                np.mean([entry[k] for entry in learned])
                for k in (
                    "linear",
                    "interactions",
                    "weakest_interaction",
                    "r2",
                    "spurious_crosses",
                )
            ]
            lines.append(
                f"| {model['name']} | {cells[0]:.2f} | {cells[1]:.2f} | "
                f"{cells[2]:.2f} | {cells[3]:.0%} | {cells[4]:.1%} |"
            )
        with open(os.path.join(out, "dense_learned.md.txt"), "w") as f:
            f.write("\n".join(lines) + "\n")

    s = results["settings"]
    env = results["environment"]
    text = (
        f"Generated on {env['date']} by `examples/model_quality.py` "
        f"(`{env['command']}`) on {env['machine']}, Keras {env['keras']} "
        f"on the {env['backend']} backend, Python {env['python']}; the whole "
        f"run took {env['total_minutes']:.1f} minutes. Settings: "
        f"{s['dense_samples']:,} dense and {s['raw_samples']:,} raw samples "
        "(70 / 10 / 20 % train / validation / test, the training rows cut "
        f"to whole batches), {s['seeds']} seed(s), learning rates "
        f"{', '.join(f'{r:g}' for r in s['learning_rates'])} (Adam), at "
        f"most {s['epochs']} epochs with early stopping (patience "
        f"{s['patience']}) on the validation AUC, batch {s['batch_size']}, "
        f"about {s['params']:,} weights after the embeddings, embeddings of "
        f"width {s['embedding_dim']} on the raw logs."
    )
    with open(os.path.join(out, "settings.md.txt"), "w") as f:
        f.write(text + "\n")


def plot(results, path):
    """Test AUC per model: the mean (a dot) and the range over seeds (a
    bar), next to the best achievable AUC (dashed); one panel a data set."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    datasets = results["datasets"]
    fig, axes = plt.subplots(
        1,
        len(datasets),
        figsize=(5.6 * len(datasets), 0.45 * len(MODELS) + 1.6),
        squeeze=False,
    )
    for ax, (name, dataset) in zip(axes[0], datasets.items()):
        keys = list(dataset["models"])[::-1]  # first model on top
        for row, key in enumerate(keys):
            s = dataset["models"][key]["summary"]
            ax.errorbar(
                s["mean"],
                row,
                xerr=[[s["mean"] - s["min"]], [s["max"] - s["mean"]]],
                fmt="o",
                markersize=7,
                capsize=4,
                color=COLORS.get(key, "#9467bd"),
                label=MODELS.get(key, key),
            )
        best = dataset["best_auc"]
        ax.axvline(best, color="black", linestyle="--", linewidth=1)
        ax.text(
            best,
            len(keys) - 0.4,
            f"best achievable {best:.3f} ",
            ha="right",
            va="bottom",
            fontsize=8,
        )
        ax.set_yticks(range(len(keys)))
        ax.set_yticklabels([MODELS.get(k, k) for k in keys], fontsize=8)
        ax.set_ylim(-0.6, len(keys) + 0.2)
        low = min(dataset["models"][k]["summary"]["min"] for k in keys)
        ax.set_xlim(low - 0.1 * (best - low) - 0.002, best + 0.006)
        ax.set_xlabel("test AUC: mean (dot) and range over seeds (bar)")
        ax.set_title(DATASETS[name], fontsize=10)
        ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------- studies

#: The options study: ParaMaskNet with the reference's block, then one
#: option changed at a time (net-level options, block options), then all
#: of the paper's options (the preset at the same width).
OPTION_VARIANTS = {
    "reference block": ({}, {}),
    "+ LN-EMB (embedding LayerNorm)": ({"embedding_layer_norm": True}, {}),
    "+ ReLU after the block LayerNorm": ({}, {"output_activation": "relu"}),
    "no hidden bias": ({}, {"use_hidden_bias": False}),
    "aggregation r = 2 of the masked layer": (
        {},
        {
            "aggregation_size": None,
            "reduction_factor": 2.0,
            "reduction_factor_base": "inputs",
        },
    ),
    "+ input LayerNorm in every block": ({}, {"input_layer_norm": True}),
    "+ dropout 0.1 after every block": ({}, {"dropout_rate": 0.1}),
    "all the paper's options": None,
}


def variant_config(width, variant):
    """ParaMaskNet's `MaskNet` arguments for an `OPTION_VARIANTS` entry."""
    if variant is None:
        return backbone_config("para_paper", width)
    net_options, block_options = variant
    config = backbone_config("para_ref", width)
    block = {**reference_block(width), **block_options}
    block = {k: v for k, v in block.items() if v is not None}
    config["mask_blocks"] = [block] * DEPTH
    config.update(net_options)
    return config


def options_study(args, dataset):
    """Each option on its own, same tuning budget as the comparison."""
    width = width_for("para_ref", dataset, args.params, args.embedding_dim)
    variants = {}
    for label, variant in OPTION_VARIANTS.items():
        print(f"--- {label}", flush=True)
        config = variant_config(width, variant)
        variants[label] = run_model(
            "para_ref", dataset, width, args, config_override=config
        )
        variants[label]["name"] = label
        variants[label]["summary"] = summarize(variants[label])
    return {"width": width, "variants": variants}


def chosen_learning_rates(path):
    """Model key -> the learning rate the comparison chose most often on
    the dense data (the largest, on a tie), from its `results.json`."""
    if not os.path.exists(path):
        return {}
    with open(path) as f:
        models = json.load(f)["datasets"].get("dense", {}).get("models", {})
    chosen = {}
    for key, model in models.items():
        rates = model["summary"]["learning_rates"]
        chosen[key] = max(rates, key=lambda r: (rates.count(r), r))
    return chosen


def data_size_study(args, make_dataset):
    """Each model at several training sizes (the validation and test
    splits grow with it), at the learning rate the comparison chose."""
    chosen = chosen_learning_rates(os.path.join(args.out, "results.json"))
    sizes = {}
    for samples in args.sizes:
        dataset = make_dataset(samples)
        test_rows = dataset["rows"][2]
        best = roc_auc(
            dataset["y"][test_rows], dataset["probability"][test_rows]
        )
        print(f"--- {samples} samples: best {best:.4f}", flush=True)
        models = {}
        for key in args.models:
            width = width_for(key, dataset, args.params, args.embedding_dim)
            grid = args.learning_rates
            if key in chosen:
                args.learning_rates = [chosen[key]]
            try:
                models[key] = run_model(key, dataset, width, args)
            finally:
                args.learning_rates = grid
            models[key]["summary"] = summarize(models[key])
        sizes[str(samples)] = {
            "best_auc": best,
            "train_rows": int(len(dataset["rows"][0])),
            "models": models,
        }
    return {"learning_rates": chosen, "sizes": sizes}


def write_study(results, out):
    if "variants" in results:
        lines = [
            "| ParaMaskNet variant | Test AUC, mean | range over seeds "
            "| weights | learning rate(s) | epochs to best |",
            "| --- | ---: | :---: | ---: | --- | ---: |",
        ]
        for label, model in results["variants"].items():
            s = model["summary"]
            rates = ", ".join(f"{r:g}" for r in s["learning_rates"])
            lines.append(
                f"| {label} | {s['mean']:.4f} | {s['min']:.4f} - "
                f"{s['max']:.4f} | {model['params']:,} | {rates} "
                f"| {s['epochs']:.1f} |"
            )
        name = "options"
    else:
        keys = list(next(iter(results["sizes"].values()))["models"])
        lines = [
            "| training rows | best achievable | "
            + " | ".join(MODELS[k] for k in keys)
            + " |",
            "| ---: | ---: |" + " ---: |" * len(keys),
        ]
        for size in results["sizes"].values():
            cells = [
                f"{size['models'][k]['summary']['mean']:.4f}" for k in keys
            ]
            lines.append(
                f"| {size['train_rows']:,} | {size['best_auc']:.4f} | "
                + " | ".join(cells)
                + " |"
            )
        rates = ", ".join(
            f"{MODELS[k]} {r:g}"
            for k, r in results["learning_rates"].items()
            if k in keys
        )
        lines += ["", f"Learning rates: {rates or 'the grid'}."]
        name = "data_size"
    env = results["environment"]
    lines += [
        "",
        f"Generated on {env['date']} by `{env['command']}` on "
        f"{env['machine']}, Keras {env['keras']} on the {env['backend']} "
        f"backend, in {env['total_minutes']:.1f} minutes.",
    ]
    with open(os.path.join(out, f"{name}.md.txt"), "w") as f:
        f.write("\n".join(lines) + "\n")


def plot_data_size(results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(results["sizes"].values())
    rows = [size["train_rows"] for size in sizes]
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for key in sizes[0]["models"]:
        gaps = [
            size["best_auc"] - size["models"][key]["summary"]["mean"]
            for size in sizes
        ]
        low = [
            size["models"][key]["summary"]["max"]
            - size["models"][key]["summary"]["mean"]
            for size in sizes
        ]
        high = [
            size["models"][key]["summary"]["mean"]
            - size["models"][key]["summary"]["min"]
            for size in sizes
        ]
        ax.errorbar(
            rows,
            gaps,
            yerr=[low, high],
            marker="o",
            capsize=3,
            color=COLORS.get(key, "#9467bd"),
            label=MODELS.get(key, key),
        )
    ax.set_xscale("log")
    ax.set_xticks(rows)
    ax.set_xticklabels([f"{r:,}" for r in rows], fontsize=8)
    ax.minorticks_off()
    ax.set_xlabel("training rows (dense data)")
    ax.set_ylabel("gap to the best achievable test AUC")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# --------------------------------------------------------------- main


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small",
        action="store_true",
        help="a seconds-long smoke run: 4000 samples, 1 seed, 1 learning "
        "rate, 5 epochs, ~15,000 weights",
    )
    parser.add_argument("--dense-samples", type=int, default=60000)
    parser.add_argument("--raw-samples", type=int, default=100000)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--learning-rates",
        type=lambda s: [float(v) for v in s.split(",")],
        default=[1e-3, 3e-3, 1e-2, 3e-2],
        help="comma-separated grid, e.g. 1e-3,3e-3,1e-2,3e-2",
    )
    parser.add_argument("--epochs", type=int, default=30, help="most epochs")
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument(
        "--params",
        type=int,
        default=100000,
        help="weights of every model after the embeddings (about)",
    )
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument(
        "--models",
        type=lambda s: s.split(","),
        default=list(MODELS),
        help=f"comma-separated subset of {','.join(MODELS)}",
    )
    parser.add_argument(
        "--datasets",
        type=lambda s: s.split(","),
        default=list(DATASETS),
        help="comma-separated subset of dense,raw",
    )
    parser.add_argument("--out", default="quality", help="output folder")
    parser.add_argument(
        "--study",
        choices=["compare", "options", "data-size"],
        default="compare",
        help="compare: every model on both data sets (the default); "
        "options: ParaMaskNet's options one at a time (dense data); "
        "data-size: --models at several --sizes (dense data)",
    )
    parser.add_argument(
        "--replot",
        action="store_true",
        help="only redraw the chart and tables from --out/results.json",
    )
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(v) for v in s.split(",")],
        default=[30000, 60000, 120000, 240000],
        help="samples of the data-size study, comma-separated",
    )
    args = parser.parse_args(argv)
    if args.small:
        args.dense_samples = args.raw_samples = 4000
        args.seeds, args.learning_rates, args.epochs = 1, [1e-2], 5
        args.params, args.batch_size, args.embedding_dim = 15000, 256, 2
    for name in args.models:
        if name not in MODELS:
            parser.error(f"unknown model {name!r}: one of {list(MODELS)}")
    for name in args.datasets:
        if name not in DATASETS:
            parser.error(f"unknown data set {name!r}: one of {list(DATASETS)}")
    return args


def environment(argv, start):
    return {
        "date": datetime.date.today().isoformat(),
        "command": "python examples/model_quality.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.machine()} Linux, {os.cpu_count()} CPU cores",
        "backend": keras.backend.backend(),
        "keras": keras.__version__,
        "keras_rs": getattr(keras_rs, "__version__", "?"),
        "python": platform.python_version(),
        "total_minutes": (time.perf_counter() - start) / 60,
    }


def run_study(args, argv, start):
    """`--study options` or `--study data-size`, on the dense data."""
    if args.study == "options":
        dataset = load_dense(args.dense_samples, args.batch_size)
        results = options_study(args, dataset)
    else:
        results = data_size_study(
            args, lambda samples: load_dense(samples, args.batch_size)
        )
    results["settings"] = {
        k: getattr(args, k)
        for k in (
            "dense_samples",
            "sizes",
            "seeds",
            "learning_rates",
            "epochs",
            "patience",
            "batch_size",
            "params",
        )
    }
    results["environment"] = environment(argv, start)
    name = args.study.replace("-", "_")
    with open(os.path.join(args.out, f"{name}.json"), "w") as f:
        json.dump(results, f, indent=1)
    write_study(results, args.out)
    if args.study == "data-size":
        plot_data_size(results, os.path.join(args.out, "data_size.png"))
    print(f"Wrote {args.out}/{name}.json and {name}.md.txt", flush=True)
    return 0


def main(argv=None):
    args = parse_args(argv)
    backend = keras.backend.backend()
    print(f"Keras {keras.__version__}, backend: {backend}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    loaders = {
        "dense": lambda: load_dense(args.dense_samples, args.batch_size),
        "raw": lambda: load_raw(args.raw_samples, args.batch_size),
    }
    if args.replot:
        with open(os.path.join(args.out, "results.json")) as f:
            results = json.load(f)
        write_tables(results, args.out)
        plot(results, os.path.join(args.out, "quality.png"))
        for name in ("options", "data_size"):
            path = os.path.join(args.out, f"{name}.json")
            if os.path.exists(path):
                with open(path) as f:
                    study = json.load(f)
                write_study(study, args.out)
                if name == "data_size":
                    plot_data_size(study, os.path.join(args.out, f"{name}.png"))
        print(f"Redrew the charts and tables in {args.out}", flush=True)
        return 0
    if args.study != "compare":
        return run_study(args, argv, start)
    results = {"datasets": {}}
    for name in args.datasets:
        dataset = loaders[name]()
        test_rows = dataset["rows"][2]
        best = roc_auc(
            dataset["y"][test_rows], dataset["probability"][test_rows]
        )
        print(f"--- {name}: best achievable test AUC {best:.4f}", flush=True)
        models = {}
        for key in args.models:
            width = width_for(key, dataset, args.params, args.embedding_dim)
            models[key] = run_model(key, dataset, width, args)
            models[key]["summary"] = summarize(models[key])
            s = models[key]["summary"]
            print(
                f"{MODELS[key]}: test AUC {s['mean']:.4f} "
                f"[{s['min']:.4f}, {s['max']:.4f}], "
                f"{models[key]['params']} weights, width {width}",
                flush=True,
            )
        results["datasets"][name] = {
            "best_auc": best,
            "test_rows": int(len(test_rows)),
            "models": models,
        }
    results["settings"] = {
        "dense_samples": args.dense_samples,
        "raw_samples": args.raw_samples,
        "seeds": args.seeds,
        "learning_rates": args.learning_rates,
        "epochs": args.epochs,
        "patience": args.patience,
        "batch_size": args.batch_size,
        "params": args.params,
        "embedding_dim": args.embedding_dim,
    }
    results["environment"] = environment(argv, start)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    write_tables(results, args.out)
    plot(results, os.path.join(args.out, "quality.png"))
    print(
        f"Wrote {args.out}/results.json, quality.png and the tables in "
        f"{results['environment']['total_minutes']:.1f} minutes",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
