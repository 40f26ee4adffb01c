"""The job files on a real SLURM: a one-node cluster (slurm/local_cluster.sh) on this machine,
skipped, with the reason, where SLURM is not installed or cannot start (it runs as root); and
slurm/train.job run by bash, as a user tries it, outside SLURM. A wait lasts as long as what it
waits for makes progress: a busy machine makes a test slow, never a failure."""
import json
import os
import re
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time

import pytest
import synthetic_cifar
from helpers import REPO, run_script, run_task

pytestmark = pytest.mark.xdist_group("slurm")  # one worker, which starts one local SLURM
CLUSTER = os.path.join(REPO, "slurm", "local_cluster.sh")
JOB_FILE = os.path.join(REPO, "slurm", "train.job")
COMPARED = ["train_loss_steps", "val_accuracy", "best_epoch", "test_accuracy",
            "test_confusion_matrix"]
STALL_S = 600  # how long a wait may see no progress at all before it fails


def epochs_in(folder):
    """The epochs that the runs under folder have finished, all together."""
    total = 0
    for path in folder.rglob("metrics.json"):
        try:
            total += len(json.loads(path.read_text())["val_accuracy"])
        except (OSError, ValueError, KeyError):
            pass  # a run whose first epoch has not ended
    return total


def wait_while_progressing(done, progress, what, every_s=1.0):
    """Wait until done(), looked at every every_s seconds, however long a busy machine takes,
    as long as progress() changes within every STALL_S seconds."""
    last, since = progress(), time.time()
    while not done():
        now = progress()
        if now != last:
            last, since = now, time.time()
        assert time.time() - since < STALL_S, f"{what}: no progress in {STALL_S} s ({now})"
        time.sleep(every_s)


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


def cluster_logs(env):
    """The last lines of the local cluster's daemons' logs."""
    logs = os.path.join(os.path.dirname(env["SLURM_CONF"]), "log")
    return "\n".join(f"{name}:\n" + "".join(open(os.path.join(logs, name)).readlines()[-20:])
                     for name in sorted(os.listdir(logs)))


def job_state(job, env):
    shown = subprocess.run(["scontrol", "show", "job", job], capture_output=True, text=True,
                           env=env).stdout
    return dict(re.findall(r"(\w+)=(\S*)", shown))


def wait_for_job(job, env, progress):
    """Wait until the job is done, as long as its state or progress() changes; a requeued job is
    let start within seconds instead of after the two minutes SLURM holds it back. Returns the
    job's last state."""
    state = {}

    def done():
        state.update(job_state(job, env))
        if state["JobState"] == "PENDING" and state.get("Reason") == "BeginTime":
            # a few seconds, not at once: a start within a second of the last one's end is
            # refused by slurmd ("Job credential revoked") and the job ends FAILED
            subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now+3"], env=env)
        return state["JobState"] in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")

    try:
        wait_while_progressing(done, lambda: (state.get("JobState"), state.get("Restarts"),
                                              progress()), f"job {job}")
    except AssertionError as stalled:
        raise AssertionError(f"{stalled}\n{cluster_logs(env)}")
    return state


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
        # the job file as a student submits it, with a time limit of one minute: too short for
        # the run, which must come back to finish. SLURM looks at limits every 30 s and sends the
        # warning up to 30 s early: asked for 10 s before the limit, it comes 20 to 50 s into
        # each start, which trains a while first.
        submitted = subprocess.run(
            ["sbatch", "--parsable", "--time=1", "--signal=B:TERM@10", f"--chdir={REPO}",
             f"--output={tmp_path}/job-%j.out", os.path.join(REPO, "slurm", "train.job"),
             *map(str, flags)],
            capture_output=True, text=True, env=dict(slurm, TRAINER="train_mlp_numpy.py",
                                                     RESULTS_DIR=str(tmp_path / "results")))
        assert submitted.returncode == 0, submitted.stderr
        job = submitted.stdout.strip()
        state = wait_for_job(job, slurm, lambda: epochs_in(tmp_path / "results"))
        wait_while_progressing(lambda: reference.poll() is not None,
                               lambda: epochs_in(tmp_path / "uninterrupted"), "the reference")
        assert reference.returncode == 0, (tmp_path / "uninterrupted.log").read_text()
    finally:
        reference.kill()
    log = (tmp_path / f"job-{job}.out").read_text()
    assert state["JobState"] == "COMPLETED", log
    assert int(state["Restarts"]) >= 1 and "requeued" in log and "--resume" in log, log
    # every start goes on with the one run, a start stopped in its first epoch (a slow machine)
    # too: the next one starts it over in its folder
    (folder,) = [folder for folder in (tmp_path / "results" / f"slurm-{job}").iterdir()
                 if folder.is_dir()]
    resumed = json.loads((folder / "metrics.json").read_text())
    assert resumed["status"] == "finished", log
    (reference,) = (tmp_path / "uninterrupted").iterdir()
    uninterrupted = json.loads((reference / "metrics.json").read_text())
    assert {key: resumed[key] for key in COMPARED} == \
        {key: uninterrupted[key] for key in COMPARED}


def experiments(*arguments):
    """python -m experiments with arguments, waited for as long as its output grows; its exit
    code and output as subprocess.run gives them."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen([sys.executable, "-m", "experiments", *map(str, arguments)],
                                   stdout=out, stderr=err, text=True, cwd=REPO)
        try:
            wait_while_progressing(lambda: process.poll() is not None,
                                   lambda: (os.fstat(out.fileno()).st_size,
                                            os.fstat(err.fileno()).st_size),
                                   f"python -m experiments {arguments[0]}")
        finally:
            process.kill()
        out.seek(0)
        err.seek(0)
        return subprocess.CompletedProcess(process.args, process.returncode, out.read(),
                                           err.read())


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
    run_task(commands[0])
    halfway = experiments("report", "--data_dir", array_data / "data", "--results_dir", tmp_path)
    assert "job array tasks 1 have not finished" in halfway.stderr
    assert "Not run yet: `python -m experiments numpy-vs-torch " in \
        (tmp_path / "README.md").read_text()
    run_task(commands[1])
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
    queued = subprocess.CompletedProcess([], 0, "", "")

    def done():  # a squeue that fails (a busy controller) prints nothing either: not done
        nonlocal queued
        queued = subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True,
                                env=slurm)
        return queued.returncode == 0 and not queued.stdout.strip()

    try:
        wait_while_progressing(done, lambda: (queued.stdout, epochs_in(tmp_path / "results")),
                               f"the job array {job}")
    except AssertionError as stalled:
        raise AssertionError(f"{stalled}\nsqueue: {queued.stderr}\n{cluster_logs(slurm)}")
    logs = "".join(path.read_text() for path in tmp_path.glob("task-*.out"))
    collected = experiments("report", "--data_dir", array_data / "data", "--results_dir",
                            tmp_path / "results")
    assert collected.returncode == 0, collected.stderr + logs
    assert (tmp_path / "results" / "numpy-vs-torch").is_dir(), collected.stderr + logs
    assert summary_numbers(tmp_path / "results", "numpy-vs-torch") == \
        summary_numbers(array_data / "one-job", "numpy-vs-torch"), logs
    assert "Not run yet: `python -m experiments numpy-vs-torch " not in \
        (tmp_path / "results" / "README.md").read_text()


# --- slurm/train.job run by bash outside SLURM, or as one start of a job without a scheduler ---
FLAGS = ["--batch_size", 16, "--validation_size", 30, "--data_url", "", "--seed", 0]


def start_job_file(tmp_path, *flags, **env):
    """bash slurm/train.job with flags, training the NumPy trainer by this suite's interpreter
    into tmp_path/results, as a terminal starts it: in a process group of its own, SIGINT and
    SIGTERM at their defaults. env: SLURM's variables for one start of a job, and settings."""
    def as_a_terminal_starts_it():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.setpgrp()

    environment = {key: value for key, value in os.environ.items()
                   if not key.startswith("SLURM_")}
    environment.update(dict(PYTHON=sys.executable, TRAINER="train_mlp_numpy.py",
                            RESULTS_DIR=str(tmp_path / "results"),
                            PATH=f"{tmp_path / 'bin'}{os.pathsep}{os.environ['PATH']}"), **env)
    with open(tmp_path / "job.out", "a") as output:
        return subprocess.Popen(["bash", JOB_FILE, *map(str, flags)], cwd=REPO, stdout=output,
                                stderr=subprocess.STDOUT, env=environment,
                                preexec_fn=as_a_terminal_starts_it)


def finished_job(job, tmp_path):
    """The job file's exit code once it has ended, and its log."""
    wait_while_progressing(lambda: job.poll() is not None,
                           lambda: os.path.getsize(tmp_path / "job.out"), "the job file")
    return job.returncode, (tmp_path / "job.out").read_text()


def wait_for_epochs(folder, count, job, tmp_path):
    """Wait until the runs under folder have finished count epochs together."""
    def done():
        assert job.poll() is None, (tmp_path / "job.out").read_text()
        return epochs_in(folder) >= count

    wait_while_progressing(done, lambda: os.path.getsize(tmp_path / "job.out"), "the job file")


def status_of(run):
    return json.loads((run / "metrics.json").read_text())["status"]


def on_path(tmp_path, name, script):
    """A command called name, found first on the job file's PATH, that runs script with sh."""
    (tmp_path / "bin").mkdir(exist_ok=True)
    command = tmp_path / "bin" / name
    command.write_text(f"#!/bin/sh\n{script}\n")
    command.chmod(command.stat().st_mode | stat.S_IXUSR)


def record_requeues(tmp_path):
    """An scontrol that records in tmp_path/requeues what it is asked, and does nothing."""
    on_path(tmp_path, "scontrol", f'echo "$@" >> {tmp_path / "requeues"}')


@pytest.mark.parametrize("stop, code, status", [
    (lambda job: job.send_signal(signal.SIGTERM), 143, "terminated"),
    (lambda job: os.killpg(job.pid, signal.SIGINT), 130, "interrupted"),
    (lambda job: job.send_signal(signal.SIGINT), 130, "interrupted")],
    ids=["SIGTERM", "Ctrl-C", "SIGINT to the script alone"])
def test_the_job_file_outside_slurm_stops_and_says_how_to_resume(tmp_path, hard_cifar_dir, stop,
                                                                 code, status):
    """Nothing to requeue outside SLURM: the trainer stops, and the script says how to go on."""
    job = start_job_file(tmp_path, *FLAGS, "--epochs", 500, "--data_dir", hard_cifar_dir[0])
    wait_for_epochs(tmp_path / "results" / "slurm-local", 2, job, tmp_path)
    stop(job)
    exit_code, log = finished_job(job, tmp_path)
    (run,) = (tmp_path / "results" / "slurm-local").iterdir()
    assert (exit_code, status_of(run)) == (code, status), log
    assert "unbound variable" not in log and "requeued" not in log
    assert f"the run continues with: {sys.executable} train_mlp_numpy.py --resume {run}/" in log


def test_the_commands_the_job_file_prints_paste_back_as_they_ran(tmp_path, hard_cifar_dir):
    """The trainer's command and the resume it says to type, with an empty --data_url and a
    results folder with a space: each one word when pasted."""
    results = tmp_path / "my results"
    job = start_job_file(tmp_path, *FLAGS, "--epochs", 500, "--data_dir", hard_cifar_dir[0],
                         RESULTS_DIR=str(results))
    wait_for_epochs(results / "slurm-local", 1, job, tmp_path)
    job.send_signal(signal.SIGTERM)
    _, log = finished_job(job, tmp_path)
    (run,) = (results / "slurm-local").iterdir()
    started = next(line for line in log.splitlines() if line.startswith(sys.executable))
    assert shlex.split(started) == [sys.executable, "train_mlp_numpy.py", *map(str, FLAGS),
                                    "--epochs", "500", *["--data_dir", str(hard_cifar_dir[0])] * 2,
                                    "--results_dir", str(results / "slurm-local")]
    resume = log.split("the run continues with: ")[1].splitlines()[0]
    assert shlex.split(resume) == [sys.executable, "train_mlp_numpy.py", "--resume", f"{run}/"]


def test_the_job_file_outside_slurm_trains_the_flags_it_is_given(tmp_path, hard_cifar_dir):
    """A start after an earlier one stopped resumes nothing: it trains its own flags, in the
    --results_dir given to it (which outranks RESULTS_DIR)."""
    job = start_job_file(tmp_path, *FLAGS, "--epochs", 500, "--data_dir", hard_cifar_dir[0])
    wait_for_epochs(tmp_path / "results" / "slurm-local", 1, job, tmp_path)
    job.send_signal(signal.SIGTERM)
    finished_job(job, tmp_path)
    (stopped,) = (tmp_path / "results" / "slurm-local").iterdir()
    stopped_metrics = (stopped / "metrics.json").read_text()
    job = start_job_file(tmp_path, *FLAGS, "--epochs", 1, "--hidden_dims", 8, "--data_dir",
                         hard_cifar_dir[0], "--results_dir", tmp_path / "elsewhere")
    exit_code, log = finished_job(job, tmp_path)
    assert exit_code == 0, log
    (fresh,) = (tmp_path / "elsewhere" / "slurm-local").iterdir()
    config = json.loads((fresh / "metrics.json").read_text())["config"]
    assert status_of(fresh) == "finished" and (config["hidden_dims"], config["epochs"]) == ([8], 1)
    assert (stopped / "metrics.json").read_text() == stopped_metrics


def test_max_restarts_counts_the_starts_that_finished_no_epoch(tmp_path, hard_cifar_dir):
    """Starts of job 7 without a scheduler (scontrol records what it is asked), MAX_RESTARTS=1,
    each stopped by the SIGTERM of its time limit: however many starts came before, one that
    finished an epoch is requeued; the second start that finished none is not."""
    record_requeues(tmp_path)
    job_folder = tmp_path / "results" / "slurm-7"

    def start(restarts, more_epochs):
        """The start's exit code, stopped once it finished more_epochs (0: once its trainer
        has started)."""
        job = start_job_file(tmp_path, *FLAGS, "--epochs", 500, "--data_dir", hard_cifar_dir[0],
                             SLURM_JOB_ID="7", SLURM_RESTART_COUNT=str(restarts),
                             MAX_RESTARTS="1")
        if more_epochs:
            wait_for_epochs(job_folder, epochs_in(job_folder) + more_epochs, job, tmp_path)
        else:
            # the trainer's command, which the job file prints as it starts it, is looked for
            # every 10 ms: far less than the trainer takes to start
            def started():
                after_header = (tmp_path / "job.out").read_text().split(
                    f", start {restarts + 1}\n")
                return len(after_header) == 2 and "train_mlp_numpy.py" in after_header[1]

            wait_while_progressing(started, lambda: None, "the trainer's start", 0.01)
        job.send_signal(signal.SIGTERM)
        return finished_job(job, tmp_path)[0]

    def requeues():
        return (tmp_path / "requeues").read_text().splitlines()

    assert start(0, 1) == 0 and requeues() == ["requeue 7"]
    assert start(30, 1) == 0 and len(requeues()) == 2  # 31 starts, each finished an epoch
    assert start(31, 0) == 0 and len(requeues()) == 3  # the first that finished none
    assert start(32, 0) == 1 and len(requeues()) == 3  # the second
    log = (tmp_path / "job.out").read_text()
    assert log.count("--resume") >= 3 and "2 starts finished no epoch: not requeued again" in log


def test_a_restart_after_a_start_stopped_in_its_first_epoch_starts_that_run_over(
        tmp_path, hard_cifar_dir):
    """Job 7's first start is stopped once its run has a folder, before its first epoch ends: no
    checkpoint. Its restart starts that run over in the same folder, which then goes on to its
    epochs, and leaves no second run beside it."""
    record_requeues(tmp_path)
    job_folder = tmp_path / "results" / "slurm-7"

    def started(restarts):  # single images through wide layers: an epoch of a second or two
        return start_job_file(tmp_path, *FLAGS, "--batch_size", 1, "--lr", 0.005, "--hidden_dims",
                              2048, 2048, "--epochs", 500, "--data_dir", hard_cifar_dir[0],
                              SLURM_JOB_ID="7", SLURM_RESTART_COUNT=str(restarts))

    job = started(0)
    wait_while_progressing(lambda: any(job_folder.glob("*/metrics.json")), lambda: None,
                           "the run's folder", 0.01)
    job.send_signal(signal.SIGTERM)
    assert finished_job(job, tmp_path)[0] == 0

    def runs():  # beside them, the count of starts that finished no epoch
        return [folder for folder in job_folder.iterdir() if folder.is_dir()]

    (run,) = runs()
    assert not any(run.glob("checkpoint.*")), "stopped too late: the run has a checkpoint"
    job = started(1)
    wait_for_epochs(job_folder, 1, job, tmp_path)
    job.send_signal(signal.SIGTERM)
    _, log = finished_job(job, tmp_path)
    assert runs() == [run] and status_of(run) == "terminated", log
    assert f"--resume {run}/" in log and "it starts over, in its folder" in log, log
    assert log.count("requeued: the next start resumes") == 2, log


def test_a_restart_after_its_run_finished_trains_nothing_and_ends_well(tmp_path, hard_cifar_dir):
    """SLURM may requeue a job whose run had finished (its node failed as the job ended): the
    restart says so and exits 0, with no second run and no failed resume."""
    job_folder = tmp_path / "results" / "slurm-9"
    for restarts in (0, 1):
        job = start_job_file(tmp_path, *FLAGS, "--epochs", 1, "--data_dir", hard_cifar_dir[0],
                             SLURM_JOB_ID="9", SLURM_RESTART_COUNT=str(restarts))
        exit_code, log = finished_job(job, tmp_path)
        assert exit_code == 0, log
    (run,) = [folder for folder in job_folder.iterdir() if folder.is_dir()]
    assert status_of(run) == "finished"
    assert log.rstrip().endswith(f"{run}/ finished already: nothing is left to train"), log


def test_a_time_limit_signal_while_the_data_are_staged_requeues_the_job(tmp_path,
                                                                         hard_cifar_dir):
    """SLURM looks at time limits every 30 s and may send the warning as a start begins: a
    SIGTERM that comes while the data are copied to scratch stops that start as one during
    training does, and the job is requeued."""
    record_requeues(tmp_path)
    staging = tmp_path / "staging"
    on_path(tmp_path, "cp", f'touch {staging}; sleep 2; exec {shutil.which("cp")} "$@"')
    (tmp_path / "scratch").mkdir()
    job = start_job_file(tmp_path, *FLAGS, "--epochs", 500, "--data_dir", hard_cifar_dir[0],
                         SLURM_JOB_ID="7", TMPDIR=str(tmp_path / "scratch"))
    wait_while_progressing(staging.exists, lambda: None, "the data's staging", 0.01)
    job.send_signal(signal.SIGTERM)
    exit_code, log = finished_job(job, tmp_path)
    assert exit_code == 0 and "SIGTERM: stopping the trainer" in log, log
    assert (tmp_path / "requeues").read_text() == "requeue 7\n"
    assert os.listdir(tmp_path / "scratch") == []


def test_a_job_that_staged_its_data_prints_a_resume_that_reads_the_data_itself(tmp_path,
                                                                               hard_cifar_dir):
    """The copy in the node's scratch goes with the job: the resume line it prints names the
    data's own folder, and works."""
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    job = start_job_file(tmp_path, *FLAGS, "--epochs", 500, "--data_dir", hard_cifar_dir[0],
                         TMPDIR=str(scratch))
    wait_for_epochs(tmp_path / "results" / "slurm-local", 1, job, tmp_path)
    job.send_signal(signal.SIGTERM)
    _, log = finished_job(job, tmp_path)
    assert "data staged to" in log and os.listdir(scratch) == []
    (line,) = [line for line in log.splitlines() if "the run continues with: " in line]
    python, script, *flags = line.split("the run continues with: ")[1].split(" ")
    assert flags[-2:] == ["--data_dir", str(hard_cifar_dir[0])]
    code, _, stderr = run_script(script, *flags, timeout=300)
    assert code == 0, stderr
