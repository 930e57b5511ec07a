"""Issue 14, the app: only runs that open are offered; broken ones are listed apart with
the reason and no server path; a refused input logs one line, not a traceback."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"

import gradio as gr  # noqa: E402
import pytest  # noqa: E402

from apps import web  # noqa: E402
from apps.registry import Registry  # noqa: E402

DECODING = ["greedy", 5, 1, 1.0, 0, 1.0, 20]


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
