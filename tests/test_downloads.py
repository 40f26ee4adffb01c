"""Getting the dataset (dataset/fetch.py and safety/downloads.py, through
cifar10_utils.get_cifar10): the tarball's md5 checked, a download that fails or is stopped leaves
nothing that passes as data, extraction writes nothing outside the data folder and only what is
missing."""
import os
import tarfile
import tempfile
import urllib.request

import numpy as np
import pytest
import synthetic_cifar
from helpers import mode

from cifar10_utils import get_cifar10
from dataset.cifar10 import FOLDER_NAME, TARBALL_NAME
from safety.downloads import download, file_md5
from safety.errors import DataError


def test_tarball_is_checked_and_extracted(tmp_path):
    source, target = tmp_path / "source", tmp_path / "data"
    written = synthetic_cifar.write_dataset(source)
    target.mkdir()
    md5 = synthetic_cifar.make_tarball(source, target / TARBALL_NAME)
    with pytest.raises(DataError, match="md5"):
        get_cifar10(target, 30, url="", md5="0" * 32)
    data = get_cifar10(target, 30, url="", md5=md5)
    np.testing.assert_array_equal(data["test"].images, written["test"][0])
    assert sorted(os.listdir(target)) == [FOLDER_NAME, TARBALL_NAME]


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
    assert sorted(os.listdir(target)) == [FOLDER_NAME, TARBALL_NAME]


def test_tarball_with_wrong_md5_is_refused_or_downloaded_again_once(tmp_path):
    source, data = tmp_path / "source", tmp_path / "data"
    synthetic_cifar.write_dataset(source)
    good_md5 = synthetic_cifar.make_tarball(source, tmp_path / "mirror.tar.gz")
    data.mkdir()
    local = data / TARBALL_NAME
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
    assert len(data_after["test"]) == 40 and file_md5(local) == good_md5


def test_a_wrong_md5_with_no_fresh_copy_says_the_md5_is_wrong(tmp_path):
    (tmp_path / TARBALL_NAME).write_bytes(b"not the dataset")
    with pytest.raises(DataError) as refused:
        get_cifar10(str(tmp_path), 30, url=(tmp_path / "none.tar.gz").as_uri())
    message = str(refused.value)
    assert "has md5" in message and "no fresh copy came" in message
    assert "expected" not in message.split("no fresh copy came")[1]


def test_a_data_url_may_be_a_plain_path_to_the_tarball(tmp_path):
    source = tmp_path / "source"
    written = synthetic_cifar.write_dataset(source)
    md5 = synthetic_cifar.make_tarball(source, tmp_path / "mirror.tar.gz")
    data = get_cifar10(tmp_path / "data", 30, url=str(tmp_path / "mirror.tar.gz"), md5=md5)
    np.testing.assert_array_equal(data["test"].images, written["test"][0])


def test_a_data_url_that_is_no_url_is_one_line_and_leaves_no_folder(tmp_path):
    data = tmp_path / "data"
    with pytest.raises(DataError, match="could not download not a url"):
        get_cifar10(data, 30, url="not a url")
    assert not data.exists()


def test_a_failed_download_removes_every_folder_it_made(tmp_path):
    with pytest.raises(DataError, match="could not download"):
        get_cifar10(str(tmp_path / "nest" / "a" / "b" / "c"), 30,
                    url=(tmp_path / "missing.tar.gz").as_uri())
    assert os.listdir(tmp_path) == []


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


def test_downloaded_tarball_gets_the_permissions_of_the_umask(tmp_path):
    source = tmp_path / "source"
    synthetic_cifar.write_dataset(source)
    md5 = synthetic_cifar.make_tarball(source, tmp_path / "mirror.tar.gz")
    previous = os.umask(0o022)
    try:
        get_cifar10(tmp_path / "data", 30, url=(tmp_path / "mirror.tar.gz").as_uri(), md5=md5)
    finally:
        os.umask(previous)
    assert mode(tmp_path / "data" / TARBALL_NAME) == 0o644


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
    tar_path = data / TARBALL_NAME
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(source / "cifar-10-batches-py", arcname="cifar-10-batches-py")
        synthetic_cifar.add_tar_member(tar, name, kind=kind, linkname=linkname)
    md5 = file_md5(tar_path)
    with pytest.raises(DataError, match="unsafe member"):
        get_cifar10(data, 30, url="", md5=md5)
    assert not (tmp_path / "escaped.txt").exists()
    assert not os.path.exists("/tmp/escaped-absolute.txt")
    assert os.listdir(data) == [TARBALL_NAME]  # no half-extracted folder either


def test_incomplete_folder_gets_only_its_missing_files(tmp_path):
    source, data = tmp_path / "source", tmp_path / "data"
    synthetic_cifar.write_dataset(source)
    data.mkdir()
    md5 = synthetic_cifar.make_tarball(source, data / TARBALL_NAME)
    (data / "cifar-10-batches-py").mkdir()
    (data / "cifar-10-batches-py" / "data_batch_1").write_bytes(b"the user's file")
    with pytest.raises(DataError, match="data_batch_1: not a valid CIFAR-10 batch file"):
        get_cifar10(data, 30, url="", md5=md5)
    # the missing files were added beside it; the user's own file was neither replaced nor moved
    assert (data / "cifar-10-batches-py" / "data_batch_1").read_bytes() == b"the user's file"
    assert (data / "cifar-10-batches-py" / "test_batch").read_bytes() == \
        (source / "cifar-10-batches-py" / "test_batch").read_bytes()
    assert sorted(os.listdir(data)) == ["cifar-10-batches-py", TARBALL_NAME]


def test_a_failed_download_of_missing_batches_names_them(tmp_path):
    """A data folder that lost a batch file, with a --data_url to restore it from that fails:
    the line names the file the run lacks, not only the download."""
    synthetic_cifar.write_dataset(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    os.remove(folder / "data_batch_4")
    with pytest.raises(DataError) as refused:
        get_cifar10(str(tmp_path), 30, url=(tmp_path / "none.tar.gz").as_uri())
    assert str(refused.value).startswith(f"{folder} lacks data_batch_4, and no {TARBALL_NAME} "
                                         f"came to restore the batch files from: could not "
                                         f"download ")
    (tmp_path / TARBALL_NAME).write_bytes(b"not the dataset")
    with pytest.raises(DataError, match=f"^{folder} lacks data_batch_4, and .* has md5 .* no "
                                        f"fresh copy came: could not download"):
        get_cifar10(str(tmp_path), 30, url=(tmp_path / "none.tar.gz").as_uri())


def test_a_download_larger_than_the_file_is_cut_off_and_leaves_nothing(tmp_path):
    """A source that sends more than the file's size (`--data_url /dev/zero`, a wrong file) must
    not fill the data folder's disk: the size is the bound."""
    big = tmp_path / "big"
    with open(big, "wb") as f:
        f.truncate(5 << 20)  # sparse: 5 MB read, none of it on the disk
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(DataError) as refused:
        download(big.as_uri(), data / TARBALL_NAME, "0" * 32, size=1 << 20)
    assert f"larger than the {1 << 20:,} bytes" in str(refused.value)
    assert "\n" not in str(refused.value) and os.listdir(data) == []


def test_a_data_url_that_never_ends_is_refused_before_reading(tmp_path):
    with pytest.raises(DataError, match="/dev/zero is not a regular file") as refused:
        get_cifar10(tmp_path / "data", 30, url="/dev/zero")
    assert "\n" not in str(refused.value) and not (tmp_path / "data").exists()


class Endless:
    """A server's response that names no length and never ends."""
    headers = {}

    def read(self, count):
        return b"\0" * count

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        return False


def test_a_stream_that_names_no_length_is_cut_off_at_the_size(tmp_path, monkeypatch):
    monkeypatch.setattr(urllib.request, "urlopen", lambda url, timeout: Endless())
    data = tmp_path / "data"
    data.mkdir()
    with pytest.raises(DataError, match="larger than the 3,000,000 bytes"):
        download("https://example.invalid/cifar.tar.gz", data / TARBALL_NAME, "0" * 32,
                 size=3_000_000)
    assert os.listdir(data) == []


@pytest.mark.parametrize("unreadable", ["data folder", "batch folder"])
def test_an_unreadable_data_folder_is_named_as_such_not_as_missing_data(unreadable, cifar_dir,
                                                                        monkeypatch):
    """A folder this user may not list (mode 000, say) hides the batch files: the refusal names
    the permission, not a download."""
    root = cifar_dir[0]
    target = str(root if unreadable == "data folder" else root / FOLDER_NAME)
    listdir = os.listdir

    def denied(path):
        if os.path.abspath(path) == os.path.abspath(target):
            raise PermissionError(13, "Permission denied", path)
        return listdir(path)

    monkeypatch.setattr(os, "listdir", denied)
    with pytest.raises(DataError, match=f"^{target} cannot be read by this user") as refused:
        get_cifar10(str(root), validation_size=30, url="")
    assert "download" not in str(refused.value)


def test_a_tarball_in_a_folder_this_user_cannot_write_is_one_clear_line(tmp_path, monkeypatch):
    """A shared folder holding the official tarball, read-only to the user: said with what to
    do, not as a bare PermissionError."""
    source, target = tmp_path / "source", tmp_path / "shared"
    synthetic_cifar.write_dataset(source)
    target.mkdir()
    md5 = synthetic_cifar.make_tarball(source, target / TARBALL_NAME)
    real_mkdtemp = tempfile.mkdtemp

    def read_only(*args, dir=None, **kwargs):
        if dir is not None and os.path.abspath(dir) == str(target):
            raise PermissionError(13, "Permission denied", dir)
        return real_mkdtemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "mkdtemp", read_only)
    with pytest.raises(DataError, match=f"cannot be extracted: {target} is not writable by this "
                                        f"user"):
        get_cifar10(str(target), 30, url="", md5=md5)
