"""A run's folder: metrics.json kept current while the run goes on, and written with the way
it ended, whatever that was."""
import json
import os
import platform
import sys
import time

import numpy as np
from tqdm import tqdm

from safety.console import say
from safety.errors import Terminated, TrainingDiverged, UserError
from safety.files import check_writable, temporary_prefix, write_json
from safety.locks import FolderLock
from safety.signals import stop_signals_ignored
from training.plots import plot_run


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


IN_USE = ("is in use by another process: the run is still going on (a job, or a --resume "
          "elsewhere); let it end, or stop it, before resuming it")
RUN_FILES = ("metrics.json", "model.npz", "model.pt", "checkpoint.npz", "checkpoint.pt",
             "loss.png", "accuracy.png")

ENDINGS = {None: "finished", KeyboardInterrupt: "interrupted", Terminated: "terminated",
           TrainingDiverged: "diverged"}  # any other exception: "failed"


class RunRecorder:
    """Collects a run's numbers, keeps metrics.json current, and draws its curves at the end.

    Used as a context manager: however the block ends (done, diverged, Ctrl-C, SIGTERM), the
    numbers of the finished epochs are written out with the way it ended, and plotted."""

    def __init__(self, results_dir, name, config, folder=None):
        """A new folder results_dir/name (name_2, ... if taken), or the existing folder of a run
        that is continued; the block holds it: one process at a time."""
        self.results_dir, self.name, self.existing, self.folder = results_dir, name, folder, None
        self.lock = None
        self.config_record = config
        self.status = "running"
        self.start = time.perf_counter()
        self.log = {"train_loss_steps": [], "train_loss": [], "train_accuracy": [],
                    "val_accuracy": [], "epoch_seconds": [], "kept_val_accuracy": None,
                    "test_accuracy": None, "best_epoch": None}
        if os.path.exists(results_dir) and not os.path.isdir(results_dir):
            raise UserError(f"--results_dir {results_dir} is a file, not a folder")
        # fail before any work is done, but create the run's folder only once training starts
        check_writable(folder or results_dir, "results folder")

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
        return {"config": self.config_record, "status": self.status,
                "wall_time_s": time.perf_counter() - self.start, "versions": versions(),
                "machine": platform.machine(), **self.log}

    def __enter__(self):
        self.folder = self.log["run_dir"] = (self.existing or
                                             _new_folder(os.path.join(self.results_dir, self.name)))
        self.lock = hold(self.folder)
        try:
            self.check_held()
            write_json(self.path("metrics.json"), self.metrics())
        except BaseException:  # no block runs, so no __exit__ releases the folder
            self.lock.release()
            raise
        return self

    def check_held(self):
        """Called once the folder is held, before anything is written to it: a continued run
        checks there that nothing else went on with it meanwhile."""

    def __exit__(self, exc_type, exc, traceback):
        self.status = ENDINGS.get(exc_type, "failed")
        with stop_signals_ignored():  # a second Ctrl-C or SIGTERM must not cut this short
            unwritten = self.write_record()
            if exc_type is None and unwritten is None:
                self.recorded()
            self.lock.release()
            self.say_ending(exc_type, unwritten)
        if exc is not None:
            exc.reported = True  # run_cli need not say it again
        if exc_type is None and unwritten is not None:
            raise unwritten
        return False

    def recorded(self):
        """What a finished run does once its whole record is written, its folder still held."""

    def say_ending(self, exc_type, unwritten):
        """The run's last line: its test accuracy, or how it ended and where its record is."""
        written = "their curves and metrics" if self.log["val_accuracy"] else "its metrics"
        where = (f"{written} are in {self.folder}" if unwritten is None else
                 f"{written} could not all be written to {self.folder} ({unwritten})")
        if exc_type is None and unwritten is None:
            say(f"test accuracy {self.log['test_accuracy']:.4f} ({self.tested()}); results in "
                f"{self.folder}")
        else:
            close_progress_bars()
            say(f"{self.status if exc_type else 'failed'} after {len(self.log['val_accuracy'])} "
                f"finished epoch(s); {where}", sys.stderr)

    def write_record(self):
        """Draw the curves, then write metrics.json; the OSError that stopped either (a full
        disk, say), or None once everything is written. A run whose curves could not be drawn
        is recorded as failed, not finished: --resume goes on from its checkpoint and draws them."""
        unwritten = None
        if self.log["val_accuracy"]:
            try:
                plot_run(self.metrics(), self.folder)
            except OSError as error:
                unwritten = error
                self.status = "failed" if self.status == "finished" else self.status
        try:
            write_json(self.path("metrics.json"), self.metrics())
        except OSError as error:
            unwritten = unwritten or error
        return unwritten

    def tested(self):
        if self.log["best_epoch"] is None:
            return "the untrained model: no epoch to choose from"
        best, kept = self.log["best_epoch"], self.log["kept_val_accuracy"]
        views = ("" if kept in (None, self.log["val_accuracy"][best - 1]) else
                 f"; the kept model's validation accuracy on every --tta view {kept:.4f}")
        return f"best validation epoch {best}{views}"


def read_metrics(run_dir):
    """A run folder's metrics.json, whose config is a mapping of flags and status a word;
    UserError naming the file where it is missing, unreadable or not a run's."""
    path = os.path.join(run_dir, "metrics.json")
    try:
        if os.path.exists(path) and not os.path.isfile(path):  # a FIFO would block the open
            raise OSError("not a regular file")
        with open(path) as f:
            metrics = json.load(f)
        if not isinstance(metrics["config"], dict) or not isinstance(metrics["status"], str):
            raise TypeError("its config is not a mapping of flags, or its status not a word")
        return metrics
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise UserError(f"{run_dir} holds no run ({path}: {error})") from None


def hold(folder):
    """Lock a run's folder for this process (a FolderLock, which a with block releases too),
    and remove the temporary files of the run's own files that a killed process left there
    (each as large as the file it was writing)."""
    lock = FolderLock(folder, IN_USE)
    try:
        for name in os.listdir(folder):
            if name.startswith(tuple(map(temporary_prefix, RUN_FILES))):
                os.remove(os.path.join(folder, name))
    except BaseException:
        lock.release()
        raise
    return lock



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
