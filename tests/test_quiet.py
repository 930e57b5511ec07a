"""Start-up noise: the command lines print TensorFlow's and the dependencies' chatter only
with --verbose / SEQ2SEQ_VERBOSE=1, and real warnings always."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import REPO, SAMPLE_PAIRS, SAMPLE_RUN

from seq2seq.cli import quiet


def run_module(*args: str, verbose: bool = False) -> subprocess.CompletedProcess:
    """``python -m ARGS`` as a user runs it: no TF_CPP_MIN_LOG_LEVEL of the test suite's."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL",)}
    env.pop(quiet.VERBOSE_ENV, None)
    if verbose:
        env[quiet.VERBOSE_ENV] = "1"
    env["PYTHONPATH"] = str(REPO)
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )


def noise(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if quiet.NOISE.search(line)]


def test_filtered_stderr_drops_noise_and_keeps_the_rest(capfd):
    with quiet.filtered_stderr():
        os.write(2, b"I0000 00:00:1795941247.036072   10993 port.cc:153] oneDNN custom ops\n")
        os.write(2, b"E0000 00:00:1795941250.066964   10993 cuda_platform.cc:52] cuInit\n")
        os.write(2, b"a real message from C\n")
        print("a real message from Python", file=sys.stderr)
    err = capfd.readouterr().err
    assert "a real message from C" in err and "a real message from Python" in err
    assert "port.cc" not in err and "cuInit" not in err


def test_a_cli_is_quiet_but_keeps_real_warnings():
    """The same start-up with and without --verbose: the noise is there (so the check can
    fail) and goes away, while a Python warning and TensorFlow's Python logger stay."""
    script = (
        "import sys; from seq2seq.cli import quiet; quiet.setup('-v' in sys.argv)\n"
        "import logging, warnings\n"
        "logging.basicConfig(level=logging.INFO)\n"
        "import tensorflow as tf\n"
        "import tensorflow_datasets  # noqa: F401\n"
        "tf.reduce_any(tf.constant([True]))\n"
        "logging.getLogger('absl').info('Load dataset info from /somewhere')\n"
        "warnings.warn('a real warning')\n"
        "tf.get_logger().warning('a TensorFlow warning')\n"
    )
    loud = run_module("-c", script, "-v")
    assert loud.returncode == 0, loud.stderr[-2000:]
    assert noise(loud.stderr) and "Load dataset info" in loud.stderr
    calm = run_module("-c", script)
    assert calm.returncode == 0, calm.stderr[-2000:]
    assert noise(calm.stderr) == []
    assert "Load dataset info" not in calm.stderr
    assert "UserWarning: a real warning" in calm.stderr
    assert "a TensorFlow warning" in calm.stderr


@pytest.mark.slow
def test_train_and_translate_print_no_noise(tmp_path):
    """What a new user sees: training shows its own progress, no TensorFlow start-up
    lines, no absl INFO, no "input ran out of data", no dependency deprecations."""
    run = tmp_path / "run"
    trained = run_module(
        "-m",
        "seq2seq.train",
        "--preset",
        "quickstart",
        "--output",
        str(run),
        *SAMPLE_RUN,
        "train.epochs=2",
        "train.mixed_precision='off'",
    )
    assert trained.returncode == 0, trained.stderr[-2000:]
    translated = run_module("-m", "seq2seq.translate", "--model", str(run), "Hola.")
    assert translated.returncode == 0, translated.stderr[-2000:]
    for done in (trained, translated):
        assert noise(done.stderr) == []
        for unwanted in ("INFO absl", "ran out of data", "Warning", "site-packages"):
            assert unwanted not in done.stderr
    assert f"corpus file {SAMPLE_PAIRS}: train " in trained.stderr  # the toolkit's own report
    assert translated.stdout.count("\n") == 1  # one line per input (empty: barely trained)
