"""The assignment's questions answered by runs anyone can repeat: what each experiment set (SETS)
of sets.py runs, and how: each run trained (or, for a model another set trained, evaluated) and
measured, the set's summary written, and its results replaced once the whole set is done (until
then, and if it fails or is stopped, the earlier results stay); or the set as a SLURM job array,
collected by the report. A set's working folder, results/.<set>/, holds what one process trains
(one-job/) apart from what its job array's tasks write (job-array/), and is held by one process
at a time. Paths are the repository's own, wherever the command is run from.

    python -m experiments bn              # train one set: results/bn/ (runs, summary.json)
    python -m experiments all             # every set, then the report
    python -m experiments report          # redraw figures, rewrite results/README.md; no training
"""
import contextlib
import datetime
import glob
import os
import platform
import shlex
import shutil
import sys

import train_mlp_numpy
import train_mlp_pytorch
from dataset.cifar10 import CIFAR10_MD5, TARBALL_NAME
from experiments import budget
from experiments.report import write_report
from experiments.sets import SETS
from experiments.store import (
    METRICS_CHECKS,
    METRICS_KEYS,
    Results,
    set_command,
    validation_accuracy,
)
from safety.downloads import file_md5
from safety.errors import UserError
from safety.files import write_atomically, write_json
from safety.locks import FolderLock
from safety.signals import stop_signals_ignored
from training import backend_torch
from training.inspect_model import FIGURES
from training.options import DEFAULTS, WHERE, Config, command_line, contradictions

# each trainer, the file its runs save their model in, and its settings for the sets' runs
TRAINERS = {"numpy": (train_mlp_numpy, "model.npz", {}),
            "pytorch": (train_mlp_pytorch, "model.pt", {"device": "cpu"})}


def train_run(one, flags, results_dir, data_dir):
    """Train the run one with flags (its own, or a greedy row's on top of those kept so far)."""
    trainer, _, settings = TRAINERS[one.trainer]
    return trainer.train(**{"use_batch_norm": DEFAULTS["use_batch_norm"], **flags},
                         data_dir=data_dir, results_dir=results_dir, **settings)


def draw_learned(entry, run_dir, data_dir, folder):
    """--evaluate the entry's saved model (the four figures appear beside it) and copy the
    figures to <the set's folder>/<entry's figures>/, where the report shows them."""
    trainer, model_file, settings = TRAINERS[entry["trainer"]]
    trainer.evaluate_saved(os.path.join(run_dir, model_file), set(), data_dir=data_dir,
                           data_url="", **settings)
    target = os.path.join(folder, entry["figures"])
    os.makedirs(target, exist_ok=True)
    for name in FIGURES:
        with open(os.path.join(run_dir, name), "rb") as figure:
            content = figure.read()
        write_atomically(os.path.join(target, name), lambda f: f.write(content))


def data_note(data_dir, note):
    if note:
        return note
    tarball = os.path.join(data_dir, TARBALL_NAME)
    if os.path.isfile(tarball) and file_md5(tarball) == CIFAR10_MD5:
        return "the official CIFAR-10 release (md5 verified)"
    return "CIFAR-10 files whose origin was not verified against the official md5"


def summary_entry(one, flags, run_dir, folder, trained=None):
    """A run as the set's summary records it, before what was decided or measured on it, its
    run_dir named from folder: the folder the set grows in, or for a run another set trained
    (trained: that run's summary entry), the set's results, where the summary is read."""
    entry = {"key": one.key, "label": one.label, "trainer": one.trainer, "flags": flags}
    if one.figures:
        entry["figures"] = one.key
    if trained is not None:
        entry.update(from_set=one.source[0], from_label=trained["label"])
    return dict(entry, command=command_line(one.trainer, flags),
                run_dir=os.path.relpath(run_dir, folder))


def trained_elsewhere(one, results):
    """The summary entry of the run another set trained, found by its key."""
    source_set, source_key = one.source
    found = [e for e in results.load(source_set)["runs"] if e["key"] == source_key]
    if len(found) != 1:
        raise UserError(f"{source_set}/summary.json holds {len(found)} runs {source_key}, not "
                        f"the one that is evaluated here: run `python -m experiments "
                        f"{source_set}` again")
    return found[0]


def check_sources(experiment_set, results, data_dir):
    """Each model another set trained that this set evaluates must be there before anything is
    trained: UserError naming the set to run first otherwise."""
    for one in experiment_set.runs:
        if one.source and not results.has(one.source[0]):
            raise UserError(f"the {experiment_set.name} set evaluates the model {one.source[1]} "
                            f"that the {one.source[0]} set trains, which has not run here: run "
                            f"`{set_command(one.source[0], results, data_dir)}` first")
        if one.source:
            trained_elsewhere(one, results)


def run_entries(experiment_set, folder, data_dir, results, row_budget):
    """Train (or, for a model another set trained, evaluate) each run of the set into folder;
    returns the entries as the summary records them. A greedy set's rows keep within row_budget
    minutes where it is not None."""
    entries, kept_flags, kept_accuracy, kept_over_budget = [], {}, -1.0, False
    for one in experiment_set.runs:
        # each greedy row's change goes on top of the changes kept so far
        flags = {**kept_flags, **one.flags} if experiment_set.greedy else one.flags
        print(f"[{experiment_set.name}] {one.label}: {command_line(one.trainer, flags)}",
              flush=True)
        if one.source:  # a model another set trained: evaluated, not trained again
            trained = trained_elsewhere(one, results)
            run_dir = results.path(one.source[0], trained["run_dir"])
            entries.append(summary_entry(one, flags, run_dir,
                                         results.path(experiment_set.name), trained))
            draw_learned(entries[-1], run_dir, data_dir, folder)
            continue
        runs_dir = os.path.join(folder, "runs")
        model, _, _, log = train_run(one, flags, runs_dir, data_dir)
        entries.append(summary_entry(one, flags, log["run_dir"], folder))
        if one.figures:
            draw_learned(entries[-1], log["run_dir"], data_dir, folder)
        if experiment_set.greedy:
            minutes = results.read_json(os.path.join(log["run_dir"], "metrics.json"),
                                        ("wall_time_s",))["wall_time_s"] / 60
            accuracy = validation_accuracy(log)
            entries[-1].update(budget.greedy_decision(accuracy, kept_accuracy, minutes,
                                                      row_budget, kept_over_budget))
            if entries[-1]["kept"]:
                kept_flags, kept_accuracy = flags, accuracy
                kept_over_budget = entries[-1].get("over_budget", False)
        if experiment_set.measure:
            entries[-1].update(experiment_set.measure(model, dict(DEFAULTS, **flags), data_dir))
    return entries


# where a set's working folder holds what one process trains and what a job array's tasks write
ONE_JOB, JOB_ARRAY = "one-job", "job-array"


@contextlib.contextmanager
def set_held(name, results):
    """The set's working folder, held by this process for the block: another run of the set, or
    a report collecting its job array, is refused in one line meanwhile."""
    _, working = results.set_folders(name)
    os.makedirs(working, exist_ok=True)
    with FolderLock(working, f"is in use: another `python -m experiments {name}`, or a "
                       f"report collecting its job array, is running; let it end first"):
        yield working


def train_set(experiment_set, data_dir, note, results):
    """Train the set in a folder of its own beside its results, which it replaces only once
    every run is done: a failed or stopped set leaves the earlier results as they were. The
    tasks of its job array, in the same working folder, are never touched."""
    folder, _ = results.set_folders(experiment_set.name)
    row_budget = budget.stage_budget(experiment_set, results,
                                     set_command(budget.REFERENCE_SET, results, data_dir))
    check_sources(experiment_set, results, data_dir)
    with set_held(experiment_set.name, results) as working:
        partial = os.path.join(working, ONE_JOB)
        shutil.rmtree(partial, ignore_errors=True)  # what an earlier failed attempt left
        os.makedirs(partial)
        try:
            entries = run_entries(experiment_set, partial, data_dir, results, row_budget)
            computed = experiment_set.compute() if experiment_set.compute else {}
        except BaseException:
            print(f"[{experiment_set.name}] not finished: its earlier results in {folder} are as "
                  f"they were; the runs this attempt finished are in {partial}", file=sys.stderr,
                  flush=True)
            raise
        data_text = data_note(data_dir, note) if entries else "none: random matrices and " \
            "synthetic problems"
        finish_set(experiment_set.name, partial, results, entries, machine(), data_text,
                   data_dir, computed)
    # the runs' own lines named the working folder, which the results have now left
    print(f"[{experiment_set.name}] finished: its results are in {folder}", flush=True)


def finish_set(name, staged, results, entries, machine_text, data_text, data_dir,
               computed=None):
    """Write the set's summary.json (its runs, what it computed without training, and the
    command that runs it again into these results on data_dir's data) into the folder staged and
    put that folder in place of the set's results."""
    folder, _ = results.set_folders(name)
    write_json(os.path.join(staged, "summary.json"), {
        "set": name, "command": set_command(name, results, data_dir),
        "date": datetime.date.today().isoformat(), "machine": machine_text, "data": data_text,
        "runs": entries, **(computed or {})})
    replace_folder(staged, folder)


def replace_folder(new, old):
    """Put the folder new where old is, old's content deleted only once new is in place."""
    with stop_signals_ignored():
        retired = f"{new}.replaced"
        shutil.rmtree(retired, ignore_errors=True)  # one a SIGKILL left while it was deleted
        if os.path.exists(old):
            os.replace(old, retired)
        os.replace(new, old)
        shutil.rmtree(retired, ignore_errors=True)


# --- A set as a SLURM job array: one run per task, collected by the report ---
def array_commands(experiment_set, data_dir, results):
    """The trainer command of each run of the set, writing to a task folder of its own."""
    name = experiment_set.name
    reasons = [(experiment_set.greedy, "each of its rows depends on the ones before"),
               (any(one.source or one.figures for one in experiment_set.runs),
                "it draws figures"),
               (experiment_set.one_process, "it measures what only one process holds"),
               (experiment_set.timed, "its minutes are held against this machine's budget")]
    for applies, reason in reasons:
        if applies:
            raise UserError(f"the {name} set cannot run as a job array: {reason}; run it as "
                            f"one job")
    return [" ".join([command_line(one.trainer, one.flags), "--data_dir", shlex.quote(data_dir),
                      "--results_dir", shlex.quote(task_folder(name, index, results))])
            for index, one in enumerate(experiment_set.runs)]


def task_folder(name, index, results):
    return os.path.join(results.set_folders(name)[1], JOB_ARRAY, "tasks", str(index))


def task_run(one, folder, results):
    """The run one that its task finished in folder (a requeued task may have left a stopped
    run beside it), or None before it has; UserError where a run there is damaged or another
    run than the one its set declares."""
    finished = []
    for path in sorted(glob.glob(os.path.join(folder, "*", "metrics.json"))):
        metrics = results.read_json(path, ("status", "config"))
        if metrics["status"] == "finished":
            shown = os.path.relpath(path, results.folder)
            check_declared(one, metrics["config"], shown)
            results.checked(path, results.read_json(path, METRICS_KEYS), METRICS_CHECKS)
            if len(metrics["val_accuracy"]) != metrics["config"]["epochs"]:
                raise UserError(f"{shown} records {len(metrics['val_accuracy'])} epochs of a "
                                f"finished run of {metrics['config']['epochs']}")
            finished.append(os.path.dirname(path))
    return finished[0] if finished else None


def check_declared(one, config, shown):
    """UserError unless config, as a run's metrics.json records it, is the run one."""
    if not isinstance(config, dict) or config.get("framework") != one.trainer:
        raise UserError(f"{shown} records no run of train_mlp_{one.trainer}.py")
    try:
        recorded = Config.of(one.trainer, {key: value for key, value in config.items()
                                           if key != "framework"}).as_dict(one.trainer)
    except (TypeError, ValueError) as error:
        raise UserError(f"{shown}: config: {error}") from None
    declared = Config.of(one.trainer, one.flags).as_dict(one.trainer)
    conflicts = contradictions(declared, recorded, [name for name in declared
                                                    if name not in WHERE], "the run's")
    if conflicts:
        raise UserError(f"{shown} is not the run {one.key} its set declares: {conflicts}; list "
                        f"and submit the set's job array again")


def collect_array(experiment_set, data_dir, note, results):
    """Where every task of the set's job array has finished its run, make those runs the set's
    results; say which tasks are missing where some are."""
    name = experiment_set.name
    with set_held(name, results) as working:
        runs = [task_run(one, task_folder(name, index, results), results)
                for index, one in enumerate(experiment_set.runs)]
        missing = [str(index) for index, run_dir in enumerate(runs) if run_dir is None]
        if missing:
            print(f"[{name}] job array tasks {','.join(missing)} have not finished; the report "
                  f"shows the set's earlier results", file=sys.stderr)
            return
        staged, entries = os.path.join(working, JOB_ARRAY), []
        for one, run_dir in zip(experiment_set.runs, runs):
            entries.append(summary_entry(one, one.flags, run_dir, staged))
            if experiment_set.measure:
                entries[-1].update(experiment_set.measure(
                    saved_model(run_dir), dict(DEFAULTS, **one.flags), data_dir))
        finish_set(name, staged, results, entries, "the nodes of a SLURM job array (each run's "
                   "metrics.json records its device)", data_note(data_dir, note), data_dir)
    print(f"[{name}] collected the {len(entries)} runs of its job array")


def collect_waiting_arrays(experiment_sets, data_dir, note, results):
    """Collect each set whose job array's tasks are waiting; a set that cannot be collected
    keeps its earlier results, and the report says why in one line and goes on."""
    for experiment_set in experiment_sets.values():
        name = experiment_set.name
        if not os.path.isdir(os.path.dirname(task_folder(name, 0, results))):
            continue
        try:
            collect_array(experiment_set, data_dir, note, results)
        except (UserError, OSError) as error:  # a file gone or unreadable is one line too
            print(f"warning: [{name}] its job array is not collected: {error}; the report shows "
                  f"the set's earlier results", file=sys.stderr)


def saved_model(run_dir):
    """The PyTorch model a run saved, on the CPU."""
    path = os.path.join(run_dir, "model.pt")
    state, record, _ = backend_torch.read_weights(path, "cpu")
    model = backend_torch.build_model(record, "cpu")
    model.load_state_dict(state)
    return model


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()}, no GPU used"


def main(what, data_dir, data_note_text, list_commands=False, results=None,
         experiment_sets=SETS):
    """What `python -m experiments` does: list a set's commands, train a set or all of them,
    or collect the finished job arrays; then write the report. results: a store.Results (by
    default the repository's results/)."""
    results = results or Results()
    if os.path.exists(results.folder) and not os.path.isdir(results.folder):
        raise UserError(f"--results_dir {results.folder} is a file: give a folder")
    if list_commands:
        if what not in experiment_sets:
            raise UserError("--list needs a set's name")
        print("\n".join(array_commands(experiment_sets[what], data_dir, results)))
        return
    names = experiment_sets if what == "all" else [what] if what in experiment_sets else []
    for name in names:
        train_set(experiment_sets[name], data_dir, data_note_text, results)
    if what == "report":
        collect_waiting_arrays(experiment_sets, data_dir, data_note_text, results)
    write_report(results, experiment_sets, data_dir)
