"""The trainers' command line (training/cli.py), end to end: every way a command can end is one
line and an exit code; what a user cannot mean is said before anything is done."""
import fcntl
import json
import os
import pty
import signal
import struct
import subprocess
import sys
import termios

import pytest
import torch
from helpers import REPO, SCRIPTS, TINY, TRAINERS, assert_one_clear_line, run_script
from synthetic_cifar import write_dataset

from dataset.cifar10 import CIFAR10_URL
from safety.errors import Terminated
from training import cli, inspect_model, run


def test_no_data_and_no_network_names_url_layout_and_flag(tmp_path):
    missing = (tmp_path / "nowhere.tar.gz").as_uri()  # fails like an unreachable server
    code, _, stderr = run_script("train_mlp_numpy.py", "--data_dir", tmp_path / "data",
                                 "--data_url", missing, "--results_dir", tmp_path / "r")
    assert code == 1
    assert_one_clear_line(stderr, missing, "cifar-10-batches-py", "--data_dir", CIFAR10_URL)


def test_cuda_asked_for_without_cuda_is_one_clear_line(cifar_dir, tmp_path):
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, stderr = run_script("train_mlp_pytorch.py", "--device", "cuda", "--data_dir",
                                 cifar_dir[0], "--data_url", "", "--results_dir", tmp_path / "r")
    assert code == 1
    assert_one_clear_line(stderr, "--device cuda", "no CUDA")


@pytest.mark.parametrize("command, message", [
    (["train_mlp_numpy.py", "--lr", "-1"], "argument --lr: -1 is out of range"),
    (["train_mlp_pytorch.py", "--hidden_dims"], "argument --hidden_dims: expected at least one"),
    (["-m", "experiments", "--list"], "the following arguments are required: what"),
    (["-m", "experiments", "bogus"], "argument what: invalid choice: 'bogus'"),
    (["benchmarks/benchmark.py", "--bogus"], "unrecognized arguments: --bogus"),
    (["benchmarks/step_cost.py", "--repeat", "0"], "argument --repeat: 0 is out of range"),
    # a prefix of a flag: slurm/train.job, which looks for --data_dir among them, would not see it
    (["train_mlp_numpy.py", "--data_d", "elsewhere"], "unrecognized arguments: --data_d"),
    # it takes no argument, and rewrites README.md only when given none
    (["-m", "experiments.readme_table", "--bogus"], "unrecognized arguments: --bogus")])
def test_a_command_line_refused_is_one_line_not_the_usage_block(command, message):
    result = subprocess.run([sys.executable, *command], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 2 and result.stdout == ""
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert result.stderr.startswith(f"error: {message}")
    assert result.stderr.endswith(" (--help lists the options)\n")


@pytest.mark.parametrize("flag", ["--results_dir", "--data_dir"])
def test_a_folder_flag_given_a_file_says_so(flag, tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("")
    other = "--data_dir" if flag == "--results_dir" else "--results_dir"
    code, _, stderr = run_script("train_mlp_numpy.py", flag, regular, other, tmp_path / "x",
                                 "--data_url", "")
    assert code == 1
    assert_one_clear_line(stderr, f"{flag} {regular} is a file, not a folder")


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_stop_before_the_first_epoch_says_so(framework, cifar_dir, tmp_path, monkeypatch,
                                               capsys):
    def terminated(*args, **kwargs):
        raise Terminated()

    monkeypatch.setattr(run.Preprocessing, "fit", terminated)
    trainer, _ = TRAINERS[framework]
    args = trainer.parse_args(["--normalize", "zca", "--data_dir", str(cifar_dir[0]),
                               "--results_dir", str(tmp_path / "r"), "--batch_size", "16",
                               "--validation_size", "30", "--data_url", ""])
    with pytest.raises(SystemExit) as stopped:
        cli.train_or_evaluate(args, trainer.train, trainer.evaluate_saved)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert stopped.value.code == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "terminated before the first epoch finished; no run folder was made"


@pytest.mark.parametrize("framework", SCRIPTS)
def test_a_log_file_gets_one_line_per_epoch_and_a_terminal_gets_the_bars(framework, cifar_dir,
                                                                         tmp_path):
    script, _ = SCRIPTS[framework]
    flags = [os.path.join(REPO, script), "--hidden_dims", "16", "--epochs", "3", "--data_dir",
             str(cifar_dir[0]), *TINY, "--results_dir", str(tmp_path / "r")]
    with open(tmp_path / "job.log", "w") as log:  # what a SLURM job does with both streams
        subprocess.run([sys.executable, *flags], stdout=log, stderr=log, cwd=REPO, timeout=120,
                       check=True)
    log = (tmp_path / "job.log").read_bytes().decode()  # read_text would turn \r into \n
    assert "\r" not in log
    assert [line.split()[:2] for line in log.splitlines() if line.startswith("epoch")] == [
        ["epoch", str(n)] for n in (1, 2, 3)]
    assert log.splitlines()[-1].startswith("test accuracy ")
    terminal, bars = pty.openpty()
    fcntl.ioctl(terminal, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # 80 columns
    process = subprocess.Popen([sys.executable, *flags], stdout=subprocess.DEVNULL, stderr=bars,
                               cwd=REPO)
    os.close(bars)
    drawn = b""
    while True:
        try:
            block = os.read(terminal, 1 << 16)
        except OSError:  # the terminal's other side closed: the trainer ended
            break
        if not block:
            break
        drawn += block
    os.close(terminal)
    assert process.wait(timeout=120) == 0
    assert b"\repoch 3/3" in drawn


def memory_ran_out(*args, **kwargs):
    raise MemoryError()


# where the memory runs out -> (what is made to run out of it, what the line says)
RUNS_OUT = {
    "loading the data": ("dataset.splits.load_files",
                         "out of memory while loading the data from {data}/cifar-10-batches-py "
                         "(its uint8 images take about 1 MB, and 1 MB more while the training "
                         "batches are joined): free memory"),
    "fitting ZCA": ("training.preprocessing.affine",
                    "out of memory while fitting ZCA (a float32 copy of the 170 training images: "
                    "about 2 MB): free memory, or raise the memory limit (ulimit -v, a job's "
                    "--mem), or use --normalize channel or pixel, which keep the images uint8, "
                    "and run again"),
    "ZCA's eigenvectors": ("numpy.linalg.eigh",
                           "out of memory while fitting ZCA (a float32 copy of the 170 training "
                           "images: about 2 MB): free memory"),
    "whitening": ("training.preprocessing.Preprocessing.__call__",
                  "out of memory while whitening 170 images (ZCA keeps them in float32: about 2 "
                  "MB, twice that while they are whitened): free memory"),
    "the model": ("train_mlp_numpy.build_model",
                  "out of memory; try smaller --hidden_dims or --batch_size"),
}


@pytest.mark.parametrize("where", RUNS_OUT)
def test_running_out_of_memory_says_where_the_memory_went(where, tmp_path, monkeypatch):
    """The data and ZCA's float32 copies of it are no smaller for a smaller model: only where
    the model itself ran out are --hidden_dims and --batch_size the advice. The data is this
    test's own, so that no ZCA fit another test made is handed out instead of a new one."""
    write_dataset(tmp_path, seed=33)
    target, said = RUNS_OUT[where]
    monkeypatch.setattr(target, memory_ran_out)
    trainer, _ = TRAINERS["numpy"]
    args = trainer.parse_args(["--normalize", "zca", "--hidden_dims", "16", "--data_dir",
                               str(tmp_path), "--results_dir", str(tmp_path / "r"),
                               "--batch_size", "16", "--validation_size", "30",
                               "--data_url", ""])
    try:
        with pytest.raises(SystemExit) as ended:
            cli.train_or_evaluate(args, trainer.train, trainer.evaluate_saved)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert str(ended.value).startswith("error: " + said.format(data=tmp_path))
    assert where == "the model" or "--hidden_dims" not in str(ended.value)


# --- a log that cannot be written: a job's log on a full disk, `| head -1`, `2>&-` ---
def logged_run(script, cifar_dir, results, **streams):
    """A 3-epoch run of script whose standard streams are as streams say; its exit code and
    what it said on stderr where that is a pipe."""
    process = subprocess.Popen([sys.executable, os.path.join(REPO, script), "--epochs", "3",
                                "--hidden_dims", "16", *TINY, "--data_dir", str(cifar_dir[0]),
                                "--results_dir", str(results)], cwd=REPO, **streams)
    if streams.get("stdout") == subprocess.PIPE:  # the reader goes after the first line
        process.stdout.readline()
        process.stdout.close()
    stderr = process.stderr.read().decode() if process.stderr else None
    return process.wait(timeout=120), stderr


def assert_finished(results, weights):
    (run_dir,) = results.iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"
    assert len(json.loads((run_dir / "metrics.json").read_text())["val_accuracy"]) == 3
    assert {weights, "loss.png", "accuracy.png"} <= set(os.listdir(run_dir))


@pytest.mark.parametrize("framework, log", [("numpy", "stdout full"), ("pytorch", "stdout full"),
                                           ("numpy", "stdout pipe closed"),
                                           ("numpy", "stderr closed")])
def test_a_log_that_cannot_be_written_costs_nothing_of_the_run(framework, log, cifar_dir,
                                                             tmp_path):
    """The PyTorch trainer's first line is the device it chose: one more line that fails."""
    script, weights = SCRIPTS[framework]
    with open("/dev/full", "w") as full:
        streams = {"stdout full": dict(stdout=full, stderr=subprocess.PIPE),
                   "stdout pipe closed": dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE),
                   "stderr closed": dict(stdout=subprocess.DEVNULL,
                                         preexec_fn=lambda: os.close(2))}[log]
        code, stderr = logged_run(script, cifar_dir, tmp_path / "r", **streams)
    assert code == 0
    if streams.get("stderr") == subprocess.PIPE:
        assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    assert_finished(tmp_path / "r", weights)


@pytest.mark.parametrize("framework", SCRIPTS)
def test_an_evaluation_whose_log_cannot_be_written_still_draws_its_figures(framework, cifar_dir,
                                                                          tmp_path):
    script, weights = SCRIPTS[framework]
    assert logged_run(script, cifar_dir, tmp_path / "r", stdout=subprocess.DEVNULL)[0] == 0
    (run_dir,) = (tmp_path / "r").iterdir()
    with open("/dev/full", "w") as full:
        process = subprocess.run([sys.executable, os.path.join(REPO, script), "--evaluate",
                                  str(run_dir / weights), "--data_dir", str(cifar_dir[0]),
                                  "--figures_dir", str(tmp_path / "f")], cwd=REPO, stdout=full,
                                 stderr=subprocess.PIPE, text=True, timeout=120)
    assert process.returncode == 0, process.stderr
    assert "Traceback" not in process.stderr and "Exception ignored" not in process.stderr
    assert sorted(os.listdir(tmp_path / "f")) == sorted(inspect_model.FIGURES)
