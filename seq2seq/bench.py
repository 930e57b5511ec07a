"""``python -m seq2seq.bench``: training and decoding speed, load time and peak memory.

Measured on real Tatoeba Spanish->English pairs (``$SEQ2SEQ_DATA_DIR``) at a fixed
reference size (bi-GRU 256 encoder, GRU 256 decoder, additive attention, 5,000-word
vocabularies, batch 64) and at a preset's size. Training speed is target tokens per second
after warm-up, for the length-bucketed pipeline and for plain padded batches in the same
process. Decoding is timed on a trained run when ``--model`` is given (an untrained model
rarely emits END, so it would always run to ``max_length``), else on the briefly trained
benchmark model. ``--only chat`` times chat replies: time to the first streamed token,
tokens/s of the stream (greedy, sampling) and the latency of MMI reranking.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from seq2seq.cli import quiet

# The glossary whose terms --export passes to a beam export's translate_with_terms
SAMPLE_GLOSSARY = Path(__file__).resolve().parents[1] / "data" / "sample" / "glossary-es-en.tsv"
REFERENCE = [
    "data.tokenizer=word",
    "data.source_vocab_size=5000",
    "data.target_vocab_size=5000",
    "model.cell=gru",
    "model.embedding_dim=256",
    "model.hidden_size=256",
    "model.bidirectional=true",
    "model.attention=bahdanau",
    "train.batch_size=64",
]


def percentiles(values: list[float]) -> dict[str, float]:
    array = np.asarray(values) * 1000.0
    return {"p50_ms": float(np.percentile(array, 50)), "p95_ms": float(np.percentile(array, 95))}


def peak_memory_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def target_tokens(dataset) -> int:
    return int(sum(int(np.count_nonzero(target_out)) for _, target_out in dataset))


def time_steps(trainer, batches: list, warmup: int) -> dict[str, float]:
    """Run the training step on ``warmup`` batches (tracing), then time the rest."""
    for batch in batches[:warmup]:
        trainer.step(batch)
    timed = batches[warmup:]
    tokens = int(sum(np.count_nonzero(target.numpy()) for _, target in timed))
    start = time.perf_counter()
    for batch in timed:
        loss_sum, _, _ = trainer.step(batch)
    float(loss_sum)  # wait for the last step
    seconds = time.perf_counter() - start
    return {
        "steps": len(timed),
        "seconds": seconds,
        "target_tokens": tokens,
        "target_tokens_per_s": tokens / seconds,
        "ms_per_step": 1000.0 * seconds / len(timed),
    }


def bench_training(config, prepared, steps: int, warmup: int) -> tuple[dict, object]:
    """Bucketed vs padded training speed for one config, on batches streamed from the
    prepared shards (``seq2seq.data.pipeline``) as training reads them; returns the model."""
    import keras
    import tensorflow as tf

    from seq2seq.constants import PAD
    from seq2seq.data.pipeline import read_records, train_batches
    from seq2seq.training.loop import build_trainer, fastest_mixed_policy

    data, train = config.data, config.train
    folder = prepared.folder
    lengths = {
        "max_source_length": data.max_source_length,
        "max_target_length": data.max_target_length,
    }
    bucketed = train_batches(
        folder,
        batch_size=train.batch_size,
        bucket_width=data.bucket_width,
        seed=train.seed,
        shuffle_buffer=train.shuffle_buffer,
        **lengths,
    )
    width = data.max_target_length + 1
    padded = (
        read_records(folder.files("train"), interleave=True)
        .shuffle(train.shuffle_buffer or 1, seed=train.seed)
        .padded_batch(
            train.batch_size,
            padded_shapes=(([data.max_source_length], [width]), [width]),
            padding_values=((PAD, PAD), PAD),
        )
    )
    settings = [("bucketed", bucketed, "float32"), ("padded", padded, "float32")]
    mixed = fastest_mixed_policy()  # what train.mixed_precision=auto picks here
    if mixed:
        settings.append(("bucketed_mixed", bucketed, mixed))
    results: dict = {"default_policy": mixed or "float32"}
    model = None
    vocab_sizes = (prepared.source_tokenizer.vocab_size, prepared.target_tokenizer.vocab_size)
    for name, dataset, policy in settings:
        batches = list(dataset.take(steps + warmup))
        keras.mixed_precision.set_global_policy(policy)
        try:
            trainer = build_trainer(config, tf.distribute.get_strategy(), policy, vocab_sizes)
            results[name] = time_steps(trainer, batches, warmup)
        finally:
            keras.mixed_precision.set_global_policy("float32")
        model = model or trainer.model  # a float32 model for the decoding timings
        padding = [float(np.mean(t.numpy() == 0)) for _, t in batches]
        results[name]["target_padding_fraction"] = float(np.mean(padding))
        results[name]["policy"] = policy
    results["bucketed_speedup"] = (
        results["bucketed"]["target_tokens_per_s"] / results["padded"]["target_tokens_per_s"]
    )
    results["rnn_path"] = rnn_path(model)
    return results, model


def rnn_path(model) -> str:
    """Which implementation ran the whole-sequence recurrent layers in training."""
    from seq2seq.model import fast_rnn

    layers = model.encoder.rnns + model.decoder.rnns
    if all(fast_rnn.uses_fast_path(layer) for layer in layers):
        return "fast_rnn (input projection outside the time loop)"
    if any(fast_rnn.runs_cudnn(getattr(layer, "forward_layer", layer)) for layer in layers):
        return "Keras layers (cuDNN)"
    return "Keras layers"


def bench_decoding(searcher, source_ids: list[list[int]], max_length: int, repeats: int) -> dict:
    """Greedy and beam-5 latency at batch 1 and throughput at batch 64.

    Batch 64 is timed twice: in corpus order, and sorted by source length as
    ``Translator`` and the dev evaluation batch (a batch runs until its longest output
    ends, so similar lengths waste fewer steps). Every timed pass follows an untimed one
    over the same batches, so tracing and XLA compilation (reported separately, as
    ``warmup_seconds``) are not counted.
    """

    from seq2seq.inference.prediction import batches, pad_batch

    def batches_of(rows, sort_by_length):
        return [batch.source for batch in batches(rows, 64, sort_by_length)]

    def run_all(search, batches) -> float:
        start = time.perf_counter()
        for batch in batches:
            search(batch)
        return time.perf_counter() - start

    searches = {
        "greedy": lambda b: searcher.greedy(b, max_length),
        "beam5": lambda b: searcher.beam(b, beam_size=5, n_best=1, max_length=max_length),
    }
    singles = [pad_batch([row]) for row in source_ids[:repeats]]
    rows = source_ids[: 64 * max(1, len(source_ids) // 64)]
    in_order = batches_of(rows, sort_by_length=False)
    by_length = batches_of(rows, sort_by_length=True)
    results = {}
    for name, search in searches.items():
        warmup = sum(run_all(search, batches) for batches in (singles, in_order, by_length))
        latencies = []
        for batch in singles:
            start = time.perf_counter()
            search(batch)
            latencies.append(time.perf_counter() - start)
        results[name] = {
            "batch1": percentiles(latencies),
            "batch64_sentences_per_s": len(rows) / run_all(search, by_length),
            "batch64_corpus_order_sentences_per_s": len(rows) / run_all(search, in_order),
            "warmup_seconds": warmup,
        }
    results["beam5_over_greedy_latency"] = (
        results["beam5"]["batch1"]["p50_ms"] / results["greedy"]["batch1"]["p50_ms"]
    )
    results["jit_compile"] = searcher.jit_compile
    return results


def bench_load(model) -> float:
    import keras

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "model.keras"
        model.save(path)
        start = time.perf_counter()
        keras.models.load_model(path, safe_mode=True, compile=False)
        return time.perf_counter() - start


def bench_config(name: str, config, args) -> dict:
    from seq2seq.data.prepare import prepare
    from seq2seq.data.tokenizers import load_tokenizer
    from seq2seq.search.searcher import Searcher
    from seq2seq.training.data import PreparedData

    with tempfile.TemporaryDirectory() as folder:
        report = prepare(config.data, Path(folder) / "prepared", show_progress=False)
        source = load_tokenizer(report.folder.source_vocab)
        prepared = PreparedData(report.folder, source, load_tokenizer(report.folder.target_vocab))
        result: dict = {
            "config": name,
            "train_pairs": report.folder.pairs("train"),
            "prepare_seconds": report.seconds,
        }
        training, model = bench_training(config, prepared, args.train_steps, args.warmup_steps)
        test = report.folder.text_pairs("test")
    result["training"] = training
    result["model_load_seconds"] = bench_load(model)
    if args.model is None:
        test_ids = [ids for ids in source.encode_batch([s for s, _ in test]) if ids]
        result["decoding_model"] = "benchmark model (briefly trained)"
        result["decoding"] = bench_decoding(
            Searcher(model, jit_compile=not args.no_jit),
            test_ids[: args.decode_sentences],
            config.decode.max_length,
            args.repeats,
        )
    return result


def test_sources(config) -> list[str]:
    """The run's test-split sources (from its prepared data), in corpus order."""
    from seq2seq.inference.evaluation import split_pairs

    return [source for source, _ in split_pairs(config, "test") if source.strip()]


def bench_run(run: str, args) -> dict:
    """Decoding speed and load time of a trained run, on its own test split."""
    from seq2seq.inference.translator import Translator
    from seq2seq.search.searcher import Searcher

    start = time.perf_counter()
    translator = Translator.from_run(run)
    load_seconds = time.perf_counter() - start
    ids = translator.source_tokenizer.encode_batch(test_sources(translator.config))
    ids = [row[: translator.config.data.max_source_length] for row in ids if row]
    decoding = bench_decoding(
        Searcher(translator.model, jit_compile=not args.no_jit),
        ids[: args.decode_sentences],
        translator.config.decode.max_length,
        args.repeats,
    )
    return {"run": run, "load_seconds": load_seconds, "decoding": decoding}


def bench_export(run: str, args) -> dict:
    """The run's SavedModel export beside its ``Translator`` on its test split
    (``seq2seq.exporting.timing``), with ``args.glossary``'s terms for the beam export."""
    from seq2seq.exporting.timing import time_export
    from seq2seq.inference.translator import Translator

    translator = Translator.from_run(run, jit_compile=not args.no_jit)
    sentences = test_sources(translator.config)[: args.decode_sentences]
    return time_export(translator, sentences, args.repeats, args.glossary)


def bench_workers(config_name: str, args) -> dict:
    """Target tokens/s of 1 and 2 local workers (``train --local-workers N``) at the
    reference size, each worker with batch 64: the second epoch's rate (the first traces)."""
    import subprocess

    results: dict = {}
    for workers in (1, 2):
        with tempfile.TemporaryDirectory() as folder:
            command = [
                sys.executable,
                "-m",
                "seq2seq.train",
                "--preset",
                config_name,
                "--output",
                str(Path(folder) / "run"),
                "--local-workers",
                str(workers),
                *REFERENCE,
                "train.epochs=2",
                f"train.steps_per_epoch={args.train_steps}",
                "train.select_best_by=loss",
                "train.keep_checkpoints=0",
            ]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                raise RuntimeError(f"{workers} worker(s) failed: {done.stderr[-2000:]}")
            metrics = json.loads((Path(folder) / "run" / "metrics.json").read_text())
            results[f"workers_{workers}"] = metrics["epochs"][-1]["target_tokens_per_s"]
    results["scaling_efficiency"] = results["workers_2"] / (2 * results["workers_1"])
    return results


def time_stream(translator, sources: list[str], decode) -> dict:
    """Time-to-first-token and tokens/s of ``Translator.stream`` over ``sources``, and the
    same replies not streamed, after an untimed pass over the same calls (XLA compiles
    once per padded source width: ``decoding.compiled_shape``)."""
    for source in sources:
        translator.translate_one(source, decode)
        list(translator.stream(source, decode))
    first, totals, tokens = [], [], 0
    for source in sources:
        start = time.perf_counter()
        parts = translator.stream(source, decode)
        last = next(parts)
        first.append(time.perf_counter() - start)
        for last in parts:  # noqa: B007 (the last part is the reply)
            pass
        totals.append(time.perf_counter() - start)
        tokens += len(last.tokens) + 1  # END is decoded too
    whole = []
    for source in sources:
        start = time.perf_counter()
        translator.translate_one(source, decode)
        whole.append(time.perf_counter() - start)
    return {
        "time_to_first_token": percentiles(first),
        "reply": percentiles(totals),
        "not_streamed_reply": percentiles(whole),
        "tokens_per_s": tokens / sum(totals),
        "avg_tokens": tokens / len(sources),
    }


def bench_chat(run: str | None, args) -> dict:
    """Streaming (greedy, sampling) and MMI reply latency of a dialogue run on its test
    split, one message at a time; without ``--model`` on the ``chat`` preset and its
    backward model trained ``--train-steps`` steps here (their replies run long, to
    ``decode.max_length``, as an untrained model seldom ends a reply)."""
    from seq2seq.inference.translator import Translator

    with tempfile.TemporaryDirectory() as folder:
        if run is None:
            run = str(Path(folder) / "chat")
            train_briefly("chat", run, args)
            train_briefly("chat-backward", f"{run}-backward", args)
        translator = Translator.from_run(run, jit_compile=not args.no_jit)
        sources = test_sources(translator.config)[: args.chat_messages]
        result: dict = {"run": run, "messages": len(sources), "chunk_steps": translator.chunk_steps}
        for name, settings in (
            ("greedy", {"method": "greedy"}),
            ("sample", {"method": "sample", "seed": 1}),
        ):
            result[name] = time_stream(translator, sources, translator.decode_config(**settings))
        if translator.backward_dir is None:
            result["mmi"] = None
            return result
        for method in ("beam", "sample"):
            decode = translator.decode_config(method=method, mmi_lambda=0.5, mmi_candidates=10)
            for source in sources:  # untimed: compile, load the backward run
                translator.translate_one(source, decode)
            seconds = []
            for source in sources:
                start = time.perf_counter()
                translator.translate_one(source, decode)
                seconds.append(time.perf_counter() - start)
            result[f"mmi_{method}10"] = percentiles(seconds)
        return result


def train_briefly(preset: str, output: str, args) -> None:
    from seq2seq.config import load_config
    from seq2seq.training.loop import train

    overrides = [
        "train.epochs=1",
        f"train.steps_per_epoch={args.train_steps}",
        "train.select_best_by=loss",
        "train.keep_checkpoints=0",
    ]
    train(load_config(preset, overrides=overrides), Path(output), verbose=0)


def chat_lines(chat: dict) -> list[str]:
    lines = [
        f"chat: {chat['messages']} test messages one at a time, chunks of "
        f"{chat['chunk_steps']} decoder steps"
    ]
    for name in ("greedy", "sample"):
        d = chat[name]
        lines.append(
            f"stream {name:6s} first token p50 {d['time_to_first_token']['p50_ms']:.1f} ms"
            f" p95 {d['time_to_first_token']['p95_ms']:.1f} ms; {d['tokens_per_s']:.0f} tok/s;"
            f" reply p50 {d['reply']['p50_ms']:.1f} ms ({d['avg_tokens']:.1f} tokens),"
            f" not streamed {d['not_streamed_reply']['p50_ms']:.1f} ms"
        )
    for name in ("mmi_beam10", "mmi_sample10"):
        if chat.get(name):
            d = chat[name]
            lines.append(f"{name} reply p50 {d['p50_ms']:.1f} ms p95 {d['p95_ms']:.1f} ms")
    if "mmi_beam10" not in chat:
        lines.append("MMI: no backward run (RUN-backward) beside the run")
    return lines


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m seq2seq.bench", description=__doc__)
    parser.add_argument(
        "--preset", default="es-en-gru", help="preset to measure besides the reference size"
    )
    parser.add_argument("--model", help="a trained run folder to time decoding and loading on")
    parser.add_argument("--train-steps", type=int, default=150)
    parser.add_argument("--warmup-steps", type=int, default=40)
    parser.add_argument("--decode-sentences", type=int, default=1024)
    parser.add_argument("--repeats", type=int, default=100, help="batch-1 decodes per search")
    parser.add_argument(
        "--only",
        choices=("reference", "preset", "model", "workers", "chat"),
        help="run one part (chat: streaming and MMI latency; on --model, a dialogue run, "
        "else on the chat preset trained briefly)",
    )
    parser.add_argument(
        "--chat-messages", type=int, default=50, help="chat: test messages to reply to"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--no-jit", action="store_true", help="time the searches without XLA (tf.function only)"
    )
    parser.add_argument(
        "--export",
        action="store_true",
        help="also time --model's SavedModel export beside its Translator (text in, text out)",
    )
    parser.add_argument(
        "--glossary",
        type=Path,
        default=SAMPLE_GLOSSARY,
        help="--export: the glossary whose terms the beam export's translate_with_terms "
        "gets (default: data/sample/glossary-es-en.tsv)",
    )
    args = parser.parse_args(argv)
    for flag, value, least in (
        ("--train-steps", args.train_steps, 1),
        ("--warmup-steps", args.warmup_steps, 0),
        ("--decode-sentences", args.decode_sentences, 1),
        ("--repeats", args.repeats, 1),
        ("--chat-messages", args.chat_messages, 1),
    ):
        if value < least:
            parser.error(f"{flag} is {value}; allowed: a whole number >= {least}")
    if args.only == "model" and not args.model:
        parser.error("--only model needs --model RUN")
    if args.export and not args.model:
        parser.error("--export times --model's export: give --model RUN")
    if args.export and not args.glossary.is_file():
        parser.error(f"--glossary {args.glossary}: no such file")
    return args


def report(results: dict) -> str:
    lines = []
    for part in results["parts"]:
        lines.append(f"== {part.get('config') or part.get('run')}")
        if "training" in part:
            t = part["training"]
            lines.append(
                f"data: prepare {part['prepare_seconds']:.1f} s "
                f"({part['train_pairs']:,} training pairs)"
            )
            for name in ("bucketed", "padded", "bucketed_mixed"):
                if name not in part["training"]:
                    continue
                t = part["training"][name]
                label = "bucketed" if name == "bucketed_mixed" else name
                default = name != "padded" and t["policy"] == part["training"]["default_policy"]
                lines.append(
                    f"train {label:9s} {t['target_tokens_per_s']:8.0f} target tok/s  "
                    f"{t['ms_per_step']:6.1f} ms/step  padding {t['target_padding_fraction']:.0%}"
                    f"  {t['policy']}{' (the default here)' if default else ''}"
                )
            lines.append(f"bucketed speed-up x{part['training']['bucketed_speedup']:.2f}")
            lines.append(f"recurrent layers in training: {part['training']['rnn_path']}")
            lines.append(f"model load {part['model_load_seconds']:.2f} s")
        if "load_seconds" in part:
            lines.append(f"run load (Translator.from_run) {part['load_seconds']:.2f} s")
        decoding = part.get("decoding")
        if decoding:
            for name in ("greedy", "beam5"):
                d = decoding[name]
                latency = d["batch1"]
                lines.append(
                    f"{name:6s} batch 1 p50 {latency['p50_ms']:.1f} ms"
                    f" p95 {latency['p95_ms']:.1f} ms;"
                    f" batch 64 {d['batch64_sentences_per_s']:.0f} sent/s sorted by length,"
                    f" {d['batch64_corpus_order_sentences_per_s']:.0f} in corpus order;"
                    f" warm-up {d['warmup_seconds']:.1f} s"
                )
            lines.append(f"beam-5 / greedy latency x{decoding['beam5_over_greedy_latency']:.2f}")
        if "export" in part:
            from seq2seq.exporting.timing import export_lines

            lines.extend(export_lines(part["export"]))
        if "chat" in part:
            lines.extend(chat_lines(part["chat"]))
        if "workers" in part:
            w = part["workers"]
            lines.append(
                f"train --local-workers 1: {w['workers_1']:.0f} target tok/s; 2 workers: "
                f"{w['workers_2']:.0f}; scaling efficiency {w['scaling_efficiency']:.2f}"
            )
    lines.append(f"peak memory {results['peak_memory_mb']:.0f} MiB")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    quiet.setup()  # before TensorFlow loads
    from seq2seq.config import ConfigError, load_config
    from seq2seq.data.corpora.spec import CorpusError
    from seq2seq.runs import RunError, open_run

    try:
        if args.model:
            open_run(args.model)  # a missing or unfinished run is named before any timing
        parts = []
        if args.only in (None, "reference"):
            reference = load_config(args.preset, overrides=REFERENCE)
            parts.append(bench_config("reference (bi-GRU 256, 5k words)", reference, args))
        if args.only in (None, "preset"):
            parts.append(bench_config(f"preset {args.preset}", load_config(args.preset), args))
        if args.only in (None, "workers"):
            parts.append({"config": "local workers", "workers": bench_workers(args.preset, args)})
        if args.only == "chat":
            parts.append({"config": "chat", "chat": bench_chat(args.model, args)})
        if args.model and args.only in (None, "model"):
            parts.append(bench_run(args.model, args))
            if args.export:
                parts[-1]["export"] = bench_export(args.model, args)
    except (ConfigError, CorpusError, RunError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    results = {"parts": parts, "peak_memory_mb": peak_memory_mb()}
    import tensorflow as tf

    results["device"] = "GPU" if tf.config.list_logical_devices("GPU") else "CPU"
    print(json.dumps(results, indent=2) if args.json else report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
