"""Shared test fixtures."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PAIRS = REPO / "data" / "sample" / "pairs.tsv"
# A run of the sample file that trains in seconds (tiny model, word vocabularies): the
# overrides for the quickstart preset, for tests that train through a command line.
SAMPLE_RUN = (
    "data.corpus=tsv",
    f"data.path={SAMPLE_PAIRS}",
    "data.reverse=false",
    "data.max_pairs=null",
    "data.context_turns=0",
    "data.tokenizer=word",
    "data.source_vocab_size=200",
    "data.target_vocab_size=200",
    "data.dev_fraction=0.1",
    "data.test_fraction=0.1",
    "model.embedding_dim=16",
    "model.hidden_size=16",
    "train.dev_bleu_sentences=4",
    "train.mixed_precision='off'",
)

# Nothing in the tests may reach the network: Gradio's analytics and the Hub stay off.
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
if "SEQ2SEQ_DATA_DIR" not in os.environ and (REPO.parent / "shared" / "data").is_dir():
    os.environ["SEQ2SEQ_DATA_DIR"] = str(REPO.parent / "shared" / "data")

# A shell starts background jobs (`pytest &`, `nohup pytest &`) with SIGINT ignored, and
# children inherit that: the apps these tests start would then ignore the Ctrl-C the tests
# send them, and hang. Catching SIGINT here (Python's usual handler) lets them start normal.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

# Training a run (and compiling its first searches) is most of the suite's time: any test
# that needs a trained run is in the slow tier, so `pytest -m "not slow"` stays fast.
TRAINED_RUN_FIXTURES = {
    "tiny_run",
    "tiny_translator",
    "plain_run",
    "plain_translator",
    "tiny_models",
    "tiny_dialogue_run",
    "tiny_dialogue_backward",
}


def pytest_collection_modifyitems(items):
    for item in items:
        if TRAINED_RUN_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Prepared TFDS data goes to a per-session folder unless the caller chose one."""
    if "SEQ2SEQ_CACHE_DIR" not in os.environ:
        os.environ["SEQ2SEQ_CACHE_DIR"] = str(tmp_path_factory.mktemp("tfds-cache"))
    yield


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The real corpora: $SEQ2SEQ_DATA_DIR, else <repo>/../shared/data; skip if absent."""
    folder = Path(os.environ.get("SEQ2SEQ_DATA_DIR") or REPO.parent / "shared" / "data")
    if not folder.is_dir():
        pytest.skip(f"shared corpora not found at {folder}; set SEQ2SEQ_DATA_DIR to run these")
    return folder


# -- tiny_run: a tiny trained run folder shared by the decoding/translator/CLI tests ------

_TINY_UNITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
_TINY_TARGET = ["cero", "uno", "dos", "tres", "cuatro", "cinco", "seis", "siete", "ocho", "nueve"]


def _tiny_pairs() -> list[tuple[str, str]]:
    """Made-up pairs: 'one two three .' -> 'uno dos tres .' for 1-4 digit sequences."""
    import random

    rng = random.Random(7)
    pairs = set()
    while len(pairs) < 400:
        digits = [rng.randrange(10) for _ in range(rng.randint(1, 4))]
        source = " ".join(_TINY_UNITS[d] for d in digits) + " ."
        target = " ".join(_TINY_TARGET[d] for d in digits) + " ."
        pairs.add((source.capitalize(), target.capitalize()))
    return sorted(pairs)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> Path:
    """A trained run folder (word tokenizers, hidden size 32, 5 epochs): seconds on a CPU."""
    from seq2seq.config import load_config
    from seq2seq.training.loop import train

    folder = tmp_path_factory.mktemp("tiny_run")
    corpus = folder / "pairs.tsv"
    corpus.write_text("".join(f"{s}\t{t}\n" for s, t in _tiny_pairs()), encoding="utf-8")
    config = load_config(
        "quickstart",
        overrides=[
            "data.corpus=tsv",
            f"data.path={corpus}",
            "data.reverse=false",
            "data.max_pairs=null",
            "data.tokenizer=word",
            "data.source_vocab_size=64",
            "data.target_vocab_size=64",
            "data.max_source_length=12",
            "data.max_target_length=12",
            "model.embedding_dim=32",
            "model.hidden_size=32",
            "model.dropout=0.0",
            "train.epochs=5",
            "train.learning_rate=0.01",
            "train.label_smoothing=0.0",  # the evaluation's teacher-forced loss must match
            "train.select_best_by=bleu",  # records dev BLEU, which the app's model info shows
            "data.lowercase=true",
            "train.batch_size=32",
            "train.dev_bleu_sentences=16",
            "train.mixed_precision='off'",
            "decode.max_length=16",
        ],
    )
    run = folder / "run"
    train(config, run, verbose=0)
    return run


@pytest.fixture(scope="session")
def tiny_translator(tiny_run):
    """One ``Translator`` on ``tiny_run`` for the whole session: its searches trace once."""
    from seq2seq.inference.translator import Translator

    return Translator.from_run(tiny_run)


@pytest.fixture(scope="session")
def plain_run(tiny_run, tmp_path_factory) -> Path:
    """A copy of ``tiny_run`` that decodes without XLA (``decode.jit_compile: false``), as
    the only run of its models folder: with XLA each new input shape of a fuzz test would
    compile for seconds."""
    import shutil

    import yaml

    run = tmp_path_factory.mktemp("plain-models") / "tiny"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("logs", "backup", "eval-*"))
    config = yaml.safe_load((run / "config.yaml").read_text(encoding="utf-8"))
    config["decode"]["jit_compile"] = False
    (run / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    return run


@pytest.fixture(scope="session")
def plain_translator(plain_run):
    """A ``Translator`` on ``plain_run`` that refuses inputs over 100 characters."""
    from seq2seq.inference.translator import Translator

    return Translator.from_run(plain_run, max_input_chars=100)


@pytest.fixture(scope="session")
def tiny_models(tiny_run, tmp_path_factory) -> Path:
    """A models folder for the app: ``tiny`` (a copy of ``tiny_run``) and ``tiny-chat`` (the
    same weights registered as a one-context-turn chat run). Copies, so that nothing the app
    tests do touches ``tiny_run`` and files other tests write there are left out."""
    import shutil

    import yaml

    models = tmp_path_factory.mktemp("models")
    ignore = shutil.ignore_patterns("eval-*", "backup")
    shutil.copytree(tiny_run, models / "tiny", ignore=ignore)
    shutil.copytree(tiny_run, models / "tiny-chat", ignore=ignore)
    chat_config = models / "tiny-chat" / "config.yaml"
    raw = yaml.safe_load(chat_config.read_text(encoding="utf-8"))
    raw["data"]["context_turns"] = 1
    chat_config.write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    return models


# -- tiny_dialogue_run (+ its backward run): chat CLI, streaming and MMI tests ------------

GREETINGS = ["hi", "hello", "good morning", "hey there", "good evening"]
QUESTIONS = ["how are you", "what is new", "where are you going", "what time is it"]
ANSWERS = ["i am fine thanks", "nothing much", "to the market", "it is late"]
TINY_DIALOGUE_SETTINGS = [
    "data.corpus=tsv",
    "data.tokenizer=word",
    "data.dev_fraction=0.15",
    "data.test_fraction=0.15",
    "data.source_vocab_size=64",
    "data.target_vocab_size=64",
    "model.embedding_dim=16",
    "model.hidden_size=16",
    "model.dropout=0.0",
    "train.epochs=1",
    "train.batch_size=16",
    "train.select_best_by=loss",
]


def synthetic_dialogues() -> list[list[str]]:
    dialogues = []
    for greeting in GREETINGS:
        for question, answer in zip(QUESTIONS, ANSWERS, strict=True):
            for mark in ("!", ".", "?"):
                dialogues.append(
                    [f"{greeting}{mark}", f"{greeting} to you.", f"{question}?", answer]
                )
    return dialogues


@pytest.fixture(scope="session")
def tiny_dialogue_folder(tmp_path_factory) -> Path:
    """A folder for ``run`` (the chat run) and ``run-backward`` (its backward run)."""
    return tmp_path_factory.mktemp("tiny-chat")


@pytest.fixture(scope="session")
def tiny_dialogue_run(tiny_dialogue_folder) -> Path:
    """A word-level model on (previous turn <sep> message, reply) pairs written as a TSV."""
    from seq2seq.config import load_config
    from seq2seq.data.dialogue import build_source
    from seq2seq.training.loop import train

    corpus = tiny_dialogue_folder / "dialogue.tsv"
    lines = []
    for turns in synthetic_dialogues():
        for i in range(1, len(turns)):
            lines.append(f"{build_source(turns[: i - 1], turns[i - 1], 1, '<sep>')}\t{turns[i]}\n")
    corpus.write_text("".join(lines), encoding="utf-8")
    config = load_config(
        overrides=[
            *TINY_DIALOGUE_SETTINGS,
            f"data.path={corpus}",
            "data.context_turns=1",
            "decode.method=sample",
            "decode.top_p=0.9",
            "decode.temperature=0.8",
            "decode.min_length=2",
            "decode.max_length=8",
            "decode.no_repeat_ngram_size=3",
        ]
    )
    run = tiny_dialogue_folder / "run"
    train(config, run, verbose=0)
    return run


@pytest.fixture(scope="session")
def tiny_dialogue_backward(tiny_dialogue_folder) -> Path:
    """The backward run of ``tiny_dialogue_run`` (reply -> message, no context), trained
    into ``run-backward`` beside it, where MMI reranking finds it."""
    from seq2seq.config import load_config
    from seq2seq.training.loop import train

    corpus = tiny_dialogue_folder / "turns.tsv"
    lines = []
    for turns in synthetic_dialogues():
        lines.extend(f"{turns[i - 1]}\t{turns[i]}\n" for i in range(1, len(turns)))
    corpus.write_text("".join(lines), encoding="utf-8")
    config = load_config(
        overrides=[*TINY_DIALOGUE_SETTINGS, f"data.path={corpus}", "data.reverse=true"]
    )
    run = tiny_dialogue_folder / "run-backward"
    train(config, run, verbose=0)
    return run


@pytest.fixture
def patient_assertions():
    """Playwright's ``expect`` waits 5 s by default: a first page load of the app on a busy
    2-core machine can take longer, so the browser tests' assertions wait up to a minute."""
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)
    yield
    expect.set_options(timeout=5_000)


CHROMIUM = Path("/usr/bin/chromium")  # Debian's, from .ci/install-browser.sh
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium through Playwright, one per test module; skipped without it."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found; install it with .ci/install-browser.sh")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield browser
        browser.close()
