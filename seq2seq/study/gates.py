"""Gate saturation of GRU and LSTM layers: how often a gate is (almost) shut or open.

A forget gate near 1 carries the cell state forward unchanged, which is how an LSTM keeps
gradients alive over many steps; an update gate near 1 does the same for a GRU. Gates stuck
near 0 or 1 also pass almost no gradient to their own weights (sigmoid' = g(1 - g)).

Gate values are computed from the layer's own weights and its own output sequence: gate_t
depends only on x_t and h_{t-1}, and h_{t-1} is the layer's output at t-1, so nothing of
the recurrence is re-implemented. Keras orders the gate blocks i, f, c, o (LSTM) and
z, r, h (GRU).
"""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

SATURATED_LOW = 0.1
SATURATED_HIGH = 0.9
# Gate names per cell type, with the index of the gate's block in the kernel.
GATES = {
    "lstm": {"input": 0, "forget": 1, "output": 3},
    "gru": {"update": 0, "reset": 1},
}


def cell_type(layer: keras.layers.Layer) -> str | None:
    if isinstance(layer, keras.layers.LSTM):
        return "lstm"
    if isinstance(layer, keras.layers.GRU):
        return "gru"
    return None


def gate_activations(layer: keras.layers.Layer, inputs, mask=None) -> dict[str, np.ndarray]:
    """Every gate value of a GRU or LSTM ``layer`` (zero initial state, sequences returned)
    at the real positions of ``inputs`` [B, T, E]: {gate name: flat array}."""
    kind = cell_type(layer)
    if kind is None:
        raise ValueError(f"{layer.name} is not a GRU or LSTM layer: it has no gates")
    if not layer.return_sequences:
        raise ValueError(f"{layer.name} must return sequences to give h_(t-1) at every step")
    inputs = tf.convert_to_tensor(inputs, tf.float32)
    batch, steps = int(inputs.shape[0]), int(inputs.shape[1])
    mask = np.ones((batch, steps), bool) if mask is None else np.asarray(mask, bool)
    outputs = layer(inputs, mask=tf.constant(mask), training=False)
    sequence = outputs[0] if isinstance(outputs, list | tuple) else outputs
    previous = tf.concat([tf.zeros_like(sequence[:, :1]), sequence[:, :-1]], axis=1)
    cell = layer.cell
    from_input = tf.matmul(inputs, cell.kernel)
    from_state = tf.matmul(previous, cell.recurrent_kernel)
    if cell.use_bias:
        if kind == "gru" and cell.reset_after:  # bias [2, 3u]: input and recurrent halves
            from_input += cell.bias[0]
            from_state += cell.bias[1]
        else:
            from_input += cell.bias
    units = cell.units
    gates = {}
    for name, block in GATES[kind].items():
        part = slice(block * units, (block + 1) * units)
        values = cell.recurrent_activation(from_input[..., part] + from_state[..., part])
        gates[name] = values.numpy()[mask].ravel()
    return gates


def saturation(values: np.ndarray) -> dict[str, float]:
    """Share of values below SATURATED_LOW, above SATURATED_HIGH, and their mean."""
    values = np.asarray(values, np.float64)
    return {
        "near_0": float(np.mean(values < SATURATED_LOW)),
        "near_1": float(np.mean(values > SATURATED_HIGH)),
        "mean": float(np.mean(values)),
    }


def gate_saturation(layer: keras.layers.Layer, inputs, mask=None) -> dict[str, dict]:
    """{gate: {near_0, near_1, mean, histogram}} for a GRU or LSTM layer on a batch."""
    edges = np.linspace(0.0, 1.0, 21)
    result = {}
    for name, values in gate_activations(layer, inputs, mask).items():
        counts, _ = np.histogram(values, bins=edges)
        result[name] = {**saturation(values), "histogram": (counts / max(len(values), 1)).tolist()}
    return result
