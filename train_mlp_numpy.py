"""Train the NumPy MLP on CIFAR-10 by hand-written backprop, keep the best on validation, test it.

    python train_mlp_numpy.py --hidden_dims 256 128 --lr 0.05
    python train_mlp_numpy.py --preset best

Writes results/<run name>/: metrics.json, loss.png, accuracy.png and the best weights (model.npz).
Every option left out keeps the course's plain SGD run; the options are training/options.py's,
the same as the PyTorch trainer's but its --device."""
from safety import console, signals  # light: the guard below comes before NumPy, torch and the rest
from training import threads

if __name__ == "__main__":
    console.keep_standard_streams_open()
    signals.exit_quietly_on_stop_signals()
    threads.let_blas_threads_sleep()

import numpy as np

from modules import CrossEntropyModule
from training import cli
from training.backend_numpy import (
    build_model,
    evaluate_saved,
    load_checkpoint,
    mixed_loss,
    predict,
    save_checkpoint,
    save_weights,
    trained_state,
    weight_average,
)
from training.evaluation import accuracy_of
from training.optim_numpy import make_optimizer
from training.options import build_parser, parse_with_preset
from training.preprocessing import every_epoch
from training.run import TrainingRun


def accuracy(predictions, targets):
    """Fraction of rows of predictions (S, C) whose argmax is the label in targets: (S,) integer
    labels, or one-hot rows (S, C) as some of the course's editions give them."""
    return accuracy_of(predictions, targets)


def evaluate_model(model, data_loader, tta=None):
    """Accuracy of model over every image of data_loader: correct / N; tta names the views of
    each image whose predictions are averaged (--tta)."""
    return accuracy_of(*predict(model, data_loader, tta))


def train(hidden_dims=None, lr=None, batch_size=None, epochs=None, seed=None, data_dir=None,
          **options):
    """Train an MLP and return (model, val_accuracies, test_accuracy, logging_dict): the model
    holds the weights of the epoch best on validation, the one tested; logging_dict the losses
    and accuracies of each step and epoch. options are options.py's (use_batch_norm, ...,
    preset), each left out (or None) at its default."""
    run = TrainingRun("numpy", dict(options, hidden_dims=hidden_dims, lr=lr, batch_size=batch_size,
                                    epochs=epochs, seed=seed, data_dir=data_dir))
    config = run.config
    np.random.seed(config.seed)
    loaders = run.load_data()
    model = build_model(run.record, run.components)
    optimizer = make_optimizer(model, config.optimizer, config.lr, config.momentum,
                               config.weight_decay)
    loss_module = CrossEntropyModule(label_smoothing=config.label_smoothing)
    best_state, first_epoch = model.state_dict(), 1
    average, evaluated = weight_average(model, config.ema)  # with --ema, a copy holds the average
    if run.resume:
        first_epoch, best_state = load_checkpoint(run, model, optimizer, average)
    with run, np.errstate(over="ignore", invalid="ignore"):  # a diverging loss says it once
        for epoch in range(first_epoch, config.epochs + 1):
            model.train()
            for lr_now, images, labels in run.batches(epoch):
                optimizer.lr = lr_now
                if config.mixup:
                    images, partners, w = run.mixup(images, labels)
                probs = model.forward(images.reshape(len(images), -1))
                if config.mixup:
                    loss, logits_grad = mixed_loss(loss_module, probs, labels, partners, w)
                    labels = labels if w >= 0.5 else partners  # those counted as correct
                else:
                    loss = float(loss_module.forward(probs, labels))
                    logits_grad = loss_module.logits_grad(probs, labels)  # dL/dZ = (Y - T) / S
                run.record_step(loss, probs.argmax(axis=1), labels)
                model.backward_logits(logits_grad)
                optimizer.step()
                if config.ema:
                    average.update(trained_state(model))
            if config.ema:
                evaluated.load_state_dict({**model.state_dict(), **average.average})
            state = evaluated.state_dict()  # a copy: kept as it is if the epoch is the best
            if run.end_epoch(evaluate_model(evaluated, loaders["validation"],
                                            every_epoch(config.tta)), state):
                best_state = state
                save_weights(best_state, run.record, run.preprocessing, run.path("model.npz"))
            run.teacher.teach(epoch, lambda images: predict(evaluated, images)[0])
            save_checkpoint(run, epoch, model, optimizer, best_state, average)
        model.load_state_dict(best_state)
        run.test(*(predict(model, loaders[split], config.tta) for split in ("validation", "test")))
    return model, run.log["val_accuracy"], run.log["test_accuracy"], run.log


def parse_args(argv=None):
    return parse_with_preset(build_parser("numpy", __doc__.split("\n")[0]), argv)


if __name__ == "__main__":
    cli.train_or_evaluate(parse_args(), train, evaluate_saved)
