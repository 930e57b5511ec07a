"""No compile stalls: eager searches until a program is built, background warm-up, and the
choice of eager / graph / XLA by a job's size (``plan_searches``) in the CLIs and the app."""

from __future__ import annotations

import numpy as np
import pytest

from seq2seq.search.searcher import (
    EAGER_MAX_SENTENCES,
    XLA_MIN_SENTENCES,
    Searcher,
    SearchPlan,
    plan_searches,
)

METHODS = {
    "greedy": lambda s, src: s.greedy(src, max_length=12, repetition_penalty=1.3),
    "beam": lambda s, src: s.beam(src, beam_size=3, n_best=2, max_length=12),
    "sample": lambda s, src: s.sample(src, n=2, seed=5, max_length=12, no_repeat_ngram_size=2),
}


def traces(searcher: Searcher, method: str) -> int:
    """How many times ``method``'s program was traced (0: never built)."""
    return searcher._searches[method][0].experimental_get_tracing_count()


@pytest.fixture(scope="module")
def source(tiny_run) -> np.ndarray:
    from seq2seq.data.tokenizers import load_tokenizer
    from seq2seq.inference.prediction import pad_batch

    tokenizer = load_tokenizer(tiny_run / "source_vocab")
    return pad_batch(tokenizer.encode_batch(["one two three .", "nine .", "five six seven ."]))


@pytest.mark.parametrize(
    ("sentences", "forced", "expected"),
    [
        (1, None, SearchPlan(jit_compile=False, eager_until_built=True)),
        (EAGER_MAX_SENTENCES, None, SearchPlan(False, True)),
        (EAGER_MAX_SENTENCES + 1, None, SearchPlan(False, False)),
        (None, None, SearchPlan(False, False)),  # a long stream of unknown length
        (XLA_MIN_SENTENCES, None, SearchPlan(True, False)),
        (3, True, SearchPlan(True, False)),  # --jit: compile even for a few
        (XLA_MIN_SENTENCES, False, SearchPlan(False, False)),  # --no-jit
        (3, False, SearchPlan(False, True)),
    ],
)
def test_plan_by_job_size(sentences, forced, expected):
    assert plan_searches(sentences, forced) == expected


@pytest.mark.parametrize("method", METHODS)
def test_eager_searches_equal_the_graph_and_build_nothing(method, tiny_translator, source):
    """Op by op, the same loop finds the same hypotheses, scores and attention as its
    graph (sampling too: both draw from the same stateless generator)."""
    model = tiny_translator.model
    eager = Searcher(model, jit_compile=False, eager_until_built=True)
    graph = Searcher(model, jit_compile=False)
    found, expected = METHODS[method](eager, source), METHODS[method](graph, source)
    np.testing.assert_array_equal(found.ids, expected.ids)
    np.testing.assert_allclose(found.scores, expected.scores, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(found.attention, expected.attention, atol=1e-5)
    assert traces(eager, method) == 0 and not eager.built(method)
    assert traces(graph, method) == 1 and graph.built(method)


def test_warm_up_builds_in_the_background_and_searches_switch(tiny_translator, source):
    searcher = Searcher(tiny_translator.model, jit_compile=False, eager_until_built=True)
    before = METHODS["greedy"](searcher, source)
    METHODS["beam"](searcher, source)  # before warm_up: eager, and nothing is queued
    searcher.warm_up(("greedy",))
    assert searcher.wait_until_built(timeout=600)
    assert searcher.built("greedy") and traces(searcher, "greedy") == 1
    assert not searcher.built("beam") and traces(searcher, "beam") == 0
    after = METHODS["greedy"](searcher, source)  # now the program: traced once, still
    assert traces(searcher, "greedy") == 1
    np.testing.assert_array_equal(after.ids, before.ids)
    # After warm_up, a search without a program runs eagerly and queues its build.
    eager_beam = METHODS["beam"](searcher, source)
    assert searcher.wait_until_built(timeout=600) and searcher.built("beam")
    np.testing.assert_array_equal(METHODS["beam"](searcher, source).ids, eager_beam.ids)
    assert traces(searcher, "beam") == 1


def test_an_xla_program_serves_only_its_shape(tiny_translator, source):
    """With XLA a program is one padded shape and max_length: the warm-up's (1 row, width
    8, 12 steps) is used for a short sentence, a batch of 3 still runs op by op."""
    searcher = Searcher(tiny_translator.model, jit_compile=True, eager_until_built=True)
    searcher.warm_up(("greedy",), max_length=12)
    assert searcher.wait_until_built(timeout=600) and searcher.built("greedy")
    single = searcher.greedy(source[:1], max_length=12)
    batch = searcher.greedy(source, max_length=12)
    assert searcher._built == {("greedy", (1, 8), 12)}
    np.testing.assert_array_equal(batch.ids[:1, :, : single.ids.shape[2]], single.ids)


def test_a_failed_build_leaves_the_search_eager(tiny_translator, source, caplog):
    searcher = Searcher(tiny_translator.model, jit_compile=False, eager_until_built=True)
    with pytest.raises(ValueError, match="no search called 'nbest'"):
        searcher.warm_up(("nbest",))

    def broken(*args):
        raise RuntimeError("out of memory")

    searcher._searches["greedy"] = (broken, searcher._searches["greedy"][1])
    searcher.warm_up(("greedy",))
    assert searcher.wait_until_built(timeout=600)
    assert "building a search program failed" in caplog.text
    assert not searcher.built("greedy")
    assert METHODS["greedy"](searcher, source).ids.shape[0] == 3


@pytest.fixture
def plans(monkeypatch):
    """The search plan every ``Translator.from_run`` of the test was given."""
    from seq2seq.inference.translator import Translator

    seen: list[SearchPlan] = []
    load = Translator.from_run.__func__

    def recording(cls, run_dir, *args, jit_compile=None, eager_until_built=False, **kwargs):
        seen.append(SearchPlan(bool(jit_compile), eager_until_built))
        return load(cls, run_dir, *args, jit_compile=jit_compile, **kwargs)

    monkeypatch.setattr(Translator, "from_run", classmethod(recording))
    return seen


def test_translate_cli_picks_the_plan_by_job_size(tiny_run, tmp_path, plans, capsys):
    from seq2seq.translate import main

    assert main(["--model", str(tiny_run), "One two .", "Nine ."]) == 0
    assert capsys.readouterr().out.count("\n") == 2
    many = tmp_path / "many.txt"
    many.write_text("one two .\n" * (EAGER_MAX_SENTENCES + 1), encoding="utf-8")
    assert main(["--model", str(tiny_run), "--input", str(many)]) == 0
    assert capsys.readouterr().out.count("\n") == EAGER_MAX_SENTENCES + 1
    assert main(["--model", str(tiny_run), "--jit", "Nine ."]) == 0
    assert main(["--model", str(tiny_run), "--no-jit", "--input", str(many)]) == 0
    assert plans == [
        SearchPlan(False, True),
        SearchPlan(False, False),
        SearchPlan(True, False),
        SearchPlan(False, False),
    ]


def test_translate_cli_reads_a_short_pipe_before_choosing(tiny_run, plans, monkeypatch, capsys):
    """`echo ... | translate`: the first chunk of standard input ends the stream, so the
    job is known to be small and runs op by op."""
    import io
    import sys

    from seq2seq.translate import main

    stdin = io.TextIOWrapper(io.BytesIO(b"one two .\nnine .\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["--model", str(tiny_run)]) == 0
    assert capsys.readouterr().out.count("\n") == 2
    assert plans == [SearchPlan(False, True)]


def test_translate_cli_refuses_jit_and_no_jit_together(tiny_run, capsys):
    from seq2seq.translate import main

    with pytest.raises(SystemExit) as raised:
        main(["--model", str(tiny_run), "--jit", "--no-jit", "Nine ."])
    assert raised.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_app_translators_start_eager_and_build_in_the_background(tiny_models):
    """The app's searches never wait for a build: a plain graph (no XLA), eager until the
    warm-up started at load has built it; the preload loads the run before any request."""
    from apps.registry import Registry

    registry = Registry(tiny_models)
    run = registry.resolve("tiny", "translation")
    assert not registry.wait_for_first(0)
    registry.preload([run]).join(timeout=600)  # a model picked in a tab: not start-up
    assert not registry.wait_for_first(0)
    registry.preload_at_start([run]).join(timeout=600)
    assert registry.wait_for_first(0)
    translator = registry.translator(run)
    searcher = translator.searcher
    assert searcher.eager_until_built and not searcher.jit_compile
    assert searcher.built("greedy") and not searcher.built("beam")
    assert translator.translate_one(
        "one two .", translator.decode_config(method="beam")
    ).text  # eager; queues beam
    assert searcher.wait_until_built(timeout=600) and searcher.built("beam")


def test_exit_during_a_background_build_waits_for_it_and_exits_cleanly(tiny_run):
    """Before, a process that ended while the builder thread was inside TensorFlow aborted
    ("terminate called ...", exit 134) after its work was done."""
    import subprocess
    import sys

    script = (
        "import sys\n"
        "from seq2seq.inference.translator import Translator\n"
        "from seq2seq.search.searcher import Searcher\n"
        "model = Translator.from_run(sys.argv[1]).model\n"
        "searcher = Searcher(model, jit_compile=True, eager_until_built=True)\n"
        "searcher.warm_up(('greedy', 'beam', 'sample'))\n"
        "print('queued', flush=True)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tiny_run)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "queued" in done.stdout
    assert "terminate called" not in done.stderr


def test_stop_building_drops_queued_builds(tiny_translator, source):
    searcher = Searcher(tiny_translator.model, jit_compile=False, eager_until_built=True)
    with searcher._idle:  # hold the builder back while builds queue up
        searcher._active += 1
    searcher.warm_up(("greedy", "beam", "sample"))
    with searcher._idle:
        searcher._active -= 1
        searcher._idle.notify_all()
    assert searcher.stop_building(timeout=600)
    assert sum(searcher.built(method) for method in METHODS) <= 1  # at most the one running
