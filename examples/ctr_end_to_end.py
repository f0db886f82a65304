"""End to end: a click-through-rate model on raw logs, MaskNet vs a DNN.

The pipeline a recommender team runs, in miniature:

1. raw click logs: six string columns (site, ad id, ...) and four skewed
   numeric ones, with a known true click probability
   (`keras_masknet.datasets.make_raw_click_data`);
2. Keras preprocessing in a `tf.data` pipeline: `keras.utils.FeatureSpace`
   looks strings up in a vocabulary (or hashes them, for the large `ad_id`
   column) and normalizes the numbers. `tf.data` and the preprocessing run
   on every backend; only the model runs on the backend you chose;
3. one embedding per field, concatenated, then MaskNet and a sigmoid unit;
   a plain DNN of about the same size on the same embeddings as a baseline.
   keras-rs (Keras' recommenders library) has the other pieces such a
   pipeline uses, on every backend: `keras_rs.layers.FeatureCross` (DCN-v2
   crosses) and ranking metrics and losses; `examples/keras_rs_pipeline.py`
   puts them beside a MaskNet;
4. `model.fit` with a validation split and early stopping; test AUC and log
   loss of both models, next to the best achievable ones (those of the true
   probability);
5. the model and the preprocessing saved, reloaded and checked to predict
   the same. On TensorFlow, one serving model that takes the raw string
   columns is saved too; Keras models cannot take string tensors on JAX or
   PyTorch, so there the preprocessing stays in the `tf.data` pipeline.

The defaults take under a minute on a laptop CPU; pass larger sizes for a
real run:

    KERAS_BACKEND=jax python examples/ctr_end_to_end.py
    python examples/ctr_end_to_end.py --samples 500000 --epochs 20 \\
        --embedding-dim 16 --blocks 3 --block-size 256

It needs TensorFlow installed for `tf.data`, whatever the backend, and exits
with a non-zero status if a reloaded model predicts differently.
"""

import argparse
import os
import sys
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

import keras_masknet
from keras_masknet.datasets import RAW_CATEGORICAL_COLUMNS
from keras_masknet.datasets import RAW_NUMERIC_COLUMNS
from keras_masknet.datasets import make_raw_click_data
from keras_masknet.datasets import roc_auc

#: Categorical columns with too many values for a vocabulary: hashed into
#: this many bins instead.
HASHED_COLUMNS = {"ad_id": 512}


def make_feature_space() -> keras.utils.FeatureSpace:
    """Raw columns -> one integer index or one normalized float per field."""
    FS = keras.utils.FeatureSpace
    features = {}
    for name in RAW_CATEGORICAL_COLUMNS:
        if name in HASHED_COLUMNS:
            features[name] = FS.string_hashed(
                num_bins=HASHED_COLUMNS[name], output_mode="int"
            )
        else:
            # Index 0 is for values not seen while adapting (OOV).
            features[name] = FS.string_categorical(
                num_oov_indices=1, output_mode="int"
            )
    for name in RAW_NUMERIC_COLUMNS:
        features[name] = FS.float_normalized()
    return FS(features, output_mode="dict")


def field_sizes(feature_space: keras.utils.FeatureSpace) -> dict[str, int]:
    """Number of indices of each categorical field, after adapting."""
    sizes = {}
    for name in RAW_CATEGORICAL_COLUMNS:
        if name in HASHED_COLUMNS:
            sizes[name] = HASHED_COLUMNS[name]
        else:
            sizes[name] = feature_space.preprocessors[name].vocabulary_size()
    return sizes


def make_dataset(
    columns: dict[str, np.ndarray],
    labels: np.ndarray,
    feature_space: keras.utils.FeatureSpace,
    batch_size: int,
    shuffle_seed: int | None = None,
) -> tf.data.Dataset:
    """A `tf.data` pipeline of (encoded features, label) batches.

    With a `shuffle_seed` (training), the rows are shuffled and a last
    partial batch is dropped.
    """
    dataset = tf.data.Dataset.from_tensor_slices((columns, labels))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(labels), seed=shuffle_seed)
    # Training batches all of one size: JAX and XLA compile once per shape.
    dataset = dataset.batch(batch_size, drop_remainder=shuffle_seed is not None)
    dataset = dataset.map(
        lambda x, y: (feature_space(x), y),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def embed_fields(
    sizes: dict[str, int], embedding_dim: int
) -> tuple[dict[str, keras.KerasTensor], keras.KerasTensor]:
    """Model inputs (one per field) and their concatenated embeddings.

    A categorical field is embedded by an `Embedding` lookup, a numeric one
    by a `Dense` unit (its value times a learned vector, plus a bias), so
    every field becomes an `embedding_dim`-wide vector.
    """
    inputs, fields = {}, []
    for name, size in sizes.items():
        inputs[name] = keras.Input(shape=(1,), dtype="int32", name=name)
        embedding = keras.layers.Embedding(
            size, embedding_dim, name=f"{name}_embedding"
        )(inputs[name])
        fields.append(keras.layers.Flatten()(embedding))
    for name in RAW_NUMERIC_COLUMNS:
        inputs[name] = keras.Input(shape=(1,), dtype="float32", name=name)
        fields.append(
            keras.layers.Dense(embedding_dim, name=f"{name}_embedding")(
                inputs[name]
            )
        )
    # (batch, num_fields * embedding_dim): the field embeddings side by side.
    return inputs, keras.layers.Concatenate(name="fields")(fields)


def build_masknet_model(
    sizes: dict[str, int], embedding_dim: int, blocks: int, block_size: int
) -> keras.Model:
    """Field embeddings -> parallel MaskNet with an MLP head -> sigmoid."""
    inputs, embeddings = embed_fields(sizes, embedding_dim)
    backbone = keras_masknet.MaskNet(
        mask_blocks=[
            {"output_size": block_size, "aggregation_size": block_size}
        ]
        * blocks,
        mlp={
            "layer_sizes": [block_size, block_size // 2],
            "final_layer_activation": True,
        },
        use_parallel=True,
        name="masknet",
    )
    outputs = keras.layers.Dense(1, activation="sigmoid", name="click")(
        backbone(embeddings)
    )
    return keras.Model(inputs, outputs, name="ctr_masknet")


def build_dnn_model(
    sizes: dict[str, int], embedding_dim: int, width: int
) -> keras.Model:
    """The baseline: the same embeddings -> a 3-layer ReLU MLP -> sigmoid."""
    inputs, embeddings = embed_fields(sizes, embedding_dim)
    head = keras_masknet.MLP(
        layer_sizes=[width, width, width // 2],
        final_layer_activation=True,
        name="dnn",
    )
    outputs = keras.layers.Dense(1, activation="sigmoid", name="click")(
        head(embeddings)
    )
    return keras.Model(inputs, outputs, name="ctr_dnn")


def dnn_width_like(model: keras.Model, sizes, embedding_dim: int) -> int:
    """The DNN width whose model has about as many weights as `model`."""
    target = model.count_params()
    input_dim = embedding_dim * (len(sizes) + len(RAW_NUMERIC_COLUMNS))
    fixed = model.count_params() - model.get_layer("masknet").count_params()

    def count(w: int) -> int:
        return (
            fixed
            + (input_dim + 1) * w
            + (w + 1) * w
            + (w + 1) * (w // 2)
            - (model.get_layer("click").count_params())
            + (w // 2 + 1)
        )

    return min(range(2, 4096, 2), key=lambda w: abs(count(w) - target))


def log_loss(labels: np.ndarray, probability: np.ndarray) -> float:
    """Mean binary cross-entropy, in float64."""
    y = np.asarray(labels, dtype=np.float64).ravel()
    p = np.clip(np.asarray(probability, dtype=np.float64).ravel(), 1e-7, 1)
    p = np.minimum(p, 1 - 1e-7)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log1p(-p)))


def train(
    model: keras.Model,
    train_data: tf.data.Dataset,
    validation_data: tf.data.Dataset,
    epochs: int,
) -> float:
    """Fits with early stopping on the validation AUC; returns seconds."""
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=1e-3),
        loss="binary_crossentropy",
        metrics=[keras.metrics.AUC(name="auc")],
    )
    early_stopping = keras.callbacks.EarlyStopping(
        monitor="val_auc", mode="max", patience=2, restore_best_weights=True
    )
    start = time.perf_counter()
    model.fit(
        train_data,
        validation_data=validation_data,
        epochs=epochs,
        callbacks=[early_stopping],
        shuffle=False,  # the tf.data pipeline shuffles
        verbose=2,
    )
    return time.perf_counter() - start


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--samples",
        type=int,
        default=100000,
        help="number of samples: 70%% train, 10%% validation, 20%% test",
    )
    parser.add_argument("--epochs", type=int, default=10, help="most epochs")
    parser.add_argument(
        "--batch-size", type=int, default=512, help="training batch size"
    )
    parser.add_argument(
        "--embedding-dim", type=int, default=8, help="width of each field"
    )
    parser.add_argument(
        "--blocks", type=int, default=2, help="number of MaskBlocks"
    )
    parser.add_argument(
        "--block-size", type=int, default=64, help="width of each MaskBlock"
    )
    parser.add_argument(
        "--output",
        default=None,
        help="where to save the model (a .keras file); the preprocessing "
        "and, on TensorFlow, the serving model are saved beside it. "
        "Defaults to a temporary directory",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the data and the model"
    )
    args = parser.parse_args(argv)
    if args.samples < 1000:
        parser.error(f"--samples must be at least 1000, got {args.samples}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    backend = keras.backend.backend()
    print(f"Keras {keras.__version__}, backend: {backend}")
    keras.utils.set_random_seed(args.seed)

    # 1. Raw logs, split 70 / 10 / 20 into train, validation and test.
    data = make_raw_click_data(num_samples=args.samples, seed=args.seed)
    num_train = int(0.7 * args.samples)
    num_validation = int(0.1 * args.samples)
    splits = {
        "train": slice(0, num_train),
        "validation": slice(num_train, num_train + num_validation),
        "test": slice(num_train + num_validation, args.samples),
    }
    columns = {
        split: {name: array[rows] for name, array in data.features.items()}
        for split, rows in splits.items()
    }
    labels = {split: data.y[rows] for split, rows in splits.items()}
    test_probability = data.probability[splits["test"]]

    # 2. Preprocessing, learned on the training split only.
    feature_space = make_feature_space()
    feature_space.adapt(
        tf.data.Dataset.from_tensor_slices(columns["train"]).batch(4096)
    )
    sizes = field_sizes(feature_space)
    print(f"Categorical fields and their sizes: {sizes}")
    datasets = {
        split: make_dataset(
            columns[split],
            labels[split],
            feature_space,
            args.batch_size if split == "train" else 4096,
            shuffle_seed=args.seed if split == "train" else None,
        )
        for split in splits
    }

    # 3. The two models, 4. trained and evaluated the same way.
    masknet = build_masknet_model(
        sizes, args.embedding_dim, args.blocks, args.block_size
    )
    width = dnn_width_like(masknet, sizes, args.embedding_dim)
    dnn = build_dnn_model(sizes, args.embedding_dim, width)
    results = {}
    predictions = {}
    for name, model in (("MaskNet", masknet), ("DNN", dnn)):
        print(f"--- {name}: {model.count_params()} weights")
        seconds = train(
            model, datasets["train"], datasets["validation"], args.epochs
        )
        predictions[name] = model.predict(datasets["test"], verbose=0)
        results[name] = (
            roc_auc(labels["test"], predictions[name]),
            log_loss(labels["test"], predictions[name]),
            model.count_params(),
            seconds,
        )
    best = (
        roc_auc(labels["test"], test_probability),
        log_loss(labels["test"], test_probability),
    )
    print(f"\nOn {len(labels['test'])} test samples:")
    for name, (auc, loss, weights, seconds) in results.items():
        print(
            f"{name:8s} Test AUC: {auc:.4f} (best achievable: {best[0]:.4f}), "
            f"log loss: {loss:.4f} (best achievable: {best[1]:.4f}), "
            f"{weights} weights, trained in {seconds:.1f} s"
        )

    # 5. Save the model and the preprocessing, reload both, check.
    with tempfile.TemporaryDirectory() as tmp:
        path = args.output or os.path.join(tmp, "ctr_masknet.keras")
        stem = path[: -len(".keras")] if path.endswith(".keras") else path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        masknet.save(path)
        feature_space.save(f"{stem}.feature_space.keras")
        reloaded_model = keras.saving.load_model(path)
        reloaded_space = keras.saving.load_model(f"{stem}.feature_space.keras")
        reloaded_test = make_dataset(
            columns["test"], labels["test"], reloaded_space, 4096
        )
        reloaded_predictions = reloaded_model.predict(reloaded_test, verbose=0)
        try:
            np.testing.assert_allclose(
                reloaded_predictions, predictions["MaskNet"], rtol=0, atol=1e-6
            )
        except AssertionError as error:
            print(f"FAILED: the reloaded model predicts differently.\n{error}")
            return 1
        print(f"Saved and reloaded {path} and its preprocessing: same results.")

        if backend != "tensorflow":
            print(
                f"No serving model on {backend}: Keras models take string "
                "inputs only on the TensorFlow backend. Here the strings are "
                "encoded in the tf.data pipeline, by the saved FeatureSpace."
            )
            return 0
        # One model from raw columns (strings included) to the probability.
        serving = keras.Model(
            feature_space.get_inputs(),
            masknet(feature_space.get_encoded_features()),
            name="ctr_serving",
        )
        serving_path = f"{stem}.serving.keras"
        serving.save(serving_path)
        reloaded_serving = keras.saving.load_model(serving_path)
        # Raw columns in, as a serving system would send them (one column
        # of shape (batch, 1) per input).
        raw_test = tf.data.Dataset.from_tensor_slices(
            {name: array[:, None] for name, array in columns["test"].items()}
        ).batch(4096)
        serving_predictions = reloaded_serving.predict(raw_test, verbose=0)
        try:
            np.testing.assert_allclose(
                serving_predictions, predictions["MaskNet"], rtol=0, atol=1e-6
            )
        except AssertionError as error:
            print(f"FAILED: the serving model predicts differently.\n{error}")
            return 1
        print(
            f"Saved and reloaded the serving model {serving_path}: it takes "
            "the raw columns and predicts the same."
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
