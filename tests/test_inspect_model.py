"""What a run records about its test pass per class, and what --evaluate shows of a model
(training/inspect_model.py): the tables, the most confident mistakes, and four figures."""
import json
import os
import resource
import subprocess
import sys

import matplotlib.axes
import matplotlib.image
import numpy as np
import pytest
from helpers import (
    REPO,
    SETTINGS,
    TRAINERS,
    UNWRITABLE,
    assert_one_clear_line,
    loaded_before_the_check,
    run_script,
    train,
)

import train_mlp_numpy
from safety.errors import UserError
from training import evaluation, inspect_model


@pytest.mark.parametrize("framework", TRAINERS)
def test_metrics_record_the_test_confusion_matrix_and_per_class_accuracy(framework,
                                                                         hard_cifar_dir,
                                                                         tmp_path):
    root, written = hard_cifar_dir
    _, _, test_accuracy, log = train(framework, root, tmp_path / "r", epochs=2)
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


def test_confusion_matrix_and_per_class_accuracy_by_hand():
    confusion = inspect_model.confusion_matrix([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 2], 4)
    np.testing.assert_array_equal(confusion, [[1, 1, 0, 0], [0, 1, 0, 0], [1, 0, 2, 0],
                                              [0, 0, 0, 0]])
    accuracies = inspect_model.per_class_accuracy(confusion)
    np.testing.assert_allclose(accuracies[:3], [0.5, 1.0, 2 / 3])
    assert np.isnan(accuracies[3])  # no images of that class: no accuracy, no error


def test_the_mistakes_shown_are_the_most_confident_ones():
    labels = np.array([0, 0, 1, 1, 2])
    probabilities = np.array([[0.2, 0.8, 0.0],    # wrong, p 0.8
                              [0.9, 0.1, 0.0],    # right
                              [0.6, 0.4, 0.0],    # wrong, p 0.6
                              [0.0, 0.05, 0.95],  # wrong, p 0.95
                              [0.1, 0.0, 0.9]])   # right
    indices, mistakes = inspect_model.most_confident_mistakes(labels, probabilities, count=2)
    assert list(indices) == [3, 0] and mistakes == 3


def test_a_template_is_drawn_as_the_image_its_weights_are(tmp_path, monkeypatch):
    """A unit whose weights read the red channel's left half is drawn red on the left."""
    image = np.zeros((3, 32, 32))
    image[0, :, :16] = 1
    drawn = []
    monkeypatch.setattr(matplotlib.axes.Axes, "imshow",
                        lambda self, picture, **settings: drawn.append(np.asarray(picture)))
    inspect_model.draw_templates(image.reshape(1, -1), str(tmp_path / "weights.png"))
    (picture,) = [each for each in drawn if each.shape == (32, 32, 3)]
    red, others = picture[..., 0], picture[..., 1:]
    assert red[:, :16].min() > red[:, 16:].max() and np.ptp(red[:, :16]) == np.ptp(red[:, 16:]) == 0
    assert np.ptp(others) == 0 and others.max() < red.max()


def test_the_per_class_table_lists_the_worst_class_first():
    confusion = np.array([[9, 1, 0], [5, 5, 0], [0, 0, 10]])
    lines = inspect_model.per_class_table(confusion, ["cat", "dog", "ship"]).splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["dog", "cat", "ship"]
    assert lines[4].split()[:2] == ["all", "0.8000"]


@pytest.mark.parametrize("framework, hidden_dims", [("numpy", (16,)), ("pytorch", (16,)),
                                                    ("numpy", ())])
def test_evaluate_draws_four_figures_beside_the_weights(framework, hidden_dims, cifar_dir,
                                                        tmp_path, capsys):
    root, _ = cifar_dir
    train(framework, root, tmp_path / "r", epochs=2, hidden_dims=list(hidden_dims))
    (folder,) = (tmp_path / "r").iterdir()
    trainer, weights = TRAINERS[framework]
    capsys.readouterr()
    trainer.evaluate_saved(str(folder / weights), set(), data_dir=str(root), validation_size=30,
                           data_url="", **SETTINGS[framework])
    stdout = capsys.readouterr().out
    assert "class0" in stdout and "test accuracy" in stdout  # the per-class table
    for name in ("confusion.png", "per_class.png", "weights.png", "mistakes.png"):
        image = matplotlib.image.imread(folder / name)
        assert image.ndim == 3 and image.shape[0] > 200 and image.shape[1] > 400, name
        assert image[..., :3].std() > 0.01, f"{name} is blank"


FIGURES = ["confusion.png", "mistakes.png", "per_class.png", "weights.png"]


@pytest.fixture
def saved_numpy_model(cifar_dir, tmp_path):
    root, _ = cifar_dir
    train("numpy", root, tmp_path / "r", epochs=1, hidden_dims=[8])
    (folder,) = (tmp_path / "r").iterdir()
    return root, folder


def test_evaluate_draws_its_figures_where_figures_dir_says(saved_numpy_model, tmp_path):
    root, folder = saved_numpy_model
    code, stdout, stderr = run_script("train_mlp_numpy.py", "--evaluate", folder / "model.npz",
                                      "--data_dir", root, "--validation_size", 30, "--data_url",
                                      "", "--figures_dir", tmp_path / "figures" / "new")
    assert code == 0, stderr
    assert sorted(os.listdir(tmp_path / "figures" / "new")) == FIGURES
    assert not any(name in os.listdir(folder) for name in FIGURES)
    code, _, stderr = run_script("train_mlp_numpy.py", "--figures_dir", tmp_path)
    assert code == 2 and "--figures_dir says where --evaluate draws its figures" in stderr
    (tmp_path / "a file").write_text("")
    code, stdout, stderr = run_script("train_mlp_numpy.py", "--evaluate", folder / "model.npz",
                                      "--data_dir", root, "--figures_dir", tmp_path / "a file")
    assert code == 1 and stdout == ""  # refused before the model is even read
    assert_one_clear_line(stderr, f"--figures_dir {tmp_path / 'a file'} is not writable")


def test_evaluate_beside_a_full_folder_names_the_figure_and_the_way_out(saved_numpy_model):
    """A file-size limit stands for a full disk or a read-only folder (which root can write)."""
    root, folder = saved_numpy_model
    flags = ["--evaluate", folder / "model.npz", "--data_dir", root, "--validation_size", 30,
             "--data_url", ""]
    shown = subprocess.run([sys.executable, "train_mlp_numpy.py", *map(str, flags)], cwd=REPO,
                           capture_output=True, text=True, timeout=120, preexec_fn=lambda:
                           resource.setrlimit(resource.RLIMIT_FSIZE, (10_000, 10_000)))
    assert shown.returncode == 1 and "test accuracy" in shown.stdout  # the numbers came first
    assert_one_clear_line(shown.stderr, f"the figures could not be written ([Errno 27] File too "
                                        f"large: '{folder / 'confusion.png'}'); give --figures_dir")
    assert sorted(os.listdir(folder)) == ["accuracy.png", "loss.png", "metrics.json", "model.npz"]


@pytest.mark.parametrize("path", ["/dev/zero", "fifo"])
def test_evaluate_refuses_what_is_not_a_file_at_once(path, tmp_path):
    if path == "fifo":
        path = tmp_path / "model.npz"
        os.mkfifo(path)
    code, _, stderr = run_script("train_mlp_numpy.py", "--evaluate", path, timeout=60)
    assert code == 1
    assert_one_clear_line(stderr, f"{path} is not a saved model of this trainer (it is not a "
                                  f"regular file)")


@pytest.mark.skipif(not os.path.isdir(UNWRITABLE), reason="needs Linux's /proc")
def test_a_figures_dir_that_refuses_writes_is_found_before_the_model_is_evaluated(
        saved_numpy_model, monkeypatch):
    root, folder = saved_numpy_model
    monkeypatch.setattr(evaluation, "get_cifar10", loaded_before_the_check)
    with pytest.raises(UserError, match=f"--figures_dir {UNWRITABLE} is not writable"):
        train_mlp_numpy.evaluate_saved(str(folder / "model.npz"), set(), data_dir=str(root),
                                       data_url="", figures_dir=UNWRITABLE)
    assert not any(name in os.listdir(folder) for name in FIGURES)
