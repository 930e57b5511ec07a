"""Private Keras/TensorFlow APIs: reached only through ``seq2seq.compat``, each found in the
installed versions, and a moved one named with the versions in a clear error."""

from __future__ import annotations

import re

import pytest
from conftest import REPO

from seq2seq import compat

PRIVATE = re.compile(
    r"^\s*(?:from|import)\s+(keras\.src|tensorflow\.python|tensorflow\.compiler|tensorflow\.core)\b"
    r"|could_possibly_record|_coordination_service_config",
    re.MULTILINE,
)


def test_private_apis_are_reached_only_through_compat():
    offenders = [
        path.relative_to(REPO).as_posix()
        for folder in ("seq2seq", "apps", "scripts")
        for path in sorted((REPO / folder).rglob("*.py"))
        if path.name != "compat.py" and PRIVATE.search(path.read_text(encoding="utf-8"))
    ]
    assert offenders == []


def test_the_installed_versions_have_every_private_api():
    assert compat.version_note() == ""  # the tested versions are installed here
    assert callable(compat.keras_rnn())
    assert callable(compat.keras_cudnn_ok())
    compat.private(
        "tensorflow.python.framework.convert_to_constants", "convert_variables_to_constants_v2", "x"
    )
    compat.private(
        "tensorflow.compiler.xla.tsl.protobuf.coordination_config_pb2", "CoordinatedJob", "x"
    )
    context = compat.private("tensorflow.python.eager.context", "context", "x")()
    assert hasattr(context, "configure_coordination_service")
    assert hasattr(context, "_coordination_service_config")


def test_a_moved_api_names_itself_the_use_and_the_versions(monkeypatch):
    with pytest.raises(compat.CompatError) as error:
        compat.private("keras.src.backend", "no_such_loop", "the fast RNN path")
    message = str(error.value)
    assert "keras.src.backend.no_such_loop, a private API, for the fast RNN path" in message
    assert "tensorflow 2.21, keras 3.15" in message and "seq2seq/compat.py" in message
    assert isinstance(error.value.__cause__, AttributeError)

    with pytest.raises(compat.CompatError, match=r"keras\.src\.gone\.rnn"):
        compat.private("keras.src.gone", "rnn", "the fast RNN path")

    monkeypatch.setattr(compat, "installed_version", lambda package: "9.9.0")
    assert compat.version_note() == (
        "tensorflow 9.9.0 is installed, 2.21 was tested; keras 9.9.0 is installed, 3.15 was tested"
    )
    with pytest.raises(compat.CompatError, match="keras 9.9.0 is installed, 3.15 was tested"):
        compat.private("keras.src.backend", "no_such_loop", "the fast RNN path")
