import pytest
import synthetic_cifar


@pytest.fixture
def cifar_dir(tmp_path):
    """A data folder holding a tiny synthetic CIFAR-10 (200 train, 40 test images)."""
    written = synthetic_cifar.write_dataset(tmp_path)
    return tmp_path, written


@pytest.fixture
def hard_cifar_dir(tmp_path):
    """The same sizes, but a faint class signal and 20 % random labels: no epoch is perfect, and
    validation accuracy climbs over several epochs instead of reaching 1.0 in the first."""
    written = synthetic_cifar.write_dataset(tmp_path, brightness=15, label_noise=0.2)
    return tmp_path, written
