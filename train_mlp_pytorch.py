"""Train the PyTorch MLP on CIFAR-10 (optionally with BatchNorm, on CUDA), keep the best, test it.

    python train_mlp_pytorch.py --use_batch_norm

Writes results/<run name>/: metrics.json, loss.png, accuracy.png and the best weights (model.pt:
its state_dict and architecture, read by torch.load(path, weights_only=True)). Every option left
out keeps the course's plain SGD run. The options are train_utils's, shared with the NumPy trainer.
"""
import train_utils  # light (NumPy, the data path): the guard below comes before torch and the rest

if __name__ == "__main__":
    train_utils.exit_quietly_on_stop_signals()

import argparse
import copy
import math
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import cifar10_utils
import inspect_model
from mlp_pytorch import MLP
from train_utils import (DEFAULT_OPTIONS, Mixup, RunRecorder, UserError, WeightAverage,
                         add_common_arguments, architecture_of, check_batch_size,
                         check_model_fits, check_shapes, describe_run, diverged, lr_factor,
                         not_a_saved_model, parse_with_preset, resolve_architecture,
                         saved_preprocessing, train_or_evaluate, write_atomically)


def parse_args(argv=None):
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="auto picks CUDA, then MPS, then CPU (auto)")
    return parse_with_preset(parser, argv)


def pick_device(name):
    """'auto' tries CUDA, then Apple's MPS, then the CPU; a named device must be available."""
    available = {"cuda": torch.cuda.is_available(),
                 "mps": getattr(torch.backends, "mps", None) is not None
                 and torch.backends.mps.is_available(),
                 "cpu": True}
    if name == "auto":
        name = next(candidate for candidate in ("cuda", "mps", "cpu") if available[candidate])
        print(f"device: {name} (chosen automatically; --device overrides)")
    elif not available[name]:
        raise UserError(f"--device {name} was asked for, but this torch build or machine has no "
                        f"{name.upper()}; use --device cpu or --device auto")
    return torch.device(name)


def to_device(split, device):
    """The uint8 images and labels moved to the device once; batches are then cut there."""
    return cifar10_utils.Split(torch.from_numpy(split.images).to(device),
                               torch.from_numpy(split.labels).to(device))


def build_model(architecture, device):
    """The MLP an architecture record (train_utils.ARCHITECTURE_FLAGS) describes, for CIFAR-10."""
    return MLP(int(np.prod(cifar10_utils.IMAGE_SHAPE)), architecture["hidden_dims"],
               cifar10_utils.NUM_CLASSES, architecture["use_batch_norm"],
               architecture["activation"], architecture["dropout"],
               bottleneck=architecture["bottleneck"]).to(device)


def save_weights(state, architecture, preprocessing, path):
    """model.pt: {'architecture': the record, 'state_dict': the tensors, 'preprocessing': the
    fitted preprocessing's arrays as tensors}, all of it readable by torch.load(path,
    weights_only=True), so that the file describes itself."""
    arrays = {name: torch.from_numpy(value) for name, value in preprocessing.fitted_arrays.items()}
    write_atomically(path, lambda f: torch.save({"architecture": architecture, "state_dict": state,
                                                 "preprocessing": arrays}, f))


def read_weights(path, device):
    """(state_dict, architecture record or None, preprocessing arrays) of a model.pt, or of a
    bare state_dict as earlier versions saved; any other file is refused by name, and nothing
    in it is run."""
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
    except OSError:
        raise
    except Exception as error:  # arbitrary bytes fail in many ways inside torch's unpickler
        # torch's own message is many lines and suggests weights_only=False: never an option
        raise not_a_saved_model(path, type(error).__name__) from None
    architecture, arrays = None, {}
    if isinstance(saved, dict) and set(saved) == {"architecture", "state_dict", "preprocessing"}:
        architecture, arrays, saved = (saved[key] for key in
                                       ("architecture", "preprocessing", "state_dict"))
    for tensors in (saved, arrays):
        if not isinstance(tensors, dict) or not all(torch.is_tensor(value)
                                                    for value in tensors.values()):
            raise not_a_saved_model(path, "no state_dict of tensors")
    if not saved:
        raise not_a_saved_model(path, "an empty state_dict")
    return saved, architecture, {name: value.cpu().numpy() for name, value in arrays.items()}


def load_weights(model, state, path):
    """Load a state_dict into model; one of another architecture is refused by name."""
    check_shapes(path, {name: tuple(value.shape) for name, value in state.items()},
                 {name: tuple(value.shape) for name, value in model.state_dict().items()})
    model.load_state_dict(state)


def evaluate_saved(path, given_flags, device, data_dir, validation_size, data_url, **flags):
    """Print the validation and test accuracy of a saved model, rebuilt with the architecture
    it records; flags the user gave must agree with it, the others do not matter."""
    device = pick_device(device)
    state, saved_architecture, arrays = read_weights(path, device)
    architecture = resolve_architecture(path, saved_architecture, flags, given_flags)
    model = build_model(architecture, device)
    load_weights(model, state, path)
    preprocessing = saved_preprocessing(path, architecture["normalize"], arrays)
    dataset = cifar10_utils.get_cifar10(data_dir, validation_size, url=data_url)
    loaders = cifar10_utils.make_loaders(dataset, preprocessing,
                                         move=lambda split: to_device(split, device))
    validation_accuracy = evaluate_model(model, loaders["validation"], architecture["tta"])
    probabilities, _ = predict(model, loaders["test"], architecture["tta"])
    inspect_model.report(path, validation_accuracy, dataset["test"], probabilities,
                         model.linear_layers[0].weight.detach().cpu().numpy(),
                         cifar10_utils.class_names(data_dir))


def accuracy(predictions, targets):
    """Fraction of rows of predictions (S, C) whose argmax is the label in targets (S,)."""
    return (predictions.argmax(dim=1) == targets).float().mean().item()


@torch.no_grad()
def predict(model, data_loader, tta="none"):
    """(probabilities (N, C), labels (N,)) as NumPy arrays over every batch of data_loader, in
    eval mode (BatchNorm's running statistics, no dropout); the model's mode is restored after.
    tta='flip' averages each image's probabilities with its mirror's."""
    was_training = model.training
    model.eval()
    batches = []
    for images, labels in data_loader:
        probabilities = torch.softmax(model(images), dim=1)
        if tta == "flip":
            probabilities = (probabilities + torch.softmax(model(images.flip(-1)), dim=1)) / 2
        batches.append((probabilities, labels))
    model.train(was_training)
    return tuple(torch.cat(parts).cpu().numpy() for parts in zip(*batches))


def evaluate_model(model, data_loader, tta="none"):
    """Accuracy of model over every image of data_loader: correct / N."""
    probabilities, labels = predict(model, data_loader, tta)
    return float(np.mean(probabilities.argmax(axis=1) == labels))


class PlainSGD:
    """p <- p - lr dL/dp, the course's optimizer, with torch.optim's interface (param_groups,
    step, zero_grad). torch.optim's constructors import torch's compiler stack on first use,
    about 1.5 s of a 10 s run; the default run has no use for it."""

    def __init__(self, params, lr):
        self.params = list(params)
        self.param_groups = [{"lr": lr}]

    @torch.no_grad()
    def step(self):
        lr = self.param_groups[0]["lr"]
        for param in self.params:
            param.add_(param.grad, alpha=-lr)

    def zero_grad(self, set_to_none=True):
        for param in self.params:
            param.grad = None


def make_optimizer(model, name, lr, momentum, weight_decay):
    if name == "sgd" and momentum == 0 and weight_decay == 0:
        return PlainSGD(model.parameters(), lr)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                               weight_decay=weight_decay)
    optimizer = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)


def mixed_loss(loss_module, logits, labels, partners, weight):
    """w L(y) + (1 - w) L(y[perm]) of a batch blended by Mixup; w = 1 is the plain loss."""
    loss = loss_module(logits, labels)
    if weight < 1:
        loss = weight * loss + (1 - weight) * loss_module(logits, partners)
    return loss


def train(hidden_dims, lr, use_batch_norm, batch_size, epochs, seed, data_dir, *,
          device="auto", validation_size=5000, data_url=cifar10_utils.CIFAR10_URL,
          results_dir="results", **options):
    """Train an MLP and return (model, val_accuracies, test_accuracy, logging_dict).

    The returned model holds the weights of the epoch with the best validation accuracy, which is
    also the one tested. options are train_utils.DEFAULT_OPTIONS's, each left out at its default.
    """
    name, config = describe_run("pytorch", hidden_dims, lr, use_batch_norm, batch_size, epochs,
                                seed, options, data_dir=data_dir, validation_size=validation_size)
    opts = {key: config[key] for key in DEFAULT_OPTIONS}
    architecture = architecture_of(config)
    check_model_fits(int(np.prod(cifar10_utils.IMAGE_SHAPE)), hidden_dims,
                     cifar10_utils.NUM_CLASSES, opts["bottleneck"])
    run = RunRecorder(results_dir, name, config)
    device = pick_device(device)
    config["device"] = str(device)
    torch.manual_seed(seed)
    dataset = cifar10_utils.get_cifar10(data_dir, validation_size, url=data_url)
    check_batch_size(batch_size, len(dataset["train"]), use_batch_norm)
    preprocessing = cifar10_utils.Preprocessing.fit(opts["normalize"], dataset["train"].images,
                                                    opts["zca_epsilon"])
    loaders = cifar10_utils.make_loaders(dataset, preprocessing, batch_size, seed,
                                         opts["augment"], lambda split: to_device(split, device))
    train_loader = loaders["train"]

    model = build_model(architecture, device)
    optimizer = make_optimizer(model, opts["optimizer"], lr, opts["momentum"],
                               opts["weight_decay"])
    total_steps, step = epochs * len(train_loader), 0
    warmup_steps = round(opts["warmup"] * len(train_loader))
    loss_module = nn.CrossEntropyLoss(label_smoothing=opts["label_smoothing"])
    best_state = {key: value.clone() for key, value in model.state_dict().items()}
    mixup = Mixup(opts["mixup"], seed)
    average, evaluated = None, model  # with --ema, a copy of the model holds the average
    if opts["ema"]:
        average = WeightAverage(opts["ema"], {key: value.clone() for key, value
                                              in model.state_dict().items()
                                              if value.is_floating_point()})
        evaluated = copy.deepcopy(model)

    with run:
        for epoch in range(1, epochs + 1):
            start, losses, correct = time.perf_counter(), [], 0
            model.train()
            for images, labels in tqdm(train_loader, desc=f"epoch {epoch}/{epochs}",
                                       leave=False):
                for group in optimizer.param_groups:
                    group["lr"] = lr * lr_factor(step, total_steps, warmup_steps, opts["schedule"])
                step += 1
                images, labels, partners, weight = mixup(images, labels)
                logits = model(images)
                loss = mixed_loss(loss_module, logits, labels, partners, weight)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise diverged(loss_value, epoch, lr, opts["weight_decay"])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if average:
                    average.update(model.state_dict())
                run.log_step(loss_value)
                losses.append(loss_value)
                correct += (logits.argmax(dim=1) == (labels if weight >= 0.5 else partners)).sum()
            train_accuracy = int(correct) / (len(losses) * batch_size)
            if average:
                evaluated.load_state_dict({**model.state_dict(), **average.average})
            val_accuracy = evaluate_model(evaluated, loaders["validation"], opts["tta"])
            if run.log_epoch(np.mean(losses), train_accuracy, val_accuracy,
                             time.perf_counter() - start):
                best_state = {key: value.clone() for key, value
                              in evaluated.state_dict().items()}
                save_weights(best_state, architecture, preprocessing, run.path("model.pt"))
            tqdm.write(f"epoch {epoch:3d}  train loss {np.mean(losses):.4f}  train acc "
                       f"{train_accuracy:.4f}  val acc {val_accuracy:.4f}")
        model.load_state_dict(best_state)
        probabilities, labels = predict(model, loaders["test"], opts["tta"])
        run.log.update(inspect_model.test_metrics(labels, probabilities.argmax(axis=1),
                                                  cifar10_utils.class_names(data_dir)))
    return model, run.log["val_accuracy"], run.log["test_accuracy"], run.log


if __name__ == "__main__":
    train_or_evaluate(parse_args(), train, evaluate_saved)
