"""CIFAR-10 for both trainers, and the course's data interface: download, verify, read the official
python batches safely, split off validation, and cut batches.

The images stay uint8 in memory (180 MB for all 60,000) and are preprocessed one batch at a time
(preprocessing.py). No torchvision: the official "python version" files are read directly,
through an unpickler that only admits what those files contain."""
import os
import pickle
from dataclasses import dataclass

import numpy as np

from safety import checks
from safety.downloads import download, extract, file_md5
from safety.errors import DataError, UserError

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
DATA_DIR = "data/"
VALIDATION_SIZE = 5000
TARBALL_NAME = "cifar-10-python.tar.gz"
FOLDER_NAME = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILE = "test_batch"
NUM_CLASSES = 10
META_FILE = "batches.meta"
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
               "truck")
IMAGE_SHAPE = (3, 32, 32)
PIXEL_VALUES = int(np.prod(IMAGE_SHAPE))  # numbers per image: the MLP's input size
SPLIT_SEED = 42  # the train/validation split is a property of the dataset, not of the run's seed
EVAL_BATCH_SIZE = 1000  # evaluation only: larger matrix products, the same accuracy


@dataclass
class Split:
    """One part of the dataset: images uint8 (N, 3, 32, 32) and labels int64 (N,)."""
    images: np.ndarray
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)


# --- Getting the files: an extracted folder, a tarball, or a download ---
def _layout_help(data_dir):
    return (f"expected {os.path.join(data_dir, FOLDER_NAME)}/ (data_batch_1..5, test_batch) or "
            f"{os.path.join(data_dir, TARBALL_NAME)}; download it from {CIFAR10_URL} where there "
            f"is internet and point --data_dir at its folder")


def _missing_batches(folder):
    return [name for name in TRAIN_FILES + (TEST_FILE,)
            if not os.path.isfile(os.path.join(folder, name))]


def _check_data_dir(data_dir):
    """The mistakes of --data_dir that deserve their own message."""
    if os.path.exists(data_dir) and not os.path.isdir(data_dir):
        raise DataError(f"--data_dir {data_dir} is a file, not a folder")
    inner = os.path.basename(os.path.normpath(data_dir)) == FOLDER_NAME
    if inner or os.path.isfile(os.path.join(data_dir, TRAIN_FILES[0])):
        parent = os.path.dirname(os.path.abspath(data_dir))
        raise DataError(f"--data_dir {data_dir} is the {FOLDER_NAME}/ folder itself: point "
                        f"--data_dir at its parent, {parent}")


def ensure_dataset(data_dir, url=CIFAR10_URL, md5=CIFAR10_MD5):
    """Return the folder holding the batch files, extracting or downloading only what is missing.

    An existing folder is used as is; an existing tarball must match md5. With a url, a missing
    tarball is downloaded and a tarball with the wrong md5 is downloaded again, once; the old file
    is only replaced by a download whose checksum is right. A data folder this call created is
    removed again if nothing could be put in it."""
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
            download(url, tar_path, md5)
        except DataError as error:
            raise DataError(f"{wrong}, and no fresh copy came: {error}") from None
    if not os.path.exists(tar_path):
        if os.path.isdir(folder) and not url:
            raise DataError(f"{folder} lacks {', '.join(_missing_batches(folder))}, and there is "
                            f"no {TARBALL_NAME} beside it to restore them from; "
                            f"{_layout_help(data_dir)}")
        if not url:
            raise DataError(f"no CIFAR-10 data found: {_layout_help(data_dir)}")
        _download_into(data_dir, url, tar_path, md5)
    extract(tar_path, data_dir, FOLDER_NAME)
    if _missing_batches(folder):
        raise DataError(f"{tar_path}: lacks {', '.join(_missing_batches(folder))}; "
                        f"{_layout_help(data_dir)}")
    return folder


def _download_into(data_dir, url, tar_path, md5):
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
        download(url, tar_path, md5)
    except BaseException as error:
        for path in created:  # deepest first; a folder someone else filled meanwhile stays
            if not os.listdir(path):
                os.rmdir(path)
        if isinstance(error, DataError):
            raise DataError(f"{error}; {_layout_help(data_dir)}") from None
        raise


# --- Reading the official batch files safely ---
try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy < 2
    from numpy.core.multiarray import _reconstruct

# The official files were pickled by Python 2 and reference exactly these globals.
_ALLOWED_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
}


class _BatchUnpickler(pickle.Unpickler):
    """Refuses every global beyond the four a CIFAR-10 batch needs, so no payload can run code."""

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"forbidden object {module}.{name}") from None


def _unpickle(path):
    with open(path, "rb") as f:
        content = _BatchUnpickler(f, encoding="bytes").load()
    if not isinstance(content, dict):
        raise ValueError(f"holds a {type(content).__name__}, not a dict")
    # encoding decides whether Python-2 str keys come back as bytes or str: accept both
    return {key.decode("latin1") if isinstance(key, bytes) else key: value
            for key, value in content.items()}


def load_batch(path):
    """Read one official batch file into (images uint8 (N, 3, 32, 32), labels int64 (N,))."""
    try:
        content = _unpickle(path)
        images, labels = content["data"], np.asarray(content["labels"])
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError, AttributeError,
            IndexError, OverflowError) as error:
        raise _damaged_batch(path, f"{type(error).__name__}: {error}") from None
    except MemoryError:
        raise _out_of_memory(path) from None
    except OSError as error:
        raise DataError(f"{path}: cannot be read ({error})") from None
    if not (isinstance(images, np.ndarray) and images.dtype == np.uint8 and images.ndim == 2
            and images.shape[1] == PIXEL_VALUES):
        shape = getattr(images, "shape", None)
        raise DataError(f"{path}: 'data' must be uint8 of shape (N, {PIXEL_VALUES}), got "
                        f"{getattr(images, 'dtype', type(images).__name__)} {shape}")
    if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: {labels.shape} labels for {len(images)} images")
    if len(labels) and (labels.min() < 0 or labels.max() >= NUM_CLASSES):
        raise DataError(f"{path}: labels must lie in 0..{NUM_CLASSES - 1}, found "
                        f"{labels.min()}..{labels.max()}")
    return images.reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


def _damaged_batch(path, why):
    return DataError(f"{path}: not a valid CIFAR-10 batch file ({why}); delete it and let the "
                     f"data be extracted again")


def _out_of_memory(path):
    """The error of a MemoryError while reading path: the machine's memory ran out, or a damaged
    file claimed more bytes than it holds. Reading takes about twice the file's size, so room
    for three times it says which."""
    try:
        bytearray(3 * os.path.getsize(path))
    except MemoryError:
        return UserError(f"out of memory while reading {path}: free memory, or raise the memory "
                         f"limit (ulimit -v, a job's --mem), and run again")
    return _damaged_batch(path, "it claims more bytes than it holds")


def class_names(data_dir):
    """The dataset's own class names, from batches.meta ('label_names') through the same safe
    unpickler as the batches; the built-in CIFAR-10 names only where that file is missing."""
    path = os.path.join(data_dir, FOLDER_NAME, META_FILE)
    if not os.path.exists(path):
        return list(CLASS_NAMES)
    try:
        names = [name.decode("latin1") if isinstance(name, bytes) else str(name)
                 for name in _unpickle(path)["label_names"]]
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError,
            AttributeError) as error:
        raise DataError(f"{path}: not a valid CIFAR-10 meta file ({type(error).__name__}: "
                        f"{error}); delete it to use the built-in class names") from None
    if len(names) != NUM_CLASSES:
        raise DataError(f"{path}: {len(names)} label_names, expected {NUM_CLASSES}")
    return names


def _load_files(folder, names):
    """Concatenate batch files, freeing each file's copy as soon as it is in place."""
    parts = [load_batch(os.path.join(folder, name)) for name in names]
    images = np.empty((sum(len(labels) for _, labels in parts), *IMAGE_SHAPE), np.uint8)
    labels = np.empty(len(images), np.int64)
    start = 0
    while parts:
        part_images, part_labels = parts.pop(0)
        stop = start + len(part_labels)
        images[start:stop], labels[start:stop] = part_images, part_labels
        start = stop
    return images, labels


def _split_off_validation(images, labels, validation_size):
    """Move a fixed random choice of validation_size rows to the end; return (train, validation).

    Each chosen row still in the front swaps places with an unchosen row of the tail, so both
    splits are views of one array and the images are never copied a second time."""
    n = len(labels)
    is_validation = np.zeros(n, bool)
    is_validation[np.random.default_rng(SPLIT_SEED).permutation(n)[:validation_size]] = True
    boundary = n - validation_size
    front = np.flatnonzero(is_validation[:boundary])
    back = boundary + np.flatnonzero(~is_validation[boundary:])
    for array in (images, labels):
        array[front], array[back] = array[back], array[front]
    return (Split(images[:boundary], labels[:boundary]),
            Split(images[boundary:], labels[boundary:]))


def get_cifar10(data_dir=DATA_DIR, validation_size=VALIDATION_SIZE, url=CIFAR10_URL,
                md5=CIFAR10_MD5):
    """Load CIFAR-10 as {'train', 'validation', 'test'} Splits of uint8 images.

    The validation images are drawn from the 50,000 training images with a fixed seed, so every
    run, whatever its own seed, sees the same 45,000 / 5,000 split. The arguments are checked as
    the command line checks --data_dir, --validation_size and --data_url ('~' is expanded)."""
    data_dir = checks.folder.check("data_dir", data_dir)
    url = checks.location_or_nothing.check("url", url)
    validation_size = checks.validation_size.check("validation_size", validation_size)
    batch_folder = ensure_dataset(data_dir, url, md5)
    class_names(data_dir)  # a damaged batches.meta is found now, not after training
    images, labels = _load_files(batch_folder, TRAIN_FILES)
    if not 0 < validation_size < len(labels):
        raise DataError(f"validation_size must lie in 1..{len(labels) - 1}, got {validation_size}")
    train, validation = _split_off_validation(images, labels, validation_size)
    return {"train": train, "validation": validation,
            "test": Split(*_load_files(batch_folder, [TEST_FILE]))}


# --- The course's normalization ---
MEAN = (0.491, 0.482, 0.447)  # the course's per-channel numbers for CIFAR-10


STD = (0.247, 0.243, 0.262)


# x_norm = (x / 255 - mean) / std = x * SCALE + SHIFT, one multiply-add per pixel; spelled out
# per pixel of a flattened image so NumPy runs one long loop instead of many 32-pixel rows
SCALE = np.repeat(1.0 / (255.0 * np.array(STD, np.float32)), 32 * 32)


SHIFT = np.repeat(-np.array(MEAN, np.float32) / np.array(STD, np.float32), 32 * 32)


def normalize(images):
    """uint8 (B, 3, 32, 32) -> float32 (B, 3, 32, 32) with the course's per-channel mean and std.

    images is a NumPy array, or a torch tensor on any device (normalized there)."""
    return affine(images, SCALE, SHIFT)


def affine(images, scale, shift):
    """x * scale + shift per pixel of each flattened uint8 image, where the images live."""
    flat = images.reshape(len(images), -1)
    if isinstance(images, np.ndarray):
        out = flat.astype(np.float32)
        out *= scale
        out += shift
    else:
        scale, shift = torch_constants(images.device, scale, shift)
        out = flat.float().mul_(scale).add_(shift)
    return out.reshape(images.shape)


_on_device = {}


def torch_constants(device, *arrays):
    """The arrays as tensors on device, copied there once per array and device."""
    import torch
    key = (str(device), *map(id, arrays))
    if key not in _on_device:
        _on_device[key] = arrays, [torch.from_numpy(a).to(device) for a in arrays]
    return _on_device[key][1]


# --- Batches ---
def batch_slices(n, batch_size, drop_last=False):
    """The positions of each batch in an epoch of n samples."""
    stop = n - n % batch_size if drop_last else n
    return [slice(start, min(start + batch_size, stop)) for start in range(0, stop, batch_size)]


class DataLoader:
    """Iterable of normalized (images float32 (B, 3, 32, 32), labels int64 (B,)) batches.

    The split's arrays may be NumPy arrays or torch tensors already on a device; either way each
    batch is gathered and normalized where the data lives. transform, if given (one of
    AUGMENTATIONS), maps a uint8 batch to a uint8 batch before normalization. The loader's own
    generator, seeded by seed, draws a new permutation every epoch and the transform's randomness.
    """

    def __init__(self, split, batch_size, shuffle=False, drop_last=False, seed=None,
                 return_numpy=True, transform=None, preprocess=normalize):
        batch_size = checks.positive_int.check("batch_size", batch_size)
        self.split, self.batch_size, self.transform = split, batch_size, transform
        self.preprocess = preprocess
        self.shuffle, self.drop_last, self.return_numpy = shuffle, drop_last, return_numpy
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(batch_slices(len(self.split), self.batch_size, self.drop_last))

    def __iter__(self):
        order = self._epoch_order()
        for rows in batch_slices(len(self.split), self.batch_size, self.drop_last):
            yield self._batch(rows if order is None else order[rows])

    def _epoch_order(self):
        if not self.shuffle:
            return None
        order = self.rng.permutation(len(self.split))
        if isinstance(self.split.images, np.ndarray):
            return order
        import torch
        return torch.from_numpy(order).to(self.split.images.device)  # one copy per epoch

    def _batch(self, idx):
        images = self.split.images[idx]
        if self.transform is not None:
            images = self.transform(images, self.rng)
        if self.preprocess is not None:
            images = self.preprocess(images)
        labels = self.split.labels[idx]
        if isinstance(images, np.ndarray) and not self.return_numpy:
            import torch
            images, labels = torch.from_numpy(images), torch.from_numpy(labels)
        return images, labels


def get_dataloader(dataset, batch_size, return_numpy=False, seed=None):
    """The course's loaders: 'train' shuffled with drop_last, 'validation' and 'test' in order.

    return_numpy=False yields torch tensors, as the course template does; seed fixes the shuffle.
    """
    return {key: DataLoader(dataset[key], batch_size, shuffle=key == "train",
                            drop_last=key == "train", seed=seed, return_numpy=return_numpy)
            for key in ("train", "validation", "test")}


def make_loaders(dataset, preprocessing, batch_size=None, seed=None, augment=None, move=None):
    """The trainers' loaders of a dataset's splits through one Preprocessing: 'train' (only
    with a batch_size: shuffled by seed, last partial batch dropped, augmented by one of
    preprocessing.AUGMENTATIONS) and
    'validation' and 'test' in order, in batches of EVAL_BATCH_SIZE. move(split), if given,
    puts each prepared split where it is to live (a torch device)."""
    loaders = {}
    for key in (["train"] if batch_size else []) + ["validation", "test"]:
        images, preprocess = preprocessing.prepare(dataset[key].images)
        split = Split(images, dataset[key].labels)
        if move is not None:
            split = move(split)
        if key == "train":
            loaders[key] = DataLoader(split, batch_size, shuffle=True, drop_last=True, seed=seed,
                                      transform=augment, preprocess=preprocess)
        else:
            loaders[key] = DataLoader(split, EVAL_BATCH_SIZE, preprocess=preprocess)
    return loaders
