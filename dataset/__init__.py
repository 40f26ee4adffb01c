"""CIFAR-10 from its official files to uint8 splits and batches, one job per file: what the
dataset is (cifar10.py), getting its files (fetch.py), reading them safely (batch_files.py), the
train/validation/test split (splits.py), batches (loaders.py), and NumPy arrays as torch tensors
(tensors.py). Preprocessing is training/preprocessing.py's; cifar10_utils.py is the course's
interface to all of it."""
