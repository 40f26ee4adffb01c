"""Input preprocessing (per channel, per pixel, ZCA), one-cycle, and test-time mirror averaging:
fitted on the training split only, applied alike everywhere, saved with the model."""
import json

import numpy as np
import pytest
import torch
from helpers import run_script

import cifar10_utils
import train_mlp_numpy
import train_mlp_pytorch
from cifar10_utils import Split, get_cifar10
from mlp_numpy import MLP as NumpyMLP
from training import preprocessing
from training.options import PRESETS
from training.preprocessing import Preprocessing
from training.schedules import lr_factor


def mirrored_images(count, seed):
    """count random images and their mirrors, so that plain statistics are already symmetric."""
    images = np.random.default_rng(seed).integers(0, 256, (count, 3, 32, 32), dtype=np.uint8)
    return np.concatenate([images, images[..., ::-1]])


def test_zca_whitens_the_training_split_up_to_epsilon():
    images = mirrored_images(2000, 0)  # 4,000 images for 3,072 dimensions: full rank
    epsilon = 1e-5
    zca = Preprocessing.fit("zca", images, zca_epsilon=epsilon)
    white = zca(images).reshape(len(images), -1).astype(np.float64)
    np.testing.assert_allclose(white.mean(axis=0), 0, atol=1e-4)
    covariance = white.T @ white / len(white)
    # eigenvalues λ of the pixel covariance become λ / (λ + ε): 1 up to epsilon's share
    np.testing.assert_allclose(covariance, np.eye(3072), atol=0.03)
    assert abs(np.mean(np.diag(covariance)) - 1) < 0.01


@pytest.mark.parametrize("normalize", ["pixel", "zca"])
def test_preprocessing_commutes_with_flips_and_is_the_same_in_torch(normalize):
    images = np.random.default_rng(1).integers(0, 256, (300, 3, 32, 32), dtype=np.uint8)
    fitted = Preprocessing.fit(normalize, images, zca_epsilon=0.1)
    out = fitted(images[:20])
    assert out.dtype == np.float32 and out.shape == (20, 3, 32, 32)
    np.testing.assert_allclose(fitted(images[:20, ..., ::-1]), out[..., ::-1], atol=2e-4)
    np.testing.assert_allclose(fitted(torch.from_numpy(images[:20])).numpy(), out, atol=2e-4)


def test_pixel_standardization_uses_each_pixels_training_statistics():
    images = mirrored_images(500, 2)
    images[:, 0, 3, 5] = images[:, 0, 3, 26] = 7  # a constant pixel and its mirror: std 0
    out = Preprocessing.fit("pixel", images)(images).reshape(len(images), -1)
    varying = out.std(axis=0) > 0
    np.testing.assert_allclose(out.mean(axis=0), 0, atol=1e-4)
    np.testing.assert_allclose(out.std(axis=0)[varying], 1, atol=1e-3)
    assert np.all(np.isfinite(out))


def test_statistics_come_from_the_training_split_and_apply_alike_to_all(cifar_dir):
    data = get_cifar10(cifar_dir[0], 30, url="")
    fitted = Preprocessing.fit("zca", data["train"].images, zca_epsilon=0.1)
    train = data["train"].images.reshape(len(data["train"]), -1).astype(np.float64)
    mean = (train.mean(axis=0) + train[:, preprocessing.mirror_permutation()].mean(axis=0)) / 2
    np.testing.assert_allclose(fitted.arrays["shift"], -mean / 255, atol=1e-6)  # train's alone
    loaders = cifar10_utils.make_loaders(data, fitted)
    for key in ("validation", "test"):
        batches = np.concatenate([images for images, _ in loaders[key]])
        np.testing.assert_allclose(batches, fitted(data[key].images), atol=1e-5)


def test_channel_preprocessing_is_the_course_normalization(cifar_dir):
    data = get_cifar10(cifar_dir[0], 30, url="")
    fitted = Preprocessing.fit("channel", data["train"].images)
    assert fitted.fitted_arrays == {}  # nothing to save: the course's fixed numbers
    np.testing.assert_array_equal(fitted(data["test"].images),
                                  cifar10_utils.normalize(data["test"].images))


def test_one_cycle_rises_to_the_peak_then_falls_to_zero():
    factors = [lr_factor(step, 100, 0, "onecycle") for step in range(100)]
    assert factors[0] == pytest.approx(1 / 25)
    assert max(factors) == pytest.approx(1.0) and int(np.argmax(factors)) == 30
    assert all(a <= b for a, b in zip(factors[:30], factors[1:31]))
    assert all(a >= b for a, b in zip(factors[30:], factors[31:]))
    assert factors[-1] < 0.001


def test_mirror_averaging_is_the_mean_of_both_predictions():
    images = np.random.default_rng(3).standard_normal((12, 3, 32, 32)).astype(np.float32)
    labels = np.zeros(12, np.int64)
    loader = cifar10_utils.DataLoader(Split(images, labels), 5, preprocess=None)
    np.random.seed(0)
    model = NumpyMLP(3072, [8], 10, dtype=np.float32)
    plain, _ = train_mlp_numpy.predict(model, loader)
    mirrored = model.forward(images[..., ::-1].reshape(12, -1))
    averaged, _ = train_mlp_numpy.predict(model, loader, tta="flip")
    np.testing.assert_allclose(averaged, (plain + mirrored) / 2, rtol=1e-6)
    torch_loader = cifar10_utils.DataLoader(Split(torch.from_numpy(images),
                                                  torch.from_numpy(labels)), 5, preprocess=None)
    torch.manual_seed(0)
    torch_model = train_mlp_pytorch.MLP(3072, [8], 10)
    plain, _ = train_mlp_pytorch.predict(torch_model, torch_loader)
    with torch.no_grad():
        mirrored = torch.softmax(torch_model(torch.from_numpy(images).flip(-1)), dim=1).numpy()
    averaged, _ = train_mlp_pytorch.predict(torch_model, torch_loader, tta="flip")
    np.testing.assert_allclose(averaged, (plain + mirrored) / 2, rtol=1e-5)


@pytest.mark.parametrize("script, weights", [("train_mlp_numpy.py", "model.npz"),
                                             ("train_mlp_pytorch.py", "model.pt")])
def test_saved_preprocessing_lets_evaluate_reproduce_the_accuracy(script, weights, cifar_dir,
                                                                  tmp_path):
    common = ["--validation_size", 30, "--data_dir", cifar_dir[0], "--data_url", ""]
    code, _, stderr = run_script(script, "--normalize", "zca", "--zca_epsilon", 0.05, "--tta",
                                 "flip", "--hidden_dims", 16, "--batch_size", 16, "--epochs", 2,
                                 "--results_dir", tmp_path / "r", *common)
    assert code == 0, stderr
    (folder,) = (tmp_path / "r").iterdir()
    test_accuracy = json.loads((folder / "metrics.json").read_text())["test_accuracy"]
    code, stdout, stderr = run_script(script, "--evaluate", folder / weights, *common)
    assert code == 0, stderr
    assert f"test accuracy {test_accuracy:.4f}" in stdout
    code, _, stderr = run_script(script, "--evaluate", folder / weights, "--normalize", "pixel",
                                 *common)
    assert code == 1 and "--normalize pixel (the model: --normalize zca)" in stderr


@pytest.mark.parametrize("preset", sorted(PRESETS))
@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
def test_every_preset_option_works_in_both_trainers(trainer, preset, hard_cifar_dir, tmp_path):
    """Each preset's recipe as it is, on a small model for a few epochs: ten, as the projected
    recipe stays near chance for 3 epochs (30 steps of 170 images: 0.03 to 0.2 validation)."""
    kwargs = dict(PRESETS[preset], hidden_dims=[16, 8], batch_size=16, epochs=10, seed=0,
                  data_dir=str(hard_cifar_dir[0]), validation_size=30, data_url="",
                  results_dir=str(tmp_path))
    if trainer is train_mlp_pytorch:
        kwargs["device"] = "cpu"
    _, val, _, log = trainer.train(**kwargs)
    assert log["train_loss"][-1] < log["train_loss"][0] and max(val) > 0.2  # chance: 0.1


def test_normalization_uses_the_course_mean_and_std_per_channel():
    """Each channel by its own numbers, written out here as the course gives them."""
    image = np.empty((1, 3, 32, 32), np.uint8)
    image[0, 0], image[0, 1], image[0, 2] = 255, 0, 128
    out = cifar10_utils.normalize(image)
    expected = [(1.0 - 0.491) / 0.247, (0.0 - 0.482) / 0.243, (128 / 255 - 0.447) / 0.262]
    for channel, value in enumerate(expected):
        np.testing.assert_allclose(out[0, channel], value, rtol=1e-6)


def test_torch_normalization_equals_numpy_normalization():
    images = np.random.default_rng(0).integers(0, 256, (5, 3, 32, 32), dtype=np.uint8)
    ours = cifar10_utils.normalize(images)
    theirs = cifar10_utils.normalize(torch.from_numpy(images))
    assert theirs.dtype == torch.float32 and theirs.shape == (5, 3, 32, 32)
    np.testing.assert_allclose(theirs.numpy(), ours, rtol=1e-6, atol=1e-6)
