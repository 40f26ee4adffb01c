"""The job files on a real SLURM: a one-node cluster (slurm/local_cluster.sh) on this machine.
Skipped, with the reason, where SLURM is not installed or cannot start (it runs as root)."""
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
import synthetic_cifar
from helpers import REPO

pytestmark = pytest.mark.xdist_group("slurm")  # one worker: a local SLURM listens on fixed ports
CLUSTER = os.path.join(REPO, "slurm", "local_cluster.sh")
COMPARED = ["train_loss_steps", "val_accuracy", "best_epoch", "test_accuracy",
            "test_confusion_matrix"]


@pytest.fixture(scope="module")
def slurm(tmp_path_factory):
    """The environment in which sbatch, squeue and scontrol talk to the local cluster."""
    if shutil.which("slurmctld") is None:
        pytest.skip("SLURM is not installed (apt-get install slurm-wlm munge)")
    if os.geteuid() != 0:
        pytest.skip("the local SLURM runs its daemons as root")
    folder = tmp_path_factory.mktemp("slurm")
    started = subprocess.run([CLUSTER, "start", folder], capture_output=True, text=True,
                             timeout=180)
    if started.returncode != 0:
        pytest.skip(f"the local SLURM did not start: {started.stderr.strip()}")
    yield dict(os.environ, SLURM_CONF=str(folder / "slurm.conf"), PYTHON=sys.executable)
    subprocess.run([CLUSTER, "stop", folder], timeout=60)


def job_state(job, env):
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True,
                           env=env).stdout
    return dict(re.findall(r"(\w+)=(\S*)", shown))


def wait_for_job(job, env, timeout):
    """Wait until the job is done; a requeued job is let start within seconds instead of after the
    two minutes SLURM holds it back. Returns the job's last state."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        state = job_state(job, env)
        if state["JobState"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT"):
            return state
        if state["JobState"] == "PENDING" and state.get("Reason") == "BeginTime":
            # a few seconds, not at once: a start within a second of the last one's end is
            # refused by slurmd ("Job credential revoked") and the job ends FAILED
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now+3"], env=env)
        time.sleep(1)
    raise AssertionError(f"job {job} not done within {timeout} s: {state}")


@pytest.mark.slow  # a time limit is a minute at least, and the run must outlast its warning
def test_a_job_at_its_time_limit_is_requeued_and_finishes_as_if_uninterrupted(slurm, tmp_path):
    synthetic_cifar.write_dataset(tmp_path / "data", per_batch=400, brightness=15,
                                  label_noise=0.2)
    flags = ["--hidden_dims", 1024, 1024, "--lr", 0.01, "--epochs", 40, "--batch_size", 16,
             "--validation_size", 100, "--dropout", 0.1, "--data_dir", tmp_path / "data",
             "--data_url", ""]
    # the same run uninterrupted, trained meanwhile; its progress bars go to a file, as a pipe
    # nobody reads would fill and stop it
    with open(tmp_path / "uninterrupted.log", "w") as output:
        reference = subprocess.Popen(
            [sys.executable, os.path.join(REPO, "train_mlp_numpy.py"), *map(str, flags),
             "--results_dir", str(tmp_path / "uninterrupted")],
            cwd=REPO, stdout=output, stderr=subprocess.STDOUT)
    try:
        # the job file as a student submits it, with a time limit of one minute and the warning
        # 30 s before it: too short for the run, which must come back to finish
        submitted = subprocess.run(
            ["sbatch", "--parsable", "--time=1", "--signal=B:TERM@30", f"--chdir={REPO}",
             f"--output={tmp_path}/job-%j.out", os.path.join(REPO, "slurm", "train.job"),
             *map(str, flags)],
            capture_output=True, text=True, env=dict(slurm, TRAINER="train_mlp_numpy.py",
                                                     RESULTS_DIR=str(tmp_path / "results")))
        assert submitted.returncode == 0, submitted.stderr
        job = submitted.stdout.strip()
        state = wait_for_job(job, slurm, timeout=600)
        assert reference.wait(timeout=600) == 0, (tmp_path / "uninterrupted.log").read_text()
    finally:
        reference.kill()
    log = (tmp_path / f"job-{job}.out").read_text()
    assert state["JobState"] == "COMPLETED", log
    assert int(state["Restarts"]) >= 1 and "requeued" in log and "--resume" in log, log
    (run_dir,) = (tmp_path / "results" / f"slurm-{job}").iterdir()
    (reference,) = (tmp_path / "uninterrupted").iterdir()
    resumed, uninterrupted = (json.loads((folder / "metrics.json").read_text())
                              for folder in (run_dir, reference))
    assert resumed["status"] == "finished"
    assert {key: resumed[key] for key in COMPARED} == \
        {key: uninterrupted[key] for key in COMPARED}


def experiments(*arguments, env=None):
    return subprocess.run([sys.executable, "-m", "experiments", *map(str, arguments)],
                          capture_output=True, text=True, timeout=600, env=env, cwd=REPO)


def summary_numbers(results, name):
    summary = json.loads((results / name / "summary.json").read_text())
    numbers = []
    for run in summary["runs"]:
        metrics = json.loads((results / name / run["run_dir"] / "metrics.json").read_text())
        numbers.append((run["label"], {key: metrics[key] for key in COMPARED}))
    return numbers


@pytest.fixture(scope="module")
def array_data(tmp_path_factory):
    root = tmp_path_factory.mktemp("array")
    synthetic_cifar.write_dataset(root / "data", per_batch=1050)  # room for 5,000 validation
    done = experiments("numpy-vs-torch", "--data_dir", root / "data", "--results_dir",
                       root / "one-job")
    assert done.returncode == 0, done.stderr
    return root


def test_the_listed_commands_collected_by_the_report_make_the_same_set(array_data, tmp_path):
    listed = experiments("numpy-vs-torch", "--list", "--data_dir", array_data / "data",
                         "--results_dir", tmp_path)
    commands = listed.stdout.strip().splitlines()
    assert listed.returncode == 0 and len(commands) == 2
    first = subprocess.run(commands[0], shell=True, cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    halfway = experiments("report", "--data_dir", array_data / "data", "--results_dir", tmp_path)
    assert "job array tasks 1 have not finished" in halfway.stderr
    assert "Not run yet: `python -m experiments numpy-vs-torch`" in \
        (tmp_path / "README.md").read_text()
    second = subprocess.run(commands[1], shell=True, cwd=REPO, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    collected = experiments("report", "--data_dir", array_data / "data", "--results_dir",
                            tmp_path)
    assert collected.returncode == 0, collected.stderr
    assert summary_numbers(tmp_path, "numpy-vs-torch") == \
        summary_numbers(array_data / "one-job", "numpy-vs-torch")


def test_a_set_whose_rows_build_on_each_other_is_no_array():
    refused = experiments("search", "--list")
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "error: the search set cannot run as a job array: each of its rows depends on the ones "
        "before; run it as one job"]


def test_a_set_runs_as_a_slurm_job_array(slurm, array_data, tmp_path):
    submitted = subprocess.run(
        ["sbatch", "--parsable", "--array=0-1", f"--chdir={REPO}",
         f"--output={tmp_path}/task-%A_%a.out", os.path.join(REPO, "slurm", "experiments.job"),
         "numpy-vs-torch", "--data_dir", str(array_data / "data"), "--results_dir",
         str(tmp_path / "results")], capture_output=True, text=True, env=slurm)
    assert submitted.returncode == 0, submitted.stderr
    job = submitted.stdout.strip()
    deadline = time.time() + 600
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True,
                         env=slurm).stdout.strip():
        assert time.time() < deadline, "the array did not finish within 10 minutes"
        time.sleep(1)
    logs = "".join(path.read_text() for path in tmp_path.glob("task-*.out"))
    collected = experiments("report", "--data_dir", array_data / "data", "--results_dir",
                            tmp_path / "results")
    assert collected.returncode == 0, collected.stderr + logs
    assert summary_numbers(tmp_path / "results", "numpy-vs-torch") == \
        summary_numbers(array_data / "one-job", "numpy-vs-torch"), logs
    assert "Not run yet: `python -m experiments numpy-vs-torch`" not in \
        (tmp_path / "results" / "README.md").read_text()
