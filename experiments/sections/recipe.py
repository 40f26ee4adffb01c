"""How the 61 % recipe was built: the ladder that builds it by hand, one change a row, and that
recipe in both trainers. The greedy search (search.py) starts from it."""
from experiments.runs import LADDER_RECIPE_KEY, LADDER_RECIPE_NAME
from experiments.sections.words import TRAINERS_AGREE_TO
from experiments.store import by_key, flags_of, validation_accuracy


def section_best(summary, experiment_set, results):
    entries = summary["runs"]
    final = by_key(summary)[LADDER_RECIPE_KEY]["metrics"]
    epochs = f'{flags_of(by_key(summary)["crops"])["epochs"]} epochs'
    rows = "\n".join(
        f"| {i} | {e['label']} | {100 * e['metrics']['test_accuracy']:.2f} | "
        f"{e['metrics']['wall_time_s'] / 60:.1f} min | `{e['command']}` |"
        for i, e in enumerate(entries))
    return f"""How {LADDER_RECIPE_NAME} is built by hand, on the machine named above; the greedy
search below starts from it. Each row adds one change to the row before; the wall time is
the whole run in-process (data, training with a validation pass per epoch, test).

| # | change | test accuracy % | wall time | command |
|---|---|---|---|---|
{rows}

![The ladder's last recipe](best/best.png)

The final row reached {100 * final['test_accuracy']:.2f} % test accuracy in
{final['wall_time_s'] / 60:.1f} minutes on {summary['machine']}. Random crops hurt at
{epochs}: a pixel's meaning to an MLP is tied to its position, and crops move every pixel, so the
network has to learn each shifted copy of a pattern on its own. The search's second stage below
shows that they pay off once the runs are long enough. How far the recipes go on a GPU is
unmeasured: these runs used no GPU."""


def section_best_numpy_vs_torch(summary, experiment_set, results):
    entries = summary["runs"]
    numpy_run, torch_run = (by_key(summary)[key]["metrics"] for key in ("numpy", "pytorch"))
    rows = "\n".join(
        f"| {e['label']} | {100 * e['metrics']['test_accuracy']:.2f} | "
        f"{100 * validation_accuracy(e['metrics']):.2f} | "
        f"{e['metrics']['wall_time_s'] / 60:.1f} min | `{e['command']}` |" for e in entries)
    gap = 100 * (numpy_run["test_accuracy"] - torch_run["test_accuracy"])
    ratio = numpy_run["wall_time_s"] / torch_run["wall_time_s"]
    return f"""{LADDER_RECIPE_NAME.capitalize()} (BatchNorm, dropout, AdamW, cosine schedule, label
smoothing, flips) trained once by the NumPy trainer, whose every gradient and optimizer step is
written by hand, and once by the PyTorch trainer, with autograd and torch.optim, on the same
machine one after the other. The two start from different random weights and draw different
dropout masks, so they agree in level, not number for number; the tests prove that with the
same weights and no dropout they compute the same gradients and steps to {TRAINERS_AGREE_TO}
(NumPy's dropout is checked on its own, against finite differences through a fixed mask).

| trainer | test accuracy % | validation accuracy % | wall time | command |
|---|---|---|---|---|
{rows}

![Best recipe in NumPy and PyTorch](best-numpy-vs-torch/best-numpy-vs-torch.png)

NumPy ends {gap:+.2f} points from PyTorch and takes {ratio:.2f}x its time."""
