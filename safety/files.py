"""The atomic writer through which every file the project writes goes (metrics, models,
figures, downloads, summaries, the report), and the JSON files written through it."""
import contextlib
import errno
import json
import os
import tempfile

from safety.errors import UserError
from safety.signals import stop_signals_deferred


def set_default_permissions(path):
    """Give a file that tempfile made (mode 0600) the mode a plain open() would: 0666 less the
    user's umask, so that a shared group folder shares it as it shares the user's other files."""
    umask = os.umask(0)  # the only way to read the umask is to set it
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_atomically(path, write, finish_before_stopping=True):
    """write(f) fills a temporary binary file beside path, which then replaces path in one step:
    a reader, or a run killed mid-write, never sees half a file or loses the previous one. The
    file ends with the permissions a plain open() would give it under the user's umask.

    A Ctrl-C or SIGTERM during the write takes effect once the file is in place (torch.save,
    stopped halfway, fails in its own cleanup instead of stopping); a long download passes
    finish_before_stopping=False to stay stoppable."""
    partial = None
    try:
        fd, partial = tempfile.mkstemp(prefix=temporary_prefix(path),
                                       dir=os.path.dirname(path) or ".")
        with stop_signals_deferred() if finish_before_stopping else contextlib.nullcontext():
            with os.fdopen(fd, "wb") as f:
                write(f)
            set_default_permissions(partial)
            os.replace(partial, path)
    except OSError as error:  # name the file the user knows, not the temporary one, or none
        temporary = os.path.basename(str(error.filename)).startswith(temporary_prefix(path))
        if error.errno is None or not (error.filename is None or temporary):
            raise
        raise OSError(error.errno, error.strerror, path) from None
    finally:
        if partial and os.path.exists(partial):
            os.remove(partial)


def temporary_prefix(path):
    """The start of the names of path's temporary files, e.g. .tmp-metrics.json-: a process that
    owns path may remove what a killed writer of it left, and nothing else."""
    return f".tmp-{os.path.basename(path)}-"


def check_writable(folder, what):
    """Try writing in folder, or, where it is missing, in the nearest folder above it that
    exists (where it would be made), so that a run fails before any work and leaves no empty
    folder behind: UserError naming what it is for (e.g. 'results folder') where it cannot be
    written."""
    existing = os.path.abspath(folder)
    while not os.path.lexists(existing):
        existing = os.path.dirname(existing)
    try:
        if not os.path.isdir(existing):
            raise NotADirectoryError(errno.ENOTDIR, "not a folder", existing)
        os.rmdir(tempfile.mkdtemp(dir=existing))
    except OSError as error:  # the folder tried, not the temporary one tried in it
        raise UserError(f"{what} {folder} is not writable ({error.strerror}: {existing})") \
            from None


def write_json(path, content):
    write_atomically(path, lambda f: f.write(json.dumps(content, indent=1).encode()))
