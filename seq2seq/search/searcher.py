"""``Searcher``: the compiled search programs of one model, and how a job runs them.

The loops themselves (greedy, beam, sampling, the logit processors) are in
``seq2seq.search.loops``; this module decides how they run (eagerly, as a graph or
XLA-compiled: ``plan_searches``), pads batches to few shapes, builds programs in the
background and streams greedy/sampling in chunks (``Searcher.stream``).
"""

from __future__ import annotations

import atexit
import functools
import logging
import queue
import secrets
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from seq2seq.config import DecodeConfig
from seq2seq.constants import PAD, UNK
from seq2seq.search.constrained import constrained_beam_loop
from seq2seq.search.loops import (
    Processors,
    SearchResult,
    beam_loop,
    greedy_loop,
    make_sampler,
    pick_greedy,
    sample_loop,
    token_start,
    token_steps,
)

log = logging.getLogger(__name__)

# Searchers whose builder thread exists; at exit each finishes its running build first.
_BUILDING: weakref.WeakSet = weakref.WeakSet()
EXIT_WAIT_S = 120.0


# ---------------------------------------------------------------------------------------
# Public entry point


def _scalar(dtype):
    return tf.TensorSpec([], dtype)


SOURCE_WIDTH_STEP = 8
DEFAULT = DecodeConfig()  # the defaults of the methods' settings, written once there
STREAM_CHUNK_STEPS = 4  # decoder steps per streamed chunk: a few tokens at a time
STREAMABLE = ("greedy", "sample")


def compiled_shape(rows: int, width: int) -> tuple[int, int]:
    """The (rows, width) a source batch is padded to before an XLA-compiled search.

    XLA compiles once per input shape, so shapes are rounded: rows up to a power of two
    (a multiple of 64 beyond 64), width up to a multiple of ``SOURCE_WIDTH_STEP``. A
    translator then meets a handful of shapes (batch 1..64 x source lengths / 8).
    """
    padded_rows = 1 << (rows - 1).bit_length() if rows <= 64 else -(-rows // 64) * 64
    padded_width = -(-width // SOURCE_WIDTH_STEP) * SOURCE_WIDTH_STEP
    return padded_rows, padded_width


def pad_source(source: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Right-pad a [B,S] id batch with PAD rows and columns; all-PAD rows end at once."""
    padded = np.full(shape, PAD, dtype=np.int32)
    padded[: source.shape[0], : source.shape[1]] = source
    return padded


# A job of this many sentences or fewer runs op by op rather than build a program: eager
# decodes ~40-50 sentences/s, building the graph costs 2-5 s (quickstart-size model, 2-core
# CPU under load; see "First translation" in docs/benchmarks.md).
EAGER_MAX_SENTENCES = 128
# XLA's compilations (2-5 s per padded shape, 7-20 s for a whole run's shapes) buy 1.2-1.3x
# the plain graph's batch throughput on a CPU: repaid after about 50,000 sentences.
XLA_MIN_SENTENCES = 50_000


@dataclass(frozen=True)
class SearchPlan:
    """How a job's searches run: ``Searcher(model, **asdict(plan))``."""

    jit_compile: bool
    eager_until_built: bool


def plan_searches(sentences: int | None, jit_compile: bool | None = None) -> SearchPlan:
    """The fastest way through a job of ``sentences`` inputs (None: a stream of unknown
    length): op by op for a few, a plain graph for more, XLA for very many.

    ``jit_compile`` forces XLA on (True) or off (False); None decides by the job's size.
    """
    small = sentences is not None and sentences <= EAGER_MAX_SENTENCES
    if jit_compile is None:
        jit_compile = sentences is not None and sentences >= XLA_MIN_SENTENCES
    return SearchPlan(jit_compile=jit_compile, eager_until_built=small and not jit_compile)


def pad_rows(values: tf.Tensor, rows: int) -> tf.Tensor:
    """``values`` [B, ...] with PAD rows appended up to ``rows``."""
    missing = rows - int(values.shape[0])
    if missing <= 0:
        return values
    return tf.concat([values, tf.fill([missing, *values.shape[1:]], PAD)], axis=0)


def search_runs_on_cpu() -> bool:
    return not tf.config.list_physical_devices("GPU")


SEARCHES = ("greedy", "beam", "sample")


class Searcher:
    """Holds the search programs of one model, each traced once per input signature.

    With ``jit_compile`` (the default) each search loop is XLA-compiled: one fused
    program per step instead of ~40 TensorFlow ops, about twice as fast on CPU and the
    usual win on a GPU. XLA compiles once per padded input shape (``compiled_shape``)
    and per value of the shape-setting arguments (``max_length``, beam size, n); the
    first search of a new shape pays a compilation of 1-3 s. On a CPU the encoder joins
    the compiled program; on a GPU it stays outside, where its recurrent layers run as
    cuDNN kernels (which XLA cannot compile). Without ``jit_compile`` a search is a plain
    ``tf.function`` graph with dynamic shapes: traced once (1-3 s on a CPU), whatever
    the input shape or settings.

    Building a program is worth it for batch jobs; a person waiting for one sentence is
    better served at once. With ``eager_until_built`` a search whose program is not built
    yet runs the same loop op by op (eager: no start-up cost, ~10-30 ms a step on a CPU)
    instead of building it; ``warm_up`` builds programs in a background thread, and each
    search switches to its program once that is ready.
    """

    def __init__(self, model, jit_compile: bool = True, eager_until_built: bool = False):
        self.model = model
        self.jit_compile = jit_compile
        self.eager_until_built = eager_until_built
        self._built: set[tuple] = set()  # program keys (``_key``) built so far
        self._local = threading.local()
        self._jobs: queue.SimpleQueue | None = None  # builds for the builder thread
        self._pending = 0  # builds queued or running
        self._active = 0  # eager searches running
        self._queued: set[tuple] = set()  # program keys whose build was queued
        self._idle = threading.Condition()
        fuse_encoder = jit_compile and search_runs_on_cpu()
        loop_jit = jit_compile and not fuse_encoder
        source_spec = tf.TensorSpec([None, None], tf.int32)
        common = [_scalar(tf.int32), _scalar(tf.int32), _scalar(tf.float32), _scalar(tf.int32)]

        def compile_search(loop, extra_specs):
            """(program, eager) for source, max_length, min_length, penalty, ngram, *extra.

            Every loop takes ``(model, encoded, max_length, settings, *extra)``.
            """

            def run_loop(encoded, max_length, min_length, penalty, ngram, *extra):
                settings = Processors(min_length, penalty, ngram)
                return loop(model, encoded, max_length, settings, *extra)

            # autograph=False: the loops use tf.while_loop/tf.cond themselves, and skipping
            # autograph's source conversion halves the time a first trace takes.
            compiled_loop = (
                tf.function(run_loop, jit_compile=True, autograph=False) if loop_jit else run_loop
            )

            def encode_and_search(source, *args):
                return compiled_loop(model.encode(source), *args)

            def eager(source, *args):
                return run_loop(model.encode(source), *args)

            # A partial, not the function: TensorFlow's retracing warning counts traces
            # per code object, and every searcher's programs share this code (each one
            # traces once; several translators are not retracing).
            program = tf.function(
                functools.partial(encode_and_search),
                input_signature=[source_spec, *common, *extra_specs],
                jit_compile=fuse_encoder or None,
                autograph=False,
            )
            return program, eager

        self._searches = {
            "greedy": compile_search(greedy_loop, []),
            "beam": compile_search(
                beam_loop, [_scalar(tf.int32), _scalar(tf.int32), _scalar(tf.float32)]
            ),
            # beam search with each input's constraints [B, C, L] (seq2seq.search.constrained)
            "constrained": compile_search(
                constrained_beam_loop,
                [
                    _scalar(tf.int32),
                    _scalar(tf.int32),
                    _scalar(tf.float32),
                    tf.TensorSpec([None, None, None], tf.int32),
                    tf.TensorSpec([None], tf.bool),
                ],
            ),
            "sample": compile_search(
                sample_loop,
                [
                    _scalar(tf.int32),
                    _scalar(tf.float32),
                    _scalar(tf.int32),
                    _scalar(tf.float32),
                    _scalar(tf.int64),
                ],
            ),
        }

        # The stream: the same start and loop as greedy/sampling, as two programs (encode and
        # start; run up to a given step) so the state can leave between chunks.
        def stream_start(source, max_length):
            return token_start(model, model.encode(source), 1, max_length)

        def compile_steps(make_pick):
            def run_steps(memory, mask, state, stop, max_length, min_length, penalty, ngram, *pick):
                settings = Processors(min_length, penalty, ngram)
                return token_steps(
                    model, memory, mask, state, stop, max_length, settings, make_pick(*pick)
                )

            # reduce_retracing: without XLA one graph serves every source length
            return tf.function(run_steps, jit_compile=jit_compile or None, reduce_retracing=True)

        self._stream_start = tf.function(
            stream_start, jit_compile=fuse_encoder or None, reduce_retracing=True
        )
        self._stream_steps = {
            "greedy": compile_steps(lambda: pick_greedy),
            "sample": compile_steps(lambda n, *sampler: make_sampler(*sampler)),
        }

    def _key(self, method: str, shape: tuple[int, int], max_length: int, sizes: tuple) -> tuple:
        """What one program serves: a graph serves every call of its search; an XLA
        program one padded shape and one value of each shape-setting argument."""
        if not self.jit_compile:
            return (method,)
        return (method, compiled_shape(*shape), max_length, *sizes)

    def built(self, method: str) -> bool:
        """Whether ``method``'s program has run at least once (for some shape, with XLA)."""
        return any(key[0] == method for key in self._built)

    def _run(self, method: str, source: np.ndarray, common: tuple, extra: tuple, sizes=()):
        """One search: its program (building it first unless ``eager_until_built``), or
        the same loop op by op while that program is not built yet (after ``warm_up``,
        the builder thread then builds it for the next call)."""
        key = self._key(method, source.shape, int(common[0]), sizes)
        building = getattr(self._local, "building", False)  # the builder thread builds
        if not self.eager_until_built or key in self._built or building:
            return self._build(method, key, source, common, extra)
        with self._idle:
            queue_it = self._jobs is not None and key not in self._queued
            if queue_it:
                self._queued.add(key)
        if queue_it:
            self._submit(functools.partial(self._build, method, key, source, common, extra))
        _, eager = self._searches[method]
        with self._idle:
            self._active += 1
        try:
            return eager(tf.constant(source), *common, *extra)
        finally:
            with self._idle:
                self._active -= 1
                self._idle.notify_all()

    def _build(self, method: str, key: tuple, source: np.ndarray, common: tuple, extra: tuple):
        """Run ``method``'s program (tracing or compiling it the first time) and mark it built."""
        program, _ = self._searches[method]
        if self.jit_compile:
            source = pad_source(source, compiled_shape(*source.shape))
            # the constraints [B, C, L] get the padding rows too
            extra = tuple(pad_rows(x, source.shape[0]) if x.shape.rank == 3 else x for x in extra)
        found = program(tf.constant(source), *common, *extra)
        self._built.add(key)
        return found

    def warm_up(
        self, methods: tuple[str, ...] = ("greedy",), max_length: int = DEFAULT.max_length
    ) -> None:
        """Build the ``methods``' programs in a background builder thread, one after the
        other (on a one-word source; with XLA, for that shape and ``max_length`` only).

        With ``eager_until_built`` the searches run eagerly meanwhile, so a caller never
        waits for a build, and from now on a search without a program queues its build
        on first use: an app calls this once its model is loaded.
        """
        source = np.full((1, 1), UNK, np.int32)
        for method in methods:
            search = getattr(self, method, None)
            if method not in self._searches or search is None:
                raise ValueError(f"no search called {method!r}; allowed: {', '.join(SEARCHES)}")
            self._submit(functools.partial(search, source, max_length=max_length))

    def _submit(self, job) -> None:
        with self._idle:
            if self._jobs is None:
                self._jobs = queue.SimpleQueue()
                threading.Thread(target=self._builder, name="searcher-builder", daemon=True).start()
                _BUILDING.add(self)
            self._pending += 1
        self._jobs.put(job)

    def stop_building(self, timeout: float | None = None) -> bool:
        """Drop the builds not started yet and wait for the running one (False on timeout).

        Called at interpreter exit: a daemon thread still inside TensorFlow's C++ when
        Python finalises aborts the process ("terminate called ..."), after all work is done.
        """
        if self._jobs is None:
            return True
        while True:
            try:
                self._jobs.get_nowait()
            except queue.Empty:
                break
            with self._idle:
                self._pending -= 1
                self._idle.notify_all()
        return self.wait_until_built(timeout)

    def _builder(self) -> None:
        """The builder thread: runs queued builds in order, for ever (a daemon)."""
        self._local.building = True
        while True:
            job = self._jobs.get()
            with self._idle:  # a waiting person comes first: start no build during a search
                self._idle.wait_for(lambda: self._active == 0)
            try:
                job()
            except Exception:  # a failed build only leaves that search eager
                log.exception("building a search program failed; that search stays eager")
            finally:
                with self._idle:
                    self._pending -= 1
                    self._idle.notify_all()

    def wait_until_built(self, timeout: float | None = None) -> bool:
        """Wait until every queued build has finished; False if ``timeout`` came first."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def _common(self, source, max_length, min_length, repetition_penalty, no_repeat_ngram_size):
        """The validated source array and the shared tensor arguments."""
        if max_length < 1:
            raise ValueError(f"max_length is {max_length}; allowed: >= 1")
        if not 0 <= min_length < max_length:
            raise ValueError(f"min_length is {min_length}; allowed: 0 <= min_length < max_length")
        if repetition_penalty < 1.0:
            raise ValueError(f"repetition_penalty is {repetition_penalty}; allowed: >= 1")
        if no_repeat_ngram_size < 0:
            raise ValueError(f"no_repeat_ngram_size is {no_repeat_ngram_size}; allowed: >= 0")
        source = np.asarray(source, dtype=np.int32)
        if source.ndim != 2 or source.shape[0] == 0 or source.shape[1] == 0:
            raise ValueError(
                f"source must be a non-empty [batch, length] array, got {source.shape}"
            )
        return source, (
            tf.constant(max_length, tf.int32),
            tf.constant(min_length, tf.int32),
            tf.constant(repetition_penalty, tf.float32),
            tf.constant(no_repeat_ngram_size, tf.int32),
        )

    @staticmethod
    def _result(ids, scores, attention, steps, source: np.ndarray, n_axis=False) -> SearchResult:
        """Cut the buffers to the steps run and drop what padding the source added.

        ``n_axis`` inserts the n-best axis (greedy returns one hypothesis per row); it is
        done in NumPy, as eager TensorFlow ops would cost more than the search at batch 1.
        """
        ids, scores, attention = ids.numpy(), scores.numpy(), attention.numpy()
        if n_axis:
            ids, scores, attention = ids[:, None], scores[:, None], attention[:, None]
        rows, width = np.shape(source)
        steps = int(steps)
        return SearchResult(
            ids[:rows, :, :steps], scores[:rows], attention[:rows, :, :steps, :width]
        )

    def greedy(
        self,
        source: np.ndarray,
        max_length: int,
        min_length: int = DEFAULT.min_length,
        repetition_penalty: float = DEFAULT.repetition_penalty,
        no_repeat_ngram_size: int = DEFAULT.no_repeat_ngram_size,
    ) -> SearchResult:
        """Most likely token each step; n-best of 1."""
        source, common = self._common(
            source, max_length, min_length, repetition_penalty, no_repeat_ngram_size
        )
        ids, scores, attention, steps = self._run("greedy", source, common, ())
        return self._result(ids, scores, attention, steps, source, n_axis=True)

    def beam(
        self,
        source: np.ndarray,
        beam_size: int = DEFAULT.beam_size,
        n_best: int = DEFAULT.n_best,
        length_penalty: float = DEFAULT.length_penalty,
        max_length: int = DEFAULT.max_length,
        min_length: int = DEFAULT.min_length,
        repetition_penalty: float = DEFAULT.repetition_penalty,
        no_repeat_ngram_size: int = DEFAULT.no_repeat_ngram_size,
        constraints: np.ndarray | None = None,
        glue: np.ndarray | None = None,
    ) -> SearchResult:
        """Beam search; the top ``n_best`` of ``beam_size`` hypotheses, best first.

        ``constraints`` [B, C, L] (``seq2seq.search.constrained.pack_constraints``): token-id
        sequences each input's output must contain (lexically constrained decoding); an
        input without any decodes exactly as without ``constraints``. ``glue`` [V] bool:
        the pieces banned right after a constraint, as they would continue its last word
        (``seq2seq.inference.glossary.word_continuations``; default: none).
        """
        if beam_size < 1:
            raise ValueError(f"beam_size is {beam_size}; allowed: >= 1")
        if not 1 <= n_best <= beam_size:
            raise ValueError(f"n_best is {n_best}; allowed: 1 <= n_best <= beam_size")
        if length_penalty < 0:
            raise ValueError(f"length_penalty is {length_penalty}; allowed: >= 0")
        source, common = self._common(
            source, max_length, min_length, repetition_penalty, no_repeat_ngram_size
        )
        extra = (
            tf.constant(beam_size, tf.int32),
            tf.constant(n_best, tf.int32),
            tf.constant(length_penalty, tf.float32),
        )
        if constraints is not None:
            constraints = np.asarray(constraints, dtype=np.int32)
            if constraints.ndim != 3 or constraints.shape[0] != source.shape[0]:
                raise ValueError(
                    f"constraints must be a [{source.shape[0]}, count, length] array, got "
                    f"{constraints.shape}"
                )
        if constraints is not None and constraints.any():
            if glue is None:
                glue = np.zeros(self.model.target_vocab_size, bool)
            extra = (*extra, tf.constant(constraints), tf.constant(np.asarray(glue, bool)))
            sizes = (beam_size, n_best, *constraints.shape[1:])
            found = self._run("constrained", source, common, extra, sizes=sizes)
            return self._result(*found, source)
        found = self._run("beam", source, common, extra, sizes=(beam_size, n_best))
        return self._result(*found, source)

    def sample(
        self,
        source: np.ndarray,
        n: int = DEFAULT.n_best,
        temperature: float = DEFAULT.temperature,
        top_k: int = DEFAULT.top_k,
        top_p: float = DEFAULT.top_p,
        seed: int | None = DEFAULT.seed,
        max_length: int = DEFAULT.max_length,
        min_length: int = DEFAULT.min_length,
        repetition_penalty: float = DEFAULT.repetition_penalty,
        no_repeat_ngram_size: int = DEFAULT.no_repeat_ngram_size,
    ) -> SearchResult:
        """``n`` independent samples per input, sorted by score.

        The same ``seed`` with the same batch gives the same samples; ``seed=None`` draws a
        fresh one. ``top_k = 0`` and ``top_p = 1`` turn those filters off.
        """
        source, common = self._common(
            source, max_length, min_length, repetition_penalty, no_repeat_ngram_size
        )
        extra = self._sampling(n, temperature, top_k, top_p, seed)
        found = self._run("sample", source, common, extra, sizes=(n,))
        return self._result(*found, source)

    @staticmethod
    def _sampling(n, temperature, top_k, top_p, seed) -> tuple[tf.Tensor, ...]:
        """Validated sampler settings as tensors; ``seed=None`` draws a fresh seed."""
        if n < 1:
            raise ValueError(f"n is {n}; allowed: >= 1")
        if temperature <= 0:
            raise ValueError(f"temperature is {temperature}; allowed: > 0")
        if top_k < 0:
            raise ValueError(f"top_k is {top_k}; allowed: >= 0 (0 turns it off)")
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p is {top_p}; allowed: 0 < top_p <= 1")
        if seed is None:
            seed = secrets.randbits(62)
        return (
            tf.constant(n, tf.int32),
            tf.constant(temperature, tf.float32),
            tf.constant(top_k, tf.int32),
            tf.constant(top_p, tf.float32),
            tf.constant(int(seed) % (2**63), tf.int64),
        )

    def stream(
        self, source: np.ndarray, decode: DecodeConfig, chunk_steps: int = STREAM_CHUNK_STEPS
    ) -> Iterator[SearchResult]:
        """Greedy search or one sample per input, ``chunk_steps`` decoder steps at a time.

        Yields the hypotheses so far after every chunk (a ``SearchResult`` whose ``T``
        grows by up to ``chunk_steps``); the last equals ``search(source, decode)`` for the
        same seed. Each chunk is one call of the compiled loop of the one-shot search
        (``token_steps``), the decoder state carried from call to call, so closing the
        generator stops decoding within one chunk. Beam search cannot stream (its best
        hypothesis is known only at the end): ``ValueError``.
        """
        if decode.method not in STREAMABLE:
            raise ValueError(
                f"{decode.method} search cannot stream; allowed: {', '.join(STREAMABLE)}"
            )
        if decode.method == "sample" and decode.n_best != 1:
            raise ValueError(f"a stream gives one sample per input, not n_best={decode.n_best}")
        if chunk_steps < 1:
            raise ValueError(f"chunk_steps is {chunk_steps}; allowed: >= 1")
        pick: tuple[tf.Tensor, ...] = ()
        if decode.method == "sample":
            pick = self._sampling(1, decode.temperature, decode.top_k, decode.top_p, decode.seed)
        source, (max_length, *settings) = self._common(
            source,
            decode.max_length,
            decode.min_length,
            decode.repetition_penalty,
            decode.no_repeat_ngram_size,
        )
        padded = pad_source(source, compiled_shape(*source.shape)) if self.jit_compile else source
        memory, mask, state = self._stream_start(tf.constant(padded), max_length)
        run_steps = self._stream_steps[decode.method]
        limit = decode.max_length
        while True:
            stop = tf.constant(min(int(state[0]) + chunk_steps, limit), tf.int32)
            state = run_steps(memory, mask, state, stop, max_length, *settings, *pick)
            steps, _, finished, _, scores, history, weights, _ = state
            yield self._result(history, scores, weights, steps, source, n_axis=True)
            if int(steps) >= limit or bool(np.all(finished.numpy())):
                return

    def search(
        self,
        source: np.ndarray,
        decode: DecodeConfig,
        constraints: np.ndarray | None = None,
        glue: np.ndarray | None = None,
    ) -> SearchResult:
        """Dispatch on ``decode.method`` (a ``DecodeConfig``); greedy returns one hypothesis.
        ``constraints`` (see ``beam``) need beam search: ``ValueError`` for the others."""
        if constraints is not None and decode.method != "beam" and np.any(constraints):
            raise ValueError(
                f"constraints (a glossary) need beam search, not {decode.method}; "
                "use --method beam (or --beam N)"
            )
        common = dict(
            max_length=decode.max_length,
            min_length=decode.min_length,
            repetition_penalty=decode.repetition_penalty,
            no_repeat_ngram_size=decode.no_repeat_ngram_size,
        )
        if decode.method == "greedy":
            return self.greedy(source, **common)
        if decode.method == "beam":
            return self.beam(
                source,
                beam_size=decode.beam_size,
                n_best=decode.n_best,
                length_penalty=decode.length_penalty,
                constraints=constraints,
                glue=glue,
                **common,
            )
        if decode.method == "sample":
            return self.sample(
                source,
                n=decode.n_best,
                temperature=decode.temperature,
                top_k=decode.top_k,
                top_p=decode.top_p,
                seed=decode.seed,
                **common,
            )
        raise ValueError(f"decode.method is {decode.method!r}; allowed: greedy, beam, sample")


@atexit.register
def _finish_builds_at_exit() -> None:
    for searcher in list(_BUILDING):
        searcher.stop_building(EXIT_WAIT_S)
