"""The value checks (safety/checks.py) that the command lines, train() and the course's data
functions share: a wrong type or a number out of range is refused by name with the allowed range;
NumPy scalars are the numbers they are."""
import json
import os
import re

import numpy as np
import pytest
from helpers import TRAINERS, train

import cifar10_utils
import train_mlp_numpy
import train_mlp_pytorch


@pytest.mark.parametrize("flags", [["--lr", "0"], ["--lr", "-1"], ["--batch_size", "0"],
                                   ["--epochs", "-1"], ["--hidden_dims", "0"],
                                   ["--dnn_hidden_units", "100,-5"], ["--validation_size", "0"],
                                   ["--validation_size", "50000"], ["--lr", "nan"]])
def test_bad_flags_are_rejected_with_the_allowed_range(flags, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_mlp_numpy.parse_args(flags)
    assert exit_info.value.code == 2
    assert "must be" in capsys.readouterr().err


@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
@pytest.mark.parametrize("flags, allowed", [(["--lr", "0"], "> 0"),
                                            (["--batch_size", "-3"], ">= 1"),
                                            (["--epochs", "-1"], ">= 0"),
                                            (["--hidden_dims", "64", "0"], ">= 1"),
                                            (["--validation_size", "60000"], "<= 49999"),
                                            (["--lr", "abc"], "not a number")])
def test_bad_numbers_are_rejected_with_the_allowed_range(trainer, flags, allowed, capsys):
    with pytest.raises(SystemExit) as exit_info:
        trainer.parse_args(flags)
    assert exit_info.value.code == 2
    assert allowed in capsys.readouterr().err


@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "must be >= 0 and <= 4294967295"),
    (["--seed", "4294967296"], "must be >= 0 and <= 4294967295"),
    (["--epochs", "1.5"], "'1.5' is not an integer"),
    (["--hidden_dims", "1.5"], "'1.5' is not an integer"),
    (["--momentum", "1"], "must be >= 0 and < 1"),
    (["--dropout", "1"], "must be >= 0 and < 1"),
    (["--label_smoothing", "1"], "must be >= 0 and < 1"),
])
def test_flags_out_of_range_name_the_range(trainer, flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        trainer.parse_args(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("framework", TRAINERS)
@pytest.mark.parametrize("flags, error, message", [
    (dict(lr="0.1"), TypeError, "lr must be a number, not '0.1'"),
    (dict(lr=-0.1), ValueError, "lr is -0.1, out of range: must be > 0"),
    (dict(batch_size=0), ValueError, "batch_size is 0, out of range: must be >= 1"),
    (dict(hidden_dims=[0]), ValueError, "hidden_dims[0] is 0, out of range"),
    (dict(hidden_dims=16), TypeError, "hidden_dims must be a list of integers"),
    (dict(activation="sigmoid"), ValueError, "activation must be one of elu, gelu, relu, tanh"),
    (dict(seed=1.5), TypeError, "seed must be an integer, not 1.5"),
    (dict(epochs=True), TypeError, "epochs must be an integer, not True"),
    (dict(data_dir=""), ValueError, "data_dir is empty"),
])
def test_train_refuses_what_the_command_line_refuses(framework, flags, error, message,
                                                     cifar_dir, tmp_path):
    with pytest.raises(error) as refused:
        train(framework, cifar_dir[0], tmp_path / "r", **flags)
    assert message in str(refused.value)
    assert not (tmp_path / "r").exists() or not os.listdir(tmp_path / "r")


@pytest.mark.parametrize("framework", TRAINERS)
def test_train_takes_numpy_scalars_as_the_numbers_they_are(framework, cifar_dir, tmp_path):
    seed = np.arange(3)[1]
    *_, log = train(framework, cifar_dir[0], tmp_path / "r", seed=seed, lr=np.float32(0.1),
                    hidden_dims=[np.int64(8)], batch_size=np.int32(16))
    config = json.loads(open(os.path.join(log["run_dir"], "metrics.json")).read())["config"]
    assert (config["seed"], config["hidden_dims"], config["batch_size"]) == (1, [8], 16)
    assert config["lr"] == float(np.float32(0.1))
    plain = train(framework, cifar_dir[0], tmp_path / "plain", seed=1, lr=float(np.float32(0.1)),
                  hidden_dims=[8])[3]
    assert plain["train_loss_steps"] == log["train_loss_steps"]


def test_the_course_data_functions_check_their_numbers(cifar_dir):
    dataset = cifar10_utils.get_cifar10(str(cifar_dir[0]), 30, url="")
    for size in (0, -1):
        with pytest.raises(ValueError, match=f"batch_size is {size}, out of range"):
            cifar10_utils.get_dataloader(dataset, size)
    with pytest.raises(TypeError, match="validation_size must be an integer, not 500.0"):
        cifar10_utils.get_cifar10(str(cifar_dir[0]), validation_size=500.0, url="")
    assert len(cifar10_utils.get_cifar10(str(cifar_dir[0]), np.int64(30), url="")
               ["validation"]) == 30


HUGE = 10 ** 400  # no float holds it


@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
@pytest.mark.parametrize("flag", ["--epochs", "--seed", "--projection"])
def test_an_integer_too_large_for_any_float_is_refused_in_one_line(trainer, flag, capsys):
    with pytest.raises(SystemExit) as stopped:
        trainer.parse_args([flag, str(HUGE)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err.strip() == (f"error: argument {flag}: {HUGE} is too large "
                                               f"to use (--help lists the options)")


@pytest.mark.parametrize("framework", TRAINERS)
def test_train_refuses_numbers_too_large_to_count_with(framework, cifar_dir, tmp_path):
    with pytest.raises(ValueError, match=f"^epochs is {HUGE}, too large to use$"):
        train(framework, cifar_dir[0], tmp_path / "r", epochs=HUGE)
    with pytest.raises(ValueError, match="^--warmup 1e.308 is more epochs than can be counted"):
        train(framework, cifar_dir[0], tmp_path / "r", warmup=1e308)
    assert not (tmp_path / "r").exists() or not os.listdir(tmp_path / "r")


def test_a_validation_split_larger_than_the_data_names_the_folder_and_its_images(cifar_dir,
                                                                                   tmp_path):
    """A resume or an --evaluate on smaller data than the run's meets its recorded split first:
    the line says what the folder holds, not only the flag the user never typed."""
    root, _ = cifar_dir
    images = len(cifar10_utils.get_cifar10(root, validation_size=1, url="")["train"]) + 1
    said = f"{root} holds {images} training images: too few to set 5000 aside for validation"
    with pytest.raises(Exception, match="^" + re.escape(said)):
        cifar10_utils.get_cifar10(root, validation_size=5000, url="")
