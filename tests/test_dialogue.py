"""Conversation -> model input (``build_source``) and ``ChatSession``, with a fake translator."""

from __future__ import annotations

import copy
import dataclasses
import itertools
from dataclasses import dataclass, field
from types import SimpleNamespace

import pytest

from seq2seq.config import DataConfig, DecodeConfig
from seq2seq.data.corpora.loading import dialogue_pairs
from seq2seq.data.corpora.readers import LineReport, read_dailydialog
from seq2seq.data.dialogue import ChatSession, build_source, drop_oldest_turns, keep_end


def test_build_source_joins_previous_turns_and_message():
    history = ["Hi.", "Hello! How are you?", "Fine, thanks."]
    assert build_source(history, "And you?", 0, "<sep>") == "And you?"
    assert build_source(history, "And you?", 1, "<sep>") == "Fine, thanks. <sep> And you?"
    assert (
        build_source(history, "And you?", 2, "<sep>")
        == "Hello! How are you? <sep> Fine, thanks. <sep> And you?"
    )
    # more context turns than history: all of it
    assert build_source(history[:1], "x", 5, "|") == "Hi. | x"
    assert build_source([], "x", 3, "<sep>") == "x"
    # blank turns inside the window are left out, not replaced by older ones
    assert build_source(["a", " ", ""], "m", 2, "<sep>") == "m"
    assert build_source(["a", "", "b"], "m", 2, "<sep>") == "b <sep> m"
    with pytest.raises(ValueError):
        build_source([], "x", -1, "<sep>")


@pytest.mark.parametrize("context_turns", [0, 1, 2])
def test_corpus_loader_builds_sources_with_build_source(context_turns):
    turns = ["Hi.", "Hello!", "", "How are you?", "Fine.", "Good."]
    data = DataConfig(context_turns=context_turns, context_separator="<sep>")
    pairs, skipped = dialogue_pairs(turns, "d1", data)
    assert skipped == 2  # the two pairs touching the empty turn
    expected = [
        (build_source(turns[: i - 1], turns[i - 1], context_turns, "<sep>"), turns[i])
        for i in (1, 4, 5)
    ]
    assert [(p.source, p.target) for p in pairs] == expected
    if context_turns == 2:
        assert pairs[-1].source == "How are you? <sep> Fine."  # the empty turn is skipped


@dataclass
class FakeTranslator:
    """Echoes its input's last part and records what it was asked."""

    context_turns: int = 1
    max_source_length: int = 40
    max_input_chars: int = 1000
    seen: list[tuple[str, dict]] = field(default_factory=list)

    def __post_init__(self):
        self.config = SimpleNamespace(
            data=DataConfig(
                context_turns=self.context_turns,
                context_separator="<sep>",
                max_source_length=self.max_source_length,
            )
        )
        self.source_tokenizer = SimpleNamespace(encode=lambda text: text.split())

    def translate_one(self, source: str, decode=None):
        if not source.strip():
            raise ValueError("input is empty")
        self.seen.append((source, decode))
        return SimpleNamespace(text=f"re: {source.split(' <sep> ')[-1]}")


def test_chat_session_keeps_history_and_resets():
    translator = FakeTranslator(context_turns=1)
    session = ChatSession(translator)
    assert session.reply("Hi there.") == "re: Hi there."
    warm = DecodeConfig(method="sample", temperature=0.5)
    assert session.reply("How are you?", warm) == "re: How are you?"
    assert translator.seen == [
        ("Hi there.", None),
        ("re: Hi there. <sep> How are you?", warm),
    ]
    assert session.history == ["Hi there.", "re: Hi there.", "How are you?", "re: How are you?"]
    session.reset()
    assert session.history == []
    session.reply("Again.")
    assert translator.seen[-1][0] == "Again."


def test_failed_reply_leaves_history_unchanged():
    session = ChatSession(FakeTranslator())
    session.reply("one")
    with pytest.raises(ValueError):
        session.reply("   ")
    assert session.history == ["one", "re: one"]


def test_context_is_dropped_oldest_first_when_too_long():
    translator = FakeTranslator(context_turns=2, max_source_length=6)
    session = ChatSession(translator)
    session.history = ["a b c", "d e f"]
    # 2 turns: 3 + 1 + 3 + 1 + 2 = 10 tokens > 6; 1 turn: 3 + 1 + 2 = 6 fits
    assert session.source_for("g h") == "d e f <sep> g h"
    # the message alone is always tried last, however long
    assert session.source_for("1 2 3 4 5 6 7 8") == "1 2 3 4 5 6 7 8"
    translator.max_input_chars = 8
    assert session.source_for("g h") == "g h"
    # an explicit context_turns overrides the run's
    assert ChatSession(FakeTranslator(context_turns=2), context_turns=0).context_turns == 0


def test_stream_reply_records_history_and_takes_a_translator_without_streaming():
    # (tests/test_streaming.py streams from a real model, chunk by chunk, and stops it)
    session = ChatSession(FakeTranslator(context_turns=0))
    assert list(session.stream_reply("I am  fine.")) == ["re: I am  fine."]
    assert session.history == ["I am  fine.", "re: I am  fine."]
    stream = session.stream_reply("next")
    assert next(stream) == "re: next"
    stream.close()
    assert session.history[-1] == "re: next"
    with pytest.raises(ValueError):
        next(session.stream_reply("   "))
    assert len(session.history) == 4


# -- one shortening rule for dialogue inputs, on real pairs ------------------------------


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
