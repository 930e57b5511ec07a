"""Decoding flags: one meaning in every command, conflicts refused, one validation."""

from __future__ import annotations

import pytest

from seq2seq import chat, evaluate, translate
from seq2seq.config import ConfigError, load_config
from seq2seq.search.options import control_overrides, overrides_from_args, resolve_decode

RUN = ["--model", "RUN"]
PARSERS = {
    "translate": translate.parse_args,
    "evaluate": evaluate.parse_args,
    "chat": chat.parse_args,
}


def overrides(command: str, *flags: str) -> dict:
    return overrides_from_args(PARSERS[command]([*RUN, *flags]))


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--temperature", "0.7"], {"method": "sample", "temperature": 0.7}),
        (["--top-p", "0.9", "--seed", "3"], {"method": "sample", "top_p": 0.9, "seed": 3}),
        (["--beam", "4"], {"method": "beam", "beam_size": 4}),
        (["--length-penalty", "0.6"], {"method": "beam", "length_penalty": 0.6}),
        (["--method", "greedy", "--max-length", "9"], {"method": "greedy", "max_length": 9}),
        (["--min-length", "2"], {"min_length": 2}),  # applies to every search: run's method
        (["--replace-unk"], {"replace_unk": True}),
    ],
)
@pytest.mark.parametrize("command", PARSERS)
def test_each_flag_means_the_same_in_every_command(command, flags, expected):
    assert overrides(command, *flags) == expected


def test_n_best_chooses_beam_unless_sampling():
    assert overrides("translate", "--n-best", "3") == {"method": "beam", "n_best": 3}
    assert overrides("translate", "--n-best", "1") == {"n_best": 1}
    assert overrides("translate", "--n-best", "3", "--top-k", "5") == {
        "method": "sample",
        "n_best": 3,
        "top_k": 5,
    }


@pytest.mark.parametrize("command", ["evaluate", "chat"])
def test_n_best_is_not_a_flag_where_one_output_is_used(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        PARSERS[command]([*RUN, "--n-best", "3"])
    assert exit_info.value.code == 2
    assert "unrecognized arguments: --n-best" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (
            ["--method", "greedy", "--temperature", "0.5"],
            "--temperature applies to sampling, not to --method greedy",
        ),
        (["--method", "beam", "--top-k", "5"], "--top-k applies to sampling, not to --method beam"),
        (
            ["--method", "sample", "--beam", "3"],
            "--beam applies to beam search, not to --method sample",
        ),
        (["--beam", "3", "--temperature", "0.5"], "these flags ask for different searches"),
    ],
)
@pytest.mark.parametrize("command", PARSERS)
def test_flags_for_another_search_are_errors(command, flags, message):
    with pytest.raises(ConfigError, match=message):
        overrides(command, *flags)


@pytest.fixture(scope="module")
def greedy_run():
    return load_config("quickstart", overrides=["decode.method=greedy", "decode.beam_size=5"])


def test_a_sampling_setting_on_a_greedy_run_is_an_error(greedy_run):
    with pytest.raises(ConfigError, match=r"decode.seed \(--seed applies to sampling\)"):
        resolve_decode(greedy_run, {"seed": 3})
    assert resolve_decode(greedy_run, {"seed": 3, "method": "sample"}).seed == 3


def test_resolve_fits_the_beam_to_n_best_and_resets_it_for_greedy(greedy_run):
    assert resolve_decode(greedy_run, {"method": "beam", "n_best": 8}).beam_size == 8
    assert resolve_decode(greedy_run, {"method": "beam", "n_best": 3}).beam_size == 5
    beam_run = greedy_run.replace(
        decode=resolve_decode(greedy_run, {"method": "beam", "n_best": 3})
    )
    assert resolve_decode(beam_run, {"method": "greedy"}).n_best == 1
    with pytest.raises(ConfigError, match="greedy search gives one hypothesis"):
        resolve_decode(greedy_run, {"n_best": 2})
    with pytest.raises(ConfigError, match="decode.n_best must not exceed decode.beam_size"):
        resolve_decode(greedy_run, {"method": "beam", "beam_size": 2, "n_best": 3})


def test_app_controls_pass_only_the_chosen_search():
    assert control_overrides("greedy", 5, 3, 0.7, 10, 0.9, 20) == {
        "method": "greedy",
        "n_best": 1,
        "max_length": 20,
    }
    assert control_overrides("sample", 5, 3, 0.7, 10.0, 0.9, 20) == {
        "method": "sample",
        "n_best": 1,
        "temperature": 0.7,
        "top_k": 10,
        "top_p": 0.9,
        "max_length": 20,
    }
