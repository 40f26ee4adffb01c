"""A saved model (training/saved_model.py) describes itself: --evaluate needs no architecture
flags and refuses those that contradict the model; a record, a whitening or a file this version
does not know, and the other trainer's model, are refused by name; nothing in a file is run."""
import json
import os
import pathlib
import pickle
import re
import shutil
import zipfile

import numpy as np
import pytest
import synthetic_cifar
import torch
from helpers import (
    COMPONENTS,
    SCRIPTS,
    SETTINGS,
    TRAINERS,
    RunsCode,
    assert_one_clear_line,
    run_script,
    stopped_run_folder,
    train,
    train_projected,
)

from safety.errors import UserError
from training import backend_numpy, backend_torch, options, saved_model


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory):
    """A plain model of each trainer, chosen on a validation split of 60 images: (data folder,
    {framework: the path of its saved model})."""
    root = tmp_path_factory.mktemp("saved")
    synthetic_cifar.write_dataset(root / "data")
    paths = {}
    for framework, (trainer, name) in TRAINERS.items():
        *_, log = train(framework, root / "data", root / framework, validation_size=60, epochs=2)
        paths[framework] = os.path.join(log["run_dir"], name)
    return root / "data", paths


@pytest.mark.parametrize("framework", TRAINERS)
def test_evaluate_measures_the_validation_split_the_model_was_chosen_on(framework, saved_models,
                                                                        capsys):
    data, paths = saved_models
    trainer, _ = TRAINERS[framework]
    metrics = json.loads(open(os.path.join(os.path.dirname(paths[framework]),
                                           "metrics.json")).read())
    settings = {"device": "cpu"} if framework == "pytorch" else {}
    trainer.evaluate_saved(paths[framework], set(), data_dir=str(data), data_url="", **settings)
    assert f"validation accuracy {max(metrics['val_accuracy']):.4f}" in capsys.readouterr().out
    with pytest.raises(UserError, match=r"--validation_size 30 \(the model: --validation_size 60"):
        trainer.evaluate_saved(paths[framework], {"validation_size"}, data_dir=str(data),
                               data_url="", validation_size=30, **settings)


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_record_without_the_options_of_parts_the_model_lacks_reads_as_without_them(
        framework, saved_models, tmp_path, capsys):
    """A model saved by a version of this project that had no --blocks records neither --blocks
    nor --block_width: it is the model without residual blocks, and --evaluate measures it."""
    data, paths = saved_models
    trainer, name = TRAINERS[framework]
    trainer.evaluate_saved(paths[framework], set(), data_dir=str(data), data_url="",
                           **SETTINGS[framework])
    measured = capsys.readouterr().out
    older = edited_copy(framework, paths[framework], tmp_path / name, {},
                        removed=("blocks", "block_width"))
    trainer.evaluate_saved(str(older), set(), data_dir=str(data), data_url="",
                           **SETTINGS[framework])
    def accuracies(output):
        return [line.replace(str(older), paths[framework]) for line in output.splitlines()
                if "accuracy" in line]
    assert accuracies(capsys.readouterr().out) == accuracies(measured) != []


def edited_copy(framework, path, target, change, arrays=None, removed=()):
    """A copy of the saved model at path whose record is changed by change (a dict) and lacks
    the names in removed, and whose preprocessing arrays are arrays where given."""
    if framework == "numpy":
        with np.load(path) as saved:
            entries = {name: saved[name] for name in saved.files}
        record = json.loads(str(entries["architecture"][()]))
        record = {name: value for name, value in {**record, **change}.items()
                  if name not in removed}
        entries["architecture"] = np.array(json.dumps(record))
        entries.update({f"preprocessing.{name}": value for name, value in (arrays or {}).items()})
        with open(target, "wb") as f:
            np.savez(f, **entries)
    else:
        saved = torch.load(path, weights_only=True)
        saved["architecture"].update(change)
        for name in removed:
            del saved["architecture"][name]
        saved["preprocessing"].update({name: torch.from_numpy(value)
                                       for name, value in (arrays or {}).items()})
        torch.save(saved, target)
    return target


@pytest.mark.parametrize("framework", TRAINERS)
@pytest.mark.parametrize("change, message", [
    ({"activation": "silu"}, "activation must be one of elu, gelu, relu, tanh, not 'silu'"),
    ({"dropout": 1.5}, "dropout is 1.5, out of range"),
    ({"hidden_dims": "16"}, "hidden_dims must be a list of integers, not '16'"),
    ({"hidden_dims": [16.0]}, "hidden_dims[0] must be an integer, not 16.0"),
    ({"bottleneck": -3}, "bottleneck is -3, out of range"),
    ({"tta": "bogus"}, "tta must be one of none, flip, flip+shift, flip+wide-shift, not 'bogus'"),
    ({"use_batch_norm": "yes"}, "use_batch_norm must be True or False"),
])
def test_a_record_this_version_does_not_know_is_refused_by_name(framework, change, message,
                                                                saved_models, tmp_path):
    data, paths = saved_models
    trainer, name = TRAINERS[framework]
    edited = edited_copy(framework, paths[framework], tmp_path / name, change)
    settings = {"device": "cpu"} if framework == "pytorch" else {}
    with pytest.raises(UserError) as refused:
        trainer.evaluate_saved(str(edited), set(), data_dir=str(data), data_url="", **settings)
    assert message in str(refused.value) and "cannot rebuild" in str(refused.value)


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_record_edited_to_another_architecture_is_named_as_an_edit_not_a_missing_flag(
        framework, saved_models, tmp_path):
    """The record builds the model, and no flag may contradict it: a record that does not fit
    the weights beside it is named as edited, not answered with flags to pass."""
    data, paths = saved_models
    edited = edited_copy(framework, paths[framework], tmp_path / TRAINERS[framework][1],
                         {"hidden_dims": [8]})
    code, _, stderr = run_script(f"train_mlp_{framework}.py", "--evaluate", edited, "--data_dir",
                                 data, "--data_url", "")
    assert code == 1
    assert_one_clear_line(stderr, "but the model its record describes has",
                          "the file was edited, or another program wrote it")
    assert "pass the architecture flags" not in stderr


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_whitening_of_the_wrong_shape_is_refused_by_name(framework, saved_models, tmp_path):
    data, paths = saved_models
    trainer, name = TRAINERS[framework]
    pixels = 3 * 32 * 32
    arrays = {"scale": np.ones(pixels, np.float32), "shift": np.zeros(pixels, np.float32),
              "whitening": np.eye(10, dtype=np.float32)}
    edited = edited_copy(framework, paths[framework], tmp_path / name, {"normalize": "zca"},
                         arrays)
    code, _, stderr = run_script(f"train_mlp_{framework}.py", "--evaluate", edited, "--data_dir",
                                 data, "--data_url", "")
    assert code == 1
    assert_one_clear_line(stderr, "whitening has the shape (10, 10), not (3072, 3072)")


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_record_edited_to_a_model_larger_than_its_weights_is_refused_before_it_is_built(
        framework, saved_models, tmp_path):
    """Ten million residual blocks of 16 units would take about a terabyte to build: the file,
    which holds some fifty thousand numbers, is refused by its count first. The count: the tiny
    16-unit MLP's weights and biases, and each block's LayerNorm γ and β, W₁, b₁, W₂ and b₂."""
    data, paths = saved_models
    edited = edited_copy(framework, paths[framework], tmp_path / TRAINERS[framework][1],
                         {"blocks": 10 ** 7})
    code, _, stderr = run_script(f"train_mlp_{framework}.py", "--evaluate", edited, "--data_dir",
                                 data, "--data_url", "")
    assert code == 1
    parameters = 3072 * 16 + 16 + 16 * 10 + 10 + 10 ** 7 * (2 * 16 + 2 * 16 * 16 + 2 * 16)
    assert_one_clear_line(stderr, f"records a model of {parameters:,} parameters but holds")


@pytest.mark.parametrize("framework, other", [("numpy", "pytorch"), ("pytorch", "numpy")])
def test_the_other_trainers_model_is_named_with_the_script_to_use(framework, other,
                                                                  saved_models):
    data, paths = saved_models
    code, _, stderr = run_script(f"train_mlp_{framework}.py", "--evaluate", paths[other],
                                 "--data_dir", data)
    assert code == 1
    name = {"numpy": "NumPy", "pytorch": "PyTorch"}[other]
    assert_one_clear_line(stderr, f"it is a {name} model: use train_mlp_{other}.py")


@pytest.mark.parametrize("framework", SCRIPTS)
def test_saved_preprocessing_lets_evaluate_reproduce_the_accuracy(framework, cifar_dir, tmp_path,
                                                                  capsys):
    (trainer, weights), (script, _) = TRAINERS[framework], SCRIPTS[framework]
    *_, log = train(framework, cifar_dir[0], tmp_path / "r", normalize="zca", zca_epsilon=0.05,
                    tta="flip", epochs=2)
    folder = pathlib.Path(log["run_dir"])
    test_accuracy = json.loads((folder / "metrics.json").read_text())["test_accuracy"]
    capsys.readouterr()
    trainer.evaluate_saved(str(folder / weights), set(), data_dir=str(cifar_dir[0]),
                           validation_size=30, data_url="", **SETTINGS[framework])
    assert f"test accuracy {test_accuracy:.4f}" in capsys.readouterr().out
    code, _, stderr = run_script(script, "--evaluate", folder / weights, "--normalize", "pixel",
                                 "--validation_size", 30, "--data_dir", cifar_dir[0],
                                 "--data_url", "")
    assert code == 1 and "--normalize pixel (the model: --normalize zca)" in stderr


@pytest.mark.parametrize("framework, extra", [
    ("numpy", {}), ("pytorch", {"use_batch_norm": True, "dropout": 0.1})])
def test_saved_model_of_another_architecture_names_both(framework, extra, cifar_dir, tmp_path,
                                                        capsys):
    (trainer, _), (script, _) = TRAINERS[framework], SCRIPTS[framework]
    common = ["--validation_size", 30, "--data_dir", cifar_dir[0], "--data_url", "",
              *[f"--{name}" if value is True else f"--{name}={value}"
                for name, value in extra.items()]]
    train(framework, cifar_dir[0], tmp_path / "r", **extra)
    (saved,) = (tmp_path / "r").glob("*/model.*")
    capsys.readouterr()
    trainer.evaluate_saved(str(saved), {"hidden_dims", *extra}, hidden_dims=[16],
                           data_dir=str(cifar_dir[0]), data_url="", **extra, **SETTINGS[framework])
    assert "test accuracy" in capsys.readouterr().out
    for spelling in (["--hidden_dims", 24], ["--dnn_hidden_units", 24]):  # 2021's counts too
        code, _, stderr = run_script(script, *spelling, "--evaluate", saved, *common)
        assert code == 1
        assert_one_clear_line(stderr, "--hidden_dims 24 (the model: --hidden_dims 16)")
    # a state_dict saved by hand (np.savez(path, **state), torch.save(state, path)) records no
    # architecture: it is checked by its shapes
    bare = tmp_path / f"bare{saved.suffix}"
    if saved.suffix == ".npz":
        with np.load(saved) as arrays:
            np.savez(bare, **{name: arrays[name] for name in arrays.files
                                if name != "architecture"})
    else:
        import torch
        torch.save(torch.load(saved, weights_only=True)["state_dict"], bare)
    code, _, stderr = run_script(script, "--hidden_dims", 24, "--evaluate", bare, *common)
    assert code == 1
    assert_one_clear_line(stderr, "(16, 3072)", "(24, 3072)", "--activation")
    code, _, stderr = run_script(script, "--evaluate", tmp_path / "missing", *common)
    assert code == 1
    assert_one_clear_line(stderr, "No such file")


# --- a model of a non-default architecture ---
ARCHITECTURE = dict(hidden_dims=[16, 8], bottleneck=12, activation="tanh", use_batch_norm=True,
                    dropout=0.2, blocks=2, block_width=6)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run of each trainer with a non-default architecture: (data dir, {framework: folder})."""
    root = tmp_path_factory.mktemp("trained")
    synthetic_cifar.write_dataset(root / "data")
    folders = {}
    for framework in SCRIPTS:
        *_, log = train(framework, root / "data", root / framework, epochs=2, **ARCHITECTURE)
        folders[framework] = pathlib.Path(log["run_dir"])
    return root / "data", folders


@pytest.mark.parametrize("framework", SCRIPTS)
def test_evaluate_refuses_other_data_than_its_run_trained_on(framework, trained, tmp_path):
    """Its run's metrics.json records the data's fingerprint: other data would give another
    dataset's accuracies under the model's name. The same data in another folder is tested,
    and a model with no record beside it is tested on the data given."""
    data, folders = trained
    script, weights = SCRIPTS[framework]
    other = tmp_path / "other"
    synthetic_cifar.write_dataset(other, brightness=15, label_noise=0.2)
    common = ["--validation_size", 30, "--data_url", ""]
    code, _, stderr = run_script(script, "--evaluate", folders[framework] / weights, "--data_dir",
                                 other, *common)
    assert code == 1
    assert_one_clear_line(stderr, f"--data_dir {other} holds other images or labels than the "
                                  f"run trained on", str(folders[framework] / "metrics.json"))
    shutil.copytree(data, tmp_path / "same")
    code, stdout, stderr = run_script(script, "--evaluate", folders[framework] / weights,
                                      "--data_dir", tmp_path / "same", *common)
    assert code == 0 and "test accuracy" in stdout, stderr
    (tmp_path / "alone").mkdir()
    shutil.copy(folders[framework] / weights, tmp_path / "alone")
    code, stdout, stderr = run_script(script, "--evaluate", tmp_path / "alone" / weights,
                                      "--data_dir", other, *common)
    assert code == 0 and "test accuracy" in stdout, stderr


@pytest.mark.parametrize("framework", SCRIPTS)
def test_evaluate_needs_no_architecture_flags(framework, trained):
    data, folders = trained
    script, weights = SCRIPTS[framework]
    metrics = json.loads((folders[framework] / "metrics.json").read_text())
    common = ["--data_dir", data, "--validation_size", 30, "--data_url", ""]
    code, stdout, stderr = run_script(script, "--evaluate", folders[framework] / weights, *common)
    assert code == 0, stderr
    assert f"test accuracy {metrics['test_accuracy']:.4f}" in stdout
    # flags that agree with the model are fine; one that contradicts it is refused by name
    code, stdout, _ = run_script(script, "--evaluate", folders[framework] / weights,
                                 "--activation", "tanh", "--hidden_dims", 16, 8, *common)
    assert code == 0 and f"test accuracy {metrics['test_accuracy']:.4f}" in stdout
    code, _, stderr = run_script(script, "--evaluate", folders[framework] / weights,
                                 "--activation", "elu", "--no-use_batch_norm", "--bottleneck", 0,
                                 *common)
    assert code == 1
    assert_one_clear_line(stderr, "--activation elu (the model: --activation tanh)",
                          "--no-use_batch_norm (the model: --use_batch_norm)",
                          "--bottleneck 0 (the model: --bottleneck 12)")


@pytest.mark.parametrize("framework", SCRIPTS)
def test_evaluate_refuses_the_flags_it_would_not_read(framework, trained, tmp_path):
    """--evaluate trains nothing: --epochs or --results_dir with it are named, not ignored."""
    data, folders = trained
    script, weights = SCRIPTS[framework]
    code, _, stderr = run_script(script, "--evaluate", folders[framework] / weights,
                                 "--epochs", 5, "--results_dir", tmp_path / "elsewhere",
                                 "--data_dir", data, "--data_url", "")
    assert code == 1
    assert_one_clear_line(stderr, "--epochs, --results_dir would do nothing")
    assert not (tmp_path / "elsewhere").exists()


def test_pytorch_weights_stay_readable_with_weights_only(trained):
    _, folders = trained
    saved = torch.load(folders["pytorch"] / "model.pt", weights_only=True)
    assert saved["architecture"] == {"hidden_dims": [16, 8], "bottleneck": 12, "projection": 0,
                                     "blocks": 2, "block_width": 6, "use_batch_norm": True,
                                     "activation": "tanh", "dropout": 0.2, "normalize": "channel",
                                     "tta": "none", "validation_size": 30}
    assert all(torch.is_tensor(value) for value in saved["state_dict"].values())


def write_not_a_model(kind, path, trained, framework="numpy"):
    _, folders = trained
    if kind == "text":
        path.write_text("hello\n")
    elif kind == "json":
        path.write_text(json.dumps({"layers.0.weight": [1, 2]}))
    elif kind == "png":
        path.write_bytes((folders["numpy"] / "loss.png").read_bytes())
    elif kind == "other trainer's":
        other = "pytorch" if framework == "numpy" else "numpy"
        path.write_bytes((folders[other] / SCRIPTS[other][1]).read_bytes())
    elif kind == "npz with a non-array entry":
        path.write_bytes((folders["numpy"] / "model.npz").read_bytes())
        with zipfile.ZipFile(path, "a") as archive:
            archive.writestr("notes.txt", "not an array")
    elif kind == "npz with a string array":
        with open(path, "wb") as f:  # a path would get .npz appended
            np.savez(f, **{"layers.0.weight": np.array(["a", "b"])})
    elif kind == "a single array (.npy)":
        with open(path, "wb") as f:
            np.save(f, np.zeros((2, 3), np.float32))
    elif kind == "a protocol-4 pickle":  # torch.load warns of the protocol before it fails
        path.write_bytes(pickle.dumps({"layers.0.weight": [1.0, 2.0]}, protocol=4))
    return path


@pytest.mark.parametrize("evaluated_by", ["numpy", "pytorch"])
@pytest.mark.parametrize("framework", ["numpy", "pytorch"])
def test_a_runs_checkpoint_given_to_evaluate_is_named_as_one(framework, evaluated_by, cifar_dir,
                                                             tmp_path, monkeypatch):
    """The checkpoint of a stopped run lies beside its model: --evaluate of it, by either
    trainer, says what it is, which command goes on from it, and what to evaluate instead."""
    run_dir = stopped_run_folder(monkeypatch, train, framework, cifar_dir[0], tmp_path / "r", 2,
                                 epochs=2)
    (checkpoint,) = run_dir.glob("checkpoint.*")
    code, _, stderr = run_script(SCRIPTS[evaluated_by][0], "--evaluate", checkpoint,
                                 "--data_dir", cifar_dir[0], "--data_url", "")
    assert code == 1
    assert_one_clear_line(stderr, f"it is a run's checkpoint, which train_mlp_{framework}.py "
                                  f"--resume {run_dir} goes on from; --evaluate the model saved "
                                  f"beside it")


@pytest.mark.parametrize("framework, edit", [
    ("numpy", "a weight NaN"), ("numpy", "integer weights"), ("pytorch", "a weight NaN"),
    ("pytorch", "integer weights"), ("pytorch", "sparse weights")])
def test_a_model_whose_weights_were_edited_into_no_weights_is_refused_by_name(framework, edit,
                                                                             trained, tmp_path):
    """What no training writes is refused before it is tested, in one line, where it tested at
    10 % or ended in torch's traceback: a NaN, integers, a sparse tensor."""
    _, folders = trained
    name = SCRIPTS[framework][1]
    source, path = folders[framework] / name, tmp_path / name
    if framework == "numpy":
        with np.load(source) as saved:
            entries = {key: saved[key] for key in saved.files}
        weight = entries["layers.0.weight"]
        entries["layers.0.weight"] = {"a weight NaN": np.where(weight == weight.flat[0], np.nan,
                                                               weight),
                                      "integer weights": weight.astype(np.int64)}[edit]
        with open(path, "wb") as f:
            np.savez(f, **entries)
    else:
        saved = torch.load(source, weights_only=True)
        weight = saved["state_dict"]["layers.0.weight"]
        saved["state_dict"]["layers.0.weight"] = {
            "a weight NaN": weight.index_put((torch.tensor([0]), torch.tensor([0])),
                                             torch.tensor(float("nan"))),
            "integer weights": weight.long(), "sparse weights": weight.to_sparse()}[edit]
        torch.save(saved, path)
    code, _, stderr = run_script(SCRIPTS[framework][0], "--evaluate", path, "--data_dir",
                                 tmp_path / "no-data", "--data_url", "")
    assert code == 1
    assert_one_clear_line(stderr, f"{path} is not a saved model of this trainer")


@pytest.mark.parametrize("framework", SCRIPTS)
@pytest.mark.parametrize("kind", ["text", "json", "png", "other trainer's",
                                  "npz with a non-array entry", "npz with a string array",
                                  "a single array (.npy)"])
def test_files_that_are_no_saved_model_are_refused_by_name(framework, kind, trained, tmp_path):
    path = write_not_a_model(kind, tmp_path / "model", trained, framework)
    read = (backend_numpy.read_weights if framework == "numpy"
            else lambda p: backend_torch.read_weights(p, "cpu"))
    with pytest.raises(UserError, match=f"{path} is not a saved model of this trainer") as refused:
        read(path)
    if framework == "numpy" and kind in ("text", "json", "png"):  # said in words, not a type
        assert "it is no whole .npz archive of arrays" in str(refused.value)


@pytest.mark.parametrize("framework", SCRIPTS)
@pytest.mark.parametrize("kind", ["png", "a protocol-4 pickle"])
def test_refusal_is_one_line_from_the_command_line(framework, kind, trained, tmp_path):
    script, _ = SCRIPTS[framework]
    path = write_not_a_model(kind, tmp_path / "not-a-model", trained)
    code, _, stderr = run_script(script, "--evaluate", path, "--data_dir", trained[0])
    assert code == 1
    assert_one_clear_line(stderr, f"{path} is not a saved model of this trainer")


def test_weights_carrying_a_pickle_payload_are_refused_unrun(tmp_path):
    marker = tmp_path / "payload-ran"
    pt = tmp_path / "model.pt"
    torch.save({"architecture": None, "state_dict": {"layers.0.weight": RunsCode(marker)}}, pt)
    with pytest.raises(UserError, match="not a saved model"):
        backend_torch.read_weights(pt, "cpu")
    npz = tmp_path / "model.npz"
    np.savez(npz, **{"layers.0.weight": np.array([RunsCode(marker)], dtype=object)})
    with pytest.raises(UserError, match="not a saved model"):
        backend_numpy.read_weights(npz)
    assert not marker.exists()


# --- a projected model (conftest.projected_runs: its tests share a worker, which trains it once)
@pytest.mark.xdist_group("projected")
@pytest.mark.parametrize("framework", TRAINERS)
def test_a_projected_model_evaluates_with_no_flags(framework, projected_runs, capsys):
    data, runs = projected_runs
    model, _, test_accuracy, log = runs[framework]
    path = os.path.join(log["run_dir"], TRAINERS[framework][1])
    TRAINERS[framework][0].evaluate_saved(path, set(), data_dir=str(data), data_url="",
                                          **SETTINGS[framework])
    # validated on the model's own --tta views (flip), not the flags' default (none)
    assert (f"validation accuracy {log['kept_val_accuracy']:.4f}, test accuracy "
            f"{test_accuracy:.4f}") in capsys.readouterr().out
    record = json.loads(open(os.path.join(log["run_dir"], "metrics.json")).read())["config"]
    assert record["projection"] == COMPONENTS
    assert model.input_filters().shape == (16, 3072)  # weights.png shows them as images


@pytest.mark.parametrize("framework", TRAINERS)
def test_a_record_that_lacks_an_entry_is_refused_by_name(framework, hard_cifar_dir, tmp_path):
    """Every record this project writes holds every entry of options.RECORDED (those of
    options.PARTS may be missing: the test above)."""
    data, _ = hard_cifar_dir
    *_, log = train_projected(framework, data, tmp_path / "plain", projection=0,
                              normalize="channel", zca_epsilon=0.1, epochs=1)
    path = os.path.join(log["run_dir"], TRAINERS[framework][1])
    lacking = edited_copy(framework, path, tmp_path / TRAINERS[framework][1], {},
                          removed=["activation"])
    with pytest.raises(UserError, match="its architecture record is not one this trainer writes"):
        TRAINERS[framework][0].evaluate_saved(str(lacking), set(), data_dir=str(data),
                                              data_url="", **SETTINGS[framework])


@pytest.mark.xdist_group("projected")
@pytest.mark.parametrize("framework", TRAINERS)
def test_a_record_whose_projection_does_not_fit_its_weights_is_refused(framework, projected_runs,
                                                                       tmp_path):
    data, runs = projected_runs
    path = os.path.join(runs[framework][3]["run_dir"], TRAINERS[framework][1])
    edited = edited_copy(framework, path, tmp_path / TRAINERS[framework][1],
                         {"projection": COMPONENTS + 1})
    expected = (fr"holds projection components of shape \(3072, {COMPONENTS}\), but the model "
                fr"its record describes \(--projection {COMPONENTS + 1}\) has "
                fr"\(3072, {COMPONENTS + 1}\)")
    with pytest.raises(UserError, match=expected):
        TRAINERS[framework][0].evaluate_saved(str(edited), set(), data_dir=str(data),
                                              data_url="", **SETTINGS[framework])


def another_value(name, value):
    """A value of option name other than value that its flag accepts."""
    option = options.BY_NAME[name]
    if isinstance(value, bool):
        return not value
    if "choices" in option.settings:
        return next(choice for choice in option.settings["choices"] if choice != value)
    if isinstance(value, list):
        return [*value, 4]
    return option.check(value + 1 if isinstance(value, int) else (value + 1) / 2)


@pytest.mark.parametrize("name", options.RECORDED)
def test_every_recorded_setting_is_held_against_a_contradicting_flag(name, saved_models):
    """What a saved model records (options.RECORDED) is what --evaluate rebuilds it with: a flag
    that says otherwise about any of it is refused, naming the flag with both values."""
    data, paths = saved_models
    trainer, _ = TRAINERS["numpy"]
    with np.load(paths["numpy"]) as saved:
        recorded = json.loads(str(saved["architecture"][()]))
    assert set(recorded) == set(options.RECORDED)
    other = another_value(name, recorded[name])
    shown = options.typed_flag(name, recorded[name])
    with pytest.raises(UserError, match=re.escape(f"(the model: {shown})")):
        trainer.evaluate_saved(paths["numpy"], {name}, data_dir=str(data), data_url="",
                               **{name: other})


@pytest.mark.parametrize("dropped", ["architecture", "preprocessing"])
def test_a_model_file_that_lacks_a_part_is_refused_naming_what_it_holds(dropped, trained,
                                                                         tmp_path):
    _, folders = trained
    saved = torch.load(folders["pytorch"] / "model.pt", weights_only=True)
    del saved[dropped]
    path = tmp_path / "model.pt"
    torch.save(saved, path)
    kept = ", ".join(sorted(saved))
    with pytest.raises(UserError, match=f"it holds {kept}, not a model's architecture, "
                                        f"preprocessing, state_dict"):
        backend_torch.read_weights(path, "cpu")


def test_a_file_one_number_short_of_its_records_parameters_is_refused_by_the_count():
    record = dict(hidden_dims=[4], bottleneck=0, projection=0, blocks=0, block_width=0)
    parameters = 3072 * 4 + 4 + 4 * 10 + 10
    saved_model.check_holds_its_parameters("m.npz", {"w": np.zeros(parameters)}, record)
    with pytest.raises(UserError, match=f"records a model of {parameters:,} parameters but holds "
                                        f"{parameters - 1:,} numbers"):
        saved_model.check_holds_its_parameters("m.npz", {"w": np.zeros(parameters - 1)}, record)
