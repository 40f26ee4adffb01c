"""The NumPy trainer's work in blocks of rows, one per core (training/threads.py): every row done
once, and the same numbers bit for bit whatever the number of cores."""
import os
import subprocess
import sys
import time
import warnings

import numpy as np
import pytest
from helpers import REPO, twin_models

from training import threads
from training.optim_numpy import make_optimizer
from training.preprocessing import Mixup, random_deform_flip


def on_cores(monkeypatch, cores):
    """cores usable, and blocks of any size: each test's small arrays split as large ones do."""
    monkeypatch.setattr(threads, "usable_cores", lambda: cores)
    monkeypatch.setattr(threads, "MIN_BLOCK_ELEMENTS", 1)


@pytest.mark.parametrize("cores, rows", [(3, 10), (4, 4), (2, 7)])
def test_every_row_is_in_one_block_one_block_per_core(monkeypatch, cores, rows):
    on_cores(monkeypatch, cores)
    first, second = np.zeros((rows, 2)), np.zeros(rows)
    blocks = []

    def work(a, b):
        a += 1  # views: the arrays given are written
        b += 1
        blocks.append(len(a))

    threads.in_row_blocks(work, first, second)
    assert (first == 1).all() and (second == 1).all()
    assert sorted(blocks) == sorted(rows * (i + 1) // cores - rows * i // cores
                                    for i in range(cores))


def test_fewer_rows_than_two_or_one_core_is_one_call_on_the_arrays_themselves(monkeypatch):
    on_cores(monkeypatch, 4)
    bias, seen = np.zeros((1, 5)), []
    threads.in_row_blocks(lambda a: seen.append(a), bias)
    assert len(seen) == 1 and seen[0] is bias
    on_cores(monkeypatch, 1)
    weight = np.zeros((6, 5))
    threads.in_row_blocks(lambda a: seen.append(a), weight)
    assert seen[1] is weight


def test_no_more_blocks_than_the_array_holds_elements_worth_a_thread_each(monkeypatch):
    monkeypatch.setattr(threads, "usable_cores", lambda: 8)
    blocks = []
    smallest = threads.MIN_BLOCK_ELEMENTS
    output_layer = np.zeros((10, smallest // 8))  # room for one block, not two
    threads.in_row_blocks(blocks.append, output_layer)
    assert len(blocks) == 1 and blocks[0] is output_layer
    blocks.clear()
    threads.in_row_blocks(blocks.append, np.zeros((6, smallest // 2)))  # room for three
    assert [len(block) for block in blocks] == [2, 2, 2]


def cgroups(tmp_path, monkeypatch, memberships, files):
    """A made-up /proc/self/cgroup and cgroup mount: files maps paths under the mount to text."""
    (tmp_path / "proc").write_text(memberships)
    for path, text in files.items():
        (tmp_path / "mount" / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "mount" / path).write_text(text)
    monkeypatch.setattr(threads, "PROCESS_CGROUPS", str(tmp_path / "proc"))
    monkeypatch.setattr(threads, "CGROUP_ROOT", str(tmp_path / "mount"))
    threads.quota_cores.cache_clear()
    try:
        return threads.quota_cores()
    finally:
        threads.quota_cores.cache_clear()


@pytest.mark.parametrize("memberships, files, cores", [
    # v2: the tightest of the cgroup and its parents; "max" is none
    ("0::/job/step\n", {"job/cpu.max": "150000 100000\n", "job/step/cpu.max": "400000 100000\n",
                        "cpu.max": "max 100000\n"}, 2),
    # v1, mounted as cpu,cpuacct; -1 is none; a container sees its own quota at the mount
    ("4:memory:/x\n2:cpu,cpuacct:/docker/abc\n", {"cpu,cpuacct/cpu.cfs_quota_us": "300000",
                                                  "cpu,cpuacct/cpu.cfs_period_us": "100000"}, 3),
    ("1:cpu:/\n", {"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, None),
    ("0::/\n", {"cpu.max": "20000 100000"}, 1),  # a fifth of a core is still one
    ("0::/\n", {"cpu.max": "garbage"}, None),
    ("0::/\n", {}, None),
])
def test_a_containers_cpu_quota_is_read_from_its_cgroups(tmp_path, monkeypatch, memberships,
                                                        files, cores):
    assert cgroups(tmp_path, monkeypatch, memberships, files) == cores


def test_no_more_blocks_than_the_cpu_quota_allows(monkeypatch):
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this system")
    monkeypatch.setattr(threads.os, "sched_getaffinity", lambda pid: set(range(16)))
    monkeypatch.setattr(threads, "quota_cores", lambda: 2)
    assert threads.usable_cores() == 2
    monkeypatch.setattr(threads, "quota_cores", lambda: None)
    assert threads.usable_cores() == 16


def test_an_error_in_a_block_is_raised_by_the_call(monkeypatch):
    on_cores(monkeypatch, 2)

    def work(rows):
        if rows[0] > 0:
            raise ValueError("second block")

    with pytest.raises(ValueError, match="second block"):
        threads.in_row_blocks(work, np.arange(8))


def steps_of(optimizer_name, cores, monkeypatch):
    """The weights of a small BatchNorm MLP after 3 steps of the optimizer on `cores` cores."""
    on_cores(monkeypatch, cores)
    model = twin_models(30, [20, 16], 4, "gelu", 3, use_batch_norm=True)[0]
    optimizer = make_optimizer(model, optimizer_name, 1e-2, weight_decay=0.05)
    rng = np.random.default_rng(1)
    for _ in range(3):
        for _, _, grad in model.parameters():
            grad[...] = rng.standard_normal(grad.shape)
        optimizer.step()
    return model.state_dict()


@pytest.mark.parametrize("optimizer_name", ["adam", "adamw"])
def test_adam_steps_are_the_same_bit_for_bit_on_one_core_and_on_several(monkeypatch,
                                                                        optimizer_name):
    one, several = (steps_of(optimizer_name, cores, monkeypatch) for cores in (1, 3))
    assert one.keys() == several.keys()
    for name in one:
        np.testing.assert_array_equal(one[name], several[name])


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_deformations_and_mixup_are_the_same_bit_for_bit_on_one_core_and_on_several(
        monkeypatch, dtype):
    images = np.random.default_rng(0).integers(0, 256, (9, 3, 32, 32)).astype(dtype)
    labels = np.arange(9)
    results = []
    for cores in (1, 4):
        on_cores(monkeypatch, cores)
        deformed = random_deform_flip(images, np.random.default_rng(5))
        results.append((deformed, *Mixup(0.4, seed=2)(deformed.astype(np.float32), labels)))
    (deformed, mixed, partners, weight), (deformed_4, mixed_4, partners_4, weight_4) = results
    np.testing.assert_array_equal(deformed, deformed_4)
    np.testing.assert_array_equal(mixed, mixed_4)
    np.testing.assert_array_equal(partners, partners_4)
    assert weight == weight_4
    perm = partners  # labels are the rows' indices
    np.testing.assert_array_equal(mixed, weight * deformed.astype(np.float32)
                                  + (1 - weight) * deformed.astype(np.float32)[perm])


def test_blas_threads_are_told_to_sleep_unless_the_user_said_otherwise(monkeypatch):
    for name in threads.BLAS_THREADS_SLEEP:
        monkeypatch.setenv(name, "")  # recorded, so that the test leaves the variable as it was
        monkeypatch.delenv(name)
    threads.let_blas_threads_sleep()
    for name, value in threads.BLAS_THREADS_SLEEP.items():
        assert threads.os.environ[name] == value
        monkeypatch.setenv(name, "20")
    threads.let_blas_threads_sleep()
    assert all(threads.os.environ[name] == "20" for name in threads.BLAS_THREADS_SLEEP)


# runs an entry point with --help, noting OPENBLAS_THREAD_TIMEOUT as NumPy starts to load
AT_NUMPY_IMPORT = """
import importlib.abc, os, runpy, sys
seen = []
class Watch(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "numpy" and not seen:
            seen.append(os.environ.get("OPENBLAS_THREAD_TIMEOUT"))
sys.meta_path.insert(0, Watch())
entry, sys.argv = sys.argv[1], [sys.argv[1], "--help"]
try:
    runpy.run_path(entry, run_name="__main__") if entry.endswith(".py") else \
        runpy.run_module(entry, run_name="__main__", alter_sys=True)
except SystemExit:
    pass
print("seen", seen)
"""


@pytest.mark.parametrize("entry", ["train_mlp_numpy.py", "experiments"])
def test_the_numpy_entry_points_have_openblas_threads_sleep_before_numpy_loads(entry):
    """OpenBLAS reads OPENBLAS_THREAD_TIMEOUT once, when NumPy loads it; 4 (2^4 cycles) is the
    shortest wait it takes."""
    environment = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    said = subprocess.run([sys.executable, "-c", AT_NUMPY_IMPORT, entry], cwd=REPO,
                          env=environment, capture_output=True, text=True, timeout=120)
    assert said.stdout.splitlines()[-1] == "seen ['4']", said.stdout + said.stderr


def test_blocks_run_under_the_callers_errstate(monkeypatch):
    on_cores(monkeypatch, 2)
    with np.errstate(over="raise"):
        with pytest.raises(FloatingPointError):
            threads.in_row_blocks(lambda a: np.multiply(a, 1e30, out=a), np.full((4, 2), 1e30,
                                                                                 np.float32))
    with np.errstate(over="ignore"), warnings.catch_warnings():
        warnings.simplefilter("error")
        threads.in_row_blocks(lambda a: np.multiply(a, 1e30, out=a), np.full((4, 2), 1e30,
                                                                             np.float32))


NESTED = """
import numpy as np
from training import threads
threads.usable_cores, threads.MIN_BLOCK_ELEMENTS = lambda: 2, 1
outer = np.zeros((4, 3))
threads.in_row_blocks(lambda rows: threads.in_row_blocks(lambda inner: inner.__iadd__(1), rows),
                      outer)
print((outer == 1).all())
"""


def test_a_call_from_inside_a_block_runs_there():
    """With a pool of two, a block waiting for blocks of its own would wait forever (a process
    apart: its stuck threads would keep this one from ending)."""
    said = subprocess.run([sys.executable, "-c", NESTED], cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert said.stdout.strip() == "True", said.stderr


def test_every_block_ends_before_an_error_in_one_is_raised(monkeypatch):
    on_cores(monkeypatch, 2)
    values, written = np.arange(4.0), np.zeros(4)

    def slow_or_failing(rows, out):
        if rows[0] == 0:
            raise ValueError("first block")
        time.sleep(0.2)
        out[:] = 1

    with pytest.raises(ValueError, match="first block"):
        threads.in_row_blocks(slow_or_failing, values, written)
    assert (written == [0, 0, 1, 1]).all()  # the second block had written when the error came


def test_a_scalar_is_one_call_and_arrays_of_other_lengths_are_refused(monkeypatch):
    on_cores(monkeypatch, 2)
    scalar, seen = np.array(1.0), []
    threads.in_row_blocks(seen.append, scalar)
    assert seen == [scalar]
    with pytest.raises(ValueError, match="not one block each"):
        threads.in_row_blocks(lambda a, b: None, np.zeros(4), np.zeros(3))


def test_mixup_of_integer_images_blends_them_into_floats_as_the_formula_does(monkeypatch):
    on_cores(monkeypatch, 2)
    images = np.random.default_rng(0).integers(0, 256, (6, 3, 4, 4)).astype(np.uint8)
    mixed, partners, weight = Mixup(0.4, seed=1)(images, np.arange(6))
    assert mixed.dtype == np.float64
    np.testing.assert_array_equal(mixed, weight * images + (1 - weight) * images[partners])
