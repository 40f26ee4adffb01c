"""The results folder read back: a set's summary.json and its runs' metrics.json checked as
strictly as a flag is, so that a damaged or hand-edited file is one line naming it, never a
traceback or a number shown as if it were measured."""
import json

import pytest

from helpers import metrics, write_set

from experiments import report
from experiments.store import Results, by_key, validation_accuracy
from safety.errors import UserError


def write_bn(folder, damage=lambda summary, measured: None):
    """A bn set of one run, damaged first by damage(summary, the run's metrics)."""
    write_set(folder, "bn", [("with-batchnorm", "with BatchNorm", "pytorch",
                              {"use_batch_norm": True}, metrics())])
    summary = json.loads((folder / "bn" / "summary.json").read_text())
    run_metrics = folder / "bn" / summary["runs"][0]["run_dir"] / "metrics.json"
    measured = json.loads(run_metrics.read_text())
    damage(summary, measured)
    (folder / "bn" / "summary.json").write_text(json.dumps(summary))
    run_metrics.write_text(json.dumps(measured))
    return Results(folder)


def test_a_set_as_the_runner_writes_it_is_read_back_with_its_command(tmp_path):
    summary = write_bn(tmp_path).load("bn")
    (entry,) = summary["runs"]
    assert entry["command"] == "python train_mlp_pytorch.py --use_batch_norm"
    assert entry["metrics"]["test_accuracy"] == 0.5


DAMAGES = [
    (lambda s, m: s.update(runs={"with-batchnorm": {}}), "bn/summary.json: runs must be a list"),
    (lambda s, m: s.update(machine=3), "bn/summary.json: machine must be a text"),
    (lambda s, m: s["runs"][0].update(trainer="jax"), "run 0: trainer must be one of"),
    (lambda s, m: s["runs"][0].update(label=None), "run 0: label must be a text"),
    (lambda s, m: s["runs"][0]["flags"].update(lr="fast"), "run 0: lr must be a number"),
    (lambda s, m: s["runs"][0]["flags"].update(hidden_dims=[0]), "hidden_dims[0] is 0"),
    (lambda s, m: s["runs"][0]["flags"].update(lrate=0.1), "unknown options: ['lrate']"),
    (lambda s, m: s["runs"][0].update(flags=[0.1]), "flags must be a mapping"),
    (lambda s, m: s["runs"][0].update(run_dir="../../elsewhere"),
     "run_dir ../../elsewhere lies outside the results folder"),
    (lambda s, m: s["runs"][0].update(run_dir="/tmp"), "run_dir /tmp lies outside"),
    (lambda s, m: m.update(test_accuracy="0.5"), "metrics.json: test_accuracy must be a number"),
    (lambda s, m: m.update(test_accuracy=50.0), "test_accuracy is 50.0, out of range"),
    (lambda s, m: m.update(test_accuracy=10 ** 400), "00, too large to use"),
    (lambda s, m: m.update(val_accuracy=[0.4, float("nan")]), "val_accuracy[1] is nan"),
    (lambda s, m: m.update(train_loss=None), "train_loss must be a list of numbers"),
    (lambda s, m: m.update(best_epoch=1.5), "best_epoch must be an integer"),
    (lambda s, m: m.update(wall_time_s=-1.0), "wall_time_s is -1.0, out of range"),
    (lambda s, m: m.update(kept_val_accuracy=1.5), "kept_val_accuracy is 1.5, out of range"),
]


@pytest.mark.parametrize("damage, named", DAMAGES)
def test_a_damaged_or_hand_edited_file_is_one_line_naming_it(tmp_path, damage, named, capsys):
    results = write_bn(tmp_path, damage)
    with pytest.raises(UserError) as refused:
        results.load("bn")
    assert named in str(refused.value) and "\n" not in str(refused.value)
    report.write_report(results)
    text = (tmp_path / "README.md").read_text()
    assert f"Not shown: {refused.value}." in text
    assert "Traceback" not in capsys.readouterr().err


def test_a_runs_validation_is_its_kept_models_on_every_view_or_its_best_epochs_before_that():
    """Records without kept_val_accuracy (their --tta had no shifts) give their best epoch's:
    the same number."""
    assert validation_accuracy(metrics(val_accuracy=(0.4, 0.6, 0.5))) == 0.6
    assert validation_accuracy(metrics(val_accuracy=(0.4, 0.6), kept_val_accuracy=0.7)) == 0.7
    assert validation_accuracy(metrics(val_accuracy=(0.4, 0.6), kept_val_accuracy=None)) == 0.6


def test_a_run_of_another_set_may_be_named_but_nothing_outside_the_results(tmp_path):
    """The learned set names the presets set's run as ../presets/runs/...: inside the results."""
    write_set(tmp_path, "presets", [("best", "b", "pytorch", {}, metrics())])
    results = write_bn(tmp_path, lambda s, m: s["runs"][0].update(run_dir="../presets/runs/0-best"))
    assert results.load("bn")["runs"][0]["metrics"]["wall_time_s"] == 60.0


def test_a_key_two_runs_share_is_refused_where_each_key_names_one_run():
    summary = {"runs": [{"key": "best", "label": "a"}, {"key": "fast", "label": "b"},
                        {"key": "best", "label": "c"}]}
    with pytest.raises(UserError, match="several runs share the key best"):
        by_key(summary)
    assert by_key({"runs": summary["runs"][:2]}) == {"best": summary["runs"][0],
                                                    "fast": summary["runs"][1]}
