"""--resume: a stopped run, continued, reaches exactly the numbers and the model an uninterrupted
run with the same flags reaches; what cannot be continued is said in one line."""
import json
import os
import resource
import shutil
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import (
    REPO,
    RunsCode,
    SCRIPTS,
    TINY,
    TRAINERS,
    assert_one_clear_line,
    edited_progress,
    run_script,
    start_trainer,
    stopped_in_epoch,
    stopped_run_folder,
    wait_for_epochs,
)

from dataset.batch_files import load_batch
from safety.errors import Terminated, UserError
from synthetic_cifar import write_dataset, write_py2_pickle
from training import run, run_folder
from training.saved_model import CHECKPOINTS

# everything a run draws at random or carries from step to step
EVERYTHING = dict(hidden_dims=[32, 16], lr=2e-3, batch_size=16, epochs=5, seed=3,
                  validation_size=30, data_url="", use_batch_norm=True, dropout=0.1,
                  optimizer="adamw", weight_decay=0.05, schedule="onecycle",
                  augment="crop+flip+cutout", ema=0.9, mixup=0.2, tta="flip+shift",
                  distill=0.3)
COMPARED = ["train_loss_steps", "train_loss", "train_accuracy", "val_accuracy", "best_epoch",
            "kept_val_accuracy", "test_accuracy", "test_confusion_matrix"]


def train(framework, root, results, **flags):
    settings = {"device": "cpu"} if framework == "pytorch" else {}
    return TRAINERS[framework][0].train(**{**EVERYTHING, "data_dir": str(root),
                                        "results_dir": str(results), **settings, **flags})


# the second also draws deformations and the dropout masks inside residual blocks; the third
# carries SGD's momentum buffers instead of Adam's moments
@pytest.mark.parametrize("changes", [dict(augment="crop+flip+cutout"),
                                     dict(augment="deform+flip", blocks=1, block_width=24),
                                     dict(optimizer="sgd", momentum=0.9)],
                         ids=["crop", "deform-blocks", "sgd-momentum"])
@pytest.mark.parametrize("framework", TRAINERS)
def test_a_resumed_run_matches_an_uninterrupted_one_exactly(framework, changes, hard_cifar_dir,
                                                            tmp_path, monkeypatch):
    root, _ = hard_cifar_dir
    *_, uninterrupted = train(framework, root, tmp_path / "a", **changes)
    run_dir = stopped_run_folder(monkeypatch, train, framework, root, tmp_path / "b", 3,
                                 **changes)
    stopped = json.loads((run_dir / "metrics.json").read_text())
    assert stopped["status"] == "terminated" and len(stopped["val_accuracy"]) == 2
    *_, resumed = train(framework, root, run_dir.parent, resume=str(run_dir), **changes)
    assert {key: resumed[key] for key in COMPARED} == {key: uninterrupted[key] for key in COMPARED}
    model = SCRIPTS[framework][1]
    assert (run_dir / model).read_bytes() == (tmp_path / "a" / os.listdir(tmp_path / "a")[0]
                                              / model).read_bytes()
    assert sorted(os.listdir(run_dir)) == ["accuracy.png", "loss.png", "metrics.json", model]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("stop", ["in epoch 1", "after epoch 1, before its checkpoint"])
@pytest.mark.parametrize("framework", TRAINERS)
def test_a_run_stopped_before_its_first_checkpoint_starts_over_in_its_folder(
        framework, stop, hard_cifar_dir, tmp_path, monkeypatch, capsys):
    """Nothing of it can be taken up, so its resume trains it from the start, in its folder, to
    the numbers of an uninterrupted run, whether it stopped inside its first epoch or between
    that epoch's record and its checkpoint."""
    root, _ = hard_cifar_dir
    *_, uninterrupted = train(framework, root, tmp_path / "a")
    if stop == "in epoch 1":
        run_dir = stopped_run_folder(monkeypatch, train, framework, root, tmp_path / "b", 1)
    else:
        def stopped(*args):
            raise Terminated()

        with monkeypatch.context() as patched:
            patched.setattr(TRAINERS[framework][0], "save_checkpoint", stopped)
            with pytest.raises(Terminated):
                train(framework, root, tmp_path / "b")
        (run_dir,) = (tmp_path / "b").iterdir()
    stopped_record = json.loads((run_dir / "metrics.json").read_text())
    assert len(stopped_record["val_accuracy"]) == (stop != "in epoch 1")
    assert not (run_dir / CHECKPOINTS[framework]).exists()
    capsys.readouterr()
    *_, resumed = train(framework, root, run_dir.parent, resume=str(run_dir))
    said = capsys.readouterr().err
    assert f"{run_dir} has no checkpoint to go on from: it starts over, in its folder" in said
    assert {key: resumed[key] for key in COMPARED} == {key: uninterrupted[key] for key in COMPARED}
    assert os.listdir(tmp_path / "b") == [run_dir.name]
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_run_whose_record_lacks_the_options_of_parts_it_lacks_resumes(framework,
                                                                       hard_cifar_dir, tmp_path,
                                                                       monkeypatch):
    """A run stopped by a version of this project that had no --blocks and no --distill records
    none of --blocks, --block_width and --distill, and its checkpoint no teacher: it resumes as
    the run without residual blocks or a teacher it is."""
    root, _ = hard_cifar_dir
    *_, uninterrupted = train(framework, root, tmp_path / "a", distill=0.0)
    run_dir = stopped_run_folder(monkeypatch, train, framework, root, tmp_path / "b", 3,
                                 distill=0.0)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    for name in ("blocks", "block_width", "distill"):
        del metrics["config"][name]
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    edited_checkpoint(run_dir, framework, without_teacher)
    *_, resumed = train(framework, root, run_dir.parent, resume=str(run_dir), distill=0.0)
    assert {key: resumed[key] for key in COMPARED} == {key: uninterrupted[key] for key in COMPARED}


def edited_checkpoint(run_dir, framework, edit):
    """Rewrite run_dir's checkpoint by edit(entries, progress), the teacher's sums a float64
    array whichever trainer wrote them; returns the checkpoint's path."""
    path = run_dir / SCRIPTS[framework][1].replace("model", "checkpoint")
    if framework == "numpy":
        with np.load(path) as saved:
            entries = {name: saved[name] for name in saved.files}
        progress = json.loads(str(entries["progress"][()]))
    else:
        entries = torch.load(path, weights_only=True)
        progress = json.loads(entries["progress"])
        entries["teacher"] = entries["teacher"].numpy().view(np.float64)
    edit(entries, progress)
    if framework == "numpy":
        np.savez(path, **dict(entries, progress=np.array(json.dumps(progress))))
    else:
        if "teacher" in entries:
            entries["teacher"] = torch.from_numpy(np.ascontiguousarray(entries["teacher"])
                                                  .view(np.int64))
        torch.save(dict(entries, progress=json.dumps(progress)), path)
    return path


def without_teacher(entries, progress):
    """A checkpoint's entries and progress as a version without --distill wrote them."""
    del entries["teacher"], progress["teacher_snapshots"], progress["flags"]["distill"]


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_run_stopped_in_its_final_evaluation_resumes_to_the_uninterrupted_numbers(
        framework, hard_cifar_dir, tmp_path, monkeypatch):
    root, _ = hard_cifar_dir
    *_, uninterrupted = train(framework, root, tmp_path / "a", epochs=2)

    def stopped(self, validation, test):
        raise Terminated()

    with monkeypatch.context() as patched:
        patched.setattr(run.TrainingRun, "test", stopped)
        with pytest.raises(Terminated):
            train(framework, root, tmp_path / "b", epochs=2)
    (run_dir,) = (tmp_path / "b").iterdir()
    stopped_record = json.loads((run_dir / "metrics.json").read_text())
    assert len(stopped_record["val_accuracy"]) == 2 and stopped_record["test_accuracy"] is None
    *_, resumed = train(framework, root, run_dir.parent, epochs=2, resume=str(run_dir))
    assert {key: resumed[key] for key in COMPARED} == {key: uninterrupted[key] for key in COMPARED}


@pytest.mark.parametrize("framework", SCRIPTS)
def test_a_run_killed_by_sigterm_resumes_from_the_command_line(framework, cifar_dir, tmp_path):
    script, _ = SCRIPTS[framework]
    common = ["--hidden_dims", 64, "--epochs", 20, "--dropout", 0.2, "--augment", "flip",
              "--data_dir", cifar_dir[0], *TINY]
    code, _, stderr = run_script(script, *common, "--results_dir", tmp_path / "a")
    assert code == 0, stderr
    process = start_trainer(script, *common, "--results_dir", tmp_path / "b")
    wait_for_epochs(tmp_path / "b", 2, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr
    (run_dir,) = (tmp_path / "b").iterdir()
    code, stdout, stderr = run_script(script, "--resume", run_dir)
    assert code == 0, stderr
    (uninterrupted,) = (tmp_path / "a").iterdir()
    first, second = (json.loads((folder / "metrics.json").read_text())
                     for folder in (uninterrupted, run_dir))
    assert {key: first[key] for key in COMPARED} == {key: second[key] for key in COMPARED}
    assert f"test accuracy {first['test_accuracy']:.4f}" in stdout


@pytest.fixture
def stopped_run(hard_cifar_dir, tmp_path, monkeypatch):
    """A NumPy run stopped in its third epoch: (data folder, run folder)."""
    root, _ = hard_cifar_dir
    return root, stopped_run_folder(monkeypatch, train, "numpy", root, tmp_path / "r", 3, epochs=4)


def test_flags_that_contradict_the_run_are_refused_with_both_values(stopped_run):
    root, run_dir = stopped_run
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir, "--lr", 0.5,
                                 "--no-use_batch_norm", "--data_dir", root)
    assert code == 1
    assert_one_clear_line(stderr, "--lr 0.5 (the run: --lr 0.002)",
                          "--no-use_batch_norm (the run: --use_batch_norm)")
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir, "--epochs", 6)
    assert code == 1
    assert_one_clear_line(stderr, "--epochs 6 (the run: --epochs 4)")
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir, "--dnn_hidden_units",
                                 "24")
    assert code == 1  # the 2021 spelling counts as given
    assert_one_clear_line(stderr, "--hidden_dims 24 (the run: --hidden_dims 32 16)")
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir, "--preset", "fast")
    assert code == 1  # a preset's flags count as given
    assert_one_clear_line(stderr, "--hidden_dims 1024 1024 (the run: --hidden_dims 32 16)")
    # where the data lives may change: a job's node stages it elsewhere
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir, "--data_dir", root,
                                 "--epochs", 4)
    assert code == 0, stderr


@pytest.mark.parametrize("damage, message", [
    ("finished", "finished already: there is nothing to resume"),
    ("no checkpoint", "has 2 finished epochs but no checkpoint.npz: it was removed, and the run "
                      "cannot go on where it stopped"),
    ("damaged checkpoint", "checkpoint.npz is damaged"),
    ("no metrics", "holds no run ("),
    ("metrics nested past any reader", "holds no run ("),
    ("config a list", "its config is not a mapping of flags"),
    ("no framework", "metrics.json names no trainer (framework None): it was edited"),
    ("lr a word", "metrics.json records lr must be a number, not 'abc': it was edited"),
    ("hidden_dims negative", "metrics.json records hidden_dims[0] is -3, out of range"),
])
def test_what_cannot_be_resumed_is_one_line(damage, message, stopped_run):
    root, run_dir = stopped_run
    metrics = run_dir / "metrics.json"
    if damage == "finished":
        metrics.write_text(json.dumps(dict(json.loads(metrics.read_text()), status="finished")))
    elif damage == "no checkpoint":
        os.remove(run_dir / "checkpoint.npz")
    elif damage == "damaged checkpoint":
        (run_dir / "checkpoint.npz").write_bytes(b"PK\x03\x04 not a whole zip")
    elif damage in ("lr a word", "hidden_dims negative"):
        record = json.loads(metrics.read_text())
        record["config"].update(lr="abc") if damage == "lr a word" else \
            record["config"].update(hidden_dims=[-3])
        metrics.write_text(json.dumps(record))
    elif damage == "metrics nested past any reader":
        metrics.write_text("[" * 100_000 + "]" * 100_000)
    elif damage == "no framework":
        record = json.loads(metrics.read_text())
        del record["config"]["framework"]
        metrics.write_text(json.dumps(record))
    elif damage == "config a list":
        metrics.write_text(json.dumps(dict(json.loads(metrics.read_text()), config=[1])))
    else:
        os.remove(metrics)
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir)
    assert code == 1
    assert_one_clear_line(stderr, message)


def test_the_other_trainers_run_names_the_script_to_use(stopped_run):
    root, run_dir = stopped_run
    with pytest.raises(UserError, match="is a run of train_mlp_numpy.py: resume it with that"):
        train("pytorch", root, run_dir.parent, resume=str(run_dir))


def test_the_checkpoint_holds_arrays_only(stopped_run):
    _, run_dir = stopped_run
    with np.load(run_dir / "checkpoint.npz") as saved:  # allow_pickle stays False
        assert all(saved[name].dtype != object for name in saved.files)
        progress = json.loads(str(saved["progress"][()]))
    assert progress["epoch"] == 2 and progress["step"] == 2 * ((200 - 30) // 16)


@pytest.mark.parametrize("framework", SCRIPTS)
def test_a_run_another_process_is_training_is_refused_and_left_whole(framework, cifar_dir,
                                                                     tmp_path):
    script, _ = SCRIPTS[framework]
    process = start_trainer(script, "--hidden_dims", 64, "--epochs", 1000, "--data_dir",
                            cifar_dir[0], *TINY, "--results_dir", tmp_path / "r")
    try:
        wait_for_epochs(tmp_path / "r", 1, process)
        (run_dir,) = (tmp_path / "r").iterdir()
        code, _, stderr = run_script(script, "--resume", run_dir)
        assert code == 1
        assert_one_clear_line(stderr, f"{run_dir} is in use by another process")
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=60)
    assert process.returncode == 143, stderr[-3000:]
    stopped = json.loads((run_dir / "metrics.json").read_text())
    assert stopped["status"] == "terminated" and stopped["val_accuracy"]
    assert (run_dir / SCRIPTS[framework][1].replace("model", "checkpoint")).is_file()


def test_a_resume_removes_what_a_killed_writer_of_the_run_left_and_nothing_else(stopped_run):
    root, run_dir = stopped_run
    left = [run_dir / ".tmp-checkpoint.npz-x1", run_dir / ".tmp-metrics.json-x2"]
    kept = [run_dir / ".tmp-confusion_matrix.png-x3", run_dir / "notes.txt"]
    for path in left + kept:
        path.write_bytes(b"partial")
    train("numpy", root, run_dir.parent, resume=str(run_dir), epochs=4)
    assert not any(path.exists() for path in left) and all(path.exists() for path in kept)


def test_a_refused_resume_still_removes_the_partial_checkpoint_a_killed_run_left(stopped_run):
    """SIGKILL during the first checkpoint's write: no checkpoint, and a partial one as large."""
    root, run_dir = stopped_run
    os.replace(run_dir / "checkpoint.npz", run_dir / ".tmp-checkpoint.npz-k1")
    with pytest.raises(UserError, match="finished epochs but no checkpoint.npz"):
        train("numpy", root, run_dir.parent, resume=str(run_dir), epochs=4)
    assert not (run_dir / ".tmp-checkpoint.npz-k1").exists()


def test_a_checkpoint_that_cannot_be_written_is_named_and_the_resume_starts_over(cifar_dir,
                                                                                tmp_path):
    """Under a file-size limit that lets model.npz through but not the larger checkpoint.npz,
    as a full disk would: the run's last line names the checkpoint, nothing partial is left, and
    --resume, with room again, starts the run over in its folder and finishes it."""
    def limited():
        resource.setrlimit(resource.RLIMIT_FSIZE, (2_000_000, 2_000_000))

    flags = ["--hidden_dims", 128, "--epochs", 3, "--data_dir", cifar_dir[0], *TINY,
             "--results_dir", tmp_path / "r"]
    process = subprocess.run([sys.executable, "train_mlp_numpy.py", *map(str, flags)], cwd=REPO,
                             capture_output=True, text=True, preexec_fn=limited, timeout=120)
    assert process.returncode == 1
    (run_dir,) = (tmp_path / "r").iterdir()
    assert process.stderr.splitlines()[-1] == (f"error: [Errno 27] File too large: "
                                               f"'{run_dir / 'checkpoint.npz'}'")
    assert sorted(os.listdir(run_dir)) == ["accuracy.png", "loss.png", "metrics.json", "model.npz"]
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir)
    assert code == 0, stderr
    assert f"{run_dir} has no checkpoint to go on from: it starts over, in its folder" in stderr
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"


@pytest.fixture
def short_stopped_run(cifar_dir, tmp_path, monkeypatch):
    """A NumPy run of 3 epochs stopped in its third: (data folder, run folder)."""
    root, _ = cifar_dir
    return root, stopped_run_folder(monkeypatch, train, "numpy", root, tmp_path / "r", 3, step=2,
                                    epochs=3, batch_size=16, validation_size=40)


def resume(root, run_dir):
    return train("numpy", root, run_dir.parent, resume=str(run_dir), epochs=3,
                 validation_size=40)


def test_a_stopped_run_resumes_from_python_with_its_folder_alone(short_stopped_run, cifar_dir,
                                                                 tmp_path):
    """train(resume=...) takes the run's own flags for every keyword left out, as --resume does;
    it ends with the numbers of the run resumed with all of them given."""
    root, run_dir = short_stopped_run
    copy = tmp_path / "copy" / run_dir.name
    shutil.copytree(run_dir, copy)
    *_, alone = TRAINERS["numpy"][0].train(resume=str(copy))
    *_, given = resume(root, run_dir)
    assert alone["train_loss_steps"] == given["train_loss_steps"]
    assert alone["test_accuracy"] == given["test_accuracy"]


def test_a_run_reached_through_a_link_resumes(short_stopped_run, tmp_path):
    """A link to the run's folder (a job's shortcut, say) is the run, not a renamed folder."""
    root, run_dir = short_stopped_run
    link = tmp_path / "latest"
    link.symlink_to(run_dir, target_is_directory=True)
    *_, through_link = TRAINERS["numpy"][0].train(resume=str(link))
    assert len(through_link["val_accuracy"]) == 3
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"


@pytest.mark.parametrize("edit, reason", [
    (lambda p: p.update(epoch=4), "its epoch 4 is not one of the run's 1..3"),
    (lambda p: p.update(epoch=2.0), "its epoch 2.0 is not"),
    (lambda p: p.update(epoch=1), "its step 20 is not the 10 steps of 1 epochs"),
    (lambda p: p.update(step=p["step"] + 1), "its step 21 is not the 20 steps"),
    (lambda p: p["log"]["val_accuracy"].pop(), "its val_accuracy is not 2 numbers"),
    (lambda p: p["log"]["train_loss_steps"].append(1.0), "its train_loss_steps is not 20"),
    (lambda p: p["log"]["train_loss"].__setitem__(0, float("nan")), "its train_loss is not"),
    (lambda p: p["log"]["epoch_seconds"].__setitem__(0, "1"), "its epoch_seconds is not"),
    (lambda p: p["log"]["val_accuracy"].__setitem__(0, 1.5), "accuracies do not all lie"),
    (lambda p: p["log"].update(best_epoch=7), "its best epoch 7 is not"),
    (lambda p: p["log"].update(test_accuracy=0.5), "or it has a test"),
    (lambda p: p.update(wall_time_s=-1), "its time -1 is not a number of seconds"),
    (lambda p: p.update(generators=[]), "0 generator states for 2 generators"),
    (lambda p: p.update(generators=[{}, {}]), "checkpoint.npz is damaged"),
    (lambda p: p.pop("log"), "KeyError: 'log'"),
    (lambda p: p["log"].update(best_epoch=True), "its best epoch True is not"),
    (lambda p: p["log"]["epoch_seconds"].__setitem__(0, -1.0), "epoch_seconds are not all"),
    (lambda p: p.update(wall_time_s=float("inf")), "its time inf is not a number of seconds"),
    (lambda p: p["log"].update(data_sha256=None), "its data_sha256 None is not a SHA-256"),
    (lambda p: p["generators"][0]["state"].update(state=2 ** 200), "OverflowError"),
    (lambda p: "[" * 100_000 + "]" * 100_000, "RecursionError"),
    (lambda p: p.update(average_updates="x"), "its average_updates 'x' is not the 20 steps"),
    (lambda p: p.update(average_updates=-9), "its average_updates -9 is not the 20 steps"),
    (lambda p: p.update(teacher_snapshots=1), "a teacher of 1 snapshots and (160, 10) "
     "probabilities, not the 2 snapshots of 160 training images that 2 epochs take"),
    (lambda p: p.update(teacher_snapshots=2.0), "a teacher of 2.0 snapshots"),
])
def test_a_checkpoint_whose_progress_no_run_can_have_written_is_refused(edit, reason,
                                                                        short_stopped_run):
    root, run_dir = short_stopped_run
    edited_progress(run_dir, edit)
    with pytest.raises(UserError, match="checkpoint.npz is damaged") as refused:
        resume(root, run_dir)
    assert reason in str(refused.value)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "terminated"


@pytest.mark.parametrize("damage, said", [
    (lambda teacher: teacher[1:], "(159, 10) probabilities, not the 2 snapshots of 160 training"),
    (lambda teacher: teacher[:, :5], "(160, 5) probabilities, not the 2 snapshots of 160"),
    (lambda teacher: teacher * np.nan, "of each of 10 classes"),
    (lambda teacher: teacher + 3, "of each of 10 classes"),  # sums past the snapshots' count
])
@pytest.mark.parametrize("framework", TRAINERS)
def test_a_checkpoints_teacher_that_no_run_can_have_written_is_refused(framework, damage, said,
                                                                      cifar_dir, tmp_path,
                                                                      monkeypatch):
    root, _ = cifar_dir
    flags = dict(epochs=3, batch_size=16, validation_size=40)
    run_dir = stopped_run_folder(monkeypatch, train, framework, root, tmp_path / "r", 3, step=2,
                                 **flags)
    path = edited_checkpoint(run_dir, framework, lambda entries, _: entries.update(
        teacher=damage(entries["teacher"])))
    with pytest.raises(UserError, match=f"{path.name} is damaged") as refused:
        train(framework, root, run_dir.parent, resume=str(run_dir), **flags)
    assert said in str(refused.value)


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_run_that_starts_over_is_refused_other_data_as_one_with_a_checkpoint(
        framework, hard_cifar_dir, tmp_path, monkeypatch):
    """Its metrics.json records the data it started on: other data is refused, naming the split
    that differs, and the data it started on, in another folder, goes on."""
    root, _ = hard_cifar_dir
    run_dir = stopped_run_folder(monkeypatch, train, framework, root, tmp_path / "r", 1)
    other = tmp_path / "other"
    shutil.copytree(root / "cifar-10-batches-py", other / "cifar-10-batches-py")
    changed_test_batch(other, ONE_LABEL[0])
    with pytest.raises(UserError, match=f"--data_dir {other} holds other images or labels than "
                                        f"the run trained on: its test labels .* differ from "
                                        f"those its metrics.json records"):
        train(framework, other, tmp_path / "r", resume=str(run_dir))
    moved = tmp_path / "moved"
    shutil.copytree(root / "cifar-10-batches-py", moved / "cifar-10-batches-py")
    *_, log = train(framework, moved, tmp_path / "r", resume=str(run_dir))
    assert len(log["val_accuracy"]) == EVERYTHING["epochs"]


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_checkpoint_whose_optimizer_counted_other_steps_is_refused(framework, cifar_dir,
                                                                     tmp_path, monkeypatch):
    """Adam's count of steps, which its bias correction reads, must be the run's steps."""
    root, _ = cifar_dir
    run_dir = stopped_run_folder(monkeypatch, train, framework, root, tmp_path / "r", 2)
    path = run_dir / CHECKPOINTS[framework]
    if framework == "numpy":
        with np.load(path) as saved:
            entries = {name: saved[name] for name in saved.files}
        np.savez(path, **dict(entries, **{"optimizer.t": np.array(7)}))
    else:
        content = torch.load(path, weights_only=True)
        content["optimizer"]["state"][0]["step"] = torch.tensor(7.0)
        torch.save(content, path)
    with pytest.raises(UserError, match=f"{CHECKPOINTS[framework]} is damaged.*its optimizer "
                                        f"(t|step) 7 is not the"):
        train(framework, root, tmp_path / "r", resume=str(run_dir))


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_resume_on_other_data_is_refused_and_on_the_same_data_elsewhere_goes_on(
        framework, hard_cifar_dir, tmp_path, monkeypatch):
    root, _ = hard_cifar_dir
    run_dir = stopped_run_folder(monkeypatch, train, framework, root, tmp_path / "r", 2)
    other = tmp_path / "other"
    write_dataset(other, seed=1, brightness=15, label_noise=0.2)  # same shapes, other images
    larger = tmp_path / "larger"  # more images: more steps in an epoch than the run counted
    write_dataset(larger, per_batch=60, brightness=15, label_noise=0.2)
    for data in (other, larger):
        with pytest.raises(UserError, match=f"--data_dir {data} holds other images or labels "
                                            f"than the run trained on"):
            train(framework, data, tmp_path / "r", resume=str(run_dir))
    moved = tmp_path / "moved"
    shutil.copytree(root / "cifar-10-batches-py", moved / "cifar-10-batches-py")
    *_, log = train(framework, moved, tmp_path / "r", resume=str(run_dir))
    assert len(log["val_accuracy"]) == EVERYTHING["epochs"]


def changed_test_batch(root, change):
    """Rewrite root's test_batch with change(images, labels) made to its arrays in place."""
    path = root / "cifar-10-batches-py" / "test_batch"
    images, labels = load_batch(path)
    change(images, labels)
    write_py2_pickle(path, {"data": images.reshape(len(images), -1),
                            "labels": [int(label) for label in labels]})


ONE_LABEL = (lambda images, labels: labels.__setitem__(0, (labels[0] + 1) % 10), "test labels")
ONE_BYTE = (lambda images, labels: images.__setitem__((3, 1, 5, 7), images[3, 1, 5, 7] ^ 1),
            "test images")


@pytest.mark.parametrize("change, named", [ONE_LABEL, ONE_BYTE])
def test_a_resume_on_data_whose_test_split_alone_changed_is_refused_by_name(
        change, named, short_stopped_run):
    """The fingerprint covers the test split's images and labels, not only what is trained on:
    one label or one byte of one test image is other data."""
    root, run_dir = short_stopped_run
    changed_test_batch(root, change)
    with pytest.raises(UserError, match=f"--data_dir {root} holds other images or labels than the "
                                        f"run trained on: its {named} \\(from test_batch\\) "
                                        f"differ from those its checkpoint records"):
        resume(root, run_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "terminated"


def test_a_pytorch_resume_on_one_changed_test_label_is_refused(cifar_dir, tmp_path, monkeypatch):
    root, _ = cifar_dir
    run_dir = stopped_run_folder(monkeypatch, train, "pytorch", root, tmp_path / "r", 2, step=2,
                                 epochs=2, batch_size=16)
    changed_test_batch(root, ONE_LABEL[0])
    with pytest.raises(UserError, match="its test labels \\(from test_batch\\) differ"):
        train("pytorch", root, tmp_path / "r", resume=str(run_dir), epochs=2, batch_size=16)


def test_a_checkpoint_without_the_fingerprints_parts_still_refuses_other_data(short_stopped_run):
    """A checkpoint written before the parts' fingerprints were kept has the whole one alone."""
    root, run_dir = short_stopped_run
    edited_progress(run_dir, lambda p: p["log"].pop("data_sha256_parts"))
    changed_test_batch(root, ONE_LABEL[0])
    with pytest.raises(UserError, match="holds other images or labels than the run trained on "
                                        "\\(their SHA-256 differs from the one its checkpoint"):
        resume(root, run_dir)


def checkpoint_content(run_dir, framework):
    """Everything a checkpoint holds as comparable values, less the seconds its epochs took."""
    if framework == "numpy":
        with np.load(run_dir / "checkpoint.npz") as saved:
            content = {name: saved[name] for name in saved.files}
    else:
        content = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    progress = json.loads(str(content.pop("progress")[()]) if framework == "numpy"
                          else content.pop("progress"))
    for key in ("wall_time_s",):
        progress.pop(key)
    for key in ("epoch_seconds", "run_dir"):
        progress["log"].pop(key)
    return comparable(content), progress


def comparable(value):
    """Nested dicts and lists of arrays and tensors as nested dicts and lists of bytes."""
    if isinstance(value, dict):
        return {key: comparable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [comparable(item) for item in value]
    if isinstance(value, torch.Tensor):
        return (str(value.dtype), tuple(value.shape), value.numpy().tobytes())
    if isinstance(value, np.ndarray):
        return (str(value.dtype), value.shape, value.tobytes())
    return value


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_resumed_runs_checkpoint_is_the_uninterrupted_runs_byte_for_byte(
        framework, hard_cifar_dir, tmp_path, monkeypatch):
    """Stopped in epoch 4 straight away, or in epoch 2 and then, resumed, in epoch 4: the
    checkpoints of epoch 3 hold the same weights, optimizer state, weight average (a decay of
    0.999, whose memory outlasts the run), generators and log."""
    root, _ = hard_cifar_dir
    flags = dict(ema=0.999, epochs=6)
    straight = stopped_run_folder(monkeypatch, train, framework, root, tmp_path / "straight", 4,
                                  **flags)
    run_dir = stopped_run_folder(monkeypatch, train, framework, root, tmp_path / "resumed", 2,
                                 **flags)
    stopped_in_epoch(monkeypatch, 4)
    with pytest.raises(Terminated):
        train(framework, root, tmp_path / "resumed", resume=str(run_dir), **flags)
    assert checkpoint_content(run_dir, framework) == checkpoint_content(straight, framework)


def test_best_weights_that_do_not_fit_are_refused_before_any_epoch(short_stopped_run):
    root, run_dir = short_stopped_run
    path = run_dir / "checkpoint.npz"
    with np.load(path) as saved:
        entries = {name: saved[name] for name in saved.files}
    entries["best.layers.0.weight"] = entries["best.layers.0.weight"][:10]
    np.savez(path, **entries)
    with pytest.raises(UserError, match="its best weights do not fit the model"):
        resume(root, run_dir)


def test_a_checkpoints_log_cannot_rewrite_the_runs_record(short_stopped_run):
    root, run_dir = short_stopped_run
    edited_progress(run_dir, lambda p: p["log"].update(status="finished", config="garbage"))
    resume(root, run_dir)
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["config"]["epochs"] == 3 and metrics["status"] == "finished"
    assert len(metrics["val_accuracy"]) == 3


def test_a_refused_resume_leaves_the_folder_free_even_while_its_error_is_kept(short_stopped_run):
    """As a notebook keeps the last exception, and with it the refused run."""
    root, run_dir = short_stopped_run
    good = (run_dir / "checkpoint.npz").read_bytes()
    edited_progress(run_dir, lambda p: p.update(epoch=99))
    with pytest.raises(UserError) as kept:
        resume(root, run_dir)
    (run_dir / "checkpoint.npz").write_bytes(good)
    *_, log = resume(root, run_dir)
    assert kept.value and len(log["val_accuracy"]) == 3


def test_a_run_another_process_went_on_with_meanwhile_is_refused(short_stopped_run, monkeypatch):
    """Between the first check and holding the folder, another resume stopped the run again:
    going on from the checkpoint read first would undo what that one trained."""
    root, run_dir = short_stopped_run
    load_data = run.TrainingRun.load_data

    def meanwhile(self, *args):
        loaders = load_data(self, *args)
        checkpoint = run_dir / "checkpoint.npz"
        (run_dir / "newer.npz").write_bytes(checkpoint.read_bytes())
        os.replace(run_dir / "newer.npz", checkpoint)
        return loaders

    monkeypatch.setattr(run.TrainingRun, "load_data", meanwhile)
    with pytest.raises(UserError, match="went on in another process while this resume loaded") \
            as kept:
        resume(root, run_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "terminated"
    monkeypatch.setattr(run.TrainingRun, "load_data", load_data)
    *_, log = resume(root, run_dir)  # the refused resume left the folder free in this process
    assert kept.value and len(log["val_accuracy"]) == 3


def test_a_metrics_file_that_is_no_file_is_refused_without_waiting(short_stopped_run):
    root, run_dir = short_stopped_run
    os.remove(run_dir / "metrics.json")
    os.mkfifo(run_dir / "metrics.json")
    code, _, stderr = run_script("train_mlp_numpy.py", "--resume", run_dir, timeout=60)
    assert code == 1
    assert_one_clear_line(stderr, "holds no run (")


def test_an_empty_resume_from_python_is_refused_as_on_the_command_line(cifar_dir, tmp_path):
    with pytest.raises(ValueError, match="resume is empty: give the folder of a run"):
        train("numpy", cifar_dir[0], tmp_path / "r", resume="")
    assert not (tmp_path / "r").exists()


def test_a_resumed_runs_time_counts_the_time_before_each_stop(cifar_dir, tmp_path, monkeypatch):
    """Stopped in epoch 2 after 1000 s (its checkpoint says so), resumed and stopped in epoch 3,
    resumed again: each record's wall time is at least the time its checkpoint had spent."""
    root, _ = cifar_dir
    flags = dict(epochs=3, validation_size=40)
    run_dir = stopped_run_folder(monkeypatch, train, "numpy", root, tmp_path / "r", 2, step=2,
                                 **flags)
    edited_progress(run_dir, lambda p: p.update(wall_time_s=1000.0))
    batches = stopped_in_epoch(monkeypatch, 3, step=2)
    with pytest.raises(Terminated):
        train("numpy", root, tmp_path / "r", resume=str(run_dir), **flags)
    monkeypatch.setattr(run.TrainingRun, "batches", batches)
    assert json.loads((run_dir / "metrics.json").read_text())["wall_time_s"] >= 1000
    with np.load(run_dir / "checkpoint.npz") as saved:
        spent = json.loads(str(saved["progress"][()]))["wall_time_s"]
    assert spent >= 1000
    train("numpy", root, tmp_path / "r", resume=str(run_dir), **flags)
    assert json.loads((run_dir / "metrics.json").read_text())["wall_time_s"] >= spent


def test_a_checkpoint_carrying_a_pickle_payload_is_one_line_and_never_runs(cifar_dir, tmp_path,
                                                                          monkeypatch):
    root, _ = cifar_dir
    run_dir = stopped_run_folder(monkeypatch, train, "pytorch", root, tmp_path / "r", 2, step=2,
                                 epochs=2, batch_size=16, validation_size=40)
    marker = tmp_path / "payload-ran"
    torch.save({"progress": RunsCode(marker)}, run_dir / "checkpoint.pt")
    code, _, stderr = run_script("train_mlp_pytorch.py", "--resume", run_dir)
    assert code == 1 and not marker.exists()
    assert len(stderr.strip().splitlines()) == 1, stderr
    assert_one_clear_line(stderr, f"{run_dir / 'checkpoint.pt'} is damaged",
                          "nothing in it was run")
    assert "weights_only" not in stderr


@pytest.mark.parametrize("full_at", ["metrics", "curves"])
def test_a_finished_run_whose_record_cannot_be_written_keeps_its_checkpoint_and_resumes(
        cifar_dir, tmp_path, monkeypatch, full_at):
    """A full disk at the last write of metrics.json, the one with the test, or at the curves
    drawn after the test: the run fails, its checkpoint stays, its metrics.json (where written)
    does not say finished, and --resume writes the record of an uninterrupted run."""
    root, _ = cifar_dir
    flags = dict(epochs=2, batch_size=16, validation_size=40)
    *_, uninterrupted = train("numpy", root, tmp_path / "a", **flags)
    real_write, real_plot = run_folder.write_json, run_folder.plot_run

    def full_at_the_test(path, content):
        if content.get("test_accuracy") is not None:
            raise OSError(28, "No space left on device")
        real_write(path, content)

    def full_at_the_curves(metrics, folder):
        raise OSError(28, "No space left on device")

    if full_at == "metrics":
        monkeypatch.setattr(run_folder, "write_json", full_at_the_test)
    else:
        monkeypatch.setattr(run_folder, "plot_run", full_at_the_curves)
    with pytest.raises(OSError, match="No space left"):
        train("numpy", root, tmp_path / "b", **flags)
    monkeypatch.setattr(run_folder, "write_json", real_write)
    monkeypatch.setattr(run_folder, "plot_run", real_plot)
    (run_dir,) = (tmp_path / "b").iterdir()
    assert "checkpoint.npz" in os.listdir(run_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] != "finished"
    *_, resumed = train("numpy", root, tmp_path / "b", resume=str(run_dir), **flags)
    assert {key: resumed[key] for key in COMPARED} == {key: uninterrupted[key] for key in COMPARED}
    assert "checkpoint.npz" not in os.listdir(run_dir)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"


def test_a_resume_that_cannot_write_its_first_record_leaves_its_folder_free(cifar_dir, tmp_path,
                                                                             monkeypatch):
    """A full disk at the first metrics.json a resume writes, once it holds the run's folder:
    the resume fails, and the folder is not left held by this process (a notebook's next
    resume would be told another process has it)."""
    root, _ = cifar_dir
    flags = dict(epochs=2, batch_size=16, validation_size=40)
    run_dir = stopped_run_folder(monkeypatch, train, "numpy", root, tmp_path / "r", 2, **flags)
    real_write = run_folder.write_json

    def full(path, content):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(run_folder, "write_json", full)
    with pytest.raises(OSError, match="No space left"):
        train("numpy", root, tmp_path / "r", resume=str(run_dir), **flags)
    monkeypatch.setattr(run_folder, "write_json", real_write)
    *_, resumed = train("numpy", root, tmp_path / "r", resume=str(run_dir), **flags)
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "finished"
