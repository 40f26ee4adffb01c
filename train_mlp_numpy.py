"""Train the NumPy MLP on CIFAR-10 with plain SGD, keep the best model on validation, test it.

    python train_mlp_numpy.py --hidden_dims 256 128 --lr 0.05

Writes results/<run name>/: metrics.json, loss.png, accuracy.png and the best weights (model.npz).
"""
import argparse
import math
import time
import zipfile

import numpy as np
from tqdm import tqdm

import cifar10_utils
from mlp_numpy import ACTIVATIONS, MLP
from modules import CrossEntropyModule
from train_utils import (RunRecorder, TrainingDiverged, UserError, add_common_arguments,
                         check_batch_size, check_shapes, run_name, train_or_evaluate,
                         write_atomically)


def parse_args(argv=None):
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--activation", default="elu", choices=sorted(ACTIVATIONS),
                        help="hidden-layer nonlinearity (elu)")
    parser.add_argument("--evaluate", metavar="MODEL_NPZ",
                        help="instead of training, test the weights a run saved (model.npz); "
                             "give the --hidden_dims and --activation it was trained with")
    return parser.parse_args(argv)


def accuracy(predictions, targets):
    """Fraction of rows of predictions (S, C) whose argmax is the integer label in targets (S,)."""
    return float(np.mean(predictions.argmax(axis=1) == targets))


def evaluate_model(model, data_loader):
    """Accuracy of model over every batch of data_loader."""
    correct = 0
    for images, labels in data_loader:
        correct += np.sum(model.forward(images.reshape(len(images), -1)).argmax(axis=1) == labels)
    model.clear_cache()
    return float(correct / len(data_loader.split))


def sgd_step(model, lr):
    """W <- W - lr dL/dW for every parameter. Consumes the grads: they are scaled in place,
    which spares a weight-sized temporary on every step."""
    for layer in model.linear_layers:
        for name, grad in layer.grads.items():
            grad *= lr
            layer.params[name] -= grad


def save_weights(model, path):
    write_atomically(path, lambda f: np.savez(f, **model.state_dict()))


def load_weights(model, path):
    """Load a run's model.npz into model; a file of another architecture is refused by name."""
    try:
        with np.load(path) as saved:  # allow_pickle stays False: arrays only
            state = {name: saved[name] for name in saved.files}
    except (ValueError, EOFError, zipfile.BadZipFile) as error:
        raise UserError(f"{path} is not a saved model ({error})") from None
    check_shapes(path, {name: value.shape for name, value in state.items()},
                 {name: value.shape for name, value in model.state_dict().items()})
    model.load_state_dict(state)


def evaluate_saved(path, hidden_dims, activation, data_dir, validation_size, data_url,
                   **training_flags):
    """Print the validation and test accuracy of saved weights; training_flags do not matter."""
    model = MLP(int(np.prod(cifar10_utils.IMAGE_SHAPE)), hidden_dims, cifar10_utils.NUM_CLASSES,
                activation=activation)
    load_weights(model, path)
    dataset = cifar10_utils.get_cifar10(data_dir, validation_size, url=data_url)
    loaders = cifar10_utils.get_dataloader(dataset, cifar10_utils.EVAL_BATCH_SIZE,
                                           return_numpy=True)
    print(f"{path}: validation accuracy {evaluate_model(model, loaders['validation']):.4f}, "
          f"test accuracy {evaluate_model(model, loaders['test']):.4f}")


def train(hidden_dims, lr, batch_size, epochs, seed, data_dir, *, activation="elu",
          validation_size=5000, data_url=cifar10_utils.CIFAR10_URL, results_dir="results"):
    """Train an MLP and return (model, val_accuracies, test_accuracy, logging_dict).

    The returned model holds the weights of the epoch with the best validation accuracy, which is
    also the one tested; logging_dict has per-step and per-epoch losses and accuracies.
    """
    options = {"activation": activation} if activation != "elu" else {}
    config = dict(framework="numpy", hidden_dims=list(hidden_dims), lr=lr, batch_size=batch_size,
                  epochs=epochs, seed=seed, data_dir=data_dir, activation=activation,
                  validation_size=validation_size)
    run = RunRecorder(results_dir, run_name("numpy", hidden_dims, lr, batch_size, epochs, seed,
                                            **options), config)
    np.random.seed(seed)
    dataset = cifar10_utils.get_cifar10(data_dir, validation_size, url=data_url)
    check_batch_size(batch_size, len(dataset["train"]))
    train_loader = cifar10_utils.DataLoader(dataset["train"], batch_size, shuffle=True,
                                            drop_last=True, seed=seed)
    eval_loaders = {key: cifar10_utils.DataLoader(dataset[key], cifar10_utils.EVAL_BATCH_SIZE)
                    for key in ("validation", "test")}
    n_inputs = int(np.prod(cifar10_utils.IMAGE_SHAPE))
    model = MLP(n_inputs, hidden_dims, cifar10_utils.NUM_CLASSES, activation=activation)
    loss_module = CrossEntropyModule()
    best_state = model.state_dict()

    with run:
        for epoch in range(1, epochs + 1):
            start, losses, correct = time.perf_counter(), [], 0
            for images, labels in tqdm(train_loader, desc=f"epoch {epoch}/{epochs}",
                                       leave=False):
                probs = model.forward(images.reshape(len(images), -1))
                loss = float(loss_module.forward(probs, labels))
                if not math.isfinite(loss):
                    raise TrainingDiverged(f"loss became {loss} in epoch {epoch}: training "
                                           f"diverged; try a lower --lr than {lr}")
                model.backward_logits(loss_module.logits_grad(probs, labels))
                sgd_step(model, lr)
                run.log_step(loss)
                losses.append(loss)
                correct += np.sum(probs.argmax(axis=1) == labels)
            train_accuracy = correct / (len(losses) * batch_size)
            val_accuracy = evaluate_model(model, eval_loaders["validation"])
            if run.log_epoch(np.mean(losses), train_accuracy, val_accuracy,
                             time.perf_counter() - start):
                best_state = model.state_dict()
                save_weights(model, run.path("model.npz"))
            tqdm.write(f"epoch {epoch:3d}  train loss {np.mean(losses):.4f}  train acc "
                       f"{train_accuracy:.4f}  val acc {val_accuracy:.4f}")
        model.clear_cache()
        model.load_state_dict(best_state)
        run.log["test_accuracy"] = test_accuracy = evaluate_model(model, eval_loaders["test"])
    return model, run.log["val_accuracy"], test_accuracy, run.log


if __name__ == "__main__":
    train_or_evaluate(parse_args(), train, evaluate_saved)
