"""Getting CIFAR-10's files: an extracted folder is used as it is, a tarball is checked against
its md5 and extracted, and a missing or wrong tarball is downloaded (safety/downloads.py keeps a
download only once its md5 is right)."""
import os

from dataset.cifar10 import (
    CIFAR10_MD5,
    CIFAR10_SIZE,
    CIFAR10_URL,
    FOLDER_NAME,
    TARBALL_NAME,
    TEST_FILE,
    TRAIN_FILES,
)
from safety.downloads import download, extract, file_md5
from safety.errors import DataError


def _layout_help(data_dir):
    return (f"expected {os.path.join(data_dir, FOLDER_NAME)}/ (data_batch_1..5, test_batch) or "
            f"{os.path.join(data_dir, TARBALL_NAME)}; download it from {CIFAR10_URL} where there "
            f"is internet and point --data_dir at its folder")


def _missing_batches(folder):
    return [name for name in TRAIN_FILES + (TEST_FILE,)
            if not os.path.isfile(os.path.join(folder, name))]


def _lacking(folder):
    """What a download that failed was to restore, where the batch folder is there: its missing
    files by name, so that the message says what the run lacks and not only the download."""
    missing = _missing_batches(folder) if os.path.isdir(folder) else []
    if not missing:
        return ""
    return f"{folder} lacks {', '.join(missing)}, and "


def _check_data_dir(data_dir):
    """The mistakes of --data_dir that deserve their own message."""
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise DataError(f"--data_dir {data_dir} is a file, not a folder")
    for folder in (data_dir, os.path.join(data_dir, FOLDER_NAME)):
        _check_readable(folder)
    inner = os.path.basename(os.path.normpath(data_dir)) == FOLDER_NAME
    if inner or os.path.isfile(os.path.join(data_dir, TRAIN_FILES[0])):
        parent = os.path.dirname(os.path.abspath(data_dir))
        raise DataError(f"--data_dir {data_dir} is the {FOLDER_NAME}/ folder itself: point "
                        f"--data_dir at its parent, {parent}")


def _check_readable(folder):
    """An unreadable folder is named as such: its files would look missing, and the advice to
    download them again would not help."""
    try:
        os.listdir(folder)
    except PermissionError:
        raise DataError(f"{folder} cannot be read by this user (permission denied): give it "
                        f"read access to the folder, or point --data_dir at a copy") from None
    except OSError:  # missing, or not a folder: the checks that follow say which
        pass


def ensure_dataset(data_dir, url=CIFAR10_URL, md5=CIFAR10_MD5, size=CIFAR10_SIZE):
    """Return the folder holding the batch files, extracting or downloading only what is missing.

    An existing folder is used as is; an existing tarball must match md5. With a url, a missing
    tarball is downloaded and a tarball with the wrong md5 is downloaded again, once; the old file
    is only replaced by a download whose checksum is right. A data folder this call created is
    removed again if nothing could be put in it. size: the tarball's bytes, which no download
    may exceed."""
    _check_data_dir(data_dir)
    folder = os.path.join(data_dir, FOLDER_NAME)
    if not _missing_batches(folder):
        return folder
    tar_path = os.path.join(data_dir, TARBALL_NAME)
    found_md5 = os.path.exists(tar_path) and file_md5(tar_path)
    if found_md5 and found_md5 != md5:
        wrong = f"{tar_path} has md5 {found_md5}, expected {md5}: corrupt or not CIFAR-10"
        if not url:
            raise DataError(f"{wrong}; delete it or replace it with a good copy")
        print(f"{tar_path} has the wrong md5; downloading a fresh copy once from {url}")
        try:
            download(url, tar_path, md5, size)
        except DataError as error:
            raise DataError(f"{_lacking(folder)}{wrong}, and no fresh copy came: "
                            f"{error}") from None
    if not os.path.exists(tar_path):
        if os.path.isdir(folder) and not url:
            raise DataError(f"{folder} lacks {', '.join(_missing_batches(folder))}, and there is "
                            f"no {TARBALL_NAME} beside it to restore the batch files from; "
                            f"{_layout_help(data_dir)}")
        if not url:
            raise DataError(f"no CIFAR-10 data found: {_layout_help(data_dir)}")
        try:
            _download_into(data_dir, url, tar_path, md5, size)
        except DataError as error:
            lacking = _lacking(folder)
            if not lacking:
                raise
            raise DataError(f"{lacking}no {TARBALL_NAME} came to restore the batch files from: "
                            f"{error}") from None
    extract(tar_path, data_dir, FOLDER_NAME)
    if _missing_batches(folder):
        raise DataError(f"{tar_path}: lacks {', '.join(_missing_batches(folder))}; "
                        f"{_layout_help(data_dir)}")
    return folder


def _download_into(data_dir, url, tar_path, md5, size):
    """Download into data_dir, creating it; on failure, every folder created is removed again."""
    created, parent = [], os.path.abspath(data_dir)
    while not os.path.exists(parent):
        created.append(parent)
        parent = os.path.dirname(parent)
    try:
        os.makedirs(data_dir, exist_ok=True)
    except OSError as error:
        raise DataError(f"cannot create the data folder {data_dir} ({error})") from None
    try:
        download(url, tar_path, md5, size)
    except BaseException as error:
        for path in created:  # deepest first; a folder someone else filled meanwhile stays
            if not os.listdir(path):
                os.rmdir(path)
        if isinstance(error, DataError):
            raise DataError(f"{error}; {_layout_help(data_dir)}") from None
        raise
