"""Reading the official batch files safely. They are Python-2 pickles; an unpickler that admits
only the four NumPy objects a batch contains, and the one safe use of codecs.encode that a batch
re-saved by Python 3 holds, reads them, so a tampered file cannot run code."""
import os
import pickle

import numpy as np

from dataset.cifar10 import (
    CLASS_NAMES,
    FOLDER_NAME,
    IMAGE_SHAPE,
    META_FILE,
    NUM_CLASSES,
    PIXEL_VALUES,
)
from safety.errors import DataError, out_of_memory

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


class _Latin1Encode:
    """codecs.encode as Python 3's protocol-2 pickles call it for each bytes object,
    encode(text, 'latin1'), and in no other way: the text's code points are the bytes. Slots
    and no state, so a pickle cannot set attributes on it either."""
    __slots__ = ()

    def __call__(self, *arguments):
        if len(arguments) != 2 or type(arguments[0]) is not str or arguments[1] != "latin1":
            shown = ", ".join(type(argument).__name__ for argument in arguments)
            raise pickle.UnpicklingError(f"forbidden call _codecs.encode({shown}), not "
                                         f"encode(text, 'latin1')")
        return arguments[0].encode("latin1")


class _BatchUnpickler(pickle.Unpickler):
    """Refuses every global beyond the three a CIFAR-10 batch needs (_reconstruct under its
    NumPy 1 and NumPy 2 names, ndarray, dtype) and _codecs.encode with latin1 alone, so no payload
    can run code."""

    def find_class(self, module, name):
        if (module, name) == ("_codecs", "encode"):
            return _Latin1Encode()
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
    if labels.shape != (len(images),):
        raise DataError(f"{path}: labels of shape {labels.shape} for {len(images)} images")
    if not np.issubdtype(labels.dtype, np.integer):
        raise DataError(f"{path}: labels must be whole numbers, not {labels.dtype}")
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
        return out_of_memory(f"reading {path}")
    return _damaged_batch(path, "it claims more bytes than it holds")


def class_names(data_dir):
    """The dataset's own class names, from batches.meta ('label_names') through the same safe
    unpickler as the batches; the built-in CIFAR-10 names only where that file is missing."""
    path = os.path.join(data_dir, FOLDER_NAME, META_FILE)
    if not os.path.exists(path):
        return list(CLASS_NAMES)
    if not os.path.isfile(path):  # a FIFO would block the read, a device never end it
        raise DataError(f"{path}: not a regular file; delete it to use the built-in class names")
    try:
        label_names = _unpickle(path)["label_names"]
        if not isinstance(label_names, list) or \
                not all(isinstance(name, (bytes, str)) for name in label_names):
            raise TypeError("its label_names are not a list of names")  # a text would be letters
        names = [name.decode("latin1") if isinstance(name, bytes) else name
                 for name in label_names]
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError,
            AttributeError) as error:
        raise DataError(f"{path}: not a valid CIFAR-10 meta file ({type(error).__name__}: "
                        f"{error}); delete it to use the built-in class names") from None
    if len(names) != NUM_CLASSES:
        raise DataError(f"{path}: {len(names)} label_names, expected {NUM_CLASSES}")
    return names


def load_files(folder, names):
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
