"""The experiment sets end to end on a tiny synthetic dataset: every set trains, the report is built
from what was saved, and rebuilding it trains nothing; a set is declared once, and its section
finds its runs by key."""
import dataclasses
import functools
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import torch
from helpers import REPO, copy_of_the_repository, files_of, run_task

import mlp_pytorch
from dataset.splits import Split

from experiments import budget, figures, measures, report, runner
from experiments import runs as search_runs
from experiments.runs import LADDER_RECIPE_KEY, Run, run
from experiments.sections.search import last_stage
from experiments.sets import SETS, ExperimentSet
from experiments.store import Results, by_key
from safety.errors import DataError, UserError
from training.options import DEFAULTS, PRESETS, command_line

TINY = dict(batch_size=16, validation_size=30, data_url="")


# the runs a section reads by key beyond a set's first four
READ_BY_KEY = {"best": ("crops", LADDER_RECIPE_KEY), "search-long": ("first-2048",)}


def tiny(experiment_set):
    """The set with its real keys, labels and structure, but only its first four runs and those
    its section reads by key, each small enough for a test."""
    def small(one):
        narrower = {"hidden_dims": one.flags["hidden_dims"][:2]} if "hidden_dims" in one.flags \
            else {}
        return dataclasses.replace(one, flags={**one.flags, "epochs": 2, **TINY, **narrower})
    read = READ_BY_KEY.get(experiment_set.name, ())
    runs = [*experiment_set.runs[:4], *[one for one in experiment_set.runs[4:] if one.key in read]]
    return dataclasses.replace(experiment_set, runs=[small(one) for one in runs])


@pytest.fixture
def tiny_sets(monkeypatch, tmp_path):
    """main(what, data_dir, note) over every set made tiny, into tmp_path/results; the results,
    and the tiny sets."""
    monkeypatch.setattr(measures, "HESSIAN", dict(images=50, lanczos_steps=6, slq_steps=5,
                                                  probes=2, seed=0))
    monkeypatch.setattr(measures, "SADDLES", dict(
        measures.SADDLES, goe_samples=2000, goe_max_n=4, epsilons=[1e-1, 1e-3], starts=3,
        network_starts=2))
    monkeypatch.setattr(measures, "BATCH_STATISTICS", dict(
        measures.BATCH_STATISTICS, images=5, draws=3, shown_draws=10))
    results = Results(tmp_path / "results")
    sets = {name: tiny(experiment_set) for name, experiment_set in SETS.items()}
    return functools.partial(runner.main, results=results, experiment_sets=sets), results, sets


def test_all_sets_train_and_the_report_is_rebuilt_without_training(cifar_dir, tiny_sets,
                                                                   monkeypatch):
    main, results, _ = tiny_sets
    main("all", str(cifar_dir[0]), "synthetic test data")
    text = open(results.path("README.md")).read()
    for title, _ in report.SECTIONS.values():
        assert f"## {title}" in text
    assert "Not run yet" not in text and "synthetic test data" in text
    for figure in ["bn/bn.png", "activations/activations.png", "numpy-vs-torch/numpy-vs-torch.png",
                   "dead-neurons/dead-neurons.png", "best/best.png",
                   "best-numpy-vs-torch/best-numpy-vs-torch.png", "search/search.png",
                   "search-long/search-long.png", "search-projection/search-projection.png",
                   "search-fast/search-fast.png", "search-epochs/search-epochs.png",
                   "search-horizon/search-horizon.png", "search-views/search-views.png",
                   "search-views-fast/search-views-fast.png",
                   "presets/presets.png", "learned/course-numpy/confusion.png",
                   "learned/best-mlp/weights.png", "hessian/hessian.png", "saddles/saddles.png",
                   "bn-test-time/bn-test-time.png"]:
        assert os.path.getsize(results.path(figure)) > 10_000
        assert f"({figure})" in text
    summary = json.loads(open(results.path("dead-neurons", "summary.json")).read())
    assert all(0 <= f <= 1 for run in summary["runs"] for f in run["dead_fraction"])
    (tested,) = results.load("bn-test-time")["runs"]  # through the trainers' own evaluation
    assert tested["batch_statistics"]["running_accuracy"] == tested["metrics"]["test_accuracy"]

    def no_training(*args, **kwargs):
        raise AssertionError("the report must not train")

    monkeypatch.setattr(runner, "train_run", no_training)
    os.remove(results.path("README.md"))
    main("report", str(cifar_dir[0]), "")
    assert open(results.path("README.md")).read() == text


@pytest.mark.parametrize("name", ["hessian", "saddles"])
def test_sets_measured_in_their_own_process_refuse_a_job_array(name):
    with pytest.raises(UserError, match="cannot run as a job array"):
        runner.array_commands(SETS[name], "data", Results())


def test_sets_measured_on_saved_models_run_as_job_arrays(cifar_dir, tiny_sets):
    """Each task runs its trainer command; the report's collection measures the saved model as
    the set in one process measures the trained one."""
    main, results, sets = tiny_sets
    assert len(runner.array_commands(sets["dead-neurons"], "data", results)) == 4
    (command,) = runner.array_commands(sets["bn-test-time"], str(cifar_dir[0]), results)
    run_task(command)
    main("report", str(cifar_dir[0]), "synthetic test data")
    (collected,) = results.load("bn-test-time")["runs"]
    assert collected["batch_statistics"]["running_accuracy"] == \
        collected["metrics"]["test_accuracy"]


def test_report_without_runs_says_how_to_make_them(tiny_sets):
    main, results, _ = tiny_sets
    main("report", "unused", "")
    assert "Not run yet: `python -m experiments bn " in open(results.path("README.md")).read()


def test_commands_repeat_the_runs():
    ladder = SETS["best"].runs
    assert command_line(ladder[0].trainer, ladder[0].flags) == "python train_mlp_pytorch.py"
    presets = SETS["presets"].runs
    assert [command_line(one.trainer, one.flags) for one in presets] == \
        [*[f"python train_mlp_pytorch.py --preset {name}" for name in PRESETS],
         "python train_mlp_numpy.py --preset best"]
    numpy_run = SETS["numpy-vs-torch"].runs[0]
    assert command_line(numpy_run.trainer, numpy_run.flags) == "python train_mlp_numpy.py"


def test_each_saved_run_records_the_command_its_flags_give():
    """The report rebuilds each command from the flags; the saved summaries say the same, so
    that whoever reads them repeats the run they record."""
    for name in SETS:
        path = os.path.join(REPO, "results", name, "summary.json")
        if not os.path.exists(path):
            continue
        with open(path) as f:
            entries = json.load(f)["runs"]
        for entry in entries:
            assert entry["command"] == command_line(entry["trainer"], entry["flags"]), \
                (name, entry["key"])


@pytest.mark.parametrize("preset", PRESETS)
def test_each_preset_trains_what_its_last_search_stage_kept(preset):
    """A preset is the last row its last stage of the committed search kept: a preset edited by
    hand, or a stage run again that kept something else, fails here until the two agree."""
    stages = Results().load(last_stage(preset))["runs"]
    last_kept = [entry for entry in stages if entry["kept"]][-1]
    assert dict(DEFAULTS, **last_kept["flags"]) == dict(DEFAULTS, **PRESETS[preset])


@pytest.mark.parametrize("stage, recipe", [
    ("search", "SEARCH_KEPT"), ("search-long", "SEARCH_LONG_KEPT"),
    ("search-projection", "SEARCH_PROJECTION_KEPT"), ("search-fast", "SEARCH_FAST_KEPT"),
    ("search-epochs", "SEARCH_EPOCHS_KEPT"), ("search-horizon", "SEARCH_HORIZON_KEPT"),
    ("search-views", "SEARCH_VIEWS_KEPT"), ("search-views-fast", "SEARCH_VIEWS_FAST_KEPT"),
    ("search-deform", "SEARCH_DEFORM_KEPT"), ("search-deform-fast", "SEARCH_VIEWS_FAST_KEPT"),
    ("search-residual", "SEARCH_DEFORM_KEPT"), ("search-residual-fast", "SEARCH_VIEWS_FAST_KEPT"),
    ("search-dropout", "SEARCH_DROPOUT_KEPT"), ("search-dropout-fast", "SEARCH_DROPOUT_FAST_KEPT"),
    ("search-rest-fast", "SEARCH_REST_FAST_KEPT"),
    ("search-regularization", "SEARCH_REGULARIZATION_KEPT"), ("search-mixup", "SEARCH_MIXUP_KEPT"),
    ("search-averaging", "SEARCH_AVERAGING_KEPT"), ("search-budget", "SEARCH_AVERAGING_KEPT")])
def test_each_stage_starts_from_what_the_stage_before_it_kept(stage, recipe):
    """A stage's recipe in experiments/runs.py is its last kept row of the committed search in
    every flag it sets (the stages with no budget leave the epochs to the next)."""
    last_kept = [entry for entry in Results().load(stage)["runs"] if entry["kept"]][-1]
    trained, written = dict(DEFAULTS, **last_kept["flags"]), getattr(search_runs, recipe)
    assert {name: trained[name] for name in written} == written


# --- a set is declared once ---
def test_the_ignore_rules_keep_exactly_the_declared_sets():
    """.gitignore cannot be generated: its whitelist of results/ folders is checked instead."""
    with open(os.path.join(REPO, ".gitignore")) as f:
        kept = re.findall(r"^!results/([^/\s]+)/$", f.read(), re.MULTILINE)
    assert sorted(kept) == sorted(SETS) and len(kept) == len(set(kept))


def test_the_report_shows_each_set_once_in_its_order():
    assert sorted(report.SECTIONS) == sorted(SETS)
    assert list(report.SECTIONS).index("budget-reference") == \
        list(report.SECTIONS).index(last_stage("fast")) + 1


def test_a_key_names_one_run_or_the_seeds_of_one_setting():
    with pytest.raises(ValueError, match="differ in more than their seed"):
        ExperimentSet("x", "X", [run("a", "a", lr=0.1), run("a", "a", lr=0.2)], print)
    assert [len(runs) for runs in [SETS["bn"].runs, SETS["activations"].runs]] == [6, 9]


def first_layer_norm(model, flags, data_dir):
    return {"first_layer_norm": float(model.layers[0].weight.detach().norm())}


def section_widths(summary, experiment_set, results):
    runs = by_key(summary)
    return (f"{runs['wide']['label']}: {runs['wide']['first_layer_norm']:.3f}; "
            f"{runs['narrow']['label']}: {runs['narrow']['first_layer_norm']:.3f}.\n\n"
            f"![widths](widths/widths.png)")


WIDTHS = ExperimentSet(
    "widths", "Narrow or wide",
    [run("narrow", "8 hidden units", hidden_dims=[8], epochs=1, **TINY),
     run("wide", "32 hidden units", hidden_dims=[32], epochs=1, **TINY)],
    section_widths, figures.curves("Narrow or wide"), measure=first_layer_norm)


def test_a_new_set_is_one_declaration_with_its_measure_and_section(cifar_dir, tmp_path):
    results = Results(tmp_path / "results")
    runner.main("widths", str(cifar_dir[0]), "synthetic", results=results,
                experiment_sets={**SETS, "widths": WIDTHS})
    summary = results.load("widths")
    assert [(e["key"], e["label"]) for e in summary["runs"]] == [
        ("narrow", "8 hidden units"), ("wide", "32 hidden units")]
    assert "--hidden_dims 32" in summary["runs"][1]["command"]
    norms = [e["first_layer_norm"] for e in summary["runs"]]
    assert all(norm > 0 for norm in norms)
    text = open(results.path("README.md")).read()
    section = text.split("## Narrow or wide\n\n")[1]
    assert f"32 hidden units: {norms[1]:.3f}; 8 hidden units: {norms[0]:.3f}." in section
    assert os.path.getsize(results.path("widths", "widths.png")) > 10_000
    assert "Not run yet: `python -m experiments bn " in text  # the others were not trained


def test_a_renamed_label_changes_only_its_text_in_the_report(cifar_dir, tmp_path):
    """The bn section finds its runs by key, and shows each with the label its set declares:
    a label renamed shows where the one saved was, at once and after the set runs again, and
    nothing else changes."""
    results = Results(tmp_path / "results")
    runs = [run("without-batchnorm", "without BatchNorm", epochs=1, seed=0, **TINY),
            run("with-batchnorm", "with BatchNorm", use_batch_norm=True, epochs=1, seed=0, **TINY)]
    bn = dataclasses.replace(SETS["bn"], runs=runs)
    renamed = dataclasses.replace(bn, runs=[runs[0], dataclasses.replace(runs[1],
                                                                         label="BatchNorm on")])

    def report_after(experiment_set, what):
        runner.main(what, str(cifar_dir[0]), "synthetic", results=results,
                    experiment_sets={**SETS, "bn": experiment_set})
        return open(results.path("README.md")).read()

    before = report_after(bn, "bn")
    assert "| with BatchNorm | " in before and "Not shown" not in before
    after = before.replace("| with BatchNorm | ", "| BatchNorm on | ")
    assert report_after(renamed, "report") == after
    assert report_after(renamed, "bn") == after


# --- a set is replaced only once complete; the report reads what was saved ---
@pytest.fixture
def one_small_set(tmp_path):
    """The bn set as two tiny runs; (the set, its results, its folder)."""
    runs = [run("numpy", "NumPy", trainer="numpy", epochs=1, **TINY),
            run("pytorch", "PyTorch", epochs=1, **TINY)]
    results = Results(tmp_path / "results")
    return dataclasses.replace(SETS["bn"], runs=runs), results, tmp_path / "results" / "bn"


def test_a_failed_or_stopped_set_leaves_the_earlier_results_as_they_were(one_small_set,
                                                                         cifar_dir, tmp_path,
                                                                         monkeypatch, capsys):
    small_set, results, folder = one_small_set
    runner.train_set(small_set, str(cifar_dir[0]), "synthetic", results)
    before = files_of(folder)
    assert "summary.json" in before and len(before) > 4
    with pytest.raises(DataError):
        runner.train_set(small_set, str(tmp_path / "nonexistent"), "", results)
    assert files_of(folder) == before
    trained = []
    real_training = runner.train_run

    def stopped_after_one_run(one, flags, runs_dir, data_dir):
        if trained:
            raise KeyboardInterrupt
        trained.append(one)
        return real_training(one, flags, runs_dir, data_dir)

    monkeypatch.setattr(runner, "train_run", stopped_after_one_run)
    with pytest.raises(KeyboardInterrupt):
        runner.train_set(small_set, str(cifar_dir[0]), "synthetic", results)
    assert files_of(folder) == before
    assert "earlier results" in capsys.readouterr().err
    monkeypatch.setattr(runner, "train_run", real_training)
    runner.train_set(small_set, str(cifar_dir[0]), "synthetic", results)  # complete: replaced
    after = files_of(folder)
    assert after != before and "summary.json" in after
    # nothing left beside it but the set's working folder, empty
    assert sorted(os.listdir(folder.parent)) == [".bn", "bn"]
    assert os.listdir(folder.parent / ".bn") == []


def test_the_report_names_a_damaged_file_and_goes_on(tmp_path, capsys):
    results = tmp_path / "results"
    run_entry = {"key": "x", "label": "x", "trainer": "numpy", "flags": {}, "run_dir": "runs/x"}
    summary = {"set": "bn", "command": "c", "date": "d", "machine": "m", "data": "s",
               "runs": [run_entry]}
    (results / "bn" / "runs" / "x").mkdir(parents=True)
    (results / "bn" / "summary.json").write_text(json.dumps(summary))
    (results / "bn" / "runs" / "x" / "metrics.json").write_text('{"test_accuracy": 0.5, ')
    (results / "activations").mkdir()
    (results / "activations" / "summary.json").write_text(
        json.dumps({key: value for key, value in summary.items() if key != "machine"}))
    report.write_report(Results(results))
    text = (results / "README.md").read_text()
    assert "Not shown: bn/runs/x/metrics.json cannot be read" in text
    assert "Not shown: activations/summary.json lacks machine" in text
    assert "Not run yet: `python -m experiments numpy-vs-torch " in text
    assert "bn/runs/x/metrics.json" in capsys.readouterr().err


def test_the_report_goes_on_past_a_figure_it_cannot_write_and_a_run_of_no_epochs(tmp_path,
                                                                                   capsys):
    """A folder where a set's figure goes, and a run with no epoch to draw, are each said in
    their section; every other section is written."""
    copy = copy_of_the_repository(tmp_path, with_results=True)
    results = Results(copy / "results")
    os.remove(results.path("bn", "bn.png"))
    os.mkdir(results.path("bn", "bn.png"))
    entry = results.load("numpy-vs-torch")["runs"][0]
    metrics_path = results.path("numpy-vs-torch", entry["run_dir"], "metrics.json")
    with open(metrics_path) as f:
        metrics = json.load(f)
    with open(metrics_path, "w") as f:
        json.dump(dict(metrics, train_loss=[], train_loss_steps=[]), f)
    report.write_report(results)
    text = open(results.path("README.md")).read()
    assert "Not shown: bn/: its figure cannot be written" in text
    assert "Not shown: numpy-vs-torch/: its files lack what this section reads" in text
    assert "Not shown" not in text.replace("Not shown: bn/", "").replace(
        "Not shown: numpy-vs-torch/", "")
    assert "warning: bn/" in capsys.readouterr().err


def test_the_report_reads_the_repositorys_results_from_any_folder(tmp_path):
    copy = copy_of_the_repository(tmp_path, with_results=True)
    os.remove(copy / "results" / "README.md")
    result = subprocess.run([sys.executable, "-m", "experiments", "report"], cwd="/",
                            capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(copy)))
    assert result.returncode == 0, result.stderr
    text = (copy / "results" / "README.md").read_text()
    assert "Not run yet" not in text and "Not shown" not in text
    assert text == open(os.path.join(REPO, "results", "README.md")).read()


# --- the search's rule ---
def run_fake_search(name, rows, tmp_path, monkeypatch):
    """Run the greedy set name over rows of (label, change, validation accuracy, test accuracy,
    minutes) without training; returns the flags each row was trained with and the summary the
    set wrote. The validation accuracy is the kept model's on every --tta view; its epochs' run
    the other way, so that a rule reading them would keep other rows."""
    stage = dataclasses.replace(SETS[name], runs=[Run(label, label, "numpy", change)
                                                  for label, change, *_ in rows])
    trained = []

    def fake_training(one, flags, runs_dir, data_dir):
        _, _, validation, test, minutes = next(row for row in rows if row[0] == one.key)
        trained.append(flags)
        run_dir = os.path.join(runs_dir, one.key)
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, "metrics.json"), "w") as f:
            json.dump({"wall_time_s": 60 * minutes}, f)
        epochs = [1 - validation, 0.9 - validation]
        return None, epochs, test, {"run_dir": run_dir, "val_accuracy": epochs,
                                    "kept_val_accuracy": validation}

    monkeypatch.setattr(runner, "train_run", fake_training)
    runner.train_set(stage, str(tmp_path), "synthetic", Results(tmp_path / "results"))
    return trained, json.loads((tmp_path / "results" / name / "summary.json").read_text())


def test_the_search_keeps_a_change_on_validation_accuracy_never_on_test(tmp_path, monkeypatch):
    """Each row's numbers are chosen so that test accuracy would keep other rows: the flags
    every row was trained with show which rows were kept."""
    rows = [("start", {}, 0.50, 0.90, 1), ("a", {"dropout": 0.1}, 0.60, 0.10, 1),
            ("b", {"momentum": 0.5}, 0.55, 0.99, 1), ("c", {"weight_decay": 0.01}, 0.70, 0.00, 1)]
    trained, summary = run_fake_search("search", rows, tmp_path, monkeypatch)
    assert [run["kept"] for run in summary["runs"]] == [True, True, False, True]
    assert trained[3] == {"dropout": 0.1, "weight_decay": 0.01}  # a kept, b not


def test_a_stage_that_builds_a_preset_keeps_no_row_past_its_budget(tmp_path, monkeypatch):
    """Row a is the most accurate but runs 0.1 minute past the budget here: not kept, and row b
    starts again from the start's flags. The start, over the budget too, is what every row
    builds on: kept. Row b, within the budget, replaces it though less accurate; row c, less
    accurate than b, is then not kept."""
    monkeypatch.setattr(budget, "factor_here", lambda results: 1.0)
    monkeypatch.setitem(budget.PRESET_BUDGET_MINUTES, "fast", 3.0)
    rows = [("start", {"lr": 0.01}, 0.50, 0.5, 3.5), ("a", {"epochs": 30}, 0.80, 0.8, 3.1),
            ("b", {"dropout": 0.1}, 0.45, 0.6, 3.0), ("c", {"momentum": 0.5}, 0.44, 0.6, 2.0)]
    trained, summary = run_fake_search("search-fast", rows, tmp_path, monkeypatch)
    assert [run["kept"] for run in summary["runs"]] == [True, False, True, False]
    assert trained[2] == {"lr": 0.01, "dropout": 0.1}
    assert trained[3] == {"lr": 0.01, "dropout": 0.1, "momentum": 0.5}
    assert {run["budget_minutes"] for run in summary["runs"]} == {3.0}
    assert [run["over_budget"] for run in summary["runs"]] == [True, True, False, False]


def test_a_stage_that_builds_a_preset_refuses_to_start_without_a_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(budget, "factor_here", lambda results: None)
    with pytest.raises(UserError, match="budget-reference"):
        run_fake_search("search-projection", [("start", {}, 0.5, 0.5, 1.0)], tmp_path,
                        monkeypatch)
    assert not (tmp_path / "results" / "search-projection").exists()


def test_the_dead_fraction_counts_the_units_that_never_fire():
    """Units whose bias holds them below zero for every image are dead, those held above are not:
    half the first hidden layer's, a quarter of the second's."""
    model = mlp_pytorch.MLP(3072, [4, 4], 10, activation="relu")
    first, second = model.linear_layers[:2]
    with torch.no_grad():
        for layer, dead in ((first, 2), (second, 1)):
            layer.weight.zero_()
            layer.bias.copy_(torch.tensor([-1.0] * dead + [1.0] * (4 - dead)))
    images = np.random.default_rng(0).integers(0, 256, (20, 3, 32, 32), dtype=np.uint8)
    split = Split(images, np.zeros(20, np.int64))
    assert measures.dead_fractions(model, split) == [0.5, 0.25]
