"""The figures (training/plots.py): one interrupted mid-write leaves the previous one, a backend
matplotlib refuses costs one warning, not the run, and a run leaves the process's backend as it
was."""
import os
import subprocess
import sys

import matplotlib.figure
import pytest
from helpers import REPO, TINY

from safety.errors import Terminated
from training import plots


def test_a_figure_interrupted_mid_write_leaves_the_previous_one(tmp_path, monkeypatch):
    path = tmp_path / "confusion.png"
    fig, ax = plots.subplots()
    ax.plot([1, 2])
    plots.save_figure(fig, str(path))
    good = path.read_bytes()

    def stopped_mid_write(self, target, **kwargs):
        target.write(b"\x89PNG half")
        raise Terminated()

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", stopped_mid_write)
    with pytest.raises(Terminated):
        plots.save_figure(plots.subplots()[0], str(path))
    assert path.read_bytes() == good and os.listdir(tmp_path) == ["confusion.png"]


def test_matplotlib_refusing_mplbackend_costs_one_warning(cifar_dir, tmp_path):
    flags = ["--epochs", 1, "--data_dir", cifar_dir[0], "--results_dir", tmp_path / "r",
             *TINY]
    result = subprocess.run([sys.executable, os.path.join(REPO, "train_mlp_numpy.py"),
                             *map(str, flags)],
                            capture_output=True, text=True, timeout=120, cwd=REPO,
                            env=dict(os.environ, MPLBACKEND="nonsense"))
    assert result.returncode == 0 and "Traceback" not in result.stderr
    assert result.stderr.count("MPLBACKEND=nonsense") == 1
    (folder,) = (tmp_path / "r").iterdir()
    assert (folder / "loss.png").stat().st_size > 1000


def test_a_run_from_python_leaves_the_processs_backend_and_figures_as_they_were(cifar_dir,
                                                                              tmp_path):
    """A grader's notebook draws with its own backend: train() writes its figures without
    switching it, or adding figures to pyplot's."""
    script = f"""
import matplotlib
matplotlib.use("svg")
import matplotlib.pyplot as plt
plt.figure()
import train_mlp_numpy
train_mlp_numpy.train(hidden_dims=[8], epochs=1, batch_size=16, validation_size=30,
                      data_dir={str(cifar_dir[0])!r}, data_url="", results_dir={str(tmp_path)!r})
print(matplotlib.get_backend(), len(plt.get_fignums()))
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-2:] == ["svg", "1"]
    (figure,) = tmp_path.glob("numpy_*/accuracy.png")
    assert figure.read_bytes().startswith(b"\x89PNG")


@pytest.mark.parametrize("kept, starred", [(0.7, True), (0.5, False), (None, False)])
def test_the_kept_models_validation_on_more_views_is_a_star_at_its_epoch(kept, starred):
    """With --tta flip+shift the epochs are validated on one view and the kept model on 18: the
    accuracy.png of the run shows that number where the test line is read against it."""
    metrics = dict(val_accuracy=[0.4, 0.5, 0.45], best_epoch=2, kept_val_accuracy=kept)
    ax = matplotlib.figure.Figure().add_subplot()
    plots.mark_kept_views(ax, metrics)
    stars = [line for line in ax.get_lines() if line.get_marker() == "*"]
    assert [(line.get_xdata()[0], line.get_ydata()[0]) for line in stars] == \
        ([(2, 0.7)] if starred else [])
