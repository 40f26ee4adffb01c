"""A training run (training/run.py), through what each of its decisions makes of both trainers'
runs: what the preprocessing and a projection are fitted on, what validation and test see and
which epoch is tested, the warm-up's unit, mixup's steps, and the checks made before any work."""
import json
import os
from functools import partial

import numpy as np
import pytest
from helpers import (
    COMPONENTS,
    SCRIPTS,
    TINY,
    TRAINERS,
    assert_one_clear_line,
    run_script,
    stopped_run_folder,
    train,
)

import train_mlp_numpy
import train_mlp_pytorch
from cifar10_utils import get_cifar10
from dataset.loaders import DataLoader, make_loaders
from safety.errors import UserError
from training import backend_numpy, backend_torch, options, run
from training.preprocessing import Mixup, Preprocessing, normalize


def saved(framework, log):
    """(model, record, Preprocessing) of the run's saved model, read as --evaluate reads it."""
    _, name = TRAINERS[framework]
    path = os.path.join(log["run_dir"], name)
    state, record, arrays = (backend_numpy.read_weights(path) if framework == "numpy"
                             else backend_torch.read_weights(path, "cpu"))
    model = (backend_numpy.build_model(record) if framework == "numpy"
             else backend_torch.build_model(record, "cpu"))
    model.load_state_dict(state)
    return model, record, Preprocessing.load(record["normalize"], arrays)


@pytest.mark.parametrize("framework", TRAINERS)
def test_the_preprocessing_is_fitted_on_the_training_split_alone(framework, cifar_dir, tmp_path):
    root, _ = cifar_dir
    *_, log = train(framework, root, tmp_path / "r", normalize="pixel", epochs=1)
    _, _, kept = saved(framework, log)
    dataset = get_cifar10(str(root), 30, url="")
    on_train = Preprocessing.fit("pixel", dataset["train"].images).arrays
    both = np.concatenate([dataset["train"].images, dataset["validation"].images])
    on_both = Preprocessing.fit("pixel", both).arrays
    assert not np.allclose(on_both["shift"], on_train["shift"])  # the test can tell them apart
    for name in ("scale", "shift"):
        np.testing.assert_array_equal(kept.arrays[name], on_train[name])


@pytest.mark.xdist_group("projected")  # the worker that trains conftest.projected_runs
def test_both_trainers_project_onto_the_same_fitted_components(projected_runs):
    data, runs = projected_runs
    numpy_model, torch_model = runs["numpy"][0], runs["pytorch"][0]
    fitted = Preprocessing.fit("zca", get_cifar10(str(data), 60)["train"].images,
                               1.0).principal_components(COMPONENTS)
    np.testing.assert_array_equal(numpy_model.layers[0].components, fitted)
    np.testing.assert_array_equal(torch_model.layers[0].components.numpy(), fitted)


@pytest.mark.parametrize("framework", TRAINERS)
def test_validation_and_test_see_plain_images_and_the_best_epoch_is_tested(
        framework, cifar_dir, tmp_path):
    """Augmented evaluation, or the last epoch's weights tested, would make the recorded numbers
    differ from those of the saved (best) model measured on plain images."""
    root, _ = cifar_dir
    *_, log = train(framework, root, tmp_path / "r", augment="crop+flip", epochs=6)
    assert log["best_epoch"] < 6, "this test needs a run whose best epoch is not its last"
    model, record, preprocessing = saved(framework, log)
    dataset = get_cifar10(str(root), 30, url="")
    move = None if framework == "numpy" else partial(train_mlp_pytorch.to_device, device="cpu")
    loaders = make_loaders(dataset, preprocessing, move=move)
    trainer, _ = TRAINERS[framework]
    assert trainer.evaluate_model(model, loaders["validation"]) == \
        log["val_accuracy"][log["best_epoch"] - 1] == log["kept_val_accuracy"]
    assert trainer.evaluate_model(model, loaders["test"]) == log["test_accuracy"]


@pytest.mark.parametrize("framework", TRAINERS)
def test_the_kept_model_is_validated_and_tested_on_every_view_its_epochs_on_one(
        framework, hard_cifar_dir, tmp_path, capsys):
    root, _ = hard_cifar_dir
    *_, log = train(framework, root, tmp_path / "r", augment="crop+flip", tta="flip+shift",
                    epochs=4)
    assert f"on every --tta view {log['kept_val_accuracy']:.4f})" in capsys.readouterr().out
    model, record, preprocessing = saved(framework, log)
    dataset = get_cifar10(str(root), 30, url="")
    move = None if framework == "numpy" else partial(train_mlp_pytorch.to_device, device="cpu")
    loaders = make_loaders(dataset, preprocessing, move=move)
    trainer, _ = TRAINERS[framework]
    on_the_image = trainer.evaluate_model(model, loaders["validation"])
    on_every_view = trainer.evaluate_model(model, loaders["validation"], "flip+shift")
    assert on_the_image != on_every_view, "this test needs views that change a prediction"
    assert log["val_accuracy"][log["best_epoch"] - 1] == on_the_image
    assert log["kept_val_accuracy"] == on_every_view
    assert trainer.evaluate_model(model, loaders["test"], "flip+shift") == log["test_accuracy"]


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_training_picks_the_best_epoch_and_reports_exact_fractions(framework, hard_cifar_dir,
                                                                   tmp_path):
    """On data that cannot be learned perfectly, validation accuracy moves up and down: the
    tested model must be the best epoch's, not the last one's."""
    kwargs = dict(hidden_dims=[32], lr=0.3, batch_size=16, epochs=8, seed=3,
                  data_dir=str(hard_cifar_dir[0]), validation_size=30, data_url="",
                  results_dir=str(tmp_path))
    if framework == "numpy":
        model, val, test_accuracy, log = train_mlp_numpy.train(**kwargs)
        evaluate = train_mlp_numpy.evaluate_model
        test = get_cifar10(hard_cifar_dir[0], 30, url="")["test"]
        loader = DataLoader(test, 7, preprocess=normalize)
    else:
        model, val, test_accuracy, log = train_mlp_pytorch.train(use_batch_norm=False,
                                                                 device="cpu", **kwargs)
        evaluate = train_mlp_pytorch.evaluate_model
        test = get_cifar10(hard_cifar_dir[0], 30, url="")["test"]
        loader = DataLoader(train_mlp_pytorch.to_device(test, "cpu"), 7, preprocess=normalize)
    assert max(val) < 1.0 and val[0] < max(val)
    assert log["best_epoch"] == val.index(max(val)) + 1 < len(val)  # the best is not the last
    assert evaluate(model, loader) == test_accuracy  # the returned model is the one tested
    for accuracy, count in [*[(v, 30) for v in val], (test_accuracy, 40),
                            *[(t, 170 // 16 * 16) for t in log["train_accuracy"]]]:
        assert 0 <= accuracy <= 1 and accuracy * count == round(accuracy * count)


MIXUP_RUN = dict(seed=7, use_batch_norm=True)  # BatchNorm too: the blends pass its statistics


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_mixup_changes_the_steps_and_the_same_seed_repeats_them(framework, cifar_dir, tmp_path):
    root = cifar_dir[0]
    plain = train(framework, root, tmp_path / "plain", **MIXUP_RUN)
    mixed = train(framework, root, tmp_path / "a", mixup=0.4, **MIXUP_RUN)
    again = train(framework, root, tmp_path / "b", mixup=0.4, **MIXUP_RUN)
    assert mixed[3]["train_loss_steps"] == again[3]["train_loss_steps"]
    assert mixed[3]["train_loss_steps"] != plain[3]["train_loss_steps"]
    assert all(np.isfinite(mixed[3]["train_loss_steps"]))
    assert "mixup0.4" in mixed[3]["run_dir"]


@pytest.mark.parametrize("framework", TRAINERS)
def test_mixup_draws_from_a_stream_of_its_own(framework, cifar_dir, tmp_path, monkeypatch):
    """Mixup leaves the loader's batches (order, crops, flips) as a run without it has them, and
    its generator does not start where the loader's does: seeded alike, the blends would follow
    the bits that shuffled the batches."""
    seen, starts = [], []
    batches = run.TrainingRun.batches

    def recorded(self, epoch):
        starts.append([rng.bit_generator.state["state"] for rng in self.generators()])
        for rate, images, labels in batches(self, epoch):
            seen.append(np.asarray(images).tobytes() + np.asarray(labels).tobytes())
            yield rate, images, labels

    monkeypatch.setattr(run.TrainingRun, "batches", recorded)
    flags = dict(MIXUP_RUN, augment="crop+flip", epochs=2)
    train(framework, cifar_dir[0], tmp_path / "plain", **flags)
    plain, seen[:] = seen[:], []
    train(framework, cifar_dir[0], tmp_path / "mixed", mixup=0.4, **flags)
    assert seen == plain and len(plain) == 2 * (170 // 16)
    loader_start, mixup_start = starts[-2]
    assert loader_start != mixup_start


@pytest.mark.parametrize("framework", TRAINERS)
def test_mixup_counts_a_prediction_against_the_labels_that_weigh_more(framework, cifar_dir,
                                                                      tmp_path, monkeypatch):
    steps = []  # each step's [labels, partners, weight, predictions]
    blend, record_step = Mixup.__call__, run.TrainingRun.record_step

    def blended(self, images, labels):
        mixed, partners, weight = blend(self, images, labels)
        steps.append([np.asarray(labels), np.asarray(partners), weight])
        return mixed, partners, weight

    def recorded(self, loss, predictions, labels):
        steps[-1].append(np.asarray(predictions))
        return record_step(self, loss, predictions, labels)

    monkeypatch.setattr(Mixup, "__call__", blended)
    monkeypatch.setattr(run.TrainingRun, "record_step", recorded)
    *_, log = train(framework, cifar_dir[0], tmp_path / "r", mixup=0.4, **MIXUP_RUN)
    assert {weight >= 0.5 for _, _, weight, _ in steps} == {True, False}
    correct = sum(int(np.sum(predictions == (labels if weight >= 0.5 else partners)))
                  for labels, partners, weight, predictions in steps)
    assert log["train_accuracy"] == [correct / (len(steps) * 16)]


# --- the checks before any work, and divergence ---
def test_batch_larger_than_training_set_is_refused(cifar_dir, tmp_path):
    with pytest.raises(UserError, match="larger than the 170 training images"):
        train_mlp_numpy.train([8], 0.1, 500, 1, 0, str(cifar_dir[0]), validation_size=30,
                              data_url="", results_dir=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()  # a run refused before training makes no folder


@pytest.mark.parametrize("flags, refusal", [
    (dict(warmup=0.05), "--warmup 0.05 is at most half of one of the 10 steps of an epoch"),
    (dict(schedule="cosine", warmup=2, epochs=2),
     "--warmup 2 lasts the whole run of 2 epochs: --schedule cosine would never start to decay")])
@pytest.mark.parametrize("framework", TRAINERS)
def test_a_warmup_that_would_do_nothing_is_refused_before_training(framework, flags, refusal,
                                                                   cifar_dir, tmp_path):
    with pytest.raises(UserError, match=refusal):
        train(framework, cifar_dir[0], tmp_path / "r", **flags)
    assert not (tmp_path / "r").exists()


def test_a_run_recorded_with_a_warmup_now_refused_still_resumes(cifar_dir, tmp_path,
                                                                monkeypatch):
    """A run recorded with a warm-up that a start refuses (its check left out here) goes on as
    it started, as one recorded with any option refused at a start does."""
    with monkeypatch.context() as unchecked:
        unchecked.setattr(run, "check_warmup", lambda *args: None)
        run_dir = stopped_run_folder(unchecked, train, "numpy", cifar_dir[0], tmp_path / "r", 2,
                                     warmup=0.05, epochs=3)
    *_, log = train("numpy", cifar_dir[0], tmp_path / "r", resume=str(run_dir), warmup=0.05,
                    epochs=3)
    assert len(log["val_accuracy"]) == 3


@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
def test_a_model_too_large_for_memory_says_how_much_it_needs(trainer, tmp_path):
    kwargs = dict(hidden_dims=[10_000_000], lr=0.1, batch_size=16, epochs=1, seed=0,
                  data_dir=str(tmp_path), data_url="", results_dir=str(tmp_path / "r"))
    if trainer is train_mlp_pytorch:
        kwargs.update(use_batch_norm=False, device="cpu")
    with pytest.raises(UserError, match=r"30,830,000,010 parameters: about [\d,.]+ GB to train"):
        trainer.train(**kwargs)
    assert not (tmp_path / "r").exists()


def test_residual_blocks_too_large_for_memory_are_named_with_their_count(tmp_path):
    """Each block of 128 units: LayerNorm's 2 x 128, W1 and W2 with their biases, 33,280 in all."""
    with pytest.raises(UserError, match=r"^--hidden_dims 128 --blocks 10000000 makes "
                                        r"332,800,394,634 parameters"):
        train_mlp_numpy.train(hidden_dims=[128], blocks=10_000_000, data_dir=str(tmp_path),
                              data_url="", results_dir=str(tmp_path / "r"))


@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_a_run_whose_flags_spell_a_name_too_long_for_a_folder_trains_and_resumes(
        framework, cifar_dir, tmp_path, monkeypatch):
    """Sixty-four hidden layers spell a name of over 300 bytes, past the 255 a filesystem takes:
    the folder keeps the name's start and a digest of the whole, so that another long name gets
    another folder, and a stopped run resumes by it to the numbers of an uninterrupted one."""
    root = cifar_dir[0]
    deep = dict(hidden_dims=[100] * 64, epochs=2, lr=1e-4)
    *_, whole = train(framework, root, tmp_path / "whole", **deep)
    name = os.path.basename(whole["run_dir"])
    assert name.startswith(f"{framework}_h100-100-") and len(name.encode()) <= 240
    *_, other = train(framework, root, tmp_path / "whole",
                      **dict(deep, hidden_dims=[100] * 63 + [101]))
    assert os.path.basename(other["run_dir"]) != name
    run_dir = stopped_run_folder(monkeypatch, train, framework, root, tmp_path / "stopped", 2,
                                 step=1, **deep)
    assert run_dir.name == name
    *_, resumed = train(framework, root, tmp_path / "stopped", resume=str(run_dir), **deep)
    assert resumed["train_loss_steps"] == whole["train_loss_steps"]


def test_residual_blocks_that_fit_as_weights_but_not_as_objects_are_refused(tmp_path):
    """A block of one unit has 6 parameters, 96 bytes to train, but is made of a dozen Python
    objects: a block for each kilobyte of this machine's memory fits as weights, not as blocks."""
    blocks = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 1000
    with pytest.raises(UserError, match=rf"^--hidden_dims 1 --blocks {blocks} makes "
                                        rf"{6 * blocks + 3072 + 1 + 10 + 10:,} parameters"):
        train_mlp_pytorch.train(hidden_dims=[1], blocks=blocks, device="cpu",
                                data_dir=str(tmp_path), data_url="",
                                results_dir=str(tmp_path / "r"))
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("flags, message", [
    (["--projection", 64], "--projection 64 projects onto the principal components that ZCA "
                           "whitening fits: add --normalize zca"),
    (["--projection", 4000, "--normalize", "zca"], "--projection 4000 asks for more principal "
                                                   "components than the 3072 pixel values"),
])
@pytest.mark.parametrize("script", ["train_mlp_numpy.py", "train_mlp_pytorch.py"])
def test_a_projection_that_cannot_be_made_is_one_clear_line(script, flags, message, tmp_path):
    code, _, stderr = run_script(script, *flags, "--data_dir", tmp_path, "--data_url", "",
                                 "--results_dir", tmp_path / "r")
    assert code == 1
    assert_one_clear_line(stderr, message)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("script", ["train_mlp_numpy.py", "train_mlp_pytorch.py"])
def test_divergence_stops_with_advice_and_nonzero_exit(script, cifar_dir, tmp_path):
    code, _, stderr = run_script(script, "--lr", "1e6", "--hidden_dims", "32", "--batch_size", 16,
                                 "--validation_size", 30, "--data_dir", cifar_dir[0],
                                 "--data_url", "", "--results_dir", tmp_path / "r", "--epochs", 3)
    assert code == 1
    assert_one_clear_line(stderr, "diverged", "lower --lr")
    (folder,) = os.listdir(tmp_path / "r")
    metrics = json.loads((tmp_path / "r" / folder / "metrics.json").read_text())
    assert metrics["status"] == "diverged"


@pytest.mark.parametrize("script", [s for s, _ in SCRIPTS.values()])
def test_divergence_from_weight_decay_names_both_flags(script, cifar_dir, tmp_path):
    code, _, stderr = run_script(script, "--weight_decay", "1e30", "--hidden_dims", 8, *TINY,
                                 "--epochs", 2, "--data_dir", cifar_dir[0], "--results_dir",
                                 tmp_path / "r")
    assert code == 1
    assert_one_clear_line(stderr, "diverged", "lower --lr than 0.1 or --weight_decay than 1e+30")


# each option that shapes training, with what its change needs to do anything: a run with the
# change trains other weights than the run without it (--ema keeps other weights than it trains)
CHANGES = {"hidden_dims": ({}, [8]), "lr": ({}, 0.02), "batch_size": ({}, 10), "seed": ({}, 1),
           "use_batch_norm": ({}, True), "activation": ({}, "relu"), "optimizer": ({}, "adam"),
           "momentum": ({}, 0.9), "weight_decay": ({}, 0.1), "dropout": ({}, 0.5),
           "schedule": ({}, "cosine"), "warmup": ({}, 0.5), "label_smoothing": ({}, 0.2),
           "augment": ({}, "flip"), "normalize": ({}, "pixel"),
           "zca_epsilon": ({"normalize": "zca"}, 0.5), "mixup": ({}, 0.4), "ema": ({}, 0.5),
           "projection": ({"normalize": "zca"}, 16), "bottleneck": ({}, 8), "blocks": ({}, 1),
           "block_width": ({"blocks": 1}, 8), "distill": ({"epochs": 3}, 0.3)}
EVALUATION_ONLY = {"tta"}  # it changes what the kept model is tested on, not the model


def test_every_option_that_shapes_training_is_changed_here():
    assert set(options.TRAINING_OPTIONS) - EVALUATION_ONLY == set(CHANGES) - {
        "hidden_dims", "lr", "batch_size", "seed", "use_batch_norm"}


def kept_weights(model):
    return {name: np.asarray(value) for name, value in model.state_dict().items()}


@pytest.mark.parametrize("name", CHANGES)
@pytest.mark.parametrize("framework", TRAINERS)
def test_each_option_changes_what_both_trainers_train(framework, name, hard_cifar_dir, tmp_path):
    """An option a trainer reads but does not pass on (a loss built without the run's label
    smoothing, an optimizer without its momentum, a loader without its augmentation) trains the
    run without it: the same weights."""
    context, value = CHANGES[name]
    models = [train(framework, hard_cifar_dir[0], tmp_path / str(changed), **context,
                    **({name: value} if changed else {}))[0] for changed in (False, True)]
    without, with_it = (kept_weights(model) for model in models)
    assert without.keys() != with_it.keys() or any(
        not np.array_equal(without[key], with_it[key]) for key in without), name
