"""The atomic writer (safety/files.py): every file of a run and of its evaluation goes through it,
a stop during a write takes effect once the file is whole, and files get the permissions of the
user's umask."""
import os
import signal

import pytest
import torch
from helpers import TRAINERS, mode, train

from safety import files, signals
from safety.errors import Terminated
from training import backend_numpy, backend_torch, plots

BACKENDS = {"numpy": backend_numpy, "pytorch": backend_torch}


@pytest.mark.parametrize("framework", TRAINERS)
def test_every_file_of_a_run_and_its_evaluation_goes_through_the_atomic_writer(
        framework, cifar_dir, tmp_path, monkeypatch):
    written = set()
    atomic = files.write_atomically

    def recorded(path, write):
        written.add(os.path.abspath(path))
        atomic(path, write)

    trainer, name = TRAINERS[framework]
    for module in (files, plots, BACKENDS[framework]):
        monkeypatch.setattr(module, "write_atomically", recorded)
    *_, log = train(framework, cifar_dir[0], tmp_path / "r")
    settings = {"device": "cpu"} if framework == "pytorch" else {}
    trainer.evaluate_saved(os.path.join(log["run_dir"], name), set(), data_dir=str(cifar_dir[0]),
                           data_url="", **settings)
    found = {str(path) for path in (tmp_path / "r").rglob("*") if path.is_file()}
    run_files = {"metrics.json", name, "loss.png", "accuracy.png"}
    evaluation_files = {"confusion.png", "per_class.png", "weights.png", "mistakes.png"}
    assert {os.path.basename(path) for path in found} == run_files | evaluation_files
    assert found <= written  # written also: the checkpoint, removed at the end


def test_a_stop_during_a_write_takes_effect_once_the_file_is_whole(tmp_path):
    """torch.save stopped halfway fails in its own cleanup (a RuntimeError, not the stop)."""
    state = {"weight": torch.arange(1000.0)}

    def stopped_halfway(f):
        f.write(b"")
        os.kill(os.getpid(), signal.SIGTERM)
        torch.save(state, f)

    signals.handle_stop_signals()
    try:
        with pytest.raises(Terminated):
            files.write_atomically(str(tmp_path / "model.pt"), stopped_halfway)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"],
                       state["weight"])


@pytest.mark.parametrize("framework, umask", [("numpy", 0o022), ("pytorch", 0o022),
                                              ("numpy", 0o077)])
def test_run_files_get_the_permissions_of_the_umask(framework, umask, cifar_dir, tmp_path):
    _, weights = TRAINERS[framework]
    previous = os.umask(umask)
    try:
        train(framework, cifar_dir[0], tmp_path / "r", hidden_dims=[8])
    finally:
        os.umask(previous)
    (folder,) = (tmp_path / "r").iterdir()
    for name in ("metrics.json", weights, "loss.png", "accuracy.png"):
        assert mode(folder / name) == 0o666 & ~umask, name
