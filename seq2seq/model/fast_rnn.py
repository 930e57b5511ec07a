"""Whole-sequence recurrent layers with the input projection hoisted out of the time loop.

Why this exists: where cuDNN does not run (a CPU, or settings cuDNN refuses), Keras's
``GRU``/``LSTM``/``SimpleRNN`` fall back to the backend's generic ``rnn()`` loop, whose step
calls the cell, and the cell multiplies that step's input by its kernel: T small matmuls
forward and T more backward. That product does not depend on the recurrence, so here it is
one ``[B*T, E] x [E, G*H]`` matmul before the loop (one matmul in the backward pass too);
the loop keeps only ``h @ recurrent_kernel`` and the gates. At the reference size this is
most of the CPU training time saved (see ``python -m seq2seq.bench``).

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
from keras import ops
from keras.src.backend import cudnn_ok, rnn

RECURRENT_LAYERS = (keras.layers.GRU, keras.layers.LSTM, keras.layers.SimpleRNN)


def run(layer: keras.layers.Layer, inputs, mask, initial_state=None, training=False) -> list:
    """``[sequence, *final_states]`` of ``layer(inputs, mask=mask, ...)``, by the fast path
    where it applies (see ``uses_fast_path``), else by calling the layer."""
    if not uses_fast_path(layer):
        results = layer(inputs, mask=mask, initial_state=initial_state, training=training)
        return list(results)
    if isinstance(layer, keras.layers.Bidirectional):
        return run_bidirectional(layer, inputs, mask, initial_state)
    return run_layer(layer, inputs, mask, initial_state)


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


def run_bidirectional(layer: keras.layers.Bidirectional, inputs, mask, initial_state) -> list:
    """``Bidirectional.call`` with concat merging: the backward layer's outputs come in
    reversed time order and are flipped back before the concatenation."""
    forward_state = backward_state = None
    if initial_state is not None:
        half = len(initial_state) // 2
        forward_state, backward_state = initial_state[:half], initial_state[half:]
    forward = run_layer(layer.forward_layer, inputs, mask, forward_state)
    backward = run_layer(layer.backward_layer, inputs, mask, backward_state)
    dtype = layer.compute_dtype
    sequence = ops.concatenate(
        [ops.cast(forward[0], dtype), ops.flip(ops.cast(backward[0], dtype), axis=1)], axis=-1
    )
    return [sequence, *forward[1:], *backward[1:]]


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
