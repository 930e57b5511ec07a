"""Conversations -> model inputs, and a multi-turn chat session over a ``Translator``.

``build_source`` is the single place that turns a conversation into a model input: the
corpus loader (``seq2seq.data.corpora.loading.dialogue_pairs``) builds training sources with it
and ``ChatSession`` builds its inputs with it, so a chat model sees at inference exactly the
kind of input it was trained on. This module imports no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any


def build_source(history: Sequence[str], message: str, context_turns: int, separator: str) -> str:
    """The previous ``context_turns`` turns of ``history`` and ``message``, joined by
    ``f" {separator} "``.

    The window is taken first and blank turns inside it are then left out (they are not
    replaced by older turns), exactly as training pairs are built. ``context_turns=0``
    gives ``message`` alone. Text is not normalised here (the tokenizers do that).

    >>> build_source(["Hi.", "Hello!"], "How are you?", 1, "<sep>")
    'Hello! <sep> How are you?'
    """
    if context_turns < 0:
        raise ValueError(f"context_turns must be >= 0, got {context_turns}")
    window = list(history[max(0, len(history) - context_turns) :]) if context_turns else []
    turns = [turn for turn in window if turn.strip()]
    turns.append(message)
    return f" {separator} ".join(turns)


def drop_oldest_turns(source: str, separator: str, fits: Callable[[str], bool]) -> str:
    """The one shortening rule for dialogue inputs, first half: leave out whole context
    turns, oldest first, until ``fits(source)`` or only the message is left.

    The second half (a message that is too long by itself keeps its *end*, the words the
    reply must answer) is applied to the token ids by ``keep_end``. The translator (and so
    ``evaluate``) and ``ChatSession`` all shorten with these two functions.

    >>> drop_oldest_turns("a <sep> b c <sep> d", "<sep>", lambda s: len(s.split()) <= 3)
    'b c <sep> d'
    """
    marker = f" {separator} "
    turns = source.split(marker)
    while len(turns) > 1 and not fits(source):
        turns = turns[1:]
        source = marker.join(turns)
    return source


def keep_end(ids: list[int], limit: int) -> list[int]:
    """The last ``limit`` ids: a dialogue message is cut at its start, never its end."""
    return ids[len(ids) - limit :] if len(ids) > limit else ids


class ChatSession:
    """A conversation with a dialogue model: keeps the turns and builds each input.

    ``translator`` is a ``seq2seq.inference.translator.Translator`` (anything with ``config`` and
    ``translate_one(text, decode)`` works). The number of context turns and the
    separator come from the run's ``data`` config; when the joined input would be longer
    than the model was trained on (``data.max_source_length`` tokens) or than the
    translator accepts, the oldest context turns are left out first (``drop_oldest_turns``),
    so the newest message is never cut while context is left to drop.
    """

    def __init__(self, translator: Any, context_turns: int | None = None):
        self.translator = translator
        data = translator.config.data
        self.context_turns = data.context_turns if context_turns is None else context_turns
        self.separator = data.context_separator
        self.max_source_length = data.max_source_length
        self.history: list[str] = []

    def reset(self) -> None:
        """Forget the conversation so far."""
        self.history.clear()

    def source_for(self, message: str) -> str:
        """The model input for ``message`` given the history, shortened to fit if needed."""
        source = build_source(self.history, message, self.context_turns, self.separator)
        return drop_oldest_turns(source, self.separator, self.fits)

    def fits(self, source: str) -> bool:
        limit = getattr(self.translator, "max_input_chars", None)
        if isinstance(limit, int) and len(source) > limit:
            return False
        tokenizer = getattr(self.translator, "source_tokenizer", None)
        if tokenizer is None:
            return True
        return len(tokenizer.encode(source)) <= self.max_source_length

    def check(self, message: str) -> None:
        """Refuse an empty or too long message itself (with context it would not look
        empty to the translator): the translator's ``InputError`` when it has a check."""
        check_input = getattr(self.translator, "check_input", None)
        if check_input is not None:
            check_input(message, "message")
        elif not message.strip():
            raise ValueError("message is empty")

    def reply(self, message: str, decode: Any = None) -> str:
        """The model's answer to ``message``; both become part of the history.

        ``decode`` is a ``DecodeConfig`` (None: the run's decode settings).
        Errors from the translator (``InputError`` for an empty or too long message)
        propagate and leave the history unchanged.
        """
        self.check(message)
        source = self.source_for(message)
        text = self.translator.translate_one(source, decode).text
        self.history.extend([message, text])
        return text

    def stream_reply(
        self, message: str, decode: Any = None, stop: Callable[[], bool] | None = None
    ) -> Iterator[str]:
        """Like ``reply`` but yields the reply as the decoder produces it: a longer text
        after every chunk of decoder steps (``Translator.stream``: greedy search and
        sampling), the last equal to what ``reply`` gives with the same seed. Beam search
        and MMI reranking yield once, the whole reply.

        ``stop()`` is asked after every chunk; when it says yes (a Stop button), or the
        caller closes the generator, or Ctrl-C interrupts a chunk, decoding ends there and
        the reply so far joins the history, as a finished one does. Errors before the
        first text (a refused message) leave the history unchanged.
        """
        self.check(message)
        source = self.source_for(message)
        stream = getattr(self.translator, "stream", None)
        if stream is None:  # a translator without streaming: the whole reply at once
            parts = iter([self.translator.translate_one(source, decode)])
        else:
            parts = stream(source, decode)
        text: str | None = None
        try:
            for part in parts:
                if part.text != text:
                    text = part.text
                    yield text
                if stop is not None and stop():
                    break
        finally:
            if hasattr(parts, "close"):
                parts.close()
            if text is not None:
                self.history.extend([message, text])
