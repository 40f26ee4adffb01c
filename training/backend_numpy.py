"""What the NumPy trainer needs around its loop: its model built from a record, its predictions,
its mixup loss, its weight average, and its files: model.npz (the kept model) and checkpoint.npz
(what --resume needs), arrays only, no pickle; --evaluate of a saved model."""
import copy
import json
import os
import re
import zipfile

import numpy as np

from mlp_numpy import MLP
from modules import DropoutModule, ProjectionModule
from safety.files import write_atomically
from training import evaluation
from training.optim_numpy import Adam
from training.resume import (
    check_counts,
    check_fits,
    damaged_checkpoint,
    prefixed,
    set_generator_states,
    unprefixed,
)
from training.saved_model import build_mlp, not_a_saved_model, refuse_the_other_trainers_model
from training.schedules import WeightAverage


def build_model(record, components=None):
    """The MLP a record (options.RECORDED) describes, in float32: half the memory traffic;
    components: its projection's, fitted by the run (a saved model brings its own)."""
    return build_mlp(MLP, record, components, dtype=np.float32)


def predict(model, data_loader, tta=None):
    """evaluation.predict of the model, whose forward ends in the softmax; the batches may be
    torch tensors, as the course's get_dataloader gives them by default."""
    outputs = evaluation.predict(model, data_loader, tta, lambda images: model.forward(
        np.asarray(images).reshape(len(images), -1)))
    model.clear_cache()
    return outputs


def mixed_loss(loss_module, probs, labels, partners, w):
    """A mixup batch's loss w L(y) + (1 - w) L(y[perm]) and its gradient dL/dZ, the same blend
    of the two targets' gradients: the cross-entropy is linear in its target."""
    loss = w * float(loss_module.forward(probs, labels))
    loss += (1 - w) * float(loss_module.forward(probs, partners))
    return loss, (w * loss_module.logits_grad(probs, labels)
                  + (1 - w) * loss_module.logits_grad(probs, partners))


def weight_average(model, decay):
    """(the WeightAverage of the state training changes (trained_state), the copy of the model
    that holds it for evaluation), or (None, the model itself) where decay is 0: no --ema."""
    if not decay:
        return None, model
    state = {name: value.copy() for name, value in trained_state(model).items()}
    return WeightAverage(decay, state), copy.deepcopy(model)


def trained_state(model):
    """The arrays training changes, as they are now (not copied), named as in state_dict(): every
    parameter and BatchNorm's running statistics, but not a projection's fixed components."""
    state = {name: value for name, value, _ in model.parameters()}
    state.update({f"layers.{i}.{name}": value for i, layer in enumerate(model.layers)
                  if hasattr(layer, "buffers") and not isinstance(layer, ProjectionModule)
                  for name, value in layer.buffers().items()})
    return state


def save_weights(state, record, preprocessing, path):
    """model.npz: the state_dict's arrays, the record (options.RECORDED) as one JSON string entry
    named architecture, and the fitted preprocessing's arrays, so that the file describes
    itself; arrays only, no pickle."""
    arrays = {f"preprocessing.{name}": value
              for name, value in preprocessing.fitted_arrays.items()}
    write_atomically(path, lambda f: np.savez(f, architecture=np.array(json.dumps(record)),
                                              **state, **arrays))


# a model.npz's array names: a layer's (in a residual block's branch or not), or preprocessing's
MODEL_ENTRY = r"(layers\.\d+(\.branch\.\d+)?|preprocessing)\.\w+"


def read_weights(path):
    """(state, record or None, preprocessing arrays) of a model.npz; any other file is refused
    by name."""
    refuse_the_other_trainers_model(path, "numpy")
    try:
        saved = np.load(path)  # allow_pickle stays False: a pickle is refused unread
        if isinstance(saved, np.lib.npyio.NpzFile):
            with saved:
                entries = {name: saved[name] for name in saved.files}
    except (ValueError, EOFError, KeyError, zipfile.BadZipFile, UnicodeError) as error:
        raise not_a_saved_model(path, f"it is no whole .npz archive of arrays "
                                      f"({type(error).__name__})") from None
    if not isinstance(saved, np.lib.npyio.NpzFile):  # a plain .npy: an array, not a mapping
        raise not_a_saved_model(path, "a single array")
    architecture = entries.pop("architecture", None)
    if not entries or not all(isinstance(value, np.ndarray) and value.dtype.kind == "f"
                              and re.fullmatch(MODEL_ENTRY, name)
                              for name, value in entries.items()):
        raise not_a_saved_model(path, "it holds entries other than the model's float arrays")
    if not all(np.isfinite(value).all() for value in entries.values()):
        raise not_a_saved_model(path, "it holds weights that are not finite numbers")
    if architecture is not None:
        try:
            architecture = json.loads(str(architecture[()]))
        except (ValueError, TypeError, IndexError):
            raise not_a_saved_model(path, "its architecture entry is not JSON") from None
    arrays = {name.split(".", 1)[1]: entries.pop(name) for name in list(entries)
              if name.startswith("preprocessing.")}
    return entries, architecture, arrays


def evaluate_saved(path, given_flags, figures_dir=None, **flags):
    """--evaluate: evaluation.evaluate_saved with this trainer's file format and model."""
    evaluation.evaluate_saved(path, given_flags, flags, read_weights, build_model, predict,
                              figures_dir=figures_dir)


def save_checkpoint(run, epoch, model, optimizer, best_state, average):
    """checkpoint.npz, after every epoch: the model, the best state so far, the optimizer's
    state, the weight average and, as one JSON entry, the run's progress with every random
    generator's state (the dropout layers' too): what --resume needs to go on exactly. Arrays
    only, no pickle."""
    progress = run.progress(epoch)
    progress["dropout"] = [layer.rng.bit_generator.state for layer in dropout_layers(model)]
    progress["average_updates"] = average.updates if average else 0
    arrays = {**prefixed("model", model.state_dict()), **prefixed("best", best_state),
              **prefixed("optimizer", optimizer.state_dict()),
              **prefixed("average", average.average if average else {}),
              "teacher": run.teacher.state()[0]}
    write_atomically(run.path(run.checkpoint), lambda f: np.savez(
        f, progress=np.array(json.dumps(progress)), **arrays))


def load_checkpoint(run, model, optimizer, average):
    """Put a stopped run's checkpoint.npz back into model, optimizer, average and run; returns
    (the first epoch still to train, the best state so far). A run with no checkpoint (at most
    one finished epoch: TrainingRun.check_held) starts over: (1, the model as built)."""
    if run.starts_over:
        return 1, model.state_dict()
    path = os.path.join(run.resume, run.checkpoint)
    try:
        with np.load(path) as saved:
            entries = {name: saved[name] for name in saved.files}
        progress = json.loads(str(entries.pop("progress")[()]))
        model.load_state_dict(unprefixed("model", entries))
        optimizer.load_state_dict(unprefixed("optimizer", entries))
        set_generator_states([layer.rng for layer in dropout_layers(model)], progress["dropout"])
        best = unprefixed("best", entries)
        check_fits("best", best, model.state_dict())
        if average:
            averaged = unprefixed("average", entries)
            check_fits("average", averaged, average.average)
            average.average, average.updates = averaged, progress["average_updates"]
        first_epoch = run.restore(progress)
        run.teacher.load(entries.get("teacher"), progress.get("teacher_snapshots", 0),
                         first_epoch - 1)
        check_counts(update_counts(optimizer, average), run.step)
        return first_epoch, best
    except (OSError, ValueError, KeyError, TypeError, EOFError, OverflowError, RecursionError,
            zipfile.BadZipFile) as error:
        raise damaged_checkpoint(path, error) from None


def update_counts(optimizer, average):
    """The counts of updates a checkpoint restores, as (name, count) pairs: each is one a step."""
    counts = [("average_updates", average.updates)] if average else []
    return counts + ([("optimizer t", optimizer.t)] if isinstance(optimizer, Adam) else [])


def dropout_layers(model):
    return [module for module in model.modules() if isinstance(module, DropoutModule)]
