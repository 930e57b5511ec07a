"""Choose MMI's lambda and gamma on the dev split: one row of dialogue metrics per setting.

    python scripts/mmi_sweep.py --model runs/chat [--lambdas 0.5,1] [--gammas 1,2,3] \
        [--candidates 10] [--method beam] [--max-sentences 500]

Reranking weighs log p(reply | message) + lambda * log p(message | reply) + gamma * length
(``seq2seq.inference.mmi``). Both weights change the replies a lot (gamma mostly their
length), and the
test split must not choose them, so this searches the first ``--max-sentences`` dev pairs'
candidates once, scores them forward and backward once (``Translator.mmi_candidates``),
reranks them for every (lambda, gamma), and prints a Markdown table of BLEU-1/2,
distinct-1/2, reply length and degenerate share, best BLEU-2 first. Each setting's replies
and metrics land in ``<output-dir>/l<lambda>-g<gamma>/``.
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
    from seq2seq.data.corpora.spec import CorpusError
    from seq2seq.inference.evaluation import (
        MAX_INPUT_CHARS,
        EvaluationError,
        reply_metrics,
        split_pairs,
        write_report,
    )
    from seq2seq.inference.metrics import DEFAULT_DEGENERATE_THRESHOLD, DEFAULT_STOCK_FRACTION
    from seq2seq.inference.mmi import mmi_rerank
    from seq2seq.inference.translator import Translator
    from seq2seq.runs import RunError

    folder = Path(args.output_dir or Path(args.model) / "mmi-sweep")
    seed = {"seed": args.seed} if args.method == "sample" else {}
    search = dict(method=args.method, mmi_lambda=1.0, mmi_candidates=args.candidates, **seed)
    rows = []
    try:
        translator = Translator.from_run(
            args.model, max_input_chars=MAX_INPUT_CHARS, backward=args.backward_model
        )
        pairs = split_pairs(translator.config, "dev")[: args.max_sentences]
        sources = [source for source, _ in pairs]
        references = [target for _, target in pairs]
        print(f"searching {len(pairs)} dev pairs", file=sys.stderr, flush=True)
        candidates = translator.mmi_candidates(sources, translator.decode_config(**search))
        for lam in args.lambdas:
            for gamma in args.gammas:
                replies = [mmi_rerank(c, lam, gamma)[0].text for c in candidates]
                metrics = reply_metrics(
                    sources,
                    replies,
                    references,
                    DEFAULT_STOCK_FRACTION,
                    DEFAULT_DEGENERATE_THRESHOLD,
                )
                settings = {**search, "mmi_lambda": lam, "mmi_gamma": gamma}
                report = {"run": args.model, "split": "dev", "pairs": len(pairs)}
                report.update(decode=settings, metrics=metrics)
                write_report(folder / f"l{lam:g}-g{gamma:g}", replies, report)
                rows.append((lam, gamma, metrics))
    except (RunError, ConfigError, EvaluationError, CorpusError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    print(
        f"Run `{args.model}`, dev split, {args.max_sentences} pairs, MMI {args.method} over "
        f"{args.candidates} candidates.\n\n| lambda | gamma | BLEU-1 | BLEU-2 | "
        "BLEU-2, NLTK 3.6+ | distinct-1 | distinct-2 | avg words | degenerate |\n"
        "|---|---|---|---|---|---|---|---|---|"
    )
    for lam, gamma, m in sorted(rows, key=lambda row: -row[2]["bleu_2"]):
        print(
            f"| {lam:g} | {gamma:g} | {m['bleu_1']:.3f} | {m['bleu_2']:.3f} | "
            f"{m['bleu_2_nltk']:.3f} | {m['distinct_1']:.3f} | {m['distinct_2']:.3f} | "
            f"{m['avg_reply_words']:.1f} | {m['degenerate_share']:.3f} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
