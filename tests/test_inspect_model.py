"""What a run records about its test pass per class, and the figures --evaluate draws."""
import json
import os

import matplotlib.image
import numpy as np
import pytest
from helpers import run_script

import cifar10_utils
import train_mlp_numpy
import train_mlp_pytorch
from training import inspect_model

TRAINERS = {"numpy": (train_mlp_numpy, "model.npz"), "pytorch": (train_mlp_pytorch, "model.pt")}


def tiny_run(framework, root, results, hidden_dims=(16,)):
    trainer, _ = TRAINERS[framework]
    kwargs = dict(hidden_dims=list(hidden_dims), lr=0.05, batch_size=16, epochs=2, seed=0,
                  data_dir=str(root), validation_size=30, data_url="", results_dir=str(results))
    if framework == "pytorch":
        kwargs.update(use_batch_norm=False, device="cpu")
    return trainer.train(**kwargs)


@pytest.mark.parametrize("framework", TRAINERS)
def test_metrics_record_the_test_confusion_matrix_and_per_class_accuracy(framework,
                                                                         hard_cifar_dir,
                                                                         tmp_path):
    root, written = hard_cifar_dir
    _, _, test_accuracy, log = tiny_run(framework, root, tmp_path / "r")
    metrics = json.loads((tmp_path / "r" / os.listdir(tmp_path / "r")[0] / "metrics.json")
                         .read_text())
    confusion = np.array(metrics["test_confusion_matrix"])
    assert confusion.shape == (10, 10) and confusion.sum() == 40  # every test image once
    assert np.trace(confusion) == round(test_accuracy * 40)  # the correct ones on the diagonal
    np.testing.assert_array_equal(confusion.sum(axis=1), np.bincount(written["test"][1],
                                                                      minlength=10))
    assert metrics["class_names"] == [f"class{i}" for i in range(10)]  # from batches.meta
    for i, name in enumerate(metrics["class_names"]):
        row = confusion[i].sum()
        expected = None if row == 0 else confusion[i, i] / row
        assert metrics["test_per_class_accuracy"][name] == expected


def test_class_names_fall_back_to_cifar10s_only_without_batches_meta(cifar_dir):
    root, _ = cifar_dir
    assert cifar10_utils.class_names(root)[:2] == ["class0", "class1"]
    os.remove(root / "cifar-10-batches-py" / "batches.meta")
    assert cifar10_utils.class_names(root) == list(cifar10_utils.CLASS_NAMES)


def test_confusion_matrix_and_per_class_accuracy_by_hand():
    confusion = inspect_model.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 4)
    np.testing.assert_array_equal(confusion, [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0],
                                              [0, 0, 0, 0]])
    accuracies = inspect_model.per_class_accuracy(confusion)
    np.testing.assert_allclose(accuracies[:3], [0.5, 1.0, 2 / 3])
    assert np.isnan(accuracies[3])  # no images of that class: no accuracy, no error


@pytest.mark.parametrize("framework, hidden_dims", [("numpy", (16,)), ("pytorch", (16,)),
                                                    ("numpy", ())])
def test_evaluate_draws_four_figures_beside_the_weights(framework, hidden_dims, cifar_dir,
                                                        tmp_path):
    root, _ = cifar_dir
    tiny_run(framework, root, tmp_path / "r", hidden_dims)
    (folder,) = (tmp_path / "r").iterdir()
    script = f"train_mlp_{framework}.py"
    code, stdout, stderr = run_script(script, "--evaluate", folder / TRAINERS[framework][1],
                                      "--data_dir", root, "--validation_size", 30,
                                      "--data_url", "")
    assert code == 0, stderr
    assert "class0" in stdout and "test accuracy" in stdout  # the per-class table
    for name in ("confusion.png", "per_class.png", "weights.png", "mistakes.png"):
        image = matplotlib.image.imread(folder / name)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400, name
        assert image[..., :3].std() > 0.01, f"{name} is blank"
