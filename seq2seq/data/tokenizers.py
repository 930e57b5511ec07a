"""Text normalisation and tokenizers that turn sentences into ids and back.

Two tokenizers share one interface so the pipeline, model and translator never care which
one a run uses: a word-level one (Keras ``TextVectorization``) and a subword one
(SentencePiece). The special ids are fixed across both so decoding loops can rely on them.
"""

from __future__ import annotations

import io
import json
import re
import unicodedata
import zlib
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np

from seq2seq.constants import (
    END,
    END_PIECE,
    PAD,
    PAD_PIECE,
    SPECIAL_PIECES,
    START,
    START_PIECE,
    UNK,
    UNK_PIECE,
)

META_FILE = "tokenizer.json"
FORMAT_VERSION = 1
KINDS = ("word", "sentencepiece")

# Characters ``normalize`` deletes (the in-graph normalisation of exports reuses the set).
ZERO_WIDTH_CHARACTERS = "\u200b\u200c\u200d\u2060\ufeff"
_ZERO_WIDTH = re.compile(f"[{ZERO_WIDTH_CHARACTERS}]")
# Encode in slices so huge corpora never build one giant tensor.
_CHUNK = 16384


class TokenizerError(ValueError):
    """A tokenizer cannot be trained, saved or loaded as asked."""


def normalize(text: str, lowercase: bool = False) -> str:
    """NFKC + zero-width removal + whitespace collapse, so equal-looking text gets equal ids."""
    text = _ZERO_WIDTH.sub("", unicodedata.normalize("NFKC", text))
    text = " ".join(text.split())
    return text.lower() if lowercase else text


def _clean_ids(ids: Iterable[int]) -> list[int]:
    """Ids up to the first END, without PAD/START: what a model's output really says."""
    kept = []
    for i in ids:
        i = int(i)
        if i == END:
            break
        if i not in (PAD, START):
            kept.append(i)
    return kept


class Tokenizer(ABC):
    """What every tokenizer offers the rest of the toolkit."""

    kind: str = ""

    @property
    @abstractmethod
    def vocab_size(self) -> int:
        """Number of ids, specials included (the embedding/softmax size)."""

    @abstractmethod
    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        """Ids of many texts at once (no START/END)."""

    @abstractmethod
    def decode(self, ids: Iterable[int]) -> str:
        """Readable text: stops at END, skips PAD/START, detokenised."""

    @abstractmethod
    def pieces(self, text: str) -> list[str]:
        """Surface tokens aligned one-to-one with ``encode(text)``."""

    @abstractmethod
    def id_to_piece(self, i: int) -> str:
        """The token an id stands for."""

    @abstractmethod
    def _save_files(self, folder: Path) -> dict:
        """Write kind-specific files; return extra meta fields."""

    def encode(self, text: str) -> list[int]:
        """Ids of one text (no START/END); unknown words become UNK."""
        return self.encode_batch([text])[0]

    def save(self, folder: str | Path) -> None:
        """Write plain files (no pickles) so a run folder stays loadable across versions."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"kind": self.kind, "version": FORMAT_VERSION, **self._save_files(folder)}
        (folder / META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")


# ---------------------------------------------------------------------------------------
# Word tokenizer


def _split_pattern(user_symbols: Sequence[str]) -> str:
    """RE2 pattern matching a user symbol whole, else one punctuation/symbol character."""
    symbols = [re.escape(s) for s in sorted(user_symbols, key=len, reverse=True)]
    # \x02/\x03 stand for intra-word apostrophes, protected from the split.
    return "(" + "|".join([*symbols, r"[^\pL\pN\pM\s\x02\x03]"]) + ")"


def make_standardizer(lowercase: bool, user_symbols: Sequence[str], language: str) -> Callable:
    """UTF-8-aware standardisation: the Keras default lower-cases ASCII only and drops
    punctuation, which would lose ¿ ¡ and accents' case."""
    import tensorflow as tf

    pattern = _split_pattern(user_symbols)
    # French/Italian/Catalan elide to the left ("l' homme"), English to the right ("don 't").
    left = language in ("fr", "it", "ca")
    straight, curly = ("' ", "’ ") if left else (" '", " ’")

    def standardize(x):
        if lowercase:
            x = tf.strings.lower(x, encoding="utf-8")
        x = tf.strings.regex_replace(x, r"(\pL)'(\pL)", "\\1\x02\\2")
        x = tf.strings.regex_replace(x, r"(\pL)’(\pL)", "\\1\x03\\2")
        x = tf.strings.regex_replace(x, pattern, r" \1 ")
        x = tf.strings.regex_replace(x, "\x02", straight)
        return tf.strings.regex_replace(x, "\x03", curly)

    return standardize


class WordTokenizer(Tokenizer):
    """Whole words and punctuation marks; readable pieces, large vocabularies."""

    kind = "word"

    def __init__(
        self,
        vocabulary: Sequence[str],
        lowercase: bool = False,
        user_symbols: Sequence[str] = (),
        language: str = "en",
    ):
        from sacremoses import MosesDetokenizer

        if list(vocabulary[:4]) != list(SPECIAL_PIECES):
            raise TokenizerError(f"vocabulary must start with {SPECIAL_PIECES}")
        self.vocabulary = list(vocabulary)
        self.lowercase = lowercase
        self.user_symbols = tuple(user_symbols)
        self.language = language
        self._standardize = make_standardizer(lowercase, self.user_symbols, language)
        self._layer = self._build_layer()
        self._detokenizer = MosesDetokenizer(lang=language)

    def _build_layer(self):
        """Keras reserves '' (id 0) and '[UNK]' (id 1): exactly our PAD and UNK slots."""
        import keras

        return keras.layers.TextVectorization(
            standardize=self._standardize,
            split="whitespace",
            output_mode="int",
            ragged=True,
            vocabulary=["", "[UNK]", *self.vocabulary[2:]],
        )

    @property
    def vocab_size(self) -> int:
        return len(self.vocabulary)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        out: list[list[int]] = []
        for start in range(0, len(texts), _CHUNK):
            chunk = [normalize(t) for t in texts[start : start + _CHUNK]]
            ragged = self._layer(np.array(chunk, dtype=object))
            values = ragged.flat_values.numpy().tolist()
            splits = ragged.row_splits.numpy().tolist()
            out.extend(values[a:b] for a, b in zip(splits[:-1], splits[1:], strict=True))
        return out

    def split(self, texts: Sequence[str]):
        """Standardised, split tokens (before the vocabulary lookup), as a ragged tensor."""
        import tensorflow as tf

        normed = tf.constant([normalize(t) for t in texts], dtype=tf.string)
        return tf.strings.split(self._standardize(normed))

    def pieces(self, text: str) -> list[str]:
        return [b.decode("utf-8") for b in self.split([text]).flat_values.numpy()]

    def id_to_piece(self, i: int) -> str:
        return self.vocabulary[i] if 0 <= i < len(self.vocabulary) else UNK_PIECE

    def decode(self, ids: Iterable[int]) -> str:
        words = [self.id_to_piece(i) for i in _clean_ids(ids)]
        text = self._detokenizer.detokenize(words, unescape=False)
        if self.language != "fr":  # Moses keeps French spacing inside « » for every language
            text = re.sub(r"«\s+", "«", re.sub(r"\s+»", "»", text))
        return text

    def _save_files(self, folder: Path) -> dict:
        (folder / "vocab.txt").write_text("\n".join(self.vocabulary) + "\n", encoding="utf-8")
        return {
            "vocab_size": self.vocab_size,
            "lowercase": self.lowercase,
            "user_symbols": list(self.user_symbols),
            "language": self.language,
        }

    @classmethod
    def load(cls, folder: Path, meta: dict) -> WordTokenizer:
        lines = (folder / "vocab.txt").read_text(encoding="utf-8").split("\n")
        vocabulary = lines[: meta["vocab_size"]]
        return cls(vocabulary, meta["lowercase"], meta["user_symbols"], meta["language"])

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        vocab_size: int,
        min_frequency: int = 1,
        lowercase: bool = False,
        user_symbols: Sequence[str] = (),
        language: str = "en",
    ) -> WordTokenizer:
        """Most frequent words (ties broken alphabetically, so fits are reproducible)."""
        probe = cls(list(SPECIAL_PIECES), lowercase, user_symbols, language)
        counts: Counter = Counter()
        for start in range(0, len(texts), _CHUNK):
            counts.update(probe.split(texts[start : start + _CHUNK]).flat_values.numpy())
        counts = Counter({k.decode("utf-8"): n for k, n in counts.items()})
        reserved = [*SPECIAL_PIECES, *dict.fromkeys(user_symbols)]
        for piece in reserved:
            counts.pop(piece, None)
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        room = max(vocab_size - len(reserved), 0)
        words = [w for w, n in ranked if n >= min_frequency][:room]
        return cls([*reserved, *words], lowercase, user_symbols, language)


# ---------------------------------------------------------------------------------------
# SentencePiece tokenizer


class SentencePieceTokenizer(Tokenizer):
    """Unigram subwords: small vocabularies, no unknown words, open-vocabulary output."""

    kind = "sentencepiece"

    def __init__(self, model_proto: bytes, lowercase: bool = False):
        import sentencepiece as spm

        self.model_proto = model_proto
        self.lowercase = lowercase
        self._sp = spm.SentencePieceProcessor(model_proto=model_proto)

    @property
    def vocab_size(self) -> int:
        return self._sp.get_piece_size()

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        normed = [normalize(t, self.lowercase) for t in texts]
        return self._sp.encode(normed, num_threads=2) if normed else []

    def encode(self, text: str) -> list[int]:
        return self._sp.encode(normalize(text, self.lowercase))

    def pieces(self, text: str) -> list[str]:
        return self._sp.encode(normalize(text, self.lowercase), out_type=str)

    def id_to_piece(self, i: int) -> str:
        return self._sp.id_to_piece(i) if 0 <= i < self.vocab_size else UNK_PIECE

    def decode(self, ids: Iterable[int]) -> str:
        kept = [i if 0 <= i < self.vocab_size else UNK for i in _clean_ids(ids)]
        return self._sp.decode(kept)

    def _save_files(self, folder: Path) -> dict:
        (folder / "spm.model").write_bytes(self.model_proto)
        return {"vocab_size": self.vocab_size, "lowercase": self.lowercase}

    @classmethod
    def load(cls, folder: Path, meta: dict) -> SentencePieceTokenizer:
        return cls((folder / "spm.model").read_bytes(), meta["lowercase"])

    @classmethod
    def fit(
        cls,
        texts: Sequence[str],
        vocab_size: int,
        lowercase: bool = False,
        user_symbols: Sequence[str] = (),
        max_sentences: int = 2_000_000,
        split_digits: bool = False,
        byte_fallback: bool = False,
    ) -> SentencePieceTokenizer:
        """Train in memory (iterator in, BytesIO out): no temporary files to clean up."""
        import sentencepiece as spm

        normed = [s for s in (normalize(t, lowercase) for t in texts) if s]
        if not normed:
            raise TokenizerError("cannot fit a sentencepiece tokenizer on an empty corpus")
        proto = io.BytesIO()
        try:
            spm.SentencePieceTrainer.train(
                sentence_iterator=iter(normed),
                model_writer=proto,
                model_type="unigram",
                vocab_size=vocab_size,
                character_coverage=1.0,
                pad_id=PAD,
                unk_id=UNK,
                bos_id=START,
                eos_id=END,
                pad_piece=PAD_PIECE,
                unk_piece=UNK_PIECE,
                bos_piece=START_PIECE,
                eos_piece=END_PIECE,
                user_defined_symbols=list(user_symbols),
                input_sentence_size=max_sentences,
                split_digits=split_digits,
                byte_fallback=byte_fallback,
                shuffle_input_sentence=True,
                num_threads=2,
                hard_vocab_limit=False,
                minloglevel=2,
            )
        except RuntimeError as error:
            raise TokenizerError(f"sentencepiece training failed: {error}") from error
        return cls(proto.getvalue(), lowercase)


# ---------------------------------------------------------------------------------------
# Entry points


def fit_tokenizer(
    kind: str,
    texts: Sequence[str],
    vocab_size: int,
    min_frequency: int = 1,
    lowercase: bool = False,
    user_symbols: Sequence[str] = (),
    language: str = "en",
    split_digits: bool = False,
    byte_fallback: bool = False,
) -> Tokenizer:
    """Train a tokenizer of ``kind`` on the training split's texts only (``split_digits``
    and ``byte_fallback``: SentencePiece only)."""
    texts = list(texts)
    if not any(t.strip() for t in texts):
        raise TokenizerError(f"cannot fit a {kind!r} tokenizer on an empty corpus")
    if kind == "word":
        return WordTokenizer.fit(
            texts, vocab_size, min_frequency, lowercase, user_symbols, language
        )
    if kind == "sentencepiece":
        return SentencePieceTokenizer.fit(
            texts,
            vocab_size,
            lowercase,
            user_symbols,
            split_digits=split_digits,
            byte_fallback=byte_fallback,
        )
    raise TokenizerError(f"unknown tokenizer kind {kind!r}; allowed: {', '.join(KINDS)}")


def vocabulary_fingerprint(*tokenizers: Tokenizer) -> int:
    """A checksum of the vocabularies, small enough to sum exactly over workers."""
    text = "\n".join(t.id_to_piece(i) for t in tokenizers for i in range(t.vocab_size))
    return zlib.crc32(text.encode("utf-8")) % (1 << 30)


def copy_table(source: Tokenizer, target: Tokenizer) -> np.ndarray:
    """Target id of every source id with the same piece, -1 where there is none.

    A copy-attention model copies a source token by putting its attention on this target
    id. Special tokens copy nothing (-1); ``<unk>`` included, since copying it gains nothing.
    Pieces are compared as strings: SentencePiece's word-initial "▁" and byte pieces
    ("<0xC3>") match between two vocabularies that both have them.
    """
    index: dict[str, int] = {}
    for i in range(len(SPECIAL_PIECES), target.vocab_size):
        index.setdefault(target.id_to_piece(i), i)
    table = np.full(source.vocab_size, -1, dtype=np.int32)
    for i in range(len(SPECIAL_PIECES), source.vocab_size):
        table[i] = index.get(source.id_to_piece(i), -1)
    return table


def load_tokenizer(folder: str | Path) -> Tokenizer:
    """Rebuild a tokenizer written by ``Tokenizer.save``."""
    folder = Path(folder)
    meta_path = folder / META_FILE
    if not meta_path.is_file():
        raise TokenizerError(f"no tokenizer in {folder} (missing {META_FILE})")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    kind = meta.get("kind")
    if kind == "word":
        return WordTokenizer.load(folder, meta)
    if kind == "sentencepiece":
        return SentencePieceTokenizer.load(folder, meta)
    raise TokenizerError(
        f"{meta_path}: unknown tokenizer kind {kind!r}; allowed: {', '.join(KINDS)}"
    )
