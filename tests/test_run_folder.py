"""A run's folder (training/run_folder.py): metrics.json and the curves written however the run
ends, one closing line that no progress bar or second signal spoils, and a rerun that never
overwrites an earlier run."""
import json
import os
import signal

import matplotlib.figure
import pytest
from helpers import TRAINERS, UNWRITABLE, loaded_before_the_check, train
from tqdm import tqdm

import train_mlp_numpy
import train_mlp_pytorch
from safety import files, signals
from safety.errors import Terminated, UserError
from training import run, run_folder


def test_a_rerun_never_overwrites_an_earlier_run(cifar_dir, tmp_path):
    kwargs = dict(hidden_dims=[8], lr=0.1, batch_size=16, epochs=1, seed=0,
                  data_dir=str(cifar_dir[0]), validation_size=30, data_url="",
                  results_dir=str(tmp_path / "r"))
    train_mlp_numpy.train(**kwargs)
    train_mlp_numpy.train(**kwargs)
    assert sorted(os.listdir(tmp_path / "r")) == ["numpy_h8_lr0.1_b16_e1_s0",
                                                  "numpy_h8_lr0.1_b16_e1_s0_2"]


@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
def test_unwritable_results_folder_is_said_before_anything_else(trainer, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    kwargs = dict(hidden_dims=[8], lr=0.1, batch_size=16, epochs=1, seed=0,
                  data_dir=str(tmp_path / "no-data-here"), data_url="",
                  results_dir=str(blocker / "results"))
    if trainer is train_mlp_pytorch:
        kwargs["use_batch_norm"] = False
    # the data is missing too, but the results problem is what is reported: it comes first
    with pytest.raises(UserError, match="results folder .* is not writable"):
        trainer.train(**kwargs)


@pytest.mark.parametrize("framework", TRAINERS)
def test_zero_epochs_says_the_untrained_model_was_tested(framework, cifar_dir, tmp_path, capsys):
    """and writes metrics.json only, as README.md and docs/runs.md say: no curves, no model."""
    train(framework, cifar_dir[0], tmp_path / "r", epochs=0)
    assert "(the untrained model: no epoch to choose from)" in capsys.readouterr().out
    (folder,) = (tmp_path / "r").iterdir()
    assert sorted(os.listdir(folder)) == ["metrics.json"]


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_full_disk_ends_the_run_with_its_closing_line(framework, cifar_dir, tmp_path,
                                                        monkeypatch, capsys):
    def disk_full(self, target, **kwargs):
        target.write(b"\x89PNG")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", disk_full)
    with pytest.raises(OSError):
        train(framework, cifar_dir[0], tmp_path / "r")
    (folder,) = (tmp_path / "r").iterdir()
    assert not list(folder.glob("*.png")) and not list(folder.glob(".tmp-*"))
    assert "failed after 1 finished epoch(s); their curves and metrics could not all be " \
           "written" in capsys.readouterr().err
    assert json.loads((folder / "metrics.json").read_text())["val_accuracy"]


def test_a_second_signal_while_finishing_does_not_lose_metrics(tmp_path, monkeypatch):
    """The stop signal is repeated (an impatient Ctrl-C, a scheduler's second SIGTERM) while the
    final metrics.json is being written and the curves drawn."""
    real_write_json = files.write_json

    def signalled_while_writing(path, content):
        if content["status"] != "running":
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
        real_write_json(path, content)

    monkeypatch.setattr(run_folder, "write_json", signalled_while_writing)
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signals.handle_stop_signals()
    try:
        run = run_folder.RunRecorder(str(tmp_path), "run", {})
        with pytest.raises(Terminated):
            with run:
                run.log_epoch(1.0, 0.5, 0.5, 0.1)
                raise Terminated()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "terminated"
    assert (tmp_path / "run" / "accuracy.png").exists()


def test_the_closing_line_of_a_stopped_run_is_not_glued_to_a_progress_bar(tmp_path, capsys):
    """A stop that lands after a bar is drawn but before its loop starts leaves the bar open."""
    run = run_folder.RunRecorder(str(tmp_path), "run", {})
    with pytest.raises(Terminated):
        with run:
            drawn_never_iterated = tqdm(range(10), desc="epoch 1/5", leave=False)
            raise Terminated()
    last_line = capsys.readouterr().err.splitlines()[-1]
    assert last_line.startswith("terminated after 0 finished epoch(s)"), last_line
    assert drawn_never_iterated.disable  # closed, not only overwritten


def test_a_bar_stopped_inside_its_constructor_does_not_stop_the_closing_line():
    bar = tqdm(range(3))
    del bar.pos  # what a signal landing before tqdm sets it leaves
    run_folder.close_progress_bars()
    assert bar not in tqdm._instances


def test_a_run_refused_once_its_folder_is_held_leaves_it_free_in_the_same_process(tmp_path):
    """A resume refused by its second check (the checkpoint changed meanwhile), its error kept as
    a notebook keeps it: the next resume in this process holds the folder."""
    class Refused(run_folder.RunRecorder):
        def check_held(self):
            raise UserError("went on in another process")

    folder = tmp_path / "run"
    folder.mkdir()
    with pytest.raises(UserError) as kept:
        with Refused(str(tmp_path), "run", {}, folder=str(folder)):
            pass
    with run_folder.RunRecorder(str(tmp_path), "run", {}, folder=str(folder)) as resumed:
        resumed.log_epoch(1.0, 0.5, 0.5, 0.1)
        resumed.log["test_accuracy"] = 0.5
    assert kept.value and json.loads((folder / "metrics.json").read_text())["status"] == "finished"


@pytest.mark.skipif(not os.path.isdir(UNWRITABLE), reason="needs Linux's /proc")
@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
def test_a_results_folder_that_refuses_writes_is_found_before_the_data_is_loaded(
        trainer, cifar_dir, monkeypatch):
    monkeypatch.setattr(run, "get_cifar10", loaded_before_the_check)
    kwargs = dict(hidden_dims=[8], lr=0.1, use_batch_norm=False, batch_size=16, epochs=1,
                  seed=0, data_dir=str(cifar_dir[0]), validation_size=30, data_url="",
                  results_dir=UNWRITABLE)
    with pytest.raises(UserError, match=f"results folder {UNWRITABLE} is not writable") as refused:
        trainer.train(**kwargs)
    assert str(refused.value).endswith(f": {UNWRITABLE})")  # not the temporary folder tried


def test_holding_a_folder_removes_what_a_killed_writer_of_any_run_file_left(tmp_path):
    """Each file either trainer writes in its run's folder (docs/runs.md's table): a partial
    copy of it, which a killed process leaves as large as the file, goes; nothing else does."""
    written = ["metrics.json", "loss.png", "accuracy.png", "model.npz", "model.pt",
               "checkpoint.npz", "checkpoint.pt"]
    for name in written:
        (tmp_path / f"{files.temporary_prefix(name)}x1").write_bytes(b"partial")
    (tmp_path / "notes.txt").write_text("the user's own")
    with run_folder.hold(str(tmp_path)):
        assert os.listdir(tmp_path) == ["notes.txt"]
