"""Hostile data, bad flags, divergence and interruption: one clear line, a non-zero exit (or a
clean stop), nothing lost, nothing executed. Synthetic data only."""
import json
import os
import pickle
import tarfile
import urllib.request

import numpy as np
import pytest
import synthetic_cifar
from helpers import assert_one_clear_line, run_script

import cifar10_utils
import train_mlp_numpy
import train_mlp_pytorch
from cifar10_utils import DataError, get_cifar10
from safety.errors import TrainingDiverged, UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINERS = [train_mlp_numpy, train_mlp_pytorch]


# --- data ---------------------------------------------------------------------------------------

def test_no_data_and_no_network_names_url_layout_and_flag(tmp_path):
    missing = (tmp_path / "nowhere.tar.gz").as_uri()  # fails like an unreachable server
    code, _, stderr = run_script("train_mlp_numpy.py", "--data_dir", tmp_path / "data",
                                 "--data_url", missing, "--results_dir", tmp_path / "r")
    assert code == 1
    assert_one_clear_line(stderr, missing, "cifar-10-batches-py", "--data_dir",
                          cifar10_utils.CIFAR10_URL)


@pytest.mark.parametrize("damage, expected", [
    ("truncate", "data_batch_3: not a valid CIFAR-10 batch file"),
    ("garbage", "data_batch_3: not a valid CIFAR-10 batch file"),
    ("shape", "data_batch_3: 'data' must be uint8 of shape (N, 3072)"),
    ("dtype", "data_batch_3: 'data' must be uint8"),
    ("label range", "data_batch_3: labels must lie in 0..9"),
    ("label count", "data_batch_3: (39,) labels for 40 images"),
    ("not a dict", "data_batch_3: not a valid CIFAR-10 batch file"),
])
def test_damaged_batch_files_are_refused_by_name(cifar_dir, damage, expected):
    root, _ = cifar_dir
    path = root / "cifar-10-batches-py" / "data_batch_3"
    good = {"labels": [1] * 40, "data": np.zeros((40, 3072), np.uint8)}
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[:5000])
    elif damage == "garbage":
        path.write_bytes(os.urandom(3000))
    elif damage == "shape":
        synthetic_cifar.write_py3_pickle(path, {**good, "data": np.zeros((40, 100), np.uint8)})
    elif damage == "dtype":
        synthetic_cifar.write_py3_pickle(path, {**good, "data": np.zeros((40, 3072), np.int16)})
    elif damage == "label range":
        synthetic_cifar.write_py2_pickle(path, {**good, "labels": [3] * 39 + [10]})
    elif damage == "label count":
        synthetic_cifar.write_py2_pickle(path, {**good, "labels": [3] * 39})
    elif damage == "not a dict":
        synthetic_cifar.write_py3_pickle(path, [1, 2, 3])
    with pytest.raises(DataError) as error:
        get_cifar10(root, 30, url="")
    assert expected in str(error.value) and str(path) in str(error.value)


class RunsCode:
    """Unpickling this would call os.system: the classic pickle payload."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_tampered_pickle_is_refused_without_running_anything(cifar_dir, tmp_path):
    root, _ = cifar_dir
    marker = tmp_path / "payload-ran"
    for payload in (RunsCode(marker), {"data": RunsCode(marker), "labels": [1]}):
        with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
            pickle.dump(payload, f, protocol=2)
        with pytest.raises(DataError, match="test_batch.*forbidden object (posix|os|nt).system"):
            get_cifar10(root, 30, url="")
        assert not marker.exists()


def test_tarball_with_wrong_md5_is_refused_or_downloaded_again_once(tmp_path):
    source, data = tmp_path / "source", tmp_path / "data"
    synthetic_cifar.write_dataset(source)
    good_md5 = synthetic_cifar.make_tarball(source, tmp_path / "mirror.tar.gz")
    data.mkdir()
    local = data / cifar10_utils.TARBALL_NAME
    local.write_bytes(b"not the dataset")
    with pytest.raises(DataError, match="md5"):  # no URL: refused, and the file is kept
        get_cifar10(data, 30, url="", md5=good_md5)
    assert local.read_bytes() == b"not the dataset"
    bad_mirror = tmp_path / "bad.tar.gz"
    bad_mirror.write_bytes(b"also not the dataset")
    with pytest.raises(DataError, match="md5"):  # the fresh copy is wrong too: nothing replaced
        get_cifar10(data, 30, url=bad_mirror.as_uri(), md5=good_md5)
    assert local.read_bytes() == b"not the dataset"
    data_after = get_cifar10(data, 30, url=(tmp_path / "mirror.tar.gz").as_uri(), md5=good_md5)
    assert len(data_after["test"]) == 40 and cifar10_utils.file_md5(local) == good_md5


@pytest.mark.parametrize("name, kind, linkname", [
    ("../escaped.txt", tarfile.REGTYPE, ""),
    ("cifar-10-batches-py/../../escaped.txt", tarfile.REGTYPE, ""),
    ("/tmp/escaped-absolute.txt", tarfile.REGTYPE, ""),
    ("cifar-10-batches-py/link", tarfile.SYMTYPE, "../../escaped.txt"),
    ("cifar-10-batches-py/hard", tarfile.LNKTYPE, "/etc/passwd"),
    ("cifar-10-batches-py/device", tarfile.CHRTYPE, ""),
])
def test_unsafe_tar_members_write_nothing_outside_data_dir(tmp_path, name, kind, linkname):
    source, data = tmp_path / "source", tmp_path / "data"
    synthetic_cifar.write_dataset(source)
    data.mkdir()
    tar_path = data / cifar10_utils.TARBALL_NAME
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        synthetic_cifar.add_tar_member(tar, name, kind=kind, linkname=linkname)
    md5 = cifar10_utils.file_md5(tar_path)
    with pytest.raises(DataError, match="unsafe member"):
        get_cifar10(data, 30, url="", md5=md5)
    assert not (tmp_path / "escaped.txt").exists()
    assert not os.path.exists("/tmp/escaped-absolute.txt")
    assert os.listdir(data) == [cifar10_utils.TARBALL_NAME]  # no half-extracted folder either


def test_incomplete_folder_gets_only_its_missing_files(tmp_path):
    source, data = tmp_path / "source", tmp_path / "data"
    synthetic_cifar.write_dataset(source)
    data.mkdir()
    md5 = synthetic_cifar.make_tarball(source, data / cifar10_utils.TARBALL_NAME)
    (data / "cifar-10-batches-py").mkdir()
    (data / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"the user's file")
    with pytest.raises(DataError, match="data_batch_1: not a valid CIFAR-10 batch file"):
        get_cifar10(data, 30, url="", md5=md5)
    # the missing files were added beside it; the user's own file was neither replaced nor moved
    assert (data / "cifar-10-batches-py" / "data_batch_1").read_bytes() == b"the user's file"
    assert (data / "cifar-10-batches-py" / "test_batch").read_bytes() == \
        (source / "cifar-10-batches-py" / "test_batch").read_bytes()
    assert sorted(os.listdir(data)) == ["cifar-10-batches-py", cifar10_utils.TARBALL_NAME]


def test_interrupted_download_leaves_no_file_that_passes_as_data(tmp_path, monkeypatch):
    source = tmp_path / "source"
    synthetic_cifar.write_dataset(source)
    md5 = synthetic_cifar.make_tarball(source, tmp_path / "mirror.tar.gz")
    real_urlopen = urllib.request.urlopen

    class DiesHalfway:
        def __init__(self, response):
            self.response, self.headers, self.calls = response, response.headers, 0

        def read(self, size):
            self.calls += 1
            if self.calls == 2:
                raise KeyboardInterrupt  # Ctrl-C in the middle of the transfer
            return self.response.read(min(size, 1000))

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.response.close()

    monkeypatch.setattr(urllib.request, "urlopen",
                        lambda url, timeout: DiesHalfway(real_urlopen(url, timeout=timeout)))
    data = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        get_cifar10(data, 30, url=(tmp_path / "mirror.tar.gz").as_uri(), md5=md5)
    assert not data.exists()  # the folder the download created is gone with it


# --- flags and environment ----------------------------------------------------------------------

@pytest.mark.parametrize("trainer", TRAINERS)
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


def test_cuda_asked_for_without_cuda_is_one_clear_line(cifar_dir, tmp_path):
    import torch
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, stderr = run_script("train_mlp_pytorch.py", "--device", "cuda", "--data_dir",
                                 cifar_dir[0], "--data_url", "", "--results_dir", tmp_path / "r")
    assert code == 1
    assert_one_clear_line(stderr, "--device cuda", "no CUDA")


@pytest.mark.parametrize("trainer", TRAINERS)
def test_unwritable_results_folder_is_said_before_anything_else(trainer, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    kwargs = dict(hidden_dims=[8], lr=0.1, batch_size=16, epochs=1, seed=0,
                  data_dir=str(tmp_path / "no-data-here"), data_url="",
                  results_dir=str(blocker / "results"))
    if trainer is train_mlp_pytorch:
        kwargs["use_batch_norm"] = False
    # the data is missing too, but the results problem is what is reported: it comes first
    with pytest.raises(UserError, match="results folder .* is not writable"):
        trainer.train(**kwargs)


def test_batch_larger_than_training_set_is_refused(cifar_dir, tmp_path):
    with pytest.raises(UserError, match="larger than the 170 training images"):
        train_mlp_numpy.train([8], 0.1, 500, 1, 0, str(cifar_dir[0]), validation_size=30,
                              data_url="", results_dir=str(tmp_path / "r"))
    assert os.listdir(tmp_path / "r") == []  # a run refused before training leaves no folder


# --- training -----------------------------------------------------------------------------------

@pytest.mark.parametrize("script", ["train_mlp_numpy.py", "train_mlp_pytorch.py"])
def test_divergence_stops_with_advice_and_nonzero_exit(script, cifar_dir, tmp_path):
    code, _, stderr = run_script(script, "--lr", "1e6", "--hidden_dims", "32", "--batch_size", 16,
                                 "--validation_size", 30, "--data_dir", cifar_dir[0],
                                 "--data_url", "", "--results_dir", tmp_path / "r", "--epochs", 3)
    assert code == 1
    assert_one_clear_line(stderr, "diverged", "lower --lr")
    (folder,) = os.listdir(tmp_path / "r")
    metrics = json.loads((tmp_path / "r" / folder / "metrics.json").read_text())
    assert metrics["status"] == "diverged"


def test_best_model_is_never_overwritten_by_a_diverged_one(cifar_dir, tmp_path, monkeypatch):
    real_forward = train_mlp_numpy.CrossEntropyModule.forward
    calls = {"n": 0}

    def nan_in_second_epoch(self, x, y):
        calls["n"] += 1
        return np.nan if calls["n"] > 15 else real_forward(self, x, y)  # 10 steps per epoch

    monkeypatch.setattr(train_mlp_numpy.CrossEntropyModule, "forward", nan_in_second_epoch)
    results = tmp_path / "r"
    with pytest.raises(TrainingDiverged, match="epoch 2"):
        train_mlp_numpy.train([16], 0.05, 16, 5, 0, str(cifar_dir[0]), validation_size=30,
                              data_url="", results_dir=str(results))
    (folder,) = os.listdir(results)
    metrics = json.loads((results / folder / "metrics.json").read_text())
    assert metrics["status"] == "diverged" and len(metrics["val_accuracy"]) == 1
    state, _, _ = train_mlp_numpy.read_weights(results / folder / "model.npz")
    assert all(np.all(np.isfinite(value)) for value in state.values())
    assert (results / folder / "loss.png").exists()


@pytest.mark.parametrize("script, extra", [("train_mlp_numpy.py", []),
                                           ("train_mlp_pytorch.py",
                                            ["--use_batch_norm", "--dropout", "0.1"])])
def test_saved_model_of_another_architecture_names_both(script, extra, cifar_dir, tmp_path):
    common = ["--batch_size", 16, "--validation_size", 30, "--data_dir", cifar_dir[0],
              "--data_url", "", "--epochs", 1, *extra]
    code, _, _ = run_script(script, "--hidden_dims", 16, "--results_dir", tmp_path / "r", *common)
    assert code == 0
    (saved,) = (tmp_path / "r").glob("*/model.*")
    code, stdout, _ = run_script(script, "--hidden_dims", 16, "--evaluate", saved, *common)
    assert code == 0 and "test accuracy" in stdout
    code, _, stderr = run_script(script, "--hidden_dims", 24, "--evaluate", saved, *common)
    assert code == 1
    assert_one_clear_line(stderr, "--hidden_dims 24 (the model: --hidden_dims 16)")
    # a file that records no architecture (as earlier versions saved) is checked by its shapes
    legacy = tmp_path / f"legacy{saved.suffix}"
    if saved.suffix == ".npz":
        with np.load(saved) as arrays:
            np.savez(legacy, **{name: arrays[name] for name in arrays.files
                                if name != "architecture"})
    else:
        import torch
        torch.save(torch.load(saved, weights_only=True)["state_dict"], legacy)
    code, _, stderr = run_script(script, "--hidden_dims", 24, "--evaluate", legacy, *common)
    assert code == 1
    assert_one_clear_line(stderr, "(16, 3072)", "(24, 3072)", "--activation")
    code, _, stderr = run_script(script, "--evaluate", tmp_path / "missing", *common)
    assert code == 1
    assert_one_clear_line(stderr, "No such file")


def test_a_rerun_never_overwrites_an_earlier_run(cifar_dir, tmp_path):
    kwargs = dict(hidden_dims=[8], lr=0.1, batch_size=16, epochs=1, seed=0,
                  data_dir=str(cifar_dir[0]), validation_size=30, data_url="",
                  results_dir=str(tmp_path / "r"))
    train_mlp_numpy.train(**kwargs)
    train_mlp_numpy.train(**kwargs)
    assert sorted(os.listdir(tmp_path / "r")) == ["numpy_h8_lr0.1_b16_e1_s0",
                                                  "numpy_h8_lr0.1_b16_e1_s0_2"]
