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
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait

# read by OpenBLAS when NumPy loads it; a value the user set stays
BLAS_THREADS_SLEEP = {"OPENBLAS_THREAD_TIMEOUT": "4"}
_pools = {}
_inside_a_block = threading.local()


def let_blas_threads_sleep():
    """Have OpenBLAS's idle threads sleep rather than spin: to be called before NumPy is
    imported, as a trainer's command line does; later it changes nothing."""
    for name, value in BLAS_THREADS_SLEEP.items():
        os.environ.setdefault(name, value)


def usable_cores():
    """The cores this process may run on: a SLURM job's allocation, not the whole node's."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def in_row_blocks(work, *arrays):
    """work(*blocks) on each of consecutive blocks of rows of arrays (every array as many rows,
    each block a view), one block per usable core, under the caller's np.errstate; every block
    done on return, and then an error in one raised. work writes its results into the blocks it
    is given. Called from inside a block, or on fewer than two rows, it is one call of work on the
    arrays themselves: a block waiting for blocks of its own could wait forever."""
    import numpy as np  # only here: let_blas_threads_sleep runs before NumPy loads
    rows = len(arrays[0]) if np.ndim(arrays[0]) else 0
    blocks = min(usable_cores(), rows)
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
