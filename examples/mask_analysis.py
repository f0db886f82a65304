"""What the masks do: the instance-guided masks of trained ParaMaskNets.

Trains two parallel MaskNets on the dense generated data
(`make_click_data`, 32 features, 8 planted pairwise products): one with
the reference's block, one with the paper's options, each of about 100,000
weights as on the "Is MaskNet worth it?" page (`examples/model_quality.py`
builds them). Then it reads every block's mask on the test rows with
`MaskNet(...)(x, return_masks=True)` and measures:

- the distribution of the mask values, block by block (the paper studies
  it), trained and at initialization;
- which input features the masks amplify: the mean |mask| of each input
  feature, for the features of a planted pair and the others;
- which pairs of features the masks cross: a block's output depends on
  `x_i * m_i(x)`, so when the mask `m_i` varies with `x_j` the block has
  built the product of `x_i` and `x_j`. The score of a pair `(i, j)` is
  the mean `|d m_i / d x_j|` (by finite differences) times the norm of
  the hidden layer's row for `x_i` (how much the masked `x_i` counts), made
  symmetric and summed over the blocks; the planted pairs should score
  highest.

It writes `masks.json`, `mask_histograms.png`, `mask_features.png` and
`masks.md.txt` (a table the docs page includes) into `--out`:

    KERAS_BACKEND=jax python examples/mask_analysis.py --out docs/assets/masks
    python examples/mask_analysis.py --small --out /tmp/masks  # seconds

It runs on TensorFlow, JAX and PyTorch; it needs matplotlib and keras-rs
(`model_quality.py`, whose model builders it uses, imports it).
"""

import argparse
import datetime
import json
import os
import platform
import sys
import time

import keras

# The models and the training loop of the model-quality page (this
# script's folder is on the path when it runs).
import model_quality as mq
import numpy as np

from keras_masknet.datasets import roc_auc

MODELS = ("para_ref", "para_paper")
#: Rows of the test split the masks are read on.
ANALYSIS_ROWS = 4000
#: Step of the finite differences.
STEP = 1e-2


def masks_of(backbone, x):
    """Every block's mask on `x`: a list of `(rows, width)` arrays."""
    out = backbone(x, return_masks=True)
    return [keras.ops.convert_to_numpy(m) for m in out["masks"]]


def cross_scores(backbone, x):
    """`(blocks, features, features)`: mean |d m_i / d x_j| times the norm
    of the hidden layer's row of feature i, per block."""
    base = masks_of(backbone, x)
    num_features = x.shape[1]
    blocks = len(base)
    derivative = np.zeros((blocks, num_features, num_features))
    for j in range(num_features):
        shifted = x.copy()
        shifted[:, j] += STEP
        for b, mask in enumerate(masks_of(backbone, shifted)):
            # Column j: how every m_i moves with x_j.
            derivative[b, :, j] = np.mean(np.abs(mask - base[b]) / STEP, axis=0)
    for b, block in enumerate(backbone.mask_block_layers):
        kernel = keras.ops.convert_to_numpy(block.hidden.kernel)
        derivative[b] *= np.linalg.norm(kernel, axis=1)[:, None]
    return derivative, base


def summarize_model(backbone, x, initial_masks, planted_pairs):
    scores, masks = cross_scores(backbone, x)
    num_features = x.shape[1]
    in_pair = np.zeros(num_features, bool)
    in_pair[planted_pairs.ravel()] = True
    pair = np.sum(scores, axis=0)
    pair = pair + pair.T  # (i, j) and (j, i) together
    i, j = np.triu_indices(num_features, k=1)
    pair_scores = pair[i, j]
    planted = np.zeros(len(i), bool)
    planted_set = {tuple(p) for p in planted_pairs.tolist()}
    planted[[k for k, p in enumerate(zip(i, j)) if p in planted_set]] = True
    top = np.argsort(-pair_scores)[: len(planted_pairs)]
    blocks = []
    for b, (mask, initial) in enumerate(zip(masks, initial_masks)):
        per_feature = np.mean(np.abs(mask), axis=0)
        blocks.append(
            {
                "block": b,
                "mean": float(np.mean(mask)),
                "std": float(np.std(mask)),
                "quantiles": {
                    str(q): float(np.quantile(mask, q))
                    for q in (0.01, 0.25, 0.5, 0.75, 0.99)
                },
                "near_zero": float(np.mean(np.abs(mask) < 0.1)),
                "negative": float(np.mean(mask < 0)),
                "std_across_rows": float(np.mean(np.std(mask, axis=0))),
                "initial_std": float(np.std(initial)),
                "initial_std_across_rows": float(
                    np.mean(np.std(initial, axis=0))
                ),
                "mean_abs_planted": float(np.mean(per_feature[in_pair])),
                "mean_abs_other": float(np.mean(per_feature[~in_pair])),
                "histogram": np.histogram(mask, bins=60)[0].tolist(),
            }
        )
    return {
        "blocks": blocks,
        "features_in_planted_pairs": np.flatnonzero(in_pair).tolist(),
        "mean_abs_mask_per_feature": np.mean(
            [np.mean(np.abs(m), axis=0) for m in masks], axis=0
        ).tolist(),
        "pair_scores": pair.tolist(),
        "planted_pair_score": float(np.mean(pair_scores[planted])),
        "other_pair_score": float(np.mean(pair_scores[~planted])),
        "top_pairs_planted": int(np.sum(planted[top])),
        "planted_pair_ranks": sorted(
            int(np.sum(pair_scores > s)) + 1 for s in pair_scores[planted]
        ),
    }, masks


def plot_histograms(results, masks, initial, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(masks)
    blocks = len(masks[keys[0]])
    fig, axes = plt.subplots(
        len(keys), blocks, figsize=(3.4 * blocks, 2.6 * len(keys))
    )
    axes = np.atleast_2d(axes)
    for r, key in enumerate(keys):
        for b in range(blocks):
            ax = axes[r, b]
            values = masks[key][b].ravel()
            low, high = np.quantile(values, [0.002, 0.998])
            low = min(low, np.quantile(initial[key][b], 0.002))
            high = max(high, np.quantile(initial[key][b], 0.998))
            bins = np.linspace(low, high, 60)
            ax.hist(
                values,
                bins=bins,
                color=mq.COLORS[key],
                label="trained",
            )
            ax.hist(
                initial[key][b].ravel(),
                bins=bins,
                histtype="step",
                color="black",
                linewidth=0.8,
                label="at initialization",
            )
            stats = results["models"][key]["masks"]["blocks"][b]
            ax.text(
                0.02,
                0.95,
                f"std {stats['std']:.2f}\n{stats['negative']:.0%} < 0\n"
                f"{stats['near_zero']:.0%} in (-0.1, 0.1)",
                transform=ax.transAxes,
                va="top",
                fontsize=7,
            )
            if r == 0:
                ax.set_title(f"block {b}", fontsize=9)
            if b == 0:
                ax.set_ylabel(mq.MODELS[key].replace(" (", "\n("), fontsize=8)
            ax.set_yticks([])
            ax.tick_params(labelsize=7)
            if r == len(keys) - 1:
                ax.set_xlabel("mask value", fontsize=8)
    axes[0, -1].legend(fontsize=7, frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_features(results, planted_pairs, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(results["models"])
    fig, axes = plt.subplots(
        len(keys),
        2,
        figsize=(11, 4.2 * len(keys)),
        gridspec_kw={"width_ratios": [1.3, 1]},
    )
    axes = np.atleast_2d(axes)
    for r, key in enumerate(keys):
        summary = results["models"][key]["masks"]
        per_feature = np.array(summary["mean_abs_mask_per_feature"])
        in_pair = np.zeros(len(per_feature), bool)
        in_pair[summary["features_in_planted_pairs"]] = True
        ax = axes[r, 0]
        ax.bar(
            np.arange(len(per_feature)),
            per_feature,
            color=np.where(in_pair, mq.COLORS[key], "#bbbbbb"),
            edgecolor="black",
            linewidth=0.3,
        )
        ax.set_xlabel(
            "input feature (coloured: in a planted pair; grey: linear only)",
            fontsize=8,
        )
        ax.set_ylabel("mean |mask|, over rows and blocks", fontsize=8)
        ax.set_title(mq.MODELS[key], fontsize=9)
        ax.tick_params(labelsize=7)
        ax = axes[r, 1]
        pair = np.array(summary["pair_scores"])
        np.fill_diagonal(pair, np.nan)  # a feature with itself: no pair
        image = ax.imshow(pair, cmap="viridis")
        for i, j in planted_pairs:
            for a, b in ((i, j), (j, i)):
                ax.add_patch(
                    plt.Rectangle(
                        (b - 0.5, a - 0.5),
                        1,
                        1,
                        fill=False,
                        edgecolor="red",
                        linewidth=1.2,
                    )
                )
        ax.set_title(
            "cross score of each pair (red: planted): "
            f"{summary['top_pairs_planted']} of the top "
            f"{len(planted_pairs)} are planted",
            fontsize=8,
        )
        ax.set_xlabel("feature j", fontsize=8)
        ax.set_ylabel("feature i", fontsize=8)
        ax.tick_params(labelsize=7)
        fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_table(results, path):
    lines = [
        "| Model | test AUC | block | mask std (at init.) "
        "| std across rows (at init.) | < 0 | mean abs, planted "
        "features | mean abs, other features |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for key, model in results["models"].items():
        for b in model["masks"]["blocks"]:
            lines.append(
                f"| {mq.MODELS[key]} | {model['test_auc']:.4f} | {b['block']} "
                f"| {b['std']:.2f} ({b['initial_std']:.2f}) "
                f"| {b['std_across_rows']:.2f} "
                f"({b['initial_std_across_rows']:.2f}) "
                f"| {b['negative']:.0%} | {b['mean_abs_planted']:.2f} "
                f"| {b['mean_abs_other']:.2f} |"
            )
    lines += [
        "",
        "| Model | cross score, planted pairs | other pairs | ratio "
        "| planted pairs in the top 8 | ranks of the planted pairs "
        "(of 496) |",
        "| --- | ---: | ---: | ---: | ---: | --- |",
    ]
    for key, model in results["models"].items():
        m = model["masks"]
        ratio = m["planted_pair_score"] / m["other_pair_score"]
        lines.append(
            f"| {mq.MODELS[key]} | {m['planted_pair_score']:.3f} "
            f"| {m['other_pair_score']:.3f} | {ratio:.1f} "
            f"| {m['top_pairs_planted']} "
            f"| {', '.join(map(str, m['planted_pair_ranks']))} |"
        )
    env = results["environment"]
    lines += [
        "",
        f"Generated on {env['date']} by `{env['command']}` on "
        f"{env['machine']}, Keras {env['keras']} on the {env['backend']} "
        f"backend, in {env['total_seconds']:.0f} s: "
        f"{results['settings']['samples']:,} samples, learning rates "
        + ", ".join(
            f"{mq.MODELS[k]} {r:g}"
            for k, r in results["settings"]["learning_rates"].items()
        )
        + f", masks read on "
        f"{results['settings']['analysis_rows']:,} test rows.",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--small",
        action="store_true",
        help="a seconds-long smoke run: 4000 samples, 3 epochs, ~15,000 "
        "weights",
    )
    parser.add_argument("--samples", type=int, default=60000)
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="default: for each model, the one the comparison chose most "
        "often on the dense data (--quality-results), else 3e-3",
    )
    parser.add_argument(
        "--quality-results",
        default=os.path.join(
            os.path.dirname(os.path.abspath(__file__)),
            "..",
            "docs",
            "assets",
            "quality",
            "results.json",
        ),
        help="results.json of examples/model_quality.py",
    )
    parser.add_argument("--epochs", type=int, default=30, help="most epochs")
    parser.add_argument("--patience", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=512)
    parser.add_argument("--params", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="masks", help="output folder")
    args = parser.parse_args(argv)
    if args.small:
        args.samples, args.epochs, args.params = 4000, 3, 15000
        args.batch_size, args.learning_rate = 256, 1e-2
    return args


def main(argv=None):
    args = parse_args(argv)
    backend = keras.backend.backend()
    print(f"Keras {keras.__version__}, backend: {backend}", flush=True)
    os.makedirs(args.out, exist_ok=True)
    start = time.perf_counter()
    dataset = mq.load_dense(args.samples, args.batch_size)
    planted_pairs = dataset["planted"][1]
    test_rows = dataset["rows"][2]
    x = dataset["x"][test_rows][:ANALYSIS_ROWS]
    results = {"models": {}, "planted_pairs": planted_pairs.tolist()}
    masks, initial = {}, {}
    chosen = mq.chosen_learning_rates(args.quality_results)
    learning_rates = {
        key: args.learning_rate or chosen.get(key, 3e-3) for key in MODELS
    }
    for key in MODELS:
        width = mq.width_for(key, dataset, args.params, 8)

        def build(key=key, width=width):
            return mq.build_model(key, dataset, width, 8)

        keras.backend.clear_session()
        keras.utils.set_random_seed(args.seed)
        untrained = build().get_layer("masknet")
        initial[key] = masks_of(untrained, x)
        model, run = mq.fit_one(
            build, dataset, learning_rates[key], args.seed, args
        )
        prediction = model.predict(
            dataset["x"][test_rows], batch_size=len(test_rows), verbose=0
        )
        test_auc = roc_auc(dataset["y"][test_rows], prediction)
        summary, masks[key] = summarize_model(
            model.get_layer("masknet"), x, initial[key], planted_pairs
        )
        results["models"][key] = {
            "name": mq.MODELS[key],
            "width": width,
            "params": model.count_params(),
            "test_auc": test_auc,
            "run": run,
            "masks": summary,
        }
        print(
            f"{mq.MODELS[key]}: test AUC {test_auc:.4f}; planted pairs "
            f"score {summary['planted_pair_score']:.3f} vs "
            f"{summary['other_pair_score']:.3f} for the others, "
            f"{summary['top_pairs_planted']} of the top "
            f"{len(planted_pairs)} pairs planted",
            flush=True,
        )
    results["settings"] = {
        "samples": args.samples,
        "learning_rates": learning_rates,
        "epochs": args.epochs,
        "patience": args.patience,
        "batch_size": args.batch_size,
        "params": args.params,
        "seed": args.seed,
        "analysis_rows": int(len(x)),
    }
    results["environment"] = {
        "date": datetime.date.today().isoformat(),
        "command": "python examples/mask_analysis.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": f"{platform.machine()} Linux, {os.cpu_count()} CPU cores",
        "backend": backend,
        "keras": keras.__version__,
        "total_seconds": time.perf_counter() - start,
    }
    with open(os.path.join(args.out, "masks.json"), "w") as f:
        json.dump(results, f, indent=1)
    plot_histograms(
        results, masks, initial, os.path.join(args.out, "mask_histograms.png")
    )
    plot_features(
        results, planted_pairs, os.path.join(args.out, "mask_features.png")
    )
    write_table(results, os.path.join(args.out, "masks.md.txt"))
    print(
        f"Wrote {args.out}/masks.json, mask_histograms.png, "
        f"mask_features.png and masks.md.txt in "
        f"{results['environment']['total_seconds']:.0f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
