"""The PyTorch mirror: agreement with the NumPy model, BatchNorm, devices, and its trainer."""
import json
import os

import numpy as np
import pytest
import torch
from torch import nn

import train_mlp_pytorch
from mlp_numpy import MLP as NumpyMLP
from mlp_pytorch import MLP as TorchMLP
from modules import BatchNormModule, CrossEntropyModule
from safety.errors import UserError
from training import options, preprocessing
from training.optim_numpy import make_optimizer as numpy_make_optimizer
from training.schedules import lr_factor


def rel_error(a, b):
    return np.linalg.norm(a - b) / max(1e-300, np.linalg.norm(a) + np.linalg.norm(b))


def assert_agree(ours, theirs, tolerance, name):
    """Relative error below tolerance. A Linear's bias before BatchNorm has gradient 0
    analytically (the batch mean cancels it): both sides hold round-off there, about 1e-17,
    which must stay that small."""
    ours, theirs = np.ravel(ours), np.ravel(theirs)
    if np.linalg.norm(ours) + np.linalg.norm(theirs) < 1e-14:
        return
    assert rel_error(ours, theirs) < tolerance, name


def torch_name(numpy_name):
    """The NumPy MLP's state_dict names are the PyTorch MLP's, with BatchNorm's γ and β spelled
    out as the assignment does; torch calls them weight and bias."""
    return numpy_name.replace(".gamma", ".weight").replace(".beta", ".bias")


def twin_models(n_inputs, hidden, n_classes, activation="elu", seed=0, use_batch_norm=False,
                bottleneck=0, projection=0):
    """A NumPy MLP and a PyTorch MLP holding the same float64 weights (BatchNorm's γ and β made
    other than 1 and 0, so that they count; a projection's components orthonormal)."""
    np.random.seed(seed)
    numpy_model = NumpyMLP(n_inputs, hidden, n_classes, use_batch_norm, activation,
                           bottleneck=bottleneck, projection=projection)
    for name, param, _ in numpy_model.parameters():
        if ".gamma" in name or ".beta" in name:
            param += np.random.uniform(-0.5, 0.5, param.shape)
    if projection:
        numpy_model.layers[0].components = np.linalg.qr(
            np.random.standard_normal((n_inputs, projection)))[0]
    torch_model = TorchMLP(n_inputs, hidden, n_classes, use_batch_norm, activation,
                           bottleneck=bottleneck, projection=projection).double()
    with torch.no_grad():
        targets = torch_model.state_dict()
        for name, value in numpy_model.state_dict().items():
            target = targets[torch_name(name)]
            target.copy_(torch.from_numpy(value).reshape(target.shape))
    return numpy_model, torch_model


def assert_same_state(numpy_model, torch_model, tolerance):
    theirs = torch_model.state_dict()
    for name, value in numpy_model.state_dict().items():
        assert_agree(value, theirs[torch_name(name)].detach().numpy(), tolerance, name)


def numpy_loss_and_grads(model, x, labels, label_smoothing=0.0):
    loss_module = CrossEntropyModule(label_smoothing)
    probs = model.forward(x)
    loss = loss_module.forward(probs, labels)
    model.backward_logits(loss_module.logits_grad(probs, labels))
    return loss


def torch_loss(model, x, labels, label_smoothing=0.0):
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)(model(torch.from_numpy(x)),
                                                                 torch.from_numpy(labels))


@pytest.mark.parametrize("hidden, activation, use_batch_norm, smoothing", [
    ([], "elu", False, 0.0), ([7], "elu", False, 0.0), ([9, 5], "elu", False, 0.1),
    ([6], "relu", False, 0.0), ([6, 6], "tanh", False, 0.0), ([6, 5], "gelu", False, 0.0),
    ([7], "elu", True, 0.0), ([9, 5], "elu", True, 0.2), ([8, 6], "gelu", True, 0.0),
    ([6, 6], "relu", True, 0.1)])
def test_numpy_and_pytorch_agree_on_loss_and_every_gradient(hidden, activation, use_batch_norm,
                                                            smoothing):
    rng = np.random.default_rng(len(hidden))
    x, labels = rng.standard_normal((11, 13)), rng.integers(0, 4, 11)
    numpy_model, torch_model = twin_models(13, hidden, 4, activation, 3, use_batch_norm)

    numpy_loss = numpy_loss_and_grads(numpy_model, x, labels, smoothing)
    loss = torch_loss(torch_model, x, labels, smoothing)
    loss.backward()

    assert rel_error(numpy_loss, loss.item()) < 1e-10
    torch_params = dict(torch_model.named_parameters())
    for name, _, grad in numpy_model.parameters():
        assert_agree(grad, torch_params[torch_name(name)].grad.numpy(), 1e-10, name)
    assert_same_state(numpy_model, torch_model, 1e-12)  # BatchNorm's running statistics too


@pytest.mark.parametrize("hidden, use_batch_norm", [([7], False), ([6, 5], True), ([], False)])
def test_numpy_and_pytorch_agree_with_a_linear_bottleneck(hidden, use_batch_norm):
    rng = np.random.default_rng(5)
    x, labels = rng.standard_normal((10, 12)), rng.integers(0, 4, 10)
    numpy_model, torch_model = twin_models(12, hidden, 4, "gelu", 1, use_batch_norm, bottleneck=3)
    assert type(torch_model.layers[1]).__name__ == "Linear"
    numpy_loss = numpy_loss_and_grads(numpy_model, x, labels)
    loss = torch_loss(torch_model, x, labels)
    loss.backward()
    assert rel_error(numpy_loss, loss.item()) < 1e-10
    torch_params = dict(torch_model.named_parameters())
    assert len(torch_params) == len(numpy_model.parameters())
    for name, _, grad in numpy_model.parameters():
        assert_agree(grad, torch_params[torch_name(name)].grad.numpy(), 1e-10, name)


@pytest.mark.parametrize("hidden, use_batch_norm, bottleneck",
                         [([7], False, 0), ([6, 5], True, 0), ([], False, 0), ([6], True, 4)])
def test_numpy_and_pytorch_agree_with_a_projection(hidden, use_batch_norm, bottleneck):
    rng = np.random.default_rng(6)
    x, labels = rng.standard_normal((10, 12)), rng.integers(0, 4, 10)
    numpy_model, torch_model = twin_models(12, hidden, 4, "gelu", 2, use_batch_norm, bottleneck,
                                           projection=5)
    assert type(torch_model.layers[0]).__name__ == "Projection"
    numpy_loss = numpy_loss_and_grads(numpy_model, x, labels, 0.1)
    loss = torch_loss(torch_model, x, labels, 0.1)
    loss.backward()
    assert rel_error(numpy_loss, loss.item()) < 1e-10
    torch_params = dict(torch_model.named_parameters())
    assert len(torch_params) == len(numpy_model.parameters())  # the projection is not trained
    for name, _, grad in numpy_model.parameters():
        assert_agree(grad, torch_params[torch_name(name)].grad.numpy(), 1e-10, name)
    assert_same_state(numpy_model, torch_model, 1e-12)
    assert rel_error(numpy_model.input_filters(), torch_model.input_filters()) < 1e-12


def test_a_bottleneck_and_the_layer_after_it_read_unsquashed_inputs():
    """Both get the input layer's std sqrt(1 / fan_in), in both frameworks; later layers, which
    read activations, sqrt(2 / fan_in)."""
    torch.manual_seed(0)
    np.random.seed(0)
    for model in (TorchMLP(3072, [500, 300], 10, bottleneck=400),
                  NumpyMLP(3072, [500, 300], 10, bottleneck=400)):
        weights = [np.asarray(layer.weight.detach() if hasattr(layer, "weight")
                              else layer.params["weight"]) for layer in model.linear_layers]
        assert [w.shape for w in weights] == [(400, 3072), (500, 400), (300, 500), (10, 300)]
        for weight, gain in zip(weights, (1, 1, 2, 2)):
            assert abs(weight.std() / np.sqrt(gain / weight.shape[1]) - 1) < 0.1  # 1.41 apart


def zero_biases_before_batch_norm(numpy_model, torch_model):
    """Set the gradient of each bias that BatchNorm follows to its exact value, 0, on both sides.

    Its round-off (1e-17, checked above) differs between the two; Adam divides it by its own
    size and steps that bias by about lr in a random direction, one in which the output does not
    change, and which would make the two models' biases and running means differ for nothing.
    """
    for i, layer in enumerate(numpy_model.layers[:-1]):
        if isinstance(numpy_model.layers[i + 1], BatchNormModule):
            layer.grads["bias"][...] = 0
            torch_model.layers[i].bias.grad.zero_()


@pytest.mark.parametrize("optimizer, lr, momentum, weight_decay", [
    ("sgd", 0.1, 0.0, 0.0), ("sgd", 0.05, 0.9, 0.0), ("sgd", 0.05, 0.9, 0.01),
    ("adam", 1e-2, 0.0, 0.0), ("adam", 1e-2, 0.0, 0.05), ("adamw", 1e-2, 0.0, 0.05)])
def test_numpy_and_torch_optimizers_take_the_same_steps(optimizer, lr, momentum, weight_decay):
    rng = np.random.default_rng(7)
    numpy_model, torch_model = twin_models(10, [8, 6], 3, "elu", 5, use_batch_norm=True)
    numpy_optimizer = numpy_make_optimizer(numpy_model, optimizer, lr, momentum, weight_decay)
    torch_optimizer = train_mlp_pytorch.make_optimizer(torch_model, optimizer, lr, momentum,
                                                       weight_decay)
    for step in range(5):
        x, labels = rng.standard_normal((9, 10)), rng.integers(0, 3, 9)
        # a changing learning rate, as a schedule gives
        numpy_optimizer.lr = lr * (1 - step / 10)
        for group in torch_optimizer.param_groups:
            group["lr"] = lr * (1 - step / 10)
        numpy_loss_and_grads(numpy_model, x, labels)
        torch_optimizer.zero_grad()
        torch_loss(torch_model, x, labels).backward()
        zero_biases_before_batch_norm(numpy_model, torch_model)
        numpy_optimizer.step()
        torch_optimizer.step()
    assert_same_state(numpy_model, torch_model, 1e-10)  # weights and running statistics
    x = rng.standard_normal((6, 10))
    numpy_model.eval()
    torch_model.eval()
    with torch.no_grad():
        theirs = torch.softmax(torch_model(torch.from_numpy(x)), dim=1).numpy()
    assert rel_error(numpy_model.forward(x), theirs) < 1e-10


def test_plain_sgd_is_bit_for_bit_torch_sgd():
    torch.manual_seed(0)
    models = [TorchMLP(12, [8], 3), TorchMLP(12, [8], 3)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [train_mlp_pytorch.PlainSGD(models[0].parameters(), 0.1),
                  torch.optim.SGD(models[1].parameters(), lr=0.1)]
    x, y = torch.randn(5, 12), torch.tensor([0, 1, 2, 0, 1])
    for model, optimizer in zip(models, optimizers):
        for _ in range(3):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        assert torch.equal(a, b)


def test_linear_20_to_40_with_batchnorm_has_920_trainable_parameters():
    model = TorchMLP(20, [40], 10, use_batch_norm=True)
    linear, batch_norm = model.layers[0], model.layers[1]
    assert isinstance(linear, nn.Linear) and isinstance(batch_norm, nn.BatchNorm1d)
    trainable = sum(p.numel() for p in [*linear.parameters(), *batch_norm.parameters()]
                    if p.requires_grad)
    assert trainable == 920  # 20*40 weights + 40 biases, 40 BN scales + 40 BN shifts


def test_structure_init_and_device():
    torch.manual_seed(0)
    model = TorchMLP(3072, [500, 300], 10, use_batch_norm=True, dropout=0.1)
    kinds = [type(m).__name__ for m in model.layers]
    assert kinds == ["Linear", "BatchNorm1d", "ELU", "Dropout", "Linear", "BatchNorm1d", "ELU",
                     "Dropout", "Linear"]
    first, second, _ = model.linear_layers
    assert abs(first.weight.std().item() / np.sqrt(1 / 3072) - 1) < 0.01
    assert abs(second.weight.std().item() / np.sqrt(2 / 500) - 1) < 0.01
    assert all(torch.all(layer.bias == 0) for layer in model.linear_layers)
    assert model.device == torch.device("cpu")
    assert TorchMLP(3072, [], 10)(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


def test_batchnorm_evaluation_uses_running_statistics():
    torch.manual_seed(0)
    model = TorchMLP(6, [5], 3, use_batch_norm=True)
    model(torch.randn(32, 6) * 3 + 1)  # training mode: updates the running statistics
    model.eval()
    x = torch.randn(4, 6)
    together = model(x)
    alone = torch.cat([model(x[i:i + 1]) for i in range(4)])
    torch.testing.assert_close(together, alone)


@pytest.mark.parametrize("as_torch", [False, True])
def test_random_crop_flip_returns_shifted_and_mirrored_crops(as_torch):
    images = np.random.default_rng(0).integers(0, 256, (16, 3, 8, 8), dtype=np.uint8)
    given = torch.from_numpy(images) if as_torch else images
    out = preprocessing.random_crop_flip(given, np.random.default_rng(1), padding=2)
    assert type(out) is type(given) and out.shape == given.shape and out.dtype == given.dtype
    out = np.asarray(out)
    padded = np.pad(images, [(0, 0), (0, 0), (2, 2), (2, 2)])
    flips_seen = set()
    for i in range(16):
        matches = [(top, left, flip) for top in range(5) for left in range(5)
                   for flip in (False, True)
                   if np.array_equal(out[i], padded[i, :, top:top + 8, left:left + 8][..., ::-1]
                                     if flip else padded[i, :, top:top + 8, left:left + 8])]
        assert matches, f"image {i} is no crop of its padded original"
        flips_seen.update(flip for _, _, flip in matches)
    assert flips_seen == {False, True}


def test_numpy_and_torch_flips_are_the_same_for_a_seed():
    images = np.random.default_rng(0).integers(0, 256, (32, 3, 4, 4), dtype=np.uint8)
    ours = preprocessing.random_flip(images, np.random.default_rng(5))
    theirs = preprocessing.random_flip(torch.from_numpy(images), np.random.default_rng(5))
    np.testing.assert_array_equal(ours, theirs.numpy())
    flipped = [not np.array_equal(a, b) for a, b in zip(ours, images)]
    assert 0 < sum(flipped) < 32
    np.testing.assert_array_equal(ours[flipped], images[flipped][..., ::-1])


def test_learning_rate_schedule():
    factor = lr_factor
    assert [factor(s, 100, 4, "none") for s in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    assert factor(4, 100, 4, "cosine") == 1.0
    assert factor(52, 100, 4, "cosine") == pytest.approx(0.5)
    assert factor(99, 100, 4, "cosine") < 0.01


def test_device_choice():
    assert train_mlp_pytorch.pick_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        assert train_mlp_pytorch.pick_device("auto").type in ("cpu", "mps")
        with pytest.raises(UserError, match="--device cuda.*no CUDA"):
            train_mlp_pytorch.pick_device("cuda")


def small_run(root, results, **overrides):
    kwargs = dict(hidden_dims=[32], lr=0.05, use_batch_norm=False, batch_size=16, epochs=3,
                  seed=1, data_dir=str(root), validation_size=30, data_url="", device="cpu",
                  results_dir=str(results))
    kwargs.update(overrides)
    return train_mlp_pytorch.train(**kwargs)


def test_training_learns_writes_results_and_reloads(hard_cifar_dir, tmp_path):
    root, _ = hard_cifar_dir
    model, val_accuracies, test_accuracy, log = small_run(root, tmp_path, use_batch_norm=True)
    assert log["train_loss"][-1] < 0.5 * log["train_loss"][0]
    assert test_accuracy > 0.5 and len(val_accuracies) == 3
    assert val_accuracies[0] < max(val_accuracies) < 1  # 20 % of the labels are random
    folder = tmp_path / "pytorch_h32_lr0.05_b16_e3_s1_bn"
    assert sorted(os.listdir(folder)) == ["accuracy.png", "loss.png", "metrics.json", "model.pt"]
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["config"]["use_batch_norm"] and metrics["config"]["device"] == "cpu"
    assert "torch" in metrics["versions"]
    state = torch.load(folder / "model.pt", weights_only=True)["state_dict"]
    reloaded = TorchMLP(3072, [32], 10, use_batch_norm=True)
    reloaded.load_state_dict(state)
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key


def test_same_seed_same_numbers_on_cpu(cifar_dir, tmp_path):
    root, _ = cifar_dir
    first = small_run(root, tmp_path / "a", epochs=2)
    second = small_run(root, tmp_path / "b", epochs=2)
    assert first[3]["train_loss_steps"] == second[3]["train_loss_steps"]
    assert first[2] == second[2]


def test_experiment_options_train(cifar_dir, tmp_path):
    root, _ = cifar_dir
    _, _, _, log = small_run(root, tmp_path / "r", optimizer="adamw", lr=1e-3, weight_decay=0.01,
                             dropout=0.1, schedule="cosine", warmup=1, label_smoothing=0.1,
                             augment="crop+flip", activation="relu")
    assert log["train_loss"][-1] < log["train_loss"][0]
    # warmup=1 is taken as the number it is, 1.0: the name --warmup 1 gives on the command line
    assert os.listdir(tmp_path / "r") == ["pytorch_h32_lr0.001_b16_e3_s1_activationrelu_"
                                          "optimizeradamw_weight_decay0.01_dropout0.1_"
                                          "schedulecosine_warmup1.0_label_smoothing0.1_"
                                          "augmentcrop+flip"]


def test_command_line_defaults_match_the_course():
    args = train_mlp_pytorch.parse_args([])
    assert (args.hidden_dims, args.lr, args.batch_size, args.epochs, args.seed,
            args.use_batch_norm, args.device) == ([128], 0.1, 128, 10, 42, False, "auto")
    given = {key: getattr(args, key) for key in options.options_of("pytorch")}
    assert given == {key: options.DEFAULTS[key] for key in options.options_of("pytorch")}


def test_course_accuracy_helpers_agree():
    import train_mlp_numpy
    scores = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7], [0.6, 0.4]])
    labels = np.array([1, 1, 1, 0])
    assert train_mlp_numpy.accuracy(scores, labels) == 0.75
    assert train_mlp_pytorch.accuracy(torch.from_numpy(scores), torch.from_numpy(labels)) == 0.75
