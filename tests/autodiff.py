"""Gradients of a layer's output on the current backend (tests only).

Keras 3 has no backend-agnostic gradient function, so this takes the
backend's own: `tf.GradientTape`, `jax.grad` of `stateless_call`, or torch's
autograd. The package itself never imports a backend.
"""

import keras
import numpy as np

BACKEND = keras.backend.backend()


def _loss(outputs, weights):
    # A fixed random weighting: the plain sum of a LayerNorm's outputs has a
    # zero gradient, which would hide non-finite values behind zeros.
    total = 0.0
    for y, w in zip(keras.tree.flatten(outputs), weights):
        w = keras.ops.convert_to_tensor(w)
        total = total + keras.ops.sum(keras.ops.cast(y, "float32") * w)
    return total


def _loss_weights(layer, args, training, options):
    specs = keras.tree.map_structure(
        lambda x: keras.KerasTensor(x.shape, dtype="float32"), args
    )
    outputs = layer.compute_output_spec(**specs, training=training, **options)
    rng = np.random.default_rng(0)
    return [
        rng.normal(size=tuple(o.shape)).astype("float32")
        for o in keras.tree.flatten(outputs)
    ]


def outputs_and_gradients(layer, args, training=True, **options):
    """Call `layer(**args, training=training, **options)`; return
    `(outputs, weight_gradients, input_gradients)` as NumPy float32 arrays.

    `args` maps call argument names to arrays (or lists of arrays);
    `options` are other call arguments (`return_masks=True`, ...). The loss
    is a fixed random weighting of every output.
    `weight_gradients` follow `layer.trainable_variables` (zeros for a
    variable the output does not depend on); `input_gradients` follow
    `keras.tree.flatten(args)`.
    """
    args = keras.tree.map_structure(lambda x: np.asarray(x, "float32"), args)
    if not layer.built:
        layer(**args, training=training)
    weights = _loss_weights(layer, args, training, options)
    flat = keras.tree.flatten(args)
    variables = layer.trainable_variables

    def call(xs):
        inputs = keras.tree.pack_sequence_as(args, xs)
        return layer(**inputs, training=training, **options)

    if BACKEND == "tensorflow":
        import tensorflow as tf

        xs = [tf.constant(x) for x in flat]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            y = call(xs)
            loss = _loss(y, weights)
        grads = tape.gradient(loss, [v.value for v in variables] + xs)
    elif BACKEND == "jax":
        import jax

        # Compiled as one function: eagerly, JAX compiles each operation of
        # the forward and backward passes for its shapes, one by one (several
        # times slower on the tests' tiny shapes). The layer's own eager call
        # is tested elsewhere; here the gradients are what is checked.
        def fn(trainable, non_trainable, xs):
            y, _ = layer.stateless_call(
                trainable,
                non_trainable,
                **keras.tree.pack_sequence_as(args, xs),
                training=training,
                **options,
            )
            return _loss(y, weights), y

        (_, y), (g_w, g_x) = jax.jit(
            jax.value_and_grad(fn, argnums=(0, 2), has_aux=True)
        )(
            [v.value for v in variables],
            [v.value for v in layer.non_trainable_variables],
            [jax.numpy.asarray(x) for x in flat],
        )
        grads = list(g_w) + list(g_x)
    elif BACKEND == "torch":
        import torch

        xs = [torch.tensor(x, requires_grad=True) for x in flat]
        y = call(xs)
        loss = _loss(y, weights)
        params = [v.value for v in variables]
        grads = torch.autograd.grad(loss, params + xs, allow_unused=True)
    else:  # pragma: no cover
        raise NotImplementedError(BACKEND)
    grads = [
        np.zeros(tuple(t.shape), "float32")
        if g is None
        else np.asarray(keras.ops.convert_to_numpy(g), "float32")
        for g, t in zip(grads, list(variables) + list(flat))
    ]
    outputs = keras.tree.map_structure(
        lambda t: np.asarray(keras.ops.convert_to_numpy(t)).astype("float32"),
        y,
    )
    n = len(variables)
    return outputs, grads[:n], grads[n:]
