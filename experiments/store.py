"""The results folder as the runner writes it and the report reads it: each set's summary.json,
its runs' metrics.json, and each set's working folder, results/.<set>/, where its next results
grow until they are complete. What is read back is checked as strictly as a flag is: a damaged
or hand-edited file is one line naming it."""
import json
import os
import shlex

from safety.checks import Number, nonnegative_float, nonnegative_int
from safety.errors import UserError
from training.options import DEFAULTS, Config, command_line

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPOSITORY, DEFAULTS["results_dir"])
DATA_DIR = os.path.join(REPOSITORY, DEFAULTS["data_dir"])

SUMMARY_KEYS = ("command", "date", "machine", "data", "runs")
ENTRY_KEYS = ("key", "label", "trainer", "flags", "run_dir")
TEXT_KEYS = ("command", "date", "machine", "data")
TRAINERS = ("numpy", "pytorch")
accuracy = Number(float, 0, 1)


def set_command(name, results, data_dir):
    """The command that runs the set name into these results (a Results) on this data, quoted
    to paste."""
    words = ["python", "-m", "experiments", name]
    if results.folder != os.path.abspath(RESULTS):
        words += ["--results_dir", results.folder]
    if os.path.abspath(data_dir) != os.path.abspath(DATA_DIR):
        words += ["--data_dir", data_dir]
    return shlex.join(words)


def numbers(each):
    """The check of a list whose every item passes each."""
    def check(name, value):
        if not isinstance(value, list):
            raise TypeError(f"{name} must be a list of numbers, not {value!r}")
        return [each.check(f"{name}[{index}]", item) for index, item in enumerate(value)]
    return check


def epoch_or_none(name, value):
    """The best epoch; None for a run of no epoch."""
    return None if value is None else nonnegative_int.check(name, value)


def accuracy_or_none(name, value):
    return None if value is None else accuracy.check(name, value)


# what the report reads of each run's metrics.json, each checked as a flag's value is; every key
# but the last must be there (the committed records that lack it are all of runs whose --tta has
# no shifts, where validation_accuracy reads the same number from the epochs)
METRICS_CHECKS = {"test_accuracy": accuracy.check, "val_accuracy": numbers(accuracy),
                  "train_loss": numbers(nonnegative_float), "best_epoch": epoch_or_none,
                  "wall_time_s": nonnegative_float.check,
                  "epoch_seconds": numbers(nonnegative_float),
                  "kept_val_accuracy": accuracy_or_none}
METRICS_KEYS = tuple(METRICS_CHECKS)[:-1]


def validation_accuracy(metrics):
    """A run's validation accuracy, the one a search decides on: its kept model's with every
    --tta view. A record without kept_val_accuracy (each committed one is of a run whose --tta
    has no shifts, which validates its epochs on every view) gives its best epoch's, the same
    number."""
    kept = metrics.get("kept_val_accuracy")
    return max(metrics["val_accuracy"]) if kept is None else kept


class Results:
    """The sets' results in folder: results/<set>/summary.json and the runs it names."""

    def __init__(self, folder=RESULTS):
        self.folder = os.path.abspath(os.path.expanduser(folder))

    def path(self, *parts):
        return os.path.join(self.folder, *parts)

    def set_folders(self, name):
        """(the set's results, its working folder: where its next results grow in one process,
        and where the tasks of its job array write)"""
        return self.path(name), self.path(f".{name}")

    def has(self, name):
        return os.path.exists(self.path(name, "summary.json"))

    def read_json(self, path, keys):
        """The JSON object in path, which must hold keys; UserError naming the file otherwise."""
        shown = os.path.relpath(path, self.folder)
        try:
            with open(path) as f:
                content = json.load(f)
        except (OSError, ValueError, RecursionError) as error:
            raise UserError(f"{shown} cannot be read ({error})") from None
        missing = [key for key in keys if not isinstance(content, dict) or key not in content]
        if missing:
            raise UserError(f"{shown} lacks {', '.join(missing)}")
        return content

    def checked(self, path, content, checks, which=""):
        """content, read from path, where each value of checks passes its check; UserError
        naming the file, which part of it (which) and the value otherwise."""
        for key, check in checks.items():
            try:
                check(key, content.get(key))
            except (TypeError, ValueError) as error:
                raise UserError(f"{os.path.relpath(path, self.folder)}: {which}{error}") from None
        return content

    def load(self, name):
        """The set's summary, each run with its metrics, and its command as the flags give it
        today (the presets may have changed since the run)."""
        path = self.path(name, "summary.json")
        summary = self.checked(path, self.read_json(path, SUMMARY_KEYS),
                               {**dict.fromkeys(TEXT_KEYS, text), "runs": a_list})
        for index, entry in enumerate(summary["runs"]):
            if not isinstance(entry, dict) or not set(ENTRY_KEYS) <= set(entry):
                raise UserError(f"{name}/summary.json: a run lacks one of "
                                f"{', '.join(ENTRY_KEYS)}")
            self.checked(path, entry, dict(key=text, label=text, trainer=trainer,
                                           run_dir=inside(name)), f"run {index}: ")
            self.checked(path, entry, {"flags": flags_of_trainer(entry["trainer"])},
                         f"run {index}: ")
            metrics = self.path(name, entry["run_dir"], "metrics.json")
            entry["metrics"] = self.checked(metrics, self.read_json(metrics, METRICS_KEYS),
                                            METRICS_CHECKS)
            entry["command"] = command_line(entry["trainer"], entry["flags"])
        return summary


def text(name, value):
    if not isinstance(value, str) or not value:
        raise TypeError(f"{name} must be a text, not {value!r}")


def a_list(name, value):
    if not isinstance(value, list):
        raise TypeError(f"{name} must be a list, not {value!r}")


def trainer(name, value):
    if value not in TRAINERS:
        raise ValueError(f"{name} must be one of {', '.join(TRAINERS)}, not {value!r}")


def flags_of_trainer(trainer_name):
    """The check of a run's flags: each one the trainer takes, checked as its flag is."""
    def check(key, value):
        if not isinstance(value, dict):
            raise TypeError(f"{key} must be a mapping of flags to values, not {value!r}")
        Config.of(trainer_name, value)
    return check


def inside(name):
    """The check of a run's folder, named from the set's folder: it must lie in the results."""
    def check(key, value):
        text(key, value)
        if os.path.isabs(value) or os.path.normpath(os.path.join(name, value)).split(os.sep)[0] \
                == "..":
            raise ValueError(f"{key} {value} lies outside the results folder")
    return check


def flags_of(entry):
    """Every flag the run was trained with: its own, and the defaults for the rest."""
    return dict(DEFAULTS, **entry["flags"])


def groups(summary):
    """Runs by key, in order of first appearance (the seeds of one setting share a key)."""
    grouped = {}
    for entry in summary["runs"]:
        grouped.setdefault(entry["key"], []).append(entry)
    return grouped


def by_key(summary):
    """The run of each key, where each key names one run."""
    found = groups(summary)
    shared = [key for key, entries in found.items() if len(entries) > 1]
    if shared:
        raise UserError(f"several runs share the key {shared[0]}, which names one run")
    return {key: entries[0] for key, entries in found.items()}
