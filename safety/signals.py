"""Ctrl-C (SIGINT) and SIGTERM, the way a cluster scheduler ends a job: raised as exceptions
while a run works (sent again where one would be lost), ignored while its record is written,
deferred while a file is written, and an exit without a traceback while a script is still
importing."""
import contextlib
import os
import queue
import signal
import sys
import threading
import time

from safety.errors import EXIT_CODES, Terminated

STARTING = {KeyboardInterrupt: "interrupted", Terminated: "terminated"}


@contextlib.contextmanager
def _stop_signals_handled_by(handler):
    """SIGINT and SIGTERM go to handler inside the block (in the main thread; elsewhere Python
    cannot change handlers), then to the handlers there were; an ignored one stays ignored (SIGINT
    under nohup must not take the place of the SIGTERM after it)."""
    try:
        previous = {signum: signal.signal(signum, handler)
                    for signum in (signal.SIGINT, signal.SIGTERM)
                    if signal.getsignal(signum) is not signal.SIG_IGN}
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


# how long after a stop that would be lost it is sent again (and again, while an import goes on)
RESEND_SECONDS = 0.01
STOPS = {signal.SIGINT: KeyboardInterrupt, signal.SIGTERM: Terminated}
IMPORT_MACHINERY = ("importlib._bootstrap", "importlib._bootstrap_external")
RESENDER = "stop-resender"
_resends = queue.SimpleQueue()  # the stops to send again: putting one never waits


def _resend():
    """A thread's loop: send each stop put in _resends to the main thread again shortly. It is a
    thread of its own so that nothing the main thread runs meanwhile can lose the stop."""
    main = threading.main_thread().ident
    while True:
        signum = _resends.get()
        time.sleep(RESEND_SECONDS)
        signal.pthread_kill(main, signum)


def _import_frames(frame):
    """How many frames of Python's import machinery frame runs inside."""
    count = 0
    while frame is not None:
        count += frame.f_globals.get("__name__") in IMPORT_MACHINERY
        frame = frame.f_back
    return count


_outer_import_frames = 0  # those the run itself began inside: a script run by importing it


def _resend_dropped_stops(unraisable):
    """sys.unraisablehook once a stop was asked for: a stop raised inside a destructor, which
    Python drops, is sent again; anything else a destructor raises then is not news, and is not
    shown."""
    stop = unraisable.exc_type
    if stop is not None and issubclass(stop, KeyboardInterrupt):
        _resends.put(signal.SIGTERM if issubclass(stop, Terminated) else signal.SIGINT)


def _raise_stop(signum, frame):
    # Where the stop would be lost it is sent again, to land elsewhere: inside an import, whose
    # importer may swallow it (a compiled module's initialization does), and inside a destructor,
    # which drops it. It may also land inside any constructor (a progress bar's, say); the
    # half-built object's destructor then fails, and Python would print that as a traceback.
    if _import_frames(frame) > _outer_import_frames:  # an import begun since
        _resends.put(signum)
        return
    sys.unraisablehook = _resend_dropped_stops
    raise STOPS[signum]()


def _exit_quietly(signum, frame):
    # No exception: one raised inside an import can be swallowed by the importing module
    # (torch's import of NumPy does so) and end in another's traceback and exit 1. Nothing of
    # the user's exists yet to be written, so the process ends here, with its line and code.
    stop = STOPS[signum]
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


def ignore_stop_signals():
    """From now on, ignore SIGINT and SIGTERM: the process is ending after a stop, and a further
    one (or one sent again) has nothing left to stop but the line that says so."""
    _on_stop_signals(signal.SIG_IGN)


def _nothing_left_to_stop(signum, frame):
    pass


def disregard_stop_signals():
    """From now on, a SIGINT or SIGTERM does nothing: the work is done, and one landing as the
    process ends has nothing left to stop. A handler, not SIG_IGN, which _on_stop_signals keeps as
    the parent's choice: a later handle_stop_signals (--evaluate's second step) takes them up."""
    _on_stop_signals(_nothing_left_to_stop)


def handle_stop_signals():
    """Ctrl-C raises KeyboardInterrupt and SIGTERM raises Terminated, so that a run being stopped
    writes what it finished; a stop that would be lost is sent again (_raise_stop)."""
    global _outer_import_frames
    _outer_import_frames = _import_frames(sys._getframe())
    if not any(thread.name == RESENDER for thread in threading.enumerate()):
        threading.Thread(target=_resend, name=RESENDER, daemon=True).start()
    _on_stop_signals(_raise_stop)
