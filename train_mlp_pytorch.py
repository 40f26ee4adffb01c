"""Train the PyTorch MLP on CIFAR-10 (optionally with BatchNorm, on CUDA), keep the best, test it.

    python train_mlp_pytorch.py --use_batch_norm

Writes results/<run name>/: metrics.json, loss.png, accuracy.png and the best weights (model.pt:
its state_dict and architecture, read by torch.load(path, weights_only=True)). Every option left
out keeps the course's plain SGD run. The options are training/options.py's, shared with the
NumPy trainer (all but --device)."""
from safety import console, signals  # light: the guard below comes before NumPy, torch and the rest

if __name__ == "__main__":
    console.keep_standard_streams_open()
    signals.exit_quietly_on_stop_signals()

import torch
from torch import nn

from training import cli
from training.backend_torch import (
    build_model,
    cloned_state,
    evaluate_saved,
    load_checkpoint,
    peak_gpu_memory,
    predict,
    run_device,
    save_checkpoint,
    save_weights,
    to_device,
    weight_average,
)
from training.evaluation import accuracy_of
from training.optim_torch import make_optimizer
from training.options import build_parser, parse_with_preset
from training.preprocessing import every_epoch
from training.run import TrainingRun


def accuracy(predictions, targets):
    """Fraction of rows of predictions (S, C) whose argmax is the label in targets: (S,) labels,
    or one-hot rows (S, C) as some of the course's editions give them."""
    if targets.shape == predictions.shape:
        targets = targets.argmax(dim=1)
    if targets.shape != predictions.shape[:1] or targets.is_floating_point():
        raise ValueError(f"{targets.dtype} labels of shape {tuple(targets.shape)} for predictions "
                         f"of shape {tuple(predictions.shape)}: give ({len(predictions)},) integer "
                         f"labels or one-hot rows of the predictions' shape")
    return (predictions.argmax(dim=1) == targets).float().mean().item()


def evaluate_model(model, data_loader, tta=None):
    """Accuracy of model over every image of data_loader: correct / N; tta names the views of
    each image whose predictions are averaged (--tta)."""
    return accuracy_of(*predict(model, data_loader, tta))


def train(hidden_dims=None, lr=None, use_batch_norm=None, batch_size=None, epochs=None, seed=None,
          data_dir=None, **options):
    """Train an MLP and return (model, val_accuracies, test_accuracy, logging_dict): the model
    holds the weights of the epoch best on validation, the one tested. options are options.py's
    (device, activation, optimizer, ..., preset), each left out (or None) at its default."""
    run = TrainingRun("pytorch", dict(options, hidden_dims=hidden_dims, lr=lr,
                                      use_batch_norm=use_batch_norm, batch_size=batch_size,
                                      epochs=epochs, seed=seed, data_dir=data_dir))
    config = run.config
    device = run_device(run)
    torch.manual_seed(config.seed)
    loaders = run.load_data(move=lambda split: to_device(split, device))
    model = build_model(run.record, device, run.components)
    optimizer = make_optimizer(model, config.optimizer, config.lr, config.momentum,
                               config.weight_decay)
    loss_module = nn.CrossEntropyLoss(label_smoothing=config.label_smoothing)
    best_state, first_epoch = cloned_state(model), 1
    average, evaluated = weight_average(model, config.ema)  # with --ema, a copy holds the average
    if run.resume:
        first_epoch, best_state = load_checkpoint(run, model, optimizer, average, device)
    with run:
        for epoch in range(first_epoch, config.epochs + 1):
            model.train()
            for lr_now, images, labels in run.batches(epoch):
                optimizer.param_groups[0]["lr"] = lr_now  # one group: every parameter
                if config.mixup:
                    images, partners, w = run.mixup(images, labels)
                logits = model(images)
                loss = loss_module(logits, labels)
                if config.mixup:  # w L(y) + (1 - w) L(y[perm])
                    loss = w * loss + (1 - w) * loss_module(logits, partners)
                    labels = labels if w >= 0.5 else partners  # those counted as correct
                run.record_step(loss.item(), logits.argmax(dim=1), labels)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if config.ema:
                    average.update(model.state_dict())
            if config.ema:
                evaluated.load_state_dict({**model.state_dict(), **average.average})
            if run.end_epoch(evaluate_model(evaluated, loaders["validation"],
                                            every_epoch(config.tta)), evaluated.state_dict()):
                best_state = cloned_state(evaluated)
                save_weights(best_state, run.record, run.preprocessing, run.path("model.pt"))
            run.teacher.teach(epoch, lambda images: predict(evaluated, images)[0])
            save_checkpoint(run, epoch, model, optimizer, best_state, average)
        model.load_state_dict(best_state)
        run.test(*(predict(model, loaders[split], config.tta) for split in ("validation", "test")))
        run.log.update(peak_gpu_memory(device))
    return model, run.log["val_accuracy"], run.log["test_accuracy"], run.log


def parse_args(argv=None):
    return parse_with_preset(build_parser("pytorch", __doc__.split("\n")[0]), argv)


if __name__ == "__main__":
    cli.train_or_evaluate(parse_args(), train, evaluate_saved)
