"""What the demo tests share: one tiny run and its Space export per pytest session, made by
whichever demo test module asks first (kept under the session's base temporary folder)."""

import torch
from click.testing import CliRunner

import textgan
from textgan.cli import main

TRAIN = {"iters": 20, "eval_every": 10, "ckpt_every": 10, "eval_samples": 64, "device": "cpu"}
SPACE_NAME = "user/tiny"


def cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def sample(*args) -> list[str]:
    """The lines ``textgan sample`` writes (on the CPU) for ``args``."""
    result = cli("sample", *args, "--device", "cpu", "--no-progress")
    assert result.exit_code == 0, result.output
    return result.output.split("\n")[:-1]


def tiny_run(tmp_path_factory):
    """A 20-iteration pydocs run (dim 16) with its corpus cache beside it."""
    root = tmp_path_factory.getbasetemp() / "demo-tiny"
    run_dir = root / "run"
    if not (run_dir / "checkpoints" / "iter_0000020").is_dir():
        before = torch.get_num_threads()
        torch.set_num_threads(1)  # small steps on shared cores: no spinning OpenMP threads
        try:
            textgan.fit(
                {"corpus": "pydocs", "data_dir": str(root / "data")},
                preset="tiny",
                model={"dim": 16},
                train={**TRAIN, "batch_size": 16, "critic_iters": 2, "run_dir": str(run_dir)},
            )
        finally:
            torch.set_num_threads(before)
    return run_dir


def tiny_space(tmp_path_factory):
    """The tiny run exported with --space as SPACE_NAME."""
    run = tiny_run(tmp_path_factory)
    out = run.parent / "space"
    if not out.is_dir():
        result = cli("export", run, "--out", out, "--space", "--name", SPACE_NAME)
        assert result.exit_code == 0, result.output
    return out
