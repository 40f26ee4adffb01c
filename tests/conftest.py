import pytest

import synthetic_cifar


@pytest.fixture
def cifar_dir(tmp_path):
    """A data folder holding a tiny synthetic CIFAR-10 (200 train, 40 test images)."""
    written = synthetic_cifar.write_dataset(tmp_path)
    return tmp_path, written
