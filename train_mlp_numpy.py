"""Train the NumPy MLP on CIFAR-10 by hand-written backprop, keep the best on validation, test it.

    python train_mlp_numpy.py --hidden_dims 256 128 --lr 0.05
    python train_mlp_numpy.py --preset best

Writes results/<run name>/: metrics.json, loss.png, accuracy.png and the best weights (model.npz).
Every option left out keeps the course's plain SGD run; the options are train_utils's, the same
as the PyTorch trainer's.
"""
import train_utils  # light (NumPy, the data path): the guard below comes before torch and the rest

if __name__ == "__main__":
    train_utils.exit_quietly_on_stop_signals()

import argparse
import copy
import json
import math
import re
import time
import zipfile

import numpy as np
from tqdm import tqdm

import cifar10_utils
import inspect_model
from mlp_numpy import MLP
from modules import CrossEntropyModule
from optim_numpy import make_optimizer
from train_utils import (DEFAULT_OPTIONS, Mixup, RunRecorder, WeightAverage,
                         add_common_arguments, architecture_of, check_batch_size,
                         check_model_fits, check_shapes, describe_run, diverged, lr_factor,
                         not_a_saved_model, parse_with_preset, resolve_architecture,
                         saved_preprocessing, train_or_evaluate, write_atomically)


def parse_args(argv=None):
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    return parse_with_preset(parser, argv)


def accuracy(predictions, targets):
    """Fraction of rows of predictions (S, C) whose argmax is the integer label in targets (S,)."""
    return float(np.mean(predictions.argmax(axis=1) == targets))


def predict(model, data_loader, tta="none"):
    """(probabilities (N, C), labels (N,)) over every batch of data_loader, in eval mode
    (BatchNorm's running statistics, no dropout); the model's mode is restored after.
    tta='flip' averages each image's probabilities with its mirror's."""
    was_training = model.training
    model.eval()
    batches = []
    for images, labels in data_loader:
        probabilities = model.forward(images.reshape(len(images), -1))
        if tta == "flip":
            probabilities += model.forward(images[..., ::-1].reshape(len(images), -1))
            probabilities /= 2
        batches.append((probabilities, labels))
    model.clear_cache()
    model.train(was_training)
    return tuple(np.concatenate(parts) for parts in zip(*batches))


def evaluate_model(model, data_loader, tta="none"):
    """Accuracy of model over every image of data_loader: correct / N."""
    probabilities, labels = predict(model, data_loader, tta)
    return float(np.mean(probabilities.argmax(axis=1) == labels))


def build_model(architecture, dtype=np.float32):
    """The MLP an architecture record (train_utils.ARCHITECTURE_FLAGS) describes, for CIFAR-10."""
    return MLP(int(np.prod(cifar10_utils.IMAGE_SHAPE)), architecture["hidden_dims"],
               cifar10_utils.NUM_CLASSES, architecture["use_batch_norm"],
               architecture["activation"], architecture["dropout"], dtype=dtype,
               bottleneck=architecture["bottleneck"])


def save_weights(state, architecture, preprocessing, path):
    """model.npz: the state_dict's arrays, the architecture as one JSON string entry and the
    fitted preprocessing's arrays, so that the file describes itself; arrays only, no pickle."""
    arrays = {f"preprocessing.{name}": value
              for name, value in preprocessing.fitted_arrays.items()}
    write_atomically(path, lambda f: np.savez(f, architecture=np.array(json.dumps(architecture)),
                                              **state, **arrays))


def read_weights(path):
    """(state, architecture record or None, Preprocessing) of a model.npz; any other file is
    refused by name."""
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


def load_weights(model, state, path):
    """Load a state into model; a state of another architecture is refused by name."""
    check_shapes(path, {name: value.shape for name, value in state.items()},
                 {name: value.shape for name, value in model.state_dict().items()})
    model.load_state_dict(state)


def evaluate_saved(path, given_flags, data_dir, validation_size, data_url, **flags):
    """Print the validation and test accuracy of a saved model, rebuilt with the architecture
    it records; flags the user gave must agree with it, the others do not matter."""
    state, saved_architecture, arrays = read_weights(path)
    architecture = resolve_architecture(path, saved_architecture, flags, given_flags)
    model = build_model(architecture)
    load_weights(model, state, path)
    preprocessing = saved_preprocessing(path, architecture["normalize"], arrays)
    dataset = cifar10_utils.get_cifar10(data_dir, validation_size, url=data_url)
    loaders = cifar10_utils.make_loaders(dataset, preprocessing)
    validation_accuracy = evaluate_model(model, loaders["validation"], architecture["tta"])
    probabilities, _ = predict(model, loaders["test"], architecture["tta"])
    inspect_model.report(path, validation_accuracy, dataset["test"], probabilities,
                         model.linear_layers[0].params["weight"],
                         cifar10_utils.class_names(data_dir))


def mixed_loss(loss_module, probs, labels, partners, weight):
    """(L, dL/dlogits) of a batch blended by Mixup: L = w CE(y) + (1 - w) CE(y[perm]), and the
    gradient blends alike, CE being linear in its target; w = 1 is the plain loss."""
    loss, logits_grad = float(loss_module.forward(probs, labels)), loss_module.logits_grad(probs,
                                                                                         labels)
    if weight < 1:
        loss = weight * loss + (1 - weight) * float(loss_module.forward(probs, partners))
        logits_grad = weight * logits_grad + (1 - weight) * loss_module.logits_grad(probs,
                                                                                    partners)
    return loss, logits_grad


def train(hidden_dims, lr, batch_size, epochs, seed, data_dir, *, use_batch_norm=False,
          validation_size=5000, data_url=cifar10_utils.CIFAR10_URL, results_dir="results",
          **options):
    """Train an MLP and return (model, val_accuracies, test_accuracy, logging_dict).

    The returned model holds the weights of the epoch with the best validation accuracy, which is
    also the one tested; logging_dict has per-step and per-epoch losses and accuracies. options
    are train_utils.DEFAULT_OPTIONS's (activation, optimizer, ...), each left out at its default.
    """
    name, config = describe_run("numpy", hidden_dims, lr, use_batch_norm, batch_size, epochs, seed,
                                options, data_dir=data_dir, validation_size=validation_size)
    opts = {key: config[key] for key in DEFAULT_OPTIONS}
    architecture = architecture_of(config)
    check_model_fits(int(np.prod(cifar10_utils.IMAGE_SHAPE)), hidden_dims,
                     cifar10_utils.NUM_CLASSES, opts["bottleneck"])
    run = RunRecorder(results_dir, name, config)
    np.random.seed(seed)
    dataset = cifar10_utils.get_cifar10(data_dir, validation_size, url=data_url)
    check_batch_size(batch_size, len(dataset["train"]), use_batch_norm)
    preprocessing = cifar10_utils.Preprocessing.fit(opts["normalize"], dataset["train"].images,
                                                    opts["zca_epsilon"])
    loaders = cifar10_utils.make_loaders(dataset, preprocessing, batch_size, seed,
                                         opts["augment"])
    train_loader = loaders["train"]
    model = build_model(architecture)
    optimizer = make_optimizer(model, opts["optimizer"], lr, opts["momentum"],
                               opts["weight_decay"])
    total_steps, step = epochs * len(train_loader), 0
    warmup_steps = round(opts["warmup"] * len(train_loader))
    loss_module = CrossEntropyModule(label_smoothing=opts["label_smoothing"])
    best_state = model.state_dict()
    mixup = Mixup(opts["mixup"], seed)
    average, evaluated = None, model  # with --ema, a copy of the model holds the average
    if opts["ema"]:
        average, evaluated = WeightAverage(opts["ema"], model.state_dict()), copy.deepcopy(model)

    with run:
        for epoch in range(1, epochs + 1):
            start, losses, correct = time.perf_counter(), [], 0
            model.train()
            for images, labels in tqdm(train_loader, desc=f"epoch {epoch}/{epochs}",
                                       leave=False):
                optimizer.lr = lr * lr_factor(step, total_steps, warmup_steps, opts["schedule"])
                step += 1
                images, labels, partners, weight = mixup(images, labels)
                probs = model.forward(images.reshape(len(images), -1))
                loss, logits_grad = mixed_loss(loss_module, probs, labels, partners, weight)
                if not math.isfinite(loss):
                    raise diverged(loss, epoch, lr, opts["weight_decay"])
                model.backward_logits(logits_grad)
                optimizer.step()
                if average:
                    average.update(model.state_dict())
                run.log_step(loss)
                losses.append(loss)
                correct += np.sum(probs.argmax(axis=1) == (labels if weight >= 0.5 else partners))
            train_accuracy = correct / (len(losses) * batch_size)
            if average:
                evaluated.load_state_dict(average.average)
            val_accuracy = evaluate_model(evaluated, loaders["validation"], opts["tta"])
            if run.log_epoch(np.mean(losses), train_accuracy, val_accuracy,
                             time.perf_counter() - start):
                best_state = evaluated.state_dict()
                save_weights(best_state, architecture, preprocessing, run.path("model.npz"))
            tqdm.write(f"epoch {epoch:3d}  train loss {np.mean(losses):.4f}  train acc "
                       f"{train_accuracy:.4f}  val acc {val_accuracy:.4f}")
        model.clear_cache()
        model.load_state_dict(best_state)
        probabilities, labels = predict(model, loaders["test"], opts["tta"])
        run.log.update(inspect_model.test_metrics(labels, probabilities.argmax(axis=1),
                                                  cifar10_utils.class_names(data_dir)))
    return model, run.log["val_accuracy"], run.log["test_accuracy"], run.log


if __name__ == "__main__":
    train_or_evaluate(parse_args(), train, evaluate_saved)
