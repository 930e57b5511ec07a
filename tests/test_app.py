"""The Gradio app: handlers on conftest's tiny trained run, then the app served on loopback;
only runs that open are offered, refusals log one line, generated inputs never crash it; what
a newcomer met (issue 23): no emoji, whole epochs on a one-epoch plot, the chosen method's
sliders, separated parameter counts, what a study is, no log line per page load, Ctrl-C ending
the app with status 130, and each model's quality line."""

from __future__ import annotations

import os

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["HF_HUB_OFFLINE"] = "1"

import json  # noqa: E402
import logging  # noqa: E402
import re  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import urllib.request  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import pytest  # noqa: E402
from conftest import REPO  # noqa: E402
from fuzzing import ANY_TEXT, FUZZ  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from apps import common, model_tab, plots, study_tab, web  # noqa: E402
from apps.registry import TRAIN_CHAT, TRAIN_TRANSLATION, Registry, direction  # noqa: E402
from seq2seq.config import load_config  # noqa: E402
from seq2seq.inference.translator import InputError  # noqa: E402

DECODING = ["greedy", 5, 1, 1.0, 0, 1.0, 20]  # method, beam, n-best, temperature, k, p, max


@pytest.fixture(scope="module")
def models_dir(tiny_models) -> Path:
    """conftest's ``tiny_models``: ``tiny`` (English digit words -> Spanish) and
    ``tiny-chat`` (the same weights as a one-context-turn chat run)."""
    return tiny_models


@pytest.fixture(scope="module")
def registry(models_dir) -> Registry:
    return Registry(models_dir, max_input_chars=50)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def launch(models: Path, max_input_chars: int = 1000) -> tuple[gr.Blocks, str]:
    demo = web.build_app(models, max_input_chars=max_input_chars)
    demo.queue(default_concurrency_limit=2)
    _, url, _ = demo.launch(
        server_name="127.0.0.1",
        server_port=free_port(),
        prevent_thread_lock=True,
        quiet=True,
        css=web.CSS,
        ssr_mode=False,
    )
    return demo, url


# ---------------------------------------------------------------------------------------
# Pure helpers (no model)


def test_direction_labels():
    assert direction(load_config("quickstart")) == "es → en"
    assert direction(load_config("en-es-gru")) == "en → es"
    chat = load_config(
        "quickstart",
        overrides=["data.corpus=daily_dialog", "data.reverse=false", "data.context_turns=2"],
    )
    assert direction(chat).startswith("chat: daily_dialog")


def test_history_turns_reads_every_message_format():
    history = [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "text", "text": "hello"}]},
        {"role": "user", "content": {"type": "text", "text": "how are you"}},
    ]
    assert web.history_turns(history) == ["hi", "hello", "how are you"]
    assert web.history_turns(None) == []


def test_decode_overrides_only_pass_what_the_method_uses():
    assert web.decode_overrides("greedy", 5, 3, 1.0, 0, 1.0, 20) == {
        "method": "greedy",
        "max_length": 20,
        "n_best": 1,
    }
    beam = web.decode_overrides("beam", 4, 3.0, 1.0, 0, 1.0, 20)
    assert beam == {"method": "beam", "beam_size": 4, "n_best": 3, "max_length": 20}
    sample = web.decode_overrides("sample", 4.0, 1, 0.5, 7.0, 0.8, 20.0)
    assert sample["temperature"] == 0.5 and sample["top_k"] == 7 and sample["top_p"] == 0.8
    with pytest.raises(gr.Error, match="decoding method is 'magic'; allowed: greedy, beam"):
        web.decode_overrides("magic", 4, 1, 1.0, 0, 1.0, 20)
    with pytest.raises(gr.Error, match="temperature must be a number, got 'hot'"):
        web.decode_overrides("sample", 4, 1, "hot", 0, 1.0, 20)


def test_training_figure_from_history_csv(tmp_path):
    history = tmp_path / "history.csv"
    history.write_text("epoch,loss,val_loss\n0,2.0,2.5\n1,1.5,2.0\n", encoding="utf-8")
    rows = plots.epoch_rows({}, history)
    assert [r["epoch"] for r in rows] == [1, 2]
    assert isinstance(plots.training_figure(rows), Figure)
    assert isinstance(plots.training_figure([]), Figure)


def test_empty_folder_shows_the_train_commands(tmp_path):
    registry = Registry(tmp_path / "no-runs-here")
    notice = web.empty_notice(registry)
    assert TRAIN_TRANSLATION in notice and TRAIN_CHAT in notice
    assert "--preset quickstart --output runs/quickstart" in notice
    with pytest.raises(gr.Error, match="python -m seq2seq.train --preset quickstart"):
        web.translate(registry, "hola", None)
    with pytest.raises(gr.Error, match="quickstart-chat"):
        list(web.chat(registry, "hola", [], None))
    assert isinstance(web.build_app(tmp_path), gr.Blocks)


# ---------------------------------------------------------------------------------------
# Handlers on the tiny model


@pytest.mark.slow
def test_registry_lists_runs_by_kind(registry):
    assert [name for _, name in registry.choices("translation")] == ["tiny"]
    assert [name for _, name in registry.choices("dialogue")] == ["tiny-chat"]
    assert registry.choices("translation")[0][0] == "tiny (tsv: source → target)"


@pytest.mark.slow
def test_translate_greedy_beam_and_sample(registry):
    """The handler gives what the library gives for the same settings: the controls reach
    the search (greedy and beam are deterministic; sampling with top-k 1 is greedy)."""
    translator = registry.translator(registry.resolve("tiny", "translation"))
    text, rows, figure, notes = web.translate(registry, "one two three .", "tiny", *DECODING)
    greedy = translator.translate_one(
        "one two three .", translator.decode_config(method="greedy", max_length=20)
    )
    assert text and text == greedy.text
    assert rows == [[1, greedy.text, round(greedy.score, 4)]]
    assert isinstance(figure, Figure)
    assert "tiny" in notes and "greedy" in notes

    _, rows, _, _ = web.translate(registry, "one two .", "tiny", "beam", 3, 3, 1.0, 0, 1.0, 20)
    beam = translator.translate_one(
        "one two .", translator.decode_config(method="beam", beam_size=3, n_best=3, max_length=20)
    )
    assert len(beam.n_best) == 3
    assert rows == [[i + 1, t, round(score, 4)] for i, (t, score) in enumerate(beam.n_best)]
    scores = [r[2] for r in rows]
    assert scores == sorted(scores, reverse=True)

    top_1 = ["sample", 5, 1, 0.7, 1, 0.9, 20]
    text, _, _, notes = web.translate(registry, "two nine .", "tiny", *top_1)
    assert (
        text
        == translator.translate_one(
            "two nine .", translator.decode_config(method="greedy", max_length=20)
        ).text
    )
    assert "sample" in notes


@pytest.mark.slow
def test_translator_is_loaded_once(registry):
    run = registry.resolve("tiny", "translation")
    assert registry.translator(run) is registry.translator(run)


@pytest.mark.slow
def test_translate_rejects_bad_input(registry):
    with pytest.raises(gr.Error, match="empty"):
        web.translate(registry, "   ", "tiny", *DECODING)
    with pytest.raises(gr.Error, match="limit is 50 characters"):
        web.translate(registry, "one " * 20, "tiny", *DECODING)
    for name in ("../tiny", "/etc", "tiny/../tiny", "tiny-chat", "nope", None, 3):
        with pytest.raises(gr.Error, match="Unknown translation model"):
            web.translate(registry, "one", name, *DECODING)


@pytest.mark.slow
def test_chat_streams_the_reply_and_uses_the_history(registry, monkeypatch):
    steps = list(web.chat(registry, "one nine .", [], "tiny-chat", *DECODING))
    assert steps
    for shorter, longer in zip(steps, steps[1:], strict=False):
        assert len(longer) > len(shorter)  # one text per chunk of decoder steps, growing
    translator = registry.translator(registry.resolve("tiny-chat", "dialogue"))
    assert (
        steps[-1]
        == translator.translate_one(
            "one nine .", translator.decode_config(method="greedy", max_length=20)
        ).text
    )

    seen = []
    original = translator.stream

    def spy(source, decode=None):
        seen.append(source)
        return original(source, decode)

    monkeypatch.setattr(translator, "stream", spy)
    history = [
        {"role": "user", "content": "one ."},
        {"role": "assistant", "content": "Uno ."},
    ]
    list(web.chat(registry, "two three .", history, "tiny-chat", *DECODING))
    assert seen == ["Uno . <sep> two three ."]  # context_turns=1: the bot's last turn

    beam = ["beam", 3, 1, 1.0, 0, 1.0, 20]
    steps = list(web.chat(registry, "one nine .", [], "tiny-chat", *beam))
    assert steps[0] == web.THINKING and len(steps) == 2  # no stream: thinking, then the reply

    with pytest.raises(gr.Error, match="Unknown chat model"):
        list(web.chat(registry, "hola", [], "tiny", *DECODING))
    with pytest.raises(gr.Error, match="limit is 50"):
        list(web.chat(registry, "x" * 51, [], "tiny-chat", *DECODING))
    sample = ["sample", 5, 1, 1.0, 0, 1.0, 20]
    with pytest.raises(gr.Error, match="needs the backward model tiny-chat-backward"):
        list(web.chat(registry, "one .", [], "tiny-chat", *sample, True, 0.5, 0.0, 4))
    switch = web.mmi_controls(registry, "tiny-chat")[0]  # off, disabled, says why
    assert not switch["interactive"] and "--preset chat-backward" in switch["info"]


@pytest.mark.slow
def test_chat_reranks_by_mmi_when_a_backward_model_is_beside_the_run(models_dir, tmp_path):
    """A models folder with ``tiny-chat-backward`` (here the digit model's weights under a
    backward config: the app only needs a run that fits) shows and applies MMI."""
    import shutil

    import yaml

    models = tmp_path / "models"
    shutil.copytree(models_dir / "tiny-chat", models / "tiny-chat")
    backward = models / "tiny-chat-backward"
    shutil.copytree(models_dir / "tiny", backward)
    raw = yaml.safe_load((backward / "config.yaml").read_text(encoding="utf-8"))
    raw["data"]["reverse"] = True
    (backward / "config.yaml").write_text(yaml.safe_dump(raw, sort_keys=False), encoding="utf-8")
    registry = Registry(models, max_input_chars=50)
    assert [name for _, name in registry.choices("dialogue")] == ["tiny-chat"]  # not backward
    shown = web.mmi_controls(registry, "tiny-chat")
    assert all(update["visible"] for update in shown)
    assert "tiny-chat-backward" in shown[0]["label"]
    sample = ["sample", 5, 1, 1.0, 0, 1.0, 12]
    steps = list(web.chat(registry, "one two .", [], "tiny-chat", *sample, True, 1.0, 0.1, 4))
    assert steps[0] == web.THINKING and len(steps) == 2 and steps[1]
    with pytest.raises(gr.Error, match="mmi_candidates is 1"):
        list(web.chat(registry, "one .", [], "tiny-chat", *sample, True, 1.0, 0.1, 1))


@pytest.mark.slow
def test_model_info_shows_architecture_parameters_and_curves(registry):
    summary, rows, figure, metrics = web.model_info(registry, "tiny")
    assert "| cell | gru |" in summary and "bidirectional" in summary
    parts = {row[0]: row[1:] for row in rows}
    gru, lstm, rnn = parts["encoder rnn"]
    assert lstm > gru > rnn  # 4 gate blocks, 3 gate blocks, 1
    assert parts["source embedding"][0] == parts["source embedding"][1]
    assert parts["total"][0] == sum(row[1] for row in rows if row[0] != "total")
    assert isinstance(figure, Figure)
    assert "dev BLEU" in metrics and "dev perplexity" in metrics
    with pytest.raises(gr.Error, match="Unknown model"):
        web.model_info(registry, "../../etc")


# ---------------------------------------------------------------------------------------
# The served app, through gradio_client


@pytest.mark.slow
def test_served_app_translates_chats_and_refuses_bad_input(models_dir, registry):
    from gradio_client import Client

    from seq2seq.data.dialogue import ChatSession

    greedy = dict(method="greedy", max_length=20)
    translator = registry.translator(registry.resolve("tiny", "translation"))
    expected_text = translator.translate_one("one two .", translator.decode_config(**greedy)).text
    chat_translator = registry.translator(registry.resolve("tiny-chat", "dialogue"))
    chat_greedy = chat_translator.decode_config(**greedy)
    expected_reply = ChatSession(chat_translator).reply("one nine .", chat_greedy) or "…"
    demo, url = launch(models_dir, max_input_chars=100)
    try:
        assert url.startswith("http://127.0.0.1:")
        client = Client(url, verbose=False, download_files=False, analytics_enabled=False)
        text, nbest, _plot, notes = client.predict(
            "one two .", "tiny", *DECODING, api_name="/translate"
        )
        assert text and text == expected_text
        assert "tiny" in notes
        assert nbest["data"][0][1] == text

        job = client.submit("one nine .", "tiny-chat", *DECODING, api_name="/chat")
        updates = list(job)
        final = job.result()
        assert updates and final
        assert final == updates[-1] == expected_reply

        with pytest.raises(Exception, match="limit is 100 characters"):
            client.predict("one " * 30, "tiny", *DECODING, api_name="/translate")
        with pytest.raises(Exception, match="empty"):
            client.predict("", "tiny", *DECODING, api_name="/translate")
        with pytest.raises(Exception, match="not in the list of choices|Unknown"):
            client.predict("one .", "../tiny", *DECODING, api_name="/translate")
    finally:
        demo.close()


@pytest.mark.slow
def test_served_app_without_models_shows_the_train_command(tmp_path):
    demo, url = launch(tmp_path)
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/config", timeout=30) as response:
            config = json.loads(response.read().decode("utf-8"))
        values = json.dumps(config)
        assert TRAIN_TRANSLATION in values and TRAIN_CHAT in values
        with urllib.request.urlopen(url, timeout=30) as response:
            assert response.status == 200
    finally:
        demo.close()


# -- only runs that open are offered; refusals log one line; fuzz ------------------------


@pytest.fixture(scope="module")
def mixed_models(tiny_run, tmp_path_factory) -> Path:
    """``ok`` plus broken runs whose names sort first (so a broken one would be the
    default choice if it were listed): a truncated model, a damaged FORMAT, an empty
    config.yaml, a model beside other vocabularies; and a folder that is not a run."""
    from seq2seq.data.tokenizers import SPECIAL_PIECES, WordTokenizer

    models = tmp_path_factory.mktemp("mixed-models")
    ignore = shutil.ignore_patterns("logs", "backup", "eval-*")
    for name in ("a-truncated", "b-format", "c-empty-config", "d-other-vocab", "ok"):
        shutil.copytree(tiny_run, models / name, ignore=ignore)
    for name in ("model.keras", "last.keras"):
        path = models / "a-truncated" / name
        path.write_bytes(path.read_bytes()[:1600])
    (models / "b-format").joinpath("FORMAT").write_bytes(b"\x89\xfe\x00garbage")
    (models / "c-empty-config" / "config.yaml").write_text("", encoding="utf-8")
    vocab = models / "d-other-vocab" / "target_vocab"
    shutil.rmtree(vocab)
    WordTokenizer([*SPECIAL_PIECES, "uno", "dos"], lowercase=True).save(vocab)
    # as a run from before vocabulary fingerprints: found out only when the model loads
    (models / "d-other-vocab" / "vocabularies.sha256").unlink(missing_ok=True)
    (models / "notes").mkdir()
    (models / "notes" / "readme.txt").write_text("not a run", encoding="utf-8")
    return models


def test_only_runs_that_open_are_offered(mixed_models):
    registry = Registry(mixed_models)
    names = [run.name for run in registry.runs()]
    assert "ok" in names and not {"a-truncated", "b-format", "c-empty-config"} & set(names)
    broken = {run.name: run.reason for run in registry.broken()}
    assert set(broken) == {"a-truncated", "b-format", "c-empty-config"}
    assert "corrupt" in broken["a-truncated"] and "FORMAT is damaged" in broken["b-format"]
    assert "the file is empty" in broken["c-empty-config"]
    for reason in broken.values():
        assert str(mixed_models) not in reason and str(mixed_models.resolve()) not in reason
    notice = web.empty_notice(registry).split("not offered")[1]
    assert "`a-truncated`" in notice and "`ok`" not in notice
    assert str(mixed_models) not in notice


def test_a_run_that_fails_to_load_is_moved_apart(mixed_models, caplog):
    registry = Registry(mixed_models)
    with caplog.at_level(logging.WARNING), pytest.raises(gr.Error) as refused:
        web.translate(registry, "one two .", "d-other-vocab", *DECODING)
    message = str(refused.value)
    assert "Could not load d-other-vocab" in message and "different runs" in message
    assert str(mixed_models) not in message
    assert refused.value.print_exception is False
    assert "d-other-vocab" not in [run.name for run in registry.runs()]
    assert "d-other-vocab" in [run.name for run in registry.broken()]
    with pytest.raises(gr.Error, match="d-other-vocab cannot be used"):
        web.translate(registry, "one two .", "d-other-vocab", *DECODING)
    # the default choice of the dropdown is a run that works
    assert registry.choices("translation")[0][1] == "ok"
    text, *_ = web.translate(registry, "one two .", "ok", *DECODING)
    assert text


@pytest.mark.parametrize(
    "text, settings",
    [
        ("", DECODING),
        ("x" * 2000, DECODING),
        ("one .", ["nucleus", 5, 1, 1.0, 0, 1.0, 20]),
        ("one .", ["greedy", 5, 1, 1.0, 0, 1.0, 10**9]),
        ("one .", ["sample", 5, 1, -1.0, 0, 1.0, 20]),
    ],
)
def test_a_refused_input_logs_one_line(mixed_models, caplog, text, settings):
    registry = Registry(mixed_models)
    with caplog.at_level(logging.INFO), pytest.raises(gr.Error) as refused:
        web.translate(registry, text, "ok", *settings)
    assert refused.value.print_exception is False
    records = [r for r in caplog.records if r.name == "apps.web"]
    assert len(records) == 1 and records[0].levelno == logging.WARNING
    assert records[0].getMessage().startswith("refused: ") and not records[0].exc_info


@pytest.fixture(scope="module")
def fuzz_registry(plain_run) -> Registry:
    return Registry(plain_run.parent, max_input_chars=50)


@settings(FUZZ, max_examples=200)
@given(text=ANY_TEXT, method=st.sampled_from(["greedy", "beam", "sample"]))
def test_fuzz_translate_handler_answers_or_refuses(fuzz_registry, plain_translator, text, method):
    """Generated text: the handler refuses exactly the inputs that are invalid (blank, over
    the app's 50 characters, or nothing left after normalisation), with a one-line refusal;
    it translates every other one, greedy exactly as the library does."""
    try:
        plain_translator.check_input(text)
        valid = bool(text.strip()) and len(text) <= 50
    except InputError:
        valid = False
    try:
        result, rows, _, notes = web.translate(
            fuzz_registry, text, "tiny", method, 3, 2, 1.0, 0, 1.0, 12
        )
    except gr.Error as error:
        assert not valid, f"a valid input was refused: {error}"
        assert error.print_exception is False  # a refusal, logged in one line
        return
    assert valid, "an invalid input was translated"
    assert rows and rows[0][1] == result and method in notes
    if method == "greedy":
        (expected,) = plain_translator.translate(
            [text], plain_translator.decode_config(method="greedy", max_length=12)
        )
        assert result == expected.text


def test_every_run_picker_hands_an_unknown_value_to_its_handler(tmp_path):
    """Issue 24: a value outside a dropdown's choices made Gradio log ~20 lines of traceback
    before any handler ran; the run pickers pass it on, and the handlers refuse it in one
    line (test_a_refused_input_logs_one_line)."""
    demo = web.build_app(tmp_path)
    pickers = {"translate-model", "chat-model", "model-run", "study-name", "training-run"}
    found = {
        block.elem_id: block
        for block in demo.blocks.values()
        if isinstance(block, gr.Dropdown) and block.elem_id in pickers
    }
    assert set(found) == pickers
    assert all(block.allow_custom_value for block in found.values())
    registry = Registry(tmp_path)
    with pytest.raises(gr.Error, match="No trained model") as refused:
        web.model_info(registry, "no-such-run")
    assert refused.value.print_exception is False


@pytest.mark.slow
def test_the_copy_switch_follows_the_run_and_reaches_beam_search(registry, models_dir, tmp_path):
    """The Translate tab's copy switch starts at the run's decode.copy_names, turns it on or
    off for beam search (the notes say so), is ignored by the other methods and refuses a
    value that is not a boolean."""
    from apps.translate_tab import run_copies_names

    beam = ["beam", 3, 1, 1.0, 0, 1.0, 20]
    assert run_copies_names(registry, "tiny") is False
    text, _, _, notes = web.translate(registry, "one two .", "tiny", *beam, "", True)
    assert "copy names: on" in notes
    plain, _, _, notes = web.translate(registry, "one two .", "tiny", *beam, "", False)
    assert "copy names" not in notes and plain == text  # nothing in "one two ." to copy
    _, _, _, notes = web.translate(registry, "one two .", "tiny", *DECODING, "", True)
    assert "copy names" not in notes  # greedy search: the switch is hidden and ignored
    with pytest.raises(gr.Error, match="copy names is 'yes'"):
        web.translate(registry, "one two .", "tiny", *beam, "", "yes")

    # A run whose config has it on: the switch starts on, and beam search copies by default.
    models = tmp_path / "models"
    shutil.copytree(models_dir / "tiny", models / "copier")
    config = models / "copier" / "config.yaml"
    text = config.read_text(encoding="utf-8")
    text = text.replace("  copy_names: false", "  copy_names: true")
    config.write_text(text.replace("  method: greedy", "  method: beam"), encoding="utf-8")
    copier = Registry(models)
    assert run_copies_names(copier) is True and run_copies_names(copier, "copier") is True
    _, _, _, notes = web.translate(copier, "one two .", "copier", *beam)
    assert "copy names: on" in notes
    _, _, _, notes = web.translate(copier, "one two .", "copier", *beam, "", False)
    assert "copy names" not in notes
    assert run_copies_names(copier, "no-such-run") is False


@pytest.mark.slow
def test_translate_with_a_glossary(registry, tmp_path):
    """The glossary box's lines constrain beam search; bad lines, greedy search and terms
    the run cannot spell are refused in one line."""
    from apps.translate_tab import read_glossary_upload

    beam = ["beam", 3, 1, 1.0, 0, 1.0, 20]
    plain, *_ = web.translate(registry, "one two .", "tiny", *beam)
    text, _, _, notes = web.translate(registry, "one two .", "tiny", *beam, "two\tocho\n")
    assert "ocho" in text.lower().split() and "ocho" not in plain.lower()
    assert "glossary: ocho" in notes
    same, *_ = web.translate(registry, "one three .", "tiny", *beam, "two\tocho\n")
    assert same == web.translate(registry, "one three .", "tiny", *beam)[0]
    cases = [
        (beam, "two ocho\n", r"^Glossary: glossary:1: expected source term<TAB>target term"),
        (beam, "two\tocho\nthree\tdrei\n", r"^Glossary: glossary:2: the target term 'drei'"),
        (DECODING, "two\tocho\n", r"^Glossary: glossary: a glossary constrains beam search"),
    ]
    for controls, glossary, message in cases:
        with pytest.raises(gr.Error) as caught:
            web.translate(registry, "one two .", "tiny", *controls, glossary)
        # The message itself: str(gr.Error) is its repr when the text holds a quote.
        assert re.match(message, str(caught.value.message)), caught.value.message
        assert "\n" not in str(caught.value.message)
    upload = tmp_path / "terms.tsv"
    upload.write_bytes("\ufefftwo\tocho\n".encode())
    assert read_glossary_upload(str(upload)) == "two\tocho\n"
    upload.write_bytes(b"two\t\xff\n")
    with pytest.raises(gr.Error, match="not UTF-8"):
        read_glossary_upload(str(upload))


# -- what a newcomer met (issue 23) -------------------------------------------------------


def test_no_emoji_in_the_app():
    """Debian's Chromium has no emoji font: an emoji shows as an empty box."""
    emoji = re.compile("[\u231a-\u23ff\u2600-\u27bf\U0001f000-\U0001faff]")
    for path in sorted((REPO / "apps").glob("*.py")):
        found = emoji.findall(path.read_text(encoding="utf-8"))
        assert not found, f"{path.name}: {found}"


def test_one_epoch_plots_on_whole_epochs():
    """One epoch read 0.945 ... 1.050 on the x axis (Matplotlib's margins)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    for epochs in (1, 2, 14):
        rows = [
            {"epoch": e, "loss": 2.0, "val_loss": 2.1, "dev_bleu": 3.0}
            for e in range(1, epochs + 1)
        ]
        figure = plots.training_figure(rows)
        FigureCanvasAgg(figure).draw()
        for axes in figure.axes:
            low, high = axes.get_xlim()
            ticks = [t for t in axes.get_xticks() if low <= t <= high]
            assert ticks and all(float(t).is_integer() for t in ticks), (epochs, ticks)
            assert low == 0.5 and high == epochs + 0.5


def test_the_decoding_sliders_are_those_of_the_chosen_method():
    with gr.Blocks():
        method, *sliders = common.decoding_controls(common.TRANSLATE_START)
    assert [slider.visible for slider in sliders] == [False] * 5 + [True]
    labels = [slider.label for slider in sliders]
    shown = {
        m: [lab for lab, u in zip(labels, common.sliders_shown(m), strict=True) if u["visible"]]
        for m in ("greedy", "beam", "sample")
    }
    assert shown["greedy"] == ["max output length (tokens)"]
    assert shown["beam"] == ["beam size", "n-best (≤ beam size)", "max output length (tokens)"]
    assert shown["sample"] == [
        "temperature",
        "top-k (0 = off)",
        "top-p",
        "max output length (tokens)",
    ]


def test_parameter_counts_have_thousands_separators():
    rows = [["encoder rnn", 1234567, 1646080, 411520], ["total", 999, 1000, 12]]
    assert model_tab.with_separators(rows) == [
        ["encoder rnn", "1,234,567", "1,646,080", "411,520"],
        ["total", "999", "1,000", "12"],
    ]


def test_the_study_tab_says_what_a_study_is(tmp_path):
    with gr.Blocks() as demo:
        study_tab.build_study_tab(tmp_path)
    texts = json.dumps(demo.get_config_file())
    assert "A *study* trains several small models" in texts


@pytest.mark.slow
def test_a_page_load_logs_no_model_load(tiny_models, caplog):
    """Each page load re-selects the models (and so asks for them to be preloaded); only
    a real load is logged, not "loaded, ready in 0.0 s" per visit."""
    registry = Registry(tiny_models)
    run = registry.resolve("tiny", "translation")
    with caplog.at_level(logging.INFO, logger="apps.registry"):
        registry.preload([run]).join()
        registry.preload([run]).join()
        registry.preload([run]).join()
    # Only this run's lines: another app built earlier in the same test process may still be
    # preloading its own models in the background (seen: "tiny-chat: loaded").
    loaded = [
        r for r in caplog.records if r.getMessage().startswith(f"{run.name}: loaded, ready in")
    ]
    assert len(loaded) == 1


# -- Ctrl-C (issue 23, bug 6) ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("when", ["serving", "starting"])
def test_ctrl_c_ends_the_app_with_status_130(tmp_path, when):
    """Ctrl-C once the app serves (its address printed), or while it is still starting
    (its server answers, but Gradio's launch has not returned): status 130 either way."""
    import threading

    port = free_port()
    app = subprocess.Popen(
        [sys.executable, "-m", "apps.web", "--models", str(tmp_path), "--port", str(port)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(app.stdout), daemon=True)
    reader.start()
    address = f"Running on local URL:  http://127.0.0.1:{port}"

    def ready() -> bool:
        if when == "serving":
            return any(address in line for line in lines)
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as answer:
                return answer.status == 200
        except OSError:
            return False

    try:
        deadline = time.monotonic() + 180
        while not ready():
            assert app.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "the app did not come up"
            time.sleep(0.2)
        app.send_signal(signal.SIGINT)
        app.wait(timeout=120)
        reader.join(timeout=30)
    finally:
        if app.poll() is None:
            app.kill()
            app.wait()
    assert app.returncode == 130, "".join(lines)


# -- the app tells the truth about quality ------------------------------------------------


def test_the_quality_line_names_a_quick_model_and_its_score():
    from apps.registry import quality_line

    two = [{"epoch": 1}, {"epoch": 2}]
    bleu = {"best": {"epoch": 2, "dev_bleu": 39.83}, "epochs": two}
    assert quality_line(load_config("quickstart"), bleu) == (
        "quickstart model: dev BLEU 39.8 after 2 epochs — train es-en-gru for real quality"
    )
    chat = {"best": {"epoch": 4, "val_perplexity": 51.2}, "perplexity": 48.07, "epochs": two * 2}
    assert quality_line(load_config("quickstart-chat"), chat) == (
        "quickstart model: dev perplexity 48.1 after 4 epochs — train chat for real quality"
    )
    six = {"best": {"epoch": 4, "dev_bleu": 47.79}, "epochs": [{"epoch": e} for e in range(6)]}
    assert (
        quality_line(load_config("es-en-gru"), six) == "quality: dev BLEU 47.8 (best epoch 4 of 6)"
    )
    assert quality_line(load_config("en-es-gru"), {**six, "epochs": two[:1]}) == (
        "quick demo model: dev BLEU 47.8 after 1 epoch — train it longer for real quality"
    )
    long_chat = {**chat, "epochs": [{}] * 14}
    assert (
        quality_line(load_config("chat"), long_chat)
        == "quality: dev perplexity 48.1 after 14 epochs"
    )
    assert "no dev scores" in quality_line(load_config("es-en-gru"), {})


@pytest.mark.slow
def test_each_tab_shows_the_quality_of_the_chosen_model(tiny_models):
    """Translate, Chat and Model tabs: the line from metrics.json (``tiny`` was trained
    from the quickstart preset, so it is called a quickstart model)."""
    registry = Registry(tiny_models)
    metrics = registry.metrics(registry.resolve("tiny", "translation"))
    bleu = metrics["best"]["dev_bleu"]
    line = registry.quality("tiny", "translation")
    assert line.startswith(f"quickstart model: dev BLEU {bleu:.1f} after 5 epochs")
    assert registry.quality(None, "translation") == line  # the run a page opens on
    assert "dev perplexity" in registry.quality("tiny-chat", "dialogue")
    assert registry.quality("no-such-run", "dialogue") == ""
    assert line in model_tab.model_info(registry, "tiny")[0]
    demo = web.build_app(tiny_models)
    shown = {
        block.elem_id: block.value
        for block in demo.blocks.values()
        if getattr(block, "elem_id", None) in ("translate-quality", "chat-quality")
    }
    assert shown["translate-quality"] == line
    assert shown["chat-quality"] == registry.quality("tiny-chat", "dialogue")


@pytest.mark.slow
def test_the_chat_says_why_mmi_is_unavailable_and_how_to_train_a_backward_model(tiny_models):
    from apps import chat_tab

    registry = Registry(tiny_models)
    switch, *sliders = chat_tab.mmi_controls(registry, "tiny-chat")
    assert switch["visible"] and not switch["interactive"] and switch["value"] is False
    assert "unavailable" in switch["label"]
    command = f"python -m seq2seq.train --preset chat-backward --output {tiny_models.name}/"
    assert command + "tiny-chat-backward" in switch["info"]
    assert not any(slider["visible"] for slider in sliders)


def test_heat_map_labels_are_readable_pieces():
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    pieces = ["▁¿", "D", "ónde", "▁está", "?", "▁", "▁I", "'", "m"]
    labels = plots.piece_labels(pieces)
    assert labels == ["¿", "-D", "-ónde", "está", "?", "␣", "I", "'", "-m"]
    assert plots.piece_labels(["hola", "."]) == ["hola", "."]  # word tokens as they are
    figure = plots.attention_figure(plots.np.eye(9, 5), pieces[:5], pieces)
    FigureCanvasAgg(figure).draw()
    ticks = [t.get_text() for t in figure.axes[0].get_xticklabels()]
    assert ticks == labels[:5] and not any("▁" in t or "·" in t for t in ticks)
    assert "yellow" in plots.ATTENTION_LEGEND and "purple" in plots.ATTENTION_LEGEND
