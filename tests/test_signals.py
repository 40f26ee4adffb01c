"""Stop signals (safety/signals.py) on a real trainer process: Ctrl-C and SIGTERM keep the finished
epochs and exit with their codes, and a stop during the imports exits quietly."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from helpers import REPO, SCRIPTS, TINY, default_stop_signals, start_trainer, wait_for_epochs

import train_mlp_numpy
from safety import signals
from safety.console import say
from safety.errors import Terminated
from training import cli, run, run_folder


@pytest.mark.parametrize("framework", SCRIPTS)
@pytest.mark.parametrize("signum, code, status", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")])
def test_a_stop_signal_keeps_finished_epochs_and_exits_with_its_code(framework, signum, code,
                                                                     status, cifar_dir, tmp_path):
    script, weights = SCRIPTS[framework]
    results = tmp_path / "r"
    process = start_trainer(script, "--epochs", 100000, "--hidden_dims", 16, *TINY,
                            "--data_dir", cifar_dir[0], "--results_dir", results)
    try:
        wait_for_epochs(results, 2, process)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(f"{status} after ")
    (folder,) = os.listdir(results)
    metrics = json.loads((results / folder / "metrics.json").read_text())
    assert metrics["status"] == status and len(metrics["val_accuracy"]) >= 2
    assert {"loss.png", "accuracy.png", weights} <= set(os.listdir(results / folder))


def signal_handler_installed(pid, signum):
    """Whether process pid catches signum (Linux: the SigCgt mask of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt"))
    return bool(caught >> (signum - 1) & 1)


def signalled_while_starting(signum, delay, *flags):
    """Start the PyTorch trainer with flags, send signum delay seconds after its guard catches
    SIGTERM (from the script's first lines on, before torch is imported); (exit code, stderr)."""
    process = start_trainer("train_mlp_pytorch.py", *flags)
    try:
        deadline = time.time() + 30
        while not signal_handler_installed(process.pid, signal.SIGTERM):
            assert time.time() < deadline and process.poll() is None
            time.sleep(0.002)
        time.sleep(delay)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    return process.returncode, stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_during_the_imports_exits_quietly(signum, code, tmp_path):
    returncode, stderr = signalled_while_starting(signum, 0, "--data_dir", tmp_path,
                                                  "--data_url", "", "--results_dir", tmp_path / "r")
    assert returncode == code
    assert "Traceback" not in stderr, stderr


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_a_stop_signal_at_any_moment_of_the_start_exits_with_its_code(cifar_dir, tmp_path):
    """From the guard's first moment through torch's and NumPy's imports to the run's own
    handler: torch swallows an exception raised while it imports NumPy, so the guard must not
    raise one there."""
    moments = [1.5 * index / 14 for index in range(15)]
    for index, delay in enumerate(moments):
        signum, code = [(signal.SIGINT, 130), (signal.SIGTERM, 143)][index % 2]
        returncode, stderr = signalled_while_starting(
            signum, delay, "--epochs", 100000, "--hidden_dims", 16, *TINY,
            "--data_dir", cifar_dir[0], "--results_dir", tmp_path / str(index))
        assert (returncode, "Traceback" in stderr) == (code, False), (delay, stderr)
        word = "interrupted" if signum == signal.SIGINT else "terminated"
        assert stderr.strip().splitlines()[-1].startswith(word), (delay, stderr)


class DropsWhatItsDestructorRaises:
    """Sends this process SIGTERM from its destructor, where the handler's exception is raised and
    Python drops it (an exception cannot leave a destructor)."""

    def __del__(self):
        signal.raise_signal(signal.SIGTERM)


@contextlib.contextmanager
def stops_raised():
    """The run's stop handlers inside the block; the handlers and unraisable hook there were
    after it."""
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    hook = sys.unraisablehook  # the handler replaces it
    try:
        signals.handle_stop_signals()
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sys.unraisablehook = hook


def test_a_stop_a_destructor_dropped_is_sent_again():
    """Such a stop would leave a run training on to its last epoch."""
    with stops_raised(), pytest.raises(Terminated):
        DropsWhatItsDestructorRaises()  # SIGTERM is sent, and its stop dropped at once
        time.sleep(5)


SWALLOWS_A_STOP = """import os, signal, time
try:  # as the initialization of a compiled module can: what it raised is cleared
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.2)
except BaseException:
    pass
"""


def test_a_stop_inside_an_import_is_sent_again_once_the_import_is_done(tmp_path, monkeypatch):
    """NumPy's random module, imported lazily in the run's first steps, swallows a stop."""
    (tmp_path / "swallows_a_stop.py").write_text(SWALLOWS_A_STOP)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "swallows_a_stop", raising=False)
    with stops_raised(), pytest.raises(Terminated):
        import swallows_a_stop  # noqa: F401
        assert "swallows_a_stop" in sys.modules  # the import finished
        time.sleep(5)


RUNS_WHEN_IMPORTED = """import os, signal, time
import train_mlp_numpy
from safety import signals
from safety.console import say
signals.handle_stop_signals()
os.kill(os.getpid(), signal.SIGTERM)
time.sleep(5)
"""


def test_a_run_begun_inside_an_import_stops_there(tmp_path, monkeypatch):
    """A script that runs when it is imported: the imports under way when its run began are not
    ones a stop must wait for."""
    (tmp_path / "runs_when_imported.py").write_text(RUNS_WHEN_IMPORTED)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "runs_when_imported", raising=False)
    with stops_raised(), pytest.raises(Terminated):
        import runs_when_imported  # noqa: F401


def test_an_ignored_sigint_does_not_take_the_place_of_the_sigterm_after_it_in_a_write():
    """Under nohup or in a background job SIGINT is ignored; a SIGTERM that follows it while a
    file is written still stops the run once the file is whole."""
    original = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        with stops_raised(), pytest.raises(Terminated):
            with signals.stop_signals_deferred():
                signal.raise_signal(signal.SIGINT)
                signal.raise_signal(signal.SIGTERM)
            time.sleep(1)
    finally:
        signal.signal(signal.SIGINT, original)


def ending(call, **kwargs):
    """What call(**kwargs) raised, whatever it was (a stop must not end pytest's own run)."""
    try:
        call(**kwargs)
    except BaseException as raised:
        return raised


def numpy_run_ending(cifar_dir, tmp_path):
    """What a tiny 2-epoch NumPy run raised, the run's stop handlers in place."""
    with stops_raised():
        return ending(train_mlp_numpy.train, hidden_dims=[8], epochs=2, batch_size=16,
                      data_dir=str(cifar_dir[0]), results_dir=str(tmp_path / "r"),
                      validation_size=30, data_url="")


def said_with_a_second_stop(line, stream=None):
    """say(line, stream), a Ctrl-C arriving as it starts."""
    signal.raise_signal(signal.SIGINT)
    say(line, stream)


def test_a_second_stop_while_a_stopped_run_says_its_last_line_is_ignored(cifar_dir, tmp_path,
                                                                        monkeypatch):
    """The first stop's line and exit code stand: a Ctrl-C after a SIGTERM, or a stop sent
    again, arriving as the run says how it ended."""
    def stopped_after_an_epoch(self, val_accuracy, state):
        raise Terminated()

    monkeypatch.setattr(run.TrainingRun, "end_epoch", stopped_after_an_epoch)
    monkeypatch.setattr(run_folder, "say", said_with_a_second_stop)
    raised = numpy_run_ending(cifar_dir, tmp_path)
    assert type(raised) is Terminated


def test_a_second_stop_while_run_cli_says_the_first_is_ignored(monkeypatch, capsys):
    def stopped():
        raise Terminated()

    monkeypatch.setattr(cli, "say", said_with_a_second_stop)
    with stops_raised():
        raised = ending(cli.run_cli, function=stopped)
    assert type(raised) is SystemExit and raised.code == 143
    assert capsys.readouterr().err.strip() == "terminated before any result was written"


def test_a_stop_while_an_epoch_line_is_written_comes_after_the_whole_line(cifar_dir, tmp_path,
                                                                          monkeypatch, capsys):
    """tqdm.write releases its lock in a finally, which a stop landing before the lock was
    taken reaches: the run would end in a RuntimeError, exit 1, instead of its stop."""
    write = run.tqdm.write

    def written_with_a_stop(line, *args, **kwargs):
        signal.raise_signal(signal.SIGTERM)
        write(line, *args, **kwargs)

    monkeypatch.setattr(run.tqdm, "write", written_with_a_stop)
    raised = numpy_run_ending(cifar_dir, tmp_path)
    assert type(raised) is Terminated
    assert capsys.readouterr().out.startswith("epoch   1  train loss ")


AFTER_THE_WORK = """import os, signal, time
from training.cli import run_cli
run_cli(lambda: print("done", flush=True))
os.kill(os.getpid(), signal.{name})  # as a scheduler's stop can land while the process ends
time.sleep(0.2)
"""


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_stop_after_the_work_is_done_leaves_the_exit_code_zero(name):
    """A run finished and recorded is not stopped: a job that ran it must not end as failed."""
    finished = subprocess.run([sys.executable, "-c", AFTER_THE_WORK.format(name=name)], cwd=REPO,
                              capture_output=True, text=True, timeout=60,
                              preexec_fn=default_stop_signals)
    assert (finished.returncode, finished.stdout, finished.stderr) == (0, "done\n", "")


TWO_STEPS = """import os, signal, time
from training.cli import run_cli
run_cli(lambda: None)  # as --evaluate checks its flags, then evaluates
run_cli(lambda: (os.kill(os.getpid(), signal.SIGTERM), time.sleep(5)), "in the second step")
print("not stopped", flush=True)
"""


def test_a_stop_in_a_second_step_stops_it_as_one_in_the_first():
    stopped = subprocess.run([sys.executable, "-c", TWO_STEPS], cwd=REPO, capture_output=True,
                             text=True, timeout=60, preexec_fn=default_stop_signals)
    assert (stopped.returncode, stopped.stdout) == (143, "")
    assert stopped.stderr.strip() == "terminated in the second step"
