"""Train the PyTorch MLP on CIFAR-10 (optionally with BatchNorm, on CUDA), keep the best, test it.

    python train_mlp_pytorch.py --use_batch_norm

Writes results/<run name>/: metrics.json, loss.png, accuracy.png and the best weights (model.pt, a
state_dict: torch.load(path, weights_only=True)). Every option left out keeps the course's plain
SGD run; the others exist for experiments.py.
"""
import argparse
import math
import pickle
import time

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

import cifar10_utils
from mlp_pytorch import ACTIVATIONS, MLP
from train_utils import (RunRecorder, TrainingDiverged, UserError, add_common_arguments,
                         check_batch_size, check_shapes, nonnegative_float, probability,
                         run_name, train_or_evaluate, write_atomically)

DEFAULT_OPTIONS = dict(activation="elu", optimizer="sgd", momentum=0.0, weight_decay=0.0,
                       dropout=0.0, schedule="none", warmup=0.0, label_smoothing=0.0,
                       augment="none")

# The best pure MLP found for 10 minutes of training on a 2-core CPU: experiments.py's 'best'
# set shows how each part of it was chosen and what it scores.
PRESETS = {"best": dict(hidden_dims=[1024, 1024], use_batch_norm=True, optimizer="adamw",
                        lr=2e-3, weight_decay=0.05, schedule="cosine", warmup=1.0,
                        label_smoothing=0.1, dropout=0.1, augment="flip", batch_size=512,
                        epochs=90)}


def parse_args(argv=None):
    parser = add_common_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="start from a named set of flags (best: the best MLP of "
                             "results/README.md); flags given as well override it")
    parser.add_argument("--use_batch_norm", action="store_true",
                        help="BatchNorm1d after each hidden Linear")
    parser.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda", "mps"],
                        help="auto picks CUDA, then MPS, then CPU (auto)")
    parser.add_argument("--activation", default="elu", choices=sorted(ACTIVATIONS))
    parser.add_argument("--optimizer", default="sgd", choices=["sgd", "adam", "adamw"])
    parser.add_argument("--momentum", default=0.0, type=probability, help="SGD momentum (0)")
    parser.add_argument("--weight_decay", default=0.0, type=nonnegative_float, help="(0)")
    parser.add_argument("--dropout", default=0.0, type=probability,
                        help="dropout after each hidden activation (0)")
    parser.add_argument("--schedule", default="none", choices=["none", "cosine"],
                        help="learning rate: constant, or cosine decay to 0 per step (none)")
    parser.add_argument("--warmup", default=0.0, type=nonnegative_float,
                        help="epochs of linear learning-rate warm-up (0)")
    parser.add_argument("--label_smoothing", default=0.0, type=probability, help="(0)")
    parser.add_argument("--augment", default="none", choices=sorted(AUGMENTATIONS),
                        help="flip: random horizontal flips; crop+flip: also random 32x32 crops "
                             "of the 4-pixel zero-padded image (none)")
    parser.add_argument("--evaluate", metavar="MODEL_PT",
                        help="instead of training, test the weights a run saved (model.pt); "
                             "give the architecture flags it was trained with (--hidden_dims, "
                             "--use_batch_norm, --activation, --dropout) or its --preset")
    preset = parser.parse_known_args(argv)[0].preset
    if preset:
        parser.set_defaults(**PRESETS[preset])
    args = parser.parse_args(argv)
    del args.preset  # its flags are in args now
    return args


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


def load_weights(model, path):
    """Load a run's model.pt into model; a file of another architecture is refused by name."""
    try:
        state = torch.load(path, map_location=model.device, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as error:
        # torch's own message is many lines and suggests weights_only=False: not an option here
        raise UserError(f"{path} is not a saved state_dict of tensors "
                        f"({type(error).__name__})") from None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise UserError(f"{path} is not a saved state_dict")
    check_shapes(path, {name: tuple(value.shape) for name, value in state.items()},
                 {name: tuple(value.shape) for name, value in model.state_dict().items()})
    model.load_state_dict(state)


def evaluate_saved(path, hidden_dims, use_batch_norm, activation, dropout, device, data_dir,
                   validation_size, data_url, **training_flags):
    """Print the validation and test accuracy of saved weights; training_flags do not matter.
    dropout does not act in evaluation, but its layers number the saved parameters."""
    model = MLP(int(np.prod(cifar10_utils.IMAGE_SHAPE)), hidden_dims, cifar10_utils.NUM_CLASSES,
                use_batch_norm, activation, dropout).to(pick_device(device))
    load_weights(model, path)
    dataset = cifar10_utils.get_cifar10(data_dir, validation_size, url=data_url)
    accuracies = [evaluate_model(model, cifar10_utils.DataLoader(
        to_device(dataset[key], model.device), cifar10_utils.EVAL_BATCH_SIZE))
        for key in ("validation", "test")]
    print(f"{path}: validation accuracy {accuracies[0]:.4f}, test accuracy {accuracies[1]:.4f}")


def random_crop_flip(images, padding=4):
    """uint8 (B, C, H, W) -> the same shape: a random crop of the zero-padded image, mirrored
    left-right with probability 1/2; one vectorized gather for the whole batch."""
    batch, channels, height, width = images.shape
    padded = nn.functional.pad(images, (padding,) * 4)
    device = images.device
    top = torch.randint(0, 2 * padding + 1, (batch, 1, 1, 1), device=device)
    left = torch.randint(0, 2 * padding + 1, (batch, 1, 1, 1), device=device)
    columns = torch.arange(width, device=device).view(1, 1, 1, width)
    flip = torch.rand(batch, 1, 1, 1, device=device) < 0.5
    columns = torch.where(flip, width - 1 - columns, columns)
    return padded[torch.arange(batch, device=device).view(-1, 1, 1, 1),
                  torch.arange(channels, device=device).view(1, -1, 1, 1),
                  top + torch.arange(height, device=device).view(1, 1, -1, 1),
                  left + columns]


AUGMENTATIONS = {"none": None, "flip": lambda images: random_crop_flip(images, padding=0),
                 "crop+flip": random_crop_flip}


def accuracy(predictions, targets):
    """Fraction of rows of predictions (S, C) whose argmax is the label in targets (S,)."""
    return (predictions.argmax(dim=1) == targets).float().mean().item()


@torch.no_grad()
def evaluate_model(model, data_loader):
    """Accuracy of model over every batch of data_loader, in eval mode (BN running statistics)."""
    was_training = model.training
    model.eval()
    correct = sum((model(images).argmax(dim=1) == labels).sum() for images, labels in data_loader)
    model.train(was_training)
    return int(correct) / len(data_loader.split)


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


def lr_factor(step, total_steps, warmup_steps, schedule):
    """Multiplier of the base learning rate at a step: linear warm-up, then constant or cosine."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "cosine":
        progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1 + math.cos(math.pi * progress))
    return 1.0


def train(hidden_dims, lr, use_batch_norm, batch_size, epochs, seed, data_dir, *,
          device="auto", validation_size=5000, data_url=cifar10_utils.CIFAR10_URL,
          results_dir="results", **options):
    """Train an MLP and return (model, val_accuracies, test_accuracy, logging_dict).

    The returned model holds the weights of the epoch with the best validation accuracy, which is
    also the one tested. options are the experiment flags of DEFAULT_OPTIONS.
    """
    unknown = set(options) - set(DEFAULT_OPTIONS)
    if unknown:
        raise TypeError(f"unknown options: {sorted(unknown)}")
    opts = {**DEFAULT_OPTIONS, **options}
    changed = {key: value for key, value in opts.items() if value != DEFAULT_OPTIONS[key]}
    config = dict(framework="pytorch", hidden_dims=list(hidden_dims), lr=lr,
                  use_batch_norm=use_batch_norm, batch_size=batch_size, epochs=epochs, seed=seed,
                  data_dir=data_dir, validation_size=validation_size, **opts)
    name = run_name("pytorch", hidden_dims, lr, batch_size, epochs, seed,
                    **({"bn": True} if use_batch_norm else {}), **changed)
    run = RunRecorder(results_dir, name, config)
    device = pick_device(device)
    config["device"] = str(device)
    torch.manual_seed(seed)
    dataset = cifar10_utils.get_cifar10(data_dir, validation_size, url=data_url)
    check_batch_size(batch_size, len(dataset["train"]))
    splits = {key: to_device(split, device) for key, split in dataset.items()}
    transform = AUGMENTATIONS[opts["augment"]]
    train_loader = cifar10_utils.DataLoader(splits["train"], batch_size, shuffle=True,
                                            drop_last=True, seed=seed, transform=transform)
    val_loader = cifar10_utils.DataLoader(splits["validation"], cifar10_utils.EVAL_BATCH_SIZE)
    test_loader = cifar10_utils.DataLoader(splits["test"], cifar10_utils.EVAL_BATCH_SIZE)

    n_inputs = int(np.prod(cifar10_utils.IMAGE_SHAPE))
    model = MLP(n_inputs, hidden_dims, cifar10_utils.NUM_CLASSES, use_batch_norm,
                opts["activation"], opts["dropout"]).to(device)
    optimizer = make_optimizer(model, opts["optimizer"], lr, opts["momentum"],
                               opts["weight_decay"])
    total_steps, step = epochs * len(train_loader), 0
    warmup_steps = round(opts["warmup"] * len(train_loader))
    loss_module = nn.CrossEntropyLoss(label_smoothing=opts["label_smoothing"])
    best_state = {key: value.clone() for key, value in model.state_dict().items()}

    with run:
        for epoch in range(1, epochs + 1):
            start, losses, correct = time.perf_counter(), [], 0
            model.train()
            for images, labels in tqdm(train_loader, desc=f"epoch {epoch}/{epochs}",
                                       leave=False):
                for group in optimizer.param_groups:
                    group["lr"] = lr * lr_factor(step, total_steps, warmup_steps, opts["schedule"])
                step += 1
                logits = model(images)
                loss = loss_module(logits, labels)
                loss_value = loss.item()
                if not math.isfinite(loss_value):
                    raise TrainingDiverged(f"loss became {loss_value} in epoch {epoch}: training "
                                           f"diverged; try a lower --lr than {lr}")
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                run.log_step(loss_value)
                losses.append(loss_value)
                correct += (logits.argmax(dim=1) == labels).sum()
            train_accuracy = int(correct) / (len(losses) * batch_size)
            val_accuracy = evaluate_model(model, val_loader)
            if run.log_epoch(np.mean(losses), train_accuracy, val_accuracy,
                             time.perf_counter() - start):
                best_state = {key: value.clone() for key, value in model.state_dict().items()}
                write_atomically(run.path("model.pt"), lambda f: torch.save(best_state, f))
            tqdm.write(f"epoch {epoch:3d}  train loss {np.mean(losses):.4f}  train acc "
                       f"{train_accuracy:.4f}  val acc {val_accuracy:.4f}")
        model.load_state_dict(best_state)
        run.log["test_accuracy"] = test_accuracy = evaluate_model(model, test_loader)
    return model, run.log["val_accuracy"], test_accuracy, run.log


if __name__ == "__main__":
    train_or_evaluate(parse_args(), train, evaluate_saved)
