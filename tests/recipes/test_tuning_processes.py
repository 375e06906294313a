"""Searches across processes: SIGKILL then resume, chief and workers."""

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

WORKER = [sys.executable, "-m", "tests.recipes._tuning_worker"]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2",
               TF_NUM_INTRAOP_THREADS="1", TF_NUM_INTEROP_THREADS="1",
               PYTHONPATH=ROOT, **extra)
    for name in ("KERASTUNER_TUNER_ID", "KERASTUNER_ORACLE_IP",
                 "KERASTUNER_ORACLE_PORT"):
        if name not in extra:
            env.pop(name, None)
    return env


def _start(args, **env):
    return subprocess.Popen(WORKER + [str(a) for a in args], cwd=ROOT,
                            env=_env(**env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _table(output):
    lines = [line for line in output.splitlines()
             if line.startswith("TABLE ")]
    assert lines, output[-3000:]
    return json.loads(lines[-1][len("TABLE "):])


def _trial(project, trial_id):
    path = os.path.join(project, f"trial_{trial_id}", "trial.json")
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def _ongoing(project):
    """Trial ids `oracle.json` lists as running (none if unreadable)."""
    try:
        with open(os.path.join(project, "oracle.json")) as f:
            ongoing = json.load(f)["ongoing_trials"]
    except FileNotFoundError:
        return []
    return list(ongoing.values())


def _stop(processes):
    for process in processes:
        if process.poll() is None:
            process.kill()
    for process in processes:
        try:
            process.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            pass


@pytest.mark.slow
def test_sigkill_mid_search_then_resume(tmp_path):
    project = os.path.join(tmp_path, "search")
    process = _start([tmp_path, "random", 2])
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            first = _trial(project, 0)
            if (first and first["status"] == "COMPLETED"
                    and "1" in _ongoing(project)):
                break
            assert process.poll() is None, process.communicate()[0]
            time.sleep(0.2)
        else:
            pytest.fail("the search did not reach its second trial")
        time.sleep(1.0)  # into the second trial's training
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        _stop([process])
    completed = _trial(project, 0)
    stamp = os.stat(os.path.join(project, "trial_0", "trial.json")
                    ).st_mtime_ns
    assert "1" in _ongoing(project)

    resumed = subprocess.run(
        WORKER + [str(tmp_path), "random", "2"], cwd=ROOT, env=_env(),
        capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    table = _table(resumed.stdout)
    assert [row["trial_id"] for row in table] == ["0", "1"]
    assert [row["status"] for row in table] == ["COMPLETED"] * 2
    # The completed trial was neither lost nor run again.
    assert table[0]["score"] == pytest.approx(completed["score"])
    assert os.stat(os.path.join(project, "trial_0", "trial.json")
                   ).st_mtime_ns == stamp
    assert not os.path.exists(os.path.join(project, "trial_2"))


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
def test_chief_and_two_workers_on_loopback(tmp_path):
    oracle = dict(KERASTUNER_ORACLE_IP="127.0.0.1",
                  KERASTUNER_ORACLE_PORT=str(_free_port()))
    args = [tmp_path, "random", 3]
    processes = [_start(args, KERASTUNER_TUNER_ID="chief", **oracle)]
    try:
        time.sleep(2)
        processes += [_start(args, KERASTUNER_TUNER_ID=f"tuner{i}", **oracle)
                      for i in range(2)]
        outputs = [p.communicate(timeout=420)[0] for p in processes]
    finally:
        _stop(processes)
    for process, output in zip(processes, outputs, strict=True):
        assert process.returncode == 0, output[-3000:]
    table = _table(outputs[0])
    assert sorted(row["trial_id"] for row in table) == ["0", "1", "2"]
    assert all(row["status"] == "COMPLETED" for row in table)
    # Workers ran the trials; they print no table of their own.
    assert not any(line.startswith("TABLE ") for output in outputs[1:]
                   for line in output.splitlines())
    configs = [json.dumps({k: v for k, v in row.items()
                           if k not in ("trial_id", "status", "score",
                                        "epochs_run")}, sort_keys=True)
               for row in table]
    assert len(set(configs)) == 3
