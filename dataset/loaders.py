"""Batches of a Split: each epoch's order, each batch gathered, augmented and preprocessed where
the data lives (NumPy, or torch on any device), with no per-sample Python and no worker
processes."""
import numpy as np

from dataset.splits import Split
from dataset.tensors import as_tensor
from safety import checks

EVAL_BATCH_SIZE = 1000  # evaluation only: larger matrix products, the same accuracy


def batch_slices(n, batch_size, drop_last=False):
    """The positions of each batch in an epoch of n samples."""
    stop = n - n % batch_size if drop_last else n
    return [slice(start, min(start + batch_size, stop)) for start in range(0, stop, batch_size)]


class DataLoader:
    """Iterable of (images (B, 3, 32, 32), labels int64 (B,)) batches: the images as preprocess
    makes them (training.preprocessing.normalize: float32 with the course's numbers), or as the
    split holds them without one.

    The split's arrays may be NumPy arrays or torch tensors already on a device; either way each
    batch is gathered and preprocessed where the data lives. transform, if given (one of
    training.preprocessing.AUGMENTATIONS), maps a uint8 batch to a uint8 batch before preprocess.
    The loader's own generator, seeded by seed, draws a new permutation every epoch and the
    transform's randomness.
    """

    def __init__(self, split, batch_size, shuffle=False, drop_last=False, seed=None,
                 return_numpy=True, transform=None, preprocess=None):
        batch_size = checks.positive_int.check("batch_size", batch_size)
        if seed is not None:
            seed = checks.seed.check("seed", seed)
        if drop_last and batch_size > len(split):
            raise ValueError(f"batch_size {batch_size} is larger than the {len(split)} images "
                             f"it batches: with drop_last there is no batch at all")
        self.split, self.batch_size, self.transform = split, batch_size, transform
        self.preprocess = preprocess
        self.shuffle, self.drop_last, self.return_numpy = shuffle, drop_last, return_numpy
        self.rng = np.random.default_rng(seed)

    def __len__(self):
        return len(batch_slices(len(self.split), self.batch_size, self.drop_last))

    @property
    def dataset(self):
        """The Split it batches, under torch's DataLoader's name: the course's template counts
        images as len(data_loader.dataset)."""
        return self.split

    def __iter__(self):
        for _, images, labels in self.with_rows():
            yield images, labels

    def with_rows(self):
        """The batches as (rows, images, labels): rows, where the split holds them, as a slice
        or (shuffled) an array of indices where the split keeps its images."""
        order = self._epoch_order()
        for rows in batch_slices(len(self.split), self.batch_size, self.drop_last):
            rows = rows if order is None else order[rows]
            yield (rows, *self._batch(rows))

    def _epoch_order(self):
        if not self.shuffle:
            return None
        order = self.rng.permutation(len(self.split))
        if isinstance(self.split.images, np.ndarray):
            return order
        return as_tensor(order, self.split.images.device)  # one copy per epoch

    def _batch(self, idx):
        images = self.split.images[idx]
        if self.transform is not None:
            images = self.transform(images, self.rng)
        if self.preprocess is not None:
            images = self.preprocess(images)
        labels = self.split.labels[idx]
        if isinstance(images, np.ndarray) and not self.return_numpy:
            images, labels = as_tensor(images), as_tensor(labels)
        return images, labels


def make_loaders(dataset, preprocessing, batch_size=None, seed=None, augment=None, move=None):
    """The trainers' loaders of a dataset's splits through one training.preprocessing
    .Preprocessing: 'train' (only with a batch_size: shuffled by seed, last partial batch
    dropped, augmented by one of training.preprocessing.AUGMENTATIONS) and 'validation' and
    'test' in order, in batches of EVAL_BATCH_SIZE. move(split), if given, puts each prepared
    split where it is to live (a torch device)."""
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
