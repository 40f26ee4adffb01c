"""The folder lock (safety/locks.py): one process at a time, and a killed holder leaves nothing
held."""
import errno
import fcntl
import os
import signal
import subprocess
import sys

import pytest

from safety import locks
from safety.errors import UserError
from safety.locks import FolderLock
from tests.helpers import REPO, TINY

HOLD = ("import sys, time; from safety.locks import FolderLock\n"
        "with FolderLock(sys.argv[1], 'is busy'):\n"
        "    print('held', flush=True); time.sleep(60)\n")


def holder(folder):
    """A process that holds folder's lock until it is killed, once it says it holds it."""
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                               text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert process.stdout.readline() == "held\n"
    return process


def test_a_folder_another_process_holds_is_refused_with_what_it_is_doing(tmp_path):
    process = holder(tmp_path)
    try:
        with pytest.raises(UserError, match=f"^{tmp_path} is busy$"):
            with FolderLock(tmp_path, "is busy"):
                pass
    finally:
        process.kill()
        process.wait()


def test_a_killed_holder_leaves_the_folder_free_and_no_file_behind(tmp_path):
    process = holder(tmp_path)
    process.send_signal(signal.SIGKILL)
    process.wait()
    with FolderLock(tmp_path, "is busy"):
        pass
    assert os.listdir(tmp_path) == []


def test_the_lock_is_released_when_the_block_ends(tmp_path):
    with FolderLock(tmp_path, "is busy"):
        pass
    process = holder(tmp_path)
    process.kill()
    process.wait()


# --- a filesystem that cannot lock (NFS without its lock daemon, Lustre without -o flock) ---
UNLOCKABLE = ("import errno, fcntl, os, runpy, sys\n"
              "def flock(descriptor, operation):\n"
              "    raise OSError(errno.{0}, os.strerror(errno.{0}))\n"
              "fcntl.flock = flock\n"
              "sys.argv = sys.argv[1:]\n"
              "runpy.run_path(sys.argv[0], run_name='__main__')\n")


@pytest.mark.parametrize("name", ["ENOLCK", "ENOSYS", "EOPNOTSUPP"])
def test_a_folder_that_cannot_be_locked_is_used_with_one_warning(tmp_path, monkeypatch, capsys,
                                                                  name):
    def flock(descriptor, operation):
        raise OSError(getattr(errno, name), os.strerror(getattr(errno, name)))

    monkeypatch.setattr(fcntl, "flock", flock)
    monkeypatch.setattr(locks, "_warned", [])
    for _ in range(3):
        with FolderLock(tmp_path, "is busy"):
            pass
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"warning: {tmp_path} cannot be locked")
    assert "twice at the same time" in lines[0]


@pytest.mark.parametrize("name", ["ENOLCK", "ENOSYS"])
def test_a_fresh_run_on_a_filesystem_without_locks_trains_with_one_warning(cifar_dir, tmp_path,
                                                                          name):
    trainer = [sys.executable, "-c", UNLOCKABLE.format(name),
               os.path.join(REPO, "train_mlp_numpy.py"), "--data_dir", str(cifar_dir[0]),
               "--results_dir", str(tmp_path / "results"), "--hidden_dims", "16", *TINY]
    fresh = subprocess.run([*trainer, "--epochs", "1"], capture_output=True, text=True,
                           cwd=REPO, timeout=120)
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stderr.count("cannot be locked") == 1 and "Traceback" not in fresh.stderr
    (run_dir,) = (tmp_path / "results").iterdir()
    assert (run_dir / "model.npz").is_file()
