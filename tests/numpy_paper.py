"""An independent NumPy implementation of MaskNet as the paper writes it.

Written from REFERENCE.md ("The paper's variant", "What other public
implementations add"), in the paper's notation, with its own weights: the
parameters are a nested dict made by `init_params` (kernels `(in, out)`, the
paper's names), never read from the Keras layers, and every width (the
aggregation width of each block in particular) is worked out here from the
config. The tests copy these parameters INTO the layers, so a width computed
differently by the layers fails on shape before any number is compared.

The config is the `MaskNet` keyword arguments (a `mask_blocks` list of
dicts, `mlp`, `use_parallel`, `embedding_layer_norm`,
`normalize_mask_input`); dropout is the identity (inference).

    V_emb  = concat(e_1, ..., e_f)                         # raw fields
    V_norm = concat(LN_1(e_1), ..., LN_f(e_f))             # LN-EMB, or V_emb
    V_mask = W2 ReLU(W1 [P] V_src + b1) + b2               # V_src: V_emb, or
                                                           #   V_norm (EasyRec)
    block  = act(LN(W (V_mask * [LN_in] V_in) [+ b]))
"""

import numpy as np

EPS = 1e-5

ACTIVATIONS = {
    None: lambda x: x,
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "sigmoid": lambda x: 1.0 / (1.0 + np.exp(-x)),
}


def layer_norm(x, p):
    mean = x.mean(-1, keepdims=True)
    var = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * p["gamma"] + p["beta"]


def _normal(rng, *shape, loc=0.0):
    return rng.normal(loc, 0.5, size=shape)


def _ln_params(rng, width):
    return {"gamma": _normal(rng, width, loc=1.0), "beta": _normal(rng, width)}


def aggregation_width(block, masked_width, mask_input_width):
    if block.get("aggregation_size") is not None:
        return block["aggregation_size"]
    base = block.get("reduction_factor_base", "mask_input")
    width = masked_width if base == "inputs" else mask_input_width
    return int(width * block["reduction_factor"])


def masked_widths(config, emb_width):
    """The width of the layer each block masks, in block order."""
    blocks = config["mask_blocks"]
    if config.get("use_parallel"):
        return [emb_width] * len(blocks)
    return [emb_width] + [b["output_size"] for b in blocks[:-1]]


def _block_params(rng, block, width, src_width):
    """One block masking a `width`-wide layer, its mask computed from a
    `src_width`-wide input."""
    agg = aggregation_width(block, width, src_width)
    proj = block.get("mask_projection_dim")
    out = block["output_size"]
    return {
        "ln_in": _ln_params(rng, width)
        if block.get("input_layer_norm")
        else None,
        "P": None if proj is None else _normal(rng, src_width, proj),
        "W1": _normal(rng, src_width if proj is None else proj, agg),
        "b1": _normal(rng, agg),
        "W2": _normal(rng, agg, width),
        "b2": _normal(rng, width),
        "W": _normal(rng, width, out),
        "b": _normal(rng, out) if block.get("use_hidden_bias", True) else None,
        "ln": _ln_params(rng, out),
    }


def init_block_params(block, input_dim, mask_input_dim, seed=0):
    """Random parameters of a lone MaskBlock."""
    rng = np.random.default_rng(seed)
    return _block_params(rng, block, input_dim, mask_input_dim)


def init_params(config, field_dims, seed=0):
    """Random parameters for `config` on fields of widths `field_dims`."""
    rng = np.random.default_rng(seed)
    emb_width = sum(field_dims)
    params = {"ln_emb": None, "blocks": [], "mlp": []}
    if config.get("embedding_layer_norm"):
        params["ln_emb"] = [_ln_params(rng, d) for d in field_dims]
    for block, width in zip(
        config["mask_blocks"], masked_widths(config, emb_width)
    ):
        params["blocks"].append(_block_params(rng, block, width, emb_width))
    if config.get("mlp") is not None:
        width = (
            sum(b["output_size"] for b in config["mask_blocks"])
            if config.get("use_parallel")
            else config["mask_blocks"][-1]["output_size"]
        )
        for size in config["mlp"]["layer_sizes"]:
            params["mlp"].append(
                {"W": _normal(rng, width, size), "b": _normal(rng, size)}
            )
            width = size
    return params


def instance_guided_mask(p, v_src):
    x = v_src if p["P"] is None else v_src @ p["P"]
    return np.maximum(x @ p["W1"] + p["b1"], 0.0) @ p["W2"] + p["b2"]


def mask_block(p, block, v_in, v_src):
    """Returns `(output, mask)` of one block."""
    if p["ln_in"] is not None:
        v_in = layer_norm(v_in, p["ln_in"])
    mask = instance_guided_mask(p, v_src)
    hidden = (v_in * mask) @ p["W"]
    if p["b"] is not None:
        hidden = hidden + p["b"]
    act = ACTIVATIONS[block.get("output_activation")]
    return act(layer_norm(hidden, p["ln"])), mask


def flatten_fields(fields):
    """A 2-D array, a 3-D `(batch, f, k)` array or a list: the field list."""
    if isinstance(fields, (list, tuple)):
        return [np.asarray(f, np.float64) for f in fields]
    fields = np.asarray(fields, np.float64)
    if fields.ndim == 2:
        return [fields]
    return [fields[:, i, :] for i in range(fields.shape[1])]


def mask_net(params, config, inputs):
    """Returns `{"output", "shared_layer", "masks"}` as float64 arrays."""
    fields = flatten_fields(inputs)
    v_emb = np.concatenate(fields, axis=-1)
    v_norm = v_emb
    if params["ln_emb"] is not None:
        v_norm = np.concatenate(
            [layer_norm(e, p) for e, p in zip(fields, params["ln_emb"])],
            axis=-1,
        )
    v_src = v_norm if config.get("normalize_mask_input") else v_emb
    blocks = config["mask_blocks"]
    masks, outputs = [], []
    net = v_norm
    for p, block in zip(params["blocks"], blocks):
        v_in = v_norm if config.get("use_parallel") else net
        net, mask = mask_block(p, block, v_in, v_src)
        masks.append(mask)
        outputs.append(net)
    shared = (
        np.concatenate(outputs, axis=-1) if config.get("use_parallel") else net
    )
    out = shared
    mlp = config.get("mlp")
    if mlp is not None:
        for i, p in enumerate(params["mlp"]):
            out = out @ p["W"] + p["b"]
            if i < len(params["mlp"]) - 1 or mlp.get("final_layer_activation"):
                out = np.maximum(out, 0.0)
    return {"output": out, "shared_layer": shared, "masks": masks}


def lone_block(p, block, v_in, v_src):
    """A lone MaskBlock: `(output, mask)`."""
    return mask_block(
        p, block, np.asarray(v_in, np.float64), np.asarray(v_src, np.float64)
    )
