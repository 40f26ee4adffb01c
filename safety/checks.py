"""The checks a value passes, the same from the command line (text, for argparse) and from Python
(train(...), the data functions): each type parses text as argparse wants, and check(name, value)
takes a Python value, NumPy's scalars included, or raises a TypeError or ValueError naming it."""
import argparse
import math
import numbers
import os

import numpy as np


class Number:
    """Integers or reals (kind: int or float) in a range; allowed states the range in words."""

    def __init__(self, kind, minimum, maximum=math.inf, open_below=False, open_above=False):
        self.kind, self.minimum, self.maximum = kind, minimum, maximum
        self.open_below, self.open_above = open_below, open_above
        low = f"> {minimum}" if open_below else f">= {minimum}"
        high = f"< {maximum}" if open_above else f"<= {maximum}"
        self.allowed = low if maximum == math.inf else f"{low} and {high}"
        self.noun = "an integer" if kind is int else "a number"
        self.__name__ = kind.__name__  # argparse names the type in its messages

    def refusal(self, value):
        """Why value is not allowed, in words; None where it is."""
        try:
            finite = math.isfinite(value)
        except OverflowError:  # an integer no float can hold: every sum with it would fail
            return "too large to use"
        below = value <= self.minimum if self.open_below else value < self.minimum
        above = value >= self.maximum if self.open_above else value > self.maximum
        return None if finite and not below and not above else \
            f"out of range: must be {self.allowed}"

    def __call__(self, text):
        try:
            value = self.kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {self.noun}") from None
        refusal = self.refusal(value)
        if refusal:
            raise argparse.ArgumentTypeError(f"{text} is {refusal}")
        return value

    def check(self, name, value):
        """value as the plain Python number it is; a bool or text is no number."""
        wanted = numbers.Integral if self.kind is int else numbers.Real
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, wanted):
            raise TypeError(f"{name} must be {self.noun}, not {value!r}")
        try:
            value = self.kind(value)
        except OverflowError:  # an integer no float can hold, given for a float
            raise ValueError(f"{name} is {value}, too large to use") from None
        refusal = self.refusal(value)
        if refusal:
            raise ValueError(f"{name} is {value}, {refusal}")
        return value


class Path:
    """The name of what (a folder, say), '~' expanded as a shell would; empty only where
    may_be_empty, where it means none."""

    def __init__(self, what, may_be_empty=False):
        self.what, self.may_be_empty = what, may_be_empty
        self.__name__ = "path"

    def __call__(self, text):
        if not text and not self.may_be_empty:
            raise argparse.ArgumentTypeError(f"an empty name: give {self.what}")
        return os.path.expanduser(text)

    def check(self, name, value):
        if not isinstance(value, (str, os.PathLike)):
            raise TypeError(f"{name} must be a path, not {value!r}")
        value = os.fspath(value)
        if not value and not self.may_be_empty:
            raise ValueError(f"{name} is empty: give {self.what}")
        return os.path.expanduser(value)


positive_int = Number(int, 1)
nonnegative_int = Number(int, 0)
positive_float = Number(float, 0, open_below=True)
nonnegative_float = Number(float, 0)
fraction = Number(float, 0, 1, open_above=True)  # 1 would drop, smooth or keep everything
# Beta(a, a) draws 0.5 within 1e-3 from a = 1e6 on, and NumPy's draw overflows to 0 past 8.9e307
mixup_alpha = Number(float, 0, 10 ** 6)
teacher_weight = Number(float, 0, 0.45)  # the label keeps the largest share, by 0.1 at least
validation_size = Number(int, 1, 49999)
seed = Number(int, 0, 2 ** 32 - 1)  # what NumPy's and torch's generators accept
folder = Path("a folder")
saved_model = Path("the path of a saved model")
run_dir = Path("the folder of a run")
location_or_nothing = Path("a URL or a path", may_be_empty=True)


def check_flag(name, value):
    """A True or False, NumPy's included, as the plain bool."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, not {value!r}")
    return bool(value)


def check_choice(name, value, choices):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, not {value!r}")
    return value


def check_sizes(name, value, size=positive_int):
    """A list of sizes, each checked by size; text and single numbers are no list."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise TypeError(f"{name} must be a list of integers, not {value!r}")
    return [size.check(f"{name}[{index}]", item) for index, item in enumerate(value)]
