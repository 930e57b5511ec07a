"""Decoding options: command-line flags and app controls -> one validated ``DecodeConfig``.

Every command that decodes (translate, evaluate, chat) and the web app go through this
module, so a flag means the same thing everywhere:

- ``--method`` chooses the search. Without it, a flag that belongs to one search chooses
  it: ``--beam`` and ``--length-penalty`` mean beam search; ``--temperature``, ``--top-k``
  and ``--top-p`` mean sampling; ``--n-best N`` (N > 1) means beam search unless a
  sampling flag is given too. With neither, the run's ``decode.method`` is used. The MMI
  flags (``--mmi-lambda``, ``--mmi-gamma``, ``--mmi-candidates``) rerank the n-best list
  of beam search or sampling and choose neither.
- A setting that belongs to another search than the one chosen is an error that says so
  (``--method greedy --temperature 0.7``, or ``--seed`` for a run that decodes greedily),
  never silently ignored.
- ``resolve_decode`` is the one place where decode settings are validated: the config's
  range checks plus the cross-field rules of searching.
"""

from __future__ import annotations

import argparse
import dataclasses
import textwrap
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from seq2seq.config import (
    CHOICES,
    Config,
    ConfigError,
    DecodeConfig,
    build_section,
    validate,
)

METHODS: tuple[str, ...] = CHOICES["decode.method"]
MMI_METHODS = ("beam", "sample")  # the searches that give an n-best list to rerank


@dataclass(frozen=True)
class Option:
    """One decoding flag: the ``DecodeConfig`` field it sets and the searches it applies to.

    ``implies`` is the search the flag selects when ``--method`` is not given.
    """

    flag: str
    field: str
    type: type
    metavar: str
    help: str
    methods: tuple[str, ...] = METHODS
    implies: str | None = None


OPTIONS: tuple[Option, ...] = (
    Option("--beam", "beam_size", int, "N", "beam search with N beams", ("beam",), "beam"),
    Option(
        "--length-penalty",
        "length_penalty",
        float,
        "ALPHA",
        "beam search's GNMT length penalty (0: raw log-probability)",
        ("beam",),
        "beam",
    ),
    Option(
        "--temperature", "temperature", float, "T", "sample at temperature T", ("sample",), "sample"
    ),
    Option(
        "--top-k", "top_k", int, "K", "sample from the K most likely tokens", ("sample",), "sample"
    ),
    Option("--top-p", "top_p", float, "P", "nucleus sampling with mass P", ("sample",), "sample"),
    Option(
        "--seed", "seed", int, "N", "seed of the sampler, for reproducible samples", ("sample",)
    ),
    Option(
        "--n-best",
        "n_best",
        int,
        "N",
        "N hypotheses per input with scores (beam search unless sampling)",
        ("beam", "sample"),
        "beam",
    ),
    Option("--max-length", "max_length", int, "N", "longest output, in tokens"),
    Option("--min-length", "min_length", int, "N", "no END before N tokens"),
    Option(
        "--repetition-penalty",
        "repetition_penalty",
        float,
        "P",
        "divide the logits of tokens already produced by P (1: off)",
    ),
    Option(
        "--no-repeat-ngram-size",
        "no_repeat_ngram_size",
        int,
        "N",
        "never repeat an N-gram of the output (0: off)",
    ),
    Option(
        "--mmi-lambda",
        "mmi_lambda",
        float,
        "L",
        "rerank an n-best list (beams or samples) by mutual information: log p(reply|msg) "
        "+ L*log p(msg|reply) + G*reply tokens; needs the backward run RUN-backward",
        MMI_METHODS,
    ),
    Option("--mmi-gamma", "mmi_gamma", float, "G", "MMI: score per reply token", MMI_METHODS),
    Option(
        "--mmi-candidates",
        "mmi_candidates",
        int,
        "N",
        "MMI: how many beams or samples are reranked",
        MMI_METHODS,
    ),
)
MMI_FIELDS = ("mmi_lambda", "mmi_gamma", "mmi_candidates")
BY_FIELD: Mapping[str, Option] = {option.field: option for option in OPTIONS}
SEARCH_NAMES = {"greedy": "greedy search", "beam": "beam search", "sample": "sampling"}
DECODE_HELP = (
    "A tag such as [beam] or [sample] names the search a flag belongs to, and giving the "
    "flag selects that search: --beam 5 means beam search with 5 beams, --temperature 0.7 "
    "means sampling. Flags of two different searches together are an error, as is a flag "
    "of another search than --method. Untagged flags apply to every search."
)


def add_decode_arguments(
    parser: argparse.ArgumentParser, n_best: bool = True, mmi: bool = False
) -> None:
    """The decoding flags (default: the run's ``decode`` settings). ``n_best=False`` leaves
    out ``--n-best`` for commands that use one output per input; ``mmi=True`` adds the
    MMI reranking flags and ``--backward-model`` (dialogue commands)."""
    # a parser that keeps its texts as written (translate's examples) gets it wrapped here
    raw = parser.formatter_class is argparse.RawDescriptionHelpFormatter
    group = parser.add_argument_group(
        "decoding (default: the run's decode settings)",
        textwrap.fill(DECODE_HELP, 80) if raw else DECODE_HELP,
    )
    group.add_argument(
        "--method", choices=METHODS, help="the search (else chosen by the flags below)"
    )
    for option in OPTIONS:
        if (option.field == "n_best" and not n_best) or (option.field in MMI_FIELDS and not mmi):
            continue
        applies = "" if option.methods == METHODS else f" [{', '.join(option.methods)}]"
        group.add_argument(
            option.flag,
            dest=option.field,
            type=option.type,
            metavar=option.metavar,
            help=option.help + applies,
        )
    if mmi:
        group.add_argument(
            "--backward-model",
            metavar="RUN",
            help="MMI: the backward (reply -> message) run (default: RUN-backward beside "
            "--model, when it exists)",
        )
    group.add_argument(
        "--replace-unk",
        action="store_true",
        help="copy the most attended source piece for each <unk> in the output",
    )
    group.add_argument(
        "--copy-names",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="put every number, and every capitalised word the training sources never hold, "
        "in the output by constrained beam search [beam] (default: the run's "
        "decode.copy_names)",
    )


def _implies(option: Option, value: Any) -> str | None:
    if option.field == "n_best" and value <= 1:
        return None  # one hypothesis is what every search gives
    return option.implies


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """``DecodeConfig`` overrides from the flags that were given.

    Raises ``ConfigError`` when the flags ask for different searches (``--beam 5
    --temperature 0.7``) or for another search than ``--method``.
    """
    given = {
        option: getattr(args, option.field)
        for option in OPTIONS
        if getattr(args, option.field, None) is not None
    }
    overrides: dict[str, Any] = {option.field: value for option, value in given.items()}
    if getattr(args, "replace_unk", False):
        overrides["replace_unk"] = True
    if getattr(args, "copy_names", None) is not None:
        overrides["copy_names"] = args.copy_names
    allowed = set(METHODS)
    for option in given:
        allowed &= set(option.methods)
    method = getattr(args, "method", None)
    if method is not None:
        misfits = [option for option in given if method not in option.methods]
        if misfits:
            reasons = "; ".join(_applies(option) for option in misfits)
            raise ConfigError(f"{reasons}, not to --method {method}")
    else:
        implied = {_implies(option, value) for option, value in given.items()} - {None}
        chosen = implied & allowed
        if implied and not chosen:
            reasons = "; ".join(_applies(option) for option in given if option.implies)
            raise ConfigError(f"these flags ask for different searches ({reasons})")
        method = chosen.pop() if len(chosen) == 1 else None
    if method is not None:
        overrides["method"] = method
    return overrides


def _applies(option: Option) -> str:
    searches = " and ".join(SEARCH_NAMES[method] for method in option.methods)
    return f"{option.flag} applies to {searches}"


def resolve_decode(config: Config, overrides: Mapping[str, Any]) -> DecodeConfig:
    """The run's decode settings with ``overrides`` (``DecodeConfig`` fields), validated.

    When the overrides switch to greedy search the run's n-best falls back to 1; when
    they ask beam search for more hypotheses than the run's beam size (``n_best`` without
    ``beam_size``), the beam grows to fit. A field that belongs to another search than
    the resolved one raises ``ConfigError``, as does any value out of range.
    """
    values = {**dataclasses.asdict(config.decode), **overrides}
    method = values.get("method")
    if "method" in overrides and method == "greedy" and "n_best" not in overrides:
        values["n_best"] = 1
    if "method" in overrides and method != "beam" and "copy_names" not in overrides:
        values["copy_names"] = False  # the run's default applies to its beam search only
    if method == "beam" and "n_best" in overrides and "beam_size" not in overrides:
        values["beam_size"] = max(values["beam_size"], overrides["n_best"])
    decode = build_section("decode", DecodeConfig, values, "decode options")
    validate(config.replace(decode=decode))
    for field in overrides:
        option = BY_FIELD.get(field)
        if option is not None and field != "n_best" and decode.method not in option.methods:
            raise ConfigError(
                f"decode.{field} ({_applies(option)}) does not apply to "
                f"{SEARCH_NAMES[decode.method]}, the method in use: choose the method "
                f"(--method {' or '.join(option.methods)}) or leave it out"
            )
    if decode.mmi_lambda is None:
        stray = [field for field in ("mmi_gamma", "mmi_candidates") if field in overrides]
        if stray:
            raise ConfigError(
                f"decode.{stray[0]} is an MMI setting but MMI reranking is off: give "
                "--mmi-lambda too (0 reranks by length alone)"
            )
    if decode.method == "greedy" and decode.n_best > 1:
        raise ConfigError(
            f"decode.n_best is {decode.n_best} but greedy search gives one hypothesis; "
            "use method beam or sample for n-best lists"
        )
    return decode


def control_overrides(
    method: Any,
    beam_size: Any,
    n_best: Any,
    temperature: Any,
    top_k: Any,
    top_p: Any,
    max_length: Any,
    mmi: Any = False,
    mmi_lambda: Any = None,
    mmi_gamma: Any = None,
    mmi_candidates: Any = None,
) -> dict[str, Any]:
    """The app's decoding controls as overrides: the chosen search's own controls only.

    The app shows the chosen search's controls only (``apps.common.SLIDERS_OF``); the
    n-best control is beam search's (greedy search and the app's sampling give one output).
    With ``mmi`` (the chat tab's MMI switch, offered when a backward model exists) the
    three MMI controls apply too. ``ConfigError`` names a control whose value is not a
    number.
    """
    if method not in METHODS:
        raise ConfigError(f"decoding method is {method!r}; allowed: {', '.join(METHODS)}")
    controls = {
        "greedy": {},
        "beam": {"beam_size": (int, beam_size), "n_best": (int, n_best)},
        "sample": {
            "temperature": (float, temperature),
            "top_k": (int, top_k),
            "top_p": (float, top_p),
        },
    }[method]
    if mmi:
        controls = {
            **controls,
            "mmi_lambda": (float, mmi_lambda),
            "mmi_gamma": (float, mmi_gamma),
            "mmi_candidates": (int, mmi_candidates),
        }
    overrides: dict[str, Any] = {"method": method, "n_best": 1}
    for field, (kind, value) in {**controls, "max_length": (int, max_length)}.items():
        try:
            overrides[field] = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(
                f"{field.replace('_', ' ')} must be a number, got {value!r}"
            ) from None
    return overrides
