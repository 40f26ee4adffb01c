"""--projection K: the whitened images projected onto their top K principal components, a fixed
first layer of both MLPs that the run fits on the training split and the saved model keeps."""
import json
import os

import numpy as np
import pytest
import synthetic_cifar
from helpers import assert_one_clear_line, run_script
from test_hostile_use import edited_copy

import cifar10_utils
import train_mlp_numpy
import train_mlp_pytorch
from safety.errors import UserError
from training.preprocessing import Preprocessing

TRAINERS = {"numpy": (train_mlp_numpy, "model.npz"), "pytorch": (train_mlp_pytorch, "model.pt")}
SETTINGS = {"numpy": {}, "pytorch": {"device": "cpu"}}
COMPONENTS = 40


def test_the_components_are_the_whitened_images_top_principal_directions():
    images = np.random.default_rng(0).integers(0, 256, (600, 3, 32, 32), dtype=np.uint8)
    images[:, :, :, 16:] = images[:, :, :, :16] // 2  # correlated pixels: a spectrum with a slope
    zca = Preprocessing.fit("zca", images, zca_epsilon=1.0)
    components = zca.principal_components(COMPONENTS)
    assert components.shape == (3072, COMPONENTS) and components.dtype == np.float32
    np.testing.assert_allclose(components.T @ components, np.eye(COMPONENTS), atol=1e-5)
    white = zca(np.concatenate([images, images[..., ::-1]])).reshape(2 * len(images), -1)
    white = white.astype(np.float64) - white.mean(axis=0)
    variances = np.linalg.eigvalsh(white.T @ white / len(white))[::-1]
    captured = np.sum((white @ components) ** 2, axis=0) / len(white)
    np.testing.assert_allclose(captured, variances[:COMPONENTS], rtol=1e-3)  # the largest, in order


def train(framework, data, results, **flags):
    trainer, _ = TRAINERS[framework]
    return trainer.train(**{**dict(hidden_dims=[16], lr=0.01, batch_size=20, epochs=2, seed=3,
                                   use_batch_norm=True, normalize="zca", zca_epsilon=1.0,
                                   projection=COMPONENTS, augment="crop+flip", tta="flip",
                                   optimizer="adam", validation_size=60, data_url="",
                                   data_dir=str(data), results_dir=str(results)),
                            **flags, **SETTINGS[framework]})


@pytest.fixture(scope="module")
def projected_runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("projected")
    synthetic_cifar.write_dataset(root / "data", brightness=15, label_noise=0.2)
    return root / "data", {framework: train(framework, root / "data", root / framework)
                           for framework in TRAINERS}


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_projected_model_evaluates_with_no_flags(framework, projected_runs, capsys):
    data, runs = projected_runs
    model, _, test_accuracy, log = runs[framework]
    path = os.path.join(log["run_dir"], TRAINERS[framework][1])
    TRAINERS[framework][0].evaluate_saved(path, set(), data_dir=str(data), data_url="",
                                          **SETTINGS[framework])
    assert f"test accuracy {test_accuracy:.4f}" in capsys.readouterr().out
    record = json.loads(open(os.path.join(log["run_dir"], "metrics.json")).read())["config"]
    assert record["projection"] == COMPONENTS
    assert model.input_filters().shape == (16, 3072)  # weights.png shows them as images


def test_both_trainers_project_onto_the_same_fitted_components(projected_runs):
    data, runs = projected_runs
    numpy_model, torch_model = runs["numpy"][0], runs["pytorch"][0]
    fitted = Preprocessing.fit("zca", cifar10_utils.get_cifar10(str(data), 60)["train"].images,
                               1.0).principal_components(COMPONENTS)
    np.testing.assert_array_equal(numpy_model.layers[0].components, fitted)
    np.testing.assert_array_equal(torch_model.layers[0].components.numpy(), fitted)


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_record_from_before_the_projection_still_evaluates(framework, projected_runs, tmp_path,
                                                             capsys):
    """A model saved before --projection existed records no projection: it had none."""
    data, _ = projected_runs
    *_, test_accuracy, log = train(framework, data, tmp_path / "plain", projection=0,
                                   normalize="channel", epochs=1)
    path = os.path.join(log["run_dir"], TRAINERS[framework][1])
    old = edited_copy(framework, path, tmp_path / TRAINERS[framework][1], {},
                      removed=["projection"])
    TRAINERS[framework][0].evaluate_saved(str(old), set(), data_dir=str(data), data_url="",
                                          **SETTINGS[framework])
    assert f"test accuracy {test_accuracy:.4f}" in capsys.readouterr().out


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_record_whose_projection_does_not_fit_its_weights_is_refused(framework, projected_runs,
                                                                       tmp_path):
    data, runs = projected_runs
    path = os.path.join(runs[framework][3]["run_dir"], TRAINERS[framework][1])
    edited = edited_copy(framework, path, tmp_path / TRAINERS[framework][1],
                         {"projection": COMPONENTS + 1})
    with pytest.raises(UserError, match="holds .* but the model these flags build has"):
        TRAINERS[framework][0].evaluate_saved(str(edited), set(), data_dir=str(data),
                                              data_url="", **SETTINGS[framework])


@pytest.mark.parametrize("flags, message", [
    (["--projection", 64], "--projection 64 projects onto the principal components that ZCA "
                           "whitening fits: add --normalize zca"),
    (["--projection", 4000, "--normalize", "zca"], "--projection 4000 asks for more principal "
                                                   "components than the 3072 pixel values"),
])
@pytest.mark.parametrize("script", ["train_mlp_numpy.py", "train_mlp_pytorch.py"])
def test_a_projection_that_cannot_be_made_is_one_clear_line(script, flags, message, tmp_path):
    code, _, stderr = run_script(script, *flags, "--data_dir", tmp_path, "--data_url", "",
                                 "--results_dir", tmp_path / "r")
    assert code == 1
    assert_one_clear_line(stderr, message)
    assert not (tmp_path / "r").exists()
