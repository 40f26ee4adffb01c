"""A run's whole life on a cluster node: SIGTERM and Ctrl-C at any moment, files a shared group
folder can read, saved models that describe themselves, and one clear line for every mistake."""
import json
import os
import signal
import stat
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest
import synthetic_cifar
import torch
from helpers import REPO, assert_one_clear_line, run_script
from test_hardening import RunsCode
from tqdm import tqdm

import cifar10_utils
import train_mlp_numpy
import train_mlp_pytorch
from cifar10_utils import DataError, get_cifar10
from safety import files, signals
from safety.errors import Terminated, UserError
from training import options, run_folder

SCRIPTS = {"numpy": ("train_mlp_numpy.py", "model.npz"),
           "pytorch": ("train_mlp_pytorch.py", "model.pt")}
TINY = ["--batch_size", "16", "--validation_size", "30", "--data_url", ""]


def start_trainer(script, *flags, umask=None):
    """Start a trainer as a user's shell would: SIGINT and SIGTERM at their defaults even when
    this suite runs as a background job (which inherits SIGINT ignored), umask as given."""
    def prepare():
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if umask is not None:
            os.umask(umask)

    return subprocess.Popen([sys.executable, os.path.join(REPO, script), *map(str, flags)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                            preexec_fn=prepare)


def wait_for_epochs(results, count, process, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline and process.poll() is None:
        paths = list(results.glob("*/metrics.json"))
        if paths and len(json.loads(paths[0].read_text())["val_accuracy"]) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"no {count} epochs within {timeout} s")


@pytest.mark.parametrize("framework", SCRIPTS)
@pytest.mark.parametrize("signum, code, status", [(signal.SIGINT, 130, "interrupted"),
                                                  (signal.SIGTERM, 143, "terminated")])
def test_a_stop_signal_keeps_finished_epochs_and_exits_with_its_code(framework, signum, code,
                                                                     status, cifar_dir, tmp_path):
    script, weights = SCRIPTS[framework]
    results = tmp_path / "r"
    process = start_trainer(script, "--epochs", 100000, "--hidden_dims", 16, *TINY,
                            "--data_dir", cifar_dir[0], "--results_dir", results)
    try:
        wait_for_epochs(results, 2, process)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == code, stderr
    assert "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(f"{status} after ")
    (folder,) = os.listdir(results)
    metrics = json.loads((results / folder / "metrics.json").read_text())
    assert metrics["status"] == status and len(metrics["val_accuracy"]) >= 2
    assert {"loss.png", "accuracy.png", weights} <= set(os.listdir(results / folder))


def signal_handler_installed(pid, signum):
    """Whether process pid catches signum (Linux: the SigCgt mask of /proc/PID/status)."""
    with open(f"/proc/{pid}/status") as f:
        caught = next(int(line.split()[1], 16) for line in f if line.startswith("SigCgt"))
    return bool(caught >> (signum - 1) & 1)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_stop_signal_during_the_imports_exits_quietly(signum, code, tmp_path):
    process = start_trainer("train_mlp_pytorch.py", "--data_dir", tmp_path, "--data_url", "",
                            "--results_dir", tmp_path / "r")
    try:
        # SIGTERM is caught from the script's first lines on, before torch is imported
        deadline = time.time() + 30
        while not signal_handler_installed(process.pid, signal.SIGTERM):
            assert time.time() < deadline and process.poll() is None
            time.sleep(0.002)
        process.send_signal(signum)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == code
    assert "Traceback" not in stderr, stderr


def test_a_second_signal_while_finishing_does_not_lose_metrics(tmp_path, monkeypatch):
    """The stop signal is repeated (an impatient Ctrl-C, a scheduler's second SIGTERM) while the
    final metrics.json is being written and the curves drawn."""
    real_write_json = files.write_json

    def signalled_while_writing(path, content):
        if content["status"] != "running":
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGINT)
        real_write_json(path, content)

    monkeypatch.setattr(run_folder, "write_json", signalled_while_writing)
    previous = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
    signals.handle_stop_signals()
    try:
        run = run_folder.RunRecorder(str(tmp_path), "run", {})
        with pytest.raises(Terminated):
            with run:
                run.log_epoch(1.0, 0.5, 0.5, 0.1)
                raise Terminated()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["status"] == "terminated"
    assert (tmp_path / "run" / "accuracy.png").exists()


def test_the_closing_line_of_a_stopped_run_is_not_glued_to_a_progress_bar(tmp_path, capsys):
    """A stop that lands after a bar is drawn but before its loop starts leaves the bar open."""
    run = run_folder.RunRecorder(str(tmp_path), "run", {})
    with pytest.raises(Terminated):
        with run:
            drawn_never_iterated = tqdm(range(10), desc="epoch 1/5", leave=False)
            raise Terminated()
    last_line = capsys.readouterr().err.splitlines()[-1]
    assert last_line.startswith("terminated after 0 finished epoch(s)"), last_line
    assert drawn_never_iterated.disable  # closed, not only overwritten


# --- files others can read ----------------------------------------------------------------------

def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.parametrize("framework, umask", [("numpy", 0o022), ("pytorch", 0o022),
                                              ("numpy", 0o077)])
def test_run_files_get_the_permissions_of_the_umask(framework, umask, cifar_dir, tmp_path):
    script, weights = SCRIPTS[framework]
    process = start_trainer(script, "--epochs", 1, "--hidden_dims", 8, *TINY, "--data_dir",
                            cifar_dir[0], "--results_dir", tmp_path / "r", umask=umask)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    (folder,) = (tmp_path / "r").iterdir()
    for name in ("metrics.json", weights, "loss.png", "accuracy.png"):
        assert mode(folder / name) == 0o666 & ~umask, name


def test_downloaded_tarball_gets_the_permissions_of_the_umask(tmp_path):
    source = tmp_path / "source"
    synthetic_cifar.write_dataset(source)
    md5 = synthetic_cifar.make_tarball(source, tmp_path / "mirror.tar.gz")
    previous = os.umask(0o022)
    try:
        get_cifar10(tmp_path / "data", 30, url=(tmp_path / "mirror.tar.gz").as_uri(), md5=md5)
    finally:
        os.umask(previous)
    assert mode(tmp_path / "data" / cifar10_utils.TARBALL_NAME) == 0o644


# --- a saved model describes itself -------------------------------------------------------------

ARCHITECTURE = ["--hidden_dims", 16, 8, "--bottleneck", 12, "--activation", "tanh",
                "--use_batch_norm", "--dropout", 0.2]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One run of each trainer with a non-default architecture: (data dir, {framework: folder})."""
    root = tmp_path_factory.mktemp("trained")
    synthetic_cifar.write_dataset(root / "data")
    folders = {}
    for framework, (script, _) in SCRIPTS.items():
        code, _, stderr = run_script(script, *ARCHITECTURE, "--epochs", 2, *TINY, "--data_dir",
                                     root / "data", "--results_dir", root / framework)
        assert code == 0, stderr
        (folders[framework],) = (root / framework).iterdir()
    return root / "data", folders


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


def test_pytorch_weights_stay_readable_with_weights_only(trained):
    _, folders = trained
    saved = torch.load(folders["pytorch"] / "model.pt", weights_only=True)
    assert saved["architecture"] == {"hidden_dims": [16, 8], "bottleneck": 12, "projection": 0,
                                     "use_batch_norm": True, "activation": "tanh",
                                     "dropout": 0.2, "normalize": "channel", "tta": "none",
                                     "validation_size": 30}
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
    return path


@pytest.mark.parametrize("framework", SCRIPTS)
@pytest.mark.parametrize("kind", ["text", "json", "png", "other trainer's",
                                  "npz with a non-array entry", "npz with a string array"])
def test_files_that_are_no_saved_model_are_refused_by_name(framework, kind, trained, tmp_path):
    path = write_not_a_model(kind, tmp_path / "model", trained, framework)
    trainer = {"numpy": train_mlp_numpy, "pytorch": train_mlp_pytorch}[framework]
    read = (trainer.read_weights if framework == "numpy"
            else lambda p: trainer.read_weights(p, "cpu"))
    with pytest.raises(UserError, match=f"{path} is not a saved model of this trainer"):
        read(path)


@pytest.mark.parametrize("framework", SCRIPTS)
def test_refusal_is_one_line_from_the_command_line(framework, trained, tmp_path):
    script, _ = SCRIPTS[framework]
    path = write_not_a_model("png", tmp_path / "figure.png", trained)
    code, _, stderr = run_script(script, "--evaluate", path, "--data_dir", trained[0])
    assert code == 1
    assert_one_clear_line(stderr, f"{path} is not a saved model of this trainer")


def test_weights_carrying_a_pickle_payload_are_refused_unrun(tmp_path):
    marker = tmp_path / "payload-ran"
    pt = tmp_path / "model.pt"
    torch.save({"architecture": None, "state_dict": {"layers.0.weight": RunsCode(marker)}}, pt)
    with pytest.raises(UserError, match="not a saved model"):
        train_mlp_pytorch.read_weights(pt, "cpu")
    npz = tmp_path / "model.npz"
    np.savez(npz, **{"layers.0.weight": np.array([RunsCode(marker)], dtype=object)})
    with pytest.raises(UserError, match="not a saved model"):
        train_mlp_numpy.read_weights(npz)
    assert not marker.exists()


# --- the remaining mistakes, each one line ------------------------------------------------------

@pytest.mark.parametrize("script", [s for s, _ in SCRIPTS.values()])
def test_batch_norm_with_batches_of_one_is_refused_before_anything(script, tmp_path):
    code, _, stderr = run_script(script, "--use_batch_norm", "--batch_size", 1, "--results_dir",
                                 tmp_path / "r", "--data_dir", tmp_path, "--data_url", "")
    assert code == 2 and "--batch_size 2 or more" in stderr and "Traceback" not in stderr
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
@pytest.mark.parametrize("flags, message", [
    (["--seed", "-1"], "must be >= 0 and <= 4294967295"),
    (["--seed", "4294967296"], "must be >= 0 and <= 4294967295"),
    (["--epochs", "1.5"], "'1.5' is not an integer"),
    (["--hidden_dims", "1.5"], "'1.5' is not an integer"),
    (["--momentum", "1"], "must be >= 0 and < 1"),
    (["--dropout", "1"], "must be >= 0 and < 1"),
    (["--label_smoothing", "1"], "must be >= 0 and < 1"),
])
def test_flags_out_of_range_name_the_range(trainer, flags, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        trainer.parse_args(flags)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
def test_a_preset_flag_can_be_turned_off(trainer):
    args = trainer.parse_args(["--preset", "best", "--no-use_batch_norm"])
    assert args.use_batch_norm is False
    assert args.hidden_dims == options.PRESETS["best"]["hidden_dims"]
    assert trainer.parse_args([]).use_batch_norm is False


@pytest.mark.parametrize("trainer", [train_mlp_numpy, train_mlp_pytorch])
def test_a_model_too_large_for_memory_says_how_much_it_needs(trainer, tmp_path):
    kwargs = dict(hidden_dims=[10_000_000], lr=0.1, batch_size=16, epochs=1, seed=0,
                  data_dir=str(tmp_path), data_url="", results_dir=str(tmp_path / "r"))
    if trainer is train_mlp_pytorch:
        kwargs.update(use_batch_norm=False, device="cpu")
    with pytest.raises(UserError, match=r"30,830,000,010 parameters: about [\d,.]+ GB to train"):
        trainer.train(**kwargs)
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("script", [s for s, _ in SCRIPTS.values()])
def test_divergence_from_weight_decay_names_both_flags(script, cifar_dir, tmp_path):
    code, _, stderr = run_script(script, "--weight_decay", "1e30", "--hidden_dims", 8, *TINY,
                                 "--epochs", 2, "--data_dir", cifar_dir[0], "--results_dir",
                                 tmp_path / "r")
    assert code == 1
    assert_one_clear_line(stderr, "diverged", "lower --lr than 0.1 or --weight_decay than 1e+30")


def test_a_data_url_that_is_no_url_is_one_line_and_leaves_no_folder(tmp_path):
    data = tmp_path / "data"
    with pytest.raises(DataError, match="could not download not a url"):
        get_cifar10(data, 30, url="not a url")
    assert not data.exists()


def test_a_data_url_may_be_a_plain_path_to_the_tarball(tmp_path):
    source = tmp_path / "source"
    written = synthetic_cifar.write_dataset(source)
    md5 = synthetic_cifar.make_tarball(source, tmp_path / "mirror.tar.gz")
    data = get_cifar10(tmp_path / "data", 30, url=str(tmp_path / "mirror.tar.gz"), md5=md5)
    np.testing.assert_array_equal(data["test"].images, written["test"][0])


def test_data_dir_pointing_inside_the_dataset_names_its_parent(cifar_dir):
    root, _ = cifar_dir
    with pytest.raises(DataError, match=f"point --data_dir at its parent, {root}$"):
        get_cifar10(root / "cifar-10-batches-py", 30, url="")


def test_an_incomplete_folder_names_the_missing_files(cifar_dir):
    root, _ = cifar_dir
    for name in ("data_batch_2", "test_batch"):
        os.remove(root / "cifar-10-batches-py" / name)
    with pytest.raises(DataError, match="lacks data_batch_2, test_batch, and there is no"):
        get_cifar10(root, 30, url="")


def test_the_advice_for_a_damaged_batch_file_works_when_followed(tmp_path):
    source, data = tmp_path / "source", tmp_path / "data"
    written = synthetic_cifar.write_dataset(source)
    data.mkdir()
    md5 = synthetic_cifar.make_tarball(source, data / cifar10_utils.TARBALL_NAME)
    get_cifar10(data, 30, url="", md5=md5)  # extracts
    damaged = data / "cifar-10-batches-py" / "test_batch"
    damaged.write_bytes(damaged.read_bytes()[:3000])
    with pytest.raises(DataError, match="delete it and let the data be extracted again"):
        get_cifar10(data, 30, url="", md5=md5)
    os.remove(damaged)
    np.testing.assert_array_equal(get_cifar10(data, 30, url="", md5=md5)["test"].images,
                                  written["test"][0])


@pytest.mark.parametrize("flag", ["--results_dir", "--data_dir"])
def test_a_folder_flag_given_a_file_says_so(flag, tmp_path):
    regular = tmp_path / "a-file"
    regular.write_text("")
    other = "--data_dir" if flag == "--results_dir" else "--results_dir"
    code, _, stderr = run_script("train_mlp_numpy.py", flag, regular, other, tmp_path / "x",
                                 "--data_url", "")
    assert code == 1
    assert_one_clear_line(stderr, f"{flag} {regular} is a file, not a folder")
