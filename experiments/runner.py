"""The assignment's questions answered by runs anyone can repeat: what each experiment set (SETS)
runs, and how. Running a set again replaces its results once the whole set is done (until then,
and if it fails or is stopped, the earlier results stay); report.py then writes the report.
Paths are the repository's own, wherever the command is run from.

    python -m experiments bn              # train one set: results/bn/ (runs, summary.json)
    python -m experiments all             # every set, then the report
    python -m experiments report          # redraw figures, rewrite results/README.md; no training
"""
import datetime
import functools
import glob
import os
import platform
import shlex
import shutil
import sys
import time

import numpy as np
import torch

import cifar10_utils
import mlp_numpy
import mlp_pytorch
import train_mlp_numpy
import train_mlp_pytorch
from cifar10_utils import normalize
from experiments import report
from questions import batch_statistics, hessian, saddles
from safety.errors import UserError
from safety.files import write_atomically, write_json
from safety.signals import stop_signals_ignored
from training.evaluation import accuracy_of
from training.options import (
    DEFAULTS,
    LONG_SEARCH_RECIPE,
    PRESETS,
    PROJECTION_SEARCH_RECIPE,
    RECORDED,
    SHORT_SEARCH_RECIPE,
    command_line,
)
from training.preprocessing import Preprocessing
from training.saved_model import build_mlp

DATA_DIR = os.path.join(report.REPOSITORY, DEFAULTS["data_dir"])

SEEDS = (0, 1, 2)
COURSE_FLAGS = ("hidden_dims", "lr", "batch_size", "epochs", "seed")
# The best recipe before the search below (61 % test in 90 epochs): what NumPy and PyTorch are
# compared on, and where the search starts.
EARLIER_BEST = dict(hidden_dims=[1024, 1024], use_batch_norm=True, optimizer="adamw", lr=2e-3,
                    weight_decay=0.05, schedule="cosine", warmup=1.0, label_smoothing=0.1,
                    dropout=0.1, augment="flip", batch_size=512, epochs=90)
SEARCH_EPOCHS = 15
LONG_SEARCH_EPOCHS = 30


def run(label, trainer="pytorch", **flags):
    return {"label": label, "trainer": trainer,
            "flags": {**{name: DEFAULTS[name] for name in COURSE_FLAGS}, **flags}}


def greedy_search(start, changes):
    """A greedy search set's rows: its starting run, then a row for each (label, change), which
    run_entries applies on top of every change kept so far."""
    return [start, *[{"label": label, "trainer": "pytorch", "flags": change}
                     for label, change in changes]]


def earlier_ladder():
    """How the 61 % recipe was built: one change a row, each row keeping the last's; rows marked
    'not kept' try an alternative that the next row drops again."""
    steps = [
        ("the course's MLP (PyTorch defaults)", {}),
        ("2 x 1024 hidden units, BatchNorm", dict(hidden_dims=[1024, 1024], use_batch_norm=True)),
        ("batch 512", dict(batch_size=512)),
        ("SGD momentum 0.9, lr 0.05 (not kept)", dict(momentum=0.9, lr=0.05)),
        ("AdamW (lr 2e-3, weight decay 0.05) instead",
         dict(optimizer="adamw", lr=2e-3, weight_decay=0.05, momentum=0.0)),
        ("cosine schedule, 1 warm-up epoch", dict(schedule="cosine", warmup=1.0)),
        ("dropout 0.1, label smoothing 0.1", dict(dropout=0.1, label_smoothing=0.1)),
        ("random crops (4-pixel padding) and flips (not kept)", dict(augment="crop+flip")),
        ("random horizontal flips only", dict(augment="flip")),
        ("30 epochs", dict(epochs=30)),
        ("90 epochs: the 61 % recipe", dict(EARLIER_BEST)),
    ]
    flags, runs = {}, []
    for label, change in steps:
        flags.update(change)
        runs.append(run(label, **flags))
    return runs


# One change a row, tried on top of every change kept so far; kept only where it raises the best
# validation accuracy. Test accuracy is recorded for every row and never looked at to decide.
SEARCH = greedy_search(
    run(f"start: the 61 % recipe at {SEARCH_EPOCHS} epochs", **{**EARLIER_BEST,
                                                                "epochs": SEARCH_EPOCHS}),
    [
        ("per-pixel standardization", dict(normalize="pixel")),
        ("ZCA whitening, epsilon 0.1", dict(normalize="zca", zca_epsilon=0.1)),
        ("ZCA whitening, epsilon 0.01", dict(normalize="zca", zca_epsilon=0.01)),
        ("ZCA whitening, epsilon 1", dict(normalize="zca", zca_epsilon=1.0)),
        ("GELU", dict(activation="gelu")),
        ("first hidden layer 2048 units", dict(hidden_dims=[2048, 1024])),
        ("dropout 0.25", dict(dropout=0.25)),
        ("one-cycle schedule", dict(schedule="onecycle")),
        ("weight decay 0.1", dict(weight_decay=0.1)),
        ("batch 256", dict(batch_size=256)),
        ("random crops (4-pixel padding) and flips", dict(augment="crop+flip")),
        ("mirror averaging at test time", dict(tta="flip")),
    ],
)


# The second stage: what the first one kept, at twice its length, where the first stage's
# recipe overfits; the same greedy rule. Regularizers that cost epochs are tried again here.
LONG_SEARCH = greedy_search(
    run(f"start: the first stage's recipe at {LONG_SEARCH_EPOCHS} epochs",
        **{**SHORT_SEARCH_RECIPE, "epochs": LONG_SEARCH_EPOCHS}),
    [
        ("random crops (4-pixel padding) and flips", dict(augment="crop+flip")),
        ("dropout 0.1", dict(dropout=0.1)),
        ("moving average of the weights, decay 0.999", dict(ema=0.999)),
        ("mixup, alpha 0.2", dict(mixup=0.2)),
        ("first hidden layer 2048 units", dict(hidden_dims=[2048, 1024])),
        ("a linear bottleneck of 256 units, then 2048 and 1024 (less work than 1024 and 1024)",
         dict(bottleneck=256, hidden_dims=[2048, 1024])),
    ],
)
PROJECTION_SEARCH_EPOCHS = 40


# The third stage: the second stage's recipe with its first layer made cheap by a projection
# onto principal components, then what the time saved buys; rows compare at their minutes.
PROJECTION_SEARCH = greedy_search(
    run("start: the second stage's recipe at 40 epochs (the earlier `--preset best`), each image "
        "projected onto its top 512 principal components",
        **{**LONG_SEARCH_RECIPE, "projection": 512, "epochs": PROJECTION_SEARCH_EPOCHS}),
    [
        ("256 principal components", dict(projection=256)),
        ("70 epochs: what the cheaper first layer buys within the budget", dict(epochs=70)),
    ],
)
FAST_SEARCH_EPOCHS = 16


# The fourth stage: the third stage's recipe at the horizon of --preset fast, 16 epochs (as many as
# fit its 2.5 minutes on a 2-core CPU). Each row spends what its change saves per epoch on more
# epochs, so that rows compare at about the same minutes.
FAST_SEARCH = greedy_search(
    run(f"start: the third stage's recipe at {FAST_SEARCH_EPOCHS} epochs",
        **{**PROJECTION_SEARCH_RECIPE, "epochs": FAST_SEARCH_EPOCHS}),
    [
        ("first hidden layer 1024 units, 24 epochs", dict(hidden_dims=[1024, 1024], epochs=24)),
        ("256 principal components, 28 epochs", dict(projection=256, epochs=28)),
        ("batch 512 at learning rate 4e-3, 26 epochs", dict(batch_size=512, lr=4e-3, epochs=26)),
    ],
)
GREEDY_SETS = {"search", "search-long", "search-projection", "search-fast"}
# The stages whose rows compare at minutes, and the preset each builds: a row whose run took
# longer than that preset's budget on this machine is not kept, however accurate.
BUDGETED_STAGES = {"search-projection": "best", "search-fast": "fast"}


SETS = {
    "bn": [run(f"{'with' if bn else 'without'} BatchNorm", use_batch_norm=bn, seed=seed)
           for bn in (False, True) for seed in SEEDS],
    "activations": [run(activation, activation=activation, seed=seed)
                    for activation in ("elu", "tanh", "relu") for seed in SEEDS],
    "numpy-vs-torch": [run("NumPy", trainer="numpy"), run("PyTorch")],
    "dead-neurons": [run(f"{name}{' + BatchNorm' if bn else ''}", activation="relu",
                         hidden_dims=[512, 256, 128], use_batch_norm=bn, **optimizer)
                     for name, optimizer in [("SGD lr 0.1", {}),
                                             ("Adam lr 0.01", dict(optimizer="adam", lr=0.01))]
                     for bn in (False, True)],
    "best": earlier_ladder(),
    "best-numpy-vs-torch": [run("NumPy (hand-written backprop)", trainer="numpy",
                                **EARLIER_BEST),
                            run("PyTorch (autograd)", **EARLIER_BEST)],
    # measured before the searches: the stages that build the presets keep within its budgets
    "budget-reference": [run("the earlier --preset best (the 61 % recipe)", **EARLIER_BEST)],
    "search": SEARCH,
    "search-long": LONG_SEARCH,
    "search-projection": PROJECTION_SEARCH,
    "search-fast": FAST_SEARCH,
    "presets": [*[run(f"--preset {name}", **preset) for name, preset in PRESETS.items()],
                run("--preset best, NumPy", trainer="numpy", **PRESETS["best"])],
    # the course's NumPy model is trained here; the best one is the presets set's, evaluated
    "learned": [dict(run("the course's NumPy MLP", trainer="numpy"), figures="course-numpy"),
                dict(run("the best MLP", **PRESETS["best"]), figures="best-mlp",
                     from_set="presets", from_label="--preset best")],
    # Question 4: the course's NumPy MLP at three points of its default run (--epochs 0 tests
    # the initial weights), then GOE matrices and saddles, which train nothing
    "hessian": [run("initialization", trainer="numpy", epochs=0),
                run("after one epoch", trainer="numpy", epochs=1),
                run("the best epoch of 10", trainer="numpy")],
    "saddles": [],
    # Question 5c: a BatchNorm model tested with running and with batch statistics
    "bn-test-time": [run("BatchNorm at the course's defaults", use_batch_norm=True)],
}
# how far each measurement goes: sized so that each set takes a few minutes on 2 cores
HESSIAN = dict(images=4000, lanczos_steps=80, slq_steps=40, probes=8, seed=0)
SADDLES = dict(goe_samples=4_000_000, goe_max_n=10, goe_min_hits=10,
               epsilons=[10.0 ** -k for k in range(1, 13)], lr=0.1, starts=50,
               network=dict(inputs=8, hidden=4, outputs=3, samples=200), network_lr=0.02,
               network_starts=20, seed=0)
BATCH_STATISTICS = dict(batch_sizes=[1, 2, 8, 32, 128, 1000], companions=8, images=500,
                        draws=20, shown_draws=200, seed=0)
# sets measured on what only their training process holds (--epochs 0 saves no model), or that
# train nothing: they run as one job, never as a job array
ONE_PROCESS_SETS = {"hessian", "saddles"}


# --- Training a set ---
# each trainer, the file its runs save their model in, and its settings for the sets' runs
TRAINERS = {"numpy": (train_mlp_numpy, "model.npz", {}),
            "pytorch": (train_mlp_pytorch, "model.pt", {"device": "cpu"})}


def train_entry(entry, results_dir, data_dir):
    trainer, _, settings = TRAINERS[entry["trainer"]]
    return trainer.train(**{"use_batch_norm": DEFAULTS["use_batch_norm"], **entry["flags"]},
                         data_dir=data_dir, results_dir=results_dir, **settings)


def draw_learned(entry, run_dir, data_dir, folder):
    """--evaluate the entry's saved model (the four figures appear beside it) and copy the
    figures to <the set's folder>/<entry's figures>/, where the report shows them."""
    trainer, model_file, settings = TRAINERS[entry["trainer"]]
    trainer.evaluate_saved(os.path.join(run_dir, model_file), set(), data_dir=data_dir,
                           data_url="", **settings)
    target = os.path.join(folder, entry["figures"])
    os.makedirs(target, exist_ok=True)
    for name in ("confusion.png", "per_class.png", "weights.png", "mistakes.png"):
        with open(os.path.join(run_dir, name), "rb") as figure:
            content = figure.read()
        write_atomically(os.path.join(target, name), lambda f: f.write(content))


@functools.lru_cache(maxsize=1)
def split_copy(data_dir, validation_size, name, count=None):
    """The first count images (all by default) of a split, read once for all the runs of a set
    that are measured on it; a copy, so the rest of the dataset need not stay in memory."""
    split = cifar10_utils.get_cifar10(data_dir, validation_size)[name]
    return cifar10_utils.Split(split.images[:count].copy(), split.labels[:count].copy())


def dead_fractions(model, split):
    """Per ReLU layer, the fraction of units that output 0 for every image of split."""
    fractions = []
    with torch.no_grad():
        model.eval()
        x = normalize(torch.from_numpy(split.images)).reshape(len(split), -1)
        for module in model.layers:
            x = module(x)
            if isinstance(module, torch.nn.ReLU):
                fractions.append(float(((x > 0).sum(dim=0) == 0).float().mean()))
    return fractions


def flags_of(entry):
    return dict(DEFAULTS, **entry["flags"])


# --- What a set measures on each model it trains, in the same process ---
def measure_dead_neurons(model, entry, data_dir):
    validation = split_copy(data_dir, flags_of(entry)["validation_size"], "validation")
    return {"dead_fraction": dead_fractions(model, validation)}


def measure_hessian(model, entry, data_dir):
    """Question 4a: the Hessian of the NumPy model's mean loss on the first HESSIAN['images']
    images of the training split, in float64 (spectrum_summary), and how far its products are
    from autograd's on this model."""
    flags = flags_of(entry)
    split = split_copy(data_dir, flags["validation_size"], "train", HESSIAN["images"])
    # the course's fixed normalization, the one the set's runs use
    images = Preprocessing()(split.images).reshape(len(split), -1).astype(np.float64)
    record = {name: flags[name] for name in RECORDED}
    exact = build_mlp(mlp_numpy.MLP, record, dtype=np.float64)
    exact.load_state_dict(model.state_dict())
    surface = hessian.LossSurface(exact, images, split.labels)
    start = time.perf_counter()
    rng = np.random.default_rng(HESSIAN["seed"])
    summary = hessian.spectrum_summary(surface, HESSIAN["lanczos_steps"], HESSIAN["slq_steps"],
                                       HESSIAN["probes"], rng)
    twin = hessian.pytorch_twin(exact, build_mlp(mlp_pytorch.MLP, record))
    summary["autograd_relative_error"] = hessian.autograd_relative_error(surface, twin, rng)
    summary["seconds"] = time.perf_counter() - start
    summary["settings"] = dict(HESSIAN, images=len(split), step=hessian.STEP,
                               curvature_step=hessian.CURVATURE_STEP)
    return {"hessian": summary}


def measure_batch_statistics(model, entry, data_dir):
    """Question 5c: the test accuracy with running statistics (the trainers' evaluate_model) and
    with each batch's own, by batch size; how often an image's class changes with the images it
    is batched with, and the classes one image is given."""
    settings, start = BATCH_STATISTICS, time.perf_counter()
    test = split_copy(data_dir, flags_of(entry)["validation_size"], "test")
    preprocessing = Preprocessing()  # the course's normalization, the one the set's run uses
    # the trainers' own evaluation (evaluate_model is accuracy_of of this prediction)
    probabilities, labels = train_mlp_pytorch.predict(model, cifar10_utils.DataLoader(
        test, cifar10_utils.EVAL_BATCH_SIZE, return_numpy=False, preprocess=preprocessing))
    by_size = batch_statistics.accuracy_by_batch_size(model, test, preprocessing,
                                                      settings["batch_sizes"])
    rng = np.random.default_rng(settings["seed"])
    classes_taken = [len(set(row)) for row in batch_statistics.classes_with_companions(
        model, test, preprocessing, range(min(settings["images"], len(test))),
        settings["companions"], settings["draws"], rng)]
    shown = int(np.argmax(classes_taken))  # the first image given the most different classes
    (shown_classes,) = batch_statistics.classes_with_companions(
        model, test, preprocessing, [shown], settings["companions"], settings["shown_draws"], rng)
    return {"batch_statistics": {
        "running_accuracy": accuracy_of(probabilities, labels),
        "accuracy": {str(size): accuracy for size, (accuracy, _) in by_size.items()},
        "images": {str(size): len(classes) for size, (_, classes) in by_size.items()},
        "classes_at_batch_of_one": np.bincount(by_size[1][1], minlength=cifar10_utils.NUM_CLASSES)
        .tolist() if 1 in by_size else None,
        "classes_taken": classes_taken, "shown_index": shown,
        "shown_label": int(test.labels[shown]), "shown_pixels": test.images[shown].tolist(),
        "shown_classes": shown_classes.tolist(),
        "shown_running_class": int(probabilities[shown].argmax()),
        "class_names": cifar10_utils.class_names(data_dir), "settings": settings,
        "seconds": time.perf_counter() - start}}


MEASURES = {"dead-neurons": measure_dead_neurons, "hessian": measure_hessian,
            "bn-test-time": measure_batch_statistics}


# --- What a set computes without training ---
def compute_saddles():
    """Questions 4b and 4c: the share of GOE matrices with only positive eigenvalues by size, and
    the gradient-descent steps needed to get away from two saddles, by starting distance."""
    settings, start = SADDLES, time.perf_counter()
    rng = np.random.default_rng(settings["seed"])
    network = saddles.LinearNetwork(**settings["network"], rng=rng)
    results = {
        "goe": saddles.all_positive_fractions(settings["goe_max_n"], settings["goe_samples"], rng,
                                              settings["goe_min_hits"]),
        "quadratic": saddles.escape_from_quadratic_saddle(settings["epsilons"], settings["lr"],
                                                          settings["starts"], rng),
        "network": saddles.escape_from_linear_network(network, settings["epsilons"],
                                                      settings["network_lr"],
                                                      settings["network_starts"], rng),
        "network_curvature": network.top_saddle_curvature(), "settings": settings}
    results["seconds"] = time.perf_counter() - start
    return results


COMPUTATIONS = {"saddles": compute_saddles}


def data_note(data_dir, note):
    if note:
        return note
    tarball = os.path.join(data_dir, cifar10_utils.TARBALL_NAME)
    if os.path.exists(tarball) and cifar10_utils.file_md5(tarball) == cifar10_utils.CIFAR10_MD5:
        return "the official CIFAR-10 release (md5 verified)"
    return "CIFAR-10 files whose origin was not verified against the official md5"


def train_set(name, data_dir, note):
    """Train the set in a folder of its own beside its results, which it replaces only once
    every run is done: a failed or stopped set leaves the earlier results as they were."""
    folder, partial = set_folders(name)
    budget = stage_budget(name)
    shutil.rmtree(partial, ignore_errors=True)  # what an earlier failed attempt left
    os.makedirs(partial)
    try:
        entries = run_entries(name, partial, data_dir, budget)
        computed = COMPUTATIONS[name]() if name in COMPUTATIONS else {}
    except BaseException:
        print(f"[{name}] not finished: its earlier results in {folder} are as they were; the "
              f"runs this attempt finished are in {partial}", file=sys.stderr, flush=True)
        raise
    data_text = data_note(data_dir, note) if entries else "none: random matrices and synthetic " \
        "problems"
    finish_set(name, entries, machine(), data_text, computed)


def set_folders(name):
    """(the set's results, the folder its next results grow in until they are complete)"""
    return os.path.join(report.RESULTS, name), os.path.join(report.RESULTS, f".{name}")


def finish_set(name, entries, machine_text, data_text, computed=None):
    """Write the set's summary.json (its runs, and what it computed without training) and put
    the set's new folder in place."""
    folder, partial = set_folders(name)
    write_json(os.path.join(partial, "summary.json"), {
        "set": name, "command": f"python -m experiments {name}",
        "date": datetime.date.today().isoformat(), "machine": machine_text, "data": data_text,
        "runs": entries, **(computed or {})})
    replace_folder(partial, folder)


# --- A set as a SLURM job array: one run per task, collected by the report ---
def array_commands(name, data_dir):
    """The trainer command of each run of the set, writing to a task folder of its own."""
    reasons = [(name in GREEDY_SETS, "each of its rows depends on the ones before"),
               (any("from_set" in entry or "figures" in entry for entry in SETS[name]),
                "it draws figures"),
               (name in ONE_PROCESS_SETS, "it measures what only one process holds")]
    for applies, reason in reasons:
        if applies:
            raise UserError(f"the {name} set cannot run as a job array: {reason}; run it as "
                            f"one job")
    _, partial = set_folders(name)
    return [" ".join([command_line(entry["trainer"], entry["flags"]), "--data_dir",
                      shlex.quote(data_dir), "--results_dir",
                      shlex.quote(os.path.join(partial, "tasks", str(index)))])
            for index, entry in enumerate(SETS[name])]


def collect_array(name, data_dir, note):
    """Where every task of the set's job array has finished its run, make those runs the set's
    results; say which tasks are missing where some are."""
    _, partial = set_folders(name)
    entries, missing = [], []
    for index, entry in enumerate(SETS[name]):
        metrics = glob.glob(os.path.join(partial, "tasks", str(index), "*", "metrics.json"))
        if len(metrics) != 1 or report.read_json(metrics[0], ("status",))["status"] != "finished":
            missing.append(str(index))
            continue
        run_dir = os.path.dirname(metrics[0])
        saved = dict(entry, command=command_line(entry["trainer"], entry["flags"]),
                     run_dir=os.path.relpath(run_dir, partial))
        if name in MEASURES:
            saved.update(MEASURES[name](saved_model(run_dir), entry, data_dir))
        entries.append(saved)
    if missing:
        print(f"[{name}] job array tasks {','.join(missing)} have not finished; the report shows "
              f"the set's earlier results", file=sys.stderr)
        return
    finish_set(name, entries, "the nodes of a SLURM job array (each run's metrics.json "
               "records its device)", data_note(data_dir, note))
    print(f"[{name}] collected the {len(entries)} runs of its job array")


def saved_model(run_dir):
    """The PyTorch model a run saved, on the CPU."""
    path = os.path.join(run_dir, "model.pt")
    state, record, _ = train_mlp_pytorch.read_weights(path, "cpu")
    model = train_mlp_pytorch.build_model(record, "cpu")
    model.load_state_dict(state)
    return model


def replace_folder(new, old):
    """Put the folder new where old is, old's content deleted only once new is in place."""
    with stop_signals_ignored():
        retired = f"{new}.replaced"
        if os.path.exists(old):
            os.replace(old, retired)
        os.replace(new, old)
        shutil.rmtree(retired, ignore_errors=True)


def stage_budget(name):
    """The minutes a row of set name may take on this machine: its preset's budget where the
    set is a stage that builds one, else None."""
    if name not in BUDGETED_STAGES:
        return None
    budget = report.budget_here(BUDGETED_STAGES[name])
    if budget is None:
        raise UserError(f"{name} keeps no change past the budget of --preset "
                        f"{BUDGETED_STAGES[name]}, which is unknown on this machine: run "
                        "`python -m experiments budget-reference` first")
    return budget


def greedy_decision(val_accuracies, kept_accuracy, run_dir, budget):
    """A greedy row's decision as the summary records it: kept if it raises the best validation
    accuracy so far and, where its stage has a budget, took no more minutes than that. The
    starting row (no accuracy kept yet) is kept whatever it took: every later row builds on it."""
    kept = max(val_accuracies) > kept_accuracy
    if budget is None:
        return {"kept": kept}
    minutes = report.read_json(os.path.join(run_dir, "metrics.json"),
                               ("wall_time_s",))["wall_time_s"] / 60
    return {"kept": kept and (kept_accuracy < 0 or minutes <= budget), "budget_minutes": budget}


def run_entries(name, folder, data_dir, budget):
    """Train (or, for a model another set trained, evaluate) each entry of the set into folder;
    returns the entries as the summary records them. A greedy set's rows keep within budget
    minutes where it is not None."""
    runs_dir = os.path.join(folder, "runs")
    entries, kept_flags, kept_accuracy = [], {}, -1.0
    for entry in SETS[name]:
        if name in GREEDY_SETS:  # each row's change goes on top of the changes kept so far
            entry = dict(entry, flags={**kept_flags, **entry["flags"]})
        command = command_line(entry["trainer"], entry["flags"])
        print(f"[{name}] {entry['label']}: {command}", flush=True)
        if "from_set" in entry:  # a model another set trained: evaluated, not trained again
            source = report.load_set(entry["from_set"])
            (trained,) = [e for e in source["runs"] if e["label"] == entry["from_label"]]
            run_dir = os.path.join(report.RESULTS, entry["from_set"], trained["run_dir"])
            draw_learned(entry, run_dir, data_dir, folder)
            entries.append(dict(entry, command=command, run_dir=os.path.relpath(run_dir, folder)))
            continue
        model, val_accuracies, _, log = train_entry(entry, runs_dir, data_dir)
        saved = dict(entry, command=command, run_dir=os.path.relpath(log["run_dir"], folder))
        if "figures" in entry:
            draw_learned(entry, log["run_dir"], data_dir, folder)
        if name in GREEDY_SETS:
            saved.update(greedy_decision(val_accuracies, kept_accuracy, log["run_dir"], budget))
            if saved["kept"]:
                kept_flags, kept_accuracy = entry["flags"], max(val_accuracies)
        if name in MEASURES:
            saved.update(MEASURES[name](model, entry, data_dir))
        entries.append(saved)
    return entries


def machine():
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f
                         if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{model}, {os.cpu_count()} cores, {platform.system()}, no GPU used"


def main(what, data_dir, data_note_text, list_commands=False):
    if list_commands:
        if what not in SETS:
            raise UserError("--list needs a set's name")
        print("\n".join(array_commands(what, data_dir)))
        return
    for name in SETS if what == "all" else [what] if what in SETS else []:
        train_set(name, data_dir, data_note_text)
    if what == "report":
        for name in SETS:
            if os.path.isdir(os.path.join(set_folders(name)[1], "tasks")):
                collect_array(name, data_dir, data_note_text)
    report.write_report()
