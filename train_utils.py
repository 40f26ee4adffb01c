"""What both trainers share: their common options, and each run's folder of metrics and plots."""
import argparse
import json
import math
import os
import platform
import sys
import tempfile
import time

import numpy as np

from cifar10_utils import CIFAR10_URL, DataError


class UserError(Exception):
    """A problem the user can fix; the message is one line, shown without a traceback."""


class TrainingDiverged(UserError):
    pass


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def _number_type(convert, minimum, maximum=math.inf, open_below=False):
    """An argparse type that converts text and checks it lies in the allowed range."""
    low = f"> {minimum}" if open_below else f">= {minimum}"
    allowed = low if maximum == math.inf else f"{low} and <= {maximum}"

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not a number") from None
        below = value <= minimum if open_below else value < minimum
        if not math.isfinite(value) or below or value > maximum:
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {allowed}")
        return value

    parse.__name__ = convert.__name__  # argparse names the type in its messages
    return parse


positive_int = _number_type(int, 1)
nonnegative_int = _number_type(int, 0)
positive_float = _number_type(float, 0, open_below=True)
nonnegative_float = _number_type(float, 0)
probability = _number_type(float, 0, 1)
validation_size = _number_type(int, 1, 49999)


def comma_separated_dims(text):
    """The 2021 edition's --dnn_hidden_units "100,50"; "" means no hidden layer."""
    return [positive_int(part) for part in text.split(",") if part.strip()]


def add_common_arguments(parser):
    parser.add_argument("--hidden_dims", default=[128], type=positive_int, nargs="+",
                        help="hidden layer sizes, e.g. --hidden_dims 256 128 (default: 128)")
    parser.add_argument("--dnn_hidden_units", dest="hidden_dims", type=comma_separated_dims,
                        help='alias of --hidden_dims as the 2021 edition wrote it: "100,50"')
    parser.add_argument("--lr", default=0.1, type=positive_float, help="learning rate (0.1)")
    parser.add_argument("--batch_size", default=128, type=positive_int, help="batch size (128)")
    parser.add_argument("--epochs", default=10, type=nonnegative_int, help="epochs (10)")
    parser.add_argument("--seed", default=42, type=int, help="random seed (42)")
    parser.add_argument("--data_dir", default="data/",
                        help="folder with cifar-10-batches-py/ or the tarball (data/)")
    parser.add_argument("--data_url", default=CIFAR10_URL,
                        help="where to download CIFAR-10 if it is missing; '' never downloads")
    parser.add_argument("--validation_size", default=5000, type=validation_size,
                        help="training images held out for validation (5000)")
    parser.add_argument("--results_dir", default="results",
                        help="each run writes a folder of curves and metrics here (results)")
    return parser


def run_cli(function, **kwargs):
    """Call function(**kwargs); a user-facing error or Ctrl-C ends with one line and an exit code.

    OSErrors (a full disk, a missing or unreadable file) are the machine's state, not bugs, so
    they get one line too.
    """
    try:
        function(**kwargs)
    except KeyboardInterrupt:
        sys.exit(130)
    except (UserError, DataError, OSError) as error:
        sys.exit(f"error: {error}")


def train_or_evaluate(args, train, evaluate_saved):
    """Train with the parsed flags or, given --evaluate PATH, test the weights saved there."""
    args = vars(args)
    saved_model = args.pop("evaluate")
    if saved_model:
        run_cli(evaluate_saved, path=saved_model, **args)
    else:
        run_cli(train, **args)


def check_batch_size(batch_size, num_train):
    if batch_size > num_train:
        raise UserError(f"--batch_size {batch_size} is larger than the {num_train} training "
                        f"images: no full batch to train on")


def check_shapes(path, saved, expected):
    """saved and expected map parameter names to shapes; a mismatch names both architectures."""
    if saved != expected:
        raise UserError(f"{path} holds {describe_shapes(saved)}, but the model these flags build "
                        f"has {describe_shapes(expected)}: pass the architecture flags it was "
                        f"trained with (--hidden_dims, --use_batch_norm, --dropout) or its "
                        f"--preset")


def describe_shapes(shapes):
    return "{" + ", ".join(f"{name}: {tuple(shape)}" for name, shape in shapes.items()) + "}"


# ---------------------------------------------------------------------------------------------
# A run's results folder
# ---------------------------------------------------------------------------------------------

def run_name(framework, hidden_dims, lr, batch_size, epochs, seed, **options):
    """A folder name that spells out the flags, e.g. numpy_h128_lr0.1_b128_e10_s42."""
    hidden = "-".join(map(str, hidden_dims)) or "none"
    name = f"{framework}_h{hidden}_lr{lr:g}_b{batch_size}_e{epochs}_s{seed}"
    for key, value in options.items():
        name += f"_{key}" if value is True else f"_{key}{value}"
    return name


def write_atomically(path, write):
    """write(f) fills a temporary binary file beside path, which then replaces path in one step:
    a reader, or a run killed mid-write, never sees half a file or loses the previous one."""
    fd, partial = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path) or ".")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
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


class RunRecorder:
    """Collects a run's numbers, keeps metrics.json current, and draws its curves at the end.

    Used as a context manager: however the block ends (done, diverged, Ctrl-C), the numbers of the
    finished epochs are written out with the way it ended, and plotted.
    """

    def __init__(self, results_dir, name, config):
        self.results_dir, self.name, self.folder = results_dir, name, None
        self.config = config
        self.status = "running"
        self.start = time.perf_counter()
        self.log = {"train_loss_steps": [], "train_loss": [], "train_accuracy": [],
                    "val_accuracy": [], "epoch_seconds": [], "test_accuracy": None,
                    "best_epoch": None}
        try:  # fail before any work is done, but create the run's folder only once training starts
            os.makedirs(results_dir, exist_ok=True)
            os.rmdir(tempfile.mkdtemp(dir=results_dir))
        except OSError as error:
            raise UserError(f"results folder {results_dir} is not writable ({error})") from None

    def path(self, filename):
        return os.path.join(self.folder, filename)

    def log_step(self, loss):
        self.log["train_loss_steps"].append(loss)

    def log_epoch(self, train_loss, train_accuracy, val_accuracy, seconds):
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
        self.folder = self.log["run_dir"] = _new_folder(os.path.join(self.results_dir, self.name))
        write_json(self.path("metrics.json"), self.metrics())
        return self

    def __exit__(self, exc_type, exc, traceback):
        self.status = {None: "finished", KeyboardInterrupt: "interrupted",
                       TrainingDiverged: "diverged"}.get(exc_type, "failed")
        write_json(self.path("metrics.json"), self.metrics())
        if self.log["val_accuracy"]:
            plot_run(self.metrics(), self.folder)
        epochs = len(self.log["val_accuracy"])
        if exc_type is None:
            print(f"test accuracy {self.log['test_accuracy']:.4f} (best validation epoch "
                  f"{self.log['best_epoch']}); results in {self.folder}")
        else:
            print(f"{self.status} after {epochs} finished epoch(s); their curves and metrics are "
                  f"in {self.folder}", file=sys.stderr)
        return False


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------

def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: works on headless cluster nodes
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=110)
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
