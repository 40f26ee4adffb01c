"""A folder used by one process at a time: an advisory lock on the folder itself, which the
operating system releases when the process ends, however it ends (SIGKILL, a node's crash), so
no lock is ever left held and no lock file is left behind."""
import errno
import fcntl
import os

from safety.errors import UserError


class FolderLock:
    """Holds folder from creation until release(), or for a with block; UserError(f"{folder}
    {in_use}") at once if another process holds it. in_use says what the holder is doing and
    what the user can do."""

    def __init__(self, folder, in_use):
        self.descriptor = None
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            os.close(descriptor)
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
