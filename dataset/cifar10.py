"""What CIFAR-10 is: where it is published, its files, its images and its classes."""
import numpy as np

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
CIFAR10_SIZE = 170498071  # the tarball's bytes: a download that sends more is cut off
DATA_DIR = "data/"
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
