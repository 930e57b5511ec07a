"""Configuration: presets load, overrides apply, and every bad value names its field."""

from __future__ import annotations

import dataclasses
import re
import typing
from importlib import resources

import pytest
import yaml

from seq2seq.config import (
    RANGES,
    SECTIONS,
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


# -- ranges and empty files --------------------------------------------------------------


def numeric_fields() -> list[str]:
    keys = []
    for section, cls in SECTIONS.items():
        hints = typing.get_type_hints(cls)
        for field in dataclasses.fields(cls):
            types = typing.get_args(hints[field.name]) or (hints[field.name],)
            if any(t in (int, float) for t in types):
                keys.append(f"{section}.{field.name}")
    return keys


def test_every_numeric_field_has_a_range():
    assert sorted(numeric_fields()) == sorted(RANGES)


def test_reference_config_documents_each_range():
    """reference.yaml shows ``[low..high]`` for each numeric field, matching RANGES."""
    text = (resources.files("seq2seq") / "presets" / "reference.yaml").read_text()
    section = None
    documented = {}
    for line in text.splitlines():
        if re.match(r"^\w+:$", line):
            section = line[:-1]
        found = re.match(r"^  (\w+): .*# [\[(]([-\d.]*)\.\.", line)
        if found and section:
            documented[f"{section}.{found[1]}"] = found[2]
    for key, allowed in RANGES.items():
        assert key in documented, f"reference.yaml gives no range for {key}"
        if documented[key]:
            assert float(documented[key]) == allowed.low, key


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.steps_per_epoch=-2", r"train\.steps_per_epoch is -2; allowed: from 1 to"),
        ("train.steps_per_epoch=0", r"train\.steps_per_epoch is 0"),
        ("train.seed=-1", r"train\.seed is -1; allowed: from 0 to 4,294,967,295"),
        ("train.seed=4294967296", r"train\.seed is 4294967296"),
        ("decode.min_length=-1", r"decode\.min_length is -1"),
        ("decode.max_length=1000000000", r"decode\.max_length is 1000000000; .*to 1,000"),
        ("decode.beam_size=100000", r"decode\.beam_size is 100000"),
        ("decode.seed=-5", r"decode\.seed is -5"),
        ("train.warmup_steps=0", r"train\.warmup_steps is 0"),
        ("train.dev_bleu_sentences=-1", r"train\.dev_bleu_sentences is -1"),
        ("train.dev_bleu_sentences=0", r"dev_bleu_sentences must be >= 1 when"),
        ("train.shuffle_buffer=-3", r"train\.shuffle_buffer is -3"),
        ("data.bucket_width=0", r"data\.bucket_width is 0"),
        ("data.split_seed=-1", r"data\.split_seed is -1"),
        ("data.max_source_length=100000", r"data\.max_source_length is 100000"),
        ("train.learning_rate=.inf", r"train\.learning_rate is inf"),
        ("decode.temperature=.nan", r"decode\.temperature is nan"),
        ("model.encoder_layers=0", r"model\.encoder_layers is 0"),
        ("data.context_turns=-1", r"data\.context_turns is -1"),
    ],
)
def test_out_of_range_values_name_the_field(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config("quickstart", overrides=[override])


def test_null_is_accepted_only_where_documented():
    assert load_config("quickstart", overrides=["train.steps_per_epoch=null"])
    with pytest.raises(ConfigError, match=r"train\.seed must not be empty"):
        load_config("quickstart", overrides=["train.seed=null"])


def test_boundaries_are_accepted():
    config = load_config(
        "quickstart",
        overrides=["train.seed=0", "decode.min_length=0", "train.steps_per_epoch=1"],
    )
    assert config.train.seed == 0 and config.train.steps_per_epoch == 1


@pytest.mark.parametrize("content", ["", "\n", "# only a comment\n"])
def test_empty_config_file_is_refused_with_its_name(tmp_path, content):
    path = tmp_path / "my.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"my\.yaml: the file is empty"):
        load_config(path=str(path))
    run_config = tmp_path / "config.yaml"
    run_config.write_text(content, encoding="utf-8")
    with pytest.raises(ConfigError, match=r"config\.yaml: the file is empty"):
        load_run_config(run_config)


def test_config_of_random_bytes_is_refused_with_its_name(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_bytes(bytes(range(128, 256)) * 4)
    with pytest.raises(ConfigError, match=r"config\.yaml: not UTF-8"):
        load_run_config(path)


def test_an_explicit_empty_mapping_still_means_defaults(tmp_path):
    path = tmp_path / "defaults.yaml"
    path.write_text(yaml.safe_dump({}), encoding="utf-8")
    assert load_config(path=str(path)).train.epochs == 10
