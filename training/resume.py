"""Resuming a stopped run: its recorded flags and status, the checks before it goes on, and
the helpers both trainers' checkpoints use."""
import hashlib
import math
import os
import re

import numpy as np

from safety import checks
from safety.errors import UserError
from training.options import BY_NAME, DEFAULTS, WHERE, contradictions
from training.run_folder import read_metrics

def resumed_flags(run_dir, flags, given_flags):
    """The flags to continue run_dir with: its own, each checked as its flag is, except those the
    user gave; its results folder the one it lies in. A data folder it recorded that is gone is
    refused, naming --data_dir."""
    config = dict(read_metrics(run_dir)["config"], results_dir=results_dir_of(run_dir, None))
    try:
        resumed = {name: value if name in given_flags or name not in config else
                   BY_NAME[name].check(config[name]) for name, value in flags.items()}
    except (TypeError, ValueError) as error:
        raise UserError(f"{run_dir}/metrics.json records {error}: it was edited or damaged, "
                        f"and the run cannot go on as it started") from None
    if "data_dir" not in given_flags and not os.path.isdir(resumed["data_dir"]):
        raise UserError(f"the data folder {resumed['data_dir']} that {run_dir} recorded is gone "
                        f"(a job's staged copy, say): give --data_dir the folder of its data, "
                        f"which is checked to be the data the run trained on")
    return resumed


def results_dir_of(run_dir, given):
    """The folder run_dir lies in, where a resumed run stays; a --results_dir naming another
    folder is refused."""
    parent = os.path.dirname(os.path.abspath(run_dir))
    if given is not None and \
            os.path.realpath(checks.folder.check("results_dir", given)) != os.path.realpath(parent):
        raise UserError(f"--results_dir {given} is not the folder {parent} that {run_dir} lies in: "
                        f"a resumed run stays in its own folder; leave --results_dir out")
    return parent


def check_named_by(run_dir, name):
    """Refuse a run whose recorded flags do not give its folder's name (name, or name_2, ... for
    a rerun): its metrics.json was edited, and the run would go on with other flags than it
    started with."""
    folder = os.path.basename(os.path.realpath(run_dir))  # a link's target is the run's folder
    if not re.fullmatch(re.escape(name) + r"(_[0-9]+)?", folder):
        raise UserError(f"{run_dir}/metrics.json records the flags of a run named {name}, not "
                        f"{folder}: it was edited, or the folder renamed, and the run cannot go "
                        f"on as it started")


def check_resumable(run_dir, framework, flags, checkpoint):
    """Refuse to resume a run of the other trainer, a finished one, one of two or more finished
    epochs whose checkpoint was removed, or one whose flags differ from these (those that only say
    where things are excepted)."""
    metrics = read_metrics(run_dir)
    # an option the run does not record was not there to be given when it ran: it trained at its
    # default, which resumed_flags gives it too
    config, status = {**DEFAULTS, **metrics["config"]}, metrics["status"]
    if config.get("framework") != framework:
        other = config.get("framework")
        if other not in ("numpy", "pytorch"):
            raise UserError(f"{run_dir}/metrics.json names no trainer (framework {other!r}): it "
                            f"was edited or damaged, and the run cannot go on as it started")
        raise UserError(f"{run_dir} is a run of train_mlp_{other}.py: resume it with that script")
    if status == "finished":
        raise UserError(f"{run_dir} finished already: there is nothing to resume")
    conflicts = contradictions(flags, config, [name for name in flags if name not in WHERE],
                               "the run")
    if conflicts:
        raise UserError(f"{run_dir} was started with other flags than {conflicts}; leave them "
                        f"out: the run records its own")
    epochs = metrics.get("val_accuracy")
    epochs = len(epochs) if isinstance(epochs, list) else 0
    # every epoch is checkpointed: a run with none stopped before its first was written (or
    # lost it), and with at most one finished epoch nothing is lost when TrainingRun starts it over
    if epochs > 1 and not os.path.isfile(os.path.join(run_dir, checkpoint)):
        raise UserError(f"{run_dir} has {epochs} finished epochs but no {checkpoint}: it was "
                        f"removed, and the run cannot go on where it stopped; start it again "
                        f"without --resume")


EPOCH_LOGS = ("train_loss", "train_accuracy", "val_accuracy", "epoch_seconds")
RESTORED_LOGS = ("train_loss_steps", *EPOCH_LOGS, "best_epoch")  # what a resumed run takes up


def check_progress(progress, epochs, steps_per_epoch):
    """ValueError unless a checkpoint's progress (TrainingRun.progress) is one a run of epochs
    epochs of steps_per_epoch steps can have written: a hand-edited or damaged one must not go on
    as a run that ends 'finished' without having trained what it says."""
    epoch, step, log = progress["epoch"], progress["step"], progress["log"]
    if not (type(epoch) is int and 1 <= epoch <= epochs):
        raise ValueError(f"its epoch {epoch!r} is not one of the run's 1..{epochs}")
    if step != epoch * steps_per_epoch or type(step) is not int:
        raise ValueError(f"its step {step!r} is not the {epoch * steps_per_epoch} steps of "
                         f"{epoch} epochs")
    lengths = {name: epoch for name in EPOCH_LOGS}
    lengths["train_loss_steps"] = step
    for name, length in lengths.items():
        values = log[name]
        if not (isinstance(values, list) and len(values) == length and
                all(type(value) in (int, float) and math.isfinite(value) for value in values)):
            raise ValueError(f"its {name} is not {length} numbers")
    if not all(0 <= value <= 1 for value in log["train_accuracy"] + log["val_accuracy"]):
        raise ValueError("its accuracies do not all lie in 0..1")
    if min(log["epoch_seconds"]) < 0:
        raise ValueError("its epoch_seconds are not all durations")
    best = log["val_accuracy"].index(max(log["val_accuracy"])) + 1
    if type(log["best_epoch"]) is not int or log["best_epoch"] != best or \
            log.get("test_accuracy") is not None:
        raise ValueError(f"its best epoch {log['best_epoch']!r} is not {best}, or it has a test")
    seconds = progress["wall_time_s"]
    if not (type(seconds) in (int, float) and 0 <= seconds < math.inf):
        raise ValueError(f"its time {seconds!r} is not a number of seconds")
    if "data_sha256" in log and not re.fullmatch(r"[0-9a-f]{64}", str(log["data_sha256"])):
        raise ValueError(f"its data_sha256 {log.get('data_sha256')!r} is not a SHA-256")


def check_counts(counts, steps):
    """ValueError unless each count of updates a checkpoint holds, (name, count) pairs (the
    moving average's, Adam's), is the steps its run trained: another count would go on with
    other numbers than the run's, or fail steps later."""
    for name, count in counts:
        if type(count) is not int or count != steps:
            raise ValueError(f"its {name} {count!r} is not the {steps} steps it trained")


def check_fits(name, state, reference):
    """ValueError unless state (arrays or tensors by name) has reference's entries and shapes:
    weights that do not fit would otherwise fail only after the epochs trained."""
    shapes = [{key: tuple(getattr(value, "shape", ())) for key, value in entries.items()}
              for entries in (state, reference)]
    if shapes[0] != shapes[1]:
        raise ValueError(f"its {name} weights do not fit the model")


def set_generator_states(generators, states):
    """Give each NumPy Generator its saved state; ValueError where the counts differ."""
    if len(generators) != len(states):
        raise ValueError(f"{len(states)} generator states for {len(generators)} generators")
    for rng, state in zip(generators, states):
        rng.bit_generator.state = state


def damaged_checkpoint(path, error, why=None):
    """The one line for a checkpoint that cannot be read: error's type, and why (error's own
    words unless given, on one line)."""
    why = " ".join(str(why or error).split())
    return UserError(f"{path} is damaged ({type(error).__name__}: {why}); start the run again "
                     f"without --resume")


def prefixed(prefix, arrays):
    return {f"{prefix}.{name}": value for name, value in arrays.items()}


def unprefixed(prefix, entries):
    return {name[len(prefix) + 1:]: value for name, value in entries.items()
            if name.startswith(prefix + ".")}


# the batch files each split's images and labels come from
SPLIT_FILES = {"train": "data_batch_1..5", "validation": "data_batch_1..5", "test": "test_batch"}


def fingerprints(dataset):
    """(the SHA-256 of every image and label of a get_cifar10 dataset, split by split: the same
    data gives the same fingerprint in whatever folder it lies (0.1 s for CIFAR-10); the SHA-256
    of each split's images and of its labels, {split: {'images', 'labels'}}, which name what
    changed where the first differs)."""
    digest, parts = hashlib.sha256(), {}
    for name in SPLIT_FILES:
        parts[name] = {}
        for part in ("images", "labels"):
            data = np.ascontiguousarray(getattr(dataset[name], part)).data
            digest.update(data)
            parts[name][part] = hashlib.sha256(data).hexdigest()
    return digest.hexdigest(), parts


def other_data(data_dir, recorded_parts, parts, record="its checkpoint"):
    """The UserError of a resume, or an --evaluate, on data whose fingerprint differs from the one
    the run's record (its checkpoint, or its metrics.json) holds, naming the splits' images or
    labels that differ where the record holds their parts."""
    changed = []
    if isinstance(recorded_parts, dict) and all(isinstance(recorded_parts.get(name), dict)
                                                for name in parts):
        changed = [(name, part) for name in parts for part in parts[name]
                   if recorded_parts[name].get(part) != parts[name][part]]
    if not changed:
        return UserError(f"--data_dir {data_dir} holds other images or labels than the run "
                         f"trained on (their SHA-256 differs from the one {record} records): "
                         f"give it the folder of the data it started on")
    files = dict.fromkeys(SPLIT_FILES[name] for name, _ in changed)
    return UserError(f"--data_dir {data_dir} holds other images or labels than the run trained "
                     f"on: its {', '.join(f'{name} {part}' for name, part in changed)} (from "
                     f"{' and '.join(files)}) differ from those {record} records; give it "
                     f"the folder of the data it started on")


def check_same_data(data_dir, recorded, fingerprint, record):
    """Refuse data whose fingerprint (fingerprints' pair) is not the one recorded, a run's log
    (its metrics.json, or its checkpoint's), in record's words; a log that records none refuses
    nothing."""
    digest, parts = fingerprint
    if recorded.get("data_sha256") not in (None, digest):
        raise other_data(data_dir, recorded.get("data_sha256_parts"), parts, record)
