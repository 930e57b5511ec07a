"""How fast a SavedModel export serves beside the ``Translator`` it came from (the
``--export`` part of ``python -m seq2seq.bench``).

Both get the same sentences: one at a time (latency p50/p95 over ``repeats`` sentences)
and 64 at a time in the given order (throughput, the last batch possibly shorter).
Everything is timed after an untimed pass over the same calls (the Translator's XLA
compilations, the export's first-call set-up). The beam export is timed a second time
through ``translate_with_terms``, each row with the target terms of the glossary entries
its source holds (``Glossary.matches``): a mixed job, as a glossary meets real text, where
most rows have none and still run the constrained program.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from seq2seq.exporting.exporters import TERMS_SIGNATURE, export_saved_model
from seq2seq.inference.glossary import read_glossary

BATCH = 64
BEAM_SIZE = 5


def seconds_per_call(call: Callable[[list[str]], Any], batches: list[list[str]]) -> list[float]:
    seconds = []
    for batch in batches:
        start = time.perf_counter()
        call(batch)
        seconds.append(time.perf_counter() - start)
    return seconds


def time_export(translator, sentences: list[str], repeats: int, glossary_file: Path) -> dict:
    """Latency and throughput of the greedy and beam exports of ``translator``'s run and
    of the translator itself; ``beam_export_terms`` is the beam export with the glossary
    of ``glossary_file``."""
    import tensorflow as tf

    glossary = read_glossary(glossary_file)
    singles = [[s] for s in sentences[:repeats]]
    chunks = [sentences[i : i + BATCH] for i in range(0, len(sentences), BATCH)]
    terms_of = {s: [term.target for term in glossary.matches(s)] for s in sentences}

    def terms_matrix(batch: list[str]) -> tf.Tensor:
        width = max(1, *(len(terms_of[s]) for s in batch))
        return tf.constant([terms_of[s] + [""] * (width - len(terms_of[s])) for s in batch])

    results: dict = {
        "sentences": len(sentences),
        "batch64_batches": len(chunks),
        "glossary": glossary.name,
        "sentences_with_terms": sum(map(bool, terms_of.values())),
    }
    run = translator.paths.root
    with tempfile.TemporaryDirectory() as folder:
        for method in ("greedy", "beam"):
            path = Path(folder) / method
            export_saved_model(run, path, method, BEAM_SIZE if method == "beam" else None)
            signatures = tf.saved_model.load(str(path)).signatures
            serve, with_terms = signatures["serving_default"], signatures.get(TERMS_SIGNATURE)
            beam = {"beam_size": BEAM_SIZE} if method == "beam" else {}
            decode = translator.decode_config(method=method, **beam)
            callers = {
                "export": lambda b, serve=serve: serve(sentences=tf.constant(b)),
                "translator": lambda b, decode=decode: translator.translate(b, decode),
            }
            if with_terms is not None:
                callers["export_terms"] = lambda b, with_terms=with_terms: with_terms(
                    sentences=tf.constant(b), terms=terms_matrix(b)
                )
            for name, call in callers.items():
                seconds_per_call(call, singles + chunks)  # warm-up
                latency = np.asarray(seconds_per_call(call, singles)) * 1000.0
                throughput = len(sentences) / sum(seconds_per_call(call, chunks))
                results[f"{method}_{name}"] = {
                    "batch1": {
                        "p50_ms": float(np.percentile(latency, 50)),
                        "p95_ms": float(np.percentile(latency, 95)),
                    },
                    "batch64_sentences_per_s": throughput,
                }
    results["translator_jit_compile"] = translator.searcher.jit_compile
    return results


def export_lines(export: dict) -> list[str]:
    """``time_export``'s result as the bench report's lines."""
    lines = [f"text in, text out on {export['sentences']} test sentences (beam size 5):"]
    for key, d in export.items():
        if not isinstance(d, dict):
            continue
        method, name = key.split("_", 1)
        lines.append(
            f"{method:6s} {name:12s} batch 1 p50 {d['batch1']['p50_ms']:.1f} ms"
            f" p95 {d['batch1']['p95_ms']:.1f} ms; batch 64"
            f" {d['batch64_sentences_per_s']:.0f} sent/s"
        )
    lines.append(
        f"export_terms: translate_with_terms, with the terms of {export['glossary']} in "
        f"{export['sentences_with_terms']} of the sentences"
    )
    return lines
