"""Mixup and the moving average of the weights: the blends, their loss and gradient (NumPy
against autograd), the average's rule, and what each does to a run of either trainer."""
import numpy as np
import pytest
import torch
from test_pytorch import assert_agree, rel_error, torch_name, twin_models
from torch import nn

import cifar10_utils
import train_mlp_numpy
import train_mlp_pytorch
from cifar10_utils import get_cifar10
from modules import CrossEntropyModule
from training.preprocessing import Mixup
from training.schedules import WeightAverage


def test_mixup_blends_each_image_with_one_partner_of_its_batch():
    batch = 12
    images, labels = np.eye(batch), np.arange(batch) * 10  # row i is image i: blends show
    mixed, same_labels, partners, weight = Mixup(0.4, seed=5)(images, labels)
    assert 0 < weight < 1 and same_labels is labels
    partner_of = partners // 10
    assert sorted(partner_of) == list(range(batch))  # a permutation of the batch
    assert not np.array_equal(partner_of, np.arange(batch))
    expected = weight * images + (1 - weight) * images[partner_of]
    np.testing.assert_allclose(mixed, expected, atol=1e-15)
    np.testing.assert_allclose(mixed.sum(axis=1), 1)


def test_mixup_draws_the_same_blends_for_numpy_and_torch_and_off_is_identity():
    images = np.random.default_rng(0).normal(size=(8, 3, 4, 4)).astype(np.float32)
    labels = np.arange(8)
    numpy_mixup, torch_mixup = Mixup(1.0, seed=3), Mixup(1.0, seed=3)
    for _ in range(3):  # the generators stay in step batch after batch
        a = numpy_mixup(images, labels)
        b = torch_mixup(torch.from_numpy(images), torch.from_numpy(labels))
        np.testing.assert_allclose(a[0], b[0].numpy(), rtol=1e-6)
        np.testing.assert_array_equal(a[2], b[2].numpy())
        assert a[3] == b[3]
    assert Mixup(1.0, seed=4)(images, labels)[3] != Mixup(1.0, seed=3)(images, labels)[3]
    off = Mixup(0.0, seed=3)(images, labels)
    assert off[0] is images and off[2] is labels and off[3] == 1.0


@pytest.mark.parametrize("use_batch_norm", [False, True])
def test_numpy_mixup_loss_and_gradients_match_autograd(use_batch_norm):
    numpy_model, torch_model = twin_models(6, [5], 4, "gelu", 0, use_batch_norm)
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(9, 6)), rng.integers(0, 4, 9)
    x, y, partners, weight = Mixup(0.5, seed=0)(x, y)
    assert 0 < weight < 1 and not np.array_equal(y, partners)

    loss, logits_grad = train_mlp_numpy.mixed_loss(CrossEntropyModule(label_smoothing=0.1),
                                                   numpy_model.forward(x), y, partners, weight)
    numpy_model.backward_logits(logits_grad)
    expected = train_mlp_pytorch.mixed_loss(nn.CrossEntropyLoss(label_smoothing=0.1),
                                            torch_model(torch.from_numpy(x)),
                                            torch.from_numpy(y), torch.from_numpy(partners),
                                            weight)
    expected.backward()
    assert rel_error(loss, expected.item()) < 1e-10
    torch_params = dict(torch_model.named_parameters())
    for name, _, grad in numpy_model.parameters():
        assert_agree(grad, torch_params[torch_name(name)].grad.numpy(), 1e-10, name)


def test_weight_average_follows_its_rule_in_numpy_and_torch():
    states = [{"w": np.full(3, float(t)), "b": np.array([t * t], float)} for t in range(1, 200)]
    decay = 0.9
    numpy_average = WeightAverage(decay, {k: v.copy() for k, v in states[0].items()})
    torch_average = WeightAverage(decay, {k: torch.from_numpy(v.copy())
                                          for k, v in states[0].items()})
    expected = {k: v.copy() for k, v in states[0].items()}
    for t, state in enumerate(states[1:], start=1):
        numpy_average.update(state)
        torch_average.update({k: torch.from_numpy(v) for k, v in state.items()})
        d = min(decay, (1 + t) / (10 + t))
        expected = {k: d * expected[k] + (1 - d) * state[k] for k in state}
    for key in expected:
        np.testing.assert_allclose(numpy_average.average[key], expected[key], rtol=1e-12)
        np.testing.assert_allclose(torch_average.average[key].numpy(), expected[key], rtol=1e-12)
    # once the decay is reached, an average of weights growing by 1 a step trails them by
    # d / (1 - d) = 9 steps
    assert 8.9 < states[-1]["w"][0] - numpy_average.average["w"][0] < 9.1
    assert states[0]["w"][0] == 1.0  # the states given to update were left alone


def tiny_run(framework, root, results, **options):
    kwargs = dict(hidden_dims=[16], lr=0.05, batch_size=16, epochs=1, seed=7, data_dir=str(root),
                  validation_size=30, data_url="", results_dir=str(results),
                  use_batch_norm=True, **options)
    if framework == "numpy":
        return train_mlp_numpy.train(**kwargs)
    return train_mlp_pytorch.train(device="cpu", **kwargs)


def as_numpy(state):
    """Copies of a state's floating-point arrays, NumPy's or torch's, as NumPy arrays."""
    return {key: value.numpy().copy() if torch.is_tensor(value) else value.copy()
            for key, value in state.items()
            if not torch.is_tensor(value) or value.is_floating_point()}


class RecordingAverage(WeightAverage):
    """A WeightAverage that keeps copies of where it started and of every state it was given."""
    runs = []

    def __init__(self, decay, state):
        super().__init__(decay, state)
        self.start, self.seen = as_numpy(state), []
        RecordingAverage.runs.append(self)

    def update(self, state):
        self.seen.append(as_numpy(state))
        super().update(state)


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_ema_keeps_and_tests_the_average_without_changing_training(framework, hard_cifar_dir,
                                                                   tmp_path, monkeypatch):
    root = hard_cifar_dir[0]
    plain = tiny_run(framework, root, tmp_path / "plain")
    trainer = train_mlp_numpy if framework == "numpy" else train_mlp_pytorch
    monkeypatch.setattr(trainer, "WeightAverage", RecordingAverage)
    RecordingAverage.runs.clear()
    model, _, test_accuracy, log = tiny_run(framework, root, tmp_path / "ema", ema=0.9)
    # the same steps are taken; only what is validated, kept and tested differs
    assert log["train_loss_steps"] == plain[3]["train_loss_steps"]
    (recorded,) = RecordingAverage.runs
    assert len(recorded.seen) == len(log["train_loss_steps"])  # updated after every step
    expected = WeightAverage(0.9, recorded.start)
    for state in recorded.seen:
        expected.update(state)
    kept = as_numpy(model.state_dict())
    assert kept.keys() == expected.average.keys()
    for key, value in expected.average.items():  # one epoch: the kept model is its average
        np.testing.assert_allclose(kept[key], value, rtol=1e-6, atol=1e-7, err_msg=key)
        assert not np.array_equal(kept[key], as_numpy(plain[0].state_dict())[key]), key
    test = get_cifar10(root, 30, url="")["test"]
    if framework == "pytorch":
        test = train_mlp_pytorch.to_device(test, "cpu")
    assert trainer.evaluate_model(model, cifar10_utils.DataLoader(test, 16)) == test_accuracy
    assert "ema0.9" in log["run_dir"]


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_mixup_changes_the_steps_and_the_same_seed_repeats_them(framework, cifar_dir, tmp_path):
    root = cifar_dir[0]
    plain = tiny_run(framework, root, tmp_path / "plain")
    mixed = tiny_run(framework, root, tmp_path / "a", mixup=0.4)
    again = tiny_run(framework, root, tmp_path / "b", mixup=0.4)
    assert mixed[3]["train_loss_steps"] == again[3]["train_loss_steps"]
    assert mixed[3]["train_loss_steps"] != plain[3]["train_loss_steps"]
    assert all(np.isfinite(mixed[3]["train_loss_steps"]))
    assert "mixup0.4" in mixed[3]["run_dir"]
