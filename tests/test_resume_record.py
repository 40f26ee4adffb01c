"""What a resumed run goes on with is what its folder records: it stays in its folder, its
recorded flags must give the folder's name, the data folder it recorded is an absolute path (and
one that is gone is said), a checkpoint from before the data's fingerprint resumes with a warning,
and the --evaluate figures beside a model it replaces are removed."""
import json
import shutil

import pytest
import torch
from helpers import (
    SCRIPTS,
    TRAINERS,
    assert_one_clear_line,
    edited_progress,
    run_script,
    stopped_run_folder,
)

from safety.errors import UserError
from training import backend_numpy
from training.inspect_model import FIGURES

# a run with BatchNorm, dropout and one-cycle, 5 epochs unless said (later epochs validate better)
FLAGS = dict(hidden_dims=[32, 16], lr=0.01, batch_size=16, epochs=5, seed=3, validation_size=30,
             data_url="", use_batch_norm=True, dropout=0.1, schedule="onecycle")


def train(framework, root, results, **flags):
    settings = {"device": "cpu"} if framework == "pytorch" else {}
    return TRAINERS[framework][0].train(**{**FLAGS, "data_dir": str(root),
                                        "results_dir": str(results), **settings, **flags})


@pytest.fixture
def stopped(cifar_dir, tmp_path, monkeypatch):
    """A NumPy run of 3 epochs stopped in its second, on a copy of the data: (data, run)."""
    data = tmp_path / "data"
    shutil.copytree(cifar_dir[0] / "cifar-10-batches-py", data / "cifar-10-batches-py")
    return data, stopped_run_folder(monkeypatch, train, "numpy", data, tmp_path / "r", 2, step=2,
                                    epochs=3, validation_size=40)


def metrics_of(run_dir):
    return json.loads((run_dir / "metrics.json").read_text())


def test_a_results_dir_other_than_the_runs_own_is_refused(stopped, tmp_path):
    _, run_dir = stopped
    before = (run_dir / "metrics.json").read_text()
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir, "--results_dir",
                                 tmp_path / "x")
    assert code == 1
    assert_one_clear_line(stderr, f"--results_dir {tmp_path / 'x'} is not the folder "
                                  f"{run_dir.parent} that", "leave --results_dir out")
    assert not (tmp_path / "x").exists() and (run_dir / "metrics.json").read_text() == before
    with pytest.raises(UserError, match="is not the folder"):
        train("numpy", stopped[0], tmp_path / "x", resume=str(run_dir), epochs=3,
              validation_size=40)


def test_the_runs_own_results_dir_is_accepted_and_recorded(stopped):
    data, run_dir = stopped
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", f"{run_dir}/",
                                 "--results_dir", f"{run_dir.parent}/.")
    assert code == 0, stderr
    assert metrics_of(run_dir)["config"]["results_dir"] == str(run_dir.parent)
    assert metrics_of(run_dir)["config"]["data_dir"] == str(data)


def resumed_after_an_edit(run_dir, flag, value):
    """Resume run_dir once its metrics.json says flag is value: (exit code, stderr)."""
    metrics = metrics_of(run_dir)
    metrics["config"][flag] = value
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir)
    return code, stderr


def test_a_hand_edited_config_is_refused_naming_the_folder_it_does_not_name(stopped):
    _, run_dir = stopped
    code, stderr = resumed_after_an_edit(run_dir, "lr", 0.5)
    assert code == 1
    assert_one_clear_line(stderr, "records the flags of a run named numpy_h32-16_lr0.5_",
                          f"not {run_dir.name}: it was edited")


def test_a_hand_edit_of_a_flag_the_folder_does_not_name_is_refused_by_the_checkpoint(stopped):
    """validation_size is not in the folder's name: the checkpoint's own record of the flags
    finds the edit, where the checkpoint alone would look damaged."""
    _, run_dir = stopped
    code, stderr = resumed_after_an_edit(run_dir, "validation_size", 30)
    assert code == 1
    assert_one_clear_line(stderr, "metrics.json records --validation_size 30 (its checkpoint: 40)",
                          "it was edited")
    assert "damaged" not in stderr


def test_a_reruns_numbered_folder_resumes(stopped):
    """<run name>_12, the twelfth run of the same flags: a number of any length."""
    _, run_dir = stopped
    rerun = run_dir.with_name(run_dir.name + "_12")
    run_dir.rename(rerun)
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", rerun)
    assert code == 0, stderr
    assert metrics_of(rerun)["status"] == "finished"


def test_the_data_folder_is_recorded_absolute_and_one_gone_names_data_dir(stopped, tmp_path,
                                                                          monkeypatch):
    data, run_dir = stopped
    assert metrics_of(run_dir)["config"]["data_dir"] == str(data)
    moved = tmp_path / "moved"
    data.rename(moved)
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir)
    assert code == 1
    assert_one_clear_line(stderr, f"the data folder {data} that {run_dir} recorded is gone",
                          "give --data_dir")
    empty = tmp_path / "to-be-downloaded"  # a --data_dir given is the data's own question
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir, "--data_dir", empty,
                                 "--data_url", "")
    assert code == 1 and "recorded is gone" not in stderr
    assert_one_clear_line(stderr, str(empty))
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir, "--data_dir", moved)
    assert code == 0, stderr
    monkeypatch.chdir(tmp_path)  # a relative folder, recorded from anywhere
    *_, log = train("numpy", "moved", "r2", epochs=1)
    assert metrics_of(tmp_path / log["run_dir"])["config"]["data_dir"] == str(moved)


def without_fingerprint(run_dir, framework):
    """Remove data_sha256 from the progress of run_dir's checkpoint, as a version of the project
    that did not record it wrote it."""
    if framework == "numpy":
        edited_progress(run_dir, lambda progress: progress["log"].__delitem__("data_sha256"))
        return
    path = run_dir / "checkpoint.pt"
    content = torch.load(path, weights_only=True)
    progress = json.loads(content["progress"])
    del progress["log"]["data_sha256"]
    torch.save(dict(content, progress=json.dumps(progress)), path)


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_checkpoint_without_the_datas_fingerprint_resumes_with_one_warning(
        framework, hard_cifar_dir, tmp_path, monkeypatch, capsys):
    root, _ = hard_cifar_dir
    run_dir = stopped_run_folder(monkeypatch, train, framework, root, tmp_path / "r", 2)
    without_fingerprint(run_dir, framework)
    capsys.readouterr()
    *_, log = train(framework, root, run_dir.parent, resume=str(run_dir))
    assert metrics_of(run_dir)["status"] == "finished" and len(log["val_accuracy"]) == 5
    warnings = [line for line in capsys.readouterr().err.splitlines()
                if line.startswith("warning: ")]
    assert len(warnings) == 1 and "does not record which data the run trained on" in warnings[0]
    assert len(log["data_sha256"]) == 64  # the finished run records the data it now used


def test_a_resume_that_replaces_the_model_removes_evaluates_figures_beside_it(
        stopped, monkeypatch):
    data, run_dir = stopped
    model = run_dir / SCRIPTS["numpy"][1]
    monkeypatch.setattr("matplotlib.pyplot.show", lambda: None)
    backend_numpy.evaluate_saved(str(model), set(), data_dir=str(data), data_url="",
                                 validation_size=40)
    assert all((run_dir / name).exists() for name in FIGURES)
    before = model.read_bytes()
    train("numpy", data, run_dir.parent, resume=str(run_dir), epochs=3, validation_size=40)
    best_epoch = metrics_of(run_dir)["best_epoch"]
    assert (model.read_bytes() != before) == (best_epoch > 1)
    assert best_epoch > 1, "the resumed epochs must replace the model for this test"
    assert not any((run_dir / name).exists() for name in FIGURES)
