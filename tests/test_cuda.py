"""The PyTorch trainer on a CUDA GPU. Skipped, saying so, where torch sees none."""
import json
import os

import numpy as np
import pytest
import torch
from helpers import (
    assert_agree,
    numpy_loss_and_grads,
    rel_error,
    torch_name,
    twin_models,
)

import train_mlp_pytorch
from cifar10_utils import get_cifar10
from dataset.loaders import DataLoader
from safety.errors import Terminated
from training import run
from training.preprocessing import normalize

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(),
                                reason="no CUDA GPU here: the CUDA path is tested where one is")
FLAGS = dict(hidden_dims=[64, 32], lr=2e-3, use_batch_norm=True, batch_size=16, epochs=3,
             seed=1, validation_size=30, data_url="", dropout=0.1, optimizer="adamw",
             schedule="onecycle", augment="crop+flip", mixup=0.2, distill=0.3)
COMPARED = ["train_loss_steps", "val_accuracy", "best_epoch", "test_accuracy"]


def train(root, results, **flags):
    return train_mlp_pytorch.train(**{**FLAGS, "data_dir": str(root), "device": "cuda",
                                      "results_dir": str(results), **flags})


@pytest.mark.parametrize("use_batch_norm", [False, True])
def test_numpy_float64_and_cuda_float64_agree_to_1e_10(use_batch_norm):
    rng = np.random.default_rng(0)
    x, labels = rng.standard_normal((11, 13)), rng.integers(0, 4, 11)
    numpy_model, torch_model = twin_models(13, [9, 5], 4, "gelu", 3, use_batch_norm)
    torch_model = torch_model.cuda()
    numpy_loss = numpy_loss_and_grads(numpy_model, x, labels, 0.1)
    loss = torch.nn.CrossEntropyLoss(label_smoothing=0.1)(
        torch_model(torch.from_numpy(x).cuda()), torch.from_numpy(labels).cuda())
    loss.backward()
    assert rel_error(numpy_loss, loss.item()) < 1e-10
    parameters = dict(torch_model.named_parameters())
    for name, _, grad in numpy_model.parameters():
        assert_agree(grad, parameters[torch_name(name)].grad.cpu().numpy(), 1e-10, name)


def test_two_runs_with_one_seed_are_identical(cifar_dir, tmp_path):
    first, second = (train(cifar_dir[0], tmp_path / name)[3] for name in ("a", "b"))
    assert {key: first[key] for key in COMPARED} == {key: second[key] for key in COMPARED}
    assert first["peak_gpu_memory_mb"] > 0


def test_the_loader_keeps_uint8_images_on_the_gpu(cifar_dir):
    dataset = get_cifar10(str(cifar_dir[0]), 30, url="")
    split = train_mlp_pytorch.to_device(dataset["train"], torch.device("cuda"))
    assert split.images.dtype == torch.uint8 and split.images.is_cuda
    loader = DataLoader(split, 16, shuffle=True, seed=0, preprocess=normalize)
    images, labels = next(iter(loader))
    assert images.is_cuda and labels.is_cuda and images.dtype == torch.float32


def test_a_model_trained_on_cuda_is_evaluated_on_the_cpu(cifar_dir, tmp_path, capsys):
    *_, log = train(cifar_dir[0], tmp_path / "r")
    train_mlp_pytorch.evaluate_saved(os.path.join(log["run_dir"], "model.pt"), set(),
                                     device="cpu", data_dir=str(cifar_dir[0]), data_url="")
    assert f"test accuracy {log['test_accuracy']:.4f}" in capsys.readouterr().out


def test_a_run_stopped_on_cuda_resumes_on_the_cpu(cifar_dir, tmp_path, monkeypatch):
    batches = run.TrainingRun.batches

    def stopped_in_epoch_2(self, epoch):
        for index, batch in enumerate(batches(self, epoch)):
            if epoch == 2 and index == 3:
                raise Terminated()
            yield batch

    monkeypatch.setattr(run.TrainingRun, "batches", stopped_in_epoch_2)
    with pytest.raises(Terminated):
        train(cifar_dir[0], tmp_path / "r")
    monkeypatch.setattr(run.TrainingRun, "batches", batches)
    (run_dir,) = (tmp_path / "r").iterdir()
    *_, log = train(cifar_dir[0], tmp_path / "r", device="cpu", resume=str(run_dir))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "finished" and len(log["val_accuracy"]) == 3
    assert len(log["train_loss_steps"]) == 3 * ((200 - 30) // 16)
