"""A training run's course around its loop, the same for both trainers (TrainingRun), and the
checks it makes before any work."""
import contextlib
import dataclasses
import hashlib
import math
import os
import sys
import time

import numpy as np
from tqdm import tqdm

from dataset.batch_files import class_names
from dataset.cifar10 import PIXEL_VALUES
from dataset.loaders import make_loaders
from dataset.splits import get_cifar10
from safety import checks
from safety.console import say, unwritable_log_ignored
from safety.errors import OptionError, TrainingDiverged, UserError
from safety.signals import stop_signals_deferred
from training import inspect_model
from training.distillation import Teacher, snapshot_epochs
from training.evaluation import accuracy_of
from training.options import (
    DEFAULTS,
    TRAINING_OPTIONS,
    WHERE,
    Config,
    check_batch_norm_batch,
    flag_text,
    from_python,
    options_of,
)
from training.preprocessing import AUGMENTATIONS, Mixup, Preprocessing
from training.resume import (
    RESTORED_LOGS,
    check_named_by,
    check_progress,
    check_resumable,
    check_same_data,
    fingerprints,
    other_data,
    results_dir_of,
    resumed_flags,
    set_generator_states,
)
from training.run_folder import RunRecorder, hold, read_metrics
from training.saved_model import CHECKPOINTS, PARTS, parameter_count
from training.schedules import lr_factor


FOLDER_NAME_LIMIT = 240  # bytes of a run folder's name; see TrainingRun.folder_name
NOT_CHECKED = "not checked"  # what a resume has found of its run's checkpoint before it looks


def file_identity(path):
    """(inode, modification time, size) of the file at path, or None where there is none."""
    try:
        status = os.stat(path)
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


class TrainingRun(RunRecorder):
    """Everything of a run but its model and its step, the same for both trainers: the checks,
    the run's folder and record, the preprocessed data, each epoch's batches with their learning
    rate and mixup, the bookkeeping of every step and epoch, and the test. flags: the trainer's
    options (options.options_of) by name, read into a Config (Config.of checks each), and
    resume: the folder of a stopped run to continue, or None."""

    def __init__(self, framework, flags):
        flags, from_preset = from_python(flags)
        resume = flags.pop("resume", None)
        self.resume = None if resume is None else checks.run_dir.check("resume", resume)
        if self.resume:  # the run's own flags, where not given: train(resume=...) alone goes on
            flags["results_dir"] = results_dir_of(self.resume, flags.get("results_dir"))
            flags = resumed_flags(self.resume, {name: flags.get(name, DEFAULTS[name])
                                                for name in options_of(framework)}, set(flags))
        config = Config.of(framework, flags)
        if not self.resume:  # a run recorded with them goes on as it started
            config = preset_options_in_effect(config, from_preset)
        # recorded as a path from anywhere: a resume may start in another folder
        self.config = config = dataclasses.replace(config,
                                                   data_dir=os.path.abspath(config.data_dir))
        check_batch_norm_batch(config.use_batch_norm, config.batch_size)
        check_model_fits(config)
        check_projection(config.projection, config.normalize)
        if not self.resume:  # a run recorded with them goes on as it started
            check_in_effect(config)
        self.record = config.record()
        self.framework, self.checkpoint = framework, CHECKPOINTS[framework]
        # the checkpoint a resume found at first, (inode, mtime, size) or None where there is
        # none: a run of at most one finished epoch and no checkpoint starts over, in its folder
        self.checkpoint_read = NOT_CHECKED
        if self.resume:  # checked now, and again once the run holds its folder (check_held)
            with hold(self.resume) if os.path.isdir(self.resume) else contextlib.nullcontext():
                self.check_held()
        super().__init__(config.results_dir, self.folder_name(framework),
                         dict(framework=framework, **config.as_dict(framework)),
                         folder=self.resume)
        self.mixup = Mixup(config.mixup, config.seed)
        self.step = 0
        # set by load_data: the data, its preprocessing, projection and teacher, the steps
        self.dataset = self.preprocessing = self.loaders = self.components = self.teacher = None
        self.total_steps = self.warmup_steps = 0
        # set by batches: the epoch under way and its running tallies
        self.epoch, self.epoch_start, self.losses, self.correct = 0, None, [], 0

    def check_held(self):
        """A continued run must still be resumable, from the checkpoint it was first found with:
        another process may have resumed it between the two checks."""
        if not self.resume:
            return
        check_resumable(self.resume, self.framework, self.config.as_dict(self.framework),
                        self.checkpoint)
        check_named_by(self.resume, self.folder_name(self.framework))
        found = file_identity(os.path.join(self.resume, self.checkpoint))
        if self.checkpoint_read not in (NOT_CHECKED, found):
            raise UserError(f"{self.resume} went on in another process while this resume loaded "
                            f"it; resume it again")
        if self.checkpoint_read is None and found is None:  # the second check: the folder held
            say(f"{self.resume} has no checkpoint to go on from: it starts over, in its folder",
                sys.stderr)
        self.checkpoint_read = found

    @property
    def starts_over(self):
        """Whether this resume found no checkpoint: the run trains from its start, in its folder."""
        return self.checkpoint_read is None

    def folder_name(self, framework):
        """The flags spelled out, e.g. numpy_h128_lr0.1_b128_e10_s42: the course's, then
        BatchNorm and every training option that differs from its default. A name longer than
        FOLDER_NAME_LIMIT keeps its start and ends in a digest of the whole: filesystems allow 255
        bytes, and a rerun adds _2, _3, ..."""
        config = self.config
        name = (f"{framework}_h{'-'.join(map(str, config.hidden_dims)) or 'none'}_"
                f"lr{config.lr:g}_b{config.batch_size}_e{config.epochs}_s{config.seed}")
        name += "_bn" if config.use_batch_norm else ""
        name += "".join(f"_{key}{getattr(config, key)}" for key in TRAINING_OPTIONS
                        if getattr(config, key) != DEFAULTS[key])
        if len(name.encode()) <= FOLDER_NAME_LIMIT:
            return name
        digest = hashlib.sha256(name.encode()).hexdigest()[:16]
        return f"{name[:FOLDER_NAME_LIMIT - len(digest) - 1]}_{digest}"

    def load_data(self, move=None):
        """The loaders of the three splits, preprocessed as the flags say: the preprocessing,
        and a projection's components, are fitted on the training split alone. move(split) puts a
        split where it is to live."""
        config = self.config
        self.dataset = get_cifar10(config.data_dir, config.validation_size, url=config.data_url)
        self.log["data_sha256"], self.log["data_sha256_parts"] = fingerprints(self.dataset)
        if self.resume and self.starts_over:  # it trains anew, but on the data it started on
            check_same_data(config.data_dir, read_metrics(self.resume),
                            (self.log["data_sha256"], self.log["data_sha256_parts"]),
                            "its metrics.json")
        if not len(self.dataset["train"]):
            raise OptionError(f"--validation_size {config.validation_size} sets aside every "
                              f"training image of {config.data_dir}: none is left to train on")
        if config.batch_size > len(self.dataset["train"]):
            raise OptionError(f"--batch_size {config.batch_size} is larger than the "
                            f"{len(self.dataset['train'])} training images: no full batch to "
                            f"train on")
        self.preprocessing = Preprocessing.fit(config.normalize, self.dataset["train"].images,
                                               config.zca_epsilon)
        self.loaders = make_loaders(self.dataset, self.preprocessing, config.batch_size,
                                    config.seed, AUGMENTATIONS[config.augment], move)
        self.components = (self.preprocessing.principal_components(config.projection)
                           if config.projection else None)
        self.teacher = Teacher(config.distill, config.epochs, self.loaders["train"])
        steps_per_epoch = len(self.loaders["train"])
        self.total_steps = config.epochs * steps_per_epoch
        if not math.isfinite(config.warmup * steps_per_epoch):
            raise OptionError(f"--warmup {config.warmup:g} is more epochs than can be counted "
                              f"in steps")
        self.warmup_steps = round(config.warmup * steps_per_epoch)
        if not self.resume:  # a run recorded with it goes on as it started
            check_warmup(config, self.warmup_steps, self.total_steps, steps_per_epoch)
        return self.loaders

    def batches(self, epoch):
        """The epoch's training batches, each as (learning rate, images, labels): the schedule's
        rate for the step, and the batch as the loader made it, its labels the teacher's targets
        (B, C) once it has one (--distill)."""
        self.epoch, self.epoch_start, self.losses, self.correct = epoch, time.perf_counter(), [], 0
        config = self.config
        # disable=None: a bar on a terminal; in a log file (a job's) only the epochs' lines
        loader = self.loaders["train"]
        for rows, images, labels in tqdm(loader.with_rows(), desc=f"epoch {epoch}/{config.epochs}",
                                         total=len(loader), leave=False, disable=None):
            factor = lr_factor(self.step, self.total_steps, self.warmup_steps, config.schedule)
            self.step += 1
            yield config.lr * factor, images, self.teacher.targets(labels, rows)

    def record_step(self, loss, predictions, labels):
        """Log a step's loss, and count its correct predictions against labels, or the largest
        share of each target row; a loss that is not finite ends the run as diverged."""
        if not math.isfinite(loss):
            raise self.diverged(f"loss became {loss}")
        self.log_step(loss)
        self.losses.append(loss)
        self.correct += (predictions == (labels.argmax(1) if labels.ndim == 2 else labels)).sum()

    def diverged(self, what):
        """The TrainingDiverged of this epoch, naming the flags that can cause it."""
        lr, weight_decay = self.config.lr, self.config.weight_decay
        culprits = f"--lr than {lr:g}" + (f" or --weight_decay than {weight_decay:g}"
                                          if weight_decay else "")
        return TrainingDiverged(f"{what} in epoch {self.epoch}: training diverged; try a lower "
                                f"{culprits}")

    def end_epoch(self, val_accuracy, state):
        """Record the finished epoch and print its line; True if it is the best so far on
        validation, whose model (its state, NumPy's or torch's) the trainer then keeps. A state
        that is not all finite numbers (BatchNorm's statistics can overflow while the loss stays
        finite) ends the run as diverged, the epoch unrecorded."""
        broken = [name for name, value in state.items() if len(value.reshape(-1))
                  and not math.isfinite(float(abs(value).max()))]
        if broken:
            raise self.diverged(f"{broken[0]} became infinite or NaN, the loss still finite,")
        train_loss = np.mean(self.losses)
        train_accuracy = int(self.correct) / (len(self.losses) * self.config.batch_size)
        best = self.log_epoch(train_loss, train_accuracy, val_accuracy,
                              time.perf_counter() - self.epoch_start)
        if best:  # the trainer replaces the model: --evaluate's figures of it no longer show it
            for name in inspect_model.FIGURES:
                if os.path.exists(self.path(name)):
                    os.remove(self.path(name))
        # the epoch is recorded: its line may be lost, but a stop waits for it, as tqdm.write
        # releases its lock in a finally that a stop landing before the lock was taken reaches
        with stop_signals_deferred(), unwritable_log_ignored(sys.stdout):
            tqdm.write(f"epoch {self.epoch:3d}  train loss {train_loss:.4f}  train acc "
                       f"{train_accuracy:.4f}  val acc {val_accuracy:.4f}")
            sys.stdout.flush()
        return best

    def progress(self, epoch):
        """What a resumed run needs of this run's own course after epoch, as JSON: the step, the
        log, the time spent, the states of the loader's and mixup's generators, and the flags
        that say what it trains, against which a resume checks metrics.json's."""
        return {"epoch": epoch, "step": self.step, "log": self.log, "flags": self.trained_flags(),
                "wall_time_s": time.perf_counter() - self.start,
                "teacher_snapshots": self.teacher.snapshots,
                "generators": [rng.bit_generator.state for rng in self.generators()]}

    def restore(self, progress):
        """Take up a checkpoint's progress; returns the first epoch still to train. The data must
        be what the run trained on so far, wherever it lies now."""
        self.check_flags(progress.get("flags"))
        log = progress["log"]
        # other data first: with another number of images, the steps counted would not fit either
        if isinstance(log, dict) and log.get("data_sha256") not in (None, self.log["data_sha256"]):
            raise other_data(self.config.data_dir, log.get("data_sha256_parts"),
                             self.log["data_sha256_parts"])
        check_progress(progress, self.config.epochs, len(self.loaders["train"]))
        if log.get("data_sha256") is None:  # no fingerprint recorded: nothing to check against
            say(f"warning: {self.resume}'s checkpoint does not record which data the run trained "
                f"on: the images and labels in --data_dir {self.config.data_dir} cannot be checked "
                f"against them", sys.stderr)
        self.step = progress["step"]
        self.log.update({key: progress["log"][key] for key in RESTORED_LOGS})
        self.start -= progress["wall_time_s"]
        set_generator_states(self.generators(), progress["generators"])
        return progress["epoch"] + 1

    def generators(self):
        return [self.loaders["train"].rng, self.mixup.rng]

    def trained_flags(self):
        """The run's flags but those that only say where things are."""
        return {name: value for name, value in self.config.as_dict(self.framework).items()
                if name not in WHERE}

    def check_flags(self, recorded):
        """The flags metrics.json gave this resume must be those its checkpoint trained with (a
        checkpoint that records none is taken as it is): an edited metrics.json is refused."""
        if recorded is None:
            return
        edited = {name: value for name, value in self.trained_flags().items()
                  if name in recorded and recorded[name] != value}
        if edited:
            said = ", ".join(f"--{name} {value} (its checkpoint: {recorded[name]})"
                             for name, value in edited.items())
            raise UserError(f"{self.resume}/metrics.json records {said}: it was edited after the "
                            f"checkpoint was written; put back what the checkpoint records")

    def recorded(self):
        """Finished, its record written: nothing is left to resume. A record that cannot be
        written (a full disk) keeps the checkpoint, from which --resume tests and writes again."""
        if self.folder and os.path.exists(self.path(self.checkpoint)):
            os.remove(self.path(self.checkpoint))

    def test(self, validation, test):
        """Record the kept model's predictions, each (probabilities, labels) with every --tta
        view: its validation accuracy, and on the test split accuracy, confusion matrix and per
        class."""
        self.log["kept_val_accuracy"] = accuracy_of(*validation)
        probabilities, labels = test
        names = class_names(self.config.data_dir)
        self.log.update(inspect_model.test_metrics(labels, probabilities.argmax(axis=1), names))


def check_warmup(config, warmup_steps, total_steps, steps_per_epoch):
    """Refuse a warm-up that would do nothing a run could see: one of at most half a step (which
    rounds to none), or, before a cosine decay, one that lasts the whole run, so that the decay
    never starts."""
    warmup = flag_text(config.warmup)
    if config.warmup and not warmup_steps:
        raise OptionError(f"--warmup {warmup} is at most half of one of the {steps_per_epoch} "
                          f"steps of an epoch: no step would be warmed up")
    if config.schedule == "cosine" and 0 < total_steps <= warmup_steps:
        raise OptionError(f"--warmup {warmup} lasts the whole run of {config.epochs} epochs: "
                          f"--schedule cosine would never start to decay")


def check_projection(projection, normalize):
    """A projection is onto ZCA's principal components, at most one per pixel value."""
    if projection and normalize != "zca":
        raise OptionError(f"--projection {projection} projects onto the principal components that "
                        f"ZCA whitening fits: add --normalize zca")
    if projection > PIXEL_VALUES:
        raise OptionError(f"--projection {projection} asks for more principal components than "
                        f"the {PIXEL_VALUES} pixel values of an image")


def idle_options(config):
    """(name, why) of each option that the others make do nothing."""
    unused = [
        (config.warmup and config.schedule == "onecycle", "warmup", "--schedule onecycle, "
         "which warms up by itself"),
        (config.momentum and config.optimizer != "sgd", "momentum",
         f"--optimizer {config.optimizer}, which takes none (only sgd does)"),
        (config.zca_epsilon != DEFAULTS["zca_epsilon"] and config.normalize != "zca",
         "zca_epsilon", f"--normalize {config.normalize}: only --normalize zca uses it"),
        (config.projection and config.normalize != "zca", "projection",
         f"--normalize {config.normalize}: it projects onto ZCA's principal components"),
        (config.dropout and not config.hidden_dims, "dropout",
         'no hidden layer (--dnn_hidden_units ""): it drops hidden units'),
        (config.use_batch_norm and not config.hidden_dims, "use_batch_norm",
         'no hidden layer (--dnn_hidden_units ""): it normalizes hidden units'),
        (config.activation != DEFAULTS["activation"] and not config.hidden_dims, "activation",
         'no hidden layer (--dnn_hidden_units ""): it acts on hidden units'),
        (config.bottleneck and not config.hidden_dims, "bottleneck",
         'no hidden layer (--dnn_hidden_units ""): it comes before the first one'),
        (config.blocks and not config.hidden_dims, "blocks",
         'no hidden layer (--dnn_hidden_units ""): they come after the last one'),
        (config.block_width and not config.blocks, "block_width",
         "no residual block (--blocks 0): it sizes them"),
        (config.distill and not snapshot_epochs(config.epochs), "distill",
         f"--epochs {config.epochs}: no snapshot of its teacher comes before the last epoch"),
    ]
    return [(name, why) for unused_here, name, why in unused if unused_here]


def check_in_effect(config):
    """Refuse an option that the others make do nothing: the run's folder would name it."""
    idle = idle_options(config)
    if idle:
        name, why = idle[0]
        value = getattr(config, name)
        flag = (f"--{name}" if value is True else
                f"--{name} {value if isinstance(value, str) else format(value, 'g')}")
        raise OptionError(f"{flag} does nothing with {why}; leave it out")


def preset_options_in_effect(config, from_preset):
    """config with each option that came from a preset, not given, and that the options given
    make do nothing (a preset's dropout with no hidden layer) at its default: the preset is a
    starting point that the options given override."""
    while idle := [name for name, _ in idle_options(config) if name in from_preset]:
        config = dataclasses.replace(config, **{name: DEFAULTS[name] for name in idle})
    return config


# what a residual block costs beyond its weights, its modules' and arrays' objects: 42 KB a block
# in PyTorch and 11 KB in NumPy (resident memory of 30,000 one-unit blocks after an AdamW step)
BLOCK_OBJECT_BYTES = 42_000


def check_model_fits(config):
    """Refuse a model that cannot fit in this machine's memory, saying how much it needs.

    Training holds each weight about four times (the weight, its gradient, two optimizer
    moments), in float32; NumPy draws the initial weights in float64 first. Each residual block
    adds the objects it is made of."""
    parameters = parameter_count(config.record())
    needed = 4 * 4 * parameters + BLOCK_OBJECT_BYTES * config.blocks
    try:
        available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # not every system reports it
        return
    if needed > available:
        sizing = [f"--hidden_dims {' '.join(map(str, config.hidden_dims))}"] + [
            f"--{name} {getattr(config, name)}" for name in PARTS if getattr(config, name)]
        raise OptionError(f"{' '.join(sizing)} makes {parameters:,} parameters: about "
                          f"{needed / 1e9:,.1f} GB to train, but this machine has "
                          f"{available / 1e9:,.1f} GB of memory")
