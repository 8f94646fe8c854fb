"""Two ``textgan tune`` processes on one study in a shared storage: PostgreSQL and a journal file.

The PostgreSQL case needs a server: ``TEXTGAN_POSTGRES_URL`` names a database the test may
create studies in (``.ci/run`` installs Debian's ``postgresql``, starts it and sets the URL).
Without it, the driver (``pip install 'textgan[postgres]'``) or a server that answers, it skips
saying why; ``TEXTGAN_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) makes that a failure.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from test_tune import _children, _rows, _tune_cli

from textgan.errors import first_line

URL = "TEXTGAN_POSTGRES_URL"
REQUIRE = "TEXTGAN_REQUIRE_POSTGRES"
TRIALS = 3
WAIT_S = 120  # generous: two tune processes and their runs share two cores


def _postgres_url() -> str:
    """The server's URL, or a skip (a failure with TEXTGAN_REQUIRE_POSTGRES=1) saying why not."""
    url, problem = os.environ.get(URL), None
    if not url:
        problem = f"needs a server: set {URL}=postgresql://USER:PASSWORD@HOST/DB"
    else:
        import sqlalchemy

        try:
            engine = sqlalchemy.create_engine(url)
            with engine.connect():
                pass
            engine.dispose()
        except ImportError as err:
            problem = f"needs the driver ({err}): pip install 'textgan[postgres]'"
        except sqlalchemy.exc.SQLAlchemyError as err:
            problem = f"cannot reach the server at ${URL} ({first_line(err)})"
    if problem is not None:
        if os.environ.get(REQUIRE) == "1":
            pytest.fail(f"{REQUIRE}=1 but the PostgreSQL test {problem}")
        pytest.skip(f"PostgreSQL test {problem}")
    return url


def _trial_logs(out: Path) -> set[int]:
    """The trials a tune process started: one log each in its OUT/logs."""
    return {int(p.stem.split("-")[1]) for p in (out / "logs").glob("trial-*.log")}


def _optuna_trials(storage: str, study: str) -> list[dict]:
    """The study's trials as Optuna's own command-line tool reads them from the storage."""
    optuna_cli = shutil.which("optuna", path=str(Path(sys.executable).parent)) or "optuna"
    command = [optuna_cli, "trials", "--storage", storage, "--study-name", study, "-f", "json"]
    res = subprocess.run(command, capture_output=True, text=True, timeout=WAIT_S)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux's /proc")
@pytest.mark.parametrize("kind", ["postgresql", "journal"])
def test_two_tune_processes_share_a_study_and_survive_a_kill_9(tmp_path, kind):
    import optuna

    study = f"textgan-test-{uuid.uuid4().hex[:12]}"  # the server's database outlives the test
    if kind == "postgresql":
        url = reader_url = _postgres_url()
    else:
        reader_url = str(tmp_path / "study.log")
        url = f"journal:{reader_url}"
    flags = ("--storage", url, "--study-name", study, "--pruner", "none")
    outs = [tmp_path / "a", tmp_path / "b"]  # one OUT per process, as on two machines
    procs = [_tune_cli(tmp_path, out, TRIALS, *flags) for out in outs]
    try:
        # The first process to start a second trial (so it finished one) is killed with its
        # trial's run (kill -9); the other must fail that trial and finish the study alone.
        deadline = time.monotonic() + WAIT_S
        while not any(len(_trial_logs(out)) >= 2 for out in outs):
            assert all(p.poll() is None for p in procs), [p.communicate() for p in procs]
            assert time.monotonic() < deadline, "no process started a second trial"
            time.sleep(0.2)
        victim = 0 if len(_trial_logs(outs[0])) >= 2 else 1
        for pid in [procs[victim].pid, *_children(procs[victim].pid)]:
            os.kill(pid, signal.SIGKILL)
        killed = max(_trial_logs(outs[victim]))
        stdout, stderr = procs[1 - victim].communicate(timeout=WAIT_S)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()
    assert procs[victim].returncode == -signal.SIGKILL
    assert procs[1 - victim].returncode == 0, stderr
    assert json.loads(stdout)["train"]["preset"] == "tiny"  # the best recipe, printed
    assert f"tune: trial {killed} failed: no heartbeat" in stderr

    try:
        trials = _optuna_trials(reader_url, study)
    finally:
        if kind == "postgresql":
            optuna.delete_study(study_name=study, storage=url)
    states = {t["number"]: t["state"] for t in trials}
    complete = [t for t in trials if t["state"] == "COMPLETE"]
    # Two processes that ask at the same moment for the last trial needed: the later gives way.
    gave_way = {
        t["number"] for t in trials if t["user_attrs"].get("error", "").startswith("not needed")
    }
    # The killed trial failed and the study went on: TRIALS complete in all, not per process
    # (the killed process had finished one of them).
    assert {n for n, s in states.items() if s != "COMPLETE"} == {killed, *gave_way}
    assert states[killed] == "FAIL" and {states[n] for n in gave_way} <= {"FAIL"}
    assert len(complete) == TRIALS
    # No trial ran twice: each number in one process's folder only, every trial in one of them.
    ran = [_trial_logs(out) for out in outs]
    assert not ran[0] & ran[1] and ran[0] | ran[1] == set(states) - gave_way
    assert len({json.dumps(t["params"], sort_keys=True) for t in complete}) == TRIALS
    for t in complete:
        run_dir = outs[0 if t["number"] in ran[0] else 1] / f"trial-{t['number']:04d}"
        assert t["user_attrs"]["run_dir"] == str(run_dir)
        assert t["value"] == [r for r in _rows(run_dir) if "js1" in r][-1]["ema_js4"]


@pytest.mark.parametrize(
    ("url", "fix"),
    [
        ("postgresql://me@localhost/db", "pip install 'textgan[postgres]'"),
        ("postgresql+psycopg://me@localhost/db", "pip install 'textgan[postgres]'"),
        (
            "mysql+pymysql://me@localhost/db",
            "install the Python driver that mysql+pymysql:// names",
        ),
    ],
)
def test_a_missing_database_driver_says_how_to_install_it(tmp_path, url, fix):
    code = (
        "import sys; sys.modules['psycopg'] = sys.modules['pymysql'] = None; "
        "from textgan.cli import main; main()"
    )
    args = ["tune", "--corpus", "pydocs", "--recipe", "tiny", "--out", "t", "--storage", url]
    res = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=tmp_path
    )
    assert res.returncode == 2, res.stderr
    assert res.stderr.startswith(f"textgan: error: --storage {url}: its database driver is missing")
    assert res.stderr.endswith(f"; {fix}\n") and res.stderr.count("\n") == 1
