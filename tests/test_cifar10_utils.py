"""The data path, on tiny synthetic datasets in the official format: no real data, no network."""
import os

import numpy as np
import pytest
import synthetic_cifar

import cifar10_utils
from cifar10_utils import DataError, get_cifar10, get_dataloader


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


def test_python3_pickles_with_str_keys_load_too(tmp_path):
    written = synthetic_cifar.write_dataset(tmp_path, writer=synthetic_cifar.write_py3_pickle)
    images, labels = cifar10_utils.load_batch(tmp_path / "cifar-10-batches-py" / "test_batch")
    np.testing.assert_array_equal(images, written["test"][0])
    np.testing.assert_array_equal(labels, written["test"][1])


def test_tarball_is_checked_and_extracted(tmp_path):
    source, target = tmp_path / "source", tmp_path / "data"
    written = synthetic_cifar.write_dataset(source)
    target.mkdir()
    md5 = synthetic_cifar.make_tarball(source, target / cifar10_utils.TARBALL_NAME)
    with pytest.raises(DataError, match="md5"):
        get_cifar10(target, 30, url="", md5="0" * 32)
    data = get_cifar10(target, 30, url="", md5=md5)
    np.testing.assert_array_equal(data["test"].images, written["test"][0])
    assert sorted(os.listdir(target)) == [cifar10_utils.FOLDER_NAME, cifar10_utils.TARBALL_NAME]


def test_download_from_url_checks_md5_and_leaves_no_partial_file(tmp_path):
    source, target = tmp_path / "source", tmp_path / "data"
    synthetic_cifar.write_dataset(source)
    tar_path = tmp_path / "mirror.tar.gz"
    md5 = synthetic_cifar.make_tarball(source, tar_path)
    url = tar_path.as_uri()  # file:// goes through the same urllib download code, offline
    with pytest.raises(DataError, match="expected 0{32}"):
        get_cifar10(target, 30, url=url, md5="0" * 32)
    assert not target.exists()  # nothing kept, not even the folder the download created
    data = get_cifar10(target, 30, url=url, md5=md5)
    assert len(data["test"]) == 40
    assert sorted(os.listdir(target)) == [cifar10_utils.FOLDER_NAME, cifar10_utils.TARBALL_NAME]


def test_missing_data_without_url_explains_what_to_do(tmp_path):
    with pytest.raises(DataError) as error:
        get_cifar10(tmp_path, url="")
    message = str(error.value)
    assert cifar10_utils.CIFAR10_URL in message and "--data_dir" in message
    assert "cifar-10-batches-py" in message and "\n" not in message


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


def test_course_default_returns_torch_tensors(cifar_dir):
    torch = pytest.importorskip("torch")
    root, _ = cifar_dir
    loaders = get_dataloader(get_cifar10(root, 30, url=""), batch_size=8)
    images, labels = next(iter(loaders["validation"]))
    assert isinstance(images, torch.Tensor) and images.shape == (8, 3, 32, 32)
    assert labels.dtype == torch.int64


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
