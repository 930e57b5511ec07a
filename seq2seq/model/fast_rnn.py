"""Whole-sequence recurrent layers with the input projection hoisted out of the time loop.

Why this exists: where cuDNN does not run (a CPU, or settings cuDNN refuses), Keras's
``GRU``/``LSTM``/``SimpleRNN`` fall back to the backend's generic ``rnn()`` loop, whose step
calls the cell, and the cell multiplies that step's input by its kernel: T small matmuls
forward and T more backward. That product does not depend on the recurrence, so here it is
one ``[B*T, E] x [E, G*H]`` matmul before the loop (one matmul in the backward pass too);
the loop keeps only ``h @ recurrent_kernel`` and the gates. GRUs with cuDNN's settings (the
product's) go further (``run_gru``): both directions of a ``Bidirectional`` share one loop,
and the backward pass is written out, so the recurrent kernel's gradient is one matmul after
the loop instead of an accumulation inside it. That loop only serves training (``run`` is
called with ``training=True``, as the training step calls the model): it saves what its
backward pass needs, and TFLite cannot convert its custom gradient. Otherwise (decoding,
exports), and for LSTM and SimpleRNN, Keras's ``rnn()`` loop runs the shortened step,
differentiable by TensorFlow's autodiff.

Nothing new is stored: ``run`` runs the Keras layer's own weights, so ``.keras`` files are
unchanged, and it returns what ``layer(inputs, mask=..., initial_state=...)`` returns on
the generic path: the same ``rnn()`` loop and masking (states carried through masked
steps; outputs there carried, or zeros where the layer has ``zero_output_for_mask``, as
``Bidirectional`` sets), ``go_backwards`` over the whole padded sequence, and
``Bidirectional``'s re-reversal and concatenation. Where Keras would pick cuDNN, or the
layer has settings this path does not reproduce (cell dropout, ``stateful``, ``unroll``,
another merge mode), the Keras layer is called as it is.
"""

from __future__ import annotations

import keras
import tensorflow as tf
from keras import ops

from seq2seq import compat

# Keras's generic recurrent loop and its cuDNN test: private Keras APIs, reached through
# seq2seq.compat (a moved one fails here, at import, with a message naming it).
rnn = compat.keras_rnn()
cudnn_ok = compat.keras_cudnn_ok()

RECURRENT_LAYERS = (keras.layers.GRU, keras.layers.LSTM, keras.layers.SimpleRNN)


def run(layer: keras.layers.Layer, inputs, mask, initial_state=None, training=False) -> list:
    """``[sequence, *final_states]`` of ``layer(inputs, mask=mask, ...)``, by the fast path
    where it applies (see ``uses_fast_path``), else by calling the layer. With ``training``
    GRUs take the loop with the hand-written backward pass (``run_gru``); otherwise the
    fast path runs Keras's loop with the shortened step (decoding, exports). The fast path
    runs cells without dropout (a layer with cell dropout is called as it is)."""
    if not uses_fast_path(layer):
        results = layer(inputs, mask=mask, initial_state=initial_state, training=training)
        return list(results)
    bidirectional = isinstance(layer, keras.layers.Bidirectional)
    layers = [layer.forward_layer, layer.backward_layer] if bidirectional else [layer]
    states = [None] * len(layers)
    if initial_state is not None:
        initial_state = _as_list(initial_state)
        size = len(initial_state) // len(layers)
        states = [initial_state[i * size : (i + 1) * size] for i in range(len(layers))]
    if training and all(has_gru_kernel(one) for one in layers):
        directions = run_gru(layers, inputs, mask, states)
    else:
        directions = [
            run_layer(one, inputs, mask, s) for one, s in zip(layers, states, strict=True)
        ]
    if not bidirectional:
        return directions[0]
    (forward, *forward_states), (backward, *backward_states) = directions
    dtype = layer.compute_dtype
    sequence = ops.concatenate(
        [ops.cast(forward, dtype), ops.flip(ops.cast(backward, dtype), axis=1)], axis=-1
    )
    return [sequence, *forward_states, *backward_states]


def uses_fast_path(layer: keras.layers.Layer) -> bool:
    """Whether ``run`` hoists the input projection for this (built) layer."""
    if isinstance(layer, keras.layers.Bidirectional):
        return (
            layer.merge_mode == "concat"
            and layer.return_sequences
            and layer.return_state
            and uses_fast_path(layer.forward_layer)
            and uses_fast_path(layer.backward_layer)
        )
    return (
        isinstance(layer, RECURRENT_LAYERS)
        and layer.built
        and layer.return_sequences
        and layer.return_state
        and not layer.stateful
        and not layer.unroll
        and not layer.cell.dropout
        and not layer.cell.recurrent_dropout
        and not runs_cudnn(layer)
    )


def runs_cudnn(layer: keras.layers.Layer) -> bool:
    """Keras's own choice (``GRU.inner_loop``, ``LSTM.inner_loop``): cuDNN when it is
    allowed, there is no recurrent dropout, the settings suit it and a GPU is visible."""
    if isinstance(layer, keras.layers.SimpleRNN):
        return False
    cell = layer.cell
    if layer.use_cudnn not in ("auto", True) or cell.recurrent_dropout:
        return False
    settings = dict(
        activation=cell.activation,
        recurrent_activation=cell.recurrent_activation,
        unroll=layer.unroll,
        use_bias=cell.use_bias,
    )
    if isinstance(layer, keras.layers.GRU):
        settings["reset_after"] = cell.reset_after
    return bool(cudnn_ok(**settings))


def run_layer(layer: keras.layers.Layer, inputs, mask, initial_state) -> list:
    """One direction: ``[sequence, *final_states]``, the sequence in loop order (reversed
    when ``go_backwards``), as ``RNN.call`` returns it."""
    cell = layer.cell
    dtype = cell.compute_dtype
    inputs = ops.cast(inputs, dtype)
    if initial_state is None:
        initial_state = cell.get_initial_state(batch_size=ops.shape(inputs)[0])
    states = [ops.cast(s, dtype) for s in _as_list(initial_state)]
    projected, step = _projection_and_step(cell, dtype, inputs)
    _, outputs, final_states = rnn(
        step,
        projected,
        states,
        go_backwards=layer.go_backwards,
        mask=mask,
        input_length=projected.shape[1],
        zero_output_for_mask=layer.zero_output_for_mask,
    )
    return [ops.cast(outputs, layer.compute_dtype)] + [
        ops.cast(s, layer.compute_dtype) for s in final_states
    ]


def _as_list(states) -> list:
    return list(states) if isinstance(states, list | tuple) else [states]


def _projection_and_step(cell, dtype, inputs):
    """The input projection of every time step at once, and the step that remains."""
    kernel = ops.cast(cell.kernel, dtype)
    recurrent_kernel = ops.cast(cell.recurrent_kernel, dtype)
    bias = None if cell.bias is None else ops.cast(cell.bias, dtype)
    if isinstance(cell, keras.layers.GRUCell):
        return _gru(cell, inputs, kernel, recurrent_kernel, bias)
    if isinstance(cell, keras.layers.LSTMCell):
        return _lstm(cell, inputs, kernel, recurrent_kernel, bias)
    return _simple(cell, inputs, kernel, recurrent_kernel, bias)


def _gru(cell, inputs, kernel, recurrent_kernel, bias):
    """``GRUCell.call`` (implementation 2) minus its input matmul."""
    units = cell.units
    input_bias = recurrent_bias = None
    if bias is not None:
        input_bias, recurrent_bias = (bias[0], bias[1]) if cell.reset_after else (bias, None)
    projected = ops.matmul(inputs, kernel)
    if input_bias is not None:
        projected = projected + input_bias

    def step(x, states):
        h = states[0]
        x_z, x_r, x_h = ops.split(x, 3, axis=-1)
        if cell.reset_after:
            inner = ops.matmul(h, recurrent_kernel)
            if recurrent_bias is not None:
                inner = inner + recurrent_bias
        else:
            inner = ops.matmul(h, recurrent_kernel[:, : 2 * units])
        z = cell.recurrent_activation(x_z + inner[:, :units])
        r = cell.recurrent_activation(x_r + inner[:, units : 2 * units])
        if cell.reset_after:
            candidate = r * inner[:, 2 * units :]
        else:
            candidate = ops.matmul(r * h, recurrent_kernel[:, 2 * units :])
        h = z * h + (1 - z) * cell.activation(x_h + candidate)
        return h, [h]

    return projected, step


def _lstm(cell, inputs, kernel, recurrent_kernel, bias):
    """``LSTMCell.call`` (implementation 2) minus its input matmul."""
    projected = ops.matmul(inputs, kernel)
    if bias is not None:
        projected = projected + bias

    def step(x, states):
        h, c = states
        i, f, g, o = ops.split(x + ops.matmul(h, recurrent_kernel), 4, axis=-1)
        c = cell.recurrent_activation(f) * c + cell.recurrent_activation(i) * cell.activation(g)
        h = cell.recurrent_activation(o) * cell.activation(c)
        return h, [h, c]

    return projected, step


def _simple(cell, inputs, kernel, recurrent_kernel, bias):
    """``SimpleRNNCell.call`` minus its input matmul."""
    projected = ops.matmul(inputs, kernel)
    if bias is not None:
        projected = projected + bias

    def step(x, states):
        output = x + ops.matmul(states[0], recurrent_kernel)
        if cell.activation is not None:
            output = cell.activation(output)
        return output, [output]

    return projected, step


# -- GRU: directions in one loop, hand-written backward pass ----------------------------


def has_gru_kernel(layer: keras.layers.Layer) -> bool:
    """A GRU with cuDNN's settings (tanh, sigmoid, biases, ``reset_after``): ``run_gru``."""
    cell = getattr(layer, "cell", None)
    return (
        isinstance(cell, keras.layers.GRUCell)
        and cell.activation is keras.activations.tanh
        and cell.recurrent_activation is keras.activations.sigmoid
        and cell.use_bias
        and cell.reset_after
    )


def run_gru(layers: list, inputs, mask, initial_states: list) -> list:
    """``[[sequence, h], ...]`` per layer (``run_layer``'s results), all directions of a
    ``Bidirectional`` stepped by one loop whose backward pass is written out by hand.

    Autodiff of a ``tf.while_loop`` adds each step's recurrent-kernel gradient into an
    accumulator inside the backward loop (an AddN of the whole kernel per step, plus a
    small matmul); here the loop hands back each step's pre-activation gradients and the
    kernel and bias gradients are one matmul and one sum after it.
    """
    dtype = layers[0].cell.compute_dtype
    inputs = ops.cast(inputs, dtype)
    time_mask = None if mask is None else tf.transpose(tf.cast(mask, "bool"))[:, :, None]
    projections, masks, starts, kernels, biases = [], [], [], [], []
    for layer, state in zip(layers, initial_states, strict=True):
        cell = layer.cell
        bias = ops.cast(cell.bias, dtype)
        projected = ops.matmul(inputs, ops.cast(cell.kernel, dtype)) + bias[0]
        projected = tf.transpose(projected, (1, 0, 2))  # [T, B, 3H]
        step_mask = time_mask
        if step_mask is None:
            step_mask = tf.ones_like(projected[:, :, :1], dtype="bool")
        if layer.go_backwards:
            projected, step_mask = tf.reverse(projected, [0]), tf.reverse(step_mask, [0])
        if state is None:
            state = cell.get_initial_state(batch_size=ops.shape(inputs)[0])
        projections.append(projected)
        masks.append(step_mask)
        starts.append(ops.cast(_as_list(state)[0], dtype))
        kernels.append(ops.cast(cell.recurrent_kernel, dtype))
        biases.append(bias[1:])
    zero_output = {layer.zero_output_for_mask for layer in layers}
    if len(zero_output) != 1:
        raise ValueError("the directions of a Bidirectional differ in zero_output_for_mask")
    outputs, final = gru_loop(
        tf.stack(projections, axis=1),
        tf.stack(masks, axis=1),
        tf.stack(starts),
        tf.stack(kernels),
        tf.stack(biases),
        zero_output.pop(),
    )
    return [
        [
            ops.cast(tf.transpose(outputs[:, d], (1, 0, 2)), layer.compute_dtype),
            ops.cast(final[d], layer.compute_dtype),
        ]
        for d, layer in enumerate(layers)
    ]


def gru_loop(projected, mask, h0, recurrent_kernel, recurrent_bias, zero_output_for_mask):
    """The recurrence of ``GRUCell.call`` (``reset_after``) under ``rnn()``'s masking, for D
    directions at once, time-major: ``projected [T,D,B,3H]`` (inputs times kernel plus the
    input bias, in loop order), ``mask [T,D,B,1]`` bool, ``h0 [D,B,H]``, ``recurrent_kernel
    [D,H,3H]``, ``recurrent_bias [D,1,3H]``. Returns outputs ``[T,D,B,H]`` (loop order) and
    the final states ``[D,B,H]``. Masked steps keep the state; their output is zero or the
    previous output (zero before the first step), as ``zero_output_for_mask`` says."""
    units = h0.shape[-1]
    steps = projected.shape[0] or tf.shape(projected)[0]

    @tf.custom_gradient
    def loop(projected, h0, recurrent_kernel, recurrent_bias):
        def body(t, h, output, saved):
            m = mask[t]
            inner = tf.matmul(h, recurrent_kernel) + recurrent_bias
            x = projected[t]
            zr = tf.sigmoid(x[..., : 2 * units] + inner[..., : 2 * units])
            z, r = zr[..., :units], zr[..., units:]
            recurrent_h = inner[..., 2 * units :]
            candidate = tf.tanh(x[..., 2 * units :] + r * recurrent_h)
            new = z * h + (1 - z) * candidate
            output = tf.where(m, new, tf.zeros_like(new) if zero_output_for_mask else output)
            values = (output, h, zr, candidate, recurrent_h)
            saved = tuple(array.write(t, value) for array, value in zip(saved, values, strict=True))
            return t + 1, tf.where(m, new, h), output, saved

        saved = tuple(
            tf.TensorArray(h0.dtype, size=steps, element_shape=shape)
            for shape in (h0.shape, h0.shape, h0.shape[:-1] + [2 * units], h0.shape, h0.shape)
        )
        _, final, _, saved = tf.while_loop(
            lambda t, *_: t < steps, body, (0, h0, tf.zeros_like(h0), saved)
        )
        outputs, previous, zr_all, candidates, recurrent_hs = (a.stack() for a in saved)

        def gradient(d_outputs, d_final):
            d_outputs = tf.zeros_like(outputs) if d_outputs is None else d_outputs
            d_final = tf.zeros_like(final) if d_final is None else d_final

            def back(t, d_h, d_output, d_inputs, d_inners):
                m = mask[t]
                d_out = d_outputs[t] + d_output
                d_new = tf.where(m, d_h + d_out, tf.zeros_like(d_h))
                d_kept = tf.where(m, tf.zeros_like(d_h), d_h)
                d_output = (
                    tf.zeros_like(d_out)
                    if zero_output_for_mask
                    else tf.where(m, tf.zeros_like(d_out), d_out)
                )
                zr = zr_all[t]
                z, r = zr[..., :units], zr[..., units:]
                candidate = candidates[t]
                d_candidate = d_new * (1 - z) * (1 - candidate * candidate)
                d_zr = (
                    tf.concat(
                        [d_new * (previous[t] - candidate), d_candidate * recurrent_hs[t]], -1
                    )
                    * zr
                    * (1 - zr)
                )
                d_inner = tf.concat([d_zr, d_candidate * r], -1)
                d_h = d_kept + d_new * z + tf.matmul(d_inner, recurrent_kernel, transpose_b=True)
                return (
                    t - 1,
                    d_h,
                    d_output,
                    d_inputs.write(t, tf.concat([d_zr, d_candidate], -1)),
                    d_inners.write(t, d_inner),
                )

            arrays = tuple(
                tf.TensorArray(h0.dtype, size=steps, element_shape=h0.shape[:-1] + [3 * units])
                for _ in range(2)
            )
            _, d_h0, _, d_inputs, d_inners = tf.while_loop(
                lambda t, *_: t >= 0,
                back,
                (steps - 1, d_final, tf.zeros_like(h0), *arrays),
            )
            # One [H, T*B] x [T*B, 3H] product per direction (tf.einsum is slower here).
            d_inners = direction_major(d_inners.stack())
            d_kernel = tf.matmul(direction_major(previous), d_inners, transpose_a=True)
            d_bias = tf.reduce_sum(d_inners, axis=1, keepdims=True)
            return d_inputs.stack(), d_h0, d_kernel, d_bias

        return (outputs, final), gradient

    return loop(projected, h0, recurrent_kernel, recurrent_bias)


def direction_major(values):
    """``[T, D, B, W]`` -> ``[D, T*B, W]``."""
    shape = tf.shape(values)
    return tf.reshape(tf.transpose(values, (1, 0, 2, 3)), (shape[1], -1, values.shape[-1]))
