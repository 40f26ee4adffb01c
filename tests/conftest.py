"""Fixtures and settings every test file shares."""
import os

# One thread per BLAS call, in this process and in the trainers it starts: the suite runs in
# parallel processes (pytest-xdist), and several many-threaded ones on two cores spend their time
# waiting for each other. Set before NumPy and torch are imported, which read these once.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import hashlib
from collections import OrderedDict

import numpy as np
import pytest
import synthetic_cifar
from helpers import TRAINERS, train_projected

from training.preprocessing import Preprocessing

ZCA_FITS_KEPT = 4  # each holds two 3072 x 3072 matrices, about 110 MB


def pytest_collection_modifyitems(items):
    """Slow tests first, so that none of them is left running alone at the end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)


@pytest.fixture(scope="session", autouse=True)
def zca_fitted_once_per_training_split():
    """ZCA's fit is an eigendecomposition of a 3072 x 3072 covariance, seconds of work, and many
    runs here fit it on one same training split. A process makes each fit once and hands out
    copies of it for the same images and epsilon: the very arrays a new fit would make."""
    fit, fitted = Preprocessing.fit.__func__, OrderedDict()

    def fit_once(cls, normalize, train_images, zca_epsilon=None):
        if normalize != "zca":
            return fit(cls, normalize, train_images, zca_epsilon)
        images = np.ascontiguousarray(train_images)
        key = (images.shape, images.dtype.str, zca_epsilon, hashlib.sha1(images).hexdigest())
        if key not in fitted:
            fitted[key] = fit(cls, normalize, images, zca_epsilon)
            if len(fitted) > ZCA_FITS_KEPT:
                fitted.popitem(last=False)
        fitted.move_to_end(key)
        kept = fitted[key]
        return cls({name: value.copy() for name, value in kept.arrays.items()},
                   kept.eigenvectors.copy())

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Preprocessing, "fit", classmethod(fit_once))
        yield


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


@pytest.fixture(scope="session")
def projected_runs(tmp_path_factory):
    """What train returns for a run of each trainer with the projected recipe, on hard data."""
    root = tmp_path_factory.mktemp("projected")
    synthetic_cifar.write_dataset(root / "data", brightness=15, label_noise=0.2)
    return root / "data", {framework: train_projected(framework, root / "data", root / framework)
                           for framework in TRAINERS}
