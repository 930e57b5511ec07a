"""Data at scale: prepare N synthetic pairs, then train from the shards; time and memory.

    python scripts/data_scale.py --pairs 2000000 20000000 --work /tmp/scale

With ``--preset-runs PRESET`` it instead trains the preset's own corpus twice in a fresh cache
(the first run prepares it, the second finds it) and prints both runs' time to the first step,
peak memory and tokens/s; ``--tree DIR`` runs the same commands in another checkout (an older
commit, to compare data paths).

For each N it writes N unique pairs (``synthetic_pairs``: two lines of the Anki Spanish-English
corpus joined, ``en_i en_j<TAB>es_i es_j``, each (i, j) once), runs
``python -m seq2seq.prepare`` on them, then ``python -m seq2seq.train`` from the prepared
folder for ``--train-steps`` steps, and prints one Markdown row per N: prepare time, the
prepare's peak memory (the command and its workers together), the time from the training
command to its first step, the training's peak memory and its target tokens/s. Memory is
the resident set size of the whole process tree, sampled every 0.2 s. Dev and test are
0.05% each (10k pairs at 20M), as on large corpora; the time the dev loss takes is not
part of any figure. Needs the shared corpora ($SEQ2SEQ_DATA_DIR or ../shared/data).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
DATA = ["data.corpus=tsv", "data.reverse=false", "data.dev_fraction=0.0005"]
DATA += ["data.test_fraction=0.0005", "data.max_pairs=null"]


def corpus_file() -> Path:
    root = Path(os.environ.get("SEQ2SEQ_DATA_DIR") or REPO.parent / "shared" / "data")
    path = root / "translation" / "spa-eng.tsv.gz"
    if not path.is_file():
        sys.exit(f"error: {path} not found; set SEQ2SEQ_DATA_DIR")
    return path


def synthetic_pairs(count: int, path: Path, seed: int = 0) -> None:
    """``count`` pairs, each a distinct (i, j) of corpus lines joined; written atomically."""
    with gzip.open(corpus_file(), "rt", encoding="utf-8") as stream:
        rows = [line.rstrip("\n").split("\t")[:2] for line in stream if "\t" in line]
    n = len(rows)
    if count > n * n:
        sys.exit(f"error: at most {n * n:,} distinct pairs")
    rng = np.random.default_rng(seed)
    first, second = rng.permutation(n), rng.permutation(n)
    partial = path.with_suffix(".partial")
    with partial.open("w", encoding="utf-8") as out:
        for start in range(0, count, 100_000):
            k = np.arange(start, min(start + 100_000, count))
            a, b = k % n, k // n
            lines = (
                f"{rows[i][0]} {rows[j][0]}\t{rows[i][1]} {rows[j][1]}\n"
                for i, j in zip(first[a], second[(a + b) % n], strict=True)
            )
            out.writelines(lines)
    partial.rename(path)


def run_measured(command: list[str], until=None, log: Path | None = None) -> dict:
    """Run ``command``; its wall time, the tree's peak RSS, and when ``until()`` first held."""
    started = time.perf_counter()
    sink = log.open("w") if log else subprocess.DEVNULL
    process = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT)
    root, peak, reached = psutil.Process(process.pid), 0, None
    while process.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
            peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
        except psutil.Error:
            pass
        if reached is None and until and until():
            reached = time.perf_counter() - started
        time.sleep(0.2)
    if process.returncode:
        tail = log.read_text()[-2000:] if log else ""
        sys.exit(f"error: {' '.join(command)} exited {process.returncode}\n{tail}")
    return {"seconds": time.perf_counter() - started, "peak_mb": peak / 2**20, "first": reached}


def first_step(run: Path):
    def check() -> bool:
        try:
            return json.loads((run / "progress.json").read_text()).get("step", 0) >= 1
        except (OSError, ValueError):
            return False

    return check


def measure(count: int, work: Path, preset: str, steps: int, reuse: bool) -> dict:
    corpus = work / f"synthetic-{count}.tsv"
    if not corpus.is_file():
        synthetic_pairs(count, corpus)
    data = [*DATA, f"data.path={corpus}"]
    prepared = work / f"prepared-{count}"
    python = [sys.executable, "-m"]
    command = [*python, "seq2seq.prepare", "--preset", preset, "--output", str(prepared), *data]
    if reuse and (prepared / "manifest.json").is_file():
        prepare = {"seconds": float("nan"), "peak_mb": float("nan")}
    else:
        prepare = run_measured(command, log=work / f"prepare-{count}.log")
        (work / f"prepare-{count}.json").write_text(json.dumps(prepare))
    run = work / f"run-{count}"
    train = run_measured(
        [*python, "seq2seq.train", "--preset", preset, "--output", str(run), *data]
        + [f"data.prepared={prepared}", "train.epochs=1", f"train.steps_per_epoch={steps}"]
        + ["train.select_best_by=loss", "train.dev_bleu_sentences=0"],
        until=first_step(run),
        log=work / f"train-{count}.log",
    )
    epoch = json.loads((run / "metrics.json").read_text())["epochs"][0]
    return {
        "pairs": count,
        "prepare_s": prepare["seconds"],
        "prepare_peak_mb": prepare["peak_mb"],
        "first_step_s": train["first"],
        "train_peak_mb": train["peak_mb"],
        "target_tokens_per_s": epoch.get("target_tokens_per_s"),
    }


def preset_runs(preset: str, work: Path, steps: int, tree: Path) -> None:
    """Train ``preset`` twice in a fresh cache: the first run prepares, the second reuses."""
    global REPO
    REPO = tree
    os.environ["SEQ2SEQ_CACHE_DIR"] = str(work / "cache")
    print("| run | first step | peak RSS | target tok/s |")
    print("|---|---:|---:|---:|")
    for index in (1, 2):
        run = work / f"{preset}-{index}"
        result = run_measured(
            [sys.executable, "-m", "seq2seq.train", "--preset", preset, "--output", str(run)]
            + ["train.epochs=1", f"train.steps_per_epoch={steps}", "train.select_best_by=loss"]
            + ["train.dev_bleu_sentences=0"],
            until=first_step(run),
            log=work / f"{preset}-{index}.log",
        )
        epoch = json.loads((run / "metrics.json").read_text())["epochs"][0]
        print(
            f"| {index} | {result['first']:.0f} s | {result['peak_mb']:,.0f} MB "
            f"| {epoch['target_tokens_per_s']:,.0f} |",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, nargs="+", default=[2_000_000, 20_000_000])
    parser.add_argument("--work", type=Path, required=True, help="a folder with room (~5 GB)")
    parser.add_argument("--preset", default="es-en-gru")
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--preset-runs", metavar="PRESET", help="see above")
    parser.add_argument("--tree", type=Path, default=REPO, help="checkout to run (--preset-runs)")
    parser.add_argument(
        "--reuse-prepared",
        action="store_true",
        help="time only the training when the prepared folder exists (prepare figures: nan)",
    )
    args = parser.parse_args(argv)
    if min(args.pairs) < 1000 or args.train_steps < 1:
        print("error: --pairs at least 1000 each, --train-steps at least 1", file=sys.stderr)
        return 2
    args.work.mkdir(parents=True, exist_ok=True)
    if args.preset_runs:
        preset_runs(args.preset_runs, args.work, args.train_steps, args.tree.resolve())
        return 0
    print("| pairs | prepare | prepare peak RSS | first step | training peak RSS | target tok/s |")
    print("|---:|---:|---:|---:|---:|---:|")
    for count in args.pairs:
        row = measure(count, args.work, args.preset, args.train_steps, args.reuse_prepared)
        (args.work / f"scale-{count}.json").write_text(json.dumps(row, indent=1))
        first = f"{row['first_step_s']:.0f} s" if row["first_step_s"] else "n/a"
        print(
            f"| {count:,} | {row['prepare_s'] / 60:.1f} min | {row['prepare_peak_mb']:,.0f} MB "
            f"| {first} | {row['train_peak_mb']:,.0f} MB | {row['target_tokens_per_s']:,.0f} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
