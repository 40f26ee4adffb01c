"""Files fetched and unpacked safely: a download kept only once its md5 checks out, and a
tarball's one folder extracted without links, devices or paths that leave it."""
import hashlib
import os
import pathlib
import shutil
import sys
import tarfile
import tempfile
import urllib.parse
import urllib.request

from tqdm import tqdm

from safety.errors import DataError
from safety.files import write_atomically


def file_md5(path):
    digest = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def as_url(location):
    """--data_url as a URL: one with a scheme as given, a plain path as a file:// URL."""
    return location if "://" in location else pathlib.Path(location).resolve().as_uri()


def _check_local_source(url):
    """A file:// source must be a regular file: a device (/dev/zero) never ends, a FIFO blocks."""
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        path = urllib.request.url2pathname(parsed.path)
        if os.path.exists(path) and not os.path.isfile(path):
            raise DataError(f"could not download {url}: {path} is not a regular file")


def download(url, destination, md5, size):
    """Stream url to destination, which only appears once its md5 checks out: the bytes go
    through write_atomically, so an interrupted or corrupted download never leaves a file that a
    later run could take for the dataset. size: the file's size in bytes; a source that sends
    more is not the file, and is cut off there rather than left to fill the disk."""
    def fetch(out):
        digest, received = hashlib.md5(), 0
        with urllib.request.urlopen(as_url(url), timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            if (total or 0) > size:
                raise DataError(too_large)
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {url}",
                      disable=None) as bar:  # a log file (a job's) gets one line, not a bar
                if bar.disable:
                    print(f"downloading {url}", file=sys.stderr)
                for block in iter(lambda: response.read(1 << 20), b""):
                    received += len(block)
                    if received > size:
                        raise DataError(too_large)
                    out.write(block)
                    digest.update(block)
                    bar.update(len(block))
        if digest.hexdigest() != md5:
            raise DataError(f"download from {url} has md5 {digest.hexdigest()}, expected {md5}; "
                            f"nothing was kept")

    too_large = (f"download from {url} is larger than the {size:,} bytes of the file it should "
                 f"be; stopped, and nothing was kept")
    _check_local_source(as_url(url))
    try:
        write_atomically(destination, fetch, finish_before_stopping=False)
    except (OSError, ValueError) as error:  # URLError and timeouts are OSErrors; a bad URL not
        raise DataError(f"could not download {url} ({error})") from None


def _check_members(tar, tar_path, folder_name):
    """Only plain files and folders inside folder_name/: no links, devices or '..' paths."""
    members = tar.getmembers()
    for member in members:
        parts = member.name.replace("\\", "/").split("/")
        unsafe = (os.path.isabs(member.name) or ".." in parts or parts[0] != folder_name
                  or not (member.isfile() or member.isdir()))
        if unsafe:
            raise DataError(f"{tar_path}: refusing to extract unsafe member '{member.name}' "
                            f"(only plain files under {folder_name}/ are allowed)")
    return members


_EXTRACT_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}


def extract(tar_path, data_dir, folder_name):
    """Extract the tarball's folder_name/ into data_dir, atomically and safely.

    Where the folder exists already, only the files it lacks are added: nothing the user has is
    overwritten or deleted, and a batch file deleted because it was damaged comes back."""
    try:
        staging = tempfile.mkdtemp(prefix=".extract-", dir=data_dir)
    except PermissionError:  # a shared folder holding the tarball, read-only to this user
        raise DataError(f"{tar_path} cannot be extracted: {data_dir} is not writable by this "
                        f"user; copy the tarball to a folder of yours and point --data_dir "
                        f"there") from None
    try:
        try:
            with tarfile.open(tar_path, "r:gz") as tar:
                members = _check_members(tar, tar_path, folder_name)
                # Python's own extraction filter is a second guard where this Python has it
                tar.extractall(staging, members=members, **_EXTRACT_FILTER)
        except (tarfile.TarError, OSError, EOFError) as error:
            raise DataError(f"{tar_path}: not a readable .tar.gz ({error})") from None
        extracted, target = os.path.join(staging, folder_name), os.path.join(data_dir, folder_name)
        if not os.path.isdir(extracted):
            raise DataError(f"{tar_path}: holds no {folder_name}/ folder")
        if not os.path.exists(target):
            os.replace(extracted, target)
            return
        for name in os.listdir(extracted):
            if not os.path.exists(os.path.join(target, name)):
                os.replace(os.path.join(extracted, name), os.path.join(target, name))
    finally:
        shutil.rmtree(staging, ignore_errors=True)
