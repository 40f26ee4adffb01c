"""What both trainers share: their common options, and each run's folder of metrics and plots."""
import argparse
import contextlib
import json
import math
import os
import platform
import signal
import sys
import tempfile
import time

import numpy as np
from tqdm import tqdm

from cifar10_utils import (AUGMENTATIONS, CIFAR10_URL, NORMALIZATIONS, DataError,
                           Preprocessing, set_default_permissions)


class UserError(Exception):
    """A problem the user can fix; the message is one line, shown without a traceback."""


class TrainingDiverged(UserError):
    pass


class Terminated(KeyboardInterrupt):
    """SIGTERM, the way a cluster scheduler ends a job: handled as Ctrl-C is, but named apart."""


EXIT_CODES = {KeyboardInterrupt: 130, Terminated: 143}  # 128 + the signal's number


# ---------------------------------------------------------------------------------------------
# Command line
# ---------------------------------------------------------------------------------------------

def _number_type(convert, minimum, maximum=math.inf, open_below=False, open_above=False):
    """An argparse type that converts text and checks it lies in the allowed range."""
    low = f"> {minimum}" if open_below else f">= {minimum}"
    high = f"< {maximum}" if open_above else f"<= {maximum}"
    allowed = low if maximum == math.inf else f"{low} and {high}"
    kind = "an integer" if convert is int else "a number"

    def parse(text):
        try:
            value = convert(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {kind}") from None
        below = value <= minimum if open_below else value < minimum
        above = value >= maximum if open_above else value > maximum
        if not math.isfinite(value) or below or above:
            raise argparse.ArgumentTypeError(f"{text} is out of range: must be {allowed}")
        return value

    parse.__name__ = convert.__name__  # argparse names the type in its messages
    return parse


positive_int = _number_type(int, 1)
nonnegative_int = _number_type(int, 0)
positive_float = _number_type(float, 0, open_below=True)
nonnegative_float = _number_type(float, 0)
fraction = _number_type(float, 0, 1, open_above=True)  # 1 would drop, smooth or keep everything
validation_size = _number_type(int, 1, 49999)
seed = _number_type(int, 0, 2 ** 32 - 1)  # what NumPy's and torch's generators accept


def comma_separated_dims(text):
    """The 2021 edition's --dnn_hidden_units "100,50"; "" means no hidden layer."""
    return [positive_int(part) for part in text.split(",") if part.strip()]


ACTIVATION_NAMES = ("elu", "gelu", "relu", "tanh")

# Every training option beyond the course's, with the value that keeps the course's plain run.
DEFAULT_OPTIONS = dict(activation="elu", optimizer="sgd", momentum=0.0, weight_decay=0.0,
                       dropout=0.0, schedule="none", warmup=0.0, label_smoothing=0.0,
                       augment="none", normalize="channel", zca_epsilon=0.1, tta="none",
                       mixup=0.0, ema=0.0, bottleneck=0)

# The recipes the search of results/README.md kept, each part chosen on validation accuracy:
# its first stage's at 15 epochs, then its second stage's at 30. Each preset trains the recipe
# chosen at its own horizon for as many epochs as fit its budget on a 2-core CPU: 2.5 minutes
# (fast) and 10 minutes (best).
SHORT_SEARCH_RECIPE = dict(hidden_dims=[1024, 1024], use_batch_norm=True, activation="gelu",
                           dropout=0.25, optimizer="adamw", lr=2e-3, weight_decay=0.05,
                           schedule="onecycle", label_smoothing=0.1, augment="flip",
                           normalize="zca", zca_epsilon=1.0, tta="flip", batch_size=256)
LONG_SEARCH_RECIPE = dict(SHORT_SEARCH_RECIPE, augment="crop+flip", dropout=0.1,
                          hidden_dims=[2048, 1024])
PRESETS = {"best": dict(LONG_SEARCH_RECIPE, epochs=40),
           "fast": dict(SHORT_SEARCH_RECIPE, epochs=15)}


def add_common_arguments(parser):
    """The course's flags, then the training options; both trainers take all of them."""
    parser.add_argument("--hidden_dims", default=[128], type=positive_int, nargs="+",
                        help="hidden layer sizes, e.g. --hidden_dims 256 128 (default: 128)")
    parser.add_argument("--dnn_hidden_units", dest="hidden_dims", type=comma_separated_dims,
                        help='alias of --hidden_dims as the 2021 edition wrote it: "100,50"')
    parser.add_argument("--lr", default=0.1, type=positive_float, help="learning rate (0.1)")
    parser.add_argument("--batch_size", default=128, type=positive_int, help="batch size (128)")
    parser.add_argument("--epochs", default=10, type=nonnegative_int, help="epochs (10)")
    parser.add_argument("--seed", default=42, type=seed, help="random seed, 0..2**32-1 (42)")
    parser.add_argument("--data_dir", default="data/",
                        help="folder with cifar-10-batches-py/ or the tarball (data/)")
    parser.add_argument("--data_url", default=CIFAR10_URL,
                        help="where to download CIFAR-10 if it is missing; '' never downloads")
    parser.add_argument("--validation_size", default=5000, type=validation_size,
                        help="training images held out for validation (5000)")
    parser.add_argument("--results_dir", default="results",
                        help="each run writes a folder of curves and metrics here (results)")
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="start from a named set of flags (best: the best MLP of "
                             "results/README.md); flags given as well override it")
    parser.add_argument("--bottleneck", default=0, type=nonnegative_int, metavar="N",
                        help="a linear layer of N units (no BatchNorm, activation or dropout) "
                             "before the first hidden layer; 0 is none (0)")
    parser.add_argument("--use_batch_norm", action=argparse.BooleanOptionalAction, default=False,
                        help="BatchNorm after each hidden Linear (off)")
    parser.add_argument("--activation", default="elu", choices=ACTIVATION_NAMES,
                        help="hidden-layer nonlinearity; gelu is its tanh form (elu)")
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"],
                        help="(sgd)")
    parser.add_argument("--momentum", default=0.0, type=fraction, help="SGD momentum, [0, 1) (0)")
    parser.add_argument("--weight_decay", default=0.0, type=nonnegative_float,
                        help="L2 for sgd and adam, decoupled for adamw (0)")
    parser.add_argument("--dropout", default=0.0, type=fraction,
                        help="dropout after each hidden activation, [0, 1) (0)")
    parser.add_argument("--schedule", default="none", choices=SCHEDULES,
                        help="learning rate per step: constant, cosine decay to 0, or one-cycle "
                             "(up from lr/25 for 30%% of the steps, then down to 0) (none)")
    parser.add_argument("--warmup", default=0.0, type=nonnegative_float,
                        help="epochs of linear learning-rate warm-up (0)")
    parser.add_argument("--label_smoothing", default=0.0, type=fraction, help="[0, 1) (0)")
    parser.add_argument("--augment", default="none", choices=sorted(AUGMENTATIONS),
                        help="flip: random horizontal flips; crop+flip: also random 32x32 crops "
                             "of the 4-pixel zero-padded image (none)")
    parser.add_argument("--normalize", default="channel", choices=NORMALIZATIONS,
                        help="input preprocessing: the course's per-channel mean and std, each "
                             "pixel's own training-set mean and std, or ZCA whitening fitted on "
                             "the training split (channel)")
    parser.add_argument("--zca_epsilon", default=0.1, type=positive_float,
                        help="added to the covariance's eigenvalues by --normalize zca, on "
                             "pixels scaled to [0, 1] (0.1)")
    parser.add_argument("--tta", default="none", choices=["none", "flip"],
                        help="flip: predict with the mean of each image's and its mirror's "
                             "probabilities, in validation and test (none)")
    parser.add_argument("--mixup", default=0.0, type=nonnegative_float, metavar="ALPHA",
                        help="train on blends of each batch with a shuffled copy of itself, "
                             "weight ~ Beta(ALPHA, ALPHA) per batch; 0 is off (0)")
    parser.add_argument("--ema", default=0.0, type=fraction, metavar="DECAY",
                        help="validate, keep and test an exponential moving average of the "
                             "weights, updated after every step; 0 is off (0)")
    parser.add_argument("--evaluate", metavar="MODEL",
                        help="instead of training, test the weights a run saved")
    return parser


def parse_with_preset(parser, argv=None):
    """Parse argv, with a --preset's flags as the defaults that flags given on the line override.

    args.given_flags names the flags the user chose: typed, or set by the preset.
    """
    preset = parser.parse_known_args(argv)[0].preset
    if preset:
        parser.set_defaults(**PRESETS[preset])
    args = parser.parse_args(argv)
    # argparse fills in a default only where the namespace lacks the name: start from markers
    not_given = object()
    typed = parser.parse_args(argv, argparse.Namespace(**{key: not_given for key in vars(args)}))
    args.given_flags = {key for key, value in vars(typed).items() if value is not not_given}
    args.given_flags |= set(PRESETS.get(preset, {}))
    del args.preset  # its flags are in args now
    if args.use_batch_norm and args.batch_size < 2:
        parser.error(f"--use_batch_norm needs --batch_size 2 or more, not {args.batch_size}: "
                     f"BatchNorm cannot normalize a batch of one sample")
    return args


SCHEDULES = ("none", "cosine", "onecycle")


def lr_factor(step, total_steps, warmup_steps, schedule):
    """Multiplier of the base learning rate at a step: linear warm-up, then constant or cosine;
    or one-cycle, which ignores warm-up: cosine up from 1/25 over the first 30 % of the steps,
    then cosine down to 0."""
    if schedule == "onecycle":
        peak = 0.3 * total_steps
        if step < peak:
            return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * step / peak))
        return 0.5 * (1 + math.cos(math.pi * (step - peak) / max(1, total_steps - peak)))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def describe_run(framework, hidden_dims, lr, use_batch_norm, batch_size, epochs, seed, options,
                 **config):
    """The run's folder name and its metrics.json config; options are checked against
    DEFAULT_OPTIONS and completed with its values, and only those that differ are named."""
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise TypeError(f"unknown options: {sorted(unknown)}")
    options = {**DEFAULT_OPTIONS, **options}
    changed = {key: value for key, value in options.items() if value != DEFAULT_OPTIONS[key]}
    name = run_name(framework, hidden_dims, lr, batch_size, epochs, seed,
                    **({"bn": True} if use_batch_norm else {}), **changed)
    config = dict(framework=framework, hidden_dims=list(hidden_dims), lr=lr,
                  use_batch_norm=use_batch_norm, batch_size=batch_size, epochs=epochs, seed=seed,
                  **config, **options)
    return name, config


# ---------------------------------------------------------------------------------------------
# Training options both trainers share: mixup and a moving average of the weights
# ---------------------------------------------------------------------------------------------

class Mixup:
    """Blends each training batch with a shuffled copy of itself (Zhang et al., 2018):
    x~ = w x + (1 - w) x[perm], one w ~ Beta(alpha, alpha) and one permutation per batch, drawn
    from a generator of its own, so both trainers blend alike for a seed. The loss of the blend
    is w L(y) + (1 - w) L(y[perm]). alpha = 0 leaves every batch as it is (w = 1)."""

    def __init__(self, alpha, seed):
        self.alpha, self.rng = alpha, np.random.default_rng([seed, 1])

    def __call__(self, images, labels):
        """images (B, ...) and labels (B,), NumPy or torch -> (x~, labels, y[perm], w)."""
        if not self.alpha:
            return images, labels, labels, 1.0
        weight = float(self.rng.beta(self.alpha, self.alpha))
        perm = self.rng.permutation(len(images))
        if not isinstance(images, np.ndarray):
            import torch
            perm = torch.from_numpy(perm).to(images.device)
        return weight * images + (1 - weight) * images[perm], labels, labels[perm], weight


class WeightAverage:
    """An exponential moving average of a model's floating-point state (weights and BatchNorm
    statistics): a <- d a + (1 - d) w after every step, with d = min(decay, (1 + t) / (10 + t))
    at update t so that the random initial weights fade within the first steps.

    state: a copy of the floating-point state to start from; the average owns it. Arrays may be
    NumPy's or torch's: the update is in place either way.
    """

    def __init__(self, decay, state):
        self.decay, self.updates, self.average = decay, 0, state

    def update(self, state):
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in self.average.items():
            value *= decay
            value += (1 - decay) * state[name]


def _raise_stop(signum, frame):
    # The exception may land inside any constructor (a progress bar's, say); the half-built
    # object's destructor then fails, and Python would print that as a traceback. After a stop
    # was asked for, such destructor noise is not news: keep it off the user's screen.
    sys.unraisablehook = lambda unraisable: None
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def exit_quietly_on_stop_signals():
    """Until run_cli takes over: a Ctrl-C or SIGTERM (during the slow imports of a script's
    start) exits with its code, 130 or 143, and no traceback. Ignored signals stay ignored."""
    def exit_quietly(signum, frame):
        sys.unraisablehook = lambda unraisable: None  # half-imported modules may complain
        sys.exit(EXIT_CODES[Terminated if signum == signal.SIGTERM else KeyboardInterrupt])

    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, exit_quietly)


def handle_stop_signals():
    """Ctrl-C raises KeyboardInterrupt and SIGTERM raises Terminated, so that a run being stopped
    writes what it finished. A signal the parent set to be ignored (SIGINT in a background job,
    under nohup) stays ignored."""
    for signum, handler in [(signal.SIGINT, _raise_stop), (signal.SIGTERM, _raise_stop)]:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, handler)


def run_cli(function, **kwargs):
    """Call function(**kwargs); a user-facing error, Ctrl-C or SIGTERM ends with one line (the
    run's own, or error: ...) and an exit code: 1, 130 or 143.

    OSErrors (a full disk, a missing or unreadable file) are the machine's state, not bugs, so
    they get one line too; so does running out of memory.
    """
    handle_stop_signals()
    try:
        function(**kwargs)
    except KeyboardInterrupt as stop:
        sys.exit(EXIT_CODES[type(stop)])
    except (UserError, DataError, OSError) as error:
        sys.exit(f"error: {error}")
    except MemoryError:
        sys.exit("error: out of memory; try smaller --hidden_dims or --batch_size")


def train_or_evaluate(args, train, evaluate_saved):
    """Train with the parsed flags or, given --evaluate PATH, test the weights saved there."""
    args = vars(args)
    saved_model, given_flags = args.pop("evaluate"), args.pop("given_flags")
    if saved_model:
        run_cli(evaluate_saved, path=saved_model, given_flags=given_flags, **args)
    else:
        run_cli(train, **args)


def check_batch_size(batch_size, num_train, use_batch_norm=False):
    if batch_size > num_train:
        raise UserError(f"--batch_size {batch_size} is larger than the {num_train} training "
                        f"images: no full batch to train on")
    if use_batch_norm and batch_size < 2:
        raise UserError("BatchNorm cannot normalize a batch of one sample: use --batch_size 2 "
                        "or more")


def check_model_fits(n_inputs, hidden_dims, n_classes, bottleneck=0):
    """Refuse hidden sizes whose weights cannot fit in this machine's memory, saying how much.

    Training holds each weight about four times (the weight, its gradient, two optimizer
    moments), in float32; NumPy draws the initial weights in float64 first.
    """
    sizes = [n_inputs, *([bottleneck] if bottleneck else []), *hidden_dims, n_classes]
    parameters = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:]))
    needed = 4 * 4 * parameters
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not every system reports it
        return
    if needed > available:
        raise UserError(f"--hidden_dims {' '.join(map(str, hidden_dims))} makes "
                        f"{parameters:,} parameters: about {needed / 1e9:,.1f} GB to train, "
                        f"but this machine has {available / 1e9:,.1f} GB of memory")


def diverged(loss, epoch, lr, weight_decay):
    """The error for a non-finite loss, naming the flags that can cause it."""
    culprits = f"--lr than {lr:g}" + (f" or --weight_decay than {weight_decay:g}"
                                      if weight_decay else "")
    return TrainingDiverged(f"loss became {loss} in epoch {epoch}: training diverged; try a "
                            f"lower {culprits}")


# ---------------------------------------------------------------------------------------------
# A saved model and the architecture it records
# ---------------------------------------------------------------------------------------------

# what rebuilds a saved model's predictions: its layers, how it reads its input, how it predicts
ARCHITECTURE_FLAGS = ("hidden_dims", "bottleneck", "use_batch_norm", "activation", "dropout",
                      "normalize", "tta")


def architecture_of(flags):
    return {key: flags[key] for key in ARCHITECTURE_FLAGS}


def not_a_saved_model(path, reason):
    return UserError(f"{path} is not a saved model of this trainer ({reason})")


def resolve_architecture(path, saved, flags, given_flags):
    """The architecture to rebuild a saved model with: the one saved with it, which flags the
    user chose must not contradict; flags alone only for a file that records none."""
    if saved is None:
        return architecture_of(flags)
    if not isinstance(saved, dict) or set(saved) != set(ARCHITECTURE_FLAGS):
        raise not_a_saved_model(path, "its architecture record is not one this trainer writes")
    conflicts = [f"--{key} {flag_text(flags[key])} (the model: {flag_text(saved[key])})"
                 for key in ARCHITECTURE_FLAGS if key in given_flags and flags[key] != saved[key]]
    if conflicts:
        raise UserError(f"{path} was trained with another architecture than "
                        f"{', '.join(conflicts)}; leave these flags out: the model records its "
                        f"own")
    return saved


def saved_preprocessing(path, normalize, arrays):
    """The Preprocessing a saved model was trained with, rebuilt from the arrays saved with it
    (none for the course's fixed per-channel numbers)."""
    needed = {"channel": set(), "pixel": {"scale", "shift"},
              "zca": {"scale", "shift", "whitening"}}.get(normalize)
    if needed is None or set(arrays) != needed:
        raise not_a_saved_model(path, f"its preprocessing does not fit --normalize {normalize}")
    return Preprocessing(normalize, {name: np.asarray(value, np.float32)
                                     for name, value in arrays.items()} or None)


def flag_text(value):
    if isinstance(value, list):
        return " ".join(map(str, value)) or "(none)"
    return f"{value:g}" if isinstance(value, float) else str(value)


def check_shapes(path, saved, expected):
    """saved and expected map parameter names to shapes; a mismatch names both architectures."""
    if saved != expected:
        raise UserError(f"{path} holds {describe_shapes(saved)}, but the model these flags build "
                        f"has {describe_shapes(expected)}: pass the architecture flags it was "
                        f"trained with (--hidden_dims, --bottleneck, --use_batch_norm, "
                        f"--activation, --dropout) or its --preset")


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
    a reader, or a run killed mid-write, never sees half a file or loses the previous one. The
    file ends with the permissions a plain open() would give it under the user's umask."""
    fd, partial = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path) or ".")
    try:
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


class RunRecorder:
    """Collects a run's numbers, keeps metrics.json current, and draws its curves at the end.

    Used as a context manager: however the block ends (done, diverged, Ctrl-C, SIGTERM), the
    numbers of the finished epochs are written out with the way it ended, and plotted.
    """

    def __init__(self, results_dir, name, config):
        self.results_dir, self.name, self.folder = results_dir, name, None
        self.config = config
        self.status = "running"
        self.start = time.perf_counter()
        self.log = {"train_loss_steps": [], "train_loss": [], "train_accuracy": [],
                    "val_accuracy": [], "epoch_seconds": [], "test_accuracy": None,
                    "best_epoch": None}
        if os.path.exists(results_dir) and not os.path.isdir(results_dir):
            raise UserError(f"--results_dir {results_dir} is a file, not a folder")
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
                       Terminated: "terminated", TrainingDiverged: "diverged"}.get(exc_type,
                                                                                  "failed")
        with stop_signals_ignored():  # a second Ctrl-C or SIGTERM must not cut this short
            write_json(self.path("metrics.json"), self.metrics())
            if self.log["val_accuracy"]:
                plot_run(self.metrics(), self.folder)
        epochs = len(self.log["val_accuracy"])
        if exc_type is None:
            print(f"test accuracy {self.log['test_accuracy']:.4f} (best validation epoch "
                  f"{self.log['best_epoch']}); results in {self.folder}")
        else:
            close_progress_bars()
            print(f"{self.status} after {epochs} finished epoch(s); their curves and metrics are "
                  f"in {self.folder}", file=sys.stderr)
        return False


def close_progress_bars():
    """Clear the progress bars a stop left drawn. A signal that lands between drawing a bar and
    entering its loop leaves a bar nothing will close, and the closing line would follow it on
    the same line of the log."""
    for bar in list(tqdm._instances):
        bar.close()


@contextlib.contextmanager
def stop_signals_ignored():
    """Ignore SIGINT and SIGTERM inside the block (in the main thread; elsewhere Python cannot
    change handlers), then restore the handlers there were."""
    try:
        previous = {signum: signal.signal(signum, signal.SIG_IGN)
                    for signum in (signal.SIGINT, signal.SIGTERM)}
    except ValueError:  # not the main thread
        previous = {}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


# ---------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------

def pyplot():
    import matplotlib
    matplotlib.use("Agg")  # files only: works on headless cluster nodes
    import matplotlib.pyplot as plt
    return plt


def save_figure(fig, path, dpi=110):
    fig.tight_layout()
    fig.savefig(path, dpi=dpi)
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
