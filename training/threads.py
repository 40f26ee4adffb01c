"""NumPy's elementwise work spread over the cores a run may use. NumPy runs each operation on one
core; the NumPy trainer's optimizer step and its batches' gathers and blends hand blocks of rows
of their arrays to a pool of threads instead, as NumPy lets go of the GIL inside its loops. An
element goes through the same operations in the same order whichever block holds it, so the
numbers are the same bit for bit on any number of cores.

Between two matrix products OpenBLAS's own threads spin, waiting for the next, on the very cores
these blocks need (for 2^28 cycles, about a tenth of a second); told to sleep after 2^4 cycles,
they leave them free. A training step of --preset best's NumPy network on a 2-core Intel Xeon
(medians of 132 steps, blocks of one core and of two alternating in one process): with OpenBLAS's
threads sleeping, 80 ms on two cores against 92 on one; with them spinning, 89 against 87. Whole
epochs on the real data, against the code that runs them on one core with OpenBLAS's threads
spinning, did not differ beyond the machine's noise: 8.16 s against 8.22 on average (three
2-epoch runs of each, alternating)."""
import functools
import math
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

# read by OpenBLAS when NumPy loads it; a value the user set stays
BLAS_THREADS_SLEEP = {"OPENBLAS_THREAD_TIMEOUT": "4"}
# handing a block to a pool's thread costs 0.2 to 0.45 ms on a 2-core Intel Xeon VM, what one core
# spends on about 64k elements of Adam's step: 64k elements took 185 µs on one core against 452 in
# two blocks, 128k took 802 against 447 (medians of 300)
MIN_BLOCK_ELEMENTS = 2 ** 16
CGROUP_ROOT, PROCESS_CGROUPS = "/sys/fs/cgroup", "/proc/self/cgroup"
_pools = {}
_inside_a_block = threading.local()


def let_blas_threads_sleep():
    """Have OpenBLAS's idle threads sleep rather than spin: to be called before NumPy is
    imported, as a trainer's command line does; later it changes nothing."""
    for name, value in BLAS_THREADS_SLEEP.items():
        os.environ.setdefault(name, value)


def usable_cores():
    """The cores this process may run on: a SLURM job's allocation, not the whole node's, and no
    more than a container's CPU quota (docker --cpus 2) allows."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return min(cores or 1, quota_cores() or math.inf)


@functools.lru_cache(maxsize=None)
def quota_cores():
    """The CPU time the process's control groups allow, in whole cores rounded up, or None where
    none limits it: the tightest of the cgroup's own and its parents', cgroup v2 (cpu.max: quota
    and period) or v1 (cpu.cfs_quota_us, cpu.cfs_period_us). Read once: a quota set while a run
    trains only throttles it."""
    limits = []
    try:
        with open(PROCESS_CGROUPS) as lines:
            memberships = [line.rstrip("\n").split(":", 2) for line in lines]
    except OSError:
        return None
    for _, controllers, path in (entry for entry in memberships if len(entry) == 3):
        if controllers == "":  # v2: "<quota> <period>" in one file
            limits += quotas_up_from(CGROUP_ROOT, path, ["cpu.max"])
        elif "cpu" in controllers.split(","):  # v1, mounted under its controllers' names
            limits += quotas_up_from(os.path.join(CGROUP_ROOT, controllers), path,
                                     ["cpu.cfs_quota_us", "cpu.cfs_period_us"])
    return max(1, math.ceil(min(limits))) if limits else None


def quotas_up_from(mount, path, files):
    """Quotas in cores of the folder of path under mount and of each folder above it up to mount
    (in a container, path may name the host's folder, absent there: mount itself is read)."""
    # "..": a process outside its cgroup namespace's root; what lies above the mount is not read
    quotas, parts = [], [part for part in path.split("/") if part not in ("", ".", "..")]
    for depth in range(len(parts), -1, -1):
        folder = os.path.join(mount, *parts[:depth])
        words = [word for name in files for word in read_words(os.path.join(folder, name))]
        if len(words) == 2 and all(word.isdigit() for word in words) and int(words[1]) > 0:
            quotas.append(int(words[0]) / int(words[1]))  # "max" or -1: no quota
    return quotas


def read_words(path):
    try:
        with open(path) as file:
            return file.read().split()
    except OSError:
        return []


def in_row_blocks(work, *arrays):
    """work(*blocks) on each of consecutive blocks of rows of arrays (every array as many rows,
    each block a view), one block per usable core, under the caller's np.errstate; every block
    done on return, and then an error in one raised. work writes its results into the blocks it
    is given. There are no more blocks than the first array holds MIN_BLOCK_ELEMENTS elements.
    Called from inside a block, or where one block is all there is, it is one call of work on the
    arrays themselves: a block waiting for blocks of its own could wait forever."""
    import numpy as np  # only here: let_blas_threads_sleep runs before NumPy loads
    rows = len(arrays[0]) if np.ndim(arrays[0]) else 0
    blocks = min(usable_cores(), rows, np.size(arrays[0]) // MIN_BLOCK_ELEMENTS)
    if blocks < 2 or getattr(_inside_a_block, "active", False):
        work(*arrays)
        return
    if any(len(array) != rows for array in arrays):
        raise ValueError(f"arrays of {[len(array) for array in arrays]} rows: not one block each")
    errors = np.geterr()  # NumPy keeps it per thread: the pool's start with the default

    def block(*views):
        _inside_a_block.active = True  # a pool's thread only ever runs blocks
        with np.errstate(**errors):
            work(*views)

    bounds = [rows * i // blocks for i in range(blocks + 1)]
    pool = _pools.get(blocks) or _pools.setdefault(blocks, ThreadPoolExecutor(blocks))
    jobs = [pool.submit(block, *(array[start:stop] for array in arrays))
            for start, stop in zip(bounds[:-1], bounds[1:])]
    wait(jobs)
    for job in jobs:
        job.result()
