"""experiments.py end to end on a tiny synthetic dataset: every set trains, the report is built
from what was saved, and rebuilding it trains nothing."""
import json
import os
import subprocess

import pytest

import experiments
import report
from errors import UserError
from options import DEFAULTS, PRESETS, command_line


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
    task = subprocess.run(command, shell=True, cwd=os.path.dirname(experiments.__file__),
                          capture_output=True, text=True)
    assert task.returncode == 0, task.stderr
    experiments.main("report", str(cifar_dir[0]), "synthetic test data")
    (collected,) = report.load_set("bn-test-time")["runs"]
    assert collected["batch_statistics"]["running_accuracy"] == \
        collected["metrics"]["test_accuracy"]


def test_report_without_runs_says_how_to_make_them(tiny_sets):
    experiments.main("report", "unused", "")
    assert "Not run yet: `python experiments.py bn`" in (tiny_sets / "README.md").read_text()


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
