"""keras-rs beside MaskNet: DCN-v2 crosses next to the masks, ranking
metrics to judge them.

keras-rs (`pip install keras-rs`, Keras' recommenders library) and
keras-masknet are both Keras 3 and multi-backend, so their layers mix in
one model. This example:

1. generates raw click logs (`make_raw_click_data`: six string columns,
   four numeric ones, a known true click probability), encodes them (a
   vocabulary per string column from the training rows, the numbers
   standardized) and embeds each field;
2. builds two click models on the same embeddings: a parallel MaskNet
   alone, and the same MaskNet *beside* a stack of DCN-v2 cross layers,
   `keras_rs.layers.FeatureCross` (`x_{l+1} = x0 * (W x_l + b) + x_l`),
   their outputs concatenated before the logit unit;
3. trains both with log loss, `EarlyStopping` on the validation AUC;
4. judges them as a ranker would: the test impressions are cut into pages
   of `--list-size` ads, and keras-rs' ranking metrics (`NDCG@5`,
   `MeanReciprocalRank`) and ranking loss (`PairwiseLogisticLoss`, on
   the logits) score how each model orders the ads of a page, next to the
   same scores of the true click probability (the best achievable).

    KERAS_BACKEND=jax python examples/keras_rs_pipeline.py
    python examples/keras_rs_pipeline.py --samples 3000 --epochs 2  # seconds

It runs on TensorFlow, JAX and PyTorch and needs keras-rs (Python 3.11 or
later).
"""

import argparse
import sys
import time

import keras
import keras_rs
import numpy as np

import keras_masknet
from keras_masknet.datasets import RAW_CATEGORICAL_COLUMNS
from keras_masknet.datasets import RAW_NUMERIC_COLUMNS
from keras_masknet.datasets import make_raw_click_data
from keras_masknet.datasets import roc_auc


def encode(features, train_rows):
    """Strings -> indices (0: unseen in training); numbers -> standardized
    (the log-normal ones logged first)."""
    encoded, sizes = {}, {}
    for name in RAW_CATEGORICAL_COLUMNS:
        vocabulary = np.unique(features[name][train_rows])
        index = np.searchsorted(vocabulary, features[name])
        index = np.minimum(index, len(vocabulary) - 1)
        seen = vocabulary[index] == features[name]
        encoded[name] = np.where(seen, index + 1, 0).astype("int32")[:, None]
        sizes[name] = len(vocabulary) + 1
    for name in RAW_NUMERIC_COLUMNS:
        value = features[name].astype("float64")
        if name in ("bid_price", "session_minutes"):
            value = np.log(value)
        value = (value - value[train_rows].mean()) / value[train_rows].std()
        encoded[name] = value.astype("float32")[:, None]
    return encoded, sizes


def build_model(sizes, embedding_dim, width, cross_layers):
    """Field embeddings -> MaskNet [beside FeatureCross x n] -> a logit."""
    inputs, fields = {}, []
    for name, size in sizes.items():
        inputs[name] = keras.Input(shape=(1,), dtype="int32", name=name)
        fields.append(keras.layers.Embedding(size, embedding_dim)(inputs[name]))
    for name in RAW_NUMERIC_COLUMNS:
        inputs[name] = keras.Input(shape=(1,), name=name)
        value = keras.layers.Dense(embedding_dim)(inputs[name])
        fields.append(keras.layers.Reshape((1, embedding_dim))(value))
    # (batch, fields, dim): MaskNet normalizes each field on its own.
    stacked = keras.layers.Concatenate(axis=1)(fields)
    masknet = keras_masknet.MaskNet(
        mask_blocks=[{"output_size": width, "aggregation_size": width}] * 3,
        mlp={"layer_sizes": [width, width], "final_layer_activation": True},
        use_parallel=True,
        embedding_layer_norm=True,
    )
    parts = [masknet(stacked)]
    if cross_layers:
        x0 = keras.layers.Flatten()(stacked)
        cross = x0
        for _ in range(cross_layers):
            cross = keras_rs.layers.FeatureCross(projection_dim=width // 2)(
                x0, cross
            )
        parts.append(cross)
    net = parts[0] if len(parts) == 1 else keras.layers.Concatenate()(parts)
    # Logits out (the ranking loss takes logits); the sigmoid is the loss's.
    logit = keras.layers.Dense(1, name="logit")(net)
    return keras.Model(
        inputs, logit, name="masknet_fc" if cross_layers else "masknet"
    )


def ranking_scores(labels, scores, list_size):
    """keras-rs' ranking metrics and loss on pages of `list_size` rows
    (pages without a click are left out: nothing to rank)."""
    pages = len(labels) // list_size
    y = labels[: pages * list_size].reshape(pages, list_size)
    s = scores[: pages * list_size].reshape(pages, list_size)
    keep = y.sum(axis=1) > 0
    y, s = y[keep].astype("float32"), s[keep].astype("float32")
    result = {}
    for name, metric in (
        ("NDCG@5", keras_rs.metrics.NDCG(k=5, shuffle_ties=False)),
        ("MRR", keras_rs.metrics.MeanReciprocalRank(shuffle_ties=False)),
    ):
        metric.update_state(y, s)
        result[name] = float(keras.ops.convert_to_numpy(metric.result()))
    loss = keras_rs.losses.PairwiseLogisticLoss()(y, s)
    result["pairwise logistic loss"] = float(keras.ops.convert_to_numpy(loss))
    result["pages"] = int(keep.sum())
    return result


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument("--epochs", type=int, default=10, help="most epochs")
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--embedding-dim", type=int, default=8)
    parser.add_argument("--width", type=int, default=64)
    parser.add_argument("--cross-layers", type=int, default=2)
    parser.add_argument("--list-size", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    print(f"Keras {keras.__version__}, backend: {keras.backend.backend()}")
    keras.utils.set_random_seed(args.seed)
    data = make_raw_click_data(num_samples=args.samples, seed=args.seed)
    n_train, n_val = int(0.7 * args.samples), int(0.1 * args.samples)
    # Whole training batches only: JAX and XLA compile one step per shape.
    whole = n_train - n_train % args.batch_size or n_train
    rows = {
        "train": np.arange(whole),
        "validation": np.arange(n_train, n_train + n_val),
        "test": np.arange(n_train + n_val, args.samples),
    }
    x, sizes = encode(data.features, rows["train"])
    split = {k: {n: v[r] for n, v in x.items()} for k, r in rows.items()}
    y = {k: data.y[r] for k, r in rows.items()}
    y_test = y["test"].ravel()

    p = data.probability[rows["test"]].ravel().astype("float64")
    best = ranking_scores(y_test, np.log(p / (1 - p)), args.list_size)
    print(
        f"true probability: AUC {roc_auc(y_test, p):.4f}, "
        + ", ".join(f"{k} {v:.4f}" for k, v in best.items() if k != "pages")
        + f" (on {best['pages']} pages of {args.list_size} with a click)"
    )
    for cross_layers in (0, args.cross_layers):
        model = build_model(sizes, args.embedding_dim, args.width, cross_layers)
        model.compile(
            optimizer=keras.optimizers.Adam(args.learning_rate),
            loss=keras.losses.BinaryCrossentropy(from_logits=True),
            metrics=[keras.metrics.AUC(name="auc", from_logits=True)],
        )
        start = time.perf_counter()
        model.fit(
            split["train"],
            y["train"],
            validation_data=(split["validation"], y["validation"]),
            epochs=args.epochs,
            batch_size=args.batch_size,
            validation_batch_size=n_val,
            callbacks=[
                keras.callbacks.EarlyStopping(
                    monitor="val_auc",
                    mode="max",
                    patience=2,
                    restore_best_weights=True,
                )
            ],
            verbose=0,
        )
        seconds = time.perf_counter() - start
        logits = model.predict(split["test"], batch_size=len(y_test), verbose=0)
        logits = logits.ravel()
        scores = ranking_scores(y_test, logits, args.list_size)
        name = (
            f"MaskNet + {cross_layers} FeatureCross"
            if cross_layers
            else "MaskNet"
        )
        print(
            f"{name:24s}: AUC {roc_auc(y_test, logits):.4f}, "
            + ", ".join(
                f"{k} {v:.4f}" for k, v in scores.items() if k != "pages"
            )
            + f"; {model.count_params()} weights, {seconds:.1f} s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
