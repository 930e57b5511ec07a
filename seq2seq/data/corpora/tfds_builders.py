"""TFDS builders for the project's corpora, offline-first.

Builders read a local folder laid out like ``shared/data`` (``data_dir`` argument, else
``$SEQ2SEQ_DATA_DIR``) and only call the TFDS downloader when the local files are
missing, so preparation never touches the network when the data is on disk. File names, download
URLs and checksums come from the corpus table (``seq2seq.data.corpora.spec``): local files are
checked against the sha256 of the known release, so a different or corrupted copy is
caught before it is cached. Prepared data lives under
a cache folder whose name carries a fingerprint of the source files, so changing the
source never serves stale prepared data.

Downloaded sources differ slightly from the shared copies: the DailyDialog zip holds one
nested zip per split with the original *tokenised* text (``Say , Jim ...``), which we read
as is; the Cornell zip is the full corpus (617 movies); fra-eng.zip is the current
manythings release (3 columns, attribution ignored).
"""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tensorflow as tf
import tensorflow_datasets as tfds
from etils import epath
from tensorflow_datasets.core.download.checksums import UrlInfo

from seq2seq.data.corpora import readers
from seq2seq.data.corpora.spec import (
    CORPORA,
    DATA_DIR_ENV,
    TFDS_PREFIX,
    CorpusError,
    CorpusNotFoundError,
    CorpusSpec,
    builder_specs,
    corpus_spec,
    local_file_checksums,
    resolve_cache_dir,
)

VERIFY_ENV = "SEQ2SEQ_VERIFY_CHECKSUMS"
VERSION = tfds.core.Version("1.1.0")
DAILY_SPLITS = ("train", "validation", "test")
RESOLVE_TIMEOUT_S = 10.0  # an offline start fails this fast, not after minutes of retries
LINE_REPORTS = "line_reports"  # key of the bad-line reports in the prepared data's metadata


@dataclass(eq=False)
class CorpusConfig(tfds.core.BuilderConfig):
    """A builder config that carries the bad-line policy."""

    max_bad_fraction: float = readers.DEFAULT_MAX_BAD_FRACTION


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify_local_file(root: Path, relative: str, digest: str) -> None:
    """Fail loudly when a local file is not the release the README describes."""
    expected = local_file_checksums().get(relative)
    if expected and expected[1] != digest:
        raise CorpusError(
            f"{root / relative}: sha256 {digest} does not match the expected release "
            f"({expected[1]}); the file is corrupted or a different version. Restore it, or "
            f"set {VERIFY_ENV}=0 (verify=False) to use your own copy."
        )


def resolve_data_dir(data_dir: str | Path | None) -> Path | None:
    """Local corpus folder: argument, else $SEQ2SEQ_DATA_DIR, else none. A folder that is
    named but does not exist is an error (a typo must not silently become a download)."""
    chosen = data_dir or os.environ.get(DATA_DIR_ENV)
    if not chosen:
        return None
    folder = Path(chosen).expanduser()
    if not folder.is_dir():
        origin = "data.data_dir" if data_dir else f"${DATA_DIR_ENV}"
        raise CorpusError(
            f"the corpus folder {folder} ({origin}) does not exist; fix the path, or unset "
            "it to download the corpus"
        )
    return folder


def check_host_resolves(url: str, timeout: float | None = None) -> None:
    """``OSError`` within ``timeout`` seconds when the download host cannot be resolved
    (offline): the downloader would otherwise retry for minutes before giving up."""
    host = urllib.parse.urlparse(url).hostname or ""
    outcome: list[BaseException | None] = []

    def resolve() -> None:
        try:
            socket.getaddrinfo(host, 443)
            outcome.append(None)
        except OSError as error:
            outcome.append(error)

    worker = threading.Thread(target=resolve, daemon=True)
    worker.start()
    worker.join(RESOLVE_TIMEOUT_S if timeout is None else timeout)
    if not outcome:
        raise OSError(f"cannot resolve {host}: no answer (offline?)")
    if outcome[0] is not None:
        raise OSError(f"cannot resolve {host} (offline?): {outcome[0]}")


def verify_enabled(verify: bool | None) -> bool:
    if verify is not None:
        return verify
    return os.environ.get(VERIFY_ENV, "1").strip().lower() not in ("0", "false", "no")


def find_local(root: Path | None, relatives: dict[str, str]) -> dict[str, Path] | None:
    """Map key -> local file (``.gz`` or plain) if every file is present, else None."""
    if root is None:
        return None
    found = {}
    for key, relative in relatives.items():
        candidates = [root / relative, root / relative.removesuffix(".gz")]
        path = next((c for c in candidates if c.is_file()), None)
        if path is None:
            return None
        found[key] = path
    return found


def find_in(folder: epath.Path | Path, filename: str) -> Path:
    """Locate a file anywhere inside an extracted archive (archives nest differently)."""
    matches = sorted(p for p in Path(folder).rglob(filename) if "__MACOSX" not in p.parts)
    if not matches:
        raise CorpusError(f"{folder}: the downloaded archive has no {filename}")
    return matches[0]


def configs_of(builder: str) -> list[CorpusConfig]:
    """One builder config per row of the corpus table that ``builder`` prepares."""
    return [
        CorpusConfig(name=config, description=spec.title)
        for config, spec in builder_specs(builder).items()
    ]


class LocalFirstBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
    """Shared plumbing: local files first, download otherwise, bad-line policy."""

    VERSION = VERSION
    RELEASE_NOTES = {
        "1.0.0": "First release: local shared/data layout or canonical source.",
        "1.1.0": "The bad-line report is kept with the prepared data (metadata.json).",
    }

    def __init__(
        self,
        *,
        source_dir: str | Path | None = None,
        verify: bool | None = None,
        max_bad_fraction: float | None = None,
        **kwargs: Any,
    ):
        self.source_dir = resolve_data_dir(source_dir)
        self.verify = verify_enabled(verify)
        self.bad_fraction_override = max_bad_fraction
        super().__init__(**kwargs)

    @tfds.core.utils.classproperty
    @classmethod
    def url_infos(cls) -> dict[str, UrlInfo]:
        """Download checksums, from the corpus table (pinned downloads only)."""
        return {
            spec.download.url: UrlInfo(
                size=tfds.core.utils.Size(spec.download.size),
                checksum=spec.download.sha256,
                filename=spec.download.url.rsplit("/", 1)[-1],
            )
            for spec in CORPORA
            if spec.download.sha256
        }

    @classmethod
    def spec_of(cls, config_name: str) -> CorpusSpec:
        return builder_specs(cls.name)[config_name]

    @classmethod
    def relative_paths(cls, config_name: str) -> dict[str, str]:
        """Key -> path of each local file, relative to the data folder."""
        return {key: file.path for key, file in cls.spec_of(config_name).local_files.items()}

    @classmethod
    def local_files(cls, config_name: str, source_dir: Path | None) -> dict[str, Path] | None:
        return find_local(source_dir, cls.relative_paths(config_name))

    @classmethod
    def source_tag(cls, config_name: str, source_dir: Path | None, verify: bool) -> str:
        """Cache sub-folder: ``local-<fingerprint>`` of the files, or ``download``."""
        files = cls.local_files(config_name, source_dir)
        if files is None:
            return "download"
        combined = hashlib.sha256()
        relatives = cls.relative_paths(config_name)
        for key, path in sorted(files.items()):
            digest = sha256_file(path)
            if verify and source_dir is not None:
                verify_local_file(source_dir, relatives[key], digest)
            combined.update(f"{key}:{digest};".encode())
        return f"local-{combined.hexdigest()[:16]}"

    @property
    def max_bad_fraction(self) -> float:
        """Builder argument, else the BuilderConfig's value, else the module default."""
        if self.bad_fraction_override is not None:
            return self.bad_fraction_override
        config = self.builder_config
        return getattr(config, "max_bad_fraction", readers.DEFAULT_MAX_BAD_FRACTION)

    def record(self, key: str, report: readers.LineReport) -> None:
        """Keep the bad-line report of ``key`` (a split) with the prepared data, so the
        ``max_bad_fraction`` threshold is checked on every load (``check_line_reports``),
        not only when the cache is built."""
        reports = self.info.metadata.setdefault(LINE_REPORTS, {})
        reports[key] = {
            "total": report.total,
            "bad": [[bad.path, bad.line_number, bad.reason] for bad in report.bad],
        }

    def source_files(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Path]:
        local = self.local_files(self.builder_config.name, self.source_dir)
        if local is not None:
            return local
        try:
            check_host_resolves(self.url)
            return self.download(dl_manager)
        except CorpusError:
            raise
        except Exception as error:  # network, HTTP or checksum failures
            raise CorpusNotFoundError(self.corpus_name, self.looked_in(), self.url) from error

    def looked_in(self) -> list[str | Path]:
        relatives = self.relative_paths(self.builder_config.name).values()
        if self.source_dir is None:
            return [f"no local folder: data.data_dir and ${DATA_DIR_ENV} are not set"]
        return [self.source_dir / relative for relative in relatives]

    @property
    def spec(self) -> CorpusSpec:
        return self.spec_of(self.builder_config.name)

    @property
    def corpus_name(self) -> str:
        return self.spec.name

    @property
    def url(self) -> str:
        return self.spec.download.url

    def download(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Path]:
        raise NotImplementedError


class Anki(LocalFirstBuilder):
    """Tatoeba sentence pairs from manythings.org/anki: one example per line."""

    BUILDER_CONFIGS = configs_of("anki")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            disable_shuffling=True,  # keep file order: examples are keyed by line
            features=tfds.features.FeaturesDict(
                {"english": tfds.features.Text(), "other": tfds.features.Text(), "line": tf.int64}
            ),
            supervised_keys=("english", "other"),
            metadata=tfds.core.MetadataDict(),
            homepage=self.spec.homepage,
            citation=self.spec.citation,
        )

    def download(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Path]:
        folder = dl_manager.download_and_extract(self.url)
        language = self.builder_config.name.split("-")[0]
        return {"pairs": find_in(folder, f"{language}.txt")}

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        return {"train": self._generate_examples(self.source_files(dl_manager)["pairs"])}

    def _generate_examples(self, path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
        report = readers.LineReport()
        for number, english, other in readers.read_anki(path, report):
            yield number, {"english": english, "other": other, "line": number}
        self.record("train", report)


class DailyDialog(LocalFirstBuilder):
    """DailyDialog: one example per dialogue, official train/validation/test splits."""

    BUILDER_CONFIGS = configs_of("daily_dialog")
    VERSION = tfds.core.Version("1.2.0")
    RELEASE_NOTES = {
        **LocalFirstBuilder.RELEASE_NOTES,
        "1.2.0": 'Tokenisation traces repaired: "It\' s" -> "It\'s", "I\'Ve" -> "I\'ve".',
    }

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            disable_shuffling=True,  # keep file order: examples are keyed by line
            features=tfds.features.FeaturesDict(
                {"id": tf.int64, "turns": tfds.features.Sequence(tfds.features.Text())}
            ),
            metadata=tfds.core.MetadataDict(),
            homepage=self.spec.homepage,
            citation=self.spec.citation,
        )

    def download(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Path]:
        """The zip holds ``train.zip`` etc.; each holds ``<split>/dialogues_<split>.txt``."""
        outer = dl_manager.download_and_extract(self.url)
        inner = {split: find_in(outer, f"{split}.zip") for split in DAILY_SPLITS}
        folders = dl_manager.extract({split: epath.Path(p) for split, p in inner.items()})
        return {split: find_in(folders[split], f"dialogues_{split}.txt") for split in DAILY_SPLITS}

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        files = self.source_files(dl_manager)
        return {split: self._generate_examples(files[split], split) for split in DAILY_SPLITS}

    def _generate_examples(self, path: Path, split: str) -> Iterator[tuple[int, dict[str, Any]]]:
        report = readers.LineReport()
        for index, turns in readers.read_dailydialog(path, report):
            yield index, {"id": index, "turns": turns}
        self.record(split, report)


class CornellDialogs(LocalFirstBuilder):
    """Cornell Movie-Dialogs: one example per conversation, a single train split."""

    BUILDER_CONFIGS = configs_of("cornell_dialogs")

    def _info(self) -> tfds.core.DatasetInfo:
        return self.dataset_info_from_configs(
            disable_shuffling=True,  # keep file order: examples are keyed by line
            features=tfds.features.FeaturesDict(
                {
                    "id": tf.int64,
                    "movie_id": tfds.features.Text(),
                    "turns": tfds.features.Sequence(tfds.features.Text()),
                }
            ),
            metadata=tfds.core.MetadataDict(),
            homepage=self.spec.homepage,
            citation=self.spec.citation,
        )

    def download(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Path]:
        folder = dl_manager.download_and_extract(self.url)
        names = self.relative_paths(self.builder_config.name)
        return {
            key: find_in(folder, Path(rel).name.removesuffix(".gz")) for key, rel in names.items()
        }

    def _split_generators(self, dl_manager: tfds.download.DownloadManager) -> dict[str, Any]:
        files = self.source_files(dl_manager)
        return {"train": self._generate_examples(files["lines"], files["conversations"])}

    def _generate_examples(
        self, lines: Path, conversations: Path
    ) -> Iterator[tuple[int, dict[str, Any]]]:
        report = readers.LineReport()
        for index, movie_id, turns in readers.read_cornell(lines, conversations, report):
            yield index, {"id": index, "movie_id": movie_id, "turns": turns}
        self.record("train", report)


BUILDERS: dict[str, type[LocalFirstBuilder]] = {
    cls.name: cls for cls in (Anki, DailyDialog, CornellDialogs)
}


def prepare_builder(
    name: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    *,
    max_bad_fraction: float | None = None,
    verify: bool | None = None,
) -> tfds.core.DatasetBuilder:
    """Build (preparing once, then cached) ``anki/<pair>``, ``daily_dialog``,
    ``cornell_dialogs`` or any registered TFDS dataset as ``tfds:NAME``."""
    cache = resolve_cache_dir(cache_dir)
    config = tfds.download.DownloadConfig(try_download_gcs=False)
    if name.startswith(TFDS_PREFIX):
        builder = tfds.builder(name.removeprefix(TFDS_PREFIX), data_dir=str(cache / "tfds"))
        builder.download_and_prepare(download_config=config)
        return builder
    spec = corpus_spec(name)  # CorpusError naming the known corpora
    cls, config_name = BUILDERS[spec.builder], spec.config
    source_dir = resolve_data_dir(data_dir)
    tag = cls.source_tag(config_name, source_dir, verify_enabled(verify))
    builder = cls(
        config=config_name,
        data_dir=str(cache / tag),
        source_dir=source_dir,
        verify=verify,
        max_bad_fraction=max_bad_fraction,
    )
    builder.download_and_prepare(download_config=config)
    check_line_reports(builder, builder.max_bad_fraction)
    return builder


def check_line_reports(builder: LocalFirstBuilder, max_bad_fraction: float) -> None:
    """``CorpusError`` if the prepared data holds more bad lines than ``max_bad_fraction``
    allows (run on every load: the cache may have been built with a laxer threshold);
    otherwise the bad lines are logged, every time."""
    reports = (builder.info.metadata or {}).get(LINE_REPORTS)
    if reports is None:
        raise CorpusError(
            f"{builder.data_dir}: the prepared data has no bad-line report (damaged cache?); "
            "delete this folder to prepare the corpus again"
        )
    for _, stored in sorted(reports.items()):
        bad = [readers.BadLine(path, number, reason) for path, number, reason in stored["bad"]]
        readers.LineReport(total=stored["total"], bad=bad).check(max_bad_fraction)


READ_BATCH = 1 << 16


def parse_spec(builder: tfds.core.DatasetBuilder) -> dict[str, Any] | None:
    """``tf.io.parse_example`` spec for flat features and 1-D sequences, else None."""
    spec: dict[str, Any] = {}
    for key, info in builder.info.features.get_serialized_info().items():
        if not hasattr(info, "shape"):
            return None
        if tuple(info.shape) == ():
            spec[key] = tf.io.FixedLenFeature([], info.tf_dtype)
        elif tuple(info.shape) == (None,):
            spec[key] = tf.io.RaggedFeature(info.tf_dtype)
        else:
            return None
    return spec


def column_batches(builder: tfds.core.DatasetBuilder, split: str) -> Iterator[dict[str, list]]:
    """A split as Python columns, a batch of ``READ_BATCH`` examples at a time. Parsing the
    prepared TFRecords in large batches is ~6x faster than TFDS's per-example decoding,
    which matters for 100k+ sentence pairs."""
    spec = parse_spec(builder)
    files = [str(path) for path in builder.info.splits[split].filepaths]
    if spec is None or builder.info.file_format != tfds.core.FileFormat.TFRECORD:
        for batch in tfds.as_numpy(builder.as_dataset(split=split, batch_size=READ_BATCH)):
            yield {key: to_python(values) for key, values in batch.items()}
        return
    dataset = tf.data.TFRecordDataset(files).batch(READ_BATCH)
    for batch in dataset.map(lambda records: tf.io.parse_example(records, spec)):
        yield {key: column_to_python(values) for key, values in batch.items()}


def read_columns(builder: tfds.core.DatasetBuilder, split: str) -> dict[str, list[Any]]:
    """Whole split as Python columns."""
    columns: dict[str, list[Any]] = {}
    for batch in column_batches(builder, split):
        for key, values in batch.items():
            columns.setdefault(key, []).extend(values)
    return columns


def column_to_python(values: Any) -> list[Any]:
    """A batch of one feature -> list; the common flat cases skip the generic walk."""
    if isinstance(values, tf.Tensor) and values.dtype == tf.string:
        return [item.decode("utf-8") for item in values.numpy().tolist()]
    if isinstance(values, tf.Tensor) and values.dtype.is_integer:
        return values.numpy().tolist()
    return to_python(values)


def to_python(value: Any) -> Any:
    """Tensors / numpy values -> plain str / int / nested lists."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, tf.RaggedTensor):
        return to_python(value.to_list())
    if hasattr(value, "numpy"):
        value = value.numpy()
    if hasattr(value, "tolist"):
        value = value.tolist()
    if isinstance(value, list | tuple):
        return [to_python(item) for item in value]
    return value


def load_examples(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """Examples of one split as Python dicts (text decoded), in the prepared order."""
    builder = prepare_builder(name, data_dir, cache_dir, **kwargs)
    if split not in builder.info.splits:
        raise CorpusError(f"{name} has no split {split!r}; it has {', '.join(builder.info.splits)}")
    columns = read_columns(builder, split)
    count = len(next(iter(columns.values()), []))
    return [{key: values[i] for key, values in columns.items()} for i in range(count)]


def iter_examples(
    name: str,
    split: str,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    **kwargs: Any,
) -> Iterator[dict[str, Any]]:
    """Examples of one split as Python dicts, streamed in the prepared order."""
    builder = prepare_builder(name, data_dir, cache_dir, **kwargs)
    if split not in builder.info.splits:
        raise CorpusError(f"{name} has no split {split!r}; it has {', '.join(builder.info.splits)}")
    for columns in column_batches(builder, split):
        count = len(next(iter(columns.values()), []))
        for i in range(count):
            yield {key: values[i] for key, values in columns.items()}
