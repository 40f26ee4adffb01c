"""What a careless or hostile user does, and what each gets: results never lost, a number never
silently wrong, one clear line where something cannot be done."""
import json
import os
import signal
import subprocess
import sys
import time

import matplotlib.figure
import numpy as np
import pytest
import synthetic_cifar
import torch
from helpers import REPO, assert_one_clear_line, copy_of_the_repository, run_script
from tqdm import tqdm

import cifar10_utils
import train_mlp_numpy
import train_mlp_pytorch
from mlp_numpy import MLP
from modules import CrossEntropyModule, LinearModule
from safety import files, signals
from safety.errors import DataError, Terminated, UserError
from training import cli, plots, run, run_folder

TRAINERS = {"numpy": (train_mlp_numpy, "model.npz"), "pytorch": (train_mlp_pytorch, "model.pt")}
TINY = dict(batch_size=16, validation_size=30, data_url="")


def train(framework, root, results, **flags):
    trainer, _ = TRAINERS[framework]
    settings = dict(hidden_dims=[16], lr=0.05, epochs=1, seed=0, data_dir=str(root),
                    results_dir=str(results), **TINY)
    if framework == "pytorch":
        settings.update(use_batch_norm=False, device="cpu")
    return trainer.train(**{**settings, **flags})


# --- experiment sets: replaced only once complete ---
def test_the_benchmark_runs_from_any_folder_and_stops_with_one_line(tmp_path):
    copy = copy_of_the_repository(tmp_path)
    synthetic_cifar.write_dataset(copy / "data", per_batch=1100)  # room for 5,000 validation
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run([sys.executable, "-m", "benchmarks.benchmark", "numpy", "--repeat",
                             "1"], cwd=elsewhere, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, PYTHONPATH=str(copy)))
    assert result.returncode == 0, result.stderr
    assert json.loads((copy / "results" / "benchmark.json").read_text())["runs"][0]["benchmark"] \
        == "numpy"
    process = subprocess.Popen([sys.executable, "-m", "benchmarks.benchmark", "numpy"],
                               cwd=elsewhere, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=dict(os.environ, PYTHONPATH=str(copy)))
    time.sleep(4)  # inside the first measured run
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130 and "Traceback" not in stderr
    assert stderr.strip().splitlines() == ["interrupted before the benchmarks finished; "
                                           "results/benchmark.json is as it was"]


# --- figures and the closing line ---
def test_a_figure_interrupted_mid_write_leaves_the_previous_one(tmp_path, monkeypatch):
    plt = plots.pyplot()
    path = tmp_path / "confusion.png"
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    plots.save_figure(fig, str(path))
    good = path.read_bytes()

    def stopped_mid_write(self, target, **kwargs):
        target.write(b"\x89PNG half")
        raise Terminated()

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", stopped_mid_write)
    with pytest.raises(Terminated):
        plots.save_figure(plt.subplots()[0], str(path))
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["confusion.png"]


def test_a_stop_during_a_write_takes_effect_once_the_file_is_whole(tmp_path):
    """torch.save stopped halfway fails in its own cleanup (a RuntimeError, not the stop)."""
    state = {"weight": torch.arange(1000.0)}

    def stopped_halfway(f):
        f.write(b"")
        os.kill(os.getpid(), signal.SIGTERM)
        torch.save(state, f)

    signals.handle_stop_signals()
    try:
        with pytest.raises(Terminated):
            files.write_atomically(str(tmp_path / "model.pt"), stopped_halfway)
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert torch.equal(torch.load(tmp_path / "model.pt", weights_only=True)["weight"],
                       state["weight"])


def test_a_bar_stopped_inside_its_constructor_does_not_stop_the_closing_line():
    bar = tqdm(range(3))
    del bar.pos  # what a signal landing before tqdm sets it leaves
    run_folder.close_progress_bars()
    assert bar not in tqdm._instances


@pytest.mark.parametrize("framework", TRAINERS)
def test_every_file_of_a_run_and_its_evaluation_goes_through_the_atomic_writer(
        framework, cifar_dir, tmp_path, monkeypatch):
    written = set()
    atomic = files.write_atomically

    def recorded(path, write):
        written.add(os.path.abspath(path))
        atomic(path, write)

    trainer, name = TRAINERS[framework]
    for module in (files, plots, trainer):
        monkeypatch.setattr(module, "write_atomically", recorded)
    *_, log = train(framework, cifar_dir[0], tmp_path / "r")
    settings = {"device": "cpu"} if framework == "pytorch" else {}
    trainer.evaluate_saved(os.path.join(log["run_dir"], name), set(), data_dir=str(cifar_dir[0]),
                           data_url="", **settings)
    found = {str(path) for path in (tmp_path / "r").rglob("*") if path.is_file()}
    assert len(found) == 8 and found <= written  # written also: the checkpoint, removed at the end


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_full_disk_ends_the_run_with_its_closing_line(framework, cifar_dir, tmp_path,
                                                        monkeypatch, capsys):
    def disk_full(self, target, **kwargs):
        target.write(b"\x89PNG")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", disk_full)
    with pytest.raises(OSError):
        train(framework, cifar_dir[0], tmp_path / "r")
    (folder,) = (tmp_path / "r").iterdir()
    assert not list(folder.glob("*.png")) and not list(folder.glob(".tmp-*"))
    assert "failed after 1 finished epoch(s); their curves and metrics could not all be " \
           "written" in capsys.readouterr().err
    assert json.loads((folder / "metrics.json").read_text())["val_accuracy"]


# --- the saved record ---
@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved")
    synthetic_cifar.write_dataset(root / "data")
    paths = {}
    for framework, (trainer, name) in TRAINERS.items():
        *_, log = train(framework, root / "data", root / framework, validation_size=60, epochs=2)
        paths[framework] = os.path.join(log["run_dir"], name)
    return root / "data", paths


@pytest.mark.parametrize("framework", TRAINERS)
def test_evaluate_measures_the_validation_split_the_model_was_chosen_on(framework, saved_models,
                                                                        capsys):
    data, paths = saved_models
    trainer, _ = TRAINERS[framework]
    metrics = json.loads(open(os.path.join(os.path.dirname(paths[framework]),
                                           "metrics.json")).read())
    settings = {"device": "cpu"} if framework == "pytorch" else {}
    trainer.evaluate_saved(paths[framework], set(), data_dir=str(data), data_url="", **settings)
    assert f"validation accuracy {max(metrics['val_accuracy']):.4f}" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"--validation_size 30 \(the model: --validation_size 60"):
        trainer.evaluate_saved(paths[framework], {"validation_size"}, data_dir=str(data),
                               data_url="", validation_size=30, **settings)


def edited_copy(framework, path, target, change, arrays=None, removed=()):
    """A copy of the saved model at path whose record is changed by change (a dict) and lacks
    the names in removed, and whose preprocessing arrays are arrays where given."""
    if framework == "numpy":
        with np.load(path) as saved:
            entries = {name: saved[name] for name in saved.files}
        record = json.loads(str(entries["architecture"][()]))
        record = {name: value for name, value in {**record, **change}.items()
                  if name not in removed}
        entries["architecture"] = np.array(json.dumps(record))
        entries.update({f"preprocessing.{name}": value for name, value in (arrays or {}).items()})
        with open(target, "wb") as f:
            np.savez(f, **entries)
    else:
        saved = torch.load(path, weights_only=True)
        saved["architecture"].update(change)
        for name in removed:
            del saved["architecture"][name]
        saved["preprocessing"].update({name: torch.from_numpy(value)
                                       for name, value in (arrays or {}).items()})
        torch.save(saved, target)
    return target


@pytest.mark.parametrize("framework", TRAINERS)
@pytest.mark.parametrize("change, message", [
    ({"activation": "silu"}, "activation must be one of elu, gelu, relu, tanh, not 'silu'"),
    ({"dropout": 1.5}, "dropout is 1.5, out of range"),
    ({"hidden_dims": "16"}, "hidden_dims must be a list of integers, not '16'"),
    ({"hidden_dims": [16.0]}, "hidden_dims[0] must be an integer, not 16.0"),
    ({"bottleneck": -3}, "bottleneck is -3, out of range"),
    ({"tta": "bogus"}, "tta must be one of none, flip, not 'bogus'"),
    ({"use_batch_norm": "yes"}, "use_batch_norm must be True or False"),
])
def test_a_record_this_version_does_not_know_is_refused_by_name(framework, change, message,
                                                                saved_models, tmp_path):
    data, paths = saved_models
    trainer, name = TRAINERS[framework]
    edited = edited_copy(framework, paths[framework], tmp_path / name, change)
    settings = {"device": "cpu"} if framework == "pytorch" else {}
    with pytest.raises(UserError) as refused:
        trainer.evaluate_saved(str(edited), set(), data_dir=str(data), data_url="", **settings)
    assert message in str(refused.value) and "cannot rebuild" in str(refused.value)


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_whitening_of_the_wrong_shape_is_refused_by_name(framework, saved_models, tmp_path):
    data, paths = saved_models
    trainer, name = TRAINERS[framework]
    pixels = 3 * 32 * 32
    arrays = {"scale": np.ones(pixels, np.float32), "shift": np.zeros(pixels, np.float32),
              "whitening": np.eye(10, dtype=np.float32)}
    edited = edited_copy(framework, paths[framework], tmp_path / name, {"normalize": "zca"},
                         arrays)
    code, _, stderr = run_script(f"train_mlp_{framework}.py", "--evaluate", edited, "--data_dir",
                                 data, "--data_url", "")
    assert code == 1
    assert_one_clear_line(stderr, "whitening has the shape (10, 10), not (3072, 3072)")


@pytest.mark.parametrize("framework, other", [("numpy", "pytorch"), ("pytorch", "numpy")])
def test_the_other_trainers_model_is_named_with_the_script_to_use(framework, other,
                                                                  saved_models):
    data, paths = saved_models
    code, _, stderr = run_script(f"train_mlp_{framework}.py", "--evaluate", paths[other],
                                 "--data_dir", data)
    assert code == 1
    name = {"numpy": "NumPy", "pytorch": "PyTorch"}[other]
    assert_one_clear_line(stderr, f"it is a {name} model: use train_mlp_{other}.py")


# --- the Python API: the command line's checks ---
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


# --- data ---
def test_a_damaged_meta_file_is_found_before_training(cifar_dir, tmp_path):
    root, _ = cifar_dir
    (root / "cifar-10-batches-py" / "batches.meta").write_bytes(b"garbage")
    with pytest.raises(DataError, match="batches.meta: not a valid CIFAR-10 meta file"):
        train("numpy", root, tmp_path / "r")
    assert not (tmp_path / "r").exists() or not os.listdir(tmp_path / "r")


def test_a_failed_download_removes_every_folder_it_made(tmp_path):
    with pytest.raises(DataError, match="could not download"):
        cifar10_utils.get_cifar10(str(tmp_path / "nest" / "a" / "b" / "c"), 30,
                                  url=(tmp_path / "missing.tar.gz").as_uri())
    assert os.listdir(tmp_path) == []


def test_a_tilde_in_data_dir_means_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    synthetic_cifar.write_dataset(tmp_path / "home" / "cachedata")
    assert len(cifar10_utils.get_cifar10("~/cachedata", 30, url="")["test"]) == 40
    args = train_mlp_numpy.parse_args(["--data_dir=~/cachedata", "--results_dir", "~/r"])
    assert (args.data_dir, args.results_dir) == (str(tmp_path / "home" / "cachedata"),
                                                 str(tmp_path / "home" / "r"))
    assert not (tmp_path / "~").exists()


def test_a_wrong_md5_with_no_fresh_copy_says_the_md5_is_wrong(tmp_path):
    (tmp_path / cifar10_utils.TARBALL_NAME).write_bytes(b"not the dataset")
    with pytest.raises(DataError) as refused:
        cifar10_utils.get_cifar10(str(tmp_path), 30, url=(tmp_path / "none.tar.gz").as_uri())
    message = str(refused.value)
    assert "has md5" in message and "no fresh copy came" in message
    assert "expected" not in message.split("no fresh copy came")[1]


# --- the command line ---
def test_matplotlib_refusing_mplbackend_costs_one_warning(cifar_dir, tmp_path):
    flags = ["--epochs", 1, "--data_dir", cifar_dir[0], "--results_dir", tmp_path / "r",
             *sum(([f"--{key}", value] for key, value in TINY.items()), [])]
    result = subprocess.run([sys.executable, os.path.join(REPO, "train_mlp_numpy.py"),
                             *map(str, flags)],
                            capture_output=True, text=True, timeout=120, cwd=REPO,
                            env=dict(os.environ, MPLBACKEND="nonsense"))
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stderr.count("MPLBACKEND=nonsense") == 1
    (folder,) = (tmp_path / "r").iterdir()
    assert (folder / "loss.png").stat().st_size > 1000


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


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_stop_before_the_first_epoch_says_so(framework, cifar_dir, tmp_path, monkeypatch,
                                               capsys):
    def terminated(*args, **kwargs):
        raise Terminated()

    monkeypatch.setattr(run.Preprocessing, "fit", terminated)
    trainer, _ = TRAINERS[framework]
    args = trainer.parse_args(["--normalize", "zca", "--data_dir", str(cifar_dir[0]),
                               "--results_dir", str(tmp_path / "r"), "--batch_size", "16",
                               "--validation_size", "30", "--data_url", ""])
    with pytest.raises(SystemExit) as stopped:
        cli.train_or_evaluate(args, trainer.train, trainer.evaluate_saved)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    assert stopped.value.code == 143
    assert capsys.readouterr().err.strip().splitlines()[-1] == \
        "terminated before the first epoch finished; no run folder was made"


@pytest.mark.parametrize("framework", TRAINERS)
def test_zero_epochs_says_the_untrained_model_was_tested(framework, cifar_dir, tmp_path, capsys):
    train(framework, cifar_dir[0], tmp_path / "r", epochs=0)
    assert "(the untrained model: no epoch to choose from)" in capsys.readouterr().out


# --- modules ---
@pytest.mark.parametrize("dtype", [np.int64, np.uint8, bool])
def test_integer_and_boolean_inputs_are_taken_in_the_weights_precision(dtype):
    np.random.seed(0)
    model = MLP(6, [4], 3)
    x = (np.arange(12).reshape(2, 6) % 2).astype(dtype)
    np.testing.assert_array_equal(model.forward(x), model.forward(x.astype(np.float64)))
    layer = LinearModule(6, 4)
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x.astype(np.float64)))


@pytest.mark.parametrize("labels", [[-1, 0], [5, 0], [0.0, 1.0], [True, False]])
def test_labels_outside_the_classes_are_refused(labels):
    probabilities = np.full((2, 5), 0.2)
    for compute in (CrossEntropyModule().forward, CrossEntropyModule().backward,
                    CrossEntropyModule().logits_grad):
        with pytest.raises(ValueError, match="labels must be integers in 0..4"):
            compute(probabilities, np.array(labels))
