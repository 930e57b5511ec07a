"""``seq2seq.data.prepare`` / ``seq2seq.prepare``: a corpus into token-id shards, once.

The prepared splits must be the in-memory loader's (``corpora.loading``), pair for pair;
a folder is only ever used with its manifest, and every fault leaves nothing half-made.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import random

import numpy as np
import pytest

from seq2seq.config import DataConfig
from seq2seq.data.corpora.loading import load_splits
from seq2seq.data.corpora.spec import CorpusError
from seq2seq.data.corpus_rows import components
from seq2seq.data.prepare import IN_PROGRESS_FILE, ShardWriter, ensure_prepared, prepare
from seq2seq.data.prepared import MANIFEST_FILE, PreparedDataError, open_prepared

WORDS = "red green blue cat dog house tree river stone cloud bird fish lamp road city".split()


def linked_pairs(count: int, seed: int = 0) -> list[tuple[str, str]]:
    """Pairs where many sentences repeat on one side or the other, so groups span several
    pairs and chains (a-b, b-c) link across them, as in Tatoeba."""
    rng = random.Random(seed)
    sources = [" ".join(rng.choices(WORDS, k=rng.randint(2, 6))) for _ in range(count // 2)]
    targets = [" ".join(rng.choices(WORDS, k=rng.randint(2, 6))).upper() for _ in range(count // 2)]
    pairs = {(rng.choice(sources), rng.choice(targets)) for _ in range(count)}
    return sorted(pairs, key=lambda pair: rng.random())


def write_tsv(path, pairs) -> str:
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return str(path)


def word_data(path: str, **fields) -> DataConfig:
    base = {
        "corpus": "tsv",
        "path": path,
        "tokenizer": "word",
        "source_vocab_size": 40,
        "target_vocab_size": 40,
        "max_source_length": 5,
        "max_target_length": 6,
        "dev_fraction": 0.15,
        "test_fraction": 0.15,
        "min_shards": 4,
    }
    return DataConfig(**{**base, **fields})


def train_records(folder) -> list[tuple[list[int], list[int]]]:
    """The train pairs in corpus order: pair k is record k // N of shard k mod N."""
    from seq2seq.data.pipeline import read_records

    shards = [
        [(s.numpy().tolist(), t.numpy().tolist()[:-1]) for (s, _), t in read_records([f], False)]
        for f in folder.files("train")
    ]
    total = sum(map(len, shards))
    return [shards[k % len(shards)][k // len(shards)] for k in range(total)]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    return write_tsv(folder / "pairs.tsv", linked_pairs(600))


@pytest.fixture(scope="module")
def prepared(corpus, tmp_path_factory):
    output = tmp_path_factory.mktemp("prepared") / "out"
    return prepare(word_data(corpus), output, show_progress=False).folder


def test_components_join_pairs_that_share_a_sentence_on_either_side():
    first = np.array([0, 1, 1, 2, 3, 4])  # pairs 1-2 share a first sentence
    second = np.array([0, 1, 2, 2, 3, 3])  # 2-3 and 4-5 share a second one
    label = components(first, second)
    assert label[1] == label[2] == label[3]
    assert label[4] == label[5]
    assert len({label[0], label[1], label[4]}) == 3


def test_the_splits_are_the_in_memory_loaders_pair_for_pair(corpus, prepared):
    data = word_data(corpus)
    old = load_splits(data)
    groups = {pair.group for pair in old["train"]}
    assert len(groups) < len(old["train"]), "the corpus must have groups of several pairs"
    for split in ("dev", "test"):
        assert prepared.text_pairs(split) == [(p.source, p.target) for p in old[split]]
    expected = in_memory_train_ids(data, old["train"], *prepared_tokenizers(prepared))
    assert train_records(prepared) == expected
    dropped = sum(v for k, v in prepared.manifest["dropped"].items() if k.startswith("train"))
    assert dropped == len(old["train"]) - len(expected) > 0  # the length filter counted


def in_memory_train_ids(data, pairs, source, target) -> list[tuple[list[int], list[int]]]:
    """What the in-memory path trained on: every pair encoded, then length-filtered."""
    encoded = zip(
        source.encode_batch([p.source for p in pairs]),
        target.encode_batch([p.target for p in pairs]),
        strict=True,
    )
    return [
        (s, t)
        for s, t in encoded
        if 0 < len(s) <= data.max_source_length and 0 < len(t) <= data.max_target_length
    ]


def prepared_tokenizers(folder):
    from seq2seq.data.tokenizers import load_tokenizer

    return load_tokenizer(folder.source_vocab), load_tokenizer(folder.target_vocab)


def test_max_pairs_keeps_the_same_pairs_as_the_in_memory_cap(corpus, tmp_path):
    data = word_data(corpus, max_pairs=200)
    folder = prepare(data, tmp_path / "capped", show_progress=False).folder
    old = load_splits(data)
    assert folder.manifest["capped_by_max_pairs"] == folder.manifest["rows"] - 200
    for split in ("dev", "test"):
        assert folder.text_pairs(split) == [(p.source, p.target) for p in old[split]]


def test_manifest_counts_and_target_counts_match_the_shards(prepared):
    from seq2seq.constants import END

    records = train_records(prepared)
    assert prepared.pairs("train") == len(records)
    counts = np.zeros(prepared.manifest["target_vocab_size"])
    for _, target in records:
        np.add.at(counts, target, 1)
    counts[END] += len(records)
    np.testing.assert_array_equal(prepared.target_counts(), counts)
    assert prepared.target_tokens == int(counts.sum())
    shards = prepared.shards("train")
    assert len(shards) == 4 and max(s.pairs for s in shards) - min(s.pairs for s in shards) <= 1
    for shard in shards:
        assert sum(shard.lengths) == shard.pairs


def test_two_workers_see_every_pair_once_an_epoch_in_the_same_number_of_steps(prepared):
    import tensorflow as tf

    from seq2seq.config import Config, TrainConfig
    from seq2seq.training.data import PreparedData, dataset_function, epoch_schedule

    config = Config(
        data=dataclasses.replace(word_data("unused"), bucket_width=2),
        train=TrainConfig(batch_size=8, shuffle_buffer=50),
    )
    data = PreparedData(prepared, *prepared_tokenizers(prepared))
    schedule = epoch_schedule(config, replicas=2, prepared=data, pipelines=2)
    assert schedule.steps and not schedule.repeat
    make = dataset_function(config, data, epoch=3, schedule=schedule)
    seen, batches = [], []
    for index in (0, 1):
        context = tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=index)
        count = 0
        for (source, _), target_out in make(context):
            count += 1
            for s, t in zip(source.numpy(), target_out.numpy(), strict=True):
                if (t != 0).any():  # filler batches carry no target token
                    seen.append((tuple(int(i) for i in s if i), tuple(int(i) for i in t if i)))
        batches.append(count)
    assert batches == [schedule.steps, schedule.steps]
    expected = [(tuple(s), (*t, 3)) for s, t in train_records(prepared)]
    assert sorted(seen) == sorted(expected)


def test_an_unchanged_rerun_reuses_the_folder_and_another_config_is_refused(
    corpus, prepared, monkeypatch
):
    import seq2seq.data.prepare as module

    monkeypatch.setattr(module, "prepare_into", lambda *a, **k: pytest.fail("prepared again"))
    again = prepare(word_data(corpus), prepared.root, show_progress=False)
    assert again.seconds == 0.0 and again.folder.manifest == prepared.manifest
    with pytest.raises(PreparedDataError, match=r"data.max_source_length: prepared 5, config 9"):
        prepare(word_data(corpus, max_source_length=9), prepared.root, show_progress=False)
    with pytest.raises(PreparedDataError, match="another data config"):
        open_prepared(prepared.root, word_data(corpus, tokenizer="sentencepiece"))


def test_another_format_version_and_damaged_shards_are_refused(corpus, tmp_path):
    folder = prepare(word_data(corpus), tmp_path / "p", show_progress=False).folder
    manifest_path = folder.root / MANIFEST_FILE
    manifest = json.loads(manifest_path.read_text())
    manifest_path.write_text(json.dumps({**manifest, "format_version": 0}))
    with pytest.raises(PreparedDataError, match="format version 0"):
        open_prepared(folder.root)
    manifest_path.write_text(json.dumps(manifest))
    shard = folder.files("train")[1]
    content = shard.read_bytes()
    shard.write_bytes(content[:-3])
    with pytest.raises(PreparedDataError, match="train-00001.tfrecord: .* bytes, the manifest"):
        open_prepared(folder.root)
    shard.write_bytes(content[:-1] + bytes([content[-1] ^ 1]))
    with pytest.raises(PreparedDataError, match="sha256 differs"):
        open_prepared(folder.root)
    shard.write_bytes(content)
    assert open_prepared(folder.root).pairs("train") == folder.pairs("train")


def test_a_full_disk_leaves_no_folder_and_says_so(corpus, tmp_path, monkeypatch):
    def full(self, records, lengths):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ShardWriter, "write", full)
    with pytest.raises(PreparedDataError, match="the disk filled while writing"):
        prepare(word_data(corpus), tmp_path / "p", show_progress=False)
    assert not (tmp_path / "p").exists()


def test_an_interrupted_preparation_is_cleaned_up_and_others_folders_are_refused(corpus, tmp_path):
    leftover = tmp_path / "left"
    leftover.mkdir()
    (leftover / IN_PROGRESS_FILE).write_text("pid 1\n")
    (leftover / "train-00000.tfrecord").write_bytes(b"half")
    folder = prepare(word_data(corpus), leftover, show_progress=False).folder
    assert (leftover / MANIFEST_FILE).is_file() and not (leftover / IN_PROGRESS_FILE).exists()
    assert folder.pairs("train") > 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(PreparedDataError, match="not empty and is not a prepared folder"):
        prepare(word_data(corpus), mine, show_progress=False)
    assert (mine / "notes.txt").read_text() == "keep me"
    with pytest.raises(PreparedDataError, match="has no manifest.json"):
        open_prepared(mine)


def test_too_many_bad_lines_stop_with_file_and_line(tmp_path):
    lines = [f"{w} one\t{w} uno" for w in WORDS] * 4 + ["no tab here", "\tempty source"]
    path = tmp_path / "bad.tsv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(CorpusError, match=r"bad\.tsv:61: missing tab"):
        prepare(word_data(str(path)), tmp_path / "p", show_progress=False)
    assert not (tmp_path / "p").exists()


def test_an_empty_corpus_is_a_clear_error(tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_text("", encoding="utf-8")
    with pytest.raises(CorpusError, match="has no sentence pairs"):
        prepare(word_data(str(path)), tmp_path / "p", show_progress=False)


def test_the_cache_is_prepared_once_and_reused(corpus, monkeypatch):
    data = word_data(corpus, split_seed=77)
    first = ensure_prepared(data, show_progress=False)
    import seq2seq.data.prepare as module

    monkeypatch.setattr(module, "prepare_into", lambda *a, **k: pytest.fail("prepared again"))
    assert ensure_prepared(data, show_progress=False).root == first.root
    explicit = dataclasses.replace(data, prepared=str(first.root))
    assert ensure_prepared(explicit, show_progress=False).root == first.root


def test_sentencepiece_encoding_in_worker_processes_matches_one_process(tmp_path):
    pairs = linked_pairs(400, seed=3)
    corpus = write_tsv(tmp_path / "pairs.tsv", pairs)
    data = dataclasses.replace(
        word_data(corpus), tokenizer="sentencepiece", source_vocab_size=60, target_vocab_size=60
    )
    one = prepare(data, tmp_path / "one", workers=1, show_progress=False).folder
    two = prepare(data, tmp_path / "two", workers=2, show_progress=False).folder
    assert [s.sha256 for s in one.shards("train")] == [s.sha256 for s in two.shards("train")]
    assert one.manifest["vocab_fingerprint"] == two.manifest["vocab_fingerprint"]


def test_a_shared_vocabulary_cuts_both_sides_alike_and_copies_every_piece(tmp_path):
    """data.shared_vocab: one SentencePiece model for both sides, so the copy table of a
    copy-attention model maps every piece to itself; the word tokenizer is refused."""
    from seq2seq.config import ConfigError, load_config
    from seq2seq.data.tokenizers import copy_table

    corpus = write_tsv(tmp_path / "pairs.tsv", linked_pairs(400, seed=5))
    data = dataclasses.replace(
        word_data(corpus, max_source_length=20, max_target_length=20),
        tokenizer="sentencepiece",
        source_vocab_size=60,
        shared_vocab=True,
    )
    folder = prepare(data, tmp_path / "shared", show_progress=False).folder
    source, target = prepared_tokenizers(folder)
    assert source.model_proto == target.model_proto and source.vocab_size == 60
    table = copy_table(source, target)
    assert (table[4:] == range(4, 60)).all() and (table[:4] == -1).all()
    with pytest.raises(ConfigError, match="data.shared_vocab is a SentencePiece option"):
        load_config("quickstart", overrides=["data.tokenizer=word", "data.shared_vocab=true"])


def test_the_command_line_prepares_and_explains_errors(corpus, tmp_path, capsys):
    from seq2seq.prepare import main

    output = tmp_path / "cli"
    overrides = [f"{k}={v}" for k, v in dataclasses.asdict(word_data(corpus)).items() if v]
    overrides = [o for o in overrides if not o.startswith(("data_dir", "cache_dir"))]
    args = ["--preset", "quickstart", "--output", str(output)]
    args += [f"data.{o}" for o in overrides] + ["data.reverse=false", "data.max_pairs=null"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "prepared" in out and f"data.prepared={output}" in out
    assert main(args) == 0
    assert "already prepared" in capsys.readouterr().out
    assert main([*args, "data.max_source_length=7"]) == 2
    assert "data.max_source_length: prepared 5, config 7" in capsys.readouterr().err
    assert main(["--preset", "quickstart", "--output", str(tmp_path / "x"), "--workers", "0"]) == 2


def test_one_worker_knows_its_epoch_length_before_it_starts(prepared):
    from seq2seq.config import Config, TrainConfig
    from seq2seq.training.data import PreparedData, dataset_function, epoch_schedule

    config = Config(data=word_data("unused"), train=TrainConfig(batch_size=8))
    data = PreparedData(prepared, *prepared_tokenizers(prepared))
    schedule = epoch_schedule(config, replicas=1, prepared=data, pipelines=1)
    batches = list(dataset_function(config, data, 0, schedule)(tf_context()))
    real = [b for b in batches if (b[1].numpy() != 0).any()]
    assert len(batches) == len(real) == schedule.steps  # exact: no filler, nothing cut
    assert sum(int((b[1].numpy() != 0).any(axis=1).sum()) for b in real) == prepared.pairs("train")


def tf_context():
    import tensorflow as tf

    return tf.distribute.InputContext()


@pytest.mark.slow
def test_a_prepare_killed_midway_is_redone_cleanly_by_the_next_run(tmp_path):
    """SIGKILL while encoding (the marker is there, the manifest is not): the folder is
    never taken for prepared, and the same command then prepares it from scratch."""
    import os
    import signal
    import subprocess
    import sys
    import time

    corpus = write_tsv(tmp_path / "pairs.tsv", linked_pairs(60_000, seed=5))
    output = tmp_path / "out"
    overrides = [f"data.path={corpus}", "data.corpus=tsv", "data.reverse=false"]
    overrides += ["data.max_pairs=null", "data.source_vocab_size=100", "data.target_vocab_size=100"]
    command = [sys.executable, "-m", "seq2seq.prepare", "--preset", "quickstart"]
    command += ["--output", str(output), "--workers", "1", *overrides]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(output.glob("train-*.tfrecord")):
        assert process.poll() is None, "prepare ended before it wrote a shard"
        assert time.monotonic() < deadline, "no shard within 300 s"
        time.sleep(0.05)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert (output / IN_PROGRESS_FILE).is_file() and not (output / MANIFEST_FILE).exists()
    with pytest.raises(PreparedDataError, match="has no manifest.json"):
        open_prepared(output)
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "prepared" in result.stdout
    assert open_prepared(output).pairs("train") > 40_000


@pytest.mark.slow
def test_anki_spa_eng_prepares_the_in_memory_splits_and_tokenizers(shared_data_dir, tmp_path):
    """The README's es->en numbers stay comparable: same pairs, order and tokenizers."""
    from seq2seq.config import load_config
    from seq2seq.data.prepare import fit_tokenizers

    data = load_config("es-en-gru").data
    folder = prepare(data, tmp_path / "anki", show_progress=False).folder
    old = load_splits(data)
    for split in ("dev", "test"):
        assert folder.text_pairs(split) == [(p.source, p.target) for p in old[split]]
    source, target = prepared_tokenizers(folder)
    fitted = fit_tokenizers(data, [(p.source, p.target) for p in old["train"]])
    assert (fitted[0].model_proto, fitted[1].model_proto) == (
        source.model_proto,
        target.model_proto,
    )
    assert train_records(folder) == in_memory_train_ids(data, old["train"], source, target)


def test_a_data_field_added_later_at_its_default_keeps_folders_and_cache_keys(prepared, corpus):
    """A manifest written before a field existed is read as that field's default."""
    from seq2seq.data.prepared import data_hash

    data = word_data(corpus)
    manifest = json.loads((prepared.root / MANIFEST_FILE).read_text())
    older = {
        k: v for k, v in manifest["data"].items() if k not in ("split_digits", "byte_fallback")
    }
    assert open_prepared(prepared.root, data).manifest["data"] == manifest["data"]
    from seq2seq.data.prepared import config_differences

    assert config_differences({**manifest, "data": older}, data) == []
    assert config_differences(
        {**manifest, "data": older}, dataclasses.replace(data, split_digits=True)
    )
    assert data_hash(data) != data_hash(dataclasses.replace(data, split_digits=True))


def test_evaluation_reads_dev_and_test_text_and_decodes_train(corpus, prepared, monkeypatch):
    """``evaluate`` scores the prepared splits: dev/test as written (every pair, also those
    the length filter kept out of the shards), train as the tokenizers spell it back."""
    import seq2seq.data.prepare as module
    from seq2seq.config import Config
    from seq2seq.inference.evaluation import split_pairs

    config = Config(data=dataclasses.replace(word_data(corpus), prepared=str(prepared.root)))
    monkeypatch.setattr(module, "prepare_into", lambda *a, **k: pytest.fail("prepared again"))
    assert split_pairs(config, "test") == prepared.text_pairs("test")
    assert len(split_pairs(config, "test")) >= prepared.pairs("test")
    train = split_pairs(config, "train")
    assert len(train) == prepared.pairs("train")
    from seq2seq.constants import UNK

    source, _ = prepared_tokenizers(prepared)
    spelt_back = sorted(source.encode(s) for s, _ in train)
    records = sorted(s for s, _ in train_records(prepared))
    assert [ids for ids in spelt_back if UNK not in ids] == [
        ids for ids in records if UNK not in ids
    ]


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        (b"Hello there.\tHola.\n", [], "gives no training pairs"),
        (b"", [], "has no sentence pairs"),
        ("gzip", [], "has no sentence pairs"),
        (
            b"Hello there.\tHola.\nGood night.\tBuenas noches.\n",
            ["data.dev_fraction=0"],
            "leaves the dev split empty",
        ),
    ],
)
def test_tiny_or_empty_corpora_end_in_one_line_before_any_run_folder(
    tmp_path, capsys, content, extra, message
):
    """Issue 24: a one-pair TSV, an empty (gzipped) file, an empty dev split: exit 2 with one
    line naming the file, and no run folder left to block the same --output."""
    import gzip

    from seq2seq.train import main

    path = tmp_path / ("corpus.tsv.gz" if content == "gzip" else "corpus.tsv")
    path.write_bytes(gzip.compress(b"") if content == "gzip" else content)
    output = tmp_path / "run"
    args = ["--preset", "quickstart", "--output", str(output), f"data.path={path}"]
    args += ["data.corpus=tsv", "data.reverse=false", "data.max_pairs=null", *extra]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert message in err and str(path) in err and "Traceback" not in err
    assert not output.exists()


def test_given_tokenizers_never_take_the_corpus_own_cache_folder(corpus, tmp_path):
    """A fine-tuned run's tokenizers (fitted on another corpus) are prepared beside the
    cache key's folder; a later run that fits its own gets tokenizers of this corpus."""
    from seq2seq.data.prepared import cache_folder
    from seq2seq.data.tokenizers import fit_tokenizer, vocabulary_fingerprint

    data = word_data(corpus, split_seed=91)
    foreign = tuple(fit_tokenizer("word", ["alpha beta gamma"] * 3, 40) for _ in range(2))
    kept = ensure_prepared(data, foreign, show_progress=False)
    assert kept.root != cache_folder(data)
    assert kept.vocab_fingerprint == vocabulary_fingerprint(*foreign)
    own = ensure_prepared(data, show_progress=False)
    assert own.root == cache_folder(data)
    assert own.vocab_fingerprint != kept.vocab_fingerprint
    source, target = prepared_tokenizers(own)
    assert ensure_prepared(data, (source, target), show_progress=False).root == own.root
