"""The one-off probes that benchmarks/NOTES.md quotes, to run again.

    python benchmarks/probes.py tf-data [--autotune off]
    python benchmarks/probes.py gemm-layouts --framework tensorflow
    KERAS_BACKEND=tensorflow python benchmarks/probes.py optimizer
    KERAS_BACKEND=torch python benchmarks/probes.py optimizer \
        --precision bfloat16
    python benchmarks/probes.py bf16-gemm --framework jax
    python benchmarks/probes.py adam --workload recap
    python benchmarks/probes.py call-overhead --framework tensorflow-xla
    KERAS_BACKEND=torch python benchmarks/probes.py fit-overhead
    python benchmarks/probes.py jax-step --workload paper-parallel
    python benchmarks/probes.py torch-step --workload paper-parallel

`tf-data`: TensorFlow, paper-parallel, 20 epochs of 8 steps on NumPy arrays
(or on a `tf.data.Dataset` with autotuning off): how many epochs start late.
`gemm-layouts`: every dense layer of a workload at batch 1024 (the
1-unit head left out), its three products of a training step (forward
`x @ w`, input gradient `g @ w.T`, weight gradient `x.T @ g`) in jax or
tensorflow against PyTorch's
(`F.linear`, `g @ w`, `g.T @ x`), medians in ms. `optimizer`: keras-masknet
on the current backend and the reference, in turns in one process, with
Adam and then SGD: what the optimizer costs each (`--precision bfloat16`:
both in bfloat16). `bf16-gemm`: the forward
products of a workload's dense layers at batch 1024 in bfloat16 and in
float32, in GFLOP/s: PyTorch in Keras' kernel layout (`x @ w`, w of shape
(in, out)) and in `nn.Linear`'s (`F.linear`, w of shape (out, in)); JAX
with XLA:CPU's default and with its oneDNN flags (each in a process of its
own: `XLA_FLAGS` is read when JAX starts); TensorFlow. On a CPU with
`avx512_bf16`/`amx_bf16` this shows which backend's bfloat16 dot uses them.
`call-overhead`: at batch 32, one compiled call of one product and of 20
chained ones (torch eagerly, jax, tensorflow, tensorflow-xla): the
products' rate and each framework's fixed cost per call.
`adam`: one Adam update of a workload's weights, Keras' Adam on the torch
backend against `torch.optim.Adam` (for-loop, foreach, fused).
`fit-overhead`: `model.fit`'s own cost per step on the current backend (a
one-Dense model, batch 1024) against a plain PyTorch loop's. `jax-step`:
JAX's compiled training step without `fit`, in turns with the reference's
(jitted by hand with its state kept, and donated as Keras' trainer does;
Keras' own `train_function`), and XLA:CPU's column sums (bias gradients)
against PyTorch's. `torch-step`: eager PyTorch's step taken apart, in turns
with the reference: the layers' forward and backward pass, then with
`torch.optim.Adam`, with Keras' Adam, and `model.fit`; then a forward and
backward pass at batch 1 (the per-call cost).
"""

import argparse
import os
import statistics
import sys
import time
from typing import Any

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import worker  # noqa: E402
from workloads import WORKLOADS  # noqa: E402
from workloads import dense_shapes  # noqa: E402


def median_ms(fn: Any, repeats: int) -> float:
    return 1e3 * statistics.median(worker.time_calls(fn, repeats, warmup=2))


def in_turns(fns: list[Any], rounds: int, calls: int = 1) -> list[list[float]]:
    """`fns` in turns, one after another, `calls` calls of each a turn,
    `rounds` timed turns after an untimed one: per fn, the seconds of one
    call in each timed turn. Neighbours in a turn share the machine's
    state, so their ratio cancels its drift."""
    times: list[list[float]] = [[] for _ in fns]
    for turn in range(rounds + 1):
        for fn, out in zip(fns, times):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            if turn:
                out.append((time.perf_counter() - start) / calls)
    return times


def tf_data(autotune: bool) -> None:
    os.environ["KERAS_BACKEND"] = "tensorflow"
    import tensorflow as tf

    workload = "paper-parallel"
    model = worker.build_keras_model(workload, "float32", "auto")
    x, y = worker.data(workload, worker.STEPS[workload] * worker.BATCH)
    first: list[float] = []
    model.fit(x, y, batch_size=worker.BATCH, epochs=1, verbose=0)
    data: Any = {"x": x, "y": y, "batch_size": worker.BATCH, "shuffle": False}
    if not autotune:
        options = tf.data.Options()
        options.autotune.enabled = False
        dataset = tf.data.Dataset.from_tensor_slices((x, y))
        data = {
            "x": dataset.batch(worker.BATCH).with_options(options),
            "shuffle": False,
        }
    times: list[float] = []
    model.fit(
        **data,
        epochs=20,
        verbose=0,
        callbacks=[worker.epoch_timer(times), first_step_timer(first)],
    )
    late = sum(t > 0.6 for t in first)
    print(
        f"autotune {'on (NumPy arrays)' if autotune else 'off'}: "
        f"{late} of {len(first)} epochs started late (first step > 0.6 s); "
        f"epoch median {statistics.median(times):.2f} s, "
        f"mean {statistics.mean(times):.2f} s"
    )


def first_step_timer(first: list[float]) -> Any:
    """A callback appending the seconds to each epoch's first step."""
    import keras

    class Timer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch: int, logs: Any = None) -> None:
            if batch == 0:
                float(logs["loss"])
                first.append(time.perf_counter() - self.start)

    return Timer()


def gemm_layouts(framework: str, workload: str, repeats: int) -> None:
    import torch

    spec = WORKLOADS[workload]
    batch = worker.BATCH
    rng = np.random.default_rng(0)
    totals = np.zeros(6)
    layers = dense_shapes(spec["input_dim"], spec["config"])
    for i, o in sorted({s for s in layers if s[1] > 1}):
        x = rng.random((batch, i), dtype="float32")
        w = rng.random((i, o), dtype="float32")
        g = rng.random((batch, o), dtype="float32")
        if framework == "jax":
            import jax
            import jax.numpy as jnp

            fx, fw, fg = map(jnp.asarray, (x, w, g))
            fwd = jax.jit(lambda a, b: a @ b)
            dx = jax.jit(lambda a, b: a @ b.T)
            dw = jax.jit(lambda a, b: a.T @ b)
            ours = [
                lambda: fwd(fx, fw).block_until_ready(),
                lambda: dx(fg, fw).block_until_ready(),
                lambda: dw(fx, fg).block_until_ready(),
            ]
        else:
            import tensorflow as tf

            fx, fw, fg = map(tf.constant, (x, w, g))
            mm = tf.function(tf.linalg.matmul)
            ours = [
                lambda: mm(fx, fw).numpy(),
                lambda: mm(fg, fw, transpose_b=True).numpy(),
                lambda: mm(fx, fg, transpose_a=True).numpy(),
            ]
        tx, tg = torch.from_numpy(x), torch.from_numpy(g)
        tw = torch.from_numpy(np.ascontiguousarray(w.T))  # nn.Linear's
        theirs = [
            lambda: torch.nn.functional.linear(tx, tw),
            lambda: tg @ tw,
            lambda: tg.T @ tx,
        ]
        ms = [median_ms(fn, repeats) for fn in ours + theirs]
        count = layers.count((i, o))
        totals += count * np.array(ms)
        print(
            f"{count} x {i:5d} -> {o:5d}  {framework}: fwd {ms[0]:6.1f}"
            f" dx {ms[1]:6.1f} dw {ms[2]:6.1f}   torch: fwd {ms[3]:6.1f}"
            f" dx {ms[4]:6.1f} dw {ms[5]:6.1f} ms"
        )
    print(
        f"a step's layers, summed  {framework}: "
        + " ".join(f"{t:.0f}" for t in totals[:3])
        + "   torch: "
        + " ".join(f"{t:.0f}" for t in totals[3:])
        + " ms (fwd dx dw)"
    )


#: XLA:CPU flags of the pinned jaxlib that hand dots to oneDNN (openxla/xla
#: PRs 8402, 30997, 31025); `bf16-gemm --framework jax` tries each.
XLA_ONEDNN_VARIANTS = {
    "default": "",
    "use_onednn": "--xla_cpu_use_onednn=true",
    "onednn_custom_call": "--xla_cpu_use_onednn=true "
    "--xla_cpu_experimental_onednn_custom_call=true",
}


def bf16_gemm(framework: str, workload: str, repeats: int) -> None:
    import subprocess

    spec = WORKLOADS[workload]
    batch = worker.BATCH
    shapes = sorted(
        {s for s in dense_shapes(spec["input_dim"], spec["config"]) if s[1] > 1}
    )
    if framework == "jax" and "BF16_GEMM_VARIANT" not in os.environ:
        for name, flags in XLA_ONEDNN_VARIANTS.items():
            env = dict(os.environ, BF16_GEMM_VARIANT=name)
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + flags).strip()
            cmd = [
                sys.executable,
                os.path.abspath(__file__),
                "bf16-gemm",
                "--framework",
                "jax",
                "--workload",
                workload,
                "--repeats",
                str(repeats),
            ]
            subprocess.run(cmd, env=env, check=False)
        return
    rng = np.random.default_rng(0)
    for i, o in shapes:
        x = rng.random((batch, i), dtype="float32")
        w = rng.random((i, o), dtype="float32")
        flops = 2.0 * batch * i * o
        rates = {}
        if framework == "torch":
            import torch

            for dtype in (torch.float32, torch.bfloat16):
                tx = torch.from_numpy(x).to(dtype)
                tw = torch.from_numpy(w).to(dtype)
                tw_t = tw.T.contiguous()  # nn.Linear's (out, in)
                tag = "bf16" if dtype == torch.bfloat16 else "f32"
                with torch.inference_mode():
                    rates[f"{tag} x@w"] = median_ms(lambda: tx @ tw, repeats)
                    rates[f"{tag} linear"] = median_ms(
                        lambda: torch.nn.functional.linear(tx, tw_t), repeats
                    )
        elif framework == "jax":
            import jax
            import jax.numpy as jnp

            mm = jax.jit(lambda a, b: a @ b)
            for dtype, tag in ((jnp.float32, "f32"), (jnp.bfloat16, "bf16")):
                jx, jw = jnp.asarray(x, dtype), jnp.asarray(w, dtype)
                rates[f"{tag} x@w"] = median_ms(
                    lambda: mm(jx, jw).block_until_ready(), repeats
                )
        else:
            import tensorflow as tf

            mm = tf.function(tf.linalg.matmul)
            for dtype, tag in ((tf.float32, "f32"), (tf.bfloat16, "bf16")):
                fx = tf.cast(tf.constant(x), dtype)
                fw = tf.cast(tf.constant(w), dtype)
                rates[f"{tag} x@w"] = median_ms(
                    lambda: mm(fx, fw).numpy(), repeats
                )
        variant = os.environ.get("BF16_GEMM_VARIANT", "")
        cells = "  ".join(
            f"{k} {flops / (ms * 1e6):7.1f}" for k, ms in rates.items()
        )
        print(
            f"{framework} {variant} {batch}x{i}x{o} GFLOP/s: {cells}",
            flush=True,
        )


#: `call-overhead`: products of (batch 32, width) by (width, width) per call.
CHAIN = 20


def call_overhead(framework: str, repeats: int) -> None:
    """Serving at batch 32: one compiled call of 1 product and one of
    `CHAIN` chained products, (32, 400) by (400, 400), each as a serving
    path calls it (NumPy result out). The chain gives the products' rate;
    one call minus a product at that rate is the framework's fixed cost
    per call. PyTorch runs eagerly (no compiled call to pay for)."""
    rng = np.random.default_rng(0)
    width = 400
    x = rng.normal(size=(32, width)).astype("float32")
    w = (rng.normal(size=(width, width)) / width**0.5).astype("float32")

    def chain(matmul: Any, a: Any, b: Any, n: int) -> Any:
        for _ in range(n):
            a = matmul(a, b)
        return a

    calls = {}
    for n in (1, CHAIN):
        if framework == "torch":
            import torch

            torch.set_num_threads(os.cpu_count() or 1)
            tx, tw = torch.from_numpy(x), torch.from_numpy(w)

            def call(n: int = n) -> Any:
                with torch.inference_mode():
                    return chain(torch.matmul, tx, tw, n).numpy()

        elif framework == "jax":
            import jax
            import jax.numpy as jnp

            fn = jax.jit(lambda a, b, n=n: chain(jnp.matmul, a, b, n))
            jx, jw = jnp.asarray(x), jnp.asarray(w)

            def call(fn: Any = fn) -> Any:
                return np.asarray(fn(jx, jw))

        else:
            import tensorflow as tf

            def products(count: int) -> Any:
                return lambda a, b: chain(tf.matmul, a, b, count)

            spec = [tf.TensorSpec(x.shape), tf.TensorSpec(w.shape)]
            # Tensor arguments only: a Python argument in the signature
            # (`n` as a default) made each call of the concrete function
            # about 0.4 ms slower here.
            fn = tf.function(
                products(n), jit_compile=framework == "tensorflow-xla"
            ).get_concrete_function(*spec)
            fx, fw = tf.constant(x), tf.constant(w)

            def call(fn: Any = fn) -> Any:
                return fn(fx, fw).numpy()

        times = worker.time_calls(call, repeats, warmup=30)
        calls[n] = 1e6 * statistics.median(times)  # microseconds
    per_product = calls[CHAIN] / CHAIN
    gflops = 2 * 32 * width * width / per_product / 1e3
    print(
        f"{framework}: 1 product {calls[1]:6.0f} us a call, {CHAIN} chained "
        f"{calls[CHAIN]:6.0f} us ({gflops:5.1f} GFLOP/s); fixed cost of a "
        f"call about {calls[1] - per_product:4.0f} us",
        flush=True,
    )


def optimizer(workload: str, rounds: int, precision: str) -> None:
    import keras

    x, y = worker.data(workload, worker.STEPS[workload] * worker.BATCH)
    costs = {}
    under = " (the reference under bfloat16 autocast)" * (
        precision != "float32"
    )
    allocator = [
        f"{k}={v}"
        for k, v in sorted(os.environ.items())
        if k.startswith("MALLOC_") or k == "LD_PRELOAD"
    ]
    print(f"{workload}, {precision}{under}")
    print("allocator settings: " + (" ".join(allocator) or "none"))
    for name in ("adam", "sgd"):
        model = worker.build_keras_model(workload, precision, "auto")
        if name == "sgd":
            model.compile(
                optimizer=keras.optimizers.SGD(1e-4),
                loss="binary_crossentropy",
            )
        pairs = worker.paired_rounds(
            model, workload, x, y, rounds, name, precision
        )
        ours = statistics.median(pairs["keras"]["seconds"])
        theirs = statistics.median(pairs["reference"]["seconds"])
        costs[name] = (ours, theirs)
        print(
            f"{name}: keras-masknet ({keras.backend.backend()}) {ours:.3f} s, "
            f"the reference {theirs:.3f} s a repeat ({theirs / ours:.2f}x)"
        )
    print(
        "the optimizer's share: keras-masknet "
        f"{costs['adam'][0] - costs['sgd'][0]:.3f} s, the reference "
        f"{costs['adam'][1] - costs['sgd'][1]:.3f} s a repeat"
    )


def adam_step(workload: str, repeats: int) -> None:
    """One Adam update of a workload's dense kernels and biases: Keras'
    Adam on the torch backend (`optimizer.apply`) against
    `torch.optim.Adam` in its three implementations, on the same shapes
    and gradients. The minimal reproducer for the optimizer's share of
    `probes.py optimizer` (Keras' torch Adam runs its `torch._foreach_*`
    ops out of place: full-size temporaries, one pass over memory each)."""
    os.environ["KERAS_BACKEND"] = "torch"
    sys.path.insert(0, os.path.join(HERE, "upstream"))
    from keras_torch_adam import compare

    spec = WORKLOADS[workload]
    print(f"{workload}:")
    compare(dense_shapes(spec["input_dim"], spec["config"]), repeats)


def fit_overhead(steps: int, rounds: int) -> None:
    """What `model.fit` costs per step beyond the model: a one-Dense
    model (390 inputs, sigmoid, Adam, batch 1024, the paper workloads'
    input width) trained by `fit` on NumPy arrays on the current backend,
    against the same model in a plain PyTorch loop on tensor slices, the
    loop the reference trains with. Both steps' arithmetic is a few
    hundred microseconds: the rest is each loop's own cost."""
    import keras
    import torch

    batch, width = worker.BATCH, 390
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch * steps, width)).astype("float32")
    y = (x[:, :1] > 0).astype("float32")
    inputs = keras.Input((width,))
    model = keras.Model(
        inputs, keras.layers.Dense(1, activation="sigmoid")(inputs)
    )
    model.compile(keras.optimizers.Adam(1e-4), "binary_crossentropy")
    torch.manual_seed(0)
    plain = torch.nn.Sequential(torch.nn.Linear(width, 1), torch.nn.Sigmoid())
    opt = torch.optim.Adam(plain.parameters(), lr=1e-4)
    loss_fn = torch.nn.BCELoss()
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)

    def keras_epoch() -> None:
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)

    def plain_epoch() -> None:
        for i in range(steps):
            part = slice(i * batch, (i + 1) * batch)
            opt.zero_grad()
            loss_fn(plain(tx[part]), ty[part]).backward()
            opt.step()

    ours, theirs = (
        1e3 * statistics.median(epochs) / steps
        for epochs in in_turns([keras_epoch, plain_epoch], rounds)
    )
    print(
        f"{keras.backend.backend()}: model.fit "
        f"{ours:.2f} ms a step, a plain PyTorch loop "
        f"{theirs:.2f} ms (one Dense on {width} "
        f"inputs, batch {batch}, {steps} steps an epoch, median of "
        f"{rounds} epochs each, in turns)"
    )


def jax_step(workload: str, rounds: int) -> None:
    """JAX's compiled training step alone, without `fit`, in turns with the
    reference's step, 8 steps of 1024 a turn: a jitted step of
    `stateless_call`, the loss's gradient and `Adam.stateless_apply` (what
    Keras' JAX trainer compiles), with its state kept and with it donated
    (`donate_argnums`, as Keras' trainer jits its step), then Keras' own
    `train_function` on the same batches; then the column sums of a bias
    gradient, jitted, against PyTorch's."""
    os.environ["KERAS_BACKEND"] = "jax"
    import jax
    import jax.numpy as jnp
    import keras
    import torch

    spec = WORKLOADS[workload]
    model = worker.build_keras_model(workload, "float32", "auto")
    optimizer = model.optimizer
    bce = keras.losses.BinaryCrossentropy()
    steps, batch = worker.STEPS[workload], worker.BATCH
    x, y = worker.data(workload, steps * batch)
    # Keras' own step, compiled by one `fit` epoch.
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0)

    def loss_fn(tv: Any, ntv: Any, xb: Any, yb: Any) -> Any:
        pred, ntv = model.stateless_call(tv, ntv, xb, training=True)
        return bce(yb, pred), ntv

    def step(tv: Any, ntv: Any, ov: Any, xb: Any, yb: Any) -> Any:
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, ntv), grads = grad_fn(tv, ntv, xb, yb)
        tv, ov = optimizer.stateless_apply(ov, grads, tv)
        return tv, ntv, ov, loss

    xs = [jnp.asarray(x[i * batch : (i + 1) * batch]) for i in range(steps)]
    ys = [jnp.asarray(y[i * batch : (i + 1) * batch]) for i in range(steps)]

    def by_hand(donate: bool) -> Any:
        jitted = jax.jit(step, donate_argnums=(0, 1, 2) if donate else ())
        state = [
            [jnp.array(v.value, copy=True) for v in variables]
            for variables in (
                model.trainable_variables,
                model.non_trainable_variables,
                optimizer.variables,
            )
        ]

        def run() -> None:
            loss = None
            for xb, yb in zip(xs, ys):
                tv, ntv, ov, loss = jitted(*state, xb, yb)
                state[:] = [tv, ntv, ov]
            loss.block_until_ready()

        return run

    # Keras' JAX trainer's internals (keras 3.15): the state `fit` passes to
    # its jitted step, and the step, called as `fit` calls it.
    keras_state = [
        model._get_jax_state(
            trainable_variables=True,
            non_trainable_variables=True,
            optimizer_variables=True,
            metrics_variables=True,
        )
    ]

    def keras_step() -> None:
        logs = None
        for xb, yb in zip(xs, ys):
            logs, keras_state[0] = model.train_function(
                keras_state[0], iter([(xb, yb)])
            )
        jax.block_until_ready(logs)

    # The reference's plain loop over the same batches, one repeat a call.
    _, theirs, _, _ = worker.reference_trainer(workload, "float32")

    names = [
        "jitted by hand, state kept",
        "jitted by hand, state donated",
        "Keras' train_function",
    ]
    # The untimed first turn compiles the steps.
    fns = [by_hand(False), by_hand(True), keras_step, theirs]
    *ours, ref_times = in_turns(fns, rounds)
    for name, times in zip(names, ours):
        ratio = statistics.median(r / t for r, t in zip(ref_times, times))
        ms = 1e3 * statistics.median(times) / steps
        print(
            f"{workload}: {name:30} {ms:6.1f} ms a step, {ratio:.3f}x the "
            f"reference ({1e3 * statistics.median(ref_times) / steps:.1f} ms)"
        )
    rng = np.random.default_rng(0)
    colsum = jax.jit(lambda a: a.sum(0))
    shapes = dense_shapes(spec["input_dim"], spec["config"])
    for width in sorted({o for _, o in shapes if o > 1}):
        g = rng.random((worker.BATCH, width), dtype="float32")
        jg, tg = jnp.asarray(g), torch.from_numpy(g)
        print(
            f"column sum of ({worker.BATCH}, {width}): jax "
            f"{1e3 * median_ms(lambda: colsum(jg).block_until_ready(), 50):.0f}"
            f" us, torch {1e3 * median_ms(lambda: tg.sum(0), 50):.0f} us"
        )


def torch_step(workload: str, rounds: int) -> None:
    """Eager PyTorch's training step taken apart, in turns with the reference, a
    turn the bench's repeat (8 steps of 1024, recap 1), all in plain PyTorch
    loops on the same tensor slices but the last: keras-masknet's forward and
    backward pass alone (against the reference's, also without an update); then
    with `torch.optim.Adam` (for-loop, the reference's own) on the model's
    variables, which are `torch.nn.Parameter`s; then with Keras' Adam
    (`optimizer.apply`); then `model.fit` itself. Each against the reference's
    full step but the first. The differences between the rows are what the
    layers, Keras' Adam and `fit` each cost. Last, the forward and backward pass
    at batch 1, where the products cost next to nothing: what each pass costs in
    Python and dispatch."""
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    import torch

    model = worker.build_keras_model(workload, "float32", "auto")
    steps, batch = worker.STEPS[workload], worker.BATCH
    x, y = worker.data(workload, steps * batch)
    tx, ty = torch.from_numpy(x), torch.from_numpy(y)
    full = [slice(i * batch, (i + 1) * batch) for i in range(steps)]
    one = [slice(i, i + 1) for i in range(steps)]
    variables = model.trainable_variables
    params = [v.value for v in variables]
    bce = torch.nn.BCELoss()
    reference, theirs, _, _ = worker.reference_trainer(workload, "float32")
    ref_params = list(reference.parameters())
    torch_adam = torch.optim.Adam(params, lr=1e-4, foreach=False)

    def loop(
        net: Any, weights: list, update: Any = None, parts: list = full
    ) -> Any:
        def run() -> None:
            for part in parts:
                for w in weights:
                    w.grad = None
                bce(net(tx[part]), ty[part]).backward()
                if update is not None:
                    update()

        return run

    def keras_adam() -> None:
        with torch.no_grad():
            model.optimizer.apply([p.grad for p in params], variables)

    def keras_model(xb: Any) -> Any:
        return model(xb, training=True)

    def fit() -> None:
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False)

    rows = [
        ("forward and backward", loop(keras_model, params)),
        ("+ torch.optim.Adam", loop(keras_model, params, torch_adam.step)),
        ("+ Keras' Adam", loop(keras_model, params, keras_adam)),
        ("model.fit", fit),
    ]
    ref_rows = [loop(reference, ref_params), theirs]
    times = in_turns([fn for _, fn in rows] + ref_rows, rounds)
    ref_fb, ref_full = times[-2:]
    for i, ((name, _), ours) in enumerate(zip(rows, times)):
        ref = ref_fb if i == 0 else ref_full
        ratio = statistics.median(r / t for r, t in zip(ref, ours))
        ms = 1e3 * statistics.median(ours) / steps
        print(
            f"{workload}: {name:22} {ms:6.1f} ms a step, {ratio:.3f}x the "
            "reference's "
            + ("forward and backward" if i == 0 else "step")
            + f" ({1e3 * statistics.median(ref) / steps:.1f} ms)"
        )
    # The per-call cost of each pass, where the products cost next to
    # nothing: forward and backward at batch 1.
    small = in_turns(
        [
            loop(keras_model, params, parts=one),
            loop(reference, ref_params, parts=one),
        ],
        4 * rounds,
        calls=5,
    )
    print(
        f"{workload}: forward and backward at batch 1: keras-masknet "
        f"{1e3 * statistics.median(small[0]) / steps:.2f} ms, the reference "
        f"{1e3 * statistics.median(small[1]) / steps:.2f} ms"
    )
    print(
        f"({rounds} turns; keras {keras.__version__}, "
        f"torch {torch.__version__})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "probe",
        choices=[
            "tf-data",
            "gemm-layouts",
            "optimizer",
            "bf16-gemm",
            "adam",
            "call-overhead",
            "fit-overhead",
            "jax-step",
            "torch-step",
        ],
    )
    parser.add_argument("--autotune", choices=["on", "off"], default="on")
    parser.add_argument(
        "--framework",
        choices=["jax", "tensorflow", "tensorflow-xla", "torch"],
        default="tensorflow",
    )
    parser.add_argument("--workload", choices=WORKLOADS, default="recap")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--precision",
        choices=["float32", "bfloat16"],
        default="float32",
        help="optimizer: train both in this precision (Keras' "
        "mixed_bfloat16, the reference under bfloat16 autocast)",
    )
    args = parser.parse_args()
    if args.probe == "tf-data":
        tf_data(args.autotune == "on")
    elif args.probe == "gemm-layouts":
        if args.framework == "torch":
            parser.error("gemm-layouts compares jax or tensorflow with torch")
        gemm_layouts(args.framework, args.workload, args.repeats)
    elif args.probe == "bf16-gemm":
        bf16_gemm(args.framework, args.workload, args.repeats)
    elif args.probe == "adam":
        adam_step(args.workload, args.repeats)
    elif args.probe == "call-overhead":
        call_overhead(args.framework, max(args.repeats, 300))
    elif args.probe == "fit-overhead":
        fit_overhead(64, args.repeats)
    elif args.probe == "jax-step":
        jax_step(args.workload, args.repeats)
    elif args.probe == "torch-step":
        torch_step(args.workload, args.repeats)
    else:
        optimizer(args.workload, args.repeats, args.precision)


if __name__ == "__main__":
    main()
