"""The fast recurrent path (input projection outside the time loop) equals the Keras layers:
outputs, final states and gradients, on right-padded batches, and one training step."""

from __future__ import annotations

import contextlib
from unittest import mock

import keras
import numpy as np
import pytest
import tensorflow as tf

from seq2seq.model import fast_rnn

BATCH, STEPS, FEATURES, UNITS = 6, 7, 5, 4
LENGTHS = [7, 3, 1, 0, 5, 7]  # full, padded, length 1, all padding
LAYERS = {"gru": keras.layers.GRU, "lstm": keras.layers.LSTM, "rnn": keras.layers.SimpleRNN}


def make_layer(cell: str, direction: str, **settings) -> keras.layers.Layer:
    layer = LAYERS[cell](
        UNITS,
        return_sequences=True,
        return_state=True,
        go_backwards=direction == "backwards",
        **settings,
    )
    return keras.layers.Bidirectional(layer) if direction == "bidirectional" else layer


def random_batch(cell: str, direction: str, seed: int = 0):
    rng = np.random.default_rng(seed)
    inputs = tf.constant(rng.normal(size=(BATCH, STEPS, FEATURES)).astype("float32"))
    mask = tf.constant(np.arange(STEPS)[None, :] < np.array(LENGTHS)[:, None])
    count = (2 if cell == "lstm" else 1) * (2 if direction == "bidirectional" else 1)
    states = [tf.constant(rng.normal(size=(BATCH, UNITS)).astype("float32")) for _ in range(count)]
    return inputs, mask, states


def outputs_and_gradients(layer, run, inputs, mask, states) -> list[np.ndarray]:
    """The results and the gradients of a random projection of them with respect to the
    inputs, the initial states and every weight (in a tf.function, as training runs)."""

    @tf.function
    def compute():
        with tf.GradientTape() as tape:
            tape.watch([inputs, *states])
            results = run(inputs, mask, states)
            loss = sum(
                tf.reduce_sum(r * tf.random.stateless_normal(tf.shape(r), [7, i]))
                for i, r in enumerate(results)
            )
        gradients = tape.gradient(loss, [inputs, *states, *layer.trainable_weights])
        return results, gradients

    results, gradients = compute()
    return [t.numpy() for t in [*results, *gradients]]


@pytest.mark.parametrize("direction", ["forward", "backwards", "bidirectional"])
@pytest.mark.parametrize("cell", sorted(LAYERS))
def test_fast_path_matches_the_keras_layer(cell, direction):
    layer = make_layer(cell, direction)
    inputs, mask, states = random_batch(cell, direction)
    layer(inputs, mask=mask, initial_state=states)  # build
    rng = np.random.default_rng(1)
    for weight in layer.weights:  # non-zero biases, both GRU bias rows
        weight.assign(rng.normal(scale=0.5, size=weight.shape).astype("float32"))
    assert fast_rnn.uses_fast_path(layer)

    def keras_run(inputs, mask, states):
        return list(layer(inputs, mask=mask, initial_state=states))

    def fast_run(inputs, mask, states):
        return fast_rnn.run(layer, inputs, mask, states, training=True)

    expected = outputs_and_gradients(layer, keras_run, inputs, mask, states)
    with mock.patch.object(fast_rnn, "gru_loop", wraps=fast_rnn.gru_loop) as gru_loop:
        actual = outputs_and_gradients(layer, fast_run, inputs, mask, states)
    # in training, GRUs take the loop with the hand-written backward pass
    assert gru_loop.called == (cell == "gru")
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)


def test_outside_training_and_without_initial_states_the_fast_path_starts_from_zeros():
    """(Decoding and exports: not training, so GRUs take Keras's ``rnn()`` loop too, even
    under a gradient tape.)"""
    layer = make_layer("gru", "bidirectional")
    inputs, mask, _ = random_batch("gru", "bidirectional")
    expected = [t.numpy() for t in layer(inputs, mask=mask)]
    with mock.patch.object(fast_rnn, "gru_loop", wraps=fast_rnn.gru_loop) as gru_loop:
        with tf.GradientTape():
            actual = [t.numpy() for t in fast_rnn.run(layer, inputs, mask)]
    assert not gru_loop.called
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_settings_the_fast_path_does_not_reproduce_call_the_keras_layer():
    inputs, mask, _ = random_batch("gru", "forward")
    for layer in (
        make_layer("gru", "forward", dropout=0.5),
        make_layer("lstm", "forward", recurrent_dropout=0.5),
        keras.layers.Bidirectional(
            keras.layers.GRU(UNITS, return_sequences=True, return_state=True), merge_mode="sum"
        ),
    ):
        layer(inputs, mask=mask)
        assert not fast_rnn.uses_fast_path(layer)
        np.testing.assert_array_equal(
            fast_rnn.run(layer, inputs, mask)[0], layer(inputs, mask=mask)[0]
        )
    unbuilt = make_layer("gru", "forward")
    assert not fast_rnn.uses_fast_path(unbuilt)  # the first call builds it through Keras


def test_cudnn_stays_with_keras_where_a_gpu_would_run_it():
    layer = make_layer("gru", "forward")
    layer(*random_batch("gru", "forward")[:1])
    with mock.patch.object(fast_rnn, "cudnn_ok", return_value=True):
        assert fast_rnn.runs_cudnn(layer)
        assert not fast_rnn.uses_fast_path(layer)
    assert not fast_rnn.runs_cudnn(layer)  # no GPU here: the fast path runs


def tiny_config():
    from seq2seq.config import load_config

    return load_config(
        "quickstart",
        overrides=[
            "model.embedding_dim=16",
            "model.hidden_size=12",
            "model.dropout=0.0",
            "train.learning_rate=0.01",
            "train.clipnorm=1.0",
        ],
    )


def training_batch():
    rng = np.random.default_rng(5)
    source = rng.integers(4, 30, size=(8, 7)).astype("int32")
    target = rng.integers(4, 30, size=(8, 6)).astype("int32")
    source[:3, 5:] = 0
    source[3, 1:] = 0
    target[:2, 4:] = 0
    target_in = np.concatenate([np.full((8, 1), 2, "int32"), target[:, :-1]], axis=1)
    return (source, target_in), target


def test_a_training_step_with_the_fast_path_equals_one_with_the_keras_layers():
    """Same seed, same batch, one step of the project's trainer each way: same loss,
    same gradient norm, same weights after the update."""
    from seq2seq.training.loop import build_trainer

    results = {}
    for name, fast in (("keras", False), ("fast", True)):
        keras_only = mock.patch.object(fast_rnn, "uses_fast_path", return_value=False)
        with contextlib.nullcontext() if fast else keras_only:
            trainer = build_trainer(
                tiny_config(), tf.distribute.get_strategy(), "float32", (32, 32)
            )
            loss, tokens, norm = trainer.step(training_batch())
        results[name] = (float(loss), float(norm), [w.numpy() for w in trainer.model.weights])
    rnns = trainer.model.encoder.rnns + trainer.model.decoder.rnns
    assert all(fast_rnn.uses_fast_path(layer) for layer in rnns)
    (keras_loss, keras_norm, keras_weights), (loss, norm, weights) = results.values()
    assert loss == pytest.approx(keras_loss, rel=1e-5)
    assert norm == pytest.approx(keras_norm, rel=1e-5)
    for got, want in zip(weights, keras_weights, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)
