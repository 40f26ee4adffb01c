"""The learning-rate schedules and the moving average of the weights (training/schedules.py): their
rules, and what the average does to a run of either trainer."""
import numpy as np
import pytest
import torch
from helpers import TRAINERS, RecordingAverage, as_numpy, train, train_projected

from cifar10_utils import get_cifar10
from dataset.loaders import DataLoader
from training import backend_numpy, backend_torch
from training.preprocessing import normalize
from training.schedules import WeightAverage, lr_factor


def test_learning_rate_schedule():
    factor = lr_factor
    assert [factor(s, 100, 4, "none") for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert factor(4, 100, 4, "cosine") == 1.0
    assert factor(52, 100, 4, "cosine") == pytest.approx(0.5)
    assert factor(99, 100, 4, "cosine") < 0.01


def test_one_cycle_rises_to_the_peak_then_falls_to_zero():
    factors = [lr_factor(step, 100, 0, "onecycle") for step in range(100)]
    assert factors[0] == pytest.approx(1 / 25)
    assert max(factors) == pytest.approx(1.0) and int(np.argmax(factors)) == 30
    assert all(a <= b for a, b in zip(factors[:30], factors[1:31]))
    assert all(a >= b for a, b in zip(factors[30:], factors[31:]))
    assert factors[-1] < 0.001


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


EMA_RUN = dict(seed=7, use_batch_norm=True)  # BatchNorm: its running statistics are averaged too


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_ema_keeps_and_tests_the_average_without_changing_training(framework, hard_cifar_dir,
                                                                   tmp_path, monkeypatch):
    root = hard_cifar_dir[0]
    plain = train(framework, root, tmp_path / "plain", **EMA_RUN)
    backend = backend_numpy if framework == "numpy" else backend_torch
    monkeypatch.setattr(backend, "WeightAverage", RecordingAverage)
    RecordingAverage.runs.clear()
    model, _, test_accuracy, log = train(framework, root, tmp_path / "ema", ema=0.9, **EMA_RUN)
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
        test = backend_torch.to_device(test, "cpu")
    trainer, _ = TRAINERS[framework]
    loader = DataLoader(test, 16, preprocess=normalize)
    assert trainer.evaluate_model(model, loader) == test_accuracy
    assert "ema0.9" in log["run_dir"]


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_ema_averages_what_training_changes_and_keeps_the_projection_as_fitted(
        framework, hard_cifar_dir, tmp_path):
    """A projection's components are fixed: averaging them step after step would round them
    away from what ZCA fitted. The kept model holds them bit for bit as the plain run does."""
    root = hard_cifar_dir[0]
    plain, *_ = train_projected(framework, root, tmp_path / "plain")
    model, *_ = train_projected(framework, root, tmp_path / "ema", ema=0.5)
    averaged, kept = as_numpy(model.state_dict()), as_numpy(plain.state_dict())
    assert np.array_equal(averaged["layers.0.components"], kept["layers.0.components"])
    moved = [key for key in kept if not np.array_equal(averaged[key], kept[key])]
    assert moved and "layers.0.components" not in moved
