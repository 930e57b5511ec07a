"""Choose MMI's lambda and gamma on the dev split: one row of dialogue metrics per setting.

    python scripts/mmi_sweep.py --model runs/chat [--lambdas 0.5,1] [--gammas 1,2,3] \
        [--candidates 10] [--method beam] [--max-sentences 500]

Reranking weighs log p(reply | message) + lambda * log p(message | reply) + gamma * length
(``seq2seq.mmi``). Both weights change the replies a lot (gamma mostly their length), and the
test split must not choose them, so this decodes the first ``--max-sentences`` dev pairs once
per (lambda, gamma) with one loaded ``Translator`` and prints a Markdown table of BLEU-1/2,
distinct-1/2, reply length and degenerate share, best BLEU-2 first. Reports land in
``<output-dir>/l<lambda>-g<gamma>/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def numbers(text: str) -> list[float]:
    """'0.5,1' -> [0.5, 1.0]; argparse turns a ValueError into a clear usage error."""
    return [float(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python scripts/mmi_sweep.py", description=__doc__)
    parser.add_argument("--model", required=True, metavar="RUN", help="a dialogue run folder")
    parser.add_argument("--backward-model", metavar="RUN", help="default: RUN-backward")
    parser.add_argument("--lambdas", type=numbers, default=[0.5, 1.0], metavar="L,L")
    parser.add_argument("--gammas", type=numbers, default=[1.0, 2.0, 3.0], metavar="G,G")
    parser.add_argument("--candidates", type=int, default=10, help="n-best size (default 10)")
    parser.add_argument("--method", choices=("beam", "sample"), default="beam")
    parser.add_argument("--seed", type=int, default=1, help="for --method sample")
    parser.add_argument("--max-sentences", type=int, default=500, metavar="N")
    parser.add_argument("--output-dir", default=None, help="default: <run>/mmi-sweep")
    args = parser.parse_args(argv)
    if not args.lambdas or not args.gammas:
        parser.error("--lambdas and --gammas need at least one number each")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from seq2seq.config import ConfigError
    from seq2seq.corpora.errors import CorpusError
    from seq2seq.evaluation import MAX_INPUT_CHARS, EvaluationError, evaluate_run
    from seq2seq.runs import RunError
    from seq2seq.translator import Translator

    folder = Path(args.output_dir or Path(args.model) / "mmi-sweep")
    seed = {"seed": args.seed} if args.method == "sample" else {}
    rows = []
    try:
        translator = Translator.from_run(
            args.model, max_input_chars=MAX_INPUT_CHARS, backward=args.backward_model
        )
        for lam in args.lambdas:
            for gamma in args.gammas:
                print(f"lambda {lam:g}, gamma {gamma:g}", file=sys.stderr, flush=True)
                result = evaluate_run(
                    args.model,
                    split="dev",
                    max_sentences=args.max_sentences,
                    output_dir=folder / f"l{lam:g}-g{gamma:g}",
                    task="dialogue",
                    translator=translator,
                    method=args.method,
                    mmi_lambda=lam,
                    mmi_gamma=gamma,
                    mmi_candidates=args.candidates,
                    **seed,
                )
                rows.append((lam, gamma, result["metrics"]))
    except (RunError, ConfigError, EvaluationError, CorpusError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"Run `{args.model}`, dev split, {args.max_sentences} pairs, MMI {args.method} over "
        f"{args.candidates} candidates.\n\n| lambda | gamma | BLEU-1 | BLEU-2 | distinct-1 | "
        "distinct-2 | avg words | degenerate |\n|---|---|---|---|---|---|---|---|"
    )
    for lam, gamma, m in sorted(rows, key=lambda row: -row[2]["bleu_2"]):
        print(
            f"| {lam:g} | {gamma:g} | {m['bleu_1']:.3f} | {m['bleu_2']:.3f} | "
            f"{m['distinct_1']:.3f} | {m['distinct_2']:.3f} | {m['avg_reply_words']:.1f} | "
            f"{m['degenerate_share']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
