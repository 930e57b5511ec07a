"""Multi-worker training on one machine: two local workers over 127.0.0.1 (CPU, RING).

These start real worker processes through ``python -m seq2seq.train --local-workers 2``.
Every wait is bounded; nothing depends on timing luck (kills wait for a file or a log line).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import _tiny_pairs

from seq2seq.training.cluster import ClusterError, parse_tf_config

pytestmark = pytest.mark.slow

CONFIG = {
    "name": "tiny",
    "data": {
        "corpus": "tsv",
        "tokenizer": "word",
        "source_vocab_size": 64,
        "target_vocab_size": 64,
        "max_source_length": 12,
        "max_target_length": 12,
        "lowercase": True,
    },
    "model": {"embedding_dim": 32, "hidden_size": 32, "dropout": 0.0},
    "train": {
        "epochs": 1,
        "steps_per_epoch": 3,
        "learning_rate": 0.01,
        "batch_size": 16,
        "clipnorm": 0.1,
        "dev_bleu_sentences": 16,
        "mixed_precision": "off",
        "lr_schedule": "constant",
        "worker_timeout": 60,
    },
    "decode": {"max_length": 16},
}

# The fault tests need no dev BLEU: skipping it saves compiling the chief's greedy search.
NO_DEV_BLEU = {"select_best_by": "loss", "dev_bleu_sentences": 0}


def write_config(folder: Path, **train) -> Path:
    pairs = folder / "pairs.tsv"
    pairs.write_text("".join(f"{s}\t{t}\n" for s, t in _tiny_pairs()), encoding="utf-8")
    config = json.loads(json.dumps(CONFIG))
    config["data"]["path"] = str(pairs)
    config["train"].update(train)
    path = folder / "tiny.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return path


def environment(tmp_path: Path) -> dict:
    temporary = tmp_path / "tmp"
    temporary.mkdir(exist_ok=True)
    repo = str(Path(__file__).resolve().parents[1])
    return dict(
        os.environ,
        TMPDIR=str(temporary),
        PYTHONPATH=os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")]),
    )


def launch(args: list[str], env: dict, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "seq2seq.train", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        **kwargs,
    )


def worker_pids(process: subprocess.Popen, count: int, timeout: float = 120) -> list[int]:
    """Read the launcher's "started worker i (pid P)" lines."""
    pids, deadline = [], time.monotonic() + timeout
    while len(pids) < count and time.monotonic() < deadline:
        line = process.stdout.readline()
        if line.startswith("started worker"):
            pids.append(int(line.rsplit("pid ", 1)[1].rstrip(")\n")))
    assert len(pids) == count, "the launcher did not start its workers"
    return pids


def wait_for(path: Path, process: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"training ended before {path.name} appeared"
        assert time.monotonic() < deadline, f"{path} did not appear within {timeout} s"
        time.sleep(0.2)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def concatenated(first, second):
    """One batch holding both workers' batches, padded to the wider of each part."""

    def join(a, b):
        a, b = a.numpy(), b.numpy()
        width = max(a.shape[1], b.shape[1])
        pad = [np.pad(x, ((0, 0), (0, width - x.shape[1]))) for x in (a, b)]
        return np.concatenate(pad, axis=0)

    (source_a, target_in_a), target_out_a = first
    (source_b, target_in_b), target_out_b = second
    inputs = (join(source_a, source_b), join(target_in_a, target_in_b))
    return inputs, join(target_out_a, target_out_b)


def reference_trainer(run: Path):
    """One replica, same seed, same tokenizers as the run: the single-process reference."""
    import tensorflow as tf

    from seq2seq.config import load_run_config
    from seq2seq.runs import RunPaths
    from seq2seq.training.data import prepare_data
    from seq2seq.training.loop import build_trainer

    config = load_run_config(run / "config.yaml")
    prepared = prepare_data(config, RunPaths(run))
    vocab_sizes = (prepared.source_tokenizer.vocab_size, prepared.target_tokenizer.vocab_size)
    trainer = build_trainer(
        config, tf.distribute.get_strategy(), "float32", vocab_sizes, prepared.target_counts
    )
    return trainer, config, prepared


def single_process_weights(run: Path, steps: int) -> tuple[list, list[float], list]:
    """Train in this process on the two workers' batches concatenated; also returns the
    initial weights."""
    import tensorflow as tf

    from seq2seq.training.data import Schedule, dataset_function

    trainer, config, prepared = reference_trainer(run)
    initial = [w.numpy() for w in trainer.model.weights]
    make = dataset_function(config, prepared, 0, Schedule(config.train.steps_per_epoch, True))
    shards = [
        iter(make(tf.distribute.InputContext(num_input_pipelines=2, input_pipeline_id=i)))
        for i in (0, 1)
    ]
    norms = []
    for _ in range(steps):
        _, _, norm = trainer.step(concatenated(next(shards[0]), next(shards[1])))
        norms.append(float(norm))
    return [w.numpy() for w in trainer.model.weights], norms, initial


def test_two_local_workers_train_like_one_process_with_the_global_batch(tmp_path):
    config = write_config(tmp_path)
    run = tmp_path / "run"
    env = environment(tmp_path)
    result = subprocess.run(
        [sys.executable, "-m", "seq2seq.train", "--config", str(config), "--output", str(run)]
        + ["--local-workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "[worker 0]" in result.stdout and "[worker 1]" in result.stdout

    # Only the chief wrote a run folder, and it is complete; the other worker left nothing.
    for name in ("FORMAT", "config.yaml", "model.keras", "last.keras", "history.csv"):
        assert (run / name).is_file(), name
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["finished"] and metrics["replicas"] == 2
    assert [e["epoch"] for e in metrics["epochs"]] == [1]
    assert list((tmp_path / "tmp").iterdir()) == [], "a worker left its temporary folder"
    from seq2seq.inference.translator import Translator

    assert Translator.from_run(run).translate(["one two ."])[0].text

    # Same weights as one process over the same global batches (loss over the global token
    # count, clipping after the all-reduce: clipnorm 0.1 is below every step's norm).
    import keras

    from seq2seq.model import Seq2Seq  # noqa: F401  (registers the class)

    weights, norms, initial = single_process_weights(run, steps=3)
    assert min(norms) > 0.1, "clipping must fire for this test to cover it"
    trained = keras.saving.load_model(run / "last.keras", safe_mode=True, compile=False)
    distributed = [w.numpy() for w in trained.weights]
    assert len(distributed) == len(weights)
    worst = max(float(np.max(np.abs(a - b))) for a, b in zip(distributed, weights, strict=True))
    assert worst < 1e-5, f"largest weight difference {worst}"
    moved = max(float(np.max(np.abs(a - b))) for a, b in zip(distributed, initial, strict=True))
    assert moved > 1e-3, "the steps must change the weights far more than the tolerance"


def test_killing_one_worker_stops_the_other_with_a_clear_error(tmp_path):
    config = write_config(tmp_path, epochs=200, steps_per_epoch=20, **NO_DEV_BLEU)
    run = tmp_path / "run"
    launcher = launch(
        ["--config", str(config), "--output", str(run), "--local-workers", "2"],
        environment(tmp_path),
    )
    try:
        chief, other = worker_pids(launcher, 2)
        wait_for(run / "backup" / "epoch-0001", launcher)  # both are deep in training
        os.kill(other, signal.SIGKILL)
        killed = time.monotonic()
        _, stderr = launcher.communicate(timeout=60)
        assert time.monotonic() - killed < 60
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
    assert launcher.returncode == 1
    assert "worker 1 was killed by SIGKILL" in stderr
    assert "Traceback" not in stderr
    deadline = time.monotonic() + 15
    while alive(chief) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not alive(chief), "the surviving worker is still running"


def test_killing_every_process_then_resume_continues_after_the_last_epoch(tmp_path):
    config = write_config(tmp_path, epochs=3, steps_per_epoch=4, **NO_DEV_BLEU)
    run = tmp_path / "run"
    env = environment(tmp_path)
    launcher = launch(["--config", str(config), "--output", str(run), "--local-workers", "2"], env)
    try:
        worker_pids(launcher, 2)
        wait_for(run / "backup" / "epoch-0001", launcher)
    finally:
        os.killpg(launcher.pid, signal.SIGKILL)  # the launcher and both workers at once
        launcher.wait()
    done = json.loads((run / "metrics.json").read_text())["epochs"]
    assert 1 <= len(done) <= 2
    resumed = subprocess.run(
        [sys.executable, "-m", "seq2seq.train", "--output", str(run), "--resume"]
        + ["--local-workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    metrics = json.loads((run / "metrics.json").read_text())
    assert [e["epoch"] for e in metrics["epochs"]] == [1, 2, 3]
    assert metrics["finished"]
    rows = (run / "history.csv").read_text().splitlines()[1:]
    assert [row.split(",")[0] for row in rows] == ["0", "1", "2"]


# -- bad input: a clear error, exit 2, no traceback, no run folder -------------------------


def run_cli(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "seq2seq.train", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def tf_config(addresses: list[str], index: int = 0) -> str:
    return json.dumps(
        {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
    )


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{not json", "TF_CONFIG is not valid JSON"),
        ('{"task": {"type": "worker", "index": 0}}', 'TF_CONFIG needs a "cluster" mapping'),
        (tf_config(["127.0.0.1:1", "127.0.0.1:2"], index=2), "task.index is 2"),
        (tf_config(["localhost", "127.0.0.1:2"]), "expected 'host:port'"),
        (tf_config(["127.0.0.1:99999"]), "port 1-65535"),
        (tf_config(["127.0.0.1:5", "127.0.0.1:5"]), "appears twice"),
        (json.dumps({"cluster": {"ps": ["h:1"]}, "task": {"type": "ps", "index": 0}}), "'ps'"),
    ],
)
def test_malformed_tf_config_is_named(text, message):
    with pytest.raises(ClusterError, match=message.replace("(", r"\(").replace(".", r"\.")):
        parse_tf_config(text)


def test_cluster_faults_exit_2_with_one_clear_line(tmp_path):
    config = write_config(tmp_path, worker_timeout=10)
    env = environment(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cases = {
            "not free": tf_config([f"127.0.0.1:{port}", "127.0.0.1:1"]),
            "cannot be resolved": tf_config(["127.0.0.1:23001", "no-such-host.invalid:2222"]),
            "did not form within 10 s": tf_config(["127.0.0.1:23002", "127.0.0.1:23003"]),
            "TF_CONFIG is not valid JSON": "{",
        }
        for message, text in cases.items():
            run = tmp_path / f"run-{len(message)}"
            result = run_cli(
                ["--config", str(config), "--output", str(run)], dict(env, TF_CONFIG=text)
            )
            assert result.returncode == 2, (message, result.stderr[-2000:])
            assert message in result.stderr
            assert "Traceback" not in result.stderr
            assert not run.exists(), "a failed start left a run folder"


@pytest.mark.parametrize("count", ["0", "-1", "64"])
def test_bad_local_worker_counts_are_refused_before_anything_starts(tmp_path, count):
    if count == "64" and (os.cpu_count() or 1) >= 64:
        pytest.skip("this machine has 64 cores")
    config = write_config(tmp_path)
    run = tmp_path / "run"
    result = run_cli(
        ["--config", str(config), "--output", str(run), "--local-workers", count],
        environment(tmp_path),
    )
    assert result.returncode == 2
    assert "--local-workers is" in result.stderr and "Traceback" not in result.stderr
    assert not run.exists()
