"""One dialogue run under every decoding setting: a Markdown table of the dialogue metrics
and sample exchanges (the chat table of docs/results.md).

    python scripts/chat_table.py --model runs/chat [--max-sentences 1000] \
        [--output docs/chat_table.md]

Each setting is one ``seq2seq.inference.evaluation.evaluate_run`` on the same test pairs with one
loaded ``Translator`` (so the settings share the model and its compiled searches):
greedy, beam search, sampling (the run's temperature / top-p / n-gram settings) and MMI
reranking of beam search and of sampling, with the backward run ``<run>-backward`` (or
``--backward-model``; the MMI rows are left out when there is none). The table has
perplexity, BLEU-1/2 (per sentence, defined in ``seq2seq.inference.metrics``: as PLATO computed them
with NLTK 3.4, and with the NLTK installed here), distinct-1/2, the
average reply length and the degenerate share, and the Seq2Seq row published with PLATO
(Bao et al., 2020) for comparison. Then ``--samples`` exchanges, the same test inputs for
every setting, drawn with ``--seed`` (not picked by hand); or, with ``--inputs FILE``, the
replies of every setting to the messages of that file (one a line, same seed): for text that
may be published where the corpus may not be quoted (``data/sample/chat_messages.txt`` holds
ten messages written for the project). Each setting's report and hypotheses land in
``<output-dir>/<setting>/``.
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path
from typing import Any

from seq2seq.config import DecodeConfig

DEFAULT = DecodeConfig()

# The Seq2Seq baseline row on DailyDialog published with PLATO (Bao et al., 2020, table 2)
PLATO_SEQ2SEQ = {"bleu_1": 0.336, "bleu_2": 0.268, "distinct_1": 0.030, "distinct_2": 0.128}


def settings(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The decoding settings, by row name (``DecodeConfig`` overrides)."""
    mmi = {
        "mmi_lambda": args.mmi_lambda,
        "mmi_gamma": args.mmi_gamma,
        "mmi_candidates": args.mmi_candidates,
    }
    return {
        "greedy": {"method": "greedy"},
        f"beam {args.beam}": {"method": "beam", "beam_size": args.beam},
        "sample": {"method": "sample", "seed": args.seed},
        f"MMI beam ({args.mmi_candidates})": {"method": "beam", **mmi},
        f"MMI sample ({args.mmi_candidates})": {"method": "sample", "seed": args.seed, **mmi},
    }


def slug(name: str) -> str:
    return "-".join("".join(c if c.isalnum() else " " for c in name.lower()).split())


def table(rows: dict[str, dict[str, Any]]) -> str:
    head = (
        "| decoding | BLEU-1 | BLEU-2 | BLEU-1, NLTK 3.6+ | BLEU-2, NLTK 3.6+ | distinct-1 "
        "| distinct-2 | avg words | degenerate | perplexity |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for name, m in rows.items():
        lines.append(
            f"| {name} | {m['bleu_1']:.3f} | {m['bleu_2']:.3f} | {m['bleu_1_nltk']:.3f} "
            f"| {m['bleu_2_nltk']:.3f} | {m['distinct_1']:.3f} | {m['distinct_2']:.3f} "
            f"| {m['avg_reply_words']:.1f} | {m['degenerate_share']:.3f} "
            f"| {m['perplexity']:.1f} |"
        )
    p = PLATO_SEQ2SEQ
    lines.append(
        f"| Seq2Seq, published with PLATO (Bao et al. 2020) | {p['bleu_1']:.3f} "
        f"| {p['bleu_2']:.3f} | | | {p['distinct_1']:.3f} | {p['distinct_2']:.3f} | | | |"
    )
    return "\n".join(lines)


def samples(
    sources: list[str], references: list[str], replies: dict[str, list[str]], count: int, seed: int
) -> str:
    chosen = sorted(random.Random(seed).sample(range(len(sources)), min(count, len(sources))))
    blocks = []
    for number, i in enumerate(chosen, start=1):
        lines = [f"**{number}.** input: {sources[i]}  ", f"reference: {references[i]}  "]
        lines += [f"*{name}*: {texts[i]}  " for name, texts in replies.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def replies_to(translator, messages: list[str], settings: dict[str, dict[str, Any]]) -> str:
    """Every setting's reply to each message (no reference: the messages are not from the
    corpus), the first turn of a conversation, as the chat would start it."""
    replies = {}
    for name, overrides in settings.items():
        decode = translator.decode_config(**overrides)
        replies[name] = [t.text for t in translator.translate(messages, decode)]
    blocks = []
    for number, message in enumerate(messages, start=1):
        lines = [f"**{number}.** input: {message}  "]
        lines += [f"*{name}*: {texts[number - 1]}  " for name, texts in replies.items()]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def read_messages(path: str) -> list[str]:
    """The non-blank lines of ``path``; ``EvaluationError`` names a missing or empty file."""
    from seq2seq.inference.evaluation import EvaluationError

    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise EvaluationError(f"cannot read the messages file {path}: {error}") from error
    messages = [line.strip() for line in lines if line.strip()]
    if not messages:
        raise EvaluationError(f"{path} holds no message")
    return messages


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python scripts/chat_table.py", description=__doc__)
    parser.add_argument("--model", required=True, metavar="RUN", help="a dialogue run folder")
    parser.add_argument("--backward-model", metavar="RUN", help="default: RUN-backward")
    parser.add_argument("--split", default="test", choices=("test", "dev"))
    parser.add_argument("--max-sentences", type=int, metavar="N", help="the first N pairs")
    parser.add_argument(
        "--beam", type=int, default=DEFAULT.beam_size, help="beam size of the beam row"
    )
    parser.add_argument("--mmi-lambda", type=float, default=1.0)
    parser.add_argument("--mmi-gamma", type=float, default=DEFAULT.mmi_gamma)
    parser.add_argument("--mmi-candidates", type=int, default=DEFAULT.mmi_candidates)
    parser.add_argument("--seed", type=int, default=1, help="sampling and sample choice")
    parser.add_argument("--samples", type=int, default=10, help="sample exchanges")
    parser.add_argument(
        "--inputs", metavar="FILE", help="messages for the exchanges, one a line (default: pairs)"
    )
    parser.add_argument("--output", default=None, help="Markdown file (default: stdout)")
    parser.add_argument(
        "--output-dir", default=None, help="per-setting reports (default: <run>/chat-table)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from seq2seq.config import ConfigError
    from seq2seq.data.corpora.spec import CorpusError
    from seq2seq.inference.evaluation import (
        MAX_INPUT_CHARS,
        EvaluationError,
        evaluate_run,
        run_config,
        split_pairs,
    )
    from seq2seq.runs import RunError

    folder = Path(args.output_dir or Path(args.model) / "chat-table")
    try:
        # a bad messages file fails before the evaluations, not after them
        messages = read_messages(args.inputs) if args.inputs else None
        config = run_config(args.model)
        from seq2seq.inference.translator import Translator

        translator = Translator.from_run(
            args.model, max_input_chars=MAX_INPUT_CHARS, backward=args.backward_model
        )
        rows, replies = {}, {}
        for name, overrides in settings(args).items():
            if "mmi_lambda" in overrides and translator.backward_dir is None:
                print(f"skipping {name}: no backward run beside {args.model}", file=sys.stderr)
                continue
            print(f"decoding: {name}", file=sys.stderr, flush=True)
            result = evaluate_run(
                args.model,
                split=args.split,
                max_sentences=args.max_sentences,
                output_dir=folder / slug(name),
                task="dialogue",
                translator=translator,
                decode=translator.decode_config(**overrides),
            )
            rows[name] = result["metrics"]
            text = (folder / slug(name) / "hypotheses.txt").read_text(encoding="utf-8")
            replies[name] = text.splitlines()
        pairs = split_pairs(config, args.split)[: args.max_sentences]
        if messages:
            used = {name: overrides for name, overrides in settings(args).items() if name in rows}
            exchanges = replies_to(translator, messages, used)
            intro = f"Replies to the {len(messages)} messages of {args.inputs} (seed {args.seed}):"
        else:
            sources, references = [s for s, _ in pairs], [t for _, t in pairs]
            exchanges = samples(sources, references, replies, args.samples, args.seed)
            intro = (
                f"{args.samples} exchanges (the same inputs for every setting, drawn with "
                f"seed {args.seed}):"
            )
    except (RunError, ConfigError, EvaluationError, CorpusError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    first = next(iter(rows.values()))
    report = "\n\n".join(
        [
            f"Run `{args.model}`, {args.split} split, {len(pairs):,} pairs. "
            f"BLEU-n: {first['bleu_n_definition']}. BLEU-n, NLTK 3.6+: "
            f"{first['bleu_n_nltk_definition']}.",
            table(rows),
            intro,
            exchanges,
        ]
    )
    if args.output:
        Path(args.output).write_text(report + "\n", encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    else:
        print(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
