"""options.py is the one table of options: the README, both command lines, the presets and the
implementations of every choice are checked against it."""
import pathlib
import shlex

import numpy as np
import pytest

import mlp_numpy
import mlp_pytorch
import train_mlp_numpy
import train_mlp_pytorch
from training import optim_numpy, options, preprocessing
from training.schedules import lr_factor

TRAINERS = {"numpy": train_mlp_numpy, "pytorch": train_mlp_pytorch}


def test_the_readme_flag_table_is_the_generated_one():
    readme = (pathlib.Path(__file__).parents[1] / "README.md").read_text()
    assert options.markdown_table() in readme, "run `python -m training.options` and paste its table"


@pytest.mark.parametrize("trainer", TRAINERS)
def test_each_command_line_takes_its_options_with_their_defaults(trainer):
    args = vars(TRAINERS[trainer].parse_args([]))
    assert args.pop("evaluate") is None and args.pop("resume") is None
    assert args.pop("given_flags") == set()
    assert args == {name: options.DEFAULTS[name] for name in options.options_of(trainer)}


def test_every_choice_has_an_implementation_in_both_trainers():
    choices = {option.name: set(option.settings.get("choices", ())) for option in options.OPTIONS}
    assert set(mlp_numpy.ACTIVATIONS) == set(mlp_pytorch.ACTIVATIONS) == choices["activation"]
    assert set(preprocessing.AUGMENTATIONS) == choices["augment"]
    assert set(preprocessing.FITTED_ARRAYS) == choices["normalize"]
    model = mlp_numpy.MLP(4, [3], 2)
    for name in choices["optimizer"]:
        optim_numpy.make_optimizer(model, name, 0.1)
        train_mlp_pytorch.make_optimizer(mlp_pytorch.MLP(4, [3], 2), name, 0.1, 0.0, 0.0)
    constant = [lr_factor(step, 100, 0, "none") for step in range(100)]
    for schedule in choices["schedule"] - {"none"}:
        assert not np.allclose([lr_factor(step, 100, 0, schedule) for step in range(100)],
                               constant), schedule


@pytest.mark.parametrize("name", options.PRESETS)
def test_each_preset_is_a_valid_command_line(name):
    """Every value of a preset passes its option's type and range, as if typed."""
    preset = options.PRESETS[name]
    words = options.command_line("pytorch", {**preset, "seed": 7}).split()[2:]
    assert words[:2] == ["--preset", name]
    args = train_mlp_pytorch.parse_args(words[:2] + ["--seed", "7"])
    assert {key: getattr(args, key) for key in preset} == preset
    spelled_out = []
    for key, value in preset.items():
        option = options.BY_NAME[key]
        if value is True:
            spelled_out.append(f"--{key}")
        elif option.settings.get("nargs") == "+":
            spelled_out += [f"--{key}", *map(str, value)]
        else:
            spelled_out += [f"--{key}", str(value)]
    typed = train_mlp_pytorch.parse_args(spelled_out)
    assert {key: getattr(typed, key) for key in preset} == preset


def test_architecture_and_training_options_come_from_the_table():
    assert options.ARCHITECTURE == ("hidden_dims", "use_batch_norm", "activation", "dropout",
                                    "normalize", "tta", "projection", "bottleneck")
    assert "lr" not in options.TRAINING_OPTIONS and "mixup" in options.TRAINING_OPTIONS


def test_command_lines_quote_what_a_shell_would_split_or_drop():
    line = options.command_line("numpy", {"data_url": "", "data_dir": "my data", "lr": 0.05})
    assert shlex.split(line)[2:] == ["--data_url", "", "--data_dir", "my data", "--lr", "0.05"]
