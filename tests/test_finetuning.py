"""Fine-tuning (``train --init-from RUN``): weights, vocabulary rows and optimizer state
carried from another run; mismatches and missing runs refused in one line, exit 2."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

NEW_UNITS = ["zero", "one", "two", "three", "ten", "eleven", "twelve"]
NEW_TARGET = ["cero", "uno", "dos", "tres", "diez", "once", "doce"]


@pytest.fixture(scope="session")
def new_corpus(tmp_path_factory) -> Path:
    """Pairs that share most words with ``tiny_run``'s corpus and add six new ones."""
    import random

    rng = random.Random(5)
    pairs = set()
    while len(pairs) < 200:
        digits = [rng.randrange(len(NEW_UNITS)) for _ in range(rng.randint(1, 4))]
        source = " ".join(NEW_UNITS[d] for d in digits) + " ."
        target = " ".join(NEW_TARGET[d] for d in digits) + " ."
        pairs.add((source.capitalize(), target.capitalize()))
    path = tmp_path_factory.mktemp("new-corpus") / "pairs.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in sorted(pairs)), encoding="utf-8")
    return path


def new_config(tiny_run: Path, corpus: Path, **train):
    from seq2seq.config import load_run_config

    config = load_run_config(tiny_run / "config.yaml")
    return config.replace(
        data=dataclasses.replace(config.data, path=str(corpus)),
        train=dataclasses.replace(config.train, **{"epochs": 1, **train}),
    )


def built(config, init):
    """A model and optimizer built for ``config``'s new run, and its tokenizers."""
    import tensorflow as tf

    from seq2seq.training.data import prepare_data
    from seq2seq.training.init_from import prepare_kept
    from seq2seq.training.loop import build_trainer

    if init.vocab == "keep":
        prepared = prepare_kept(config, init, False)
    else:  # after a keep run on the same corpus (the test before): its own tokenizers still
        prepared = prepare_data(config, None, False)
    sizes = (prepared.source_tokenizer.vocab_size, prepared.target_tokenizer.vocab_size)
    trainer = build_trainer(config, tf.distribute.get_strategy(), "float32", sizes)
    return trainer.model, trainer.optimizer, prepared


def old_model(tiny_run: Path):
    from seq2seq.inference.translator import Translator

    return Translator.from_run(tiny_run, jit_compile=False)


def test_keep_copies_every_weight(tiny_run, new_corpus):
    from seq2seq.training.init_from import InitFrom, initialise_from

    init = InitFrom(tiny_run, "keep", "reset")
    model, optimizer, prepared = built(new_config(tiny_run, new_corpus), init)
    record = initialise_from(
        init, model, optimizer, prepared.source_tokenizer, prepared.target_tokenizer
    )
    old = old_model(tiny_run)
    assert prepared.target_tokenizer.vocab_size == old.target_tokenizer.vocab_size
    for theirs, ours in zip(old.model.weights, model.weights, strict=True):
        np.testing.assert_array_equal(theirs.numpy(), ours.numpy())
    assert record["target_rows_carried"] == record["target_vocab_size"]
    assert record["weights"].endswith("model.keras")


def test_extend_carries_rows_by_piece_and_starts_new_ones_at_the_mean(tiny_run, new_corpus):
    from seq2seq.training.init_from import InitFrom, initialise_from

    init = InitFrom(tiny_run, "extend", "reset")
    model, optimizer, prepared = built(new_config(tiny_run, new_corpus), init)
    new_target = prepared.target_tokenizer
    record = initialise_from(init, model, optimizer, prepared.source_tokenizer, new_target)
    old = old_model(tiny_run)
    old_target = old.target_tokenizer
    old_ids = {old_target.id_to_piece(i): i for i in range(old_target.vocab_size)}
    embedding = model.decoder.embedding.embeddings.numpy()
    old_embedding = old.model.decoder.embedding.embeddings.numpy()
    kernel = model.decoder.projection.kernel.numpy()
    old_kernel = old.model.decoder.projection.kernel.numpy()
    bias = model.decoder.projection.bias.numpy()
    old_bias = old.model.decoder.projection.bias.numpy()
    shared = new_pieces = 0
    for i in range(new_target.vocab_size):
        piece = new_target.id_to_piece(i)
        j = old_ids.get(piece, i if i < 4 else None)
        if j is None:
            new_pieces += 1
            np.testing.assert_allclose(embedding[i], old_embedding.mean(0), rtol=1e-6)
            np.testing.assert_allclose(kernel[:, i], old_kernel.mean(1), rtol=1e-6)
            np.testing.assert_allclose(bias[i], old_bias.mean(), rtol=1e-6)
        else:
            shared += 1
            np.testing.assert_array_equal(embedding[i], old_embedding[j])
            np.testing.assert_array_equal(kernel[:, i], old_kernel[:, j])
            np.testing.assert_array_equal(bias[i], old_bias[j])
    assert new_pieces == 3 and shared > 4  # diez, once, doce
    assert record["target_rows_carried"] == shared
    # every weight that is not indexed by a vocabulary is copied as it is
    recurrent = model.decoder.rnns[0].cell.kernel.numpy()
    np.testing.assert_array_equal(recurrent, old.model.decoder.rnns[0].cell.kernel.numpy())


def test_keep_optimizer_carries_adam_moments_and_step(tiny_run, new_corpus):
    from seq2seq.training.init_from import InitFrom, initialise_from, newest_state

    init = InitFrom(tiny_run, "extend", "keep")
    config = new_config(tiny_run, new_corpus, learning_rate=0.0005)
    model, optimizer, prepared = built(config, init)
    record = initialise_from(
        init, model, optimizer, prepared.source_tokenizer, prepared.target_tokenizer
    )
    state = newest_state(init.paths)
    assert record["weights"] == str(state / "model.weights.h5")
    with np.load(state / "optimizer.npz") as saved:
        arrays = [saved[name] for name in sorted(saved.files)]
    by_name = {v.name: v for v in optimizer.variables}
    assert int(by_name["iteration"].numpy()) == int(arrays[0]) == record["optimizer_step"] > 0
    assert float(by_name["learning_rate"].numpy()) == pytest.approx(0.0005)
    # a recurrent kernel's moments are copied; the new target rows' moments start at zero
    for index, variable in enumerate(optimizer.variables):
        if "decoder_gru_0" in variable.name and variable.name.endswith("kernel_momentum"):
            np.testing.assert_array_equal(variable.numpy(), arrays[index])
            break
    else:
        raise AssertionError("no recurrent kernel slot found")
    target = prepared.target_tokenizer
    old_target = old_model(tiny_run).target_tokenizer
    old_pieces = {old_target.id_to_piece(i) for i in range(old_target.vocab_size)}
    new_rows = [i for i in range(target.vocab_size) if target.id_to_piece(i) not in old_pieces]
    slot = next(
        v
        for v in optimizer.variables
        if v.name.endswith("embedding_embeddings_velocity") and "decoder" in v.name
    )
    assert new_rows and not np.any(slot.numpy()[new_rows])


def test_the_command_fine_tunes_and_records_init_from(tiny_run, new_corpus, tmp_path):
    from seq2seq.inference.ensemble import check_members
    from seq2seq.train import main

    output = tmp_path / "tuned"
    args = ["--init-from", str(tiny_run), "--output", str(output)]
    assert main([*args, f"data.path={new_corpus}", "train.epochs=1"]) == 0
    metrics = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["init_from"]["run"] == str(tiny_run)
    assert metrics["init_from"]["vocab"] == "keep"
    assert metrics["init_from"]["optimizer"] == "reset"
    # the same tokenizers: the fine-tuned run can be ensembled with the run it came from
    check_members([tiny_run, output])

    extended = tmp_path / "extended"
    args = ["--init-from", str(tiny_run), "--init-vocab", "extend", "--output", str(extended)]
    assert main([*args, "--init-optimizer", "keep", f"data.path={new_corpus}"]) == 0
    metrics = json.loads((extended / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["init_from"]["vocab"] == "extend"
    assert metrics["init_from"]["optimizer_step"] > 0
    assert metrics["target_vocab_size"] == metrics["init_from"]["target_vocab_size"]
    assert metrics["init_from"]["target_rows_carried"] < metrics["target_vocab_size"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model.cell=lstm"], "model.cell is 'gru' there but 'lstm' here"),
        (["model.hidden_size=48"], "model.hidden_size is 32 there but 48 here"),
        (["model.decoder_layers=2"], "model.decoder_layers is 1 there but 2 here"),
        (["model.attention=luong"], "model.attention is 'bahdanau' there but 'luong' here"),
    ],
)
def test_another_architecture_is_refused_in_one_line(
    tiny_run, new_corpus, tmp_path, capsys, overrides, message
):
    from seq2seq.train import main

    output = tmp_path / "refused"
    args = ["--init-from", str(tiny_run), "--output", str(output), f"data.path={new_corpus}"]
    assert main([*args, *overrides]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith("error: --init-from")
    assert not output.exists()


def test_a_missing_or_unusable_run_is_refused_in_one_line(tiny_run, tmp_path, capsys):
    from seq2seq.train import main

    output = tmp_path / "refused"
    assert main(["--init-from", str(tmp_path / "nope"), "--output", str(output)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--init-from: run folder not found" in err[0]

    broken = tmp_path / "broken"
    shutil.copytree(tiny_run, broken, ignore=shutil.ignore_patterns("logs", "backup", "eval-*"))
    (broken / "config.yaml").write_text("model: [unclosed\n", encoding="utf-8")
    assert main(["--init-from", str(broken), "--output", str(output)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "config.yaml" in err[0]

    no_state = tmp_path / "no-state"
    shutil.copytree(tiny_run, no_state, ignore=shutil.ignore_patterns("logs", "backup", "eval-*"))
    args = ["--init-from", str(no_state), "--init-optimizer", "keep", "--output", str(output)]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "use --init-optimizer reset" in err[0]

    assert main(["--init-from", str(tiny_run), "--resume", "--output", str(tiny_run)]) == 2
    assert "--resume continues one" in capsys.readouterr().err
    assert not output.exists()


def test_a_fine_tuned_run_killed_in_its_first_epoch_resumes_from_run(
    tiny_run, new_corpus, tmp_path, caplog
):
    """Killed before its first training state was in place, a fine-tuned run has no state
    to resume from: it starts from RUN's weights again, not from a random model."""
    import logging
    import os
    import subprocess
    import sys

    from conftest import REPO

    from seq2seq.train import main

    output = tmp_path / "killed"
    env = {**os.environ, "SEQ2SEQ_KILL_AT": "state:1", "PYTHONPATH": str(REPO)}
    args = ["--init-from", str(tiny_run), "--init-vocab", "extend", "--output", str(output)]
    killed = subprocess.run(
        [sys.executable, "-m", "seq2seq.train", *args, f"data.path={new_corpus}", "train.epochs=1"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO,
    )
    assert killed.returncode != 0
    assert not list((output / "backup").glob("epoch-*"))
    with caplog.at_level(logging.INFO, logger="seq2seq.training.loop"):
        assert main(["--output", str(output), "--resume"]) == 0
    assert f"starting from {tiny_run}'s weights again" in caplog.text
    metrics = json.loads((output / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["init_from"]["vocab"] == "extend"
    assert [e["epoch"] for e in metrics["epochs"]] == [1]


def test_refusals_come_before_tensorflow_loads(tiny_run, tmp_path):
    """A mismatch is answered at once: neither train nor translate imports TensorFlow."""
    import subprocess
    import sys

    from conftest import REPO

    other = tmp_path / "other"
    shutil.copytree(tiny_run, other, ignore=shutil.ignore_patterns("logs", "backup", "eval-*"))
    vocab = next(p for p in sorted((other / "target_vocab").iterdir()) if p.is_file())
    vocab.write_bytes(vocab.read_bytes() + b"\n")
    code = (
        "import sys\n"
        "from seq2seq import train, translate\n"
        f"a = train.main(['--init-from', {str(tiny_run)!r}, '--output', "
        f"{str(tmp_path / 'new')!r}, 'model.cell=lstm'])\n"
        f"b = translate.main(['--model', {str(tiny_run)!r}, '--model', {str(other)!r}, 'x'])\n"
        "heavy = sorted(n for n in ('tensorflow', 'keras') if n in sys.modules)\n"
        "print('RESULT', a, b, heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert "RESULT 2 2 []" in done.stdout, done.stdout + done.stderr
