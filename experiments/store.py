"""The results folder as the runner writes it and the report reads it: each set's summary.json,
its runs' metrics.json, and the folder a set grows in until it is complete."""
import json
import os

from safety.errors import UserError
from training.options import DEFAULTS, command_line

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(REPOSITORY, DEFAULTS["results_dir"])

SUMMARY_KEYS = ("command", "date", "machine", "data", "runs")
ENTRY_KEYS = ("key", "label", "trainer", "flags", "run_dir")
METRICS_KEYS = ("test_accuracy", "val_accuracy", "train_loss", "best_epoch", "wall_time_s")


class Results:
    """The sets' results in folder: results/<set>/summary.json and the runs it names."""

    def __init__(self, folder=RESULTS):
        self.folder = os.path.abspath(os.path.expanduser(folder))

    def path(self, *parts):
        return os.path.join(self.folder, *parts)

    def set_folders(self, name):
        """(the set's results, the folder its next results grow in until they are complete)"""
        return self.path(name), self.path(f".{name}")

    def has(self, name):
        return os.path.exists(self.path(name, "summary.json"))

    def read_json(self, path, keys):
        """The JSON object in path, which must hold keys; UserError naming the file otherwise."""
        shown = os.path.relpath(path, self.folder)
        try:
            with open(path) as f:
                content = json.load(f)
        except (OSError, ValueError) as error:
            raise UserError(f"{shown} cannot be read ({error})") from None
        missing = [key for key in keys if not isinstance(content, dict) or key not in content]
        if missing:
            raise UserError(f"{shown} lacks {', '.join(missing)}")
        return content

    def load(self, name):
        """The set's summary, each run with its metrics, and its command as the flags give it
        today (the presets may have changed since the run)."""
        summary = self.read_json(self.path(name, "summary.json"), SUMMARY_KEYS)
        for entry in summary["runs"]:
            if not isinstance(entry, dict) or not set(ENTRY_KEYS) <= set(entry):
                raise UserError(f"{name}/summary.json: a run lacks one of "
                                f"{', '.join(ENTRY_KEYS)}")
            entry["metrics"] = self.read_json(self.path(name, entry["run_dir"], "metrics.json"),
                                              METRICS_KEYS)
            entry["command"] = command_line(entry["trainer"], entry["flags"])
        return summary


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
