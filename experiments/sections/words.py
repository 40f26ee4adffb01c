"""How the sections say numbers, settings and files in words."""
import os
import statistics

from experiments.store import REPOSITORY

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
                "ten", "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen",
                "seventeen", "eighteen", "nineteen")
TENS_WORDS = {20: "twenty", 30: "thirty", 40: "forty"}
ORDINAL_WORDS = ("first", "second", "third", "fourth", "fifth", "sixth", "seventh", "eighth",
                 "ninth", "tenth", "eleventh", "twelfth", "thirteenth", "fourteenth", "fifteenth",
                 "sixteenth", "seventeenth", "eighteenth", "nineteenth", "twentieth")
# how closely tests/test_mlp_pytorch.py holds the two trainers' losses, gradients and steps together
TRAINERS_AGREE_TO = f"{1e-10:g}"
ACTIVATION_NAMES = {"elu": "ELU", "gelu": "GELU", "relu": "ReLU", "tanh": "Tanh"}


def number_word(number):
    """A count in words, as prose spells the small ones (below fifty)."""
    if number < 20:
        return NUMBER_WORDS[number]
    tens, ones = divmod(number, 10)
    return TENS_WORDS[10 * tens] + (f"-{NUMBER_WORDS[ones]}" if ones else "")


def mean_std(values):
    """Accuracies as percent: their mean, and their standard deviation where there are several."""
    values = [100 * v for v in values]
    spread = f" ± {statistics.stdev(values):.2f}" if len(values) > 1 else ""
    return f"{statistics.mean(values):.2f}{spread}"


def path_of(module):
    """A module's file as the report names it: from the repository's root."""
    return os.path.relpath(module.__file__, REPOSITORY)


def dims_text(dims):
    """Hidden layer sizes as a list in prose: 512, 256, 128."""
    return ", ".join(map(str, dims))
