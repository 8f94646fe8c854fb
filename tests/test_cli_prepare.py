import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from textgan.cli import main
from textgan.corpus import load_prepared
from textgan.corpus import rows as corpus_rows


def _run(tmp_path, *args):
    data = tmp_path / "data"
    result = CliRunner().invoke(main, ["prepare", "--no-progress", "--data-dir", str(data), *args])
    return result, data


def _one_line_error(result) -> str:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("textgan: error: "), result.stderr
    assert "Traceback" not in result.output
    return lines[0]


def _no_cache(data):
    """Nothing that could pass for a cache: no folder at all, or an empty one."""
    assert not data.exists() or not any(data.iterdir())


def test_prepare_prints_a_summary_and_caches(tmp_path, gbw_files):
    result, data = _run(tmp_path, "--corpus", str(gbw_files[0]), "--seq-len", "20")
    assert result.exit_code == 0, result.output
    out = result.stdout
    for label in ("lines kept", "empty skipped", "train / held-out", "vocabulary", "UNK share"):
        assert label in out
    assert "6,111 (" in out and "5,500 / 611" in out
    (cache,) = data.iterdir()
    assert f"cache             {cache}" in out
    prepared = load_prepared(cache)
    assert prepared.train.shape == (5_500, 20) and prepared.train.dtype == np.uint8
    again, _ = _run(tmp_path, "--corpus", str(gbw_files[0]), "--seq-len", "20")
    assert "(reused)" in again.stdout


def _bad_inputs(tmp_path):
    (tmp_path / "empty.txt").write_bytes(b"")
    (tmp_path / "blank.txt").write_bytes(b"\n\n\n")
    (tmp_path / "binary.dat").write_bytes(b"text\n\x00\x01\x02binary\n")
    (tmp_path / "latin1.txt").write_bytes(b"one\ntwo\ncaf\xe9\n")
    (tmp_path / "no-text").mkdir()
    (tmp_path / "no-text" / "blob.bin").write_bytes(b"\x00" * 64)
    (tmp_path / "afile").write_text("x\n")
    ok = str(tmp_path / "latin1.txt")
    binary = str(tmp_path / "binary.dat")
    return {
        "missing path": (["--corpus", str(tmp_path / "nope.txt")], "no such file or directory"),
        "empty file": (["--corpus", str(tmp_path / "empty.txt")], "is empty"),
        "only empty lines": (["--corpus", str(tmp_path / "blank.txt")], "only empty lines"),
        "binary file": (["--corpus", binary], "binary file (NUL byte on line 2)"),
        "invalid utf-8": (["--corpus", ok], "latin1.txt: line 3 is not valid UTF-8"),
        "no text files": (["--corpus", str(tmp_path / "no-text")], "holds no text files"),
        "seq-len": (["--seq-len", "1"], "--seq-len must be at least 2, got 1"),
        "max-vocab": (["--max-vocab", "2"], "--max-vocab must be at least 3, got 2"),
        "negative seed": (["--seed", "-1"], "--seed must be at least 0, got -1"),
        "huge seed": (["--seed", str(2**64)], f"--seed must be at most {2**63 - 1}"),
        "unknown corpus": (["--corpus", "wikipedia"], "unknown corpus 'wikipedia'"),
        "bad choice": (["--tokens", "words"], "Invalid value for '--tokens'"),
    }  # fmt: skip


@pytest.mark.parametrize(
    "case",
    [
        "missing path",
        "empty file",
        "only empty lines",
        "binary file",
        "invalid utf-8",
        "no text files",
        "seq-len",
        "max-vocab",
        "negative seed",
        "huge seed",
        "unknown corpus",
        "bad choice",
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_cache(tmp_path, case):
    args, expected = _bad_inputs(tmp_path)[case]
    result, data = _run(tmp_path, *args)
    assert expected in _one_line_error(result)
    _no_cache(data)


def test_unwritable_data_dir(tmp_path, gbw_files):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder\n")
    result = CliRunner().invoke(
        main,
        [
            "prepare",
            "--no-progress",
            "--corpus",
            str(gbw_files[0]),
            "--data-dir",
            str(blocker / "data"),
        ],
    )
    assert "cannot write to --data-dir" in _one_line_error(result)
    assert blocker.read_text() == "not a folder\n"


def test_encoding_errors_replace_accepts_invalid_utf8(tmp_path):
    source = tmp_path / "latin1.txt"
    source.write_bytes(b"one\ntwo\ncaf\xe9\n")
    result, data = _run(tmp_path, "--corpus", str(source), "--encoding-errors", "replace")
    assert result.exit_code == 0, result.output
    assert "invalid UTF-8     1 replaced by U+FFFD" in result.stdout
    (cache,) = data.iterdir()
    prepared = load_prepared(cache)
    decoded = prepared.vocab.decode(prepared.train)
    assert sorted(decoded) == ["caf\ufffd", "one", "two"]


def test_help_lists_the_options_without_heavy_imports():
    code = (
        "import sys\n"
        "from click.testing import CliRunner\n"
        "from textgan.cli import main\n"
        "out = CliRunner().invoke(main, ['prepare', '--help']).stdout\n"
        "print(out)\n"
        "print(sorted(m for m in ('torch', 'datasets', 'pyarrow') if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    for option in ("--corpus", "--seq-len", "--tokens", "--max-vocab", "--max-lines", "--holdout"):
        assert option in out.stdout
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_sequences_too_long_for_memory_are_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_rows, "memory_limit", lambda: 1 << 28)  # pydocs: 0.3 GiB
    result, data = _run(tmp_path, "--corpus", "pydocs", "--seq-len", "100000")
    line = _one_line_error(result)
    assert "symbols would take 0.2" in line and "more than 90% of the 0.25 GiB of memory" in line
    _no_cache(data)
