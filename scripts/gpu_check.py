"""The GPU path, proven: cuDNN kernels, mixed precision and its convergence, target tokens/s.

Run on a machine with a GPU (a few minutes):

    SEQ2SEQ_DATA_DIR=../shared/data python scripts/gpu_check.py --steps 300

It trains the reference size (bi-GRU 256 / GRU 256 / additive attention / 5k words /
batch 64) on real Spanish->English pairs through the training step ``train`` uses, for a
fixed number of steps, in three settings:

- ``float32``: Keras's cuDNN-compatible GRU defaults;
- ``mixed_float16``: the same with the loss-scaled optimizer;
- ``float32, no cuDNN``: the same model with ``recurrent_dropout`` set to a negligible value,
  which makes Keras fall back to the generic GRU kernel: the speed ratio shows what cuDNN buys.

For each it reports target tokens/s (after warm-up), the first and last training losses,
and whether a ``CudnnRNN`` op is in the traced training graph. Mixed precision "converges"
when its final loss is within 5% of float32's. Prints one JSON object; exit code 1 when a
check fails, 2 when there is no GPU (``--allow-cpu`` runs it anyway, to test the script).
"""

from __future__ import annotations

import argparse
import json
import sys
import time

REFERENCE = [
    "data.tokenizer=word",
    "data.source_vocab_size=5000",
    "data.target_vocab_size=5000",
    "data.max_pairs=40000",
    "model.cell=gru",
    "model.embedding_dim=256",
    "model.hidden_size=256",
    "model.bidirectional=true",
    "model.attention=bahdanau",
    "model.dropout=0.0",
    "train.batch_size=64",
]


def graph_ops(function, batch) -> set[str]:
    """Op types in a traced function and every function it calls."""
    graph_def = function.get_concrete_function(batch).graph.as_graph_def()
    ops = {node.op for node in graph_def.node}
    for library_function in graph_def.library.function:
        ops.update(node.op for node in library_function.node_def)
    return ops


def use_generic_gru(model) -> None:
    """Make every GRU layer ineligible for cuDNN (Keras checks recurrent_dropout == 0)."""
    for layer in model._flatten_layers():
        cell = getattr(layer, "cell", None)
        if cell is not None and hasattr(cell, "recurrent_dropout"):
            cell.recurrent_dropout = 1e-7
            if hasattr(layer, "use_cudnn"):
                layer.use_cudnn = False


def run_setting(config, prepared, policy: str, cudnn: bool, steps: int, warmup: int) -> dict:
    import keras
    import numpy as np
    import tensorflow as tf

    from seq2seq.training.data import Schedule, dataset_function
    from seq2seq.training.loop import build_trainer

    keras.mixed_precision.set_global_policy(policy)
    sizes = (prepared.source_tokenizer.vocab_size, prepared.target_tokenizer.vocab_size)
    trainer = build_trainer(
        config, tf.distribute.get_strategy(), policy, sizes, prepared.target_counts
    )
    if not cudnn:
        use_generic_gru(trainer.model)
    make = dataset_function(config, prepared, 0, Schedule(None, repeat=True))
    batches = iter(make(tf.distribute.InputContext()))
    first = next(batches)
    trainer.step(first)
    ops = graph_ops(trainer._step, first)
    losses, tokens, seconds = [], 0.0, 0.0
    for index in range(steps):
        batch = next(batches)
        start = time.perf_counter()
        loss_sum, batch_tokens, _ = trainer.step(batch)
        loss_sum = float(loss_sum)  # waits for the step
        if index >= warmup:
            seconds += time.perf_counter() - start
            tokens += float(batch_tokens)
        losses.append(loss_sum / max(float(batch_tokens), 1.0))
    keras.mixed_precision.set_global_policy("float32")
    return {
        "policy": policy,
        "cudnn_requested": cudnn,
        "cudnn_op_in_graph": any(op.startswith("CudnnRNN") for op in ops),
        "target_tokens_per_s": tokens / max(seconds, 1e-9),
        "loss_first_50": float(np.mean(losses[:50])),
        "loss_last_50": float(np.mean(losses[-50:])),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="training steps per setting")
    parser.add_argument("--warmup", type=int, default=30, help="untimed steps (tracing)")
    parser.add_argument("--preset", default="es-en-gru")
    parser.add_argument("--allow-cpu", action="store_true", help="run without a GPU (testing)")
    args = parser.parse_args(argv)
    if args.steps <= args.warmup:
        print("error: --steps must be larger than --warmup", file=sys.stderr)
        return 2

    import tensorflow as tf

    from seq2seq.config import load_config
    from seq2seq.training.data import prepare_data

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus and not args.allow_cpu:
        print("error: no GPU visible to TensorFlow (pass --allow-cpu to test the script)")
        return 2
    config = load_config(args.preset, overrides=REFERENCE)
    prepared = prepare_data(config, None)
    results = {
        "device": tf.config.experimental.get_device_details(gpus[0]) if gpus else "CPU",
        "steps": args.steps,
        "settings": [
            run_setting(config, prepared, "float32", True, args.steps, args.warmup),
            run_setting(config, prepared, "mixed_float16", True, args.steps, args.warmup),
            run_setting(config, prepared, "float32", False, args.steps, args.warmup),
        ],
    }
    fp32, fp16, generic = results["settings"]
    results["cudnn_speedup"] = fp32["target_tokens_per_s"] / generic["target_tokens_per_s"]
    results["mixed_precision_speedup"] = fp16["target_tokens_per_s"] / fp32["target_tokens_per_s"]
    results["checks"] = {
        "cudnn_kernels_run": bool(gpus) and fp32["cudnn_op_in_graph"],
        "mixed_precision_learns": fp16["loss_last_50"] < fp16["loss_first_50"],
        "mixed_precision_converges_like_float32": (
            fp16["loss_last_50"] <= 1.05 * fp32["loss_last_50"]
        ),
    }
    print(json.dumps(results, indent=2, default=str))
    return 0 if all(results["checks"].values()) or not gpus else 1


if __name__ == "__main__":
    sys.exit(main())
