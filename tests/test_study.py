"""``python -m seq2seq.study``: the measurements against known answers, then a tiny study."""

from __future__ import annotations

import json
import random

import keras
import numpy as np
import pytest

from seq2seq.study.gates import gate_activations
from seq2seq.study.gradients import gradient_through_time
from seq2seq.study.run import probe_pairs
from seq2seq.study.settings import Budget, ProbeSettings, StudyError, VariantError, parse_variant

# -- gradient flow through time ---------------------------------------------------------------


def orthogonal(rng: np.random.Generator, size: int) -> np.ndarray:
    q, _ = np.linalg.qr(rng.normal(size=(size, size)))
    return q


def linear_rnn(recurrent: np.ndarray, kernel: np.ndarray) -> keras.layers.Layer:
    """h_t = W h_(t-1) + U x_t: a SimpleRNN without activation or bias (Keras multiplies
    row vectors, h_t = x_t K + h_(t-1) R, so K = U^T and R = W^T)."""
    units = recurrent.shape[0]
    layer = keras.layers.SimpleRNN(
        units, activation=None, use_bias=False, return_sequences=True, return_state=True
    )
    layer.build((None, None, kernel.shape[1]))
    layer.set_weights([kernel.T.astype("float32"), recurrent.T.astype("float32")])
    return layer


def test_linear_rnn_with_spectral_norm_half_halves_per_step():
    """All singular values of W = 0.5 Q are 0.5 and U is orthogonal, so
    ‖u^T W^k U‖ = 0.5^k exactly: the curve halves per step, padded rows included."""
    rng = np.random.default_rng(0)
    units, steps = 16, 14
    layer = linear_rnn(0.5 * orthogonal(rng, units), orthogonal(rng, units))
    inputs = rng.normal(size=(5, steps, units)).astype("float32")
    mask = np.ones((5, steps), bool)
    mask[1, 9:] = False  # a shorter row: its distances count from its own last step
    mask[3, 4:] = False
    curve = gradient_through_time(layer, inputs, mask)
    assert np.allclose(curve.relative, 0.5 ** np.arange(steps), rtol=1e-4)
    assert curve.rows.tolist() == [5] * 4 + [4] * 5 + [3] * 5


def test_spectral_norm_bounds_the_decay():
    """Any W with ‖W‖₂ = 0.5 decays at least as fast as 0.5^k (relative to distance 0)."""
    rng = np.random.default_rng(1)
    units, steps = 12, 10
    recurrent = rng.normal(size=(units, units))
    recurrent *= 0.5 / np.linalg.norm(recurrent, 2)
    layer = linear_rnn(recurrent, orthogonal(rng, units))
    curve = gradient_through_time(layer, rng.normal(size=(4, steps, units)).astype("float32"))
    assert np.all(curve.relative[1:] < 0.5 ** np.arange(1, steps) * 1.0001)


def test_plain_rnn_gradient_vanishes_faster_than_lstm():
    rng = np.random.default_rng(2)
    inputs = rng.normal(size=(16, 30, 24)).astype("float32")
    curves = {}
    for name, layer_class in (("rnn", keras.layers.SimpleRNN), ("lstm", keras.layers.LSTM)):
        keras.utils.set_random_seed(3)
        layer = layer_class(32, return_sequences=True, return_state=True)
        curves[name] = gradient_through_time(layer, inputs).relative
    rnn, lstm = curves["rnn"], curves["lstm"]
    assert np.all(rnn[1:] < lstm[1:])
    # and the gap grows with distance: the RNN loses more per step (measured: about 0.64
    # vs 0.78 per step at these settings, so 100x apart after 29 steps)
    assert rnn[29] < lstm[29] / 100 and rnn[5] > lstm[5] / 10


def test_measurement_rejects_left_padding():
    layer = keras.layers.GRU(4, return_sequences=True, return_state=True)
    mask = np.array([[False, True, True]])
    with pytest.raises(ValueError, match="right-padded"):
        gradient_through_time(layer, np.zeros((1, 3, 2), "float32"), mask)


# -- gates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer_class", "names"),
    [(keras.layers.GRU, ("update", "reset")), (keras.layers.LSTM, ("input", "forget", "output"))],
)
def test_gate_values_are_the_cells_own(layer_class, names):
    """Oracle: step the Keras cell itself and record each call of its recurrent activation
    (GRU calls it for z then r, LSTM for i, f then o)."""
    keras.utils.set_random_seed(4)
    rng = np.random.default_rng(4)
    layer = layer_class(6, return_sequences=True, return_state=True)
    inputs = rng.normal(size=(3, 5, 4)).astype("float32")
    mask = np.ones((3, 5), bool)
    mask[1, 3:] = False
    gates = gate_activations(layer, inputs, mask)

    cell, recorded = layer.cell, []
    activation = cell.recurrent_activation

    def record(x):
        recorded.append(np.asarray(activation(x)))
        return activation(x)

    cell.recurrent_activation = record
    states = [
        np.zeros((3, 6), "float32") for _ in range(2 if layer_class is keras.layers.LSTM else 1)
    ]
    for t in range(5):
        _, states = cell(inputs[:, t], states)
        states = list(states) if isinstance(states, list | tuple) else [states]
    cell.recurrent_activation = activation
    per_step = np.array(recorded).reshape(5, len(names), 3, 6)  # [t, gate, batch, unit]
    for index, name in enumerate(names):
        expected = per_step[:, index].transpose(1, 0, 2)[mask].ravel()
        np.testing.assert_allclose(gates[name], expected, rtol=1e-5, atol=1e-6)


def test_gates_need_a_gated_layer():
    with pytest.raises(ValueError, match="not a GRU or LSTM"):
        gate_activations(keras.layers.SimpleRNN(3, return_sequences=True), np.zeros((1, 2, 2)))


# -- variants and probe data ------------------------------------------------------------------


def test_variant_names():
    variant = parse_variant("LSTM-bi-residual-2layer-noclip")
    assert variant.name == "lstm-bi-2layer-residual-noclip"
    assert (variant.cell, variant.bidirectional, variant.layers) == ("lstm", True, 2)
    assert variant.residual and not variant.clip and variant.attention == "bahdanau"
    assert parse_variant("rnn-uni-noattn").attention == "none"
    for bad, reason in [
        ("transformer-bi", "must start with a cell"),
        ("gru-sideways", "direction"),
        ("gru-bi-residual", "residual connections join stacked layers"),
        ("gru-bi-1layer", "2 or more"),
        ("gru-bi-noattn-luong", "conflicts"),
        ("gru-bi-fast", "unknown option 'fast'"),
    ]:
        with pytest.raises(VariantError, match=reason):
            parse_variant(bad)


@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_probe_pairs(task):
    settings = ProbeSettings(task=task, payload=3, symbols=5, distractors=4)
    sources, targets = probe_pairs(settings, 12, 50, np.random.default_rng(0))
    assert sources.shape == (50, 12) and targets.shape == (50, 3)
    payload = sources[:, :3] if task == "copy" else sources[:, 2::-1]
    assert np.array_equal(targets, payload)
    assert sources[:, :3].min() >= 4 and sources[:, :3].max() < 9
    assert sources[:, 3:].min() >= 9 and sources[:, 3:].max() < 13  # distractors only


def test_budgets_spread_the_dev_evaluations_evenly():
    steps = Budget(steps=100, evals=4)
    done, points = 0, []
    for step in range(1, 101):
        if steps.evaluation_due(done, step, 0.0):
            done, points = done + 1, [*points, step]
    assert points == [25, 50, 75, 100] and steps.done(100, 0.0) and not steps.done(99, 1e9)
    minutes = Budget(minutes=2.0, evals=4)
    assert minutes.evaluation_due(0, 1, 30.0) and not minutes.evaluation_due(1, 2, 59.9)
    assert minutes.done(10**6, 120.0) and not minutes.done(10**6, 119.9)
    with pytest.raises(StudyError, match="exactly one budget"):
        Budget(steps=10, minutes=1.0).check()


# -- the command line -------------------------------------------------------------------------

UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
TARGET = ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"]
TINY_MODEL = [
    "data.corpus=tsv",
    "data.reverse=false",
    "data.max_pairs=null",
    "data.tokenizer=word",
    "data.source_vocab_size=64",
    "data.target_vocab_size=64",
    "data.max_source_length=10",
    "data.max_target_length=10",
    "model.embedding_dim=16",
    "model.hidden_size=16",
    "train.batch_size=32",
    "train.dev_bleu_sentences=8",
    "decode.max_length=12",
]


@pytest.fixture(scope="module")
def tiny_corpus(tmp_path_factory):
    rng = random.Random(5)
    pairs = set()
    while len(pairs) < 300:
        digits = [rng.randrange(10) for _ in range(rng.randint(1, 8))]
        pairs.add(
            (" ".join(UNITS[d] for d in digits) + " .", " ".join(TARGET[d] for d in digits) + " .")
        )
    path = tmp_path_factory.mktemp("study-data") / "digits.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in sorted(pairs)), encoding="utf-8")
    return path


def study_args(output, corpus, *extra: str) -> list[str]:
    return [
        "--preset",
        "quickstart",
        "--output",
        str(output),
        "--no-progress",
        *extra,
        *TINY_MODEL,
        f"data.path={corpus}",
    ]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--variants", "gru-bi,elman-bi"], "bad variant name 'elman-bi'"),
        (["--steps", "0"], "--steps 0 is too small"),
        (["--steps", "5", "--evals", "10"], "--steps 5 is too small"),
        (["--budget-minutes", "-1"], "--budget-minutes is -1.0"),
        (["--probe-lengths", "2,20"], "probe length 2"),
    ],
)
def test_bad_requests_exit_2(tmp_path, tiny_corpus, capsys, extra, message):
    from seq2seq.study.__main__ import main

    assert main(study_args(tmp_path / "study", tiny_corpus, *extra)) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "study").exists()


def test_two_budgets_are_refused(tmp_path, tiny_corpus):
    from seq2seq.study.__main__ import main

    with pytest.raises(SystemExit) as stop:
        main(study_args(tmp_path / "s", tiny_corpus, "--steps", "10", "--budget-minutes", "1"))
    assert stop.value.code == 2


TINY_STUDY = ["--steps", "6", "--evals", "2", "--probe-lengths", "6", "--probe-steps", "3"]


@pytest.fixture(scope="module")
def tiny_study(tmp_path_factory, tiny_corpus):
    """Two variants (a plain RNN and a gated, stacked, residual one) and the probe."""
    from seq2seq.study.__main__ import main

    models = tmp_path_factory.mktemp("study-models")
    output = models / "tiny-study"
    variants = ["--variants", "rnn-uni,lstm-bi-2layer-residual"]
    assert main(study_args(output, tiny_corpus, *TINY_STUDY, *variants)) == 0
    return output


@pytest.mark.slow
def test_tiny_study_writes_every_report_file(tiny_study):
    from seq2seq.study.report import FIGURES, TABLES

    for name in [*FIGURES.values(), *TABLES, "gates.csv", "probe.csv", "results.json"]:
        assert (tiny_study / name).is_file() and (tiny_study / name).stat().st_size > 0, name
    report = (tiny_study / "report.md").read_text(encoding="utf-8")
    for figure in FIGURES.values():
        assert f"]({figure})" in report
    results = json.loads((tiny_study / "results.json").read_text(encoding="utf-8"))
    assert [row["variant"] for row in results["table"]] == ["rnn-uni", "lstm-bi-2layer-residual"]
    rnn, lstm = results["variants"]
    assert rnn["steps"] == lstm["steps"] == 6
    assert len(rnn["gradient_norms"]) == 6 and [p["step"] for p in rnn["dev_curve"]] == [0, 3, 6]
    assert rnn["gates"]["trained"] is None and set(lstm["gates"]["trained"]) == {
        "input",
        "forget",
        "output",
    }
    assert lstm["parameters"] > rnn["parameters"]
    assert [(r["cell"], r["length"]) for r in results["probe"]] == [
        ("rnn", 6),
        ("gru", 6),
        ("lstm", 6),
    ]


@pytest.mark.slow
def test_resume_skips_finished_runs_and_keeps_settings(tiny_study, tiny_corpus, capsys):
    from seq2seq.study.__main__ import main

    files = sorted((tiny_study / "variants").glob("*.json")) + sorted(
        (tiny_study / "probe").glob("*.json")
    )
    before = {path: path.stat().st_mtime_ns for path in files}
    args = study_args(tiny_study, tiny_corpus, *TINY_STUDY, "--variants", "rnn-uni", "--resume")
    assert main(args) == 0
    assert {path: path.stat().st_mtime_ns for path in files} == before
    # the report still covers both variants (the resumed list adds to the saved one)
    results = json.loads((tiny_study / "results.json").read_text(encoding="utf-8"))
    assert len(results["table"]) == 2
    # a resumed study must keep its budget, and a new study needs a new folder
    changed = study_args(tiny_study, tiny_corpus, "--steps", "12", "--resume")
    assert main(changed) == 2
    assert "holds a study with other budget" in capsys.readouterr().err
    assert main(study_args(tiny_study, tiny_corpus, *TINY_STUDY)) == 2
    assert "already holds a study; pass --resume" in capsys.readouterr().err


@pytest.mark.slow
def test_study_tab_shows_the_report(tiny_study):
    import gradio as gr

    from apps.study_tab import list_studies, show_study

    models = tiny_study.parent
    assert [p.name for p in list_studies(models)] == ["tiny-study"]
    text, images = show_study(models, "tiny-study")
    assert "## Equal-budget comparison" in text and "`lstm-bi-2layer-residual`" in text
    assert "![" not in text
    assert len(images) == len((tiny_study / "report.md").read_text().split("![")) - 1
    assert all(image.ndim == 3 and caption for image, caption in images)
    with pytest.raises(gr.Error, match="Unknown study"):
        show_study(models, "../tiny-study")
    empty, no_images = show_study(tiny_study / "variants", None)
    assert "No study in" in empty and no_images == []
