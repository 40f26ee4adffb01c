"""The lines a run prints for the user, which a log that cannot take them (a job's log on a full
disk, a pipe whose reader has gone, a closed descriptor) never cost the run: such a line is lost,
the run goes on."""
import argparse
import contextlib
import os
import sys


def keep_standard_streams_open():
    """Put /dev/null on standard descriptors the shell closed (`2>&-`): a file the run opens
    would otherwise take descriptor 2, and anything written to stderr would land in it."""
    for descriptor, name in enumerate(("stdin", "stdout", "stderr")):
        try:
            os.fstat(descriptor)
        except OSError:
            devnull = os.open(os.devnull, os.O_RDWR)  # takes the lowest free: this descriptor
            if devnull != descriptor:
                os.dup2(devnull, descriptor)
                os.close(devnull)
            setattr(sys, name, open(descriptor, "r" if descriptor == 0 else "w", closefd=False))


def _silenced(stream):
    """Send what stream's descriptor would write to /dev/null from now on, as Python's docs
    advise after a broken pipe: else the flush at the interpreter's exit fails again, and says
    so, with exit code 120."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):  # no descriptor (a test's captured stream)
        pass


@contextlib.contextmanager
def unwritable_log_ignored(stream):
    """A failed write to stream inside the block (ENOSPC, EPIPE, EBADF, a closed file) loses
    what was written, and silences stream for the rest of the process."""
    try:
        yield
    except (OSError, ValueError):
        _silenced(stream)


def say(line, stream=None):
    """Print line to stream (standard output by default) and flush it, so that a log that fails
    fails here, where it is ignored."""
    stream = sys.stdout if stream is None else stream
    if stream is None:  # Python found the descriptor closed at its start
        return
    with unwritable_log_ignored(stream):
        print(line, file=stream, flush=True)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose refusal of the command line is one line, not its usage block. A
    flag is read only as spelled out: a prefix of one (--data_d) is refused, since a job file
    that reads --data_dir among the flags would not see it."""

    def __init__(self, **settings):
        super().__init__(allow_abbrev=False, **settings)

    def error(self, message):
        self.exit(2, f"error: {message} (--help lists the options)\n")
