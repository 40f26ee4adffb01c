"""Train the PyTorch MLP on CIFAR-10 (optionally with BatchNorm, on CUDA), keep the best, test it.

    python train_mlp_pytorch.py --use_batch_norm

Writes results/<run name>/: metrics.json, loss.png, accuracy.png and the best weights (model.pt:
its state_dict and architecture, read by torch.load(path, weights_only=True)). Every option left
out keeps the course's plain SGD run. The options are options.py's, shared with the NumPy trainer.
"""
from safety import signals  # light: the guard below comes before NumPy, torch and the rest

if __name__ == "__main__":
    signals.exit_quietly_on_stop_signals()

import copy
import json
import os

import torch
from torch import nn

import cifar10_utils
from mlp_pytorch import MLP
from safety.errors import UserError
from safety.files import write_atomically
from training import cli, evaluation
from training.evaluation import accuracy_of
from training.options import build_parser, parse_with_preset
from training.preprocessing import every_epoch
from training.resume import check_fits, damaged_checkpoint
from training.run import TrainingRun
from training.saved_model import build_mlp, not_a_saved_model, refuse_the_other_trainers_model
from training.schedules import WeightAverage


def parse_args(argv=None):
    return parse_with_preset(build_parser("pytorch", __doc__.split("\n")[0]), argv)


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


def build_model(record, device, components=None):
    """The MLP a record (options.RECORDED) describes, on the device; components: its
    projection's, fitted by the run (a saved model brings its own)."""
    return build_mlp(MLP, record, components).to(device)


def save_weights(state, record, preprocessing, path):
    """model.pt: {'architecture': the record (options.RECORDED), 'state_dict': the tensors,
    'preprocessing': the fitted preprocessing's arrays as tensors}, all of it readable by
    torch.load(path, weights_only=True), so that the file describes itself."""
    arrays = {name: torch.from_numpy(value) for name, value in preprocessing.fitted_arrays.items()}
    write_atomically(path, lambda f: torch.save({"architecture": record, "state_dict": state,
                                                 "preprocessing": arrays}, f))


def read_weights(path, device):
    """(state_dict, record or None, preprocessing arrays) of a model.pt, or of a bare
    state_dict as earlier versions saved; any other file is refused by name, and nothing in it
    is run."""
    refuse_the_other_trainers_model(path, "pytorch")
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


def evaluate_saved(path, given_flags, device, figures_dir=None, **flags):
    """--evaluate: evaluation.evaluate_saved with this trainer's file format and model."""
    device = pick_device(device)
    evaluation.evaluate_saved(
        path, given_flags, flags, lambda path: read_weights(path, device),
        lambda record, components: build_model(record, device, components), predict,
        move=lambda split: to_device(split, device), figures_dir=figures_dir)


def accuracy(predictions, targets):
    """Fraction of rows of predictions (S, C) whose argmax is the label in targets (S,)."""
    return (predictions.argmax(dim=1) == targets).float().mean().item()


@torch.no_grad()
def predict(model, data_loader, tta=None):
    """evaluation.predict of the model, whose logits go through a softmax."""
    return evaluation.predict(model, data_loader, tta,
                               lambda images: torch.softmax(model(images), dim=1))


def evaluate_model(model, data_loader, tta=None):
    """Accuracy of model over every image of data_loader: correct / N."""
    return accuracy_of(*predict(model, data_loader, tta))


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

    def state_dict(self):
        return {}  # nothing but the learning rate, which the schedule sets every step

    def load_state_dict(self, state):
        pass


def make_optimizer(model, name, lr, momentum, weight_decay):
    if name == "sgd" and momentum == 0 and weight_decay == 0:
        return PlainSGD(model.parameters(), lr)
    if name == "sgd":
        return torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                               weight_decay=weight_decay)
    optimizer = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    return optimizer(model.parameters(), lr=lr, weight_decay=weight_decay)


def save_checkpoint(run, epoch, model, optimizer, best_state, average):
    """checkpoint.pt, after every epoch: the model, the best state so far, the optimizer's state,
    the weight average, torch's random generators (CPU, and CUDA's where used) and, as one JSON
    string, the run's progress with its own generators: what --resume needs to go on exactly.
    Tensors and plain types only, readable with weights_only=True."""
    progress = run.progress(epoch)
    progress["average_updates"] = average.updates if average else 0
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else []
    content = {"progress": json.dumps(progress), "model": model.state_dict(),
               "best": best_state, "optimizer": optimizer.state_dict(),
               "average": average.average if average else {},
               "cpu_generator": torch.get_rng_state(), "cuda_generators": cuda}
    write_atomically(run.path(run.checkpoint), lambda f: torch.save(content, f))


def load_checkpoint(run, model, optimizer, average, device):
    """Put a stopped run's checkpoint.pt back into model, optimizer, average, torch's generators
    and run; returns (the first epoch still to train, the best state so far)."""
    path = os.path.join(run.resume, run.checkpoint)
    try:
        saved = torch.load(path, map_location=device, weights_only=True)
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
        return run.restore(progress), saved["best"]
    except (OSError, UserError):
        raise
    except Exception as error:  # damaged bytes fail in many ways inside torch's unpickler
        raise damaged_checkpoint(path, error) from None


def mixed_loss(loss_module, logits, labels, partners, weight):
    """w L(y) + (1 - w) L(y[perm]) of a batch blended by Mixup; w = 1 is the plain loss."""
    loss = loss_module(logits, labels)
    if weight < 1:
        loss = weight * loss + (1 - weight) * loss_module(logits, partners)
    return loss


def train(hidden_dims, lr, use_batch_norm, batch_size, epochs, seed, data_dir, **options):
    """Train an MLP and return (model, val_accuracies, test_accuracy, logging_dict).

    The returned model holds the weights of the epoch with the best validation accuracy, which is
    also the one tested. options are options.py's (device, activation, optimizer, ...), each left
    out at its default."""
    resume = options.pop("resume", None)
    run = TrainingRun("pytorch", dict(options, hidden_dims=hidden_dims, lr=lr,
                                      use_batch_norm=use_batch_norm, batch_size=batch_size,
                                      epochs=epochs, seed=seed, data_dir=data_dir), resume)
    config = run.config
    device = pick_device(config.device)
    run.config_record["device"] = str(device)  # what "auto" chose
    torch.manual_seed(seed)
    loaders = run.load_data(move=lambda split: to_device(split, device))
    model = build_model(run.record, device, run.components)
    optimizer = make_optimizer(model, config.optimizer, lr, config.momentum,
                               config.weight_decay)
    loss_module = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    best_state, first_epoch = cloned_state(model), 1
    average, evaluated = weight_average(model, config.ema)
    if run.resume:
        first_epoch, best_state = load_checkpoint(run, model, optimizer, average, device)

    with run:
        for epoch in range(first_epoch, epochs + 1):
            model.train()
            for lr_now, images, labels, partners, weight in run.batches(epoch):
                for group in optimizer.param_groups:
                    group["lr"] = lr_now
                logits = model(images)
                loss = mixed_loss(loss_module, logits, labels, partners, weight)
                run.record_step(loss.item(), logits.argmax(dim=1), labels, partners, weight)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if average:
                    average.update(model.state_dict())
            if average:
                evaluated.load_state_dict({**model.state_dict(), **average.average})
            if run.end_epoch(evaluate_model(evaluated, loaders["validation"],
                                            every_epoch(config.tta))):
                best_state = cloned_state(evaluated)
                save_weights(best_state, run.record, run.preprocessing, run.path("model.pt"))
            save_checkpoint(run, epoch, model, optimizer, best_state, average)
        model.load_state_dict(best_state)
        run.test(*(predict(model, loaders[split], config.tta) for split in ("validation", "test")))
        if device.type == "cuda":
            run.log["peak_gpu_memory_mb"] = torch.cuda.max_memory_allocated(device) / 2 ** 20
    return model, run.log["val_accuracy"], run.log["test_accuracy"], run.log


def weight_average(model, decay):
    """(the WeightAverage of the model's floating-point state, the copy of the model that holds
    it for evaluation), or (None, the model itself) where decay is 0: no --ema."""
    if not decay:
        return None, model
    return (WeightAverage(decay, {key: value for key, value in cloned_state(model).items()
                                  if value.is_floating_point()}), copy.deepcopy(model))


def cloned_state(model):
    """A copy of the model's state_dict that later steps leave as it is."""
    return {key: value.clone() for key, value in model.state_dict().items()}


if __name__ == "__main__":
    cli.train_or_evaluate(parse_args(), train, evaluate_saved)
