"""What every command that writes or seeds something does with a bad place or a bad seed:
one line, exit status 2, never a traceback (``sample``, ``score``, ``sweep``, ``plot``,
``study``)."""

import builtins
import errno
import io
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

import textgan
from textgan.cli import main
from textgan.config import MAX_SEED


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    data = str(tmp_path_factory.mktemp("data"))
    textgan.prepare("pydocs", data_dir=data)
    return data


@pytest.fixture(scope="module")
def run_dir(data_dir, tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("runs") / "tiny"
    textgan.fit(
        {"corpus": "pydocs", "data_dir": data_dir},
        preset="tiny",
        train={"iters": 2, "eval_every": 2, "ckpt_every": 2, "run_dir": str(run)},
    )
    return run


@pytest.fixture
def read_only(monkeypatch):
    """Make folders act as on a read-only file system: every create, write, rename, unlink or
    mkdir inside them fails with EROFS. Played here because the tests may run as root, whom a
    folder's permission bits do not stop; a read-only mount refuses even the unlink of a file
    that is not there, which is what a cleanup after a failed write tries."""
    folders: list[Path] = []

    def refuse(path) -> None:
        where = Path(os.fsdecode(path)).absolute()
        if any(where == f or f in where.parents for f in folders):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fsdecode(path))

    real_open = io.open

    def fake_open(file, mode="r", *args, **kwargs):
        if isinstance(file, str | bytes | os.PathLike) and set(mode) & set("wax+"):
            refuse(file)
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(io, "open", fake_open)
    monkeypatch.setattr(builtins, "open", fake_open)
    for name in ("unlink", "mkdir", "rename", "replace", "rmdir"):
        real = getattr(os, name)

        def fake(path, *args, _real=real, **kwargs):
            refuse(path)
            return _real(path, *args, **kwargs)

        monkeypatch.setattr(os, name, fake)

    def add(folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        folders.append(folder.absolute())
        return folder

    return add


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _one_line(res, message: str) -> None:
    assert res.exit_code == 2, (res.exit_code, res.output, res.exception)
    assert res.output.startswith("textgan: error: "), res.output
    assert message in res.output and res.output.count("\n") == 1, res.output


def test_sample_out_in_a_read_only_folder_is_one_line(data_dir, read_only, tmp_path):
    folder = read_only(tmp_path / "ro")
    base = ["sample", "--baseline", "kn5", "--corpus", "pydocs", "--data-dir", data_dir]
    res = _cli(*base, "-n", 3, "--out", folder / "s.txt", "--no-progress")
    _one_line(res, f"cannot write {folder / 's.txt'}: Read-only file system")
    assert list(folder.iterdir()) == []


def test_sweep_refuses_a_read_only_folder_before_sampling(
    data_dir, run_dir, read_only, tmp_path, monkeypatch
):
    monkeypatch.setattr("textgan.studies.sweep.run_sweep", lambda *a, **k: pytest.fail("sampled"))
    folder = read_only(tmp_path / "ro")
    common = ["--corpus", "pydocs", "--data-dir", data_dir, "--no-progress"]
    res = _cli("sweep", "kn5", *common, "--out", folder / "sweep")
    _one_line(res, f"cannot write the sweep to {folder / 'sweep'} (Read-only file system)")
    read_only(run_dir / "sweep")  # the default folder of a run alone
    _one_line(_cli("sweep", run_dir, *common), f"cannot write the sweep to {run_dir / 'sweep'}")


def test_plot_out_in_a_read_only_folder_is_one_line(run_dir, read_only, tmp_path):
    folder = read_only(tmp_path / "ro")
    res = _cli("plot", run_dir, "--out", folder)
    _one_line(res, f"cannot write plots to {folder} (Read-only file system)")


def test_score_against_a_read_only_corpus_goes_on_without_caching(data_dir, read_only, tmp_path):
    """score writes no file of its own; the language model it fits is a cache it can skip."""
    corpus = next(Path(data_dir).glob("pydocs-*"))
    for cache in corpus.glob("kn5*.npz"):
        cache.unlink()
    read_only(corpus)
    samples = tmp_path / "s.txt"
    samples.write_text("import os\nprint(x)\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="Read-only file system"):
        res = _cli("score", samples, "--corpus", "pydocs", "--data-dir", data_dir, "-n", 2)
    assert res.exit_code == 0, res.output
    assert "lm_bits" in res.output and not list(corpus.glob("kn5*.npz"))


SEED_COMMANDS = {
    "sample": ["sample", "--baseline", "kn5", "--corpus", "pydocs", "-n", 2],
    "score": ["score", "--real", "--corpus", "pydocs", "-n", 5],
    "sweep": ["sweep", "kn5", "--corpus", "pydocs", "-n", 5, "--temperatures", 1],
    "study": ["study", "lipschitz", "--corpus", "pydocs", "--preset", "tiny", "--iters", 1],
}


@pytest.mark.parametrize("command", SEED_COMMANDS)
@pytest.mark.parametrize("seed", [2**64, MAX_SEED + 1, -1])
def test_every_seed_is_bounded_alike(command, seed, data_dir, tmp_path):
    args = [*SEED_COMMANDS[command], "--data-dir", data_dir, "--seed", seed]
    res = _cli(*args, *(["--out", tmp_path / "out"] if command != "score" else []))
    _one_line(res, f"--seed': {seed} is not in the range 0<=x<={MAX_SEED}")
    assert not (tmp_path / "out").exists()


def test_the_largest_seed_samples(data_dir):
    args = [*SEED_COMMANDS["sample"], "--data-dir", data_dir, "--no-progress"]
    res = _cli(*args, "--seed", MAX_SEED)
    assert res.exit_code == 0, res.output
    assert len(res.stdout.splitlines()) == 2
