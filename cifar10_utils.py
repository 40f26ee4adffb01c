"""CIFAR-10 for the course: its data interface, get_cifar10 and get_dataloader, with the
course's signatures.

The work is done in dataset/, one job per file (getting and verifying the files, reading them
safely, the fixed train/validation split, the batches), and the course's normalization in
training/preprocessing.py. No torchvision: the official "python version" files are read
directly."""
from dataset.cifar10 import CLASS_NAMES, DATA_DIR, IMAGE_SHAPE, NUM_CLASSES, PIXEL_VALUES
from dataset.loaders import DataLoader
from dataset.splits import VALIDATION_SIZE, Split, get_cifar10
from training.preprocessing import MEAN, STD, normalize

# what get_cifar10 returns and the numbers it and get_dataloader work with
__all__ = ["get_cifar10", "get_dataloader", "Split", "DATA_DIR", "VALIDATION_SIZE", "IMAGE_SHAPE",
           "PIXEL_VALUES", "NUM_CLASSES", "CLASS_NAMES", "MEAN", "STD"]


def get_dataloader(dataset, batch_size, return_numpy=False, seed=None):
    """The course's loaders: 'train' shuffled with drop_last, 'validation' and 'test' in order,
    each batch normalized with the course's MEAN and STD.

    return_numpy=False yields torch tensors, as the course template does; seed fixes the shuffle.
    """
    return {key: DataLoader(dataset[key], batch_size, shuffle=key == "train",
                            drop_last=key == "train", seed=seed, return_numpy=return_numpy,
                            preprocess=normalize)
            for key in ("train", "validation", "test")}
