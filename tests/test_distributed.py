"""Data-parallel training (``textgan.training.distributed``) on the CPU with gloo: two processes
started as torchrun starts them (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR/PORT``),
each running this file as a script. Tiny models on the built-in ``pydocs`` corpus, fp32.

Claims: ranks hold identical weights; a world-2 step on a split batch is the one-process step on
the whole batch; SIGTERM then resume at world 2 is bit for bit; a dead rank ends the job with an
error within the timeout and leaves a loadable checkpoint; another world size on resume says so.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from textgan import config as C  # noqa: E402
from textgan import files  # noqa: E402
from textgan.corpus import CorpusConfig, prepare  # noqa: E402
from textgan.files import checkpoint as ck  # noqa: E402
from textgan.files import rundir as rd  # noqa: E402
from textgan.nn import lipschitz  # noqa: E402
from textgan.nn.networks import one_hot  # noqa: E402
from textgan.training import distributed  # noqa: E402
from textgan.training import loop as T  # noqa: E402
from textgan.training.setup import resolve_run_config  # noqa: E402

BATCH = 64  # the global batch of every run here: 32 rows per rank at world 2
MODEL = {"dim": 16, "blocks": 1}
# Rows every iteration, an evaluation at 3 and 6, checkpoints at every even iteration.
RUN = {
    "iters": 6,
    "batch_size": BATCH,
    "critic_iters": 2,
    "log_every": 1,
    "eval_every": 3,
    "eval_samples": 64,
    "diag_every": 100,
    "ckpt_every": 2,
    "device": "cpu",
    "precision": "fp32",
}
EQUIVALENCE_KINDS = ("gp", "sn-conv", "clip")  # the fast path, power iteration, clipping
# fp32: the ranks' mean gradient and the one-process gradient over 64 rows round differently
# (measured: at most 2.3e-5 after 3 iterations of lr 1e-3, which move weights by about 3e-3).
ATOL = 5e-5
# The exact gradient of the last residual block's output bias is zero (it shifts every score
# alike, which cancels in mean D(fake) − mean D(real); the closed-form penalty holds no bias), so
# its gradient is rounding noise that Adam scales to full steps: it is not compared.
NOISE_ONLY = "D.blocks.0.conv2.bias"


# -- what the ranks run ------------------------------------------------------------------------


def _layers(data_dir: str, train: dict, kind: str = "gp") -> dict:
    overrides = {
        "corpus": {"corpus": "pydocs", "data_dir": data_dir},
        "model": MODEL,
        "lipschitz": {"kind": kind},
        "train": train,
    }
    return C.layered_config("tiny", overrides=overrides)


class SharedDraws:
    """One process's or one rank's slice of the draws a single process would make for the
    whole batch: every process draws all 64 rows, noises and ε from the same seeds."""

    def __init__(self, trainer, rank: int, world: int) -> None:
        self.trainer = trainer
        self.rows = np.random.default_rng(123)
        self.gen = torch.Generator().manual_seed(7)
        n = BATCH // world
        self.part = slice(rank * n, (rank + 1) * n)

    def real_batch(self) -> torch.Tensor:
        ids = self.trainer.train_ids[self.rows.integers(0, len(self.trainer.train_ids), BATCH)]
        ids = torch.from_numpy(np.asarray(ids, dtype=np.int64))[self.part]
        return one_hot(ids, self.trainer.config.model.vocab_size)

    def fake_batch(self) -> torch.Tensor:
        z = torch.randn(BATCH, self.trainer.config.model.noise_dim, generator=self.gen)
        return self.trainer.fast.generate(z[self.part])

    def interpolate(self, real, fake, rng, shuffle):
        eps = torch.rand(BATCH, 1, 1, generator=self.gen)[self.part]
        return (fake + eps * (real - fake)).detach()


def injected_weights(data_dir: str, kind: str, iters: int = 3) -> dict[str, torch.Tensor]:
    """Weights after ``iters`` iterations with SharedDraws, in this process's world."""
    config, prepared = resolve_run_config(_layers(data_dir, RUN, kind), progress=False)
    trainer = T.Trainer(config, prepared.train, torch.device("cpu"))
    draws = SharedDraws(trainer, distributed.rank(), distributed.world_size())
    trainer.real_batch, trainer.fake_batch = draws.real_batch, draws.fake_batch
    plain = lipschitz.interpolate
    lipschitz.interpolate = draws.interpolate  # both critic-loss backends look it up here
    try:
        for _ in range(iters):
            trainer.step()
    finally:
        lipschitz.interpolate = plain
    return _weights(trainer)


def _weights(trainer) -> dict[str, torch.Tensor]:
    out = {f"G.{k}": v.detach().clone() for k, v in trainer.generator.state_dict().items()}
    out.update({f"D.{k}": v.detach().clone() for k, v in trainer.critic.state_dict().items()})
    return out


def _thread_names() -> list[str]:
    """The names of this process's threads, the backend's C++ threads included (Linux)."""
    tasks = Path("/proc/self/task")
    return sorted((task / "comm").read_text().strip() for task in tasks.iterdir())


def _slow_build(seconds: float, out: Path):
    """The cache build, ``seconds`` slower (a first download), leaving a mark per build."""
    from textgan.corpus import cache

    build = cache.build

    def slow(*args, **kwargs):
        (out / f"build.{os.getpid()}").touch()
        time.sleep(seconds)
        return build(*args, **kwargs)

    cache.build = slow


def _worker(task: str, args: dict) -> int:
    torch.set_num_threads(1)
    out = Path(args["out"])
    if task == "equivalence":
        weights = {kind: injected_weights(args["data_dir"], kind) for kind in EQUIVALENCE_KINDS}
        torch.save(weights, out / f"rank{distributed.rank()}.pt")
        return 0
    if args.get("slow_build"):
        _slow_build(args["slow_build"], out)
    hooks = []
    if args.get("stop_at"):

        def stop(trainer, k):  # the signal reaches rank 0 only
            if k == args["stop_at"] and distributed.rank() == 0:
                os.kill(os.getpid(), signal.SIGTERM)

        hooks.append(stop)
    hooks.append(lambda trainer, k: torch.save(_weights(trainer), out / f"rank{trainer.rank}.pt"))
    if task == "train":
        config, prepared = resolve_run_config(
            _layers(args["data_dir"], args["train"]), progress=False
        )
        result = T.train(config, prepared, progress=False, hooks=hooks)
    else:
        result = T.resume(args["run_dir"], args.get("overrides"), progress=False, hooks=hooks)
    if args.get("threads"):  # which threads the job leaves to the interpreter's exit
        rank, before = distributed.rank(), _thread_names()
        distributed.shutdown()
        threads = {"before": before, "after": _thread_names()}
        (out / f"threads{rank}.json").write_text(json.dumps(threads))
    return result.exit_code


# -- launching the ranks -----------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _launch_ranks(cmd: list[str], world: int = 2) -> list[subprocess.Popen]:
    """``cmd`` once per rank, with the environment torchrun gives its workers."""
    port = str(_free_port())
    procs = []
    for rank in range(world):
        env = {
            **os.environ,
            "WORLD_SIZE": str(world),
            "RANK": str(rank),
            "LOCAL_RANK": str(rank),
            "MASTER_ADDR": "127.0.0.1",
            "MASTER_PORT": port,
            "OMP_NUM_THREADS": "1",
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
        }
        procs.append(subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True))
    return procs


def _launch(task: str, args: dict, world: int = 2) -> list[subprocess.Popen]:
    return _launch_ranks([sys.executable, __file__, task, json.dumps(args)], world)


def _finish(procs: list[subprocess.Popen], timeout: float = 180) -> list[tuple[int, str]]:
    try:
        return [(p.wait(timeout), p.stderr.read()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()


def _run(task: str, args: dict) -> list[tuple[int, str]]:
    return _finish(_launch(task, args))


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> str:
    """pydocs prepared once: the ranks find its cache."""
    path = tmp_path_factory.mktemp("data")
    prepare(CorpusConfig(corpus="pydocs", data_dir=str(path)), progress=False)
    return str(path)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


# -- the claims ------------------------------------------------------------------------------


def test_world_2_takes_the_one_process_step_on_the_same_rows(data_dir, tmp_path):
    for code, err in _run("equivalence", {"data_dir": data_dir, "out": str(tmp_path)}):
        assert code == 0, err
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for kind in EQUIVALENCE_KINDS:
        assert _same(ranks[0][kind], ranks[1][kind]), kind  # buffers (power iteration) too
        single = injected_weights(data_dir, kind)
        for key, want in single.items():
            if key == NOISE_ONLY:
                continue
            got = ranks[0][kind][key]
            assert torch.allclose(got, want, rtol=0, atol=ATOL), (
                kind,
                key,
                (got - want).abs().max(),
            )
        init = T.Trainer(
            resolve_run_config(_layers(data_dir, RUN, kind), progress=False)[0],
            np.zeros((4, 32), np.uint8),
            torch.device("cpu"),
        )
        changed = [k for k, v in _weights(init).items() if not torch.allclose(v, single[k])]
        assert len(changed) > len(single) // 2, kind  # three iterations really moved the weights


@pytest.fixture(scope="module")
def world2_runs(data_dir, tmp_path_factory):
    """A straight world-2 run of 6 iterations; one stopped by SIGTERM (to rank 0) at 3, copied
    aside, then resumed at world 2 to 6."""
    base = tmp_path_factory.mktemp("world2")
    runs = {}
    for name, stop_at in (("straight", None), ("split", 3)):
        out = base / f"{name}-weights"
        out.mkdir()
        train = {**RUN, "run_dir": str(base / name)}
        args = {"data_dir": data_dir, "train": train, "out": str(out), "stop_at": stop_at}
        runs[name] = _run("train", args)
    shutil.copytree(base / "split", base / "stopped")
    out = base / "resumed-weights"
    out.mkdir()
    runs["resumed"] = _run("resume", {"run_dir": str(base / "split"), "out": str(out)})
    return base, runs


def _rows(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "time"} for r in files.read_rows(run / rd.METRICS)]


def test_every_rank_holds_identical_weights(world2_runs):
    base, runs = world2_runs
    assert [code for code, _ in runs["straight"]] == [0, 0], runs["straight"]
    ranks = [torch.load(base / "straight-weights" / f"rank{r}.pt") for r in range(2)]
    assert _same(ranks[0], ranks[1])
    state = ck.load_checkpoint(base / "straight" / "checkpoints" / "iter_0000006").state
    assert state["world_size"] == 2 and len(state["ranks"]) == 2
    # Each rank drew its own rows: their data streams differ.
    assert state["ranks"][0]["rng"]["data"] != state["ranks"][1]["rng"]["data"]
    rows = _rows(base / "straight")
    assert [r["iter"] for r in rows if "critic_loss" in r] == [1, 2, 3, 4, 5, 6]
    assert [r["iter"] for r in rows if "js4" in r] == [3, 6]  # rank 0 alone wrote them


def test_sigterm_then_resume_at_world_2_is_bit_for_bit(world2_runs):
    base, runs = world2_runs
    # Only rank 0 got the signal; both stopped at iteration 3 and saved one checkpoint.
    assert [code for code, _ in runs["split"]] == [128 + signal.SIGTERM] * 2, runs["split"]
    stopped = sorted(p.name for p in (base / "stopped" / "checkpoints").iterdir())
    assert stopped == ["iter_0000002", "iter_0000003"]
    assert [code for code, _ in runs["resumed"]] == [0, 0], runs["resumed"]
    from test_train import _tensors  # every tensor and value of a checkpoint, flattened

    straight = base / "straight" / "checkpoints" / "iter_0000006"
    resumed = base / "split" / "checkpoints" / "iter_0000006"
    want, got = _tensors(straight), _tensors(resumed)
    assert want.keys() == got.keys()
    for key, value in want.items():
        same = torch.equal(value, got[key]) if torch.is_tensor(value) else value == got[key]
        assert same, key
    assert _rows(base / "split") == _rows(base / "straight")
    ranks = [torch.load(base / "resumed-weights" / f"rank{r}.pt") for r in range(2)]
    assert _same(ranks[0], ranks[1])


def test_another_world_size_on_resume_says_it_is_not_bit_exact(world2_runs, capsys):
    base, _ = world2_runs
    result = T.resume(base / "stopped", {"iters": 4}, progress=False)
    assert result.iteration == 4
    notices = [line for line in capsys.readouterr().err.splitlines() if "process(es)" in line]
    assert len(notices) == 1
    assert "written by 2 process(es) and this run has 1" in notices[0]
    assert "not bit for bit" in notices[0]


def test_the_ranks_checkpoint_together_on_a_wall_clock_grid(data_dir, tmp_path):
    """A checkpoint gathers every rank's state, so with --ckpt-minutes the ranks must agree on
    when: each goes by the latest rank's clock (they started their clocks apart)."""
    run = tmp_path / "run"
    train = {**RUN, "iters": 10**6, "max_minutes": 0.04, "eval_every": 10**6}
    train.update(ckpt_every=10**6, ckpt_minutes=0.01, keep=100, dist_timeout=30.0, run_dir=str(run))
    for code, err in _run("train", {"data_dir": data_dir, "train": train, "out": str(tmp_path)}):
        assert code == 0, err
    saved = sorted((run / "checkpoints").iterdir())
    assert len(saved) >= 2  # one on the grid at least, and the last
    for path in saved:
        assert len(ck.load_checkpoint(path).state["ranks"]) == 2


def test_the_ranks_fit_one_schedule_together(data_dir, tmp_path):
    """Each rank times its own trial of the step; they fit with the slowest rank's times, so
    they train the same iterations, stop together and end with the same weights."""
    run = tmp_path / "run"
    train = {**RUN, "iters": 10**6, "fit_iters": True, "max_minutes": 0.2, "lr_decay": "linear"}
    train.update(eval_every=10**6, ckpt_every=10**6, dist_timeout=30.0, run_dir=str(run))
    for code, err in _run("train", {"data_dir": data_dir, "train": train, "out": str(tmp_path)}):
        assert code == 0, err
    fit = json.loads((run / "fit.json").read_text())
    assert json.loads((run / rd.CONFIG).read_text())["train"]["iters"] == fit["iters"]
    last = ck.load_checkpoint(rd.RunDir(run).latest_checkpoint())
    assert 0 < last.iteration <= fit["iters"] and len(last.state["ranks"]) == 2
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    assert _same(ranks[0], ranks[1])


TIMEOUT = 15.0  # --dist-timeout of the fault tests


@pytest.mark.parametrize("fault", [signal.SIGKILL, signal.SIGSTOP], ids=["dies", "stalls"])
def test_a_dead_or_stalled_rank_ends_the_job_within_the_timeout(data_dir, tmp_path, fault):
    run = tmp_path / "run"
    train = {**RUN, "iters": 100_000, "run_dir": str(run), "dist_timeout": TIMEOUT}
    procs = _launch("train", {"data_dir": data_dir, "train": train, "out": str(tmp_path)})
    try:
        deadline = time.monotonic() + 120
        while not (run / "checkpoints" / "iter_0000002").is_dir():
            assert time.monotonic() < deadline and procs[0].poll() is None
            time.sleep(0.2)
        procs[1].send_signal(fault)
        faulted = time.monotonic()
        code = procs[0].wait(timeout=TIMEOUT + 60)
        waited = time.monotonic() - faulted
        err = procs[0].stderr.read()
    finally:
        for p in procs:  # a stopped rank 1 never exits by itself
            p.kill()
            p.wait()
    # A dead peer's socket closes at once; a stalled one is given up after the timeout.
    assert code != 0 and waited < TIMEOUT + 15, (code, waited)
    assert "another process of the job failed" in err.strip().splitlines()[-1]
    latest = rd.RunDir(run).latest_checkpoint()
    loaded = ck.load_checkpoint(latest)
    assert loaded.iteration >= 2 and len(loaded.state["ranks"]) == 2


def test_a_study_on_two_devices_runs_at_most_one_run_per_device(data_dir, tmp_path):
    from textgan.studies.constraints import StudyConfig, lipschitz_study

    lines = []
    cfg = StudyConfig(
        corpus="pydocs",
        preset="tiny",
        minutes=5.0,
        constraints=("gp", "clip", "sn"),
        device="cpu,cpu",
        iters=2,
        overrides={
            "corpus": {"data_dir": data_dir},
            "model": MODEL,
            "train": {"eval_samples": 32, "eval_every": 2, "precision": "fp32"},
        },
    )
    result = lipschitz_study(cfg, tmp_path / "study", progress=False, echo=lines.append)
    assert [r["constraint"] for r in result["rows"]] == ["gp", "clip", "sn"]
    assert [r["status"] for r in result["rows"]] == ["ok"] * 3, lines
    assert [r["iterations"] for r in result["rows"]] == [2] * 3
    started = [i for i, line in enumerate(lines) if " on cpu → " in line]
    finished = [i for i, line in enumerate(lines) if line.startswith("study: ")]
    # Two devices: the third run waits until one of the first two has finished.
    assert started[:2] == [0, 1] and finished[0] < started[2]
    config = json.loads((tmp_path / "study" / "sn" / "config.json").read_text())
    assert config["lipschitz"]["kind"] == "sn" and config["train"]["device"] == "cpu"


# -- starting and ending a job ----------------------------------------------------------------


def test_leaving_the_job_ends_the_backend_threads(data_dir, tmp_path):
    """After ``shutdown`` (torchrun's workers run it at exit) no gloo thread is left for the
    interpreter's exit, where one that still held a finished collective's tensor aborted the
    process ('terminate called without an active exception')."""
    train = {**RUN, "iters": 2, "run_dir": str(tmp_path / "run")}
    args = {"data_dir": data_dir, "train": train, "out": str(tmp_path), "threads": True}
    for code, err in _run("train", args):
        assert code == 0, err
    for rank in range(2):
        threads = json.loads((tmp_path / f"threads{rank}.json").read_text())
        assert any("gloo" in name for name in threads["before"]), threads
        assert not any("gloo" in name for name in threads["after"]), threads


def test_a_first_preparation_longer_than_the_timeout_does_not_end_the_job(tmp_path):
    """The ranks prepare the corpus before they join the job, in turns: one builds the cache
    (here 3 s longer than --dist-timeout), the other waits for it without a limit and reads it."""
    timeout = 10.0  # rank 0's plots at the end must still fit in it on a busy core
    train = {**RUN, "iters": 2, "run_dir": str(tmp_path / "run"), "dist_timeout": timeout}
    args = {"data_dir": str(tmp_path / "data"), "train": train, "out": str(tmp_path)}
    for code, err in _run("train", {**args, "slow_build": timeout + 3}):
        assert code == 0, err
    assert len(list(tmp_path.glob("build.*"))) == 1  # one rank built it, the other read it
    assert [r["iter"] for r in _rows(tmp_path / "run") if "js4" in r] == [2]


@pytest.fixture(scope="module")
def one_rank_run(data_dir, tmp_path_factory) -> Path:
    """A run of one iteration by one process, for the jobs below to resume."""
    run = tmp_path_factory.mktemp("single") / "run"
    config, prepared = resolve_run_config(
        _layers(data_dir, {**RUN, "iters": 1, "run_dir": str(run)}), progress=False
    )
    T.train(config, prepared, progress=False)
    return run


def _errors(results: list[tuple[int, str]]) -> list[str]:
    """The error lines the ranks printed, all of them together."""
    return [line for _, err in results for line in err.splitlines() if "error: " in line]


@pytest.mark.parametrize("refusal", ["folder-exists", "lock-held"])
def test_a_refusal_of_rank_0_ends_every_rank_with_one_line(
    data_dir, one_rank_run, tmp_path, refusal
):
    if refusal == "folder-exists":
        (tmp_path / "taken").mkdir()
        (tmp_path / "taken" / "notes.txt").write_text("someone else's")
        args = ["--corpus", "pydocs", "--data-dir", data_dir, "--preset", "tiny",
                "--dim", "16", "--blocks", "1", "--batch-size", "64", "--iters", "2",
                "--device", "cpu", "--run-dir", str(tmp_path / "taken")]  # fmt: skip
        holder, message = None, f"run directory {tmp_path / 'taken'} already exists"
    else:
        run = tmp_path / "run"
        shutil.copytree(one_rank_run, run)
        args = ["--resume", str(run), "--iters", "2"]
        holder, message = rd.RunDir(run).lock(), f"another process (pid {os.getpid()})"
    try:
        cmd = [sys.executable, "-m", "textgan", "train", *args, "--no-progress"]
        results = _finish(_launch_ranks(cmd))
    finally:
        if holder is not None:
            holder.release()
    assert [code for code, _ in results] == [2, 2], results
    errors = _errors(results)
    assert len(errors) == 1 and errors[0].startswith("textgan: error: "), results
    assert message in errors[0]
    assert "Traceback" not in "".join(err for _, err in results)


REPEATS = 5  # benchmarks/torchrun_exits.py runs the same job 30 times


def test_a_torchrun_job_ends_cleanly_every_time(one_rank_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(one_rank_run, run)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    for k in range(2, 2 + REPEATS):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "textgan", "train", "--resume", str(run),
               "--iters", str(k)]  # fmt: skip
        job = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert job.returncode == 0 and "terminate called" not in job.stderr, job.stderr[-3000:]
        assert rd.RunDir(run).latest_checkpoint().name == ck.checkpoint_name(k)


if __name__ == "__main__":
    sys.exit(_worker(sys.argv[1], json.loads(sys.argv[2])))
