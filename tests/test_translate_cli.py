"""``python -m seq2seq.translate``: arguments, stdin, files, errors (exit 2, no traceback);
no data loss whatever the input bytes, output target or flag values (in-process where
possible, on ``tiny_run``), and generated files through ``--input``; what a newcomer meets:
``--help`` (with ``chat``'s, neither importing TensorFlow), ``--n-best`` ranks, a terminal on
standard input, a chat run given to ``translate``."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from fuzzing import FILE, FUZZ
from hypothesis import given, settings

from seq2seq import translate
from seq2seq.cli import line_io
from seq2seq.translate import main, translate_lines


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "seq2seq.translate", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_sentences_as_arguments(tiny_run, capsys):
    # in-process: the subprocess test below already runs the real entry point
    assert main(["--model", str(tiny_run), "One two .", "Nine ."]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all(lines)
    assert main(["--model", str(tiny_run), "--no-jit", "One two .", "Nine ."]) == 0
    assert capsys.readouterr().out.splitlines() == lines  # XLA or not, same translations


def test_stdin_with_a_bad_line(tiny_run):
    done = cli("--model", str(tiny_run), "--beam", "3", stdin="one two .\n\nthree .\n")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.split("\n")
    assert len(lines) == 4 and lines[0] and lines[1] == "" and lines[2] and lines[3] == ""
    assert "<stdin>:2: line is empty" in done.stderr
    assert "1 bad lines" in done.stderr


def test_bad_run_folder_exits_2_without_traceback(tmp_path):
    done = cli("--model", str(tmp_path / "missing"), "hello")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines()[-1].startswith("error: run folder not found")
    assert "Traceback" not in done.stderr


def test_files_n_best_and_errors_in_process(tiny_run, tmp_path, capsys):
    source = tmp_path / "in.txt"
    source.write_text("one .\n\nfour five six .\n" + "x" * 2000 + "\nseven .\n", encoding="utf-8")
    output = tmp_path / "out.txt"
    assert main(["--model", str(tiny_run), "--input", str(source), "--output", str(output)]) == 0
    lines = output.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 6 and lines[-1] == ""
    assert [bool(line) for line in lines[:5]] == [True, False, True, False, True]
    err = capsys.readouterr().err
    assert f"{source}:2: line is empty" in err and f"{source}:4: line is 2000 characters" in err
    assert "translated 3 lines, 2 bad lines" in err

    assert main(["--model", str(tiny_run), "--n-best", "3", "one two ."]) == 0
    rows = [row.split("\t") for row in capsys.readouterr().out.splitlines()]
    assert len(rows) == 3 and all(row[0] == "1" for row in rows)  # INPUT RANK SCORE TEXT
    assert [row[1] for row in rows] == ["1", "2", "3"]
    scores = [float(row[2]) for row in rows]
    assert scores == sorted(scores, reverse=True)

    args = ["--model", str(tiny_run), "--method", "sample", "--seed", "3", "--top-k", "3"]
    assert main([*args, "one two ."]) == 0
    first = capsys.readouterr().out
    assert main([*args, "one two ."]) == 0
    assert capsys.readouterr().out == first


@pytest.mark.parametrize(
    "args, message",
    [
        (["", "--model", "{run}"], "error: argument 1 is empty"),
        (["--beam", "0", "x", "--model", "{run}"], "error: decode.beam_size is 0"),
        (["--top-p", "2", "x", "--model", "{run}"], "error: decode.top_p"),
        (["--input", "{run}/nope.txt", "--model", "{run}"], "error: input file not found"),
    ],
)
def test_bad_arguments_exit_2(tiny_run, capsys, args, message):
    args = [a.replace("{run}", str(tiny_run)) for a in args]
    assert main(args) == 2
    assert message in capsys.readouterr().err


def test_incompatible_run_exits_2(tiny_run, tmp_path, capsys):
    import shutil

    run = tmp_path / "old"
    shutil.copytree(tiny_run, run, ignore=shutil.ignore_patterns("logs", "backup"))
    (run / "FORMAT").write_text("999\n", encoding="utf-8")
    assert main(["--model", str(run), "hello"]) == 2
    assert "run format '999'" in capsys.readouterr().err


def test_seeded_sampling_chunks_draw_independently(tiny_translator):
    """A file is translated in chunks; with --seed each chunk gets its own derived seed, so
    line i of every chunk does not replay the same sample, and reruns are identical."""
    import io

    from seq2seq.translate import translate_lines

    def run() -> list[str]:
        out = io.StringIO()
        decode = tiny_translator.decode_config(method="sample", temperature=3.0, seed=5)
        lines = ["one two three four ."] * 32
        assert translate_lines(tiny_translator, lines, "f", out, decode, 16) == (32, 0)
        return out.getvalue().splitlines()

    first = run()
    assert first[:16] != first[16:]
    assert run() == first


LINES = ["one two .", "three .", "four five six .", "seven .", "eight nine ."]


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def translate_file(run: Path, source: Path, *extra: str) -> int:
    return main(["--model", str(run), "--no-jit", "--input", str(source), *extra])


# -- data loss ---------------------------------------------------------------------------


@pytest.mark.parametrize("link", ["same", "symlink", "hardlink"])
def test_output_onto_the_input_is_refused_and_the_input_kept(tiny_run, tmp_path, capsys, link):
    data = "".join(line + "\n" for line in LINES).encode()
    source = write(tmp_path / "f.txt", data)
    target = source
    if link == "symlink":
        target = tmp_path / "link.txt"
        target.symlink_to(source)
    elif link == "hardlink":
        target = tmp_path / "hard.txt"
        os.link(source, target)
    assert translate_file(tiny_run, source, "--output", str(target)) == 2
    assert "is the input file" in capsys.readouterr().err
    assert source.read_bytes() == data


def test_output_is_replaced_only_when_complete(tiny_run, tmp_path, monkeypatch, capsys):
    """Killed (Ctrl-C) after the first chunk: the old output file is intact, no half file
    and no temporary file is left; a complete run then replaces it."""
    from seq2seq.inference.translator import Translator

    source = write(tmp_path / "in.txt", ("one two .\n" * 600).encode())
    output = write(tmp_path / "out.txt", b"previous results\n")
    original = Translator.translate
    calls = []

    def interrupted(self, sentences, *args, **options):
        calls.append(len(sentences))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, sentences, *args, **options)

    monkeypatch.setattr(Translator, "translate", interrupted)
    assert translate_file(tiny_run, source, "--output", str(output)) == 130
    assert output.read_bytes() == b"previous results\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]
    monkeypatch.setattr(Translator, "translate", original)
    assert translate_file(tiny_run, source, "--output", str(output)) == 0
    assert len(output.read_text(encoding="utf-8").split("\n")) == 601
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "out.txt"]


def test_output_through_a_link_replaces_the_link_target(tiny_run, tmp_path):
    source = write(tmp_path / "in.txt", b"one .\ntwo .\n")
    target = write(tmp_path / "results.txt", b"old\n")
    link = tmp_path / "latest.txt"
    link.symlink_to(target)
    assert translate_file(tiny_run, source, "--output", str(link)) == 0
    assert link.is_symlink() and target.read_text(encoding="utf-8").count("\n") == 2


# -- input bytes -------------------------------------------------------------------------


def test_invalid_utf8_lines_are_reported_and_kept_aligned(tiny_run, tmp_path, capsys):
    source = write(tmp_path / "bad.txt", b"one two .\nthree \xff four .\n\xc3\n" + b"five .\n")
    output = tmp_path / "out.txt"
    assert translate_file(tiny_run, source, "--output", str(output)) == 0
    lines = output.read_text(encoding="utf-8").split("\n")
    assert len(lines) == 5 and lines[-1] == ""
    assert all(lines[:4])  # replaced bytes are translated too: no valid line lost
    err = capsys.readouterr().err
    assert f"{source}:2: invalid UTF-8" in err and f"{source}:3: invalid UTF-8" in err
    assert f"{source}:1:" not in err and f"{source}:4:" not in err


def test_invalid_utf8_on_stdin_and_as_argument(tiny_run, monkeypatch, capsys):
    stdin = io.TextIOWrapper(io.BytesIO(b"one .\ntwo \xff three .\nfour .\n"), encoding="utf-8")
    monkeypatch.setattr(sys, "stdin", stdin)
    assert main(["--model", str(tiny_run), "--no-jit"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.split("\n")) == 4 and all(captured.out.split("\n")[:3])
    assert "<stdin>:2: invalid UTF-8" in captured.err
    # Python hands undecodable argument bytes over as lone surrogates
    assert main(["--model", str(tiny_run), "--no-jit", "Hola \udcff one ."]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1
    assert "argument 1: invalid UTF-8" in captured.err


def test_only_newline_ends_a_line(tiny_run, tmp_path, capsys):
    """A lone \\r, U+2028 or form feed inside a line must not split it; \\r\\n is one end."""
    source = write(
        tmp_path / "in.txt",
        "one\rtwo .\nthree\u2028four .\r\nfive\x0csix .\nseven\x85 .\n".encode(),
    )
    output = tmp_path / "out.txt"
    assert translate_file(tiny_run, source, "--output", str(output)) == 0
    assert output.read_bytes().count(b"\n") == 4
    assert "translated 4 lines, 0 bad" in capsys.readouterr().err


def test_utf16_file_is_refused_with_a_hint(tiny_run, tmp_path, capsys):
    source = write(tmp_path / "utf16.txt", "one two .\nthree .\n".encode("utf-16"))
    assert translate_file(tiny_run, source) == 2
    assert "looks like UTF-16" in capsys.readouterr().err
    bare = write(tmp_path / "utf16le.txt", "one two .\nthree .\n".encode("utf-16-le"))
    assert translate_file(tiny_run, bare) == 2


def test_nul_only_line_gets_a_notice_and_an_empty_output_line(tiny_run, tmp_path, capsys):
    source = write(tmp_path / "in.txt", b"one .\n\x00\x00\x00\ntwo \x00three .\n")
    output = tmp_path / "out.txt"
    assert translate_file(tiny_run, source, "--output", str(output)) == 0
    lines = output.read_text(encoding="utf-8").split("\n")
    assert [bool(line) for line in lines] == [True, False, True, False]
    err = capsys.readouterr().err
    assert f"{source}:2: the line held only NUL bytes" in err
    assert f"{source}:3: the line held NUL bytes" in err


def test_inputs_longer_than_the_model_are_flagged_with_their_line(tiny_run, tmp_path, capsys):
    long = " ".join(["one two three"] * 10) + " ."  # 31 tokens; the model takes 12
    source = write(tmp_path / "in.txt", f"one .\n{long}\n".encode())
    assert translate_file(tiny_run, source) == 0
    err = capsys.readouterr().err
    assert f"{source}:2: input is longer than the model's 12 tokens" in err
    assert f"{source}:1:" not in err
    assert main(["--model", str(tiny_run), "--no-jit", "one .", long]) == 0
    assert "argument 2: input is longer than the model's 12 tokens" in capsys.readouterr().err


# -- output targets ----------------------------------------------------------------------


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="no /dev/full on this system")
def test_full_disk_is_an_error_not_a_traceback(tiny_run, tmp_path, capsys):
    source = write(tmp_path / "in.txt", b"one .\n")
    assert translate_file(tiny_run, source, "--output", "/dev/full") == 2
    assert "error: cannot write /dev/full: no space left" in capsys.readouterr().err


def test_output_folder_or_missing_folder_is_refused(tiny_run, tmp_path, capsys):
    source = write(tmp_path / "in.txt", b"one .\n")
    assert translate_file(tiny_run, source, "--output", str(tmp_path)) == 2
    assert "is a folder" in capsys.readouterr().err
    assert translate_file(tiny_run, source, "--output", str(tmp_path / "no" / "o.txt")) == 2
    assert "does not exist" in capsys.readouterr().err
    assert translate_file(tiny_run, tmp_path) == 2
    assert "is a folder, not a file" in capsys.readouterr().err


def test_broken_pipe_exits_quietly(tiny_run, tmp_path):
    source = write(tmp_path / "in.txt", b"one two .\n" * 700)
    command = (
        f"{sys.executable} -m seq2seq.translate --no-jit --model {tiny_run} --input {source}"
        " | head -1; echo status ${PIPESTATUS[0]}"
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        ["bash", "-c", command], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.stdout.splitlines()[-1] == "status 141"
    assert len(done.stdout.splitlines()) == 2
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr


# -- flags -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--min-length", "-3"], "decode.min_length is -3; allowed: from 0 to 999"),
        (["--max-length", "1000000000"], "decode.max_length is 1000000000; allowed: from 1"),
        (["--beam", "100000"], "decode.beam_size is 100000"),
        (["--seed", "-1"], "decode.seed is -1"),
        (["--temperature", "nan"], "decode.temperature is nan"),
    ],
)
def test_decoding_flags_out_of_range_exit_2(tiny_run, capsys, flags, message):
    assert main(["--model", str(tiny_run), *flags, "one ."]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("value", ["0", "-5"])
def test_max_input_chars_must_be_positive(tiny_run, capsys, value):
    with pytest.raises(SystemExit) as exit_:
        main(["--model", str(tiny_run), "--max-input-chars", value, "one ."])
    assert exit_.value.code == 2
    assert f"--max-input-chars is {value}; allowed: 1 or more" in capsys.readouterr().err


def test_bad_flags_and_paths_fail_before_tensorflow_loads(tiny_run, tmp_path):
    """Start-up time: argument and config errors are reported without importing TF."""
    source = write(tmp_path / "f.txt", b"one .\n")
    cases = [
        ["--max-length", "-3", "x"],
        ["--input", str(source), "--output", str(source)],
        ["--input", str(tmp_path / "missing.txt")],
    ]
    script = (
        "import sys; from seq2seq.translate import main\n"
        f"codes = [main(['--model', {str(tiny_run)!r}, *args]) for args in {cases!r}]\n"
        "print(codes, 'tensorflow' in sys.modules)"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.stdout.strip() == "[2, 2, 2] False", done.stderr


# -- damaged run folders -----------------------------------------------------------------


@pytest.fixture
def run_copy(tiny_run, tmp_path) -> Path:
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(tiny_run, copy, ignore=shutil.ignore_patterns("logs", "backup", "eval-*"))
    return copy


def test_random_bytes_in_format(run_copy, capsys):
    (run_copy / "FORMAT").write_bytes(bytes(range(200, 256)))
    assert main(["--model", str(run_copy), "one ."]) == 2
    err = capsys.readouterr().err
    assert "FORMAT is damaged" in err and "Traceback" not in err


def test_truncated_sentencepiece_model(run_copy, capsys):
    from seq2seq.data.tokenizers import SentencePieceTokenizer

    words = "one two three four five six seven eight nine zero".split()
    texts = [" ".join(words[i:] + words[:i]) for i in range(10)] * 20
    tokenizer = SentencePieceTokenizer.fit(texts, vocab_size=30)
    folder = run_copy / "source_vocab"
    for child in folder.iterdir():
        child.unlink()
    tokenizer.save(folder)
    model = folder / "spm.model"
    model.write_bytes(model.read_bytes()[:100])
    assert main(["--model", str(run_copy), "one ."]) == 2
    err = capsys.readouterr().err
    assert "cannot load its tokenizers" in err and "Traceback" not in err


def test_truncated_model_offers_last_keras(run_copy, capsys):
    best = run_copy / "model.keras"
    best.write_bytes(best.read_bytes()[:1600])
    assert main(["--model", str(run_copy), "--no-jit", "one ."]) == 2
    err = capsys.readouterr().err
    assert "model.keras is corrupt" in err and "last.keras is intact" in err
    last = run_copy / "last.keras"
    last.write_bytes(b"PK\x03\x04 not really")
    assert main(["--model", str(run_copy), "--no-jit", "one ."]) == 2
    err = capsys.readouterr().err
    assert "model.keras is corrupt" in err and "last.keras" not in err


def test_model_from_another_run_is_refused(run_copy, capsys):
    """A model beside tokenizers of another run must not translate: the run's vocabulary
    fingerprint says so; a run from before fingerprints is caught by the vocabulary sizes."""
    from seq2seq.data.tokenizers import SPECIAL_PIECES, WordTokenizer

    folder = run_copy / "target_vocab"
    for child in folder.iterdir():
        child.unlink()
    WordTokenizer([*SPECIAL_PIECES, "uno", "dos", "tres"], lowercase=True).save(folder)
    assert main(["--model", str(run_copy), "--no-jit", "one ."]) == 2
    err = capsys.readouterr().err
    fingerprint = "are not the tokenizers this model was trained with"
    assert (fingerprint in err or "different runs" in err) and "Traceback" not in err
    (run_copy / "vocabularies.sha256").unlink(missing_ok=True)  # a run from before them
    assert main(["--model", str(run_copy), "--no-jit", "one ."]) == 2
    err = capsys.readouterr().err
    assert "target vocabulary of" in err and "target_vocab/ has 7" in err
    assert "different runs" in err


# -- fuzz: generated files through --input ---------------------------------------------


@settings(FUZZ, max_examples=400)
@given(data=FILE)
def test_fuzz_input_path_keeps_one_output_line_per_input_line(plain_translator, data):
    """Generated files (invalid UTF-8, NULs, BOMs, separators that are not \\n): one output
    line per input line, or the whole file refused as UTF-16, said clearly."""
    out = io.StringIO()
    stream = io.BufferedReader(io.BytesIO(data))
    try:
        good, bad = translate_lines(
            plain_translator,
            line_io.read_lines(stream, "f.txt"),
            "f.txt",
            out,
            plain_translator.config.decode,
        )
    except line_io.TextInputError as error:
        assert "UTF-16" in str(error)
        return
    expected = data.count(b"\n") + (bool(data) and not data.endswith(b"\n"))
    assert good + bad == expected
    assert out.getvalue().count("\n") == expected


def test_glossary_flag_end_to_end(tiny_run, tmp_path, capsys):
    glossary = tmp_path / "terms.tsv"
    glossary.write_text("Two\tocho\n", encoding="utf-8")
    run = ["--model", str(tiny_run), "--no-jit", "--beam", "3"]
    assert main([*run, "One two three .", "Nine ."]) == 0
    plain = capsys.readouterr().out.splitlines()
    assert main([*run, "--glossary", str(glossary), "One two three .", "Nine ."]) == 0
    forced = capsys.readouterr().out.splitlines()
    assert "ocho" in forced[0].lower().split() and "ocho" not in plain[0].lower()
    assert forced[1] == plain[1]  # no source term: the same translation
    source = tmp_path / "in.txt"
    source.write_text("one two .\nthree .\n", encoding="utf-8")
    output = tmp_path / "out.txt"
    args = [*run, "--glossary", str(glossary), "--input", str(source), "--output", str(output)]
    assert main(args) == 0
    assert "ocho" in output.read_text(encoding="utf-8").splitlines()[0].lower()


@pytest.mark.parametrize(
    "content, extra, message",
    [
        ("Two\tocho\nthree tres\n", ["--beam", "3"], "terms.tsv:2: expected source term<TAB>"),
        ("Two\t\n", ["--beam", "3"], "terms.tsv:1: the target term is empty"),
        ("two\tocho\nTWO\tdos\n", ["--beam", "3"], "terms.tsv:2: the source term 'TWO' is"),
        ("two\tzwei\n", ["--beam", "3"], "terms.tsv:1: the target term 'zwei' cannot be spelled"),
        ("two\tocho\n", [], "terms.tsv: a glossary constrains beam search only"),
        ("two\tocho\n", ["--temperature", "0.5"], "(the search is sample)"),
    ],
)
def test_bad_glossaries_exit_2_in_one_line_and_write_nothing(
    tiny_run, tmp_path, capsys, content, extra, message
):
    glossary = tmp_path / "terms.tsv"
    glossary.write_text(content, encoding="utf-8")
    source = tmp_path / "in.txt"
    source.write_text("one two .\n", encoding="utf-8")
    output = tmp_path / "out.txt"
    args = ["--model", str(tiny_run), "--no-jit", *extra, "--glossary", str(glossary)]
    assert main([*args, "--input", str(source), "--output", str(output)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and message in err and "\n" not in err, err
    assert not output.exists() and source.read_text(encoding="utf-8") == "one two .\n"


# -- what a newcomer meets: --help, --n-best, a terminal, a chat run (issue 23) ----------


def help_text(module, capsys) -> str:
    with pytest.raises(SystemExit) as exit_:
        module.parse_args(["--help"])
    assert exit_.value.code == 0
    return capsys.readouterr().out


def test_translate_help_has_examples_the_direction_and_the_tags(capsys):
    text = help_text(translate, capsys)
    assert "examples:" in text
    assert '.venv/bin/python -m seq2seq.translate --model runs/quickstart "Tengo hambre."' in text
    assert "translates Spanish into English" in text  # the model's direction
    assert "--beam 5 means beam search with 5 beams" in text
    assert "A tag such as [beam] or [sample] names the search a flag belongs to" in text
    assert "INPUT_NUMBER<TAB>RANK<TAB>SCORE<TAB>TEXT" in text
    assert max(len(line) for line in text.splitlines()) <= 100  # wrapped, not one long line


@pytest.mark.parametrize("module", ["translate", "chat"])
@pytest.mark.parametrize("argv", [["--help"], ["--model", "runs/x", "--no-such-flag"]])
def test_help_and_flag_errors_do_not_import_tensorflow(module, argv):
    code = (
        "import sys\n"
        f"from seq2seq import {module} as m\n"
        "try:\n"
        f"    m.parse_args({argv!r})\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = sorted(n for n in ('tensorflow', 'keras', 'numpy') if n in sys.modules)\n"
        "print('HEAVY', heavy)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert "HEAVY []" in done.stdout, done.stdout + done.stderr


@pytest.mark.slow
def test_n_best_lines_carry_input_number_and_rank(tiny_run, capsys):
    assert translate.main(["--model", str(tiny_run), "--n-best", "3", "one two .", "three ."]) == 0
    rows = [row.split("\t") for row in capsys.readouterr().out.splitlines()]
    assert [row[:2] for row in rows] == [[i, r] for i in "12" for r in "123"]
    for group in (rows[:3], rows[3:]):
        scores = [float(row[2]) for row in group]
        assert scores == sorted(scores, reverse=True) and all(row[3] for row in group)


class Terminal(io.StringIO):
    """Standard input that is a terminal, with lines already typed."""

    def __init__(self, typed: bytes):
        super().__init__()
        self.buffer = io.BytesIO(typed)

    def isatty(self) -> bool:
        return True


@pytest.mark.slow
def test_a_terminal_on_stdin_is_told_what_to_type(tiny_run, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", Terminal(b"one two .\n"))
    assert translate.main(["--model", str(tiny_run)]) == 0
    out, err = capsys.readouterr()
    assert "Type a sentence and press Enter to translate it; Ctrl-D to end." in err
    assert f"{tiny_run}: tsv" in err  # which model, which direction
    assert len(out.splitlines()) == 1 and out.strip()


@pytest.mark.slow
def test_translate_warns_when_given_a_chat_run(tiny_dialogue_run, capsys):
    assert translate.main(["--model", str(tiny_dialogue_run), "hi"]) == 0
    err = capsys.readouterr().err
    assert f"warning: {tiny_dialogue_run} is a chat run" in err
    assert f"python -m seq2seq.chat --model {tiny_dialogue_run}" in err
