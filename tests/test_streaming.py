"""True streaming: greedy search and sampling decoded chunk by chunk from the one-shot
search's compiled loop (``Searcher.stream``, ``Translator.stream``,
``ChatSession.stream_reply``), ending in exactly the non-streamed output, and Stop."""

from __future__ import annotations

import numpy as np
import pytest

from seq2seq.data.dialogue import ChatSession
from seq2seq.inference.prediction import pad_batch

SETTINGS = [
    {"method": "greedy"},
    {"method": "sample", "seed": 3, "temperature": 1.3},
    {"method": "sample", "seed": 8, "top_k": 3, "repetition_penalty": 1.5},
]


@pytest.mark.parametrize("settings", SETTINGS, ids=["greedy", "sample", "sample-topk-penalty"])
def test_stream_grows_and_ends_in_the_one_shot_search(tiny_translator, settings):
    translator = tiny_translator
    decode = translator.decode_config(**settings)
    encoded = translator.encode(translator.check_input("three one four one five nine ."))
    source = pad_batch([encoded.ids])
    whole = translator.searcher.search(source, decode)
    parts = list(translator.searcher.stream(source, decode, chunk_steps=2))
    steps = [part.ids.shape[2] for part in parts]
    assert steps == sorted(steps) and len(parts) >= 2
    assert all(later - earlier <= 2 for earlier, later in zip([0, *steps], steps, strict=False))
    for earlier, later in zip(parts, parts[1:], strict=False):  # each chunk extends the last
        assert np.array_equal(later.ids[:, :, : earlier.ids.shape[2]], earlier.ids)
    np.testing.assert_array_equal(parts[-1].ids, whole.ids)
    np.testing.assert_allclose(parts[-1].scores, whole.scores, rtol=1e-6)

    texts = [
        t.text
        for t in translator.stream(
            "three one four one five nine .", translator.decode_config(**settings), 2
        )
    ]
    assert (
        texts[-1]
        == translator.translate_one(
            "three one four one five nine .", translator.decode_config(**settings)
        ).text
    )
    for shorter, longer in zip(texts, texts[1:], strict=False):
        assert longer.startswith(shorter.rstrip(" ."))


def test_beam_and_bad_settings_do_not_stream(tiny_translator):
    texts = list(
        tiny_translator.stream(
            "one two .", tiny_translator.decode_config(method="beam", beam_size=3)
        )
    )
    assert len(texts) == 1
    whole = tiny_translator.translate_one(
        "one two .", tiny_translator.decode_config(method="beam", beam_size=3)
    )
    assert texts[0].text == whole.text
    decode = tiny_translator.decode_config(method="beam")
    with pytest.raises(ValueError, match="beam search cannot stream"):
        next(tiny_translator.searcher.stream(pad_batch([[5, 6]]), decode))
    with pytest.raises(ValueError, match="chunk_steps is 0"):
        next(tiny_translator.searcher.stream(pad_batch([[5, 6]]), decode.__class__(), 0))


@pytest.fixture
def chat_translator(tiny_dialogue_run):
    from seq2seq.inference.translator import Translator

    translator = Translator.from_run(tiny_dialogue_run)
    translator.chunk_steps = 1
    return translator


def counted_chunks(translator, monkeypatch) -> list[int]:
    """Count the calls of the compiled chunk loop (one per chunk)."""
    calls: list[int] = []
    steps = dict(translator.searcher._stream_steps)
    for method, function in steps.items():

        def counting(*args, function=function):
            calls.append(1)
            return function(*args)

        monkeypatch.setitem(translator.searcher._stream_steps, method, counting)
    return calls


def test_chat_stream_matches_the_reply_and_stop_ends_within_one_chunk(chat_translator, monkeypatch):
    settings = {"method": "sample", "seed": 5, "min_length": 5, "max_length": 8}
    session = ChatSession(chat_translator)
    decode = chat_translator.decode_config(**settings)
    replies = list(session.stream_reply("hi!", decode))
    assert replies[-1] == ChatSession(chat_translator).reply("hi!", decode)
    assert session.history == ["hi!", replies[-1]]
    assert len(replies) >= 3  # one token a chunk, at least five tokens

    calls = counted_chunks(chat_translator, monkeypatch)
    stopped = ChatSession(chat_translator)
    shown = list(stopped.stream_reply("hi!", decode, stop=lambda: bool(calls)))
    assert len(calls) == 1  # Stop asked after the first chunk: no second chunk ran
    assert shown == replies[:1]
    assert stopped.history == ["hi!", replies[0]]  # the partial reply is kept

    calls.clear()
    closed = ChatSession(chat_translator)
    stream = closed.stream_reply("hi!", decode)
    assert next(stream) == replies[0]
    stream.close()  # what a UI does when its Stop cancels the generator
    assert len(calls) == 1 and closed.history == ["hi!", replies[0]]
