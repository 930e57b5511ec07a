"""Issue 14: one shortening rule for dialogue inputs ("context <sep> message"): whole
oldest context turns go first, then the start of the message; the newest words are kept.
Checked on real DailyDialog conversations through the translator, evaluate's loss inputs
and ChatSession."""

from __future__ import annotations

import copy
import dataclasses
import itertools

import pytest

from seq2seq.config import DataConfig
from seq2seq.data.corpora.loading import dialogue_pairs
from seq2seq.data.corpora.readers import LineReport, read_dailydialog
from seq2seq.data.dialogue import ChatSession, build_source, drop_oldest_turns, keep_end

SEP = " <sep> "
LIMIT = 20


@pytest.fixture(scope="module")
def dialogue_translator(tiny_translator):
    """``tiny_translator`` (word tokenizer: every word is one id) posing as a 3-turn chat run
    whose inputs hold at most 20 tokens: the rule only needs the token counts."""
    translator = copy.copy(tiny_translator)
    data = dataclasses.replace(
        tiny_translator.config.data, context_turns=3, max_source_length=LIMIT
    )
    translator.config = tiny_translator.config.replace(data=data)
    return translator


@pytest.fixture(scope="module")
def real_sources(shared_data_dir) -> list[str]:
    path = shared_data_dir / "dialogue" / "dailydialog" / "dialogues_test.txt.gz"
    data = DataConfig(context_turns=3)
    sources = []
    for index, turns in itertools.islice(read_dailydialog(path, LineReport()), 60):
        pairs, _ = dialogue_pairs(turns, f"test/{index}", data)
        sources.extend(pair.source for pair in pairs)
    return sources


def test_rule_keeps_the_message_and_drops_oldest_turns_on_real_pairs(
    dialogue_translator, real_sources
):
    tokenizer = dialogue_translator.source_tokenizer
    lengths = [len(ids) for ids in tokenizer.encode_batch(real_sources)]
    long = [s for s, n in zip(real_sources, lengths, strict=True) if n > LIMIT]
    assert len(long) > 20  # the real data does exercise the rule
    cut_messages = 0
    for source in long:
        encoded = dialogue_translator.encode(source)
        assert encoded.truncated and len(encoded.ids) <= LIMIT
        turns = source.split(SEP)
        message_ids = tokenizer.encode(turns[-1])
        if len(message_ids) <= LIMIT:
            # the whole newest message survives, after the newest context turns that fit
            assert encoded.ids[len(encoded.ids) - len(message_ids) :] == message_ids
            kept = next(
                SEP.join(turns[k:])
                for k in range(len(turns))
                if len(tokenizer.encode(SEP.join(turns[k:]))) <= LIMIT
            )
            assert encoded.ids == tokenizer.encode(kept)
        else:  # the message alone is too long: its end is kept (what the reply answers)
            cut_messages += 1
            assert encoded.ids == message_ids[-LIMIT:]
    # the evaluate path (teacher-forced loss inputs) shortens exactly like decoding
    assert dialogue_translator.source_ids(long) == [dialogue_translator.encode(s).ids for s in long]
    assert cut_messages < len(long)


def test_translation_runs_still_keep_the_start(tiny_translator):
    source = " ".join(["one two three"] * 10)
    encoded = tiny_translator.encode(source)
    limit = tiny_translator.config.data.max_source_length
    assert encoded.truncated
    assert encoded.ids == tiny_translator.source_tokenizer.encode(source)[:limit]


def test_chat_session_uses_the_same_rule(dialogue_translator, shared_data_dir):
    path = shared_data_dir / "dialogue" / "dailydialog" / "dialogues_test.txt.gz"
    checked = 0
    for _, turns in itertools.islice(read_dailydialog(path, LineReport()), 30):
        session = ChatSession(dialogue_translator)
        for i in range(1, len(turns)):
            session.history = turns[: i - 1]
            message = turns[i - 1]
            full = build_source(session.history, message, 3, "<sep>")
            assert session.source_for(message) == dialogue_translator.fit_text(full)
            checked += full != session.source_for(message)
    assert checked > 0


def test_drop_oldest_turns_and_keep_end():
    def fits(text):
        return len(text.split()) <= 4

    assert drop_oldest_turns("a b <sep> c <sep> d e", "<sep>", fits) == "c <sep> d e"
    assert drop_oldest_turns("a <sep> b c d e f", "<sep>", fits) == "b c d e f"
    assert keep_end([1, 2, 3, 4, 5], 3) == [3, 4, 5]
    assert keep_end([1, 2], 3) == [1, 2]
