"""Ctrl-C (SIGINT) and SIGTERM, the way a cluster scheduler ends a job: raised as exceptions
while a run works, ignored while its record is written, deferred while a file is written, and an
exit without a traceback while a script is still importing."""
import contextlib
import os
import signal
import sys

from safety.errors import EXIT_CODES, Terminated

STARTING = {KeyboardInterrupt: "interrupted", Terminated: "terminated"}


@contextlib.contextmanager
def _stop_signals_handled_by(handler):
    """SIGINT and SIGTERM go to handler inside the block (in the main thread; elsewhere Python
    cannot change handlers), then to the handlers there were."""
    try:
        previous = {signum: signal.signal(signum, handler)
                    for signum in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def stop_signals_ignored():
    """Ignore SIGINT and SIGTERM inside the block."""
    return _stop_signals_handled_by(signal.SIG_IGN)


@contextlib.contextmanager
def stop_signals_deferred():
    """A SIGINT or SIGTERM that arrives inside the block is delivered when the block ends, to the
    handlers there were."""
    arrived = []
    try:
        with _stop_signals_handled_by(lambda signum, frame: arrived.append(signum)):
            yield
    finally:
        for signum in arrived[:1]:
            signal.raise_signal(signum)


_lost = []  # stops raised inside a destructor, which Python drops


def _keep_lost_stops(unraisable):
    """sys.unraisablehook once a stop was asked for: a stop raised inside a destructor is kept
    for raise_a_lost_stop; anything else a destructor raises then is not news, and is not shown."""
    if unraisable.exc_type is not None and issubclass(unraisable.exc_type, KeyboardInterrupt):
        _lost.append(unraisable.exc_type())


def _raise_stop(signum, frame):
    # The exception may land inside any constructor (a progress bar's, say); the half-built
    # object's destructor then fails, and Python would print that as a traceback. It may also
    # land inside a destructor, which drops it: _keep_lost_stops keeps it.
    sys.unraisablehook = _keep_lost_stops
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def raise_a_lost_stop():
    """Raise again a stop that a destructor dropped, which would otherwise leave the run training
    on as if no signal had come; a trainer calls this before every step."""
    if _lost:
        stop = _lost.pop()
        _lost.clear()
        raise stop


def _exit_quietly(signum, frame):
    # No exception: one raised inside an import can be swallowed by the importing module
    # (torch's import of NumPy does so) and end in another's traceback and exit 1. Nothing of
    # the user's exists yet to be written, so the process ends here, with its line and code.
    stop = Terminated if signum == signal.SIGTERM else KeyboardInterrupt
    try:
        os.write(2, f"{STARTING[stop]} while starting: nothing was written\n".encode())
    except OSError:  # stderr closed: the exit code still says it
        pass
    os._exit(EXIT_CODES[stop])


def _on_stop_signals(handler):
    """handler for SIGINT and SIGTERM; a signal the parent set to be ignored (SIGINT in a
    background job, under nohup) stays ignored."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, handler)


def exit_quietly_on_stop_signals():
    """Until run_cli takes over: a Ctrl-C or SIGTERM (during the slow imports of a script's
    start) exits at once with one line and its code, 130 or 143, and no traceback."""
    _on_stop_signals(_exit_quietly)


def handle_stop_signals():
    """Ctrl-C raises KeyboardInterrupt and SIGTERM raises Terminated, so that a run being stopped
    writes what it finished."""
    _lost.clear()
    _on_stop_signals(_raise_stop)
