"""What the PyTorch trainer needs around its loop: the device, its model built from a record, its
predictions, its weight average, and its files: model.pt (the kept model) and checkpoint.pt
(what --resume needs), tensors and plain types only, read with weights_only=True; --evaluate of a
saved model."""
import copy
import json
import os
import warnings

import numpy as np
import torch

from dataset.splits import Split
from mlp_pytorch import MLP, Projection
from safety.console import say
from safety.errors import UserError
from safety.files import write_atomically
from training import evaluation
from training.resume import check_counts, check_fits, damaged_checkpoint
from training.saved_model import build_mlp, not_a_saved_model, refuse_the_other_trainers_model
from training.schedules import WeightAverage


def pick_device(name):
    """'auto' tries CUDA, then Apple's MPS, then the CPU; a named device must be available."""
    available = {"cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None
                 and torch.backends.mps.is_available(),
                 "cpu": True}
    if name == "auto":
        name = next(candidate for candidate in ("cuda", "mps", "cpu") if available[candidate])
        say(f"device: {name} (chosen automatically; --device overrides)")
    elif not available[name]:
        raise UserError(f"--device {name} was asked for, but this torch build or machine has no "
                        f"{name.upper()}; use --device cpu or --device auto")
    return torch.device(name)


def run_device(run):
    """The device a run's --device names, recorded in its config: what "auto" chose."""
    device = pick_device(run.config.device)
    run.config_record["device"] = str(device)
    return device


def peak_gpu_memory(device):
    """{'peak_gpu_memory_mb': the most GPU memory the run held} on CUDA, else {}."""
    if device.type != "cuda":
        return {}
    return {"peak_gpu_memory_mb": torch.cuda.max_memory_allocated(device) / 2 ** 20}


def to_device(split, device):
    """The uint8 images and labels moved to the device once; batches are then cut there."""
    return Split(torch.from_numpy(split.images).to(device),
                               torch.from_numpy(split.labels).to(device))


def build_model(record, device, components=None):
    """The MLP a record (options.RECORDED) describes, on the device; components: its
    projection's, fitted by the run (a saved model brings its own)."""
    return build_mlp(MLP, record, components).to(device)


@torch.no_grad()
def predict(model, data_loader, tta=None):
    """evaluation.predict of the model, whose logits go through a softmax."""
    return evaluation.predict(model, data_loader, tta,
                               lambda images: torch.softmax(model(images), dim=1))


def cloned_state(model):
    """A copy of the model's state_dict that later steps leave as it is."""
    return {key: value.clone() for key, value in model.state_dict().items()}


def weight_average(model, decay):
    """(the WeightAverage of the state training changes: every parameter and BatchNorm's running
    statistics, but not a projection's fixed components; the copy of the model that holds it for
    evaluation), or (None, the model itself) where decay is 0: no --ema."""
    if not decay:
        return None, model
    fixed = {f"{name}.components" for name, module in model.named_modules()
             if isinstance(module, Projection)}
    return (WeightAverage(decay, {key: value.clone() for key, value in model.state_dict().items()
                                  if value.is_floating_point() and key not in fixed}),
            copy.deepcopy(model))


def save_weights(state, record, preprocessing, path):
    """model.pt: {'architecture': the record (options.RECORDED), 'state_dict': the tensors,
    'preprocessing': the fitted preprocessing's arrays as tensors}, all of it readable by
    torch.load(path, weights_only=True), so that the file describes itself."""
    arrays = {name: torch.from_numpy(value) for name, value in preprocessing.fitted_arrays.items()}
    write_atomically(path, lambda f: torch.save({"architecture": record, "state_dict": state,
                                                 "preprocessing": arrays}, f))


def load_tensors(path, device):
    """torch.load with weights_only=True, nothing in the file run. Its warning about a pickle
    protocol other than its own is left out: the error that follows, if any, says what the file
    is not, in one line."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Detected pickle protocol")
        return torch.load(path, map_location=device, weights_only=True)


def read_weights(path, device):
    """(state_dict, record or None, preprocessing arrays) of a model.pt, or of a file that holds
    a state_dict alone (no record: the flags describe the model); any other file is refused by
    name, and nothing in it is run."""
    refuse_the_other_trainers_model(path, "pytorch")
    try:
        saved = load_tensors(path, device)
    except OSError:
        raise
    except Exception as error:  # arbitrary bytes fail in many ways inside torch's unpickler
        # torch's own message is many lines and suggests weights_only=False: never an option
        raise not_a_saved_model(path, type(error).__name__) from None
    architecture, arrays, parts = None, {}, {"architecture", "state_dict", "preprocessing"}
    if isinstance(saved, dict) and "state_dict" in saved and set(saved) != parts:
        raise not_a_saved_model(path, f"it holds {', '.join(sorted(map(str, saved)))}, not a "
                                      f"model's {', '.join(sorted(parts))}")
    if isinstance(saved, dict) and set(saved) == parts:
        architecture, arrays, saved = (saved[key] for key in
                                       ("architecture", "preprocessing", "state_dict"))
    for tensors in (saved, arrays):
        if not isinstance(tensors, dict) or not all(torch.is_tensor(value)
                                                    for value in tensors.values()):
            raise not_a_saved_model(path, "no state_dict of tensors")
    if not saved:
        raise not_a_saved_model(path, "an empty state_dict")
    if not all(is_weights(name, value) for name, value in saved.items()):
        raise not_a_saved_model(path, "it holds tensors other than dense, finite float weights")
    return saved, architecture, {name: value.cpu().numpy() for name, value in arrays.items()}


def is_weights(name, tensor):
    """Whether a state_dict entry can be a model's: a dense tensor of finite floats, or the
    count BatchNorm keeps of its batches."""
    if tensor.layout != torch.strided or tensor.is_meta:
        return False
    if name.endswith("num_batches_tracked"):
        return not tensor.is_floating_point()
    return tensor.is_floating_point() and bool(torch.isfinite(tensor).all())


def evaluate_saved(path, given_flags, device, figures_dir=None, **flags):
    """--evaluate: evaluation.evaluate_saved with this trainer's file format and model."""
    device = pick_device(device)
    evaluation.evaluate_saved(
        path, given_flags, flags, lambda path: read_weights(path, device),
        lambda record, components: build_model(record, device, components), predict,
        move=lambda split: to_device(split, device), figures_dir=figures_dir)


def save_checkpoint(run, epoch, model, optimizer, best_state, average):
    """checkpoint.pt, after every epoch: the model, the best state so far, the optimizer's state,
    the weight average, torch's random generators (CPU, and CUDA's where used) and, as one JSON
    string, the run's progress with its own generators: what --resume needs to go on exactly."""
    progress = run.progress(epoch)
    progress["average_updates"] = average.updates if average else 0
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    content = {"progress": json.dumps(progress), "model": model.state_dict(),
               "best": best_state, "optimizer": optimizer.state_dict(),
               "average": average.average if average else {},
               # float64 as the int64 of its bits: MPS holds no float64
               "teacher": torch.from_numpy(run.teacher.state()[0].view(np.int64)),
               "cpu_generator": torch.get_rng_state(), "cuda_generators": cuda}
    write_atomically(run.path(run.checkpoint), lambda f: torch.save(content, f))


def update_counts(optimizer, average):
    """The counts of updates a checkpoint restores, as (name, count) pairs: each is one a step
    (Adam's step, which torch keeps for every parameter)."""
    counts = [("average_updates", average.updates)] if average else []
    return counts + [("optimizer step", int(state["step"])) for state in optimizer.state.values()
                     if "step" in state]


def load_checkpoint(run, model, optimizer, average, device):
    """Put a stopped run's checkpoint.pt back into model, optimizer, average, torch's generators
    and run; returns (the first epoch still to train, the best state so far). A run with no
    checkpoint (at most one finished epoch: TrainingRun.check_held) starts over: (1, the model as
    built)."""
    if run.starts_over:
        return 1, cloned_state(model)
    path = os.path.join(run.resume, run.checkpoint)
    try:
        saved = load_tensors(path, device)
    except OSError:
        raise
    except Exception as error:  # arbitrary bytes fail in many ways inside torch's unpickler
        # torch's own message is many lines and suggests weights_only=False: never an option
        raise damaged_checkpoint(path, error, "it holds more than tensors and plain values, "
                                 "or is no checkpoint at all; nothing in it was run") from None
    try:
        progress = json.loads(saved["progress"])
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        torch.set_rng_state(saved["cpu_generator"].cpu())
        if device.type == "cuda" and saved["cuda_generators"]:
            torch.cuda.set_rng_state_all([state.cpu() for state in saved["cuda_generators"]])
        check_fits("best", saved["best"], model.state_dict())
        if average:
            check_fits("average", saved["average"], average.average)
            average.average, average.updates = saved["average"], progress["average_updates"]
        first_epoch = run.restore(progress)
        teacher = saved.get("teacher")
        run.teacher.load(None if teacher is None else teacher.cpu().numpy().view(np.float64),
                         progress.get("teacher_snapshots", 0), first_epoch - 1)
        check_counts(update_counts(optimizer, average), run.step)
        return first_epoch, saved["best"]
    except (OSError, UserError):
        raise
    except Exception as error:  # a checkpoint whose contents do not fit: named by what failed
        raise damaged_checkpoint(path, error) from None
