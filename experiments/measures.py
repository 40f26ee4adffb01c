"""What a set measures on each model it trains, in the same process (a measure: the model, the
run's flags and the data folder, to what the run's summary entry records), and what a set computes
without training (a computation: to what its summary records)."""
import functools
import time

import numpy as np
import torch

import mlp_numpy
import mlp_pytorch
import train_mlp_pytorch
from dataset.batch_files import class_names
from dataset.cifar10 import NUM_CLASSES
from dataset.loaders import EVAL_BATCH_SIZE, DataLoader
from dataset.splits import Split, get_cifar10
from questions import batch_statistics, hessian, saddles
from training.evaluation import accuracy_of
from training.options import RECORDED
from training.preprocessing import Preprocessing, normalize
from training.saved_model import build_mlp

# how far each measurement goes: sized so that each set takes a few minutes on 2 cores
HESSIAN = dict(images=4000, lanczos_steps=80, slq_steps=40, probes=8, seed=0)
SADDLES = dict(goe_samples=4_000_000, goe_max_n=10, goe_min_hits=10,
               epsilons=[10.0 ** -k for k in range(1, 13)], lr=0.1, starts=50,
               network=dict(inputs=8, hidden=4, outputs=3, samples=200), network_lr=0.02,
               network_starts=20, seed=0)
BATCH_STATISTICS = dict(batch_sizes=[1, 2, 8, 32, 128, 1000], companions=8, images=500,
                        draws=20, shown_draws=200, seed=0)


@functools.lru_cache(maxsize=1)
def split_copy(data_dir, validation_size, name, count=None):
    """The first count images (all by default) of a split, read once for all the runs of a set
    that are measured on it; a copy, so the rest of the dataset need not stay in memory. Never
    downloaded: the runs measured trained on it, and the report, which collects a job array's
    runs, reads saved metrics and files only."""
    split = get_cifar10(data_dir, validation_size, url="")[name]
    return Split(split.images[:count].copy(), split.labels[:count].copy())


def dead_fractions(model, split):
    """Per ReLU layer, the fraction of units that output 0 for every image of split."""
    fractions = []
    with torch.no_grad():
        model.eval()
        x = normalize(torch.from_numpy(split.images)).reshape(len(split), -1)
        for module in model.layers:
            x = module(x)
            if isinstance(module, torch.nn.ReLU):
                fractions.append(float(((x > 0).sum(dim=0) == 0).float().mean()))
    return fractions


def measure_dead_neurons(model, flags, data_dir):
    validation = split_copy(data_dir, flags["validation_size"], "validation")
    return {"dead_fraction": dead_fractions(model, validation)}


def measure_hessian(model, flags, data_dir):
    """Question 4a: the Hessian of the NumPy model's mean loss on the first HESSIAN['images']
    images of the training split, in float64 (spectrum_summary), and how far its products are
    from autograd's on this model."""
    split = split_copy(data_dir, flags["validation_size"], "train", HESSIAN["images"])
    # the course's fixed normalization, the one the set's runs use
    images = Preprocessing()(split.images).reshape(len(split), -1).astype(np.float64)
    record = {name: flags[name] for name in RECORDED}
    exact = build_mlp(mlp_numpy.MLP, record, dtype=np.float64)
    exact.load_state_dict(model.state_dict())
    surface = hessian.LossSurface(exact, images, split.labels)
    start = time.perf_counter()
    rng = np.random.default_rng(HESSIAN["seed"])
    summary = hessian.spectrum_summary(surface, HESSIAN["lanczos_steps"], HESSIAN["slq_steps"],
                                       HESSIAN["probes"], rng)
    twin = hessian.pytorch_twin(exact, build_mlp(mlp_pytorch.MLP, record))
    summary["autograd_relative_error"] = hessian.autograd_relative_error(surface, twin, rng)
    summary["seconds"] = time.perf_counter() - start
    summary["settings"] = dict(HESSIAN, images=len(split), step=hessian.STEP,
                               curvature_step=hessian.CURVATURE_STEP)
    return {"hessian": summary}


def measure_batch_statistics(model, flags, data_dir):
    """Question 5c: the test accuracy with running statistics (the trainers' evaluate_model) and
    with each batch's own, by batch size; how often an image's class changes with the images it
    is batched with, and the classes one image is given."""
    settings, start = BATCH_STATISTICS, time.perf_counter()
    test = split_copy(data_dir, flags["validation_size"], "test")
    preprocessing = Preprocessing()  # the course's normalization, the one the set's run uses
    # the trainers' own evaluation (evaluate_model is accuracy_of of this prediction)
    probabilities, labels = train_mlp_pytorch.predict(model, DataLoader(
        test, EVAL_BATCH_SIZE, return_numpy=False, preprocess=preprocessing))
    by_size = batch_statistics.accuracy_by_batch_size(model, test, preprocessing,
                                                      settings["batch_sizes"])
    rng = np.random.default_rng(settings["seed"])
    classes_taken = [len(set(row)) for row in batch_statistics.classes_with_companions(
        model, test, preprocessing, range(min(settings["images"], len(test))),
        settings["companions"], settings["draws"], rng)]
    shown = int(np.argmax(classes_taken))  # the first image given the most different classes
    (shown_classes,) = batch_statistics.classes_with_companions(
        model, test, preprocessing, [shown], settings["companions"], settings["shown_draws"], rng)
    return {"batch_statistics": {
        "running_accuracy": accuracy_of(probabilities, labels),
        "accuracy": {str(size): accuracy for size, (accuracy, _) in by_size.items()},
        "images": {str(size): len(classes) for size, (_, classes) in by_size.items()},
        "classes_at_batch_of_one": np.bincount(by_size[1][1], minlength=NUM_CLASSES)
        .tolist() if 1 in by_size else None,
        "classes_taken": classes_taken, "shown_index": shown,
        "shown_label": int(test.labels[shown]), "shown_pixels": test.images[shown].tolist(),
        "shown_classes": shown_classes.tolist(),
        "shown_running_class": int(probabilities[shown].argmax()),
        "class_names": class_names(data_dir), "settings": settings,
        "seconds": time.perf_counter() - start}}


def compute_saddles():
    """Questions 4b and 4c: the share of GOE matrices with only positive eigenvalues by size, and
    the gradient-descent steps needed to get away from two saddles, by starting distance."""
    settings, start = SADDLES, time.perf_counter()
    rng = np.random.default_rng(settings["seed"])
    network = saddles.LinearNetwork(**settings["network"], rng=rng)
    results = {
        "goe": saddles.all_positive_fractions(settings["goe_max_n"], settings["goe_samples"], rng,
                                              settings["goe_min_hits"]),
        "quadratic": saddles.escape_from_quadratic_saddle(settings["epsilons"], settings["lr"],
                                                          settings["starts"], rng),
        "network": saddles.escape_from_linear_network(network, settings["epsilons"],
                                                      settings["network_lr"],
                                                      settings["network_starts"], rng),
        "network_curvature": network.top_saddle_curvature(), "settings": settings}
    results["seconds"] = time.perf_counter() - start
    return results

