"""--distill: the teacher made of the run's own snapshots, its targets, and both trainers training
on them from the first snapshot on."""
import numpy as np
import pytest
import torch
from helpers import TRAINERS, train

from dataset.loaders import DataLoader
from dataset.splits import Split
from training.distillation import Teacher, snapshot_epochs


@pytest.mark.parametrize("epochs, snapshots", [(150, [75, 90, 105, 120, 135]), (36, [18, 21, 24,
                                               27, 30, 33]), (5, [2, 3, 4]), (2, [1]), (1, [])])
def test_snapshots_come_after_the_middle_epoch_and_every_tenth_of_the_run_before_the_last(
        epochs, snapshots):
    assert snapshot_epochs(epochs) == snapshots


def teacher_of(weight, epochs, images=6):
    split = Split(np.arange(images * 3 * 32 * 32).reshape(images, 3, 32, 32) % 256,
                  np.arange(images) % 3)
    return Teacher(weight, epochs, DataLoader(split, 4, shuffle=True, seed=0))


def test_the_teacher_predicts_the_training_images_in_order_unaugmented_after_its_epochs():
    teacher, seen = teacher_of(0.3, 10), []

    def predict(loader):
        images = np.concatenate([batch for batch, _ in loader])
        seen.append(images)
        return np.full((len(images), 3), 1 / 3)

    for epoch in range(1, 11):
        teacher.teach(epoch, predict)
    assert len(seen) == len(snapshot_epochs(10)) == teacher.snapshots
    np.testing.assert_array_equal(seen[0], teacher.images.split.images)


def test_targets_blend_the_label_and_the_mean_of_the_snapshots():
    teacher = teacher_of(0.4, 4)
    labels, rows = np.array([0, 2]), np.array([5, 1])
    np.testing.assert_array_equal(teacher.targets(labels, rows), labels)  # no snapshot yet
    first, second = np.random.default_rng(0).dirichlet(np.ones(3), (2, 6))
    teacher.teach(2, lambda loader: first)
    teacher.teach(3, lambda loader: second)
    expected = 0.4 * (first[rows] + second[rows]) / 2 + 0.6 * np.eye(3)[labels]
    targets = teacher.targets(labels, rows)
    assert targets.dtype == np.float32
    np.testing.assert_allclose(targets, expected, rtol=1e-6)
    on_torch = teacher.targets(torch.from_numpy(labels), torch.from_numpy(rows))
    np.testing.assert_array_equal(on_torch.numpy(), targets)


def test_the_label_keeps_the_largest_share_of_its_target_whatever_the_teacher_says():
    """Even a teacher sure of a wrong class leaves the label the target's argmax, against which a
    step's predictions are counted correct."""
    teacher = teacher_of(0.45, 2)
    wrong = np.eye(3)[(np.arange(6) % 3 + 1) % 3]
    teacher.teach(1, lambda loader: wrong)
    labels = np.arange(6) % 3
    assert (teacher.targets(labels, np.arange(6)).argmax(axis=1) == labels).all()


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_run_trains_on_the_teachers_targets_from_its_first_snapshot_on(framework,
                                                                        hard_cifar_dir, tmp_path):
    """Epochs 1 and 2 (the first snapshot's) are the run without a teacher, to the bit; epoch 3
    is not."""
    root, _ = hard_cifar_dir
    flags = dict(epochs=4, hidden_dims=[32], optimizer="adam", lr=1e-2, mixup=0.2)
    *_, plain = train(framework, root, tmp_path / "plain", **flags)
    *_, taught = train(framework, root, tmp_path / "taught", distill=0.4, **flags)
    steps = len(plain["train_loss_steps"]) // 4
    assert taught["train_loss_steps"][:2 * steps] == plain["train_loss_steps"][:2 * steps]
    assert taught["train_loss_steps"][2 * steps] != plain["train_loss_steps"][2 * steps]
    assert taught["train_accuracy"][:2] == plain["train_accuracy"][:2]
