"""XLA:CPU: a jitted training step runs slower when its state is donated.

A minimal reproducer for an upstream JAX/XLA report (JAX only, no Keras):
the training step of a small ranking network (the shapes of MaskNet's
paper-sized parallel model: 3 blocks on 390 inputs, each an aggregation
390 -> 780 -> 390, a product with the input, a hidden 390 -> 400 and a
LayerNorm; an MLP of 3 x 400; a sigmoid head; batch 1024; Adam written in
`jax.numpy`), jitted twice: without donation, and with the parameters and
Adam's slots donated (`donate_argnums`, as Keras' JAX trainer does for its
whole state). The two are timed in turns, `--steps` steps a turn, and the
ratio of each turn's two times is printed (they share the machine's state
of that moment; each goes first in every other turn).

    python benchmarks/upstream/xla_cpu_donation.py

It also counts the `copy` instructions in each compiled step. Expected:
donation costs nothing (it lets XLA write the new state where the old one
was) or saves a little, and adds no copies. Measured on a 2-core AMD EPYC
(see UPSTREAM.md): the donated step copies every weight matrix once a
step and runs 1-3% slower; with

    XLA_FLAGS=--xla_cpu_copy_insertion_use_region_analysis=true \
        python benchmarks/upstream/xla_cpu_donation.py

there are no copies.
"""

import argparse
import math
import os
import re
import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np

BATCH, INPUTS, BLOCKS, AGGREGATION, HIDDEN = 1024, 390, 3, 780, 400
MLP = [400, 400, 400]


def dense(rng, fan_in, fan_out):
    scale = np.sqrt(2.0 / (fan_in + fan_out))
    kernel = rng.normal(scale=scale, size=(fan_in, fan_out))
    return {
        "w": jnp.asarray(kernel, jnp.float32),
        "b": jnp.zeros((fan_out,), jnp.float32),
    }


def layer_norm(width):
    return {
        "g": jnp.ones((width,), jnp.float32),
        "b": jnp.zeros((width,), jnp.float32),
    }


def init(seed=0):
    rng = np.random.default_rng(seed)
    blocks = [
        {
            "aggregation": dense(rng, INPUTS, AGGREGATION),
            "projection": dense(rng, AGGREGATION, INPUTS),
            "hidden": dense(rng, INPUTS, HIDDEN),
            "norm": layer_norm(HIDDEN),
        }
        for _ in range(BLOCKS)
    ]
    widths = [BLOCKS * HIDDEN, *MLP]
    mlp = [
        {"dense": dense(rng, i, o), "norm": layer_norm(o)}
        for i, o in zip(widths, widths[1:])
    ]
    return {"blocks": blocks, "mlp": mlp, "head": dense(rng, MLP[-1], 1)}


def apply_norm(p, x):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) * jax.lax.rsqrt(var + 1e-3) * p["g"] + p["b"]


def forward(params, x):
    outs = []
    for block in params["blocks"]:
        agg = x @ block["aggregation"]["w"] + block["aggregation"]["b"]
        mask = jax.nn.relu(agg) @ block["projection"]["w"]
        mask = mask + block["projection"]["b"]
        hidden = (x * mask) @ block["hidden"]["w"] + block["hidden"]["b"]
        outs.append(jax.nn.relu(apply_norm(block["norm"], hidden)))
    h = jnp.concatenate(outs, -1)
    for layer in params["mlp"]:
        h = h @ layer["dense"]["w"] + layer["dense"]["b"]
        h = jax.nn.relu(apply_norm(layer["norm"], h))
    logit = h @ params["head"]["w"] + params["head"]["b"]
    return logit[:, 0]


def loss_fn(params, x, y):
    logit = forward(params, x)
    return jnp.mean(
        jnp.maximum(logit, 0) - logit * y + jnp.log1p(jnp.exp(-abs(logit)))
    )


def train_step(params, m, v, count, x, y):
    """One Adam step (lr 1e-4), written out as Keras' and Optax's are."""
    loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
    count = count + 1
    b1, b2, lr, eps = 0.9, 0.999, 1e-4, 1e-7
    m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, grads)
    v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, grads)
    alpha = lr * jnp.sqrt(1 - b2**count) / (1 - b1**count)
    params = jax.tree.map(
        lambda p, m, v: p - alpha * m / (jnp.sqrt(v) + eps), params, m, v
    )
    return params, m, v, count, loss


def copies(jitted, *args):
    """The `copy` instructions of the compiled step, and their elements."""
    text = jitted.lower(*args).compile().as_text()
    count = elements = 0
    for line in text.splitlines():
        found = re.search(r"= [a-z0-9]+\[([\d,]*)\][^ ]* copy\(", line)
        if found:
            count += 1
            shape = [int(d) for d in found.group(1).split(",") if d]
            elements += math.prod(shape)
    return count, elements


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=9)
    parser.add_argument("--steps", type=int, default=8)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(BATCH, INPUTS)), jnp.float32)
    y = jnp.asarray(rng.random(BATCH) < 0.5, jnp.float32)
    steps = {
        "kept": jax.jit(train_step),
        "donated": jax.jit(train_step, donate_argnums=(0, 1, 2, 3)),
    }
    states = {}
    for name in steps:
        params = init()
        zeros = jax.tree.map(jnp.zeros_like, params)
        states[name] = [params, zeros, jax.tree.map(jnp.copy, zeros)]
        states[name].append(jnp.zeros((), jnp.float32))

    def turn(name):
        start = time.perf_counter()
        for _ in range(args.steps):
            *state, loss = steps[name](*states[name], x, y)
            states[name] = state
        loss.block_until_ready()
        return (time.perf_counter() - start) / args.steps

    print(
        f"jax {jax.__version__}, {jax.devices()[0].platform}, "
        f"{os.cpu_count()} CPUs; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    for name, jitted in steps.items():
        count, elements = copies(jitted, *states[name], x, y)
        print(
            f"step, state {name + ':':8} {count:3} copy ops in the compiled "
            f"HLO, {elements / 1e6:.2f} M elements copied a step"
        )
    ratios, kept, donated = [], [], []
    for i in range(args.turns + 1):
        # Each goes first in every other turn: no advantage from the order.
        if i % 2:
            a, b = turn("kept"), turn("donated")
        else:
            b, a = turn("donated"), turn("kept")
        if i:  # the first turn compiles
            kept.append(a)
            donated.append(b)
            ratios.append(b / a)
    print(
        f"step, state kept:    {1e3 * statistics.median(kept):6.1f} ms\n"
        f"step, state donated: {1e3 * statistics.median(donated):6.1f} ms\n"
        f"donated / kept, per turn: median {statistics.median(ratios):.3f} "
        f"(min {min(ratios):.3f}, max {max(ratios):.3f}, {args.turns} turns "
        f"of {args.steps} steps)"
    )


if __name__ == "__main__":
    main()
