"""What the demo tests share: one tiny run and its Space export per pytest session, made by
whichever demo test module asks first (kept under the session's base temporary folder)."""

import torch
from click.testing import CliRunner

import textgan
from textgan.cli import main

# The start of a script run in a fresh Python that imports a Space folder's app.py as a Space
# would: textgan comes from that folder or not at all (this machine's installed or checked-out
# textgan must not fill in a module the export left out). The folder is ``sys.argv[1]``.
ONLY_THE_SPACE = """
import importlib.machinery, runpy, sys

folder = sys.argv[1]


class OnlyTheSpace:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name.split(".")[0] != "textgan":
            return None
        spec = importlib.machinery.PathFinder.find_spec(name, path or [folder])
        if spec is None:
            raise ModuleNotFoundError(f"{name} is not in the Space folder", name=name)
        return spec


sys.meta_path.insert(0, OnlyTheSpace)
try:
    import textgan.training.loop
except ModuleNotFoundError:
    pass
else:
    sys.exit("the Space folder holds training code")
"""
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
