"""What each step of either trainer's loop applies, seen from outside the loop: the optimizer made
with the run's own momentum and weight decay, the learning rate its schedule and warm-up give each
step, the loss of a mixup batch weighed towards the labels its images weigh more, the loss logged
with label smoothing, and a moving average updated with the weights each step leaves."""
import json

import numpy as np
import pytest
import torch
from helpers import TRAINERS, RecordingAverage, as_numpy, train

from training import backend_numpy, backend_torch, run
from training.preprocessing import Mixup
from safety.errors import UserError
from training.schedules import lr_factor

STEPS_PER_EPOCH = (200 - 30) // 16  # a tiny run's: 170 training images in batches of 16


class RecordingOptimizer:
    """Stands in for the optimizer a trainer makes: records the learning rate each step was taken
    with and the weights (and running statistics) each step left."""

    OWN = ("framework", "model", "optimizer", "rates", "states")

    def __init__(self, framework, model, optimizer):
        for name, value in zip(self.OWN, (framework, model, optimizer, [], [])):
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        return getattr(self.optimizer, name)

    def __setattr__(self, name, value):  # the NumPy loop sets optimizer.lr
        setattr(self.optimizer, name, value)

    def step(self):
        numpy = self.framework == "numpy"
        self.rates.append(self.optimizer.lr if numpy else self.optimizer.param_groups[0]["lr"])
        self.optimizer.step()
        self.states.append(as_numpy(backend_numpy.trained_state(self.model) if numpy
                                    else self.model.state_dict()))


def recorded_optimizers(monkeypatch, framework):
    """The RecordingOptimizers the trainer makes from now on, in a list that fills as it does."""
    trainer, _ = TRAINERS[framework]
    make, made = trainer.make_optimizer, []

    def recording(model, *args, **kwargs):
        made.append(RecordingOptimizer(framework, model, make(model, *args, **kwargs)))
        return made[-1]

    monkeypatch.setattr(trainer, "make_optimizer", recording)
    return made


@pytest.mark.parametrize("framework", TRAINERS)
def test_the_optimizer_is_made_with_the_runs_momentum_and_weight_decay(framework, cifar_dir,
                                                                       tmp_path, monkeypatch):
    made = recorded_optimizers(monkeypatch, framework)
    train(framework, cifar_dir[0], tmp_path / "r", momentum=0.9, weight_decay=0.01, lr=0.01)
    (optimizer,) = made
    settings = optimizer.optimizer if framework == "numpy" else optimizer.param_groups[0]
    read = getattr if framework == "numpy" else dict.get
    assert (read(settings, "momentum"), read(settings, "weight_decay")) == (0.9, 0.01)


@pytest.mark.parametrize("flags, warmup_steps", [
    (dict(warmup=2.0, epochs=3), 2 * STEPS_PER_EPOCH),
    (dict(warmup=0.15, epochs=2), 2),  # 1.5 steps, rounded to the nearest
    (dict(schedule="cosine", epochs=2), 0), (dict(schedule="onecycle", epochs=2), 0)])
@pytest.mark.parametrize("framework", TRAINERS)
def test_each_step_takes_the_rate_its_schedule_and_warmup_give_it(framework, flags,
                                                                  warmup_steps, cifar_dir,
                                                                  tmp_path, monkeypatch):
    made = recorded_optimizers(monkeypatch, framework)
    train(framework, cifar_dir[0], tmp_path / "r", lr=0.08, **flags)
    steps = flags["epochs"] * STEPS_PER_EPOCH
    schedule = flags.get("schedule", "none")
    expected = [0.08 * lr_factor(step, steps, warmup_steps, schedule) for step in range(steps)]
    if schedule == "none":  # the warm-up written out: a straight line up to the rate
        assert expected[:warmup_steps + 1] == pytest.approx(
            [0.08 * (step + 1) / warmup_steps for step in range(warmup_steps)] + [0.08])
    np.testing.assert_allclose(made[0].rates, expected, rtol=1e-6)


def blend_reversed(weight, calls):
    """A Mixup that blends nothing of the images, weight w on their own labels and 1 - w on
    those of the batch in reverse, whose images it returns where w is 0: a w of 1 trains on the
    batch as it is and a w of 0 on the reversed batch, each as a run without mixup would. Each
    call is counted in calls."""
    def blended(self, images, labels):
        calls.append(weight)
        reverse = (lambda x: x[::-1].copy()) if isinstance(images, np.ndarray) else \
            (lambda x: x.flip(0))
        return (images if weight else reverse(images)), reverse(labels), weight
    return blended


@pytest.mark.parametrize("weight", [1.0, 0.0])
@pytest.mark.parametrize("framework", TRAINERS)
def test_a_mixup_step_weighs_each_label_as_its_images_weigh(framework, weight, cifar_dir,
                                                            tmp_path, monkeypatch):
    plain = train(framework, cifar_dir[0], tmp_path / "plain", use_batch_norm=True)
    calls = []
    monkeypatch.setattr(Mixup, "__call__", blend_reversed(weight, calls))
    mixed = train(framework, cifar_dir[0], tmp_path / "mixed", use_batch_norm=True, mixup=0.4)
    assert len(calls) == len(mixed[3]["train_loss_steps"]) == STEPS_PER_EPOCH
    losses = [log["train_loss_steps"] for *_, log in (plain, mixed)]
    if weight:  # the same batches to the bit
        assert losses[0] == losses[1]
    else:  # each batch reversed: BatchNorm's sums add in another order
        np.testing.assert_allclose(losses[1], losses[0], rtol=1e-4)
    assert mixed[3]["train_accuracy"] == plain[3]["train_accuracy"]


@pytest.mark.parametrize("framework", TRAINERS)
def test_the_loss_logged_is_the_smoothed_one_that_training_descends(framework, cifar_dir,
                                                                    tmp_path, monkeypatch):
    """The first step's logged loss against the cross-entropy of that step's outputs with the
    targets mixed with the uniform distribution, T = (1 - e) T + e / C."""
    trainer, _ = TRAINERS[framework]
    outputs, build = [], trainer.build_model

    def recording(*args, **kwargs):
        model = build(*args, **kwargs)
        if framework == "numpy":
            forward = model.forward
            model.forward = lambda x: outputs.append(forward(x)) or outputs[-1]
        else:
            model.register_forward_hook(lambda module, inputs, out: outputs.append(out))
        return model

    labels, record_step = [], run.TrainingRun.record_step
    monkeypatch.setattr(trainer, "build_model", recording)
    monkeypatch.setattr(run.TrainingRun, "record_step", lambda self, loss, predictions, y: (
        labels.append(np.asarray(y)), record_step(self, loss, predictions, y))[1])
    *_, log = train(framework, cifar_dir[0], tmp_path / "r", label_smoothing=0.2)
    first = outputs[0]
    log_p = (np.log(first) if framework == "numpy"
             else torch.log_softmax(first.detach().double(), dim=1).numpy())
    targets = np.full(log_p.shape, 0.2 / 10)
    targets[np.arange(len(labels[0])), labels[0]] += 0.8
    assert log["train_loss_steps"][0] == pytest.approx(-(targets * log_p).sum(axis=1).mean(),
                                                       rel=1e-5)


@pytest.mark.parametrize("framework", TRAINERS)
def test_the_average_takes_the_weights_each_step_leaves(framework, cifar_dir, tmp_path,
                                                        monkeypatch):
    made = recorded_optimizers(monkeypatch, framework)
    backend = backend_numpy if framework == "numpy" else backend_torch
    monkeypatch.setattr(backend, "WeightAverage", RecordingAverage)
    RecordingAverage.runs.clear()
    train(framework, cifar_dir[0], tmp_path / "r", ema=0.9, use_batch_norm=True)
    (average,), (optimizer,) = RecordingAverage.runs, made
    assert len(average.seen) == len(optimizer.states) == STEPS_PER_EPOCH
    for given, left in zip(average.seen, optimizer.states):
        assert given.keys() == left.keys()
        for key in given:
            np.testing.assert_array_equal(given[key], left[key], err_msg=key)


@pytest.mark.parametrize("framework", TRAINERS)
def test_statistics_that_overflow_while_the_loss_stays_finite_end_the_run_as_diverged(
        framework, cifar_dir, tmp_path, monkeypatch):
    """The last step of epoch 2 leaves a BatchNorm running variance infinite, as a huge learning
    rate can: that epoch is neither recorded nor kept, and the saved model is epoch 1's."""
    trainer, model_file = TRAINERS[framework]
    make = trainer.make_optimizer

    def overflowing(model, *args, **kwargs):
        optimizer = make(model, *args, **kwargs)
        step, steps = optimizer.step, []

        def overflow_at_the_end_of_epoch_2():
            step()
            steps.append(1)
            if len(steps) == 2 * STEPS_PER_EPOCH:
                if framework == "numpy":
                    model.layers[1].running_var[0, 0] = np.inf
                else:
                    model.layers[1].running_var[0] = float("inf")
        object.__setattr__(optimizer, "step", overflow_at_the_end_of_epoch_2)
        return optimizer

    monkeypatch.setattr(trainer, "make_optimizer", overflowing)
    with pytest.raises(UserError, match="^layers.1.running_var became infinite or NaN, the loss "
                                        "still finite, in epoch 2: training diverged"):
        train(framework, cifar_dir[0], tmp_path / "r", use_batch_norm=True, epochs=3)
    (folder,) = (tmp_path / "r").iterdir()
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and len(metrics["val_accuracy"]) == 1
    state = (backend_numpy.read_weights(folder / model_file)[0] if framework == "numpy" else
             as_numpy(backend_torch.load_tensors(folder / model_file, "cpu")["state_dict"]))
    assert all(np.isfinite(value).all() for value in state.values())
