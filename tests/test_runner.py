"""A set run in one process and as a job array side by side: its working folder is held by one
process at a time, the set run in one process never touches its job array's tasks, and the
report collects an array only once every task has finished the very run its set declares, never
downloading anything and always writing the report."""
import dataclasses
import hashlib
import json
import os
import pathlib
import re
import shlex
import subprocess
import sys
import types

import pytest
from helpers import REPO, assert_one_clear_line, copy_of_the_repository, files_of, run_task

from dataset import fetch
from dataset.cifar10 import TARBALL_NAME
from experiments import runner
from experiments.runs import run
from experiments.sets import SETS
from experiments.store import DATA_DIR, Results, set_command
from safety.errors import DataError, UserError
from safety.locks import FolderLock
from training.inspect_model import FIGURES
from training.options import Config

TINY = dict(batch_size=16, validation_size=30, data_url="", epochs=1, hidden_dims=[16])
NAME = "numpy-vs-torch"


@pytest.fixture
def small_set(tmp_path):
    """The numpy-vs-torch set as two tiny runs: (the set, its results, the sets main knows)."""
    small = dataclasses.replace(SETS[NAME], runs=[run("numpy", "NumPy", trainer="numpy", **TINY),
                                                  run("pytorch", "PyTorch", **TINY)])
    return small, Results(tmp_path / "results"), {**SETS, NAME: small}


def working_folder(results, name=NAME):
    return pathlib.Path(results.set_folders(name)[1])


def task_runs(results, index, name=NAME):
    """The run folders that task index of the set's job array left."""
    return sorted((working_folder(results, name) / "job-array" / "tasks" / str(index)).iterdir())


def report(data, results, sets, capsys):
    """`python -m experiments report`: what it said, and the report it wrote."""
    capsys.readouterr()
    runner.main("report", str(data), "synthetic", results=results, experiment_sets=sets)
    said = capsys.readouterr()
    return said.out + said.err, open(results.path("README.md")).read()


# --- one process and a job array side by side ---
def test_a_set_in_one_process_never_touches_its_job_arrays_tasks(small_set, cifar_dir):
    small, results, _ = small_set
    run_task(runner.array_commands(small, str(cifar_dir[0]), results)[0])
    tasks = files_of(working_folder(results))
    assert any(name.endswith("metrics.json") for name in tasks)
    runner.train_set(small, str(cifar_dir[0]), "synthetic", results)
    assert files_of(working_folder(results)) == tasks
    assert results.load(NAME)["runs"][0]["run_dir"].startswith("runs/")


def test_a_finished_set_says_where_its_results_are_now(small_set, cifar_dir, capsys):
    """Each run's own line names the set's working folder, which its runs leave when the set
    finishes: the set's last line names the folder they are in then."""
    small, results, _ = small_set
    runner.train_set(small, str(cifar_dir[0]), "synthetic", results)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    folder = results.path(NAME)
    assert last == f"[{NAME}] finished: its results are in {folder}"
    assert os.path.isfile(os.path.join(folder, "summary.json"))


def test_a_finished_set_takes_its_place_though_a_killed_one_left_its_old_results_behind(
        tmp_path):
    """A SIGKILL while the results a set replaced were deleted leaves them half deleted beside
    the new ones' folder: the next set that finishes still moves its results in."""
    new, old = tmp_path / ".set" / "one-job", tmp_path / "set"
    for folder, name in ((new, "new"), (old, "old"), (tmp_path / ".set" / "one-job.replaced",
                                                       "left")):
        (folder / "runs").mkdir(parents=True)
        (folder / "runs" / name).write_text(name)
    runner.replace_folder(str(new), str(old))
    assert files_of(old) == {os.path.join("runs", "new"): b"new"}
    assert os.listdir(tmp_path / ".set") == []


def test_the_results_a_set_replaces_are_deleted_only_once_the_new_ones_are_in_place(
        tmp_path, monkeypatch):
    """A kill at any moment of the replacement leaves one whole set of results in the set's
    folder or beside it: nothing is deleted while the old results are the only ones there."""
    new, old = tmp_path / ".set" / "one-job", tmp_path / "set"
    for folder, name in ((new, "new"), (old, "old")):
        folder.mkdir(parents=True)
        (folder / "summary.json").write_text(name)
    in_place_when_deleting, delete = [], runner.shutil.rmtree

    def watched(path, *args, **kwargs):
        if os.path.exists(path):
            in_place_when_deleting.append((old / "summary.json").read_text())
        delete(path, *args, **kwargs)

    monkeypatch.setattr(runner.shutil, "rmtree", watched)
    runner.replace_folder(str(new), str(old))
    assert set(in_place_when_deleting) == {"new"} and (old / "summary.json").read_text() == "new"


def test_a_set_run_again_while_it_runs_is_refused(small_set, cifar_dir, monkeypatch):
    small, results, _ = small_set
    refusals, real_training = [], runner.train_run

    def started_again_meanwhile(one, flags, runs_dir, data_dir):
        with pytest.raises(UserError) as refused:
            runner.train_set(small, data_dir, "synthetic", results)
        refusals.append(str(refused.value))
        return real_training(one, flags, runs_dir, data_dir)

    monkeypatch.setattr(runner, "train_run", started_again_meanwhile)
    runner.train_set(small, str(cifar_dir[0]), "synthetic", results)
    assert len(refusals) == 2 and "another `python -m experiments numpy-vs-torch`" in refusals[0]
    assert len(results.load(NAME)["runs"]) == 2  # the first run of the set finished as it was


def test_a_set_held_by_another_process_is_one_line_and_exit_1(tmp_path):
    results = Results(tmp_path / "results")
    working_folder(results).mkdir(parents=True)
    with FolderLock(str(working_folder(results)), "is in use by this test"):
        second = subprocess.run([sys.executable, "-m", "experiments", NAME, "--results_dir",
                                 results.folder, "--data_dir", str(tmp_path / "no-data")],
                                cwd=REPO, capture_output=True, text=True, timeout=120)
    assert second.returncode == 1
    assert_one_clear_line(second.stderr, "is in use: another `python -m experiments "
                          "numpy-vs-torch`")


@pytest.mark.parametrize("what", ["report", NAME])
@pytest.mark.parametrize("flag", ["--results_dir", "--data_dir"])
def test_an_empty_folder_name_is_refused_before_anything_is_written(what, flag, tmp_path):
    """'' is no folder: read as the folder the command runs in, the report would replace that
    folder's README.md (run here in a copy of the repository, whose README.md must stay)."""
    copy = copy_of_the_repository(tmp_path)
    (copy / "README.md").write_text("the repository's own README\n")
    result = subprocess.run([sys.executable, "-m", "experiments", what, flag, ""], cwd=copy,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert_one_clear_line(result.stderr, f"argument {flag}: an empty name: give a folder")
    assert (copy / "README.md").read_text() == "the repository's own README\n"


@pytest.mark.parametrize("list_commands", [True, False])
def test_a_results_dir_that_is_a_file_is_refused_before_anything_is_listed_or_run(
        list_commands, tmp_path, capsys):
    (tmp_path / "results").write_text("a file")
    with pytest.raises(UserError, match="results is a file: give a folder"):
        runner.main("bn", str(tmp_path / "data"), "", list_commands=list_commands,
                    results=Results(tmp_path / "results"))
    assert capsys.readouterr().out == ""


# --- the report collects a job array ---
def test_an_array_is_collected_once_every_task_has_finished_its_run(small_set, cifar_dir,
                                                                    capsys):
    """Until then the set's earlier results stay; a task requeued after its run was stopped
    leaves that run beside the one it finished, which is collected."""
    small, results, sets = small_set
    runner.train_set(small, str(cifar_dir[0]), "synthetic", results)
    summary = pathlib.Path(results.path(NAME, "summary.json"))
    earlier = summary.read_text()
    commands = runner.array_commands(small, str(cifar_dir[0]), results)
    run_task(commands[0])
    said, _ = report(cifar_dir[0], results, sets, capsys)
    assert "job array tasks 1 have not finished" in said
    assert summary.read_text() == earlier
    run_task(commands[1])
    (stopped,) = task_runs(results, 1)
    stopped_metrics = json.loads((stopped / "metrics.json").read_text())
    (stopped / "metrics.json").write_text(json.dumps(dict(stopped_metrics, status="terminated")))
    said, _ = report(cifar_dir[0], results, sets, capsys)
    assert "job array tasks 1 have not finished" in said
    assert summary.read_text() == earlier
    run_task(commands[1])  # the requeued task: a fresh run beside the stopped one
    (finished,) = task_runs(results, 0)
    said, text = report(cifar_dir[0], results, sets, capsys)
    assert "collected the 2 runs of its job array" in said
    assert [entry["run_dir"] for entry in results.load(NAME)["runs"]] == [
        f"tasks/0/{finished.name}", f"tasks/1/{stopped.name}_2"]
    assert "Not run yet: `python -m experiments numpy-vs-torch " not in text
    assert "Data: synthetic.\n" in text  # what the data is, as the note given says
    assert not (working_folder(results) / "job-array").exists()


def test_a_task_that_is_not_the_run_its_set_declares_is_not_collected(small_set, cifar_dir,
                                                                      capsys):
    small, results, sets = small_set
    commands = runner.array_commands(small, str(cifar_dir[0]), results)
    run_task(commands[0], "--lr", "0.05")
    run_task(commands[1])
    said, text = report(cifar_dir[0], results, sets, capsys)
    assert_one_clear_line(said.replace("warning: ", "error: "),
                          "is not the run numpy its set declares: --lr 0.1 (the run's: --lr 0.05)")
    assert "Not run yet: `python -m experiments numpy-vs-torch " in text


@pytest.mark.parametrize("name, value, named", [
    ("lr", 0.05, "--lr 0.1 (the run's: --lr 0.05)"),
    ("label_smoothing", 0.1, "--label_smoothing 0 (the run's: --label_smoothing 0.1)"),
    ("augment", "flip", "--augment none (the run's: --augment flip)"),
])
def test_a_task_is_checked_on_every_flag_even_those_its_set_leaves_at_the_default(name, value,
                                                                                  named):
    """As a run made by another version, whose defaults differ, records them."""
    one = run("numpy", "NumPy", trainer="numpy", **TINY)
    config = dict(framework="numpy", **Config.of("numpy", one.flags).as_dict("numpy"))
    runner.check_declared(one, dict(config, data_dir="elsewhere"), "task")  # where may differ
    with pytest.raises(UserError, match=re.escape(f"task is not the run numpy its set declares: "
                                                  f"{named}")):
        runner.check_declared(one, dict(config, **{name: value}), "task")


@pytest.mark.parametrize("damage, named", [
    (lambda metrics: "{", "metrics.json cannot be read"),
    (lambda metrics: [metrics], "metrics.json lacks status, config"),
    (lambda metrics: dict(metrics, config="lr 0.1"), "records no run of train_mlp_numpy.py"),
    (lambda metrics: dict(metrics, config=dict(metrics["config"], lr="fast")),
     "config: lr must be a number"),
    (lambda metrics: dict(metrics, test_accuracy=7), "test_accuracy is 7.0, out of range"),
    (lambda metrics: {k: v for k, v in metrics.items() if k != "epoch_seconds"},
     "metrics.json lacks epoch_seconds"),
    (lambda metrics: dict(metrics, val_accuracy=metrics["val_accuracy"] * 2),
     "records 2 epochs of a finished run of 1"),
    (lambda metrics: dict(metrics, val_accuracy=[]), "records 0 epochs of a finished run of 1"),
])
def test_a_damaged_task_is_one_line_and_the_report_is_still_written(small_set, cifar_dir, capsys,
                                                                   damage, named):
    small, results, sets = small_set
    for command in runner.array_commands(small, str(cifar_dir[0]), results):
        run_task(command)
    (task,) = task_runs(results, 0)
    damaged = damage(json.loads((task / "metrics.json").read_text()))
    (task / "metrics.json").write_text(damaged if isinstance(damaged, str) else
                                       json.dumps(damaged))
    said, text = report(cifar_dir[0], results, sets, capsys)
    assert_one_clear_line(said.replace("warning: ", "error: "), named, "is not collected")
    assert "Not run yet: `python -m experiments numpy-vs-torch " in text


def test_the_report_collects_a_measured_array_without_downloading(tmp_path, cifar_dir, capsys,
                                                                  monkeypatch):
    """Without the data, a set measured on it keeps its earlier results and the report says
    why; with it, the collected runs are measured."""
    downloads = []

    def no_network(url, path, md5):
        downloads.append(url)
        raise DataError(f"{url} cannot be reached")

    monkeypatch.setattr(fetch, "download", no_network)
    dead = SETS["dead-neurons"]
    measured = dataclasses.replace(dead, runs=[dataclasses.replace(
        dead.runs[0], flags=dict(dead.runs[0].flags, **TINY))])
    results, sets = Results(tmp_path / "results"), {**SETS, "dead-neurons": measured}
    run_task(runner.array_commands(measured, str(cifar_dir[0]), results)[0])
    said, text = report(tmp_path / "no-data", results, sets, capsys)
    assert downloads == [] and "no CIFAR-10 data found" in said
    assert "Not run yet: `python -m experiments dead-neurons " in text
    said, text = report(cifar_dir[0], results, sets, capsys)
    (collected,) = results.load("dead-neurons")["runs"]
    assert len(collected["dead_fraction"]) == 1 and downloads == []


def test_a_measured_task_whose_model_is_gone_is_one_line_and_the_report_is_written(
        tmp_path, cifar_dir, capsys):
    dead = SETS["dead-neurons"]
    measured = dataclasses.replace(dead, runs=[dataclasses.replace(
        dead.runs[0], flags=dict(dead.runs[0].flags, **TINY))])
    results, sets = Results(tmp_path / "results"), {**SETS, "dead-neurons": measured}
    run_task(runner.array_commands(measured, str(cifar_dir[0]), results)[0])
    (task,) = task_runs(results, 0, "dead-neurons")
    os.remove(task / "model.pt")
    said, text = report(cifar_dir[0], results, sets, capsys)
    assert_one_clear_line(said.replace("warning: ", "error: "), "model.pt", "is not collected")
    assert "Not run yet: `python -m experiments dead-neurons " in text


def test_a_tasks_command_gives_its_trainer_the_data_and_task_folders_as_they_are(small_set,
                                                                                tmp_path):
    """Folders with spaces and a shell's special characters in their names reach the trainer
    whole when bash runs the command, as the job file does (the trainer here is printf)."""
    small, _, _ = small_set
    results = Results(tmp_path / "my results; $(echo run) `echo this`")
    data_dir = str(tmp_path / "my \"data\" & 'more' $HOME")
    for index, command in enumerate(runner.array_commands(small, data_dir, results)):
        trainer_words = command[command.index(" --"):]
        words = subprocess.run(["bash", "-c", "printf '%s\\n'" + trainer_words],
                               capture_output=True, text=True, check=True).stdout.splitlines()
        assert words[words.index("--data_dir") + 1] == data_dir
        assert words[words.index("--results_dir") + 1] == runner.task_folder(NAME, index,
                                                                              results)


@pytest.mark.parametrize("name", ["budget-reference", "presets"])
def test_a_set_timed_against_this_machines_budget_is_no_job_array(name, tmp_path):
    with pytest.raises(UserError, match="its minutes are held against this machine's budget"):
        runner.array_commands(SETS[name], "data", Results(tmp_path))


def test_an_evaluated_run_missing_from_its_source_set_is_refused_before_any_training(
        tmp_path, monkeypatch):
    """No run best in presets: the learned set's course-numpy run is not trained first, to fail
    only after it."""
    learned, trained = SETS["learned"], []
    monkeypatch.setattr(runner, "train_run", lambda *arguments: trained.append(arguments))
    results = Results(tmp_path / "results")
    (tmp_path / "results" / "presets").mkdir(parents=True)
    (tmp_path / "results" / "presets" / "summary.json").write_text(json.dumps(
        dict(command="c", date="d", machine="m", data="s", runs=[])))
    with pytest.raises(UserError, match="presets/summary.json holds 0 runs best"):
        runner.train_set(learned, "data", "", results)
    assert trained == []


def test_the_data_is_called_official_only_where_its_tarball_has_the_official_md5(tmp_path,
                                                                                 monkeypatch):
    tarball = tmp_path / TARBALL_NAME
    tarball.write_bytes(b"CIFAR-10 re-encoded as JPEG, packed under the official name")
    assert runner.data_note(str(tmp_path), "") == ("CIFAR-10 files whose origin was not "
                                                   "verified against the official md5")
    monkeypatch.setattr(runner, "CIFAR10_MD5", hashlib.md5(tarball.read_bytes()).hexdigest())
    assert runner.data_note(str(tmp_path), "") == "the official CIFAR-10 release (md5 verified)"
    assert runner.data_note(str(tmp_path), "a JPEG re-encoding") == "a JPEG re-encoding"


@pytest.mark.parametrize("kind", ["folder", "fifo"])
def test_a_tarball_that_is_no_file_is_named_unverified_without_reading_it(kind, tmp_path):
    tarball = tmp_path / TARBALL_NAME
    tarball.mkdir() if kind == "folder" else os.mkfifo(tarball)
    assert runner.data_note(str(tmp_path), "") == ("CIFAR-10 files whose origin was not "
                                                   "verified against the official md5")


def test_a_set_whose_source_set_has_not_run_is_refused_before_training(tmp_path, monkeypatch):
    """learned evaluates the presets set's best model: before presets has run, nothing is
    trained and the line names the set to run first."""
    def train_run(*arguments):
        raise AssertionError("a run was trained before the sets it needs were checked")

    monkeypatch.setattr(runner, "train_run", train_run)
    results = tmp_path / "my results"
    with pytest.raises(UserError) as refused:
        runner.main("learned", str(tmp_path / "my data"), "", results=Results(results))
    assert str(refused.value) == ("the learned set evaluates the model best that the presets "
                                  "set trains, which has not run here: run `python -m "
                                  f"experiments presets --results_dir '{results}' --data_dir "
                                  f"'{tmp_path / 'my data'}'` first")
    assert not results.exists()


def test_the_set_to_run_first_is_named_with_the_results_and_data_it_needs(tmp_path):
    """Pasted as printed, the command runs the set into the same results, on the same data."""
    command = set_command("presets", Results(tmp_path / "r s"), str(tmp_path / "d"))
    assert shlex.split(command) == ["python", "-m", "experiments", "presets", "--results_dir",
                                    str(tmp_path / "r s"), "--data_dir", str(tmp_path / "d")]
    assert set_command("presets", Results(), DATA_DIR) == "python -m experiments presets"


def test_a_set_and_the_report_name_the_command_that_runs_it_into_the_same_results(
        small_set, cifar_dir, capsys):
    """The command a summary records and the report's 'Not run yet' line, pasted, write to the
    results folder and read the data they were given, not the repository's."""
    small, results, sets = small_set
    data = str(cifar_dir[0])
    again = set_command(NAME, results, data)
    assert f"--results_dir {results.folder}" in again and f"--data_dir {data}" in again
    runner.main("report", data, "synthetic", results=results, experiment_sets=sets)
    assert f"Not run yet: `{again}`." in open(results.path("README.md")).read()
    runner.train_set(small, data, "synthetic", results)
    assert results.load(NAME)["command"] == again


def test_the_figures_of_a_learned_run_are_every_one_evaluate_draws(tmp_path, monkeypatch):
    """draw_learned copies each figure --evaluate drew beside the model to the set's folder."""
    def evaluate_saved(path, given, **settings):
        for name in FIGURES:
            (pathlib.Path(path).parent / name).write_bytes(name.encode())

    trainer = types.SimpleNamespace(evaluate_saved=evaluate_saved)
    monkeypatch.setitem(runner.TRAINERS, "numpy", (trainer, "model.npz", {}))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runner.draw_learned(dict(trainer="numpy", figures="best"), str(run_dir), "data",
                        str(tmp_path / "set"))
    assert files_of(tmp_path / "set" / "best") == {name: name.encode() for name in FIGURES}
