"""Train the NumPy MLP on CIFAR-10 by hand-written backprop, keep the best on validation, test it.

    python train_mlp_numpy.py --hidden_dims 256 128 --lr 0.05
    python train_mlp_numpy.py --preset best

Writes results/<run name>/: metrics.json, loss.png, accuracy.png and the best weights (model.npz).
Every option left out keeps the course's plain SGD run; the options are options.py's, the same
as the PyTorch trainer's."""
from safety import signals  # light: the guard below comes before NumPy, torch and the rest

if __name__ == "__main__":
    signals.exit_quietly_on_stop_signals()

import copy
import json
import os
import re
import zipfile

import numpy as np

from mlp_numpy import MLP
from modules import CrossEntropyModule, DropoutModule
from safety.files import write_atomically
from training import cli, evaluation
from training.evaluation import accuracy_of
from training.optim_numpy import make_optimizer
from training.options import build_parser, parse_with_preset
from training.preprocessing import every_epoch
from training.resume import (
    check_fits,
    damaged_checkpoint,
    prefixed,
    set_generator_states,
    unprefixed,
)
from training.run import TrainingRun
from training.saved_model import build_mlp, not_a_saved_model, refuse_the_other_trainers_model
from training.schedules import WeightAverage


def parse_args(argv=None):
    return parse_with_preset(build_parser("numpy", __doc__.split("\n")[0]), argv)


def accuracy(predictions, targets):
    """Fraction of rows of predictions (S, C) whose argmax is the integer label in targets (S,)."""
    return accuracy_of(predictions, targets)


def predict(model, data_loader, tta=None):
    """evaluation.predict of the model, whose forward ends in the softmax."""
    outputs = evaluation.predict(model, data_loader, tta,
                                  lambda images: model.forward(images.reshape(len(images), -1)))
    model.clear_cache()
    return outputs


def evaluate_model(model, data_loader, tta=None):
    """Accuracy of model over every image of data_loader: correct / N."""
    return accuracy_of(*predict(model, data_loader, tta))


def build_model(record, components=None):
    """The MLP a record (options.RECORDED) describes, in float32: half the memory traffic;
    components: its projection's, fitted by the run (a saved model brings its own)."""
    return build_mlp(MLP, record, components, dtype=np.float32)


def save_weights(state, record, preprocessing, path):
    """model.npz: the state_dict's arrays, the record (options.RECORDED) as one JSON string entry
    named architecture, and the fitted preprocessing's arrays, so that the file describes
    itself; arrays only, no pickle."""
    arrays = {f"preprocessing.{name}": value
              for name, value in preprocessing.fitted_arrays.items()}
    write_atomically(path, lambda f: np.savez(f, architecture=np.array(json.dumps(record)),
                                              **state, **arrays))


def read_weights(path):
    """(state, record or None, preprocessing arrays) of a model.npz; any other file is refused
    by name."""
    refuse_the_other_trainers_model(path, "numpy")
    try:
        with np.load(path) as saved:  # allow_pickle stays False: a pickle is refused unread
            entries = {name: saved[name] for name in saved.files}
    except (ValueError, EOFError, KeyError, zipfile.BadZipFile, UnicodeError) as error:
        raise not_a_saved_model(path, type(error).__name__) from None
    except AttributeError:  # a plain .npy: an array, not a mapping of them
        raise not_a_saved_model(path, "a single array") from None
    architecture = entries.pop("architecture", None)
    if not entries or not all(isinstance(value, np.ndarray) and value.dtype.kind == "f"
                              and re.fullmatch(r"(layers\.\d+|preprocessing)\.\w+", name)
                              for name, value in entries.items()):
        raise not_a_saved_model(path, "it holds entries other than the model's float arrays")
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
              **prefixed("average", average.average if average else {})}
    write_atomically(run.path(run.checkpoint), lambda f: np.savez(
        f, progress=np.array(json.dumps(progress)), **arrays))


def load_checkpoint(run, model, optimizer, average):
    """Put a stopped run's checkpoint.npz back into model, optimizer, average and run; returns
    (the first epoch still to train, the best state so far)."""
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
        return run.restore(progress), best
    except (OSError, ValueError, KeyError, TypeError, EOFError, OverflowError, RecursionError,
            zipfile.BadZipFile) as error:
        raise damaged_checkpoint(path, error) from None


def dropout_layers(model):
    return [layer for layer in model.layers if isinstance(layer, DropoutModule)]


def mixed_loss(loss_module, probs, labels, partners, weight):
    """(L, dL/dlogits) of a batch blended by Mixup: L = w CE(y) + (1 - w) CE(y[perm]), and the
    gradient blends alike, CE being linear in its target; w = 1 is the plain loss."""
    loss = float(loss_module.forward(probs, labels))
    logits_grad = loss_module.logits_grad(probs, labels)
    if weight < 1:
        loss = weight * loss + (1 - weight) * float(loss_module.forward(probs, partners))
        logits_grad = weight * logits_grad + (1 - weight) * loss_module.logits_grad(probs, partners)
    return loss, logits_grad


def train(hidden_dims, lr, batch_size, epochs, seed, data_dir, **options):
    """Train an MLP and return (model, val_accuracies, test_accuracy, logging_dict).

    The returned model holds the weights of the epoch with the best validation accuracy, which is
    also the one tested; logging_dict has per-step and per-epoch losses and accuracies. options
    are options.py's (use_batch_norm, activation, optimizer, ...), each left out at its default."""
    resume = options.pop("resume", None)
    run = TrainingRun("numpy", dict(options, hidden_dims=hidden_dims, lr=lr, batch_size=batch_size,
                                    epochs=epochs, seed=seed, data_dir=data_dir), resume)
    config = run.config
    np.random.seed(seed)
    loaders = run.load_data()
    model = build_model(run.record, run.components)
    optimizer = make_optimizer(model, config.optimizer, lr, config.momentum,
                               config.weight_decay)
    loss_module = CrossEntropyModule(label_smoothing=config.label_smoothing)
    best_state, first_epoch = model.state_dict(), 1
    average, evaluated = None, model  # with --ema, a copy of the model holds the average
    if config.ema:
        average, evaluated = WeightAverage(config.ema, model.state_dict()), copy.deepcopy(model)
    if run.resume:
        first_epoch, best_state = load_checkpoint(run, model, optimizer, average)

    with run:
        for epoch in range(first_epoch, epochs + 1):
            model.train()
            for lr_now, images, labels, partners, weight in run.batches(epoch):
                optimizer.lr = lr_now
                probs = model.forward(images.reshape(len(images), -1))
                loss, logits_grad = mixed_loss(loss_module, probs, labels, partners, weight)
                run.record_step(loss, probs.argmax(axis=1), labels, partners, weight)
                model.backward_logits(logits_grad)
                optimizer.step()
                if average:
                    average.update(model.state_dict())
            if average:
                evaluated.load_state_dict(average.average)
            if run.end_epoch(evaluate_model(evaluated, loaders["validation"],
                                            every_epoch(config.tta))):
                best_state = evaluated.state_dict()
                save_weights(best_state, run.record, run.preprocessing,
                             run.path("model.npz"))
            save_checkpoint(run, epoch, model, optimizer, best_state, average)
        model.clear_cache()
        model.load_state_dict(best_state)
        run.test(*(predict(model, loaders[split], config.tta) for split in ("validation", "test")))
    return model, run.log["val_accuracy"], run.log["test_accuracy"], run.log


if __name__ == "__main__":
    cli.train_or_evaluate(parse_args(), train, evaluate_saved)
