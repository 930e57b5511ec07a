"""The encoder-decoder: every architecture builds, trains a step, round-trips through .keras."""

from __future__ import annotations

import dataclasses

import keras
import numpy as np
import pytest

from seq2seq.config import DecodeConfig, ModelConfig
from seq2seq.constants import END, START
from seq2seq.model import (
    BahdanauAttention,
    Decoder,
    Encoder,
    LuongAttention,
    build_model,
    parameter_counts,
    parameter_counts_per_cell,
)
from seq2seq.model.losses import MaskedCrossEntropy

SOURCE_VOCAB, TARGET_VOCAB = 40, 50


def batch(seed: int = 0):
    rng = np.random.default_rng(seed)
    source = rng.integers(4, SOURCE_VOCAB, (6, 7)).astype("int32")
    source[:3, 5:] = 0  # right padding
    target = rng.integers(4, TARGET_VOCAB, (6, 6)).astype("int32")
    target[2:, 4:] = 0
    return source, target


def tiny(**settings) -> ModelConfig:
    return ModelConfig(embedding_dim=16, hidden_size=16, dropout=0.1, **settings)


# Every (cell, attention) pair, with the direction alternating so that every (cell,
# direction) and (attention, direction) pair occurs too (pairwise coverage: 9 models, not
# 18); input feeding on the bidirectional attention models and a 2-layer decoder on the
# unidirectional LSTMs, then the options the product leaves out.
PAIRWISE = [
    ("gru", True, "bahdanau"),
    ("gru", False, "luong"),
    ("gru", True, "none"),
    ("lstm", False, "bahdanau"),
    ("lstm", True, "luong"),
    ("lstm", False, "none"),
    ("rnn", True, "bahdanau"),
    ("rnn", False, "luong"),
    ("rnn", True, "none"),
]
COMBINATIONS = [
    dict(
        cell=cell,
        bidirectional=bi,
        attention=attention,
        input_feeding=attention != "none" and bi,
        decoder_layers=2 if cell == "lstm" and not bi else 1,
    )
    for cell, bi, attention in PAIRWISE
] + [
    dict(cell="gru", attention="luong", luong_score="dot", bidirectional=False),
    dict(cell="lstm", attention="bahdanau", input_feeding=True, bidirectional=False),
    dict(cell="gru", encoder_layers=2, decoder_layers=2, residual=True),
    dict(cell="gru", tie_embeddings=True, bidirectional=False),
    dict(cell="gru", copy_attention=True),
    dict(cell="lstm", attention="luong", input_feeding=True, copy_attention=True),
]


def check_search(result, n: int, max_length: int, source_length: int = 7):
    assert result.ids.ndim == 3 and result.ids.shape[:2] == (6, n)
    assert result.scores.shape == (6, n)
    steps = result.ids.shape[2]
    assert 1 <= steps <= max_length
    assert result.attention.shape == (6, n, steps, source_length)
    assert np.all(np.isfinite(result.scores))


# The fast tier builds two models (GRU, Bahdanau, input feeding; GRU with copy attention);
# the sweep is slow.
FAST = {0, len(COMBINATIONS) - 2}


@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(
            settings,
            id="-".join(map(str, settings.values())),
            marks=() if index in FAST else pytest.mark.slow,
        )
        for index, settings in enumerate(COMBINATIONS)
    ],
)
def test_every_architecture_trains_steps_and_decodes(settings):
    """Each architecture is built once: one training step, the stepping cells, then the
    compiled greedy and beam searches (beam size 1 is greedy)."""
    from seq2seq.search.searcher import Searcher

    keras.utils.set_random_seed(0)
    model = build_model(tiny(**settings), SOURCE_VOCAB, TARGET_VOCAB)
    model.compile(optimizer=keras.optimizers.Adam(clipnorm=1.0), loss=MaskedCrossEntropy())
    source, target = batch()
    # the compiled train step that fit() runs, without fit()'s dataset and callback set-up
    logs = model.train_on_batch((source, target), target, return_dict=True)
    assert np.isfinite(logs["loss"])
    assert model.optimizer.iterations.numpy() == 1
    logits = model((source, target))
    assert logits.shape == (6, 6, TARGET_VOCAB) and logits.dtype == "float32"
    memory, mask, states = model.encode(source)
    step_logits, new_states, attention = model.decode_step(
        np.full((6,), 2, "int32"), states, memory, mask
    )
    assert step_logits.shape == (6, TARGET_VOCAB)
    assert attention.shape == (6, 7)
    assert len(new_states) == len(states)

    search = Searcher(model)
    source = source.copy()
    source[2, 1:] = 0  # lengths 5, 5, 1, 7, 7, 7
    greedy = search.greedy(source, 6)
    check_search(greedy, 1, 6)
    beam = search.beam(source, beam_size=3, n_best=2, max_length=6)
    check_search(beam, 2, 6)
    assert np.all(np.diff(beam.scores, axis=1) <= 0)
    single = search.beam(source, beam_size=1, length_penalty=0.0, max_length=6)
    np.testing.assert_array_equal(single.ids, greedy.ids)
    np.testing.assert_array_equal(single.scores, greedy.scores)
    if settings.get("attention", "bahdanau") == "none":
        assert not np.any(greedy.attention)


def test_stepping_the_cells_matches_the_whole_sequence_layers():
    """Decoding uses the cells; training uses the layers: they must agree."""
    model = build_model(tiny(cell="lstm", decoder_layers=2, residual=True), 40, 50)
    source, target = batch(1)
    target = target[:1]
    source = source[:1]
    full = model((source, target)).numpy()[0]
    memory, mask, states = model.encode(source)
    for t in range(target.shape[1]):
        if target[0, t] == 0:
            break
        logits, states, _ = model.decode_step(target[:, t], states, memory, mask)
        np.testing.assert_allclose(logits.numpy()[0], full[t], atol=1e-4)


def test_attention_ignores_padding():
    model = build_model(tiny(attention="bahdanau"), 40, 50)
    source, target = batch()
    memory, mask, states = model.encode(source)
    _, _, attention = model.decode_step(np.full((6,), 2, "int32"), states, memory, mask)
    attention = attention.numpy()
    assert np.allclose(attention[:3, 5:], 0.0)
    assert np.allclose(attention.sum(-1), 1.0, atol=1e-5)


def copy_task(rng, low: int, high: int, rows: int):
    """Sources of 3-5 ids drawn from [low, high); each target repeats its source."""
    source = np.zeros((rows, 7), "int32")
    target_in, target_out = np.zeros_like(source), np.zeros_like(source)
    for row in range(rows):
        length = int(rng.integers(3, 6))
        ids = rng.integers(low, high, length)
        source[row, :length] = target_out[row, :length] = target_in[row, 1 : length + 1] = ids
        target_in[row, 0], target_out[row, length] = START, END
    return source, target_in, target_out


def test_copy_attention_copies_ids_it_never_generated():
    """A pointer-generator carries ids it never saw as targets from source to output; the
    same model without copying cannot produce them (the names-and-numbers case)."""
    from seq2seq.search.searcher import Searcher

    vocab = 400
    identity = np.where(np.arange(vocab) >= 4, np.arange(vocab), -1)
    exact = {}
    for copy in (True, False):
        keras.utils.set_random_seed(0)
        config = ModelConfig(embedding_dim=16, hidden_size=32, dropout=0.0, copy_attention=copy)
        model = build_model(config, vocab, vocab, copy_table=identity)
        model.compile(optimizer=keras.optimizers.Adam(0.01), loss=MaskedCrossEntropy())
        rng = np.random.default_rng(0)
        source, target_in, target_out = copy_task(rng, 4, 300, 3000)
        model.fit((source, target_in), target_out, batch_size=50, epochs=4, verbose=0)
        unseen, _, expected = copy_task(rng, 300, vocab, 50)  # never a training target
        searcher = Searcher(model)
        outputs = searcher.greedy(unseen, 8).ids[:, 0]
        exact[copy] = sum(
            list(output[: list(output).index(END)]) == list(want[: list(want).index(END)])
            for output, want in zip(outputs, expected, strict=True)
            if END in output
        )
        if copy:  # beam, sampling and streaming take its log-probabilities as they are
            beam = searcher.beam(unseen, beam_size=3, max_length=8)
            assert (beam.ids[:, 0, :5] == outputs[:, :5]).mean() > 0.9
            sampled = searcher.sample(unseen, max_length=8, temperature=0.1, seed=1)
            assert (sampled.ids[:, 0, :5] == outputs[:, :5]).mean() > 0.9
            chunks = list(searcher.stream(unseen, DecodeConfig(max_length=8), chunk_steps=3))
            assert len(chunks) > 1
            np.testing.assert_array_equal(chunks[-1].ids[:, 0], outputs)
    assert exact[True] >= 45, exact
    assert exact[False] <= 2, exact


def test_copy_attention_output_is_a_distribution_that_moves_mass_to_source_ids():
    table = np.full(SOURCE_VOCAB, -1, "int32")
    table[4:20] = np.arange(4, 20) + 10  # source id i is target id i + 10
    model = build_model(tiny(copy_attention=True), SOURCE_VOCAB, TARGET_VOCAB, table)
    source, target = batch()
    source = np.where(source >= 20, 5, source)  # every real source id has a target piece
    scores = model((source, target)).numpy()
    totals = np.exp(scores).sum(-1)
    np.testing.assert_allclose(totals, 1.0, atol=1e-4)  # all attention lands on mapped ids
    never = np.setdiff1d(np.arange(TARGET_VOCAB), table[source[source > 0]])
    copied = np.unique(table[source[source > 0]])
    # generating alone would give every id a share; copying adds the attended ones' mass
    assert np.exp(scores[..., copied]).mean() > np.exp(scores[..., never]).mean()
    model.copy_table.assign(np.full(SOURCE_VOCAB, -1, "int32"))  # nothing can be copied
    assert np.exp(model((source, target)).numpy()).sum(-1).max() < 1.0


def test_copy_attention_reads_the_memory_where_the_source_holds_the_last_token():
    """CopyNet's selective read: the step after writing a source piece sees the encoder
    output at that piece (the mean over repeats), so it can tell "19" from "199"."""
    decoder = Decoder(50, 4, 8, 3, copy_attention=True)
    memory = np.arange(12, dtype="float32").reshape(1, 4, 3)  # position s holds 3s..3s+2
    copy_ids = np.array([[7, 9, 7, -1]], "int32")  # 7 twice, 9 once, -1 copies nothing
    embedded = np.zeros((1, 3, 4), "float32")
    tokens = np.array([[9, 7, 5]], "int32")
    read = np.asarray(decoder.rnn_inputs(embedded, tokens, memory, copy_ids))[0, :, 4:]
    np.testing.assert_allclose(read[0], memory[0, 1])
    np.testing.assert_allclose(read[1], (memory[0, 0] + memory[0, 2]) / 2)
    np.testing.assert_allclose(read[2], 0.0)  # 5 is not in the source
    plain = Decoder(50, 4, 8, 3)
    assert plain.rnn_inputs(embedded, tokens, memory, None) is embedded


def test_copy_attention_needs_attention_and_a_table_of_the_source_size():
    with pytest.raises(ValueError, match="copy_attention needs an attention mechanism"):
        Decoder(50, 16, 16, 32, attention="none", copy_attention=True)
    model = build_model(tiny(copy_attention=True), SOURCE_VOCAB, TARGET_VOCAB)
    with pytest.raises(ValueError, match="3 entries for a source vocabulary of 40"):
        model.set_copy_table([1, 2, 3])
    with pytest.raises(ValueError, match="has no copy_attention"):
        build_model(tiny(), SOURCE_VOCAB, TARGET_VOCAB).set_copy_table(np.zeros(40))


@pytest.mark.parametrize("copy", [False, True])
def test_save_and_load_give_identical_outputs(tmp_path, copy):
    table = np.arange(SOURCE_VOCAB) % TARGET_VOCAB
    model = build_model(
        tiny(cell="lstm", attention="luong", copy_attention=copy),
        SOURCE_VOCAB,
        TARGET_VOCAB,
        table,
    )
    model.compile(optimizer="adam", loss=MaskedCrossEntropy(label_smoothing=0.1))
    source, target = batch()
    model.train_on_batch((source, target), target)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(model((source, target)), loaded((source, target)))
    assert loaded.get_config()["cell"] == "lstm"
    if copy:
        np.testing.assert_array_equal(loaded.copy_table.numpy(), table)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """A trained-for-one-step model saved as .keras, with its outputs on ``batch()``."""
    model = build_model(tiny(cell="gru", attention="bahdanau"), SOURCE_VOCAB, TARGET_VOCAB)
    model.compile(optimizer="adam", loss=MaskedCrossEntropy())
    source, target = batch()
    model.train_on_batch((source, target), target)
    path = tmp_path_factory.mktemp("saved") / "model.keras"
    model.save(path)
    return path, model((source, target)).numpy()


def test_saved_models_survive_a_renamed_config_field(saved_model, monkeypatch):
    """The .keras file holds the model's own architecture fields, not ``ModelConfig``:
    renaming a config field must not break loading."""
    import seq2seq.config
    import seq2seq.model.seq2seq

    fields = [
        ("units" if f.name == "hidden_size" else f.name, f.type, f)
        for f in dataclasses.fields(ModelConfig)
    ]
    renamed = dataclasses.make_dataclass(
        "ModelConfig",
        [(name, kind, dataclasses.field(default=f.default)) for name, kind, f in fields],
    )
    monkeypatch.setattr(seq2seq.config, "ModelConfig", renamed)
    monkeypatch.setattr(seq2seq.model.seq2seq, "ModelConfig", renamed)
    path, expected = saved_model
    loaded = keras.models.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(loaded(batch()), expected)


def test_files_saved_with_the_old_model_config_layout_still_load(saved_model, tmp_path):
    import json
    import zipfile

    path, expected = saved_model
    with zipfile.ZipFile(path) as archive:
        files = {name: archive.read(name) for name in archive.namelist()}
    saved = json.loads(files["config.json"])
    inner = saved["config"]
    architecture = {key: inner.pop(key) for key in list(inner) if key in ARCHITECTURE_KEYS}
    inner["model_config"] = architecture  # the layout of files saved before the change
    files["config.json"] = json.dumps(saved).encode()
    old = tmp_path / "old.keras"
    with zipfile.ZipFile(old, "w") as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    loaded = keras.models.load_model(old, safe_mode=True)
    np.testing.assert_array_equal(loaded(batch()), expected)
    assert loaded.get_config()["hidden_size"] == 16 and "model_config" not in loaded.get_config()


ARCHITECTURE_KEYS = {f.name for f in dataclasses.fields(ModelConfig)}


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Encoder(40, 16, 16, cell="foo"), "cell is 'foo'; allowed: gru, lstm, rnn"),
        (lambda: Encoder(40, 16, 0), "units is 0; allowed: a whole number >= 1"),
        (lambda: Encoder(40, 16, 16, dropout=1.0), "dropout is 1.0; allowed: 0 <= dropout < 1"),
        (lambda: Decoder(50, 16, 16, 32, attention="dot"), "attention is 'dot'; allowed: bahdanau"),
        (lambda: Decoder(50, 16, 16, 32, cell="GRU"), "cell is 'GRU'"),
        (
            lambda: Decoder(50, 16, 16, 32, attention="none", input_feeding=True),
            "input_feeding needs an attention mechanism",
        ),
        (lambda: Decoder(50, 8, 16, 32, tie_embeddings=True), "embedding_dim == units"),
        (lambda: LuongAttention(16, 32, score_mode="cosine"), "score_mode is 'cosine'"),
        (lambda: BahdanauAttention(-1), "units is -1"),
    ],
)
def test_layers_refuse_bad_arguments_by_name(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize(
    "layer",
    [
        lambda: Encoder(40, 16, 8, num_layers=2, cell="lstm", bidirectional=False, dropout=0.1),
        lambda: Decoder(50, 16, 16, 32, cell="lstm", attention="luong", input_feeding=True),
        lambda: BahdanauAttention(12),
        lambda: LuongAttention(16, 32, score_mode="dot"),
    ],
)
def test_layer_configs_rebuild_the_same_layer(layer):
    original = layer()
    config = original.get_config()
    rebuilt = type(original).from_config(config)
    assert rebuilt.get_config() == config


def test_parameter_counts_per_cell_match_the_formulas():
    """Counted on built models; expected values from the cell equations, not the counter."""
    embedding, hidden = 16, 16
    model = build_model(tiny(cell="gru", bidirectional=True), 40, 50)
    counts = parameter_counts_per_cell(model)
    assert counts["gru"] == parameter_counts(model)
    # one bidirectional layer: 2 directions x gates x (input + recurrent kernels + biases);
    # Keras's GRU (reset_after) has two bias vectors, LSTM and SimpleRNN one.
    per_gate = embedding * hidden + hidden * hidden
    assert counts["rnn"]["encoder rnn"] == 2 * (per_gate + hidden)
    assert counts["gru"]["encoder rnn"] == 2 * 3 * (per_gate + 2 * hidden)
    assert counts["lstm"]["encoder rnn"] == 2 * 4 * (per_gate + hidden)
    assert counts["gru"]["source embedding"] == 40 * embedding
    assert counts["lstm"]["bridge"] == 2 * (2 * hidden * hidden + hidden)  # bridge_h and _c
    for cell in ("gru", "lstm", "rnn"):
        parts = counts[cell]
        assert parts["total"] == sum(v for k, v in parts.items() if k != "total")
        assert parts["output projection"] == hidden * 50 + 50


def test_mixed_precision_keeps_logits_float32():
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(tiny(), SOURCE_VOCAB, TARGET_VOCAB)
        source, target = batch()
        assert model((source, target)).dtype == "float32"
    finally:
        keras.mixed_precision.set_global_policy("float32")


def test_masked_loss_ignores_padding_and_smoothing_raises_it():
    y_true = np.array([[5, 6, 0, 0]])
    logits = np.full((1, 4, 10), -5.0, "float32")
    logits[0, 0, 5] = logits[0, 1, 6] = 5.0
    logits[0, 2:, :] = np.random.default_rng(0).normal(size=(2, 10))  # junk at PAD
    plain = float(MaskedCrossEntropy()(y_true, logits))
    assert plain < 1e-3
    assert float(MaskedCrossEntropy(0.1)(y_true, logits)) > plain


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_masked_loss_matches_its_definition(smoothing):
    """(1 - e) * -log p(y) + e * mean_v(-log p(v)), averaged over non-PAD targets."""
    rng = np.random.default_rng(1)
    y_true = np.array([[5, 6, 7, 0], [1, 9, 0, 0]])
    logits = rng.normal(scale=3.0, size=(2, 4, 10)).astype("float32")
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    picked = np.take_along_axis(log_probs, y_true[..., None], -1)[..., 0]
    per_token = -(1 - smoothing) * picked - smoothing * log_probs.mean(-1)
    expected = per_token[y_true != 0].mean()
    actual = float(MaskedCrossEntropy(smoothing)(y_true, logits))
    assert actual == pytest.approx(expected, rel=1e-5)
