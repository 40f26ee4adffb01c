"""A run's folder: metrics.json kept current, the curves, and the atomic writer through which
every file the project writes goes: metrics, models, figures, downloads, summaries, the report."""
import contextlib
import json
import os
import platform
import signal
import sys
import tempfile
import time

import numpy as np
from tqdm import tqdm

from errors import Terminated, TrainingDiverged, UserError


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
    fd, partial = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path) or ".")
    try:
        with stop_signals_deferred() if finish_before_stopping else contextlib.nullcontext():
            with os.fdopen(fd, "wb") as f:
                write(f)
            set_default_permissions(partial)
            os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)


def write_json(path, content):
    write_atomically(path, lambda f: f.write(json.dumps(content, indent=1).encode()))


def versions():
    found = {"python": platform.python_version(), "numpy": np.__version__}
    if "torch" in sys.modules:  # only report torch where the run used it
        found["torch"] = sys.modules["torch"].__version__
    return found


def _new_folder(path):
    """Create path, or path_2, path_3, ... if taken: a rerun never overwrites an earlier run."""
    candidate, number = path, 1
    while True:
        try:
            os.makedirs(candidate)
            return candidate
        except FileExistsError:
            number += 1
            candidate = f"{path}_{number}"


ENDINGS = {None: "finished", KeyboardInterrupt: "interrupted", Terminated: "terminated",
           TrainingDiverged: "diverged"}  # any other exception: "failed"


class RunRecorder:
    """Collects a run's numbers, keeps metrics.json current, and draws its curves at the end.

    Used as a context manager: however the block ends (done, diverged, Ctrl-C, SIGTERM), the
    numbers of the finished epochs are written out with the way it ended, and plotted."""

    def __init__(self, results_dir, name, config, folder=None):
        """A new folder results_dir/name (name_2, ... if taken), or the existing folder of a run
        that is continued."""
        self.results_dir, self.name, self.existing, self.folder = results_dir, name, folder, None
        self.config = config
        self.status = "running"
        self.start = time.perf_counter()
        self.log = {"train_loss_steps": [], "train_loss": [], "train_accuracy": [],
                    "val_accuracy": [], "epoch_seconds": [], "test_accuracy": None,
                    "best_epoch": None}
        if os.path.exists(results_dir) and not os.path.isdir(results_dir):
            raise UserError(f"--results_dir {results_dir} is a file, not a folder")
        target = folder or results_dir
        try:  # fail before any work is done, but create the run's folder only once training starts
            os.makedirs(target, exist_ok=True)
            os.rmdir(tempfile.mkdtemp(dir=target))
        except OSError as error:
            raise UserError(f"results folder {target} is not writable ({error})") from None

    def path(self, filename):
        return os.path.join(self.folder, filename)

    def log_step(self, loss):
        self.log["train_loss_steps"].append(loss)

    def log_epoch(self, train_loss, train_accuracy, val_accuracy, seconds):
        """Record one finished epoch; True if its validation accuracy is the best so far."""
        for key, value in [("train_loss", train_loss), ("train_accuracy", train_accuracy),
                           ("val_accuracy", val_accuracy), ("epoch_seconds", seconds)]:
            self.log[key].append(float(value))
        epoch = len(self.log["val_accuracy"])
        if val_accuracy > max(self.log["val_accuracy"][:-1], default=-1.0):
            self.log["best_epoch"] = epoch
        write_json(self.path("metrics.json"), self.metrics())
        return epoch == self.log["best_epoch"]

    def metrics(self):
        return {"config": self.config, "status": self.status,
                "wall_time_s": time.perf_counter() - self.start, "versions": versions(),
                "machine": platform.machine(), **self.log}

    def __enter__(self):
        self.folder = self.log["run_dir"] = (self.existing or
                                             _new_folder(os.path.join(self.results_dir, self.name)))
        write_json(self.path("metrics.json"), self.metrics())
        return self

    def __exit__(self, exc_type, exc, traceback):
        self.status = ENDINGS.get(exc_type, "failed")
        with stop_signals_ignored():  # a second Ctrl-C or SIGTERM must not cut this short
            unwritten = self.write_record()
        where = (f"their curves and metrics are in {self.folder}" if unwritten is None else
                 f"their curves and metrics could not all be written to {self.folder} "
                 f"({unwritten})")
        if exc_type is None and unwritten is None:
            print(f"test accuracy {self.log['test_accuracy']:.4f} ({self.tested()}); results in "
                  f"{self.folder}")
        else:
            close_progress_bars()
            print(f"{self.status if exc_type else 'failed'} after {len(self.log['val_accuracy'])} "
                  f"finished epoch(s); {where}", file=sys.stderr)
        if exc is not None:
            exc.reported = True  # run_cli need not say it again
        if exc_type is None and unwritten is not None:
            raise unwritten
        return False

    def write_record(self):
        """Write metrics.json, then the curves; the OSError that stopped that (a full disk, say),
        or None once everything is written."""
        try:
            write_json(self.path("metrics.json"), self.metrics())
            if self.log["val_accuracy"]:
                plot_run(self.metrics(), self.folder)
        except OSError as error:
            return error
        return None

    def tested(self):
        if self.log["best_epoch"] is None:
            return "the untrained model: no epoch to choose from"
        return f"best validation epoch {self.log['best_epoch']}"


def close_progress_bars():
    """Clear the progress bars a stop left drawn. A signal that lands between drawing a bar and
    entering its loop leaves a bar nothing will close, and the closing line would follow it on
    the same line of the log. One that lands inside a bar's constructor leaves a bar that
    cannot close itself: it is dropped."""
    for bar in list(tqdm._instances):
        try:
            bar.close()
        except AttributeError:
            tqdm._instances.discard(bar)


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


def pyplot():
    """matplotlib's pyplot drawing to files only (Agg), which works on headless cluster nodes.
    matplotlib refuses to import under an MPLBACKEND it does not know; since no window is ever
    opened, such a value is set aside with one warning."""
    chosen = os.environ.get("MPLBACKEND")
    if chosen and "matplotlib" not in sys.modules:
        os.environ["MPLBACKEND"] = "agg"
        try:
            import matplotlib
            matplotlib.rcsetup.validate_backend(chosen)
        except ValueError:
            print(f"warning: MPLBACKEND={chosen} is no backend matplotlib knows; the figures "
                  f"are drawn with Agg", file=sys.stderr)
        finally:
            os.environ["MPLBACKEND"] = chosen
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi=110):
    """Write fig to path as PNG through write_atomically: a stop or a full disk mid-write leaves
    the previous figure, never half a new one."""
    fig.tight_layout()
    try:
        write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=dpi))
    finally:
        pyplot().close(fig)


def plot_run(metrics, folder):
    """loss.png (per step and per-epoch mean) and accuracy.png (train, validation) for one run."""
    plt = pyplot()
    title = os.path.basename(os.path.normpath(folder))
    steps = np.asarray(metrics["train_loss_steps"], dtype=float)
    epochs = np.arange(1, len(metrics["train_loss"]) + 1)
    steps_per_epoch = len(steps) / max(len(epochs), 1)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(np.arange(1, len(steps) + 1) / steps_per_epoch, steps, lw=0.5, alpha=0.5,
            label="per step")
    ax.plot(epochs, metrics["train_loss"], "o-", label="epoch mean")
    ax.set(title=f"Training loss\n{title}", xlabel="epoch", ylabel="cross-entropy loss")
    ax.legend()
    save_figure(fig, os.path.join(folder, "loss.png"))

    fig, ax = plt.subplots(figsize=(7, 4.5))
    ax.plot(epochs, metrics["train_accuracy"], "o-", label="train")
    ax.plot(epochs, metrics["val_accuracy"], "s-", label="validation")
    if metrics["test_accuracy"] is not None:
        ax.axhline(metrics["test_accuracy"], color="gray", ls="--",
                   label=f"test (best epoch) {metrics['test_accuracy']:.3f}")
    ax.set(title=f"Accuracy\n{title}", xlabel="epoch", ylabel="accuracy")
    ax.legend()
    save_figure(fig, os.path.join(folder, "accuracy.png"))
