"""Time the trainers' default runs: wall time and peak memory (RSS) of each whole process.

    python -m benchmarks.benchmark                    # every CPU benchmark, 3 repeats each
    python -m benchmarks.benchmark numpy --repeat 5   # just one
    python -m benchmarks.benchmark --device cuda      # the course's run, --preset best: CUDA

The data must already be in --data_dir (a download is not part of what is measured). Each run
is a fresh `python train_...py` process, so imports, data loading, training, evaluation and
plotting all count; the seconds of training alone (the epochs) and, on a GPU, its peak memory
come from the run's metrics.json. Prints a Markdown table and writes results/benchmark.json
(benchmark-cuda.json for --device cuda): the rows of the benchmarks it ran, each with its machine,
date and repeats, in place of theirs, the others' kept. Paths are the repository's own, wherever
the command is run from."""
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a file: the repository's packages sit one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from safety.checks import positive_int
from safety.console import OneLineParser
from safety.files import write_json
from training.cli import run_cli
from training.options import DEFAULTS
from training.run_folder import read_metrics

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
DATA_DIR = os.path.join(HERE, DEFAULTS["data_dir"])

BENCHMARKS = {
    "cpu": {"numpy": ["train_mlp_numpy.py"],
            "pytorch": ["train_mlp_pytorch.py", "--device", "cpu"],
            "pytorch-bn": ["train_mlp_pytorch.py", "--device", "cpu", "--use_batch_norm"]},
    "cuda": {"pytorch": ["train_mlp_pytorch.py", "--device", "cuda"],
             "pytorch-best": ["train_mlp_pytorch.py", "--device", "cuda", "--preset", "best"]},
}


def measure(command):
    """Run command to completion; return (wall seconds, peak RSS in MB) of that process alone."""
    with tempfile.TemporaryFile("w+") as said:  # a file, not a pipe: its bars never fill it up
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=said)
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except BaseException:  # stopped: the run being measured stops too
            process.terminate()
            process.wait()
            raise
        wall = time.perf_counter() - start
        if os.waitstatus_to_exitcode(status) != 0:
            said.seek(0)
            last = ([line.strip() for line in said.read().splitlines() if line.strip()]
                    or ["it said nothing; run it by hand to see why"])[-1]
            sys.exit(f"error: {shlex.join(command)} failed: {last.removeprefix('error: ')}")
    return wall, usage.ru_maxrss / 1024  # ru_maxrss is in KB on Linux


def only_run(results_dir):
    """The metrics of the single run that results_dir holds."""
    (run,) = os.listdir(results_dir)
    return read_metrics(os.path.join(results_dir, run))


def parse_args():
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    offered = "; ".join(f"{device}: {', '.join(names)}" for device, names in BENCHMARKS.items())
    parser.add_argument("names", nargs="*", metavar="NAME",
                        help=f"benchmarks to run, of the device's ({offered}; default: all)")
    parser.add_argument("--device", choices=tuple(BENCHMARKS), default="cpu",
                        help="cuda: the course's run and --preset best on a CUDA GPU")
    parser.add_argument("--repeat", type=positive_int, default=3)
    parser.add_argument("--data_dir", default=DATA_DIR)
    args = parser.parse_args()
    if set(args.names) - set(BENCHMARKS[args.device]):
        parser.error(f"unknown benchmark: choose from {', '.join(BENCHMARKS[args.device])}")
    if args.device == "cuda":
        import torch
        if not torch.cuda.is_available():
            parser.error("--device cuda: torch sees no CUDA GPU on this machine")
    return args


def main(args):
    benchmarks, rows = BENCHMARKS[args.device], []
    for name in dict.fromkeys(args.names or benchmarks):  # a name given twice is run once
        samples = []
        for _ in range(args.repeat):
            with tempfile.TemporaryDirectory() as results:
                script, *flags = benchmarks[name]
                samples.append((*measure([sys.executable, os.path.join(HERE, script), *flags,
                                          "--data_dir", args.data_dir, "--data_url", "",
                                          "--results_dir", results]), only_run(results)))
        # a row says which data it ran on where that is not the data/ a plain run reads
        other_data = ([] if os.path.realpath(args.data_dir) == os.path.realpath(DATA_DIR) else
                      ["--data_dir", args.data_dir])
        rows.append(summary_row(name, benchmarks[name] + other_data, samples))
        print(f"{name}: {rows[-1]['wall_s_median']:.2f} s median wall, "
              f"{rows[-1]['peak_rss_mb_max']:.0f} MB peak RSS, test accuracy "
              f"{rows[-1]['test_accuracy']:.4f}", flush=True)
    print("\n| benchmark | command | wall (median) | training (median) | peak RSS | peak GPU "
          "memory | test accuracy |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        gpu = f"{row['peak_gpu_mb_max']:.0f} MB" if row["peak_gpu_mb_max"] else "-"
        print(f"| {row['benchmark']} | `{row['command']}` | {row['wall_s_median']:.2f} s | "
              f"{row['training_s_median']:.2f} s | {row['peak_rss_mb_max']:.0f} MB | {gpu} | "
              f"{row['test_accuracy']:.4f} |")
    results = os.path.join(HERE, DEFAULTS["results_dir"])
    os.makedirs(results, exist_ok=True)
    path = os.path.join(results, "benchmark.json" if args.device == "cpu" else
                        f"benchmark-{args.device}.json")
    measured = {"machine": f"{platform.machine()}, {os.cpu_count()} cores",
                "date": time.strftime("%Y-%m-%d"), "repeat": args.repeat}
    rows = [dict(row, **measured) for row in rows]
    kept = rows_not_measured(path, {row["benchmark"] for row in rows})
    write_json(path, {"runs": sorted(kept + rows, key=lambda row: list(benchmarks).index(
        row["benchmark"]) if row["benchmark"] in benchmarks else len(benchmarks))})


def rows_not_measured(path, measured):
    """The rows path holds of benchmarks other than those measured now, each with the machine,
    date and repeats it was measured with: a run of one benchmark keeps the others' numbers."""
    try:
        with open(path) as f:
            saved = json.load(f)
        rows = list(saved["runs"])
    except (OSError, ValueError, KeyError, TypeError):  # none, or no benchmark file: none to keep
        return []
    shared = {key: saved[key] for key in ("machine", "date", "repeat") if key in saved}
    return [{**shared, **row} for row in rows
            if isinstance(row, dict) and row.get("benchmark") not in (None, *measured)]


def summary_row(name, command, samples):
    """One benchmark's repeats, as (wall s, peak RSS MB, metrics), summed up."""
    walls, peaks, metrics = zip(*samples)
    training = [sum(m["epoch_seconds"]) for m in metrics]
    return {"benchmark": name, "command": shlex.join(["python", *command]),
            "wall_s_median": statistics.median(walls), "wall_s_all": list(walls),
            "training_s_median": statistics.median(training),
            "peak_rss_mb_max": max(peaks),
            "peak_gpu_mb_max": max(m.get("peak_gpu_memory_mb") or 0 for m in metrics),
            "test_accuracy": metrics[0]["test_accuracy"]}


if __name__ == "__main__":
    run_cli(main, "before the benchmarks finished; results/benchmark.json is as it was",
            args=parse_args())
