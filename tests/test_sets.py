"""Every run an experiment set declares (experiments/sets.py) is one its trainer accepts: each
greedy row on its own start and on every change before it, so that a set refused part-way, after
hours of training, is found here instead."""
import pytest

from experiments.sets import SETS
from training.options import Config
from training.run import check_in_effect


def accepted(trainer, flags):
    check_in_effect(Config.of(trainer, dict(flags)))


def greedy_flags(experiment_set):
    """Each row's flags on the start alone, and on the start with every row before it kept."""
    start, *rows = experiment_set.runs
    every_change = dict(start.flags)
    for row in rows:
        yield row.key, {**start.flags, **row.flags}
        every_change.update(row.flags)
        yield row.key, dict(every_change)


@pytest.mark.parametrize("name", SETS)
def test_every_run_of_a_set_is_one_its_trainer_accepts(name):
    experiment_set = SETS[name]
    runs = experiment_set.runs
    for one in runs:
        if not experiment_set.greedy or one is runs[0]:
            accepted(one.trainer, one.flags)
    if experiment_set.greedy:
        for key, flags in greedy_flags(experiment_set):
            accepted(runs[0].trainer, flags)
