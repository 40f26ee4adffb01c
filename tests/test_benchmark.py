"""The benchmark (benchmarks/benchmark.py) runs from any folder, stops with one line, and prints
commands that a shell reads back as they ran; the step cost (benchmarks/step_cost.py) times each
step of --preset best's network."""
import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import types

import pytest
import synthetic_cifar
from helpers import REPO, copy_of_the_repository, default_stop_signals

from benchmarks import benchmark, step_cost
from safety.errors import UserError


def test_the_benchmark_runs_from_any_folder_and_stops_with_one_line(tmp_path):
    copy = copy_of_the_repository(tmp_path)
    synthetic_cifar.write_dataset(copy / "data", per_batch=1100)  # room for 5,000 validation
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "benchmarks.benchmark", "numpy", "--repeat",
                             "1"], cwd=elsewhere, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(copy)))
    assert result.returncode == 0, result.stderr
    assert json.loads((copy / "results" / "benchmark.json").read_text())["runs"][0]["benchmark"] \
        == "numpy"
    # a measured run writes its results to a temporary folder: once one is there, the benchmark
    # has begun; three runs can take less than a few seconds, so no fixed wait would do
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.benchmark", "numpy"],
                               cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, PYTHONPATH=str(copy),
                                                   TMPDIR=str(scratch)),
                               preexec_fn=default_stop_signals)
    deadline = time.time() + 60
    while not any(scratch.iterdir()):
        assert time.time() < deadline and process.poll() is None, process.communicate()
        time.sleep(0.01)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines() == ["interrupted before the benchmarks finished; "
                                           "results/benchmark.json is as it was"]


@pytest.mark.parametrize("script", ["benchmark.py", "step_cost.py"])
def test_each_benchmark_runs_as_a_file_too(script, tmp_path):
    """python benchmarks/benchmark.py, as a file and from another folder, finds the repository's
    packages as `python -m benchmarks.benchmark` does."""
    result = subprocess.run([sys.executable, os.path.join(REPO, "benchmarks", script), "--help"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: {script}")


@pytest.mark.parametrize("code, reason", [
    ("import sys; sys.exit(3)", "it said nothing; run it by hand to see why"),
    ("import sys; sys.exit('error: --data_dir x lacks data_batch_4')", "--data_dir x lacks "
                                                                       "data_batch_4")])
def test_the_commands_it_prints_paste_back_as_they_ran_with_why_they_failed(code, reason,
                                                                            tmp_path):
    """An empty --data_url and a folder with a space: each one word when pasted; the run's own
    last line says why it failed, as its temporary results folder is gone by then."""
    command = [sys.executable, "-c", code, "--data_url", "", "--results_dir",
               str(tmp_path / "a folder")]
    with pytest.raises(SystemExit) as ended:
        benchmark.measure(command)
    said = str(ended.value.code)
    assert said.startswith("error: ") and said.endswith(f" failed: {reason}")
    assert shlex.split(said[len("error: "):-len(f" failed: {reason}")]) == command
    metrics = {"epoch_seconds": [1.0], "test_accuracy": 0.5}
    row = benchmark.summary_row("numpy", command[1:], [(1.0, 100.0, metrics)])
    assert shlex.split(row["command"]) == ["python", *command[1:]]


def test_the_step_cost_times_a_batch_and_each_optimizer_step_of_the_preset_network(tmp_path):
    copy = copy_of_the_repository(tmp_path)
    result = subprocess.run([sys.executable, "-m", "benchmarks.step_cost", "--repeat", "2"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(copy)))
    assert result.returncode == 0, result.stderr
    saved = json.loads((copy / "results" / "step-cost.json").read_text())
    assert saved["repeat"] == 2 and len(saved["seconds"]) == 3
    assert all(seconds > 0 for seconds in saved["seconds"].values())
    rows = [line for line in result.stdout.splitlines() if line.startswith("| ")][1:]
    assert [row.split(" | ")[0][2:] for row in rows] == list(saved["seconds"])
    assert "(weights 1024x512, 1024x1024, 10x1024)" in result.stdout


def test_the_step_cost_on_a_torch_without_muon_is_refused_before_any_timing(monkeypatch):
    """requirements.txt allows a torch older than torch.optim.Muon: one line, before minutes of
    timings, not a traceback after them."""
    monkeypatch.delattr(step_cost.torch.optim, "Muon")
    monkeypatch.setattr(step_cost, "measure", lambda repeat: pytest.fail("timed first"))
    with pytest.raises(UserError, match=r"has no torch\.optim\.Muon"):
        step_cost.main(argparse.Namespace(repeat=1))


def test_a_benchmark_run_replaces_its_own_rows_and_keeps_the_others(tmp_path, monkeypatch,
                                                                    capsys):
    """A run of one benchmark on other data: its row, naming that data, replaces the saved row of
    the same benchmark; another benchmark's saved row is kept with its machine, date and
    repeats, though a row beside it is damaged. A benchmark named twice is one row."""
    saved = tmp_path / "results" / "benchmark.json"
    saved.parent.mkdir()
    saved.write_text(json.dumps({"machine": "old machine", "date": "2026-01-01", "repeat": 5,
                                 "runs": [{"benchmark": "numpy", "wall_s_median": 1.0},
                                          {"benchmark": "pytorch", "wall_s_median": 2.0},
                                          {"a row": "damaged by hand"}]}))
    monkeypatch.setattr(benchmark, "HERE", str(tmp_path))
    monkeypatch.setattr(benchmark, "measure", lambda command: (3.0, 100.0))
    monkeypatch.setattr(benchmark, "only_run", lambda results: {
        "epoch_seconds": [1.0], "test_accuracy": 0.5})
    benchmark.main(argparse.Namespace(device="cpu", names=["pytorch", "pytorch"], repeat=1,
                                      data_dir=str(tmp_path / "synthetic")))
    numpy_row, torch_row = json.loads(saved.read_text())["runs"]
    assert numpy_row == {"benchmark": "numpy", "wall_s_median": 1.0, "machine": "old machine",
                         "date": "2026-01-01", "repeat": 5}
    assert torch_row["benchmark"] == "pytorch" and torch_row["wall_s_median"] == 3.0
    assert torch_row["repeat"] == 1 and f"--data_dir {tmp_path / 'synthetic'}" in \
        torch_row["command"]


def test_a_benchmarks_row_holds_the_median_time_and_the_largest_peak_of_its_repeats():
    metrics = [dict(epoch_seconds=[1.0, 2.0], test_accuracy=0.5, peak_gpu_memory_mb=None),
               dict(epoch_seconds=[2.0, 2.0], test_accuracy=0.5, peak_gpu_memory_mb=7.0),
               dict(epoch_seconds=[9.0, 1.0], test_accuracy=0.5, peak_gpu_memory_mb=3.0)]
    row = benchmark.summary_row("numpy", ["train_mlp_numpy.py"],
                                zip([12.0, 10.0, 30.0], [300.0, 500.0, 200.0], metrics))
    assert (row["wall_s_median"], row["wall_s_all"], row["training_s_median"]) == (
        12.0, [12.0, 10.0, 30.0], 4.0)
    assert (row["peak_rss_mb_max"], row["peak_gpu_mb_max"]) == (500.0, 7.0)
    assert row["command"] == "python train_mlp_numpy.py"


def test_a_step_is_timed_after_one_untimed_call(monkeypatch):
    """The first call (allocations, lazy set-up) is the slow one: it is not among the timings.
    A clock that ticks once a reading; the first call reads it ten times more."""
    ticks, calls = iter(range(100)), []
    monkeypatch.setattr(step_cost, "time", types.SimpleNamespace(perf_counter=lambda: next(ticks)))

    def step():
        calls.append(len(calls))
        for _ in range(10 if len(calls) == 1 else 0):
            next(ticks)

    assert step_cost.timed(step, 3) == 1 and len(calls) == 4
