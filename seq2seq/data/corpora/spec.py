"""The table of corpora the toolkit knows: one ``CorpusSpec`` row per corpus.

Every fact about a named corpus lives here and nowhere else: its languages, whether it is
translation or dialogue, its licence, where it is downloaded from (and the checksum that
pins the download), and the local files that stand in for the download. The loader, the
TFDS builders, training (languages for the detokeniser), evaluation, the chat command
(licence notice) and the app (dialogue or translation) all read this table, so adding a
language pair is one row. Pure Python: no TensorFlow.

Here too: the data-folder variables (``SEQ2SEQ_DATA_DIR``, ``SEQ2SEQ_CACHE_DIR``) and the
errors raised while finding and reading corpora, ``CorpusError`` and
``CorpusNotFoundError``. Both derive from ``ValueError`` so callers that validate input can
catch them uniformly; the messages are written for the person running the command.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

TASKS = ("translation", "dialogue")
USER_CORPORA = ("tsv", "tfds:NAME")
"""Corpora that are not rows: your own ``source<TAB>target`` file and any TFDS dataset."""
TFDS_PREFIX = "tfds:"
DEFAULT_LANGUAGES = ("en", "en")
"""Languages assumed for a corpus the table does not describe (``tsv``, ``tfds:NAME``)."""


@dataclass(frozen=True)
class LocalFile:
    """A file of a local copy, relative to the data folder, with the release's checksum.

    The file may sit there gzipped (``path``) or plain (``path`` without ``.gz``); only
    the gzipped release is pinned by ``size`` and ``sha256``.
    """

    path: str
    size: int
    sha256: str


@dataclass(frozen=True)
class Download:
    """The canonical source archive. ``sha256 = None`` leaves the download unpinned (the
    publisher rewrites the file, or no trusted checksum was known); ``note`` says why."""

    url: str
    size: int | None = None
    sha256: str | None = None
    note: str = ""


@dataclass(frozen=True)
class CorpusSpec:
    """One corpus: what it is, who may use it, where it comes from.

    Args:
        name: the value of ``data.corpus`` (``anki/spa-eng``, ``daily_dialog``, ...).
        task: ``translation`` or ``dialogue``.
        languages: ISO 639-1 codes of the two sides as stored (first column, second
            column); ``data.reverse`` swaps them. Dialogue corpora list one language twice.
        title: a one-line description (README, dataset info).
        licence: the licence in a few words.
        licence_note: what the chat command prints before talking to a model trained on
            the corpus (None: nothing to add).
        homepage: where the corpus is described.
        citation: how to credit it.
        download: the canonical source archive.
        local_files: key -> ``LocalFile`` of a local copy (keys are the builder's).
        builder: the TFDS builder that prepares it; ``config`` its builder config.
    """

    name: str
    task: str
    languages: tuple[str, str]
    title: str
    licence: str
    homepage: str
    citation: str
    download: Download
    local_files: Mapping[str, LocalFile]
    builder: str
    config: str = "default"
    licence_note: str | None = None

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"{self.name}: task is {self.task!r}; allowed: {', '.join(TASKS)}")
        object.__setattr__(self, "local_files", MappingProxyType(dict(self.local_files)))


def _anki(pair: str, languages: tuple[str, str], release: str, download: Download, local):
    return CorpusSpec(
        name=f"anki/{pair}",
        task="translation",
        languages=languages,
        title=f"Tatoeba English-{release}",
        licence="CC-BY 2.0 France: attribute tatoeba.org and manythings.org/anki",
        homepage="https://www.manythings.org/anki/",
        citation="Tatoeba (tatoeba.org) via www.manythings.org/anki, CC-BY 2.0 France",
        download=download,
        local_files={"pairs": local},
        builder="anki",
        config=pair,
    )


CORPORA: tuple[CorpusSpec, ...] = (
    _anki(
        "spa-eng",
        ("en", "es"),
        "Spanish pairs, manythings.org/anki 2018-05-13 release (the TensorFlow NMT tutorial's)",
        Download(
            "https://storage.googleapis.com/download.tensorflow.org/data/spa-eng.zip",
            note="not pinned: no trusted size/sha256 was available when this was written",
        ),
        LocalFile(
            "translation/spa-eng.tsv.gz",
            2727593,
            "ce12459774adf220a455499d30580579de726b58616c6dc2b4e7f1768e9c3f2a",
        ),
    ),
    _anki(
        "fra-eng",
        ("en", "fr"),
        "French pairs, manythings.org/anki 2019-04-07 release",
        Download(
            "https://www.manythings.org/anki/fra-eng.zip",
            note="not pinned: manythings.org republishes the file regularly",
        ),
        LocalFile(
            "translation/fra-eng.tsv.gz",
            3357220,
            "52b0f586cbf07e26783bfe7d73a2bb769de461443a8d90e18e05eaac7fbb359d",
        ),
    ),
    CorpusSpec(
        name="daily_dialog",
        task="dialogue",
        languages=("en", "en"),
        title="DailyDialog (Li et al., IJCNLP 2017), official train/validation/test split",
        licence="CC BY-NC-SA 4.0: non-commercial only; derived models and outputs inherit it",
        licence_note="this model was trained on DailyDialog (CC BY-NC-SA 4.0): "
        "non-commercial use only, share-alike; cite Li et al., IJCNLP 2017.",
        homepage="http://yanran.li/dailydialog",
        citation="Li et al., DailyDialog, IJCNLP 2017 (CC BY-NC-SA 4.0)",
        download=Download(
            "http://yanran.li/files/ijcnlp_dailydialog.zip",
            4475921,
            "c641e88cbf21fd7c1b57289387f9107d33fe8685a2b37fe8066b82776535ea89",
        ),
        local_files={
            "train": LocalFile(
                "dialogue/dailydialog/dialogues_train.txt.gz",
                1960742,
                "088902d2e207cd645bdc22a250e181442124715070ee6eca0fb975b97f3646b8",
            ),
            "validation": LocalFile(
                "dialogue/dailydialog/dialogues_validation.txt.gz",
                181593,
                "a6545aa61ae7ebab968192fc24cb901ce1f5c1efe9efae6f7b7ec52cfb71975c",
            ),
            "test": LocalFile(
                "dialogue/dailydialog/dialogues_test.txt.gz",
                170080,
                "c789f5b967b13c7303f363721b406c00705c8cfe33a50a7496c85d972c361546",
            ),
        },
        builder="daily_dialog",
    ),
    CorpusSpec(
        name="cornell_dialogs",
        task="dialogue",
        languages=("en", "en"),
        title="Cornell Movie-Dialogs Corpus (Danescu-Niculescu-Mizil & Lee, 2011)",
        licence="free for research use; cite the paper",
        licence_note="this model was trained on the Cornell Movie-Dialogs Corpus "
        "(research use; cite Danescu-Niculescu-Mizil and Lee, 2011).",
        homepage="https://www.cs.cornell.edu/~cristian/Cornell_Movie-Dialogs_Corpus.html",
        citation="Danescu-Niculescu-Mizil and Lee, ACL 2011 CMCL workshop",
        download=Download(
            "https://www.cs.cornell.edu/~cristian/data/cornell_movie_dialogs_corpus.zip",
            9916637,
            "3bde8a571f615201bc2d2453e22878090719638592f774720eddec739de8c900",
        ),
        local_files={
            "lines": LocalFile(
                "dialogue/cornell/movie_lines.txt.gz",
                707391,
                "3e5c61c29b6bb1782d6828076759b0ee63480238c36776a1fe3924ade8a64cd6",
            ),
            "conversations": LocalFile(
                "dialogue/cornell/movie_conversations.txt.gz",
                75499,
                "e160ee6533ff9fd9c8a5bee5a6e32844d571010f722585ba98caa8b88614bbcd",
            ),
        },
        builder="cornell_dialogs",
    ),
)

BY_NAME: Mapping[str, CorpusSpec] = MappingProxyType({spec.name: spec for spec in CORPORA})


def known_names() -> list[str]:
    """Every accepted ``data.corpus`` form, for error messages."""
    return [*BY_NAME, *USER_CORPORA]


def corpus_spec(name: str) -> CorpusSpec:
    """The row for ``name``; ``CorpusError`` listing the known names otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise CorpusError(f"data.corpus is {name!r}; allowed: {', '.join(known_names())}") from None


def builder_specs(builder: str) -> dict[str, CorpusSpec]:
    """The rows one TFDS builder prepares, by builder config name."""
    return {spec.config: spec for spec in CORPORA if spec.builder == builder}


def is_dialogue(corpus: str, context_turns: int = 0) -> bool:
    """Dialogue: a dialogue corpus, or any corpus whose sources carry earlier turns."""
    spec = BY_NAME.get(corpus)
    return context_turns > 0 or (spec is not None and spec.task == "dialogue")


def corpus_languages(corpus: str, reverse: bool) -> tuple[str, str]:
    """(source, target) ISO 639-1 codes of a run, for the detokeniser; English when the
    table does not know the corpus."""
    spec = BY_NAME.get(corpus)
    first, second = spec.languages if spec else DEFAULT_LANGUAGES
    return (second, first) if reverse else (first, second)


def licence_note(corpus: str) -> str | None:
    """What a user of a model trained on ``corpus`` must know (licence, citation)."""
    spec = BY_NAME.get(corpus)
    return spec.licence_note if spec else None


def local_file_checksums() -> dict[str, tuple[int, str]]:
    """Relative path -> (size, sha256) of every pinned local file."""
    return {
        file.path: (file.size, file.sha256)
        for spec in CORPORA
        for file in spec.local_files.values()
    }


DATA_DIR_ENV = "SEQ2SEQ_DATA_DIR"
CACHE_DIR_ENV = "SEQ2SEQ_CACHE_DIR"
DEFAULT_CACHE_DIR = Path("~/.cache/seq2seq/tfds")


def resolve_cache_dir(cache_dir: str | Path | None) -> Path:
    """TFDS's prepared-data folder: argument, else $SEQ2SEQ_CACHE_DIR, else
    ~/.cache/seq2seq/tfds (prepared token-id shards are cached in its ``prepared/``)."""
    chosen = cache_dir or os.environ.get(CACHE_DIR_ENV) or DEFAULT_CACHE_DIR
    return Path(chosen).expanduser()


class CorpusError(ValueError):
    """A corpus file has bad content (the message names the file and line); its subclasses:
    a corpus not found, and a prepared folder that cannot be used
    (``seq2seq.data.prepared.PreparedDataError``)."""


class CorpusNotFoundError(CorpusError):
    """A corpus is neither on disk nor downloadable; says where we looked."""

    def __init__(self, corpus: str, looked_in: Iterable[str | Path], url: str | None = None):
        places = "\n".join(f"  - {place}" for place in looked_in) or "  - (no folder given)"
        how = f"With internet access it is downloaded automatically from {url}; " if url else ""
        message = (
            f"corpus {corpus!r} not found. Looked in:\n{places}\n"
            f"Point the config field data.data_dir or the environment variable {DATA_DIR_ENV} "
            "at a folder laid out like shared/data (translation/, dialogue/cornell/, "
            f"dialogue/dailydialog/). {how}or download it by hand and place it there."
        )
        super().__init__(message)
        self.corpus = corpus
        self.looked_in = [str(place) for place in looked_in]
        self.url = url
