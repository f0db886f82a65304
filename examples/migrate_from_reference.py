"""Migrating from the reference: its YAML config and its trained weights.

The reference (the MaskNet of Twitter's open-sourced home-timeline ranker)
is configured by a YAML file and saves its weights as a PyTorch
`state_dict`. This script shows the whole migration, without PyTorch:

1. it writes a reference-style YAML config and reads it back: its
   `mask_net_config` mapping becomes `keras_masknet.MaskNet(**config)`;
2. it writes a reference-style checkpoint as an `.npz` file (random
   weights under the reference's key names and PyTorch's shapes, inside a
   larger model, as a trained checkpoint would hold them) and loads it with
   `keras_masknet.reference.load_reference_weights(net, weights,
   prefix="_backbone.")`;
3. it checks that the Keras layer predicts what the reference computes, with
   a NumPy re-implementation of the reference's forward pass, and that
   `keras_masknet.reference.export_reference_weights` gives the checkpoint back;
4. it saves the migrated model as a `.keras` file and reloads it.

With a real checkpoint, step 2 is
`np.savez(path, **{k: v.cpu().numpy() for k, v in state_dict.items()})` on
the PyTorch side. The default config is small; `--production` uses the
reference's production config (4 blocks of 1024, about 42.5M weights):

    KERAS_BACKEND=jax python examples/migrate_from_reference.py
    python examples/migrate_from_reference.py --production --serial

It runs unchanged on TensorFlow, JAX and PyTorch, needs PyYAML, and exits
with a non-zero status if the predictions differ.
"""

import argparse
import os
import sys
import tempfile

import keras
import numpy as np
import yaml

import keras_masknet

#: A small config shaped like the reference's: every option it has, once.
SMALL_CONFIG = """\
model:
  backbone:
    mask_net_config:
      use_parallel: true
      mask_blocks:
        - output_size: 32
          aggregation_size: 48
          reduction_factor: null
          input_layer_norm: false
        - output_size: 32
          reduction_factor: 0.75
          input_layer_norm: true
        - output_size: 16
          aggregation_size: 8
          input_layer_norm: false
      mlp:
        layer_sizes: [32, 16]
        batch_norm:
          affine: true
          momentum: 0.1
        dropout:
          rate: 0.1
        final_layer_activation: true
"""
SMALL_INPUT_DIM = 40

#: The reference's production backbone (its `local_prod.yaml`).
PRODUCTION_CONFIG = (
    """\
model:
  backbone:
    mask_net_config:
      use_parallel: true
      mask_blocks:
"""
    + 4
    * (
        """\
        - aggregation_size: 1024
          output_size: 1024
          input_layer_norm: false
"""
    )
    + """\
      mlp:
        layer_sizes: [2048]
        batch_norm: null
        dropout: null
        final_layer_activation: true
"""
)
PRODUCTION_INPUT_DIM = 2776

#: Where the backbone sits in the reference's full model.
PREFIX = "_backbone."


# A checkpoint shaped like the reference's ----------------------------------


def _aggregation(block: dict, mask_input_dim: int) -> int:
    if block.get("reduction_factor") is not None:
        return int(mask_input_dim * block["reduction_factor"])
    return block["aggregation_size"]


def write_reference_checkpoint(
    path: str, config: dict, input_dim: int, seed: int
) -> None:
    """Random weights under the reference's keys and PyTorch's shapes."""
    rng = np.random.default_rng(seed)

    def linear(weights, key, fan_in, fan_out):
        limit = np.sqrt(6.0 / (fan_in + fan_out))  # Xavier-uniform
        weights[f"{key}.weight"] = rng.uniform(-limit, limit, (fan_out, fan_in))
        weights[f"{key}.bias"] = rng.normal(0, 0.1, fan_out)

    def norm(weights, key, width):  # as trained: not exactly 1 and 0
        weights[f"{key}.weight"] = rng.normal(1.0, 0.1, width)
        weights[f"{key}.bias"] = rng.normal(0.0, 0.1, width)

    weights = {}
    width = input_dim
    outputs = []
    for i, block in enumerate(config["mask_blocks"]):
        key = f"{PREFIX}_mask_blocks.{i}."
        net_dim = input_dim if config["use_parallel"] else width
        aggregation = _aggregation(block, input_dim)
        if block.get("input_layer_norm"):
            norm(weights, f"{key}_input_layer_norm", net_dim)
        linear(weights, f"{key}_mask_layer.0", input_dim, aggregation)
        linear(weights, f"{key}_mask_layer.2", aggregation, net_dim)
        linear(weights, f"{key}_hidden_layer", net_dim, block["output_size"])
        norm(weights, f"{key}_layer_norm", block["output_size"])
        width = block["output_size"]
        outputs.append(width)
    width = sum(outputs) if config["use_parallel"] else width
    mlp = config.get("mlp")
    if mlp:
        index = 0
        for size in mlp["layer_sizes"][:-1]:
            linear(
                weights, f"{PREFIX}_dense_layers.layers.{index}", width, size
            )
            index += 1
            if mlp.get("batch_norm"):
                key = f"{PREFIX}_dense_layers.layers.{index}"
                norm(weights, key, size)
                weights[f"{key}.running_mean"] = rng.normal(0, 0.5, size)
                weights[f"{key}.running_var"] = rng.uniform(0.5, 2.0, size)
                weights[f"{key}.num_batches_tracked"] = np.int64(1000)
                index += 1
            index += 1  # ReLU
            if mlp.get("dropout"):
                index += 1
            width = size
        key = f"{PREFIX}_dense_layers.layers.{index}"
        linear(weights, key, width, mlp["layer_sizes"][-1])
    # Other parts of the full model, which the loader skips by prefix.
    weights["_embedding_bags.0.weight"] = rng.normal(size=(100, 16))
    weights["_task_heads.0.weight"] = rng.normal(size=(1, 64))
    np.savez(path, **{k: np.asarray(v, np.float32) for k, v in weights.items()})


# The reference's forward pass, in NumPy (inference mode) -------------------


def _layer_norm(x, weights, key):
    mean = x.mean(axis=-1, keepdims=True)
    variance = x.var(axis=-1, keepdims=True)  # biased, like PyTorch
    normed = (x - mean) / np.sqrt(variance + 1e-5)
    return normed * weights[f"{key}.weight"] + weights[f"{key}.bias"]


def _linear(x, weights, key):
    return x @ weights[f"{key}.weight"].T + weights[f"{key}.bias"]


def reference_forward(weights: dict, config: dict, x: np.ndarray):
    """What the reference computes for `x` (float64, inference mode)."""
    weights = {k: np.asarray(v, np.float64) for k, v in weights.items()}
    outputs = []
    net = x
    for i, block in enumerate(config["mask_blocks"]):
        key = f"{PREFIX}_mask_blocks.{i}."
        masked = x if config["use_parallel"] else net
        if block.get("input_layer_norm"):
            masked = _layer_norm(masked, weights, f"{key}_input_layer_norm")
        hidden = np.maximum(_linear(x, weights, f"{key}_mask_layer.0"), 0)
        mask = _linear(hidden, weights, f"{key}_mask_layer.2")
        net = _linear(masked * mask, weights, f"{key}_hidden_layer")
        net = _layer_norm(net, weights, f"{key}_layer_norm")
        outputs.append(net)
    net = np.concatenate(outputs, axis=-1) if config["use_parallel"] else net
    mlp = config.get("mlp")
    if not mlp:
        return net
    index = 0
    for _ in mlp["layer_sizes"][:-1]:
        net = _linear(net, weights, f"{PREFIX}_dense_layers.layers.{index}")
        index += 1
        if mlp.get("batch_norm"):
            key = f"{PREFIX}_dense_layers.layers.{index}"
            net = (net - weights[f"{key}.running_mean"]) / np.sqrt(
                weights[f"{key}.running_var"] + 1e-5
            )
            net = net * weights[f"{key}.weight"] + weights[f"{key}.bias"]
            index += 1
        net = np.maximum(net, 0)
        index += 1
        if mlp.get("dropout"):
            index += 1  # identity in inference
    net = _linear(net, weights, f"{PREFIX}_dense_layers.layers.{index}")
    if mlp.get("final_layer_activation"):
        net = np.maximum(net, 0)
    return net


# The migration ---------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--production",
        action="store_true",
        help="use the reference's production config (42.5M weights)",
    )
    parser.add_argument(
        "--serial",
        action="store_true",
        help="set use_parallel: false in the config (serial MaskNet)",
    )
    parser.add_argument(
        "--batch", type=int, default=64, help="rows to predict and compare"
    )
    parser.add_argument(
        "--output",
        default=None,
        help="where to save the migrated model (a .keras file); defaults to "
        "a temporary directory, like the config and the checkpoint",
    )
    parser.add_argument("--seed", type=int, default=0, help="random seed")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    print(f"Keras {keras.__version__}, backend: {keras.backend.backend()}")
    text = PRODUCTION_CONFIG if args.production else SMALL_CONFIG
    input_dim = PRODUCTION_INPUT_DIM if args.production else SMALL_INPUT_DIM
    if args.serial:
        text = text.replace("use_parallel: true", "use_parallel: false")

    with tempfile.TemporaryDirectory() as tmp:
        # 1. The reference's config file, read as the reference reads it.
        config_path = os.path.join(tmp, "config.yaml")
        with open(config_path, "w") as f:
            f.write(text)
        with open(config_path) as f:
            config = yaml.safe_load(f)["model"]["backbone"]["mask_net_config"]
        net = keras_masknet.MaskNet(**config, name="masknet")
        net.build((None, input_dim))
        print(
            f"Built {'parallel' if net.use_parallel else 'serial'} MaskNet "
            f"from {config_path}: {len(net.mask_block_layers)} blocks, "
            f"{net.count_params()} weights, input width {input_dim}."
        )

        # 2. The reference's weights, from a checkpoint saved as .npz.
        checkpoint = os.path.join(tmp, "reference_checkpoint.npz")
        write_reference_checkpoint(checkpoint, config, input_dim, args.seed)
        with np.load(checkpoint) as npz:
            weights = {key: npz[key] for key in npz.files}
        keras_masknet.reference.load_reference_weights(
            net, weights, prefix=PREFIX
        )
        count = len(keras_masknet.reference.export_reference_weights(net))
        print(
            f"Loaded {count} "
            f"arrays of {checkpoint} (prefix {PREFIX!r}; the "
            f"{sum(not k.startswith(PREFIX) for k in weights)} keys of other "
            "parts of the model are skipped)."
        )

        # 3. The same predictions as the reference, and the same weights back.
        x = np.random.default_rng(args.seed).normal(
            size=(args.batch, input_dim)
        )
        got = keras.ops.convert_to_numpy(net(x.astype("float32")))
        want = reference_forward(weights, config, x.astype("float32"))
        error = float(np.max(np.abs(got - want)) / max(1.0, np.abs(want).max()))
        print(
            f"Predictions of {args.batch} rows: max relative difference to "
            f"the reference's forward pass: {error:.2e}"
        )
        exported = keras_masknet.reference.export_reference_weights(net)
        same = all(
            np.array_equal(array, weights[PREFIX + key])
            for key, array in exported.items()
        )
        if error > 2e-5 or not same:
            print("FAILED: the migrated MaskNet differs from the reference.")
            return 1
        print(
            "Exported weights equal the checkpoint's: the migration is exact."
        )

        # 4. Saved the Keras way, and reloaded.
        inputs = keras.Input(shape=(input_dim,))
        model = keras.Model(inputs, net(inputs))
        path = args.output or os.path.join(tmp, "migrated_masknet.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        again = reloaded.predict(x.astype("float32"), verbose=0)
        if not np.allclose(again, got, rtol=0, atol=1e-6):
            print("FAILED: the reloaded model predicts differently.")
            return 1
        print(f"Saved and reloaded {path}: identical predictions.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
