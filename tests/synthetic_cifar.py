"""Tiny CIFAR-10 look-alikes in the official on-disk format, for tests that never touch real data.

The official batches were pickled by Python 2: strings are byte strings (opcode BINSTRING) and the
image array is rebuilt through numpy.core.multiarray._reconstruct. write_py2_pickle emits exactly
those opcodes, so the loader is tested against the format it will meet, not a Python-3 imitation.
"""
import hashlib
import io
import os
import pickle
import struct
import tarfile

import numpy as np

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = [f"data_batch_{i}" for i in range(1, 6)]


def _string(value):
    raw = value.encode("latin1") if isinstance(value, str) else value
    if len(raw) < 256:
        return b"U" + bytes([len(raw)]) + raw  # SHORT_BINSTRING
    return b"T" + struct.pack("<i", len(raw)) + raw  # BINSTRING


def _int(value):
    return b"J" + struct.pack("<i", value)  # BININT


def _global(module, name):
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _tuple(items):
    return b"(" + b"".join(items) + b"t"  # MARK ... TUPLE


def _uint8_array(array):
    dtype = (_global("numpy", "dtype") + _tuple([_string("u1"), _int(0), _int(1)]) + b"R"
             + _tuple([_int(3), _string("|"), b"N", b"N", b"N", _int(-1), _int(-1), _int(0)])
             + b"b")
    shape = _tuple([_int(n) for n in array.shape])
    return (_global("numpy.core.multiarray", "_reconstruct")
            + _tuple([_global("numpy", "ndarray"), _tuple([_int(0)]), _string("b")]) + b"R"
            + _tuple([_int(1), shape, dtype, b"\x89", _string(array.tobytes())]) + b"b")


def _encode(value):
    if isinstance(value, np.ndarray):
        return _uint8_array(value)
    if isinstance(value, (str, bytes)):
        return _string(value)
    if isinstance(value, (int, np.integer)):
        return _int(int(value))
    if isinstance(value, list):
        return b"](" + b"".join(_encode(v) for v in value) + b"e"  # EMPTY_LIST MARK ... APPENDS
    if isinstance(value, dict):
        items = b"".join(_encode(k) + _encode(v) for k, v in value.items())
        return b"}(" + items + b"u"  # EMPTY_DICT MARK ... SETITEMS
    raise TypeError(type(value))


def write_py2_pickle(path, content):
    with open(path, "wb") as f:
        f.write(b"\x80\x02" + _encode(content) + b".")


def make_images(labels, rng, brightness=60):
    """Images a small MLP can learn: each class brightens its own channel and image quarter by
    brightness (plus 20 per group of four classes) over a noisy grey."""
    images = rng.integers(90, 150, (len(labels), 3, 32, 32), dtype=np.uint8)
    for i, label in enumerate(labels):
        rows, cols = (label % 4) // 2 * 16, label % 2 * 16
        images[i, label % 3, rows:rows + 16, cols:cols + 16] += np.uint8(brightness
                                                                         + 20 * (label // 4))
    return images


def write_dataset(root, per_batch=40, n_test=40, seed=0, writer=write_py2_pickle,
                  brightness=60, label_noise=0.0):
    """Write root/cifar-10-batches-py/ with 5 training batches and a test batch.

    brightness is the class signal (see make_images); label_noise, the fraction of images whose
    label is then replaced by a random one, keeps any model from being right on all of them.
    Returns {'train': (images, labels), 'test': (images, labels)} as written, images (N, 3, 32, 32).
    """
    rng = np.random.default_rng(seed)
    folder = os.path.join(root, FOLDER)
    os.makedirs(folder, exist_ok=True)
    written = {}
    for split, names, size in [("train", TRAIN_FILES, per_batch), ("test", ["test_batch"], n_test)]:
        all_images, all_labels = [], []
        for name in names:
            labels = rng.integers(0, 10, size)
            images = make_images(labels, rng, brightness)
            noisy = rng.random(size) < label_noise
            labels[noisy] = rng.integers(0, 10, noisy.sum())
            writer(os.path.join(folder, name), {
                "batch_label": f"{split} batch", "labels": [int(v) for v in labels],
                "data": images.reshape(size, -1), "filenames": [f"{i}.png" for i in range(size)]})
            all_images.append(images)
            all_labels.append(labels)
        written[split] = (np.concatenate(all_images), np.concatenate(all_labels))
    writer(os.path.join(folder, "batches.meta"),
           {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072})
    return written


def write_py3_pickle(path, content):
    """A Python-3 pickle: str keys, BINBYTES data; the loader must accept this too."""
    with open(path, "wb") as f:
        pickle.dump(content, f, protocol=4)


def make_tarball(root, tar_path):
    """Pack root/cifar-10-batches-py into tar_path; returns its md5."""
    with tarfile.open(tar_path, "w:gz") as tar:
        tar.add(os.path.join(root, FOLDER), arcname=FOLDER)
    return hashlib.md5(open(tar_path, "rb").read()).hexdigest()


def add_tar_member(tar, name, data=b"x", kind=tarfile.REGTYPE, linkname=""):
    info = tarfile.TarInfo(name)
    regular = kind == tarfile.REGTYPE
    info.type, info.linkname, info.size = kind, linkname, len(data) if regular else 0
    tar.addfile(info, io.BytesIO(data) if regular else None)
