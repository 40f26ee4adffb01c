"""The NumPy trainer end to end on a tiny synthetic CIFAR-10."""
import json
import os

import numpy as np
import pytest

import train_mlp_numpy
from mlp_numpy import MLP


def small_run(root, results, **overrides):
    kwargs = dict(hidden_dims=[32], lr=0.05, batch_size=16, epochs=4, seed=1, data_dir=str(root),
                  validation_size=30, data_url="", results_dir=str(results))
    kwargs.update(overrides)
    return train_mlp_numpy.train(**kwargs)


def test_training_learns_and_writes_results(hard_cifar_dir, tmp_path):
    root, _ = hard_cifar_dir
    model, val_accuracies, test_accuracy, log = small_run(root, tmp_path / "results")
    assert len(val_accuracies) == 4 and len(log["train_loss_steps"]) == 4 * (170 // 16)
    assert log["train_loss"][-1] < 0.5 * log["train_loss"][0]
    assert test_accuracy > 0.5 and max(val_accuracies) > 0.5  # chance is 0.1
    assert val_accuracies[0] < max(val_accuracies) < 1  # 20 % of the labels are random
    folder = tmp_path / "results" / "numpy_h32_lr0.05_b16_e4_s1"
    assert sorted(os.listdir(folder)) == ["accuracy.png", "loss.png", "metrics.json", "model.npz"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["status"] == "finished" and metrics["test_accuracy"] == test_accuracy
    assert metrics["config"]["hidden_dims"] == [32] and "numpy" in metrics["versions"]
    # the saved weights are those of the best validation epoch, which was tested
    best = MLP(3072, [32], 10)
    best.load_state_dict(train_mlp_numpy.read_weights(folder / "model.npz")[0])
    for name, value in best.state_dict().items():
        np.testing.assert_array_equal(value, model.state_dict()[name])
    assert log["best_epoch"] == int(np.argmax(val_accuracies)) + 1


def test_same_seed_same_numbers_other_seed_other_numbers(cifar_dir, tmp_path):
    root, _ = cifar_dir
    first = small_run(root, tmp_path / "a", epochs=2)
    second = small_run(root, tmp_path / "b", epochs=2)
    third = small_run(root, tmp_path / "c", epochs=2, seed=2)
    assert first[3]["train_loss_steps"] == second[3]["train_loss_steps"]
    assert first[2] == second[2]
    assert first[3]["train_loss_steps"] != third[3]["train_loss_steps"]


def test_logistic_regression_and_other_activations_train(cifar_dir, tmp_path):
    root, _ = cifar_dir
    for hidden, activation in [([], "elu"), ([16, 16], "relu"), ([16], "tanh")]:
        _, _, test_accuracy, log = small_run(root, tmp_path, hidden_dims=hidden,
                                             activation=activation)
        assert log["train_loss"][-1] < log["train_loss"][0], (hidden, activation)


def test_command_line_defaults_and_2021_alias():
    args = train_mlp_numpy.parse_args([])
    assert (args.hidden_dims, args.lr, args.batch_size, args.epochs, args.seed, args.data_dir) \
        == ([128], 0.1, 128, 10, 42, "data/")
    assert train_mlp_numpy.parse_args(["--dnn_hidden_units", "100,50"]).hidden_dims == [100, 50]
    assert train_mlp_numpy.parse_args(["--hidden_dims", "256", "128"]).hidden_dims == [256, 128]


@pytest.mark.parametrize("flags", [["--lr", "0"], ["--lr", "-1"], ["--batch_size", "0"],
                                   ["--epochs", "-1"], ["--hidden_dims", "0"],
                                   ["--dnn_hidden_units", "100,-5"], ["--validation_size", "0"],
                                   ["--validation_size", "50000"], ["--lr", "nan"]])
def test_bad_flags_are_rejected_with_the_allowed_range(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_mlp_numpy.parse_args(flags)
    assert exit_info.value.code == 2
    assert "must be" in capsys.readouterr().err
