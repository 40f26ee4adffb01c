"""What changes step by step: the learning rate's schedule, and the moving average of the
weights."""
import math


def lr_factor(step, total_steps, warmup_steps, schedule):
    """Multiplier of the base learning rate at a step: linear warm-up, then constant or cosine;
    or one-cycle, which ignores warm-up: cosine up from 1/25 over the first 30 % of the steps,
    then cosine down to 0."""
    if schedule == "onecycle":
        peak = 0.3 * total_steps
        if step < peak:
            return 1 / 25 + (1 - 1 / 25) * 0.5 * (1 - math.cos(math.pi * step / peak))
        return 0.5 * (1 + math.cos(math.pi * (step - peak) / max(1, total_steps - peak)))
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


class WeightAverage:
    """An exponential moving average of a model's floating-point state (weights and BatchNorm
    statistics): a <- d a + (1 - d) w after every step, with d = min(decay, (1 + t) / (10 + t))
    at update t so that the random initial weights fade within the first steps.

    state: a copy of the floating-point state to start from; the average owns it. Arrays may be
    NumPy's or torch's: the update is in place either way."""

    def __init__(self, decay, state):
        self.decay, self.updates, self.average = decay, 0, state

    def update(self, state):
        self.updates += 1
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for name, value in self.average.items():
            value *= decay
            value += (1 - decay) * state[name]
