"""training/options.py is the one table of options: both command lines, the presets and the
implementations of every choice are checked against it (the options page: tests/test_docs.py)."""
import json
import pathlib
import shlex
import subprocess
import sys

import numpy as np
import pytest
from helpers import REPO, TRAINERS, assert_one_clear_line, run_script

import mlp_numpy
import mlp_pytorch
import train_mlp_numpy
import train_mlp_pytorch
from training import optim_numpy, optim_torch, options, preprocessing
from training.schedules import lr_factor

RESULTS = pathlib.Path(REPO) / "results"



@pytest.mark.parametrize("trainer", TRAINERS)
def test_each_command_line_takes_its_options_with_their_defaults(trainer):
    args = vars(TRAINERS[trainer][0].parse_args([]))
    assert all(args.pop(name) is None for name in ("evaluate", "resume", "figures_dir"))
    assert args.pop("given_flags") == args.pop("from_preset") == set()
    assert args.pop("preset") is None
    assert args == {name: options.DEFAULTS[name] for name in options.options_of(trainer)}


def test_every_choice_has_an_implementation_in_both_trainers():
    choices = {option.name: set(option.settings.get("choices", ())) for option in options.OPTIONS}
    assert set(mlp_numpy.ACTIVATIONS) == set(mlp_pytorch.ACTIVATIONS) == choices["activation"]
    assert set(preprocessing.AUGMENTATIONS) == choices["augment"]
    assert set(preprocessing.FITTED_ARRAYS) == choices["normalize"]
    model = mlp_numpy.MLP(4, [3], 2)
    for name in choices["optimizer"]:
        optim_numpy.make_optimizer(model, name, 0.1)
        optim_torch.make_optimizer(mlp_pytorch.MLP(4, [3], 2), name, 0.1)
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


def test_a_command_line_with_a_preset_keeps_every_flag_beyond_it():
    """A run of a preset with one change (a search row's) is that change too, not the preset."""
    flags = {**options.PRESETS["best"], "seed": 7, "ema": 0.999}
    line = options.command_line("pytorch", flags)
    assert line == "python train_mlp_pytorch.py --preset best --seed 7 --ema 0.999"
    args = train_mlp_pytorch.parse_args(line.split()[2:])
    assert {key: getattr(args, key) for key in flags} == flags


def test_architecture_and_training_options_come_from_the_table():
    assert options.ARCHITECTURE == ("hidden_dims", "use_batch_norm", "activation", "dropout",
                                    "normalize", "tta", "projection", "bottleneck", "blocks",
                                    "block_width")
    assert "lr" not in options.TRAINING_OPTIONS and "mixup" in options.TRAINING_OPTIONS


def test_a_command_line_gives_every_digit_of_a_float_that_needs_them():
    """A value is typed short only where the short text is still the value: the line trains
    the run, and two values that differ never read alike."""
    flags = dict(options.DEFAULTS, lr=0.0123456789, weight_decay=1234567.0, zca_epsilon=1.0)
    line = options.command_line("numpy", flags)
    assert line.endswith("--lr 0.0123456789 --weight_decay 1234567.0 --zca_epsilon 1")
    args = train_mlp_numpy.parse_args(shlex.split(line)[2:])
    assert (args.lr, args.weight_decay) == (0.0123456789, 1234567.0)
    assert options.contradictions(dict(flags, lr=0.1000001), dict(flags, lr=0.1), ["lr"],
                                  "the run") == "--lr 0.1000001 (the run: --lr 0.1)"


def test_command_lines_quote_what_a_shell_would_split_or_drop():
    line = options.command_line("numpy", {"data_url": "", "data_dir": "my data", "lr": 0.05})
    assert shlex.split(line)[2:] == ["--data_url", "", "--data_dir", "my data", "--lr", "0.05"]


@pytest.mark.parametrize("flags, fragment", [
    (["--results_dir", ""], "argument --results_dir: an empty name: give a folder"),
    (["--evaluate", ""], "argument --evaluate: an empty name: give the path of a saved model"),
    (["--hidden_dims", "8", "--dnn_hidden_units", "4"],
     "--dnn_hidden_units and --hidden_dims are two spellings of one option"),
    (["--resume", "results/x", "--evaluate", "results/x/model.npz"],
     "--resume continues a run and --evaluate tests a saved model: give one"),
])
def test_flags_that_cannot_mean_anything_are_refused(flags, fragment, capsys):
    with pytest.raises(SystemExit) as stopped:
        train_mlp_numpy.parse_args(flags)
    assert stopped.value.code == 2 and fragment in capsys.readouterr().err


@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
def test_a_preset_flag_can_be_turned_off(trainer):
    args = trainer.parse_args(["--preset", "best", "--no-use_batch_norm"])
    assert args.use_batch_norm is False
    assert args.hidden_dims == options.PRESETS["best"]["hidden_dims"]
    assert trainer.parse_args([]).use_batch_norm is False


@pytest.mark.parametrize("framework", TRAINERS)
def test_batch_norm_with_batches_of_one_is_refused_before_anything(framework, tmp_path):
    code, _, stderr = run_script(f"train_mlp_{framework}.py", "--use_batch_norm", "--batch_size",
                                 "1", "--results_dir", tmp_path / "r", "--data_dir", tmp_path,
                                 "--data_url", "")
    assert_one_clear_line(stderr, "--use_batch_norm needs --batch_size 2 or more")
    assert code != 0 and not (tmp_path / "r").exists()


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_presets_batch_norm_that_does_nothing_does_not_refuse_batches_of_one(framework,
                                                                                 cifar_dir,
                                                                                 tmp_path):
    """With no hidden layer, a preset's BatchNorm is left out, on the command line as by train()."""
    code, _, stderr = run_script(f"train_mlp_{framework}.py", "--preset", "fast",
                                 "--dnn_hidden_units", "", "--batch_size", "1", "--epochs", "0",
                                 "--results_dir", tmp_path / "r", "--data_dir", cifar_dir[0],
                                 "--data_url", "", "--validation_size", "40")
    assert code == 0, stderr
    (run_dir,) = (tmp_path / "r").iterdir()
    assert "_bn" not in run_dir.name


@pytest.mark.parametrize("preset", sorted(options.PRESETS))
@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
def test_every_preset_option_works_in_both_trainers(trainer, preset, cifar_dir, tmp_path):
    """Each preset's recipe as it is, on a small model for a few epochs: ten, as the projected
    recipe stays near chance for 3 epochs (30 steps of 170 images: 0.03 to 0.3 validation).

    It must learn: a model that learned nothing gets each test image right with probability
    0.1, so 12 or more of the 40 (0.3) with a probability of 0.0004. Ten epochs of the recipe
    get 16 to 21 of them here, on data a linear model separates."""
    kwargs = dict(options.PRESETS[preset], hidden_dims=[16, 8], batch_size=16, epochs=10, seed=0,
                  data_dir=str(cifar_dir[0]), validation_size=30, data_url="",
                  results_dir=str(tmp_path))
    if trainer is train_mlp_pytorch:
        kwargs["device"] = "cpu"
    _, val, test_accuracy, log = trainer.train(**kwargs)
    assert log["train_loss"][-1] < log["train_loss"][0] and max(val) > 0.2  # chance: 0.1
    assert test_accuracy >= 12 / 40, test_accuracy


@pytest.mark.parametrize("name", options.PRESETS)
def test_a_preset_is_the_recipe_of_the_run_whose_numbers_the_report_gives(name):
    """The committed run of `--preset NAME` trained with every training option at the preset's
    value where it sets one, the default elsewhere; an option it does not record was not there
    to be given when it ran, and so took its default, as --resume takes it."""
    summary = json.loads((RESULTS / "presets" / "summary.json").read_text())
    (entry,) = [run for run in summary["runs"] if run["key"] == name]
    config = json.loads((RESULTS / "presets" / entry["run_dir"] / "metrics.json")
                        .read_text())["config"]
    expected = {**options.DEFAULTS, **options.PRESETS[name]}
    assert {key: config.get(key, options.DEFAULTS[key]) for key in expected
            if key not in options.WHERE} == {
        key: value for key, value in expected.items() if key not in options.WHERE}


def test_a_presets_flags_count_as_given_as_if_typed():
    """So that --evaluate and --resume refuse a preset that contradicts the model or the run."""
    args = train_mlp_pytorch.parse_args(["--preset", "best", "--seed", "7", "--lr", "0.1"])
    assert args.given_flags == set(options.PRESETS["best"]) | {"preset", "seed", "lr"}
    assert args.lr == 0.1 and args.hidden_dims == options.PRESETS["best"]["hidden_dims"]


def test_a_flag_in_the_2021_spelling_counts_as_given():
    args = train_mlp_numpy.parse_args(["--dnn_hidden_units", "24,12"])
    assert args.given_flags == {"hidden_dims"} and args.hidden_dims == [24, 12]


def test_a_contradiction_names_each_flag_that_differs_with_both_values_as_typed():
    flags = dict(options.DEFAULTS, lr=0.5, epochs=4, use_batch_norm=False, hidden_dims=[8, 4])
    recorded = dict(options.DEFAULTS, lr=0.1, epochs=4, use_batch_norm=True, hidden_dims=[8])
    assert options.contradictions(flags, recorded, list(options.DEFAULTS), "the run") == (
        "--hidden_dims 8 4 (the run: --hidden_dims 8), --lr 0.5 (the run: --lr 0.1), "
        "--no-use_batch_norm (the run: --use_batch_norm)")
    assert options.contradictions(flags, recorded, ["epochs", "seed"], "the run") == ""


def test_the_flag_table_read_by_a_reader_that_stops_at_once_ends_without_a_traceback():
    """`python -m training.options | head -2`: the pipe closes before the table is written."""
    table = subprocess.Popen([sys.executable, "-m", "training.options"], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    table.stdout.close()  # before the interpreter has started: its write finds no reader
    _, stderr = table.communicate(timeout=120)
    assert table.returncode == 0 and stderr == ""
