"""Configuration: presets load, overrides apply, and every bad value names its field."""

from __future__ import annotations

import pytest

from seq2seq.config import (
    ConfigError,
    load_config,
    load_run_config,
    preset_names,
    save_config,
)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_loads_and_validates(name):
    config = load_config(preset=name)
    assert config.name == name


def test_reference_config_documents_every_field(tmp_path):
    from importlib import resources

    import yaml

    from seq2seq.config import SECTIONS

    path = resources.files("seq2seq") / "presets" / "reference.yaml"
    reference = yaml.safe_load(path.read_text())
    for section, cls in SECTIONS.items():
        documented = set(reference[section])
        fields = set(cls.__dataclass_fields__)
        assert documented == fields, f"reference.yaml {section}: {documented ^ fields}"
    load_config(path=str(path))


def test_overrides_are_typed_and_applied():
    config = load_config("quickstart", overrides=["train.epochs=7", "model.cell=lstm"])
    assert config.train.epochs == 7
    assert config.model.cell == "lstm"


def test_unknown_field_names_the_field_and_the_allowed_ones():
    with pytest.raises(ConfigError, match=r"model\.cels.*fields of model: .*cell"):
        load_config("quickstart", overrides=["model.cels=gru"])


def test_bad_choice_names_the_allowed_values():
    with pytest.raises(ConfigError, match=r"model\.attention is 'bahdanu'; allowed: bahdanau"):
        load_config("quickstart", overrides=["model.attention=bahdanu"])


def test_wrong_type_is_reported():
    with pytest.raises(ConfigError, match=r"train\.epochs must be int"):
        load_config("quickstart", overrides=["train.epochs=many"])


def test_range_checks():
    with pytest.raises(ConfigError, match=r"model\.dropout"):
        load_config("quickstart", overrides=["model.dropout=1.5"])
    with pytest.raises(ConfigError, match=r"decode\.n_best must not exceed"):
        load_config("quickstart", overrides=["decode.n_best=9", "decode.beam_size=2"])


def test_malformed_override_and_unknown_preset():
    with pytest.raises(ConfigError, match="section.field=value"):
        load_config("quickstart", overrides=["epochs"])
    with pytest.raises(ConfigError, match="unknown preset 'nope'; available presets:"):
        load_config("nope")


def test_save_and_reload_round_trips(tmp_path):
    config = load_config("es-en-gru", overrides=["train.epochs=3"])
    save_config(config, tmp_path / "config.yaml")
    assert load_run_config(tmp_path / "config.yaml") == config


def test_config_from_another_version_is_refused(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("version: 99\nmodel: {cell: gru}\n")
    with pytest.raises(ConfigError, match="version 99 is not supported"):
        load_run_config(path)


def test_bad_yaml_names_the_file(tmp_path):
    path = tmp_path / "broken.yaml"
    path.write_text("model: [unclosed\n")
    with pytest.raises(ConfigError, match="broken.yaml: not valid YAML"):
        load_config(path=str(path))
