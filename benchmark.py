"""Time the trainers' default runs: wall time and peak memory (RSS) of each whole process.

    python benchmark.py                    # every benchmark, 3 repeats each
    python benchmark.py numpy --repeat 5   # just one

The data must already be in --data_dir (a download is not part of what is measured). Each run
is a fresh `python train_...py` process, so imports, data loading, training, evaluation and
plotting all count. Prints a Markdown table and writes results/benchmark.json. Paths are the
repository's own, wherever the command is run from."""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

from checks import positive_int
from options import DEFAULTS
from run_folder import write_json
from train_utils import run_cli

HERE = os.path.dirname(os.path.abspath(__file__))

BENCHMARKS = {
    "numpy": ["train_mlp_numpy.py"],
    "pytorch": ["train_mlp_pytorch.py", "--device", "cpu"],
    "pytorch-bn": ["train_mlp_pytorch.py", "--device", "cpu", "--use_batch_norm"],
}


def measure(command):
    """Run command to completion; return (wall seconds, peak RSS in MB) of that process alone."""
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _, status, usage = os.wait4(process.pid, 0)
    except BaseException:  # stopped: the run being measured stops too
        process.terminate()
        process.wait()
        raise
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: {' '.join(command)} failed; run it by hand to see why")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KB on Linux


def test_accuracy(results_dir):
    """The test accuracy of the single run that results_dir holds."""
    (run,) = os.listdir(results_dir)
    with open(os.path.join(results_dir, run, "metrics.json")) as f:
        return json.load(f)["test_accuracy"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run: {', '.join(BENCHMARKS)} (default: all)")
    parser.add_argument("--repeat", type=positive_int, default=3)
    parser.add_argument("--data_dir", default=os.path.join(HERE, DEFAULTS["data_dir"]))
    args = parser.parse_args()
    if set(args.names) - set(BENCHMARKS):
        parser.error(f"unknown benchmark: choose from {', '.join(BENCHMARKS)}")
    return args


def main(args):
    rows = []
    for name in args.names or BENCHMARKS:
        samples = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as results:
                script, *flags = BENCHMARKS[name]
                samples.append((*measure([sys.executable, os.path.join(HERE, script), *flags,
                                          "--data_dir",
                                          args.data_dir, "--data_url", "", "--results_dir",
                                          results]), test_accuracy(results)))
        walls, peaks, accuracies = zip(*samples)
        rows.append({"benchmark": name, "command": " ".join(["python", *BENCHMARKS[name]]),
                     "wall_s_median": statistics.median(walls), "wall_s_all": list(walls),
                     "peak_rss_mb_max": max(peaks), "test_accuracy": accuracies[0]})
        print(f"{name}: {statistics.median(walls):.2f} s median wall, {max(peaks):.0f} MB peak "
              f"RSS, test accuracy {accuracies[0]:.4f}", flush=True)
    print("\n| benchmark | command | wall (median) | peak RSS | test accuracy |")
    print("|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['benchmark']} | `{row['command']}` | {row['wall_s_median']:.2f} s | "
              f"{row['peak_rss_mb_max']:.0f} MB | {row['test_accuracy']:.4f} |")
    results = os.path.join(HERE, DEFAULTS["results_dir"])
    os.makedirs(results, exist_ok=True)
    write_json(os.path.join(results, "benchmark.json"),
               {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "repeat": args.repeat,
                "date": time.strftime("%Y-%m-%d"), "runs": rows})


if __name__ == "__main__":
    run_cli(main, "before the benchmarks finished; results/benchmark.json is as it was",
            args=parse_args())
