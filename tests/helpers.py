"""What many test files share: the repository's root, the trainers, running one as a user would
(to the end, or started and then signalled), the one-line error every refusal ends in, a tiny run
of either trainer, twin NumPy and PyTorch models and how to compare them, a copy of the
repository to run from elsewhere, a pickle payload that must never run, an experiment set's
task and results as the runner runs and writes them, and a weight average that records what it
is given."""
import json
import os
import shlex
import shutil
import signal
import stat
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from torch import nn

import train_mlp_numpy
import train_mlp_pytorch
from mlp_numpy import MLP as NumpyMLP
from mlp_pytorch import MLP as TorchMLP
from experiments.store import Results
from modules import CrossEntropyModule
from safety.errors import Terminated
from training import run
from training.schedules import WeightAverage

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAINERS = {"numpy": (train_mlp_numpy, "model.npz"), "pytorch": (train_mlp_pytorch, "model.pt")}
SCRIPTS = {"numpy": ("train_mlp_numpy.py", "model.npz"),
           "pytorch": ("train_mlp_pytorch.py", "model.pt")}
SETTINGS = {"numpy": {}, "pytorch": {"device": "cpu"}}  # what a trainer needs beyond the flags
TINY = ["--batch_size", "16", "--validation_size", "30", "--data_url", ""]
COMPONENTS = 40  # the principal components a projected test model keeps


# --- the command line, as a user runs it ---
def run_script(script, *flags, timeout=120):
    """Run a trainer as a user would; returns (exit code, stdout, stderr)."""
    result = subprocess.run([sys.executable, os.path.join(REPO, script), *map(str, flags)],
                            capture_output=True, text=True, timeout=timeout, cwd=REPO)
    return result.returncode, result.stdout, result.stderr


def default_stop_signals():
    """A child's preexec_fn: SIGINT and SIGTERM at their defaults, as a user's shell starts a
    command, even when this suite runs as a background job (which inherits SIGINT ignored)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def start_trainer(script, *flags):
    """Start a trainer as a user's shell would (default_stop_signals)."""
    return subprocess.Popen([sys.executable, os.path.join(REPO, script), *map(str, flags)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=default_stop_signals)


def wait_for_epochs(results, count, process, timeout=600):
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        paths = list(results.glob("*/metrics.json"))
        if paths and len(json.loads(paths[0].read_text())["val_accuracy"]) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {count} epochs within {timeout} s")


def assert_one_clear_line(stderr, *fragments):
    assert "Traceback" not in stderr and "Warning:" not in stderr, stderr
    last = stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), stderr
    for fragment in fragments:
        assert fragment in last, (fragment, last)


# --- the Python API ---
def train(framework, root, results, **flags):
    """A tiny run of either trainer (one epoch of a 16-unit MLP on batches of 16) with flags
    changing any of it; returns what train returns."""
    trainer, _ = TRAINERS[framework]
    settings = dict(hidden_dims=[16], lr=0.05, epochs=1, seed=0, data_dir=str(root),
                    results_dir=str(results), batch_size=16, validation_size=30, data_url="")
    if framework == "pytorch":
        settings.update(use_batch_norm=False, device="cpu")
    return trainer.train(**{**settings, **flags})


def train_projected(framework, data, results, **flags):
    """A run of the projected recipe: ZCA, a projection onto COMPONENTS components, augmented,
    BatchNorm, mirror averaging at test time; flags change any of it."""
    trainer, _ = TRAINERS[framework]
    return trainer.train(**{**dict(hidden_dims=[16], lr=0.01, batch_size=20, epochs=2, seed=3,
                                   use_batch_norm=True, normalize="zca", zca_epsilon=1.0,
                                   projection=COMPONENTS, augment="crop+flip", tta="flip",
                                   optimizer="adam", validation_size=60, data_url="",
                                   data_dir=str(data), results_dir=str(results)),
                            **flags, **SETTINGS[framework]})


# --- twin models: the NumPy MLP and the PyTorch MLP with the same float64 weights ---
def rel_error(a, b):
    return np.linalg.norm(a - b) / max(1e-300, np.linalg.norm(a) + np.linalg.norm(b))


def assert_agree(ours, theirs, tolerance, name):
    """Relative error below tolerance. A Linear's bias before BatchNorm has gradient 0
    analytically (the batch mean cancels it): both sides hold round-off there, about 1e-17,
    which must stay that small."""
    ours, theirs = np.ravel(ours), np.ravel(theirs)
    if np.linalg.norm(ours) + np.linalg.norm(theirs) < 1e-14:
        return
    assert rel_error(ours, theirs) < tolerance, name


def torch_name(numpy_name):
    """The NumPy MLP's state_dict names are the PyTorch MLP's, with BatchNorm's γ and β spelled
    out as the assignment does; torch calls them weight and bias."""
    return numpy_name.replace(".gamma", ".weight").replace(".beta", ".bias")


def twin_models(n_inputs, hidden, n_classes, activation="elu", seed=0, use_batch_norm=False,
                bottleneck=0, projection=0, blocks=0, block_width=0):
    """A NumPy MLP and a PyTorch MLP holding the same float64 weights (BatchNorm's and
    LayerNorm's γ and β made other than 1 and 0, so that they count; a projection's components
    orthonormal)."""
    np.random.seed(seed)
    components = (np.linalg.qr(np.random.standard_normal((n_inputs, projection)))[0]
                  if projection else None)
    numpy_model = NumpyMLP(n_inputs, hidden, n_classes, use_batch_norm, activation,
                           bottleneck=bottleneck, projection=components, blocks=blocks,
                           block_width=block_width)
    for name, param, _ in numpy_model.parameters():
        if ".gamma" in name or ".beta" in name:
            param += np.random.uniform(-0.5, 0.5, param.shape)
    torch_model = TorchMLP(n_inputs, hidden, n_classes, use_batch_norm, activation,
                           bottleneck=bottleneck, projection=components, blocks=blocks,
                           block_width=block_width).double()
    with torch.no_grad():
        targets = torch_model.state_dict()
        for name, value in numpy_model.state_dict().items():
            target = targets[torch_name(name)]
            target.copy_(torch.from_numpy(value).reshape(target.shape))
    return numpy_model, torch_model


def assert_same_state(numpy_model, torch_model, tolerance):
    theirs = torch_model.state_dict()
    for name, value in numpy_model.state_dict().items():
        assert_agree(value, theirs[torch_name(name)].detach().numpy(), tolerance, name)


def numpy_loss_and_grads(model, x, labels, label_smoothing=0.0):
    loss_module = CrossEntropyModule(label_smoothing)
    probs = model.forward(x)
    loss = loss_module.forward(probs, labels)
    model.backward_logits(loss_module.logits_grad(probs, labels))
    return loss


def torch_loss(model, x, labels, label_smoothing=0.0):
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)(model(torch.from_numpy(x)),
                                                                 torch.from_numpy(labels))


# --- files ---
def copy_of_the_repository(tmp_path, with_results=False):
    copy = tmp_path / "repo"
    copy.mkdir()
    for name in os.listdir(REPO):
        if name.endswith(".py"):
            shutil.copy(os.path.join(REPO, name), copy)
        elif os.path.isfile(os.path.join(REPO, name, "__init__.py")):
            shutil.copytree(os.path.join(REPO, name), copy / name,
                            ignore=shutil.ignore_patterns("__pycache__"))
    if with_results:
        shutil.copytree(os.path.join(REPO, "results"), copy / "results")
    return copy


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# an existing folder in which no process can create a file, root included, though os.access
# says root may write there: only a write tried in it finds that out (Linux's /proc)
UNWRITABLE = "/proc/self/fdinfo"


def loaded_before_the_check(*args, **kwargs):
    """In place of get_cifar10 where a folder's write must be tried before the data is loaded."""
    raise AssertionError("the data was loaded before the folder's write was tried")


def files_of(folder):
    return {str(path.relative_to(folder)): path.read_bytes()
            for path in sorted(folder.rglob("*")) if path.is_file()}


class RunsCode:
    """Unpickling this would call os.system: the classic pickle payload."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


# --- experiment sets: a task run as a job array runs it, a set written as the runner writes it ---
def run_task(command, *more_flags):
    """A listed command run as its job array's task runs it, by this suite's interpreter; more
    flags after it make it another run than the one listed."""
    words = shlex.split(command)
    assert words[0] == "python", command
    task = subprocess.run([sys.executable, *words[1:], *more_flags], cwd=REPO,
                          capture_output=True, text=True, timeout=300)
    assert task.returncode == 0, task.stderr


def metrics(test_accuracy=0.5, val_accuracy=(0.4, 0.5), wall_time_s=60.0, **more):
    """A run's metrics.json as a trainer writes it, with only what the report reads."""
    return dict(test_accuracy=test_accuracy, val_accuracy=list(val_accuracy),
                train_loss=[2.0, 1.5][:len(val_accuracy)], best_epoch=len(val_accuracy),
                wall_time_s=wall_time_s, epoch_seconds=[wall_time_s / 2] * len(val_accuracy),
                **more)


def write_set(folder, name, runs, **summary):
    """folder/name/ as the runner writes a set: summary.json and each run's metrics.json; runs:
    (key, label, trainer, flags, metrics, what else the summary records of the run)."""
    entries = []
    for index, (key, label, trainer, flags, measured, *more) in enumerate(runs):
        run_dir = folder / name / "runs" / f"{index}-{key}"
        run_dir.mkdir(parents=True)
        (run_dir / "metrics.json").write_text(json.dumps(measured))
        entries.append(dict(key=key, label=label, trainer=trainer, flags=flags,
                            run_dir=f"runs/{index}-{key}", **(more[0] if more else {})))
    (folder / name / "summary.json").write_text(json.dumps(dict(
        dict(set=name, command=f"python -m experiments {name}", date="2026-01-01",
             machine="a test machine", data="synthetic"), runs=entries, **summary)))
    return Results(folder)


# --- inputs for the gradient checks of tests/ (the finite differences are unittests.py's) ---
class RepeatingGenerator:
    """Stands in for a dropout module's Generator and draws the same numbers on every call, so
    that the mask stays fixed while finite differences call forward again and again."""

    def __init__(self, seed):
        self.seed = seed

    def random(self, shape, dtype):
        return np.random.default_rng(self.seed).random(shape, dtype=dtype)


def orthonormal_columns(rng, rows, columns):
    """A random (rows, columns) matrix with orthonormal columns, as principal components are."""
    return np.linalg.qr(rng.standard_normal((rows, columns)))[0]


# --- a run stopped part-way, and its checkpoint edited: what --resume is tested on ---
def stopped_in_epoch(monkeypatch, epoch, step=4):
    """Let training stop (SIGTERM's exception) at the given step of the given epoch."""
    batches = run.TrainingRun.batches

    def stopping(self, current):
        for index, batch in enumerate(batches(self, current)):
            if current == epoch and index == step:
                raise Terminated()
            yield batch

    monkeypatch.setattr(run.TrainingRun, "batches", stopping)
    return batches


def stopped_run_folder(monkeypatch, train, framework, root, folder, epoch, step=4, **flags):
    """train(framework, root, folder, **flags) until SIGTERM's exception at the step of the epoch;
    returns the run's folder, training left to go on uninterrupted."""
    batches = stopped_in_epoch(monkeypatch, epoch, step)
    with pytest.raises(Terminated):
        train(framework, root, folder, **flags)
    monkeypatch.setattr(run.TrainingRun, "batches", batches)
    (run_dir,) = folder.iterdir()
    return run_dir


def edited_progress(run_dir, edit):
    """Rewrite the progress entry of run_dir's checkpoint.npz by edit(progress)."""
    path = run_dir / "checkpoint.npz"
    with np.load(path) as saved:
        entries = {name: saved[name] for name in saved.files}
    progress = json.loads(str(entries["progress"][()]))
    text = edit(progress)  # a text in place of the progress, or else the progress edited
    text = text if isinstance(text, str) else json.dumps(progress)
    np.savez(path, **dict(entries, progress=np.array(text)))


# --- what a run hands its parts ---
def as_numpy(state):
    """Copies of a state's floating-point arrays, NumPy's or torch's, as NumPy arrays."""
    return {key: value.numpy().copy() if torch.is_tensor(value) else value.copy()
            for key, value in state.items()
            if not torch.is_tensor(value) or value.is_floating_point()}


class RecordingAverage(WeightAverage):
    """A WeightAverage that keeps copies of where it started and of every state it was given."""
    runs = []

    def __init__(self, decay, state):
        super().__init__(decay, state)
        self.start, self.seen = as_numpy(state), []
        RecordingAverage.runs.append(self)

    def update(self, state):
        self.seen.append(as_numpy(state))
        super().update(state)
