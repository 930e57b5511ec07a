"""Check that ``seq2seq.inference.metrics``' "plato" BLEU-n equals NLTK 3.4's own, reply by reply.

    pip download --no-deps nltk==3.4 && unzip -q nltk-3.4.zip
    python scripts/plato_bleu_check.py --nltk34 nltk-3.4/nltk/translate/bleu_score.py \
        --reports runs/chat/chat-table

NLTK 3.4 (the version PLATO pins) no longer imports as a package on Python 3.11, but its
``bleu_score`` module loads alone. For every ``<reports>/*/report.json`` (as written by
``evaluate`` or ``scripts/chat_table.py``) this scores the replies in ``hypotheses.txt``
against the same references with both implementations and prints the mean and the largest
per-reply difference. Exit 1 when any difference exceeds 1e-9, 2 when there is no report or
the module cannot be loaded.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from pathlib import Path


def load_module(path: str):
    spec = importlib.util.spec_from_file_location("nltk34_bleu_score", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def nltk34_scores(module, hypotheses: list[str], references: list[str], n: int) -> list[float]:
    """PLATO's loop: NLTK 3.4's sentence_bleu, method7, 0 where it raises."""
    from seq2seq.inference.metrics import metric_words

    weights = [1.0 / n if order < n else 0.0 for order in range(4)]
    smoothing = module.SmoothingFunction().method7
    scores = []
    for hypothesis, reference in zip(hypotheses, references, strict=True):
        try:
            words = [metric_words(reference)], metric_words(hypothesis)
            scores.append(float(module.sentence_bleu(*words, weights, smoothing)))
        except Exception:  # PLATO's code caught everything and scored 0
            scores.append(0.0)
    return scores


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python scripts/plato_bleu_check.py", description=__doc__)
    parser.add_argument("--nltk34", required=True, help="NLTK 3.4's translate/bleu_score.py")
    parser.add_argument("--reports", required=True, help="a folder of evaluation report folders")
    args = parser.parse_args(argv)
    from seq2seq.config import ConfigError
    from seq2seq.data.corpora.spec import CorpusError
    from seq2seq.inference.evaluation import run_config, split_pairs
    from seq2seq.inference.metrics import sentence_bleu_n
    from seq2seq.runs import RunError

    report_paths = sorted(Path(args.reports).glob("*/report.json"))
    if not report_paths:
        print(f"error: no <folder>/report.json under {args.reports}", file=sys.stderr)
        return 2
    try:
        module = load_module(args.nltk34)
    except (OSError, ImportError, SyntaxError) as error:
        print(f"error: cannot load {args.nltk34}: {error}", file=sys.stderr)
        return 2
    worst_overall = 0.0
    for report_path in report_paths:
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
            hypotheses = (report_path.parent / "hypotheses.txt").read_text("utf-8").splitlines()
            pairs = split_pairs(run_config(report["run"]), report["split"])
        except (OSError, ValueError, KeyError, RunError, ConfigError, CorpusError) as error:
            print(f"error: {report_path}: {error!r}", file=sys.stderr)
            return 2
        references = [target for _, target in pairs][: len(hypotheses)]
        for n in (1, 2):
            theirs = nltk34_scores(module, hypotheses, references, n)
            pairs_n = zip(hypotheses, references, strict=True)
            ours = [sentence_bleu_n([h], [r], n) for h, r in pairs_n]
            worst = max(abs(a - b) for a, b in zip(theirs, ours, strict=True))
            worst_overall = max(worst_overall, worst)
            print(
                f"{report_path.parent.name}: BLEU-{n} NLTK 3.4 {sum(theirs) / len(theirs):.6f}, "
                f"seq2seq {sum(ours) / len(ours):.6f}, largest difference {worst:.1e} "
                f"({len(hypotheses):,} replies)"
            )
    return 0 if worst_overall <= 1e-9 else 1


if __name__ == "__main__":
    sys.exit(main())
