"""How the trainers are wired, tested through what each wire decides: what the preprocessing is
fitted on, what the evaluation loaders see, which weights are tested, the warm-up's unit, ZCA's
epsilon, the crops' reach, the search's rule and what the figures of a model show."""
import os
from functools import partial

import numpy as np
import pytest

import cifar10_utils
import train_mlp_numpy
import train_mlp_pytorch
from training import inspect_model
from training.preprocessing import Preprocessing, mirror_permutation, random_crop_flip

TRAINERS = {"numpy": (train_mlp_numpy, "model.npz"), "pytorch": (train_mlp_pytorch, "model.pt")}


def train(framework, root, results, **flags):
    trainer, _ = TRAINERS[framework]
    settings = dict(hidden_dims=[16], lr=0.05, batch_size=16, epochs=2, seed=0,
                    data_dir=str(root), validation_size=30, data_url="", results_dir=str(results))
    if framework == "pytorch":
        settings.update(use_batch_norm=False, device="cpu")
    return trainer.train(**{**settings, **flags})


def saved(framework, log):
    """(model, record, Preprocessing) of the run's saved model, read as --evaluate reads it."""
    trainer, name = TRAINERS[framework]
    path = os.path.join(log["run_dir"], name)
    state, record, arrays = (trainer.read_weights(path) if framework == "numpy"
                             else trainer.read_weights(path, "cpu"))
    model = (trainer.build_model(record) if framework == "numpy"
             else trainer.build_model(record, "cpu"))
    model.load_state_dict(state)
    return model, record, Preprocessing.load(record["normalize"], arrays)


@pytest.mark.parametrize("framework", TRAINERS)
def test_the_preprocessing_is_fitted_on_the_training_split_alone(framework, cifar_dir, tmp_path):
    root, _ = cifar_dir
    *_, log = train(framework, root, tmp_path / "r", normalize="pixel", epochs=1)
    _, _, kept = saved(framework, log)
    dataset = cifar10_utils.get_cifar10(str(root), 30, url="")
    on_train = Preprocessing.fit("pixel", dataset["train"].images).arrays
    both = np.concatenate([dataset["train"].images, dataset["validation"].images])
    on_both = Preprocessing.fit("pixel", both).arrays
    assert not np.allclose(on_both["shift"], on_train["shift"])  # the test can tell them apart
    for name in ("scale", "shift"):
        np.testing.assert_array_equal(kept.arrays[name], on_train[name])


@pytest.mark.parametrize("framework", TRAINERS)
def test_validation_and_test_see_plain_images_and_the_best_epoch_is_tested(
        framework, cifar_dir, tmp_path):
    """Augmented evaluation, or the last epoch's weights tested, would make the recorded numbers
    differ from those of the saved (best) model measured on plain images."""
    root, _ = cifar_dir
    *_, log = train(framework, root, tmp_path / "r", augment="crop+flip", epochs=6)
    assert log["best_epoch"] < 6, "this test needs a run whose best epoch is not its last"
    model, record, preprocessing = saved(framework, log)
    dataset = cifar10_utils.get_cifar10(str(root), 30, url="")
    move = None if framework == "numpy" else partial(train_mlp_pytorch.to_device, device="cpu")
    loaders = cifar10_utils.make_loaders(dataset, preprocessing, move=move)
    trainer, _ = TRAINERS[framework]
    assert trainer.evaluate_model(model, loaders["validation"]) == \
        log["val_accuracy"][log["best_epoch"] - 1]
    assert trainer.evaluate_model(model, loaders["test"]) == log["test_accuracy"]


class RecordingRates:
    """Stands in for an optimizer's step: records the learning rate each step was taken with."""

    OWN = ("optimizer", "read_rate", "rates")

    def __init__(self, optimizer, read_rate):
        self.optimizer, self.read_rate, self.rates = optimizer, read_rate, []

    def __getattr__(self, name):
        return getattr(self.optimizer, name)

    def __setattr__(self, name, value):  # the NumPy loop sets optimizer.lr
        if name in self.OWN:
            object.__setattr__(self, name, value)
        else:
            setattr(self.optimizer, name, value)

    def step(self):
        self.rates.append(self.read_rate(self.optimizer))
        self.optimizer.step()


@pytest.mark.parametrize("framework", TRAINERS)
def test_warmup_is_counted_in_epochs(framework, cifar_dir, tmp_path, monkeypatch):
    trainer, _ = TRAINERS[framework]
    recorders = []
    make = trainer.make_optimizer
    read_rate = ((lambda optimizer: optimizer.lr) if framework == "numpy"
                 else (lambda optimizer: optimizer.param_groups[0]["lr"]))

    def recording(*args, **kwargs):
        recorders.append(RecordingRates(make(*args, **kwargs), read_rate))
        return recorders[-1]

    monkeypatch.setattr(trainer, "make_optimizer", recording)
    train(framework, cifar_dir[0], tmp_path / "r", warmup=2.0, epochs=3, lr=0.08)
    steps_per_epoch = (200 - 30) // 16
    warmup = 2 * steps_per_epoch
    expected = [0.08 * (step + 1) / warmup for step in range(warmup)] + [0.08] * steps_per_epoch
    np.testing.assert_allclose(recorders[0].rates, expected, rtol=1e-6)


def covariance_of_mirrored(images):
    """The covariance of pixels scaled to [0, 1] over the images and their mirrors, float64."""
    flat = images.reshape(len(images), -1) / 255.0
    both = np.concatenate([flat, flat[:, mirror_permutation(images.shape[1:])]])
    centered = both - both.mean(axis=0)
    return centered.T @ centered / len(both)


@pytest.mark.parametrize("epsilon", [0.01, 0.1])
def test_zca_adds_epsilon_to_the_eigenvalues_before_the_square_root(epsilon):
    """W = U (Λ + εI)^(-1/2) Uᵀ; at an epsilon near the eigenvalues, sqrt(λ) + ε is far off."""
    images = np.random.default_rng(0).integers(0, 256, (400, 3, 4, 4), dtype=np.uint8)
    eigenvalues, eigenvectors = np.linalg.eigh(covariance_of_mirrored(images))
    assert eigenvalues.max() > epsilon / 10  # epsilon matters here
    expected = (eigenvectors / np.sqrt(eigenvalues + epsilon)) @ eigenvectors.T
    whitening = Preprocessing.fit("zca", images, epsilon).arrays["whitening"]
    np.testing.assert_allclose(whitening, expected, rtol=1e-4, atol=1e-4)


def test_random_crops_reach_every_offset_from_0_to_twice_the_padding():
    padding, size = 2, 6
    images = np.arange(1, 1 + 2 * size * size, dtype=np.uint8).reshape(2, 1, size, size)
    images = np.repeat(images, 100, axis=0)
    crops = random_crop_flip(images, np.random.default_rng(0), padding=padding)
    seen = set()
    for image, crop in zip(images, crops):
        padded = np.pad(image, [(0, 0), (padding, padding), (padding, padding)])
        for top in range(2 * padding + 1):
            for left in range(2 * padding + 1):
                window = padded[:, top:top + size, left:left + size]
                if np.array_equal(crop, window) or np.array_equal(crop, window[..., ::-1]):
                    seen.add((top, left))
    offsets = range(2 * padding + 1)
    assert {top for top, _ in seen} == set(offsets) and {left for _, left in seen} == set(offsets)


def test_the_mistakes_shown_are_the_most_confident_ones():
    labels = np.array([0, 0, 1, 1, 2])
    probabilities = np.array([[0.2, 0.8, 0.0],    # wrong, p 0.8
                              [0.9, 0.1, 0.0],    # right
                              [0.6, 0.4, 0.0],    # wrong, p 0.6
                              [0.0, 0.05, 0.95],  # wrong, p 0.95
                              [0.1, 0.0, 0.9]])   # right
    indices, mistakes = inspect_model.most_confident_mistakes(labels, probabilities, count=2)
    assert list(indices) == [3, 0] and mistakes == 3


def test_the_per_class_table_lists_the_worst_class_first():
    confusion = np.array([[9, 1, 0], [5, 5, 0], [0, 0, 10]])
    lines = inspect_model.per_class_table(confusion, ["cat", "dog", "ship"]).splitlines()
    assert [line.split()[0] for line in lines[1:4]] == ["dog", "cat", "ship"]
    assert lines[4].split()[:2] == ["all", "0.8000"]
