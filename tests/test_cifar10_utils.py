"""The data layer (dataset/, and cifar10_utils.py, the course's interface to it) on tiny synthetic
datasets in the official format, no real data and no network: exact loading and a fixed split,
the course's loaders, and every damaged or misplaced dataset refused by name with what to do,
nothing executed."""
import os
import re
import shutil
import pickle
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import synthetic_cifar
from helpers import REPO, RunsCode, assert_one_clear_line, run_script, train

import cifar10_utils
import train_mlp_numpy
from cifar10_utils import get_cifar10, get_dataloader
from dataset.batch_files import class_names, load_batch
from dataset.cifar10 import CIFAR10_URL, CLASS_NAMES, TARBALL_NAME
from safety.errors import DataError


def row_keys(images):
    return sorted(image.tobytes() for image in images)


def test_py2_batches_load_exactly_and_split_is_fixed(cifar_dir):
    root, written = cifar_dir
    data = get_cifar10(root, validation_size=30, url="")
    assert (len(data["train"]), len(data["validation"]), len(data["test"])) == (170, 30, 40)
    for split in data.values():
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (3, 32, 32)
        assert split.labels.dtype == np.int64
    # train and validation together are exactly the written training images, each once
    both = np.concatenate([data["train"].images, data["validation"].images])
    assert row_keys(both) == row_keys(written["train"][0])
    np.testing.assert_array_equal(data["test"].images, written["test"][0])
    np.testing.assert_array_equal(data["test"].labels, written["test"][1])
    # labels travel with their images through the split
    lookup = {img.tobytes(): lab for img, lab in zip(*written["train"])}
    assert all(lookup[img.tobytes()] == lab
               for img, lab in zip(data["validation"].images, data["validation"].labels))
    again = get_cifar10(root, validation_size=30, url="")
    np.testing.assert_array_equal(again["validation"].images, data["validation"].images)
    image, label = data["test"][3]  # an item as a torch Dataset gives it
    assert image.shape == (3, 32, 32) and label == written["test"][1][3]
    np.testing.assert_array_equal(image, written["test"][0][3])


def test_a_validation_split_of_none_or_of_every_training_image_is_the_courses_to_ask_for(
        cifar_dir, tmp_path):
    """As in the course's cifar10_utils, 0 and every training image are splits get_cifar10 makes,
    and the validation loader goes through none; the trainers, which need both splits, refuse the
    second in one line naming the flag to change."""
    root, written = cifar_dir
    every = len(written["train"][1])
    for validation_size, sizes in ((0, (every, 0)), (every, (0, every))):
        data = get_cifar10(root, validation_size=validation_size, url="")
        assert (len(data["train"]), len(data["validation"])) == sizes
    loaders = get_dataloader(get_cifar10(root, validation_size=0, url=""), batch_size=16)
    assert list(loaders["validation"]) == []
    assert sum(len(labels) for _, labels in loaders["train"]) == every // 16 * 16
    code, _, stderr = run_script("train_mlp_numpy.py", "--data_dir", root, "--validation_size",
                                 every, "--data_url", "", "--results_dir", tmp_path / "results")
    assert code != 0
    assert_one_clear_line(stderr, f"--validation_size {every} sets aside every training image "
                                  f"of {root}: none is left to train on")


def test_the_validation_images_are_those_every_saved_result_was_split_with(cifar_dir):
    """The first validation_size of a permutation drawn with seed 42 (dataset/splits.py's
    SPLIT_SEED), whatever the run's seed: every saved run's numbers, and every fingerprint its
    resume compares, were measured on this split."""
    root, written = cifar_dir
    chosen = np.random.default_rng(42).permutation(len(written["train"][1]))[:30]
    data = get_cifar10(root, validation_size=30, url="")
    assert row_keys(data["validation"].images) == row_keys(written["train"][0][chosen])


def test_python3_pickles_with_str_keys_load_too(tmp_path):
    written = synthetic_cifar.write_dataset(tmp_path, writer=synthetic_cifar.write_py3_pickle)
    images, labels = load_batch(tmp_path / "cifar-10-batches-py" / "test_batch")
    np.testing.assert_array_equal(images, written["test"][0])
    np.testing.assert_array_equal(labels, written["test"][1])


def test_dataloaders_batch_normalize_and_shuffle_reproducibly(cifar_dir):
    root, _ = cifar_dir
    data = get_cifar10(root, validation_size=30, url="")
    loaders = get_dataloader(data, batch_size=16, return_numpy=True, seed=3)
    train = list(loaders["train"])
    assert len(train) == len(loaders["train"]) == 170 // 16  # drop_last
    assert all(images.shape == (16, 3, 32, 32) and images.dtype == np.float32
               for images, _ in train)
    test = list(loaders["test"])
    assert [len(labels) for _, labels in test] == [16, 16, 8]
    mean, std = np.array(cifar10_utils.MEAN), np.array(cifar10_utils.STD)
    expected = (data["test"].images[:16] / 255.0 - mean[:, None, None]) / std[:, None, None]
    np.testing.assert_allclose(test[0][0], expected, rtol=1e-5, atol=1e-5)
    same_seed = list(get_dataloader(data, 16, return_numpy=True, seed=3)["train"])
    other_seed = list(get_dataloader(data, 16, return_numpy=True, seed=4)["train"])
    assert all(np.array_equal(a[1], b[1]) for a, b in zip(train, same_seed))
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(train, other_seed))
    epoch_two = list(loaders["train"])  # a new permutation every epoch
    assert not all(np.array_equal(a[1], b[1]) for a, b in zip(train, epoch_two))


def test_a_loader_counts_its_images_as_the_course_template_does(cifar_dir):
    """len(data_loader.dataset), as a torch DataLoader answers it: every image of the split,
    those a dropped last batch leaves out too."""
    data = get_cifar10(cifar_dir[0], validation_size=30, url="")
    loaders = get_dataloader(data, batch_size=16)
    for key in ("train", "validation", "test"):
        assert len(loaders[key].dataset) == len(data[key])
    assert sum(len(labels) for _, labels in loaders["test"]) == len(loaders["test"].dataset)


def test_course_default_returns_torch_tensors(cifar_dir):
    torch = pytest.importorskip("torch")
    root, _ = cifar_dir
    loaders = get_dataloader(get_cifar10(root, 30, url=""), batch_size=8)
    images, labels = next(iter(loaders["validation"]))
    assert isinstance(images, torch.Tensor) and images.shape == (8, 3, 32, 32)
    assert labels.dtype == torch.int64


def test_class_names_fall_back_to_cifar10s_only_without_batches_meta(cifar_dir):
    root, _ = cifar_dir
    assert class_names(root)[:2] == ["class0", "class1"]
    os.remove(root / "cifar-10-batches-py" / "batches.meta")
    assert class_names(root) == list(CLASS_NAMES)


def test_a_tilde_in_data_dir_means_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    synthetic_cifar.write_dataset(tmp_path / "home" / "cachedata")
    assert len(get_cifar10("~/cachedata", 30, url="")["test"]) == 40
    args = train_mlp_numpy.parse_args(["--data_dir=~/cachedata", "--results_dir", "~/r"])
    assert (args.data_dir, args.results_dir) == (str(tmp_path / "home" / "cachedata"),
                                                 str(tmp_path / "home" / "r"))
    assert not (tmp_path / "~").exists()


# --- refusals ---
def test_missing_data_without_url_explains_what_to_do(tmp_path):
    with pytest.raises(DataError) as error:
        get_cifar10(tmp_path, url="")
    message = str(error.value)
    assert CIFAR10_URL in message and "--data_dir" in message
    assert "cifar-10-batches-py" in message and "\n" not in message


def test_data_dir_pointing_inside_the_dataset_names_its_parent(cifar_dir):
    root, _ = cifar_dir
    with pytest.raises(DataError, match=f"point --data_dir at its parent, {root}$"):
        get_cifar10(root / "cifar-10-batches-py", 30, url="")


def test_a_renamed_copy_of_the_dataset_folder_names_its_parent_too(cifar_dir, tmp_path):
    """The batch files right inside --data_dir, in a folder of another name: no download into
    it, the same advice."""
    copy = tmp_path / "my-cifar"
    shutil.copytree(cifar_dir[0] / "cifar-10-batches-py", copy)
    parent = re.escape(str(tmp_path))
    with pytest.raises(DataError, match=f"point --data_dir at its parent, {parent}$"):
        get_cifar10(copy, 30, url="http://127.0.0.1:9/unreachable.tar.gz")


def test_an_incomplete_folder_names_the_missing_files(cifar_dir):
    root, _ = cifar_dir
    for name in ("data_batch_2", "test_batch"):
        os.remove(root / "cifar-10-batches-py" / name)
    with pytest.raises(DataError, match="lacks data_batch_2, test_batch, and there is no"):
        get_cifar10(root, 30, url="")


@pytest.mark.parametrize("damage, expected", [
    ("truncate", "data_batch_3: not a valid CIFAR-10 batch file"),
    ("garbage", "data_batch_3: not a valid CIFAR-10 batch file"),
    ("shape", "data_batch_3: 'data' must be uint8 of shape (N, 3072)"),
    ("dtype", "data_batch_3: 'data' must be uint8"),
    ("label range", "data_batch_3: labels must lie in 0..9"),
    ("label count", "data_batch_3: labels of shape (39,) for 40 images"),
    ("label type", "data_batch_3: labels must be whole numbers, not float64"),
    ("not a dict", "data_batch_3: not a valid CIFAR-10 batch file"),
    ("huge claim", "data_batch_3: not a valid CIFAR-10 batch file (it claims more bytes than it"),
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
    elif damage == "label type":
        synthetic_cifar.write_py3_pickle(path, {**good, "labels": [3.5] * 40})
    elif damage == "label count":
        synthetic_cifar.write_py2_pickle(path, {**good, "labels": [3] * 39})
    elif damage == "not a dict":
        synthetic_cifar.write_py3_pickle(path, [1, 2, 3])
    elif damage == "huge claim":  # BINBYTES8 of 2**50 bytes: the unpickler tries to allocate them
        path.write_bytes(b"\x80\x04\x8e" + (2 ** 50).to_bytes(8, "little") + b"xx")
    with pytest.raises(DataError) as error:
        get_cifar10(root, 30, url="")
    assert expected in str(error.value) and str(path) in str(error.value)


LIMITED_LOAD = """
import resource, sys
from dataset.batch_files import load_batch
from safety.errors import DataError, UserError
with open("/proc/self/status") as f:
    in_use = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize"))
resource.setrlimit(resource.RLIMIT_AS, (in_use + 10_000_000, resource.RLIM_INFINITY))
try:
    load_batch(sys.argv[1])
except UserError as error:
    print(type(error).__name__, error)
"""


def test_running_out_of_memory_while_loading_is_not_called_damage(tmp_path):
    """A whole 30 MB batch file read under a memory limit 10 MB above what the process holds:
    the message is the memory, not the file, whose deletion would cost a download."""
    path = tmp_path / "data_batch_1"
    synthetic_cifar.write_py3_pickle(path, {"labels": [1] * 10_000,
                                            "data": np.zeros((10_000, 3072), np.uint8)})
    shown = subprocess.run([sys.executable, "-c", LIMITED_LOAD, str(path)], capture_output=True,
                           text=True, cwd=REPO, timeout=60).stdout
    assert shown == (f"UserError out of memory while reading {path}: free memory, or raise the "
                     f"memory limit (ulimit -v, a job's --mem), and run again\n")


def test_the_advice_for_a_damaged_batch_file_works_when_followed(tmp_path):
    source, data = tmp_path / "source", tmp_path / "data"
    written = synthetic_cifar.write_dataset(source)
    data.mkdir()
    md5 = synthetic_cifar.make_tarball(source, data / TARBALL_NAME)
    get_cifar10(data, 30, url="", md5=md5)  # extracts
    damaged = data / "cifar-10-batches-py" / "test_batch"
    damaged.write_bytes(damaged.read_bytes()[:3000])
    with pytest.raises(DataError, match="delete it and let the data be extracted again"):
        get_cifar10(data, 30, url="", md5=md5)
    os.remove(damaged)
    np.testing.assert_array_equal(get_cifar10(data, 30, url="", md5=md5)["test"].images,
                                  written["test"][0])


def test_a_damaged_meta_file_is_found_before_training(cifar_dir, tmp_path):
    root, _ = cifar_dir
    (root / "cifar-10-batches-py" / "batches.meta").write_bytes(b"garbage")
    with pytest.raises(DataError, match="batches.meta: not a valid CIFAR-10 meta file"):
        train("numpy", root, tmp_path / "r")
    assert not (tmp_path / "r").exists() or not os.listdir(tmp_path / "r")


@pytest.mark.parametrize("label_names", ["abcdefghij", [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]])
def test_meta_label_names_that_are_no_list_of_names_are_refused(label_names, cifar_dir):
    """Ten letters are ten 'names' to a loop over a text: the figures would label one a class."""
    root, _ = cifar_dir
    synthetic_cifar.write_py3_pickle(root / "cifar-10-batches-py" / "batches.meta",
                                     {"label_names": label_names})
    with pytest.raises(DataError, match="its label_names are not a list of names"):
        class_names(root)


def test_a_meta_file_that_is_a_fifo_is_refused_not_waited_on(cifar_dir, tmp_path):
    """Nothing will ever write to it: reading it would block the run for good."""
    root, _ = cifar_dir
    meta = root / "cifar-10-batches-py" / "batches.meta"
    meta.unlink()
    os.mkfifo(meta)

    def unblock_a_reader():  # so that a read of the FIFO ends in a failure, not in a hang
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                descriptor = os.open(meta, os.O_WRONLY | os.O_NONBLOCK)
            except OSError:  # no reader yet
                time.sleep(0.05)
                continue
            os.close(descriptor)
            return

    threading.Thread(target=unblock_a_reader, daemon=True).start()
    with pytest.raises(DataError, match="batches.meta: not a regular file"):
        class_names(root)


def test_tampered_pickle_is_refused_without_running_anything(cifar_dir, tmp_path):
    root, _ = cifar_dir
    marker = tmp_path / "payload-ran"
    for payload in (RunsCode(marker), {"data": RunsCode(marker), "labels": [1]}):
        with open(root / "cifar-10-batches-py" / "test_batch", "wb") as f:
            pickle.dump(payload, f, protocol=2)
        with pytest.raises(DataError, match="test_batch.*forbidden object (posix|os|nt).system"):
            get_cifar10(root, 30, url="")
        assert not marker.exists()


def test_unpickler_refuses_numpy_callables_beyond_the_four_it_needs(cifar_dir, tmp_path):
    """numpy.testing's runstring executes its argument: a batch file may name it, but the
    unpickler must refuse it like any global outside the exact four a batch contains."""
    root, _ = cifar_dir
    marker = tmp_path / "payload-ran"
    payload = (b"\x80\x02cnumpy.testing._private.utils\nrunstring\n"
               + b"X" + len(code := f"open({str(marker)!r}, 'w')").to_bytes(4, "little")
               + code.encode() + b"}\x86R.")  # runstring(code, {})
    (root / "cifar-10-batches-py" / "data_batch_2").write_bytes(payload)
    with pytest.raises(DataError, match="forbidden object numpy.testing._private.utils.runstring"):
        get_cifar10(root, 30, url="")
    assert not marker.exists()


def write_resaved_by_python3(path, content):
    """A batch as Python 3 re-saves one it read with encoding='bytes': bytes keys and strings,
    pickled with protocol 2, which spells each bytes object as _codecs.encode(text, 'latin1')."""
    def as_bytes(value):
        if isinstance(value, str):
            return value.encode("latin1")
        if isinstance(value, list):
            return [as_bytes(item) for item in value]
        return value
    with open(path, "wb") as f:
        pickle.dump({as_bytes(key): as_bytes(value) for key, value in content.items()}, f,
                    protocol=2)


def test_a_batch_re_saved_by_python3_with_protocol_2_is_read(tmp_path):
    written = synthetic_cifar.write_dataset(tmp_path, writer=write_resaved_by_python3)
    assert b"_codecs\nencode" in (tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes()
    dataset = get_cifar10(tmp_path, 30, url="")
    np.testing.assert_array_equal(dataset["test"].images, written["test"][0])
    np.testing.assert_array_equal(dataset["test"].labels, written["test"][1])
    assert class_names(tmp_path) == [f"class{i}" for i in range(10)]


@pytest.mark.parametrize("arguments", [b"X\x01\x00\x00\x00xX\x05\x00\x00\x00rot13",
                                       b"C\x01xX\x04\x00\x00\x00zlib", b"X\x01\x00\x00\x00x",
                                       b"X\x01\x00\x00\x00xX\x06\x00\x00\x00latin1N"])
def test_codecs_encode_is_admitted_only_as_latin1_of_a_text(tmp_path, arguments):
    """encode(text, 'latin1') is what Python 3 writes for bytes; any other encoding, argument
    or count of them is refused as the payload it would be."""
    path = tmp_path / "data_batch_1"
    path.write_bytes(b"\x80\x02c_codecs\nencode\n(" + arguments + b"tR.")
    with pytest.raises(DataError, match=r"forbidden call _codecs.encode\(.*\), not encode"):
        load_batch(path)


@pytest.mark.parametrize("arguments, error, message", [
    (dict(batch_size=10 ** 6), ValueError, "is larger than the .* images it batches"),
    (dict(batch_size=16, seed=True), TypeError, "seed must be an integer, not True"),
    (dict(batch_size=16, seed=-1), ValueError, "seed is -1, out of range"),
])
def test_the_course_loaders_refuse_what_would_train_nothing_or_not_as_asked(arguments, error,
                                                                            message, cifar_dir):
    """A training loader of no batch would leave the template's loop training nothing."""
    data = get_cifar10(str(cifar_dir[0]), validation_size=30, url="")
    with pytest.raises(error, match=message):
        get_dataloader(data, **arguments)
