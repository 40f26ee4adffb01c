"""CIFAR-10 as the trainers use it: its training images split into train and validation, with a
fixed seed, and its test images, each a Split of uint8 images and int64 labels. The images stay
uint8 in memory (180 MB for all 60,000) and are preprocessed one batch at a time."""
import os
from dataclasses import dataclass

import numpy as np

from dataset.batch_files import class_names, load_files
from dataset.cifar10 import CIFAR10_MD5, CIFAR10_URL, DATA_DIR, TEST_FILE, TRAIN_FILES
from dataset.fetch import ensure_dataset
from safety import checks
from safety.errors import DataError, out_of_memory

VALIDATION_SIZE = 5000
SPLIT_SEED = 42  # the train/validation split is a property of the dataset, not of the run's seed


@dataclass
class Split:
    """One part of the dataset: images uint8 (N, 3, 32, 32) and labels int64 (N,). split[i] is
    (image i, label i) as a torch Dataset's item is, the image as stored (the loaders normalize
    each batch)."""
    images: np.ndarray
    labels: np.ndarray

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, index):
        return self.images[index], self.labels[index]


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
    run, whatever its own seed, sees the same 45,000 / 5,000 split. As in the course's
    cifar10_utils, validation_size may be anything from 0 to every training image (the trainers
    need both splits: --validation_size lies in 1..49999). The other arguments are checked as the
    command line checks --data_dir and --data_url ('~' is expanded)."""
    data_dir = checks.folder.check("data_dir", data_dir)
    url = checks.location_or_nothing.check("url", url)
    validation_size = checks.nonnegative_int.check("validation_size", validation_size)
    batch_folder = ensure_dataset(data_dir, url, md5)
    class_names(data_dir)  # a damaged batches.meta is found now, not after training
    try:
        images, labels = load_files(batch_folder, TRAIN_FILES)
        if validation_size > len(labels):
            raise DataError(f"{data_dir} holds {len(labels)} training images: too few to set "
                            f"{validation_size} aside for validation")
        train, validation = _split_off_validation(images, labels, validation_size)
        test = Split(*load_files(batch_folder, [TEST_FILE]))
    except MemoryError:
        raise _out_of_memory(batch_folder) from None
    return {"train": train, "validation": validation, "test": test}


def _out_of_memory(batch_folder):
    """Loading takes the images' uint8 bytes (about the batch files' size) and, while the
    training batches are joined into one array, theirs once more."""
    sizes = [os.path.getsize(os.path.join(batch_folder, name))
             for name in (*TRAIN_FILES, TEST_FILE)]
    return out_of_memory(f"loading the data from {batch_folder} (its uint8 images take about "
                         f"{sum(sizes) / 1e6:,.0f} MB, and {sum(sizes[:-1]) / 1e6:,.0f} MB more "
                         f"while the training batches are joined)")
