"""What the two training loops share: a run's course around the loop (TrainingRun), the
learning-rate schedule, the moving average of the weights, the checks before any work, the
saved-model record and its evaluation, stop signals and the command-line runner."""
import json
import math
import os
import signal
import sys
import time
import zipfile

import numpy as np
from tqdm import tqdm

import checks
import cifar10_utils
import inspect_model
from errors import EXIT_CODES, Terminated, TrainingDiverged, UserError
from options import (ARCHITECTURE, BY_NAME, DEFAULTS, RECORDED, TRAINING_OPTIONS, WHERE,
                     check_batch_norm_batch, options_of, typed_flag)
from preprocessing import AUGMENTATIONS, Mixup, Preprocessing, mirror
from run_folder import ENDINGS, RunRecorder, close_progress_bars


# --- A training run around its loop ---
class TrainingRun(RunRecorder):
    """Everything of a run but its model and its step, the same for both trainers: the checks,
    the run's folder and record, the preprocessed data, each epoch's batches with their learning
    rate and mixup, the bookkeeping of every step and epoch, and the test. flags: the trainer's
    options (options.options_of), defaults for those left out, each checked as the command line
    checks it (TypeError or ValueError naming it); an unknown one is a TypeError."""

    def __init__(self, framework, flags):
        flags = dict(flags)
        resume = flags.pop("resume", None)
        unknown = set(flags) - set(options_of(framework))
        if unknown:
            raise TypeError(f"unknown options: {sorted(unknown)}")
        self.flags = flags = {name: BY_NAME[name].check(flags.get(name, DEFAULTS[name]))
                              for name in options_of(framework)}
        check_batch_norm_batch(flags["use_batch_norm"], flags["batch_size"])
        check_model_fits(flags["hidden_dims"], flags["bottleneck"], flags["projection"])
        check_projection(flags["projection"], flags["normalize"])
        self.record = {name: flags[name] for name in RECORDED}
        self.resume = resume and checks.run_folder.check("resume", resume)
        self.checkpoint = CHECKPOINTS[framework]
        if self.resume:
            check_resumable(self.resume, framework, flags, self.checkpoint)
        super().__init__(flags["results_dir"], self.folder_name(framework),
                         dict(framework=framework, **flags), folder=self.resume)
        self.mixup = Mixup(flags["mixup"], flags["seed"])
        self.step = 0

    def folder_name(self, framework):
        """The flags spelled out, e.g. numpy_h128_lr0.1_b128_e10_s42: the course's, then
        BatchNorm and every training option that differs from its default."""
        flags = self.flags
        name = (f"{framework}_h{'-'.join(map(str, flags['hidden_dims'])) or 'none'}_"
                f"lr{flags['lr']:g}_b{flags['batch_size']}_e{flags['epochs']}_s{flags['seed']}")
        name += "_bn" if flags["use_batch_norm"] else ""
        return name + "".join(f"_{key}{flags[key]}" for key in TRAINING_OPTIONS
                              if flags[key] != DEFAULTS[key])

    def load_data(self, move=None):
        """The loaders of the three splits, preprocessed as the flags say: the preprocessing,
        and a projection's components, are fitted on the training split alone. move(split) puts a
        split where it is to live."""
        flags = self.flags
        self.dataset = cifar10_utils.get_cifar10(flags["data_dir"], flags["validation_size"],
                                                 url=flags["data_url"])
        if flags["batch_size"] > len(self.dataset["train"]):
            raise UserError(f"--batch_size {flags['batch_size']} is larger than the "
                            f"{len(self.dataset['train'])} training images: no full batch to "
                            f"train on")
        self.preprocessing = Preprocessing.fit(flags["normalize"], self.dataset["train"].images,
                                               flags["zca_epsilon"])
        self.loaders = cifar10_utils.make_loaders(self.dataset, self.preprocessing,
                                                  flags["batch_size"], flags["seed"],
                                                  AUGMENTATIONS[flags["augment"]], move)
        self.components = (self.preprocessing.principal_components(flags["projection"])
                           if flags["projection"] else None)
        steps_per_epoch = len(self.loaders["train"])
        self.total_steps = flags["epochs"] * steps_per_epoch
        self.warmup_steps = round(flags["warmup"] * steps_per_epoch)
        return self.loaders

    def batches(self, epoch):
        """The epoch's training batches, each as (learning rate, images, labels, partners,
        weight): the schedule's rate for the step, and the batch as Mixup blends it."""
        self.epoch, self.epoch_start, self.losses, self.correct = epoch, time.perf_counter(), [], 0
        flags = self.flags
        for images, labels in tqdm(self.loaders["train"], desc=f"epoch {epoch}/{flags['epochs']}",
                                   leave=False):
            factor = lr_factor(self.step, self.total_steps, self.warmup_steps, flags["schedule"])
            self.step += 1
            yield (flags["lr"] * factor, *self.mixup(images, labels))

    def record_step(self, loss, predictions, labels, partners, weight):
        """Log a step's loss, and count its correct predictions against the labels that weigh
        most in the blend; a loss that is not finite ends the run as diverged."""
        if not math.isfinite(loss):  # name the flags that can cause it
            lr, weight_decay = self.flags["lr"], self.flags["weight_decay"]
            culprits = f"--lr than {lr:g}" + (f" or --weight_decay than {weight_decay:g}"
                                              if weight_decay else "")
            raise TrainingDiverged(f"loss became {loss} in epoch {self.epoch}: training "
                                   f"diverged; try a lower {culprits}")
        self.log_step(loss)
        self.losses.append(loss)
        self.correct += (predictions == (labels if weight >= 0.5 else partners)).sum()

    def end_epoch(self, val_accuracy):
        """Record the finished epoch and print its line; True if it is the best so far on
        validation, whose model the trainer then keeps."""
        train_loss = np.mean(self.losses)
        train_accuracy = int(self.correct) / (len(self.losses) * self.flags["batch_size"])
        best = self.log_epoch(train_loss, train_accuracy, val_accuracy,
                              time.perf_counter() - self.epoch_start)
        tqdm.write(f"epoch {self.epoch:3d}  train loss {train_loss:.4f}  train acc "
                   f"{train_accuracy:.4f}  val acc {val_accuracy:.4f}")
        return best

    def progress(self, epoch):
        """What a resumed run needs of this run's own course after epoch, as JSON: the step, the
        log, the time spent, and the states of the loader's and mixup's generators."""
        return {"epoch": epoch, "step": self.step, "log": self.log,
                "wall_time_s": time.perf_counter() - self.start,
                "generators": [rng.bit_generator.state for rng in self.generators()]}

    def restore(self, progress):
        """Take up a checkpoint's progress; returns the first epoch still to train."""
        self.step = progress["step"]
        self.log.update(progress["log"])
        self.start -= progress["wall_time_s"]
        set_generator_states(self.generators(), progress["generators"])
        return progress["epoch"] + 1

    def generators(self):
        return [self.loaders["train"].rng, self.mixup.rng]

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is None and self.folder and os.path.exists(self.path(self.checkpoint)):
            os.remove(self.path(self.checkpoint))  # finished: nothing left to resume
        return super().__exit__(exc_type, exc, traceback)

    def test(self, probabilities, labels):
        """Record the kept model's test predictions: accuracy, confusion matrix, per class."""
        names = cifar10_utils.class_names(self.flags["data_dir"])
        self.log.update(inspect_model.test_metrics(labels, probabilities.argmax(axis=1), names))


# --- Resuming a stopped run ---
CHECKPOINTS = {"numpy": "checkpoint.npz", "pytorch": "checkpoint.pt"}


def run_config(run_dir):
    """The config and status a run folder's metrics.json records; UserError if it has none."""
    path = os.path.join(run_dir, "metrics.json")
    try:
        with open(path) as f:
            metrics = json.load(f)
        return metrics["config"], metrics["status"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise UserError(f"{run_dir} holds no run to resume ({path}: {error})") from None


def resumed_flags(run_dir, flags, given_flags):
    """The flags to continue run_dir with: its own, except those the user gave."""
    config, _ = run_config(run_dir)
    return {name: value if name in given_flags else config.get(name, value)
            for name, value in flags.items()}


def check_resumable(run_dir, framework, flags, checkpoint):
    """Refuse to resume a run of the other trainer, a finished one, one without a checkpoint,
    or one whose flags differ from these (those that only say where things are excepted)."""
    config, status = run_config(run_dir)
    if config.get("framework") != framework:
        other = config.get("framework")
        raise UserError(f"{run_dir} is a run of train_mlp_{other}.py: resume it with that script")
    if status == "finished":
        raise UserError(f"{run_dir} finished already: there is nothing to resume")
    conflicts = contradictions(flags, config, [name for name in flags if name not in WHERE],
                               "the run")
    if conflicts:
        raise UserError(f"{run_dir} was started with other flags than {conflicts}; leave them "
                        f"out: the run records its own")
    if not os.path.isfile(os.path.join(run_dir, checkpoint)):
        raise UserError(f"{run_dir} has no {checkpoint}: it stopped before its first epoch "
                        f"finished; start it again without --resume")


def contradictions(flags, recorded, names, whose):
    """Each of names whose flag differs from what recorded holds, both as typed, e.g.
    '--lr 0.5 (the run: --lr 0.1)', joined by commas; '' where none differs."""
    return ", ".join(f"{typed_flag(name, flags[name])} ({whose}: "
                     f"{typed_flag(name, recorded.get(name))})"
                     for name in names if flags[name] != recorded.get(name))


def set_generator_states(generators, states):
    """Give each NumPy Generator its saved state; ValueError where the counts differ."""
    if len(generators) != len(states):
        raise ValueError(f"{len(states)} generator states for {len(generators)} generators")
    for rng, state in zip(generators, states):
        rng.bit_generator.state = state


def damaged_checkpoint(path, error):
    return UserError(f"{path} is damaged ({type(error).__name__}: {error}); start the run again "
                     f"without --resume")


def prefixed(prefix, arrays):
    return {f"{prefix}.{name}": value for name, value in arrays.items()}


def unprefixed(prefix, entries):
    return {name[len(prefix) + 1:]: value for name, value in entries.items()
            if name.startswith(prefix + ".")}


def predict(model, data_loader, tta, probabilities_of):
    """(probabilities (N, C), labels (N,)) as NumPy arrays of probabilities_of(images) over
    data_loader, in eval mode (BatchNorm's running statistics, no dropout), the mode restored
    after; tta='flip' averages each image's probabilities with its mirror's."""
    was_training = model.training
    model.eval()
    batches = []
    for images, labels in data_loader:
        probabilities = probabilities_of(images)
        if tta == "flip":
            probabilities = (probabilities + probabilities_of(mirror(images))) / 2
        batches.append([part if isinstance(part, np.ndarray) else part.cpu().numpy()
                        for part in (probabilities, labels)])
    model.train(was_training)
    return tuple(np.concatenate(parts) for parts in zip(*batches))


def accuracy_of(probabilities, labels):
    """The share of rows of probabilities (N, C) whose largest entry is at the label (N,)."""
    return float(np.mean(probabilities.argmax(axis=1) == labels))


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


class WeightAverage:
    """An exponential moving average of a model's floating-point state (weights and BatchNorm
    statistics): a <- d a + (1 - d) w after every step, with d = min(decay, (1 + t) / (10 + t))
    at update t so that the random initial weights fade within the first steps.

    state: a copy of the floating-point state to start from; the average owns it. Arrays may be
    NumPy's or torch's: the update is in place either way."""

    def __init__(self, decay, state):
        self.decay, self.updates, self.average = decay, 0, state

    def update(self, state):
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in self.average.items():
            value *= decay
            value += (1 - decay) * state[name]


# --- Checks before any work ---
def build_mlp(mlp_class, architecture, **settings):
    """The MLP for CIFAR-10 that an architecture record (options.ARCHITECTURE) describes."""
    return mlp_class(cifar10_utils.PIXEL_VALUES, architecture["hidden_dims"],
                     cifar10_utils.NUM_CLASSES, architecture["use_batch_norm"],
                     architecture["activation"], architecture["dropout"],
                     bottleneck=architecture["bottleneck"],
                     projection=architecture["projection"], **settings)


def check_projection(projection, normalize):
    """A projection is onto ZCA's principal components, at most one per pixel value."""
    if projection and normalize != "zca":
        raise UserError(f"--projection {projection} projects onto the principal components that "
                        f"ZCA whitening fits: add --normalize zca")
    if projection > cifar10_utils.PIXEL_VALUES:
        raise UserError(f"--projection {projection} asks for more principal components than "
                        f"the {cifar10_utils.PIXEL_VALUES} pixel values of an image")


def check_model_fits(hidden_dims, bottleneck, projection=0):
    """Refuse hidden sizes whose weights cannot fit in this machine's memory, saying how much.

    Training holds each weight about four times (the weight, its gradient, two optimizer
    moments), in float32; NumPy draws the initial weights in float64 first."""
    inputs = projection or cifar10_utils.PIXEL_VALUES
    sizes = [inputs, *([bottleneck] if bottleneck else []), *hidden_dims,
             cifar10_utils.NUM_CLASSES]
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


# --- A saved model: its architecture record, and testing it ---
def not_a_saved_model(path, reason):
    return UserError(f"{path} is not a saved model of this trainer ({reason})")


def saved_by(path):
    """'numpy' or 'pytorch' where path is a zip archive such as that trainer saves, else None."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    if any(name.endswith("/data.pkl") for name in names):
        return "pytorch"
    return "numpy" if "architecture.npy" in names else None


def refuse_the_other_trainers_model(path, framework):
    other = saved_by(path)
    if other not in (None, framework):
        name = {"numpy": "NumPy", "pytorch": "PyTorch"}[other]
        raise not_a_saved_model(path, f"it is a {name} model: use train_mlp_{other}.py")


# what a record written before these options existed means by leaving them out
RECORDED_LATER = {"projection": 0}


def resolve_record(path, saved, flags, given_flags):
    """The record (options.RECORDED) to rebuild and measure a saved model with: the one saved
    with it, each value checked as a flag is, which flags the user chose must not contradict;
    flags alone only for a file that records none. A record written before the validation
    split was recorded takes the flags' split."""
    if saved is None:
        return {name: flags[name] for name in RECORDED}
    if isinstance(saved, dict):
        saved = {**RECORDED_LATER, **saved}
    if not isinstance(saved, dict) or not set(ARCHITECTURE) <= set(saved) <= set(RECORDED):
        raise not_a_saved_model(path, "its architecture record is not one this trainer writes")
    try:
        saved = {name: BY_NAME[name].check(value) for name, value
                 in {"validation_size": flags["validation_size"], **saved}.items()}
    except (TypeError, ValueError) as error:
        raise UserError(f"{path} records {error}: this version cannot rebuild that model (the "
                        f"file was edited, or a newer version wrote it)") from None
    conflicts = contradictions(flags, saved, [key for key in RECORDED if key in given_flags],
                               "the model")
    if conflicts:
        raise UserError(f"{path} records other settings than {conflicts}; leave these flags "
                        f"out: the model records its own")
    return saved


def load_weights(model, state, path):
    """Load a state (NumPy arrays or tensors) into model; one of another architecture is
    refused with both sets of shapes named."""
    saved, expected = ({name: tuple(value.shape) for name, value in tensors.items()}
                       for tensors in (state, model.state_dict()))
    if saved != expected:
        raise UserError(f"{path} holds {saved}, but the model these flags build has "
                        f"{expected}: pass the architecture flags it was "
                        f"trained with ({', '.join(f'--{name}' for name in ARCHITECTURE)}) or "
                        f"its --preset")
    model.load_state_dict(state)


def evaluate_saved(path, given_flags, flags, read_weights, build_model, predict, move=None):
    """--evaluate: print a saved model's accuracies and draw inspect_model's figures beside it.
    The model is rebuilt as it records, which the flags the user gave must not contradict, by the
    trainer's functions; move(split) puts a split where the model lives."""
    flags = {**DEFAULTS, **flags}
    state, saved_record, arrays = read_weights(path)
    record = resolve_record(path, saved_record, flags, given_flags)
    model = build_model(record)
    load_weights(model, state, path)
    try:
        preprocessing = Preprocessing.load(record["normalize"], arrays)
    except ValueError as error:
        raise not_a_saved_model(path, str(error)) from None
    dataset = cifar10_utils.get_cifar10(flags["data_dir"], record["validation_size"],
                                        url=flags["data_url"])
    loaders = cifar10_utils.make_loaders(dataset, preprocessing, move=move)
    validation_accuracy = accuracy_of(*predict(model, loaders["validation"], record["tta"]))
    probabilities, _ = predict(model, loaders["test"], record["tta"])
    inspect_model.report(path, validation_accuracy, dataset["test"], probabilities,
                         model.input_filters(), cifar10_utils.class_names(flags["data_dir"]))


# --- Stop signals and the command line ---
def _raise_stop(signum, frame):
    # The exception may land inside any constructor (a progress bar's, say); the half-built
    # object's destructor then fails, and Python would print that as a traceback. After a stop
    # was asked for, such destructor noise is not news: keep it off the user's screen.
    sys.unraisablehook = lambda unraisable: None
    raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()


def _exit_quietly(signum, frame):
    sys.unraisablehook = lambda unraisable: None  # half-imported modules may complain
    sys.exit(EXIT_CODES[Terminated if signum == signal.SIGTERM else KeyboardInterrupt])


def _on_stop_signals(handler):
    """handler for SIGINT and SIGTERM; a signal the parent set to be ignored (SIGINT in a
    background job, under nohup) stays ignored."""
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, handler)


def exit_quietly_on_stop_signals():
    """Until run_cli takes over: a Ctrl-C or SIGTERM (during the slow imports of a script's
    start) exits with its code, 130 or 143, and no traceback."""
    _on_stop_signals(_exit_quietly)


def handle_stop_signals():
    """Ctrl-C raises KeyboardInterrupt and SIGTERM raises Terminated, so that a run being stopped
    writes what it finished."""
    _on_stop_signals(_raise_stop)


def run_cli(function, stopped="before any result was written", **kwargs):
    """Call function(**kwargs); a user-facing error, Ctrl-C or SIGTERM ends with one line (the
    run's own, or error: ..., or the stop and when it came: stopped) and an exit code: 1, 130
    or 143.

    OSErrors (a full disk, a missing or unreadable file) are the machine's state, not bugs, so
    they get one line too; so does running out of memory."""
    handle_stop_signals()
    try:
        function(**kwargs)
    except KeyboardInterrupt as stop:
        if not getattr(stop, "reported", False):
            close_progress_bars()
            print(f"{ENDINGS[type(stop)]} {stopped}", file=sys.stderr)
        sys.exit(EXIT_CODES[type(stop)])
    except (UserError, OSError) as error:
        sys.exit(f"error: {error}")
    except MemoryError:
        sys.exit("error: out of memory; try smaller --hidden_dims or --batch_size")


def train_or_evaluate(args, train, evaluate_saved):
    """Train with the parsed flags or, given --evaluate PATH, test the weights saved there."""
    args = vars(args)
    saved_model, resume = args.pop("evaluate"), args.pop("resume")
    given_flags = args.pop("given_flags")
    if resume is not None:
        run_cli(lambda: train(**resumed_flags(resume, args, given_flags), resume=resume),
                "before the resumed run finished an epoch; its checkpoint is as it was")
    elif saved_model is not None:
        run_cli(evaluate_saved, "before the evaluation finished; figures already drawn are "
                "whole", path=saved_model, given_flags=given_flags, **args)
    else:
        run_cli(train, "before the first epoch finished; no run folder was made", **args)
