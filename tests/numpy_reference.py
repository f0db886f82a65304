"""An independent NumPy implementation of the reference MaskNet equations.

It reads weights from a reference-style `state_dict` (keys as REFERENCE.md
lists them, Linear weights `(out, in)`), so it shares nothing with the Keras
layers under test: not their code, not their weight layout.
"""

import numpy as np

EPS = 1e-5


def layer_norm(x, gamma, beta, eps=EPS):
    x = x.astype(np.float64)
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def linear(x, sd, key):
    return x @ sd[f"{key}.weight"].astype(np.float64).T + sd[f"{key}.bias"]


def relu(x):
    return np.maximum(x, 0.0)


def mask_block(sd, prefix, net, mask_input, input_layer_norm):
    if input_layer_norm:
        net = layer_norm(
            net,
            sd[f"{prefix}_input_layer_norm.weight"],
            sd[f"{prefix}_input_layer_norm.bias"],
        )
    hidden = relu(linear(mask_input, sd, f"{prefix}_mask_layer.0"))
    mask = linear(hidden, sd, f"{prefix}_mask_layer.2")
    out = linear(net * mask, sd, f"{prefix}_hidden_layer")
    return layer_norm(
        out, sd[f"{prefix}_layer_norm.weight"], sd[f"{prefix}_layer_norm.bias"]
    )


def mlp(sd, prefix, x, config, training=False):
    """Inference (moving statistics) or training (batch statistics) mode.

    Dropout is identity: training-mode comparisons use configs without it.
    """
    sizes = config["layer_sizes"]
    batch_norm = config.get("batch_norm")
    dropout = config.get("dropout")
    index = 0
    for i in range(len(sizes)):
        x = linear(x, sd, f"{prefix}{index}")
        index += 1
        if i == len(sizes) - 1:
            break
        if batch_norm is not None:
            key = f"{prefix}{index}"
            if training:
                mean, var = x.mean(0), x.var(0)
            else:
                mean, var = sd[f"{key}.running_mean"], sd[f"{key}.running_var"]
            x = (x - mean) / np.sqrt(var + EPS)
            affine = batch_norm.get("affine")
            if affine is None or affine:
                x = x * sd[f"{key}.weight"] + sd[f"{key}.bias"]
            index += 1
        x = relu(x)
        index += 1
        if dropout is not None:
            index += 1
    if config.get("final_layer_activation"):
        x = relu(x)
    return x


def mask_net(sd, config, x, training=False):
    """Returns `(output, shared_layer)` as float64 arrays."""
    x = x.astype(np.float64)
    blocks = config["mask_blocks"]
    if config.get("use_parallel"):
        net = np.concatenate(
            [
                mask_block(
                    sd, f"_mask_blocks.{i}.", x, x, b.get("input_layer_norm")
                )
                for i, b in enumerate(blocks)
            ],
            axis=-1,
        )
    else:
        net = x
        for i, b in enumerate(blocks):
            net = mask_block(
                sd, f"_mask_blocks.{i}.", net, x, b.get("input_layer_norm")
            )
    out = net
    if config.get("mlp") is not None:
        out = mlp(sd, "_dense_layers.layers.", net, config["mlp"], training)
    return out, net
