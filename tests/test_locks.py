"""The folder lock (safety/locks.py): one process at a time, and a killed holder leaves nothing
held."""
import os
import signal
import subprocess
import sys

import pytest

from safety.errors import UserError
from safety.locks import FolderLock

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
