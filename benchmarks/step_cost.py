"""What a Muon step would add to a training step of --preset best, on this machine: the forward
and backward pass of one batch of its network (PyTorch, the CPU), one AdamW step of all its
weights, and one step of torch.optim.Muon on its hidden weight matrices (the Newton-Schulz
iteration that orthogonalizes their momentum) with AdamW on the rest, each the median of
--repeat timings after one untimed warm-up.

    python -m benchmarks.step_cost

Prints a Markdown table and writes results/step-cost.json. Nothing is trained: random inputs and
labels of the preset's shapes are enough to time the work."""
import os
import platform
import statistics
import sys
import time

import torch

if __package__ in (None, ""):  # run as a file: the repository's packages sit one folder up
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from dataset.cifar10 import PIXEL_VALUES
from mlp_pytorch import MLP
from safety.checks import positive_int
from safety.console import OneLineParser
from safety.errors import UserError
from safety.files import write_json
from training.cli import run_cli
from training.options import DEFAULTS, PRESETS

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # the repository
RECIPE = {**DEFAULTS, **PRESETS["best"]}  # the preset, and the defaults of what it leaves out


def preset_network():
    """--preset best's network, its fixed projection of the pixels included (random components:
    their values cost nothing)."""
    components = torch.linalg.qr(torch.randn(PIXEL_VALUES, RECIPE["projection"]))[0]
    return MLP(PIXEL_VALUES, RECIPE["hidden_dims"], 10, RECIPE["use_batch_norm"],
               RECIPE["activation"], RECIPE["dropout"], projection=components)


def timed(step, repeat):
    """The median seconds of step() over repeat calls, after one that is not timed."""
    step()
    seconds = []
    for _ in range(repeat):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds)


def measure(repeat):
    """{what: median seconds} for a batch's pass and for each optimizer's step."""
    model = preset_network()
    images = torch.randn(RECIPE["batch_size"], PIXEL_VALUES)
    labels = torch.randint(0, 10, (RECIPE["batch_size"],))
    loss = torch.nn.CrossEntropyLoss(label_smoothing=RECIPE["label_smoothing"])

    def forward_backward():
        model.zero_grad()
        loss(model(images), labels).backward()

    seconds = {"forward and backward of one batch": timed(forward_backward, repeat)}
    hidden = [layer.weight for layer in model.linear_layers[:-1]]
    rest = [p for p in model.parameters() if all(p is not weight for weight in hidden)]
    lr, decay = RECIPE["lr"], RECIPE["weight_decay"]
    adamw = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=decay)
    seconds["AdamW step, every weight"] = timed(adamw.step, repeat)
    muon = torch.optim.Muon(hidden, lr=lr, weight_decay=decay)
    adamw_rest = torch.optim.AdamW(rest, lr=lr, weight_decay=decay)
    seconds["Muon step of the hidden matrices, AdamW of the rest"] = timed(
        lambda: (muon.step(), adamw_rest.step()), repeat)
    return seconds


def main(args):
    if not hasattr(torch.optim, "Muon"):  # checked before minutes of timings, not after
        raise UserError(f"torch {torch.__version__} has no torch.optim.Muon, whose step this "
                        f"measures: install a torch that has it (2.13 does)")
    seconds = measure(args.repeat)
    shapes = ", ".join("x".join(map(str, layer.weight.shape))
                       for layer in preset_network().linear_layers)
    batch = seconds["forward and backward of one batch"]
    print(f"--preset best's network (weights {shapes}), batches of {RECIPE['batch_size']}, "
          f"{torch.get_num_threads()} threads\n")
    print("| step | milliseconds (median) | against a batch's pass |\n|---|---|---|")
    for what, value in seconds.items():
        print(f"| {what} | {1000 * value:.1f} | {value / batch:.2f}x |")
    results = os.path.join(HERE, DEFAULTS["results_dir"])
    os.makedirs(results, exist_ok=True)
    write_json(os.path.join(results, "step-cost.json"),
               {"machine": f"{platform.machine()}, {os.cpu_count()} cores", "repeat": args.repeat,
                "date": time.strftime("%Y-%m-%d"), "torch": torch.__version__,
                "threads": torch.get_num_threads(), "seconds": seconds})


def parse_args():
    parser = OneLineParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=positive_int, default=20)
    return parser.parse_args()


if __name__ == "__main__":
    run_cli(main, "before the timings finished; results/step-cost.json is as it was",
            args=parse_args())
