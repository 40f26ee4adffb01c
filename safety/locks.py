"""A folder used by one process at a time: an advisory lock on the folder itself, which the
operating system releases when the process ends, however it ends (SIGKILL, a node's crash), so
no lock is ever left held and no lock file is left behind."""
import errno
import fcntl
import os
import sys

from safety.console import say
from safety.errors import UserError

# a filesystem that cannot lock (NFS without its lock daemon, Lustre without -o flock)
NO_LOCKS = {errno.ENOLCK, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP}
_warned = []  # the warning is said once a process, however many folders it holds


def _warn_unlocked(folder, error):
    if not _warned:
        _warned.append(folder)
        say(f"warning: {folder} cannot be locked on its filesystem ({error.strerror}), so "
            f"nothing stops two processes writing to it at once: never run or resume the same "
            f"run twice at the same time", sys.stderr)


class FolderLock:
    """Holds folder from creation until release(), or for a with block; UserError(f"{folder}
    {in_use}") at once if another process holds it. in_use says what the holder is doing and
    what the user can do. On a filesystem that cannot lock, one warning line and no lock: such
    a filesystem must not stop the work."""

    def __init__(self, folder, in_use):
        self.descriptor = None
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
            if error.errno in NO_LOCKS:
                _warn_unlocked(folder, error)
                return
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise UserError(f"{folder} {in_use}") from None
        self.descriptor = descriptor

    def release(self):
        if self.descriptor is not None:
            os.close(self.descriptor)  # closing the last descriptor releases the lock
            self.descriptor = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.release()
        return False
