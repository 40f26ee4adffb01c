"""experiments.py end to end on a tiny synthetic dataset: every set trains, the report is built
from what was saved, and rebuilding it trains nothing."""
import json
import os
import subprocess
import sys

import pytest
from helpers import REPO, copy_of_the_repository, files_of

from experiments import report
from experiments import runner as experiments
from safety.errors import DataError, UserError
from training.options import DEFAULTS, PRESETS, command_line


@pytest.fixture
def tiny_sets(monkeypatch, tmp_path):
    """Every set with its real labels and structure, but runs small enough for a test."""
    small = dict(epochs=2, batch_size=16, validation_size=30, data_url="")
    tiny = {name: [dict(entry, flags={**entry["flags"], **small,
                                      **({"hidden_dims": entry["flags"]["hidden_dims"][:2]}
                                         if "hidden_dims" in entry["flags"] else {})})
                   for entry in entries[:4]]
            for name, entries in experiments.SETS.items()}
    monkeypatch.setattr(experiments, "SETS", tiny)
    monkeypatch.setattr(experiments, "HESSIAN", dict(images=50, lanczos_steps=6, slq_steps=5,
                                                     probes=2, seed=0))
    monkeypatch.setattr(experiments, "SADDLES", dict(
        experiments.SADDLES, goe_samples=2000, goe_max_n=4, epsilons=[1e-1, 1e-3], starts=3,
        network_starts=2))
    monkeypatch.setattr(experiments, "BATCH_STATISTICS", dict(
        experiments.BATCH_STATISTICS, images=5, draws=3, shown_draws=10))
    monkeypatch.setattr(report, "RESULTS", str(tmp_path / "results"))
    return tmp_path / "results"


def test_all_sets_train_and_the_report_is_rebuilt_without_training(cifar_dir, tiny_sets,
                                                                   monkeypatch):
    experiments.main("all", str(cifar_dir[0]), "synthetic test data")
    text = (tiny_sets / "README.md").read_text()
    for title, _ in report.SECTIONS.values():
        assert f"## {title}" in text
    assert "Not run yet" not in text and "synthetic test data" in text
    for figure in ["bn/bn.png", "activations/activations.png", "numpy-vs-torch/numpy-vs-torch.png",
                   "dead-neurons/dead-neurons.png", "best/best.png",
                   "best-numpy-vs-torch/best-numpy-vs-torch.png", "search/search.png",
                   "search-long/search-long.png", "search-projection/search-projection.png",
                   "search-fast/search-fast.png",
                   "presets/presets.png", "learned/course-numpy/confusion.png",
                   "learned/best-mlp/weights.png", "hessian/hessian.png", "saddles/saddles.png",
                   "bn-test-time/bn-test-time.png"]:
        assert (tiny_sets / figure).stat().st_size > 10_000
        assert f"({figure})" in text
    summary = json.loads((tiny_sets / "dead-neurons" / "summary.json").read_text())
    assert all(0 <= f <= 1 for run in summary["runs"] for f in run["dead_fraction"])
    (tested,) = report.load_set("bn-test-time")["runs"]  # through the trainers' own evaluation
    assert tested["batch_statistics"]["running_accuracy"] == tested["metrics"]["test_accuracy"]

    def no_training(*args, **kwargs):
        raise AssertionError("the report must not train")

    monkeypatch.setattr(experiments, "train_entry", no_training)
    os.remove(tiny_sets / "README.md")
    experiments.main("report", str(cifar_dir[0]), "")
    assert (tiny_sets / "README.md").read_text() == text


@pytest.mark.parametrize("name", ["hessian", "saddles"])
def test_sets_measured_in_their_own_process_refuse_a_job_array(name):
    with pytest.raises(UserError, match="cannot run as a job array"):
        experiments.array_commands(name, "data")


def test_sets_measured_on_saved_models_run_as_job_arrays(cifar_dir, tiny_sets):
    """Each task runs its trainer command; the report's collection measures the saved model as
    the set in one process measures the trained one."""
    assert len(experiments.array_commands("dead-neurons", "data")) == 4
    (command,) = experiments.array_commands("bn-test-time", str(cifar_dir[0]))
    task = subprocess.run(command, shell=True, cwd=REPO,
                          capture_output=True, text=True)
    assert task.returncode == 0, task.stderr
    experiments.main("report", str(cifar_dir[0]), "synthetic test data")
    (collected,) = report.load_set("bn-test-time")["runs"]
    assert collected["batch_statistics"]["running_accuracy"] == \
        collected["metrics"]["test_accuracy"]


def test_report_without_runs_says_how_to_make_them(tiny_sets):
    experiments.main("report", "unused", "")
    assert "Not run yet: `python -m experiments bn`" in (tiny_sets / "README.md").read_text()


def test_commands_repeat_the_runs():
    ladder = experiments.SETS["best"]
    assert command_line(ladder[0]["trainer"], ladder[0]["flags"]) == "python train_mlp_pytorch.py"
    presets = experiments.SETS["presets"]
    assert [command_line(e["trainer"], e["flags"]) for e in presets] == \
        [*[f"python train_mlp_pytorch.py --preset {name}" for name in experiments.PRESETS],
         "python train_mlp_numpy.py --preset best"]
    numpy_run = experiments.SETS["numpy-vs-torch"][0]
    assert command_line(numpy_run["trainer"], numpy_run["flags"]) == "python train_mlp_numpy.py"


@pytest.mark.parametrize("preset, stage", [("best", "search-projection"), ("fast", "search-fast")])
def test_each_preset_trains_what_its_search_stage_kept(preset, stage):
    """A preset is the last row its stage of the committed search kept: a preset edited by hand,
    or a stage run again that kept something else, fails here until the two agree."""
    last_kept = [entry for entry in report.load_set(stage)["runs"] if entry["kept"]][-1]
    assert dict(DEFAULTS, **last_kept["flags"]) == dict(DEFAULTS, **PRESETS[preset])


# --- a set is replaced only once complete; the report reads what was saved ---
TINY = dict(batch_size=16, validation_size=30, data_url="")


@pytest.fixture
def one_small_set(monkeypatch, tmp_path):
    runs = [experiments.run("NumPy", trainer="numpy", epochs=1, **TINY),
            experiments.run("PyTorch", epochs=1, **TINY)]
    monkeypatch.setattr(experiments, "SETS", {"bn": runs})
    monkeypatch.setattr(report, "RESULTS", str(tmp_path / "results"))
    return tmp_path / "results" / "bn"


def test_a_failed_or_stopped_set_leaves_the_earlier_results_as_they_were(one_small_set,
                                                                         cifar_dir, tmp_path,
                                                                         monkeypatch, capsys):
    experiments.train_set("bn", str(cifar_dir[0]), "synthetic")
    before = files_of(one_small_set)
    assert "summary.json" in before and len(before) > 4
    with pytest.raises(DataError):
        experiments.train_set("bn", str(tmp_path / "nonexistent"), "")
    assert files_of(one_small_set) == before
    trained = []
    real_training = experiments.train_entry

    def stopped_after_one_run(entry, runs_dir, data_dir):
        if trained:
            raise KeyboardInterrupt
        trained.append(entry)
        return real_training(entry, runs_dir, data_dir)

    monkeypatch.setattr(experiments, "train_entry", stopped_after_one_run)
    with pytest.raises(KeyboardInterrupt):
        experiments.train_set("bn", str(cifar_dir[0]), "synthetic")
    assert files_of(one_small_set) == before
    assert "earlier results" in capsys.readouterr().err
    monkeypatch.setattr(experiments, "train_entry", real_training)
    experiments.train_set("bn", str(cifar_dir[0]), "synthetic")  # complete: now replaced
    after = files_of(one_small_set)
    assert after != before and "summary.json" in after
    assert sorted(os.listdir(one_small_set.parent)) == ["bn"]  # nothing left beside it


def test_the_report_names_a_damaged_file_and_goes_on(tmp_path, monkeypatch, capsys):
    results = tmp_path / "results"
    monkeypatch.setattr(report, "RESULTS", str(results))
    run = {"label": "x", "trainer": "numpy", "flags": {}, "run_dir": "runs/x"}
    summary = {"set": "bn", "command": "c", "date": "d", "machine": "m", "data": "s",
               "runs": [run]}
    (results / "bn" / "runs" / "x").mkdir(parents=True)
    (results / "bn" / "summary.json").write_text(json.dumps(summary))
    (results / "bn" / "runs" / "x" / "metrics.json").write_text('{"test_accuracy": 0.5, ')
    (results / "activations").mkdir()
    (results / "activations" / "summary.json").write_text(
        json.dumps({key: value for key, value in summary.items() if key != "machine"}))
    report.write_report()
    text = (results / "README.md").read_text()
    assert "Not shown: bn/runs/x/metrics.json cannot be read" in text
    assert "Not shown: activations/summary.json lacks machine" in text
    assert "Not run yet: `python -m experiments numpy-vs-torch`" in text
    assert "bn/runs/x/metrics.json" in capsys.readouterr().err


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
    """Run the greedy set name over rows of (label, change, best validation accuracy, test
    accuracy, minutes) without training; returns the flags each row was trained with and the
    summary the set wrote."""
    monkeypatch.setattr(experiments, "SETS", {name: [
        {"label": label, "trainer": "numpy", "flags": change} for label, change, *_ in rows]})
    monkeypatch.setattr(experiments.report, "RESULTS", str(tmp_path / "results"))
    trained = []

    def fake_training(entry, runs_dir, data_dir):
        _, _, validation, test, minutes = next(row for row in rows if row[0] == entry["label"])
        trained.append(entry["flags"])
        run_dir = os.path.join(runs_dir, entry["label"])
        os.makedirs(run_dir)
        with open(os.path.join(run_dir, "metrics.json"), "w") as f:
            json.dump({"wall_time_s": 60 * minutes}, f)
        return None, [validation / 2, validation], test, {"run_dir": run_dir}

    monkeypatch.setattr(experiments, "train_entry", fake_training)
    experiments.train_set(name, str(tmp_path), "synthetic")
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
    builds on: kept."""
    monkeypatch.setattr(experiments.report, "budget_here", lambda preset: 3.0)
    rows = [("start", {"lr": 0.01}, 0.50, 0.5, 3.5), ("a", {"epochs": 30}, 0.80, 0.8, 3.1),
            ("b", {"dropout": 0.1}, 0.60, 0.6, 3.0)]
    trained, summary = run_fake_search("search-fast", rows, tmp_path, monkeypatch)
    assert [run["kept"] for run in summary["runs"]] == [True, False, True]
    assert trained[2] == {"lr": 0.01, "dropout": 0.1}
    assert {run["budget_minutes"] for run in summary["runs"]} == {3.0}


def test_a_stage_that_builds_a_preset_refuses_to_start_without_a_budget(tmp_path, monkeypatch):
    monkeypatch.setattr(experiments.report, "budget_here", lambda preset: None)
    with pytest.raises(experiments.UserError, match="budget-reference"):
        run_fake_search("search-projection", [("start", {}, 0.5, 0.5, 1.0)], tmp_path,
                        monkeypatch)
    assert not (tmp_path / "results" / "search-projection").exists()
