"""The NumPy MLP (mlp_numpy.py) beyond the course's check in unittests.py: every parameter gradient
of whole models against finite differences (other activations, BatchNorm, dropout, a linear
bottleneck, a fixed projection, residual blocks), the course's backward path against the fused one,
the seed's parameter count, training and evaluation modes, the state_dict, and how a bottleneck's
layers are initialized, the same as in the PyTorch MLP."""
import numpy as np
import pytest
import torch
from helpers import RepeatingGenerator, orthonormal_columns
from unittests import REL_ERROR_MAX, numerical_gradient, rel_error

from mlp_numpy import MLP as NumpyMLP
from mlp_pytorch import MLP as TorchMLP
from modules import BatchNormModule, CrossEntropyModule, DropoutModule


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


@pytest.mark.parametrize("blocks", [1, 4])
def test_residual_blocks_are_initialized_alike_in_both_frameworks(blocks):
    """W₁ reads LayerNorm's unit-variance output: std sqrt(1 / fan_in); W₂ reads activations, in
    one of R blocks: sqrt(2 / (R fan_in)); zero biases; LayerNorm starts at γ = 1, β = 0."""
    torch.manual_seed(0)
    np.random.seed(0)
    torch_blocks = TorchMLP(64, [400], 10, blocks=blocks, block_width=600).layers[-1 - blocks:-1]
    numpy_blocks = NumpyMLP(64, [400], 10, blocks=blocks, block_width=600).layers[-1 - blocks:-1]
    assert len(torch_blocks) == len(numpy_blocks) == blocks
    for torch_block, numpy_block in zip(torch_blocks, numpy_blocks):
        for norm, first, second in ([torch_block.branch[i].state_dict() for i in (0, 1, 3)],
                                    [numpy_block.branch[i].params for i in (0, 1, 3)]):
            norm = [np.asarray(value) for value in norm.values()]
            assert [value.ravel().tolist() for value in norm] == [[1.0] * 400, [0.0] * 400]
            weights = [np.asarray(first["weight"]), np.asarray(second["weight"])]
            assert [w.shape for w in weights] == [(600, 400), (400, 600)]
            for weight, gain in zip(weights, (1, 2 / blocks)):
                assert abs(weight.std() / np.sqrt(gain / weight.shape[1]) - 1) < 0.1
            assert not np.any(np.asarray(first["bias"])) and not np.any(np.asarray(second["bias"]))


def test_many_residual_blocks_start_at_the_scale_of_one():
    """Each of R blocks adds about 1/R of the stream's variance: sixteen blocks' logits start
    within 1.5x the scale of one block's (a gain of 2 in each would make them 2.8x)."""
    x = np.random.default_rng(0).standard_normal((256, 64))

    def logit_scale(blocks):
        np.random.seed(0)
        model = NumpyMLP(64, [256], 10, use_batch_norm=True, activation="gelu", blocks=blocks)
        model.eval()
        hidden = x
        for layer in model.layers:
            hidden = layer.forward(hidden)
        return hidden.std()

    assert logit_scale(16) < 1.5 * logit_scale(1)


def test_parameter_gradients_of_whole_model():
    rng = np.random.default_rng(9)
    for hidden in ([], [7], [6, 5]):
        for activation in ("elu", "tanh"):
            model = NumpyMLP(8, hidden, 4, activation=activation, dtype=np.float64)
            x, labels = rng.standard_normal((5, 8)), rng.integers(0, 4, 5)
            loss = CrossEntropyModule()
            probs = model.forward(x)
            model.backward_logits(loss.logits_grad(probs, labels))
            for layer in model.linear_layers:
                for name in ("weight", "bias"):
                    numeric = numerical_gradient(
                        lambda: loss.forward(model.forward(x), labels), layer.params[name])
                    assert rel_error(layer.grads[name], numeric) < REL_ERROR_MAX, \
                        f"{hidden} {activation} {name}"


def test_batch_norm_and_dropout_model_gradients():
    rng = np.random.default_rng(19)
    for hidden, activation in ([6], "elu"), ([7, 5], "gelu"), ([6, 6], "tanh"):
        model = NumpyMLP(8, hidden, 4, use_batch_norm=True, activation=activation, dropout=0.3)
        kinds = [type(layer).__name__ for layer in model.layers]
        assert kinds[:4] == ["LinearModule", "BatchNormModule",
                             type(model.layers[2]).__name__, "DropoutModule"]
        for i, layer in enumerate(model.layers):
            if isinstance(layer, DropoutModule):
                layer.rng = RepeatingGenerator(i)
            if isinstance(layer, BatchNormModule):
                layer.params["gamma"] += rng.uniform(-0.5, 0.5, layer.params["gamma"].shape)
                layer.params["beta"] += rng.standard_normal(layer.params["beta"].shape)
        before_batch_norm = {f"layers.{i - 1}" for i, layer in enumerate(model.layers)
                             if isinstance(layer, BatchNormModule)}
        x, labels = rng.standard_normal((9, 8)), rng.integers(0, 4, 9)
        loss = CrossEntropyModule(label_smoothing=0.1)
        model.backward_logits(loss.logits_grad(model.forward(x), labels))
        names = [name for name, _, _ in model.parameters()]
        assert "layers.1.gamma" in names
        for name, param, grad in model.parameters():
            numeric = numerical_gradient(lambda: loss.forward(model.forward(x), labels), param)
            if name.endswith(".bias") and name.replace(".bias", "") in before_batch_norm:
                # the batch mean cancels this bias: its gradient is exactly 0
                assert np.abs(grad).max() < 1e-14, name
                assert np.abs(numeric).max() < 1e-8, name
                continue
            assert rel_error(grad, numeric) < REL_ERROR_MAX, (hidden, name)


def test_linear_bottleneck_model_gradients():
    """A linear layer of 3 units first, straight into the first hidden Linear."""
    rng = np.random.default_rng(20)
    for hidden in ([6], [5, 4], []):
        model = NumpyMLP(8, hidden, 4, activation="gelu", bottleneck=3)
        kinds = [type(layer).__name__ for layer in model.layers]
        assert kinds[:2] == ["LinearModule", "LinearModule"]
        assert model.layers[0].params["weight"].shape == (3, 8)
        x, labels = rng.standard_normal((5, 8)), rng.integers(0, 4, 5)
        loss = CrossEntropyModule()
        model.backward_logits(loss.logits_grad(model.forward(x), labels))
        for name, param, grad in model.parameters():
            numeric = numerical_gradient(lambda: loss.forward(model.forward(x), labels), param)
            assert rel_error(grad, numeric) < REL_ERROR_MAX, (hidden, name)


def test_projection_model_gradients():
    """A fixed projection of 8 inputs onto 5 components first: the Linear after it is the
    input layer, and no gradient flows into the projection, which has nothing to train."""
    rng = np.random.default_rng(22)
    for hidden, use_batch_norm, bottleneck in (([6], False, 0), ([5, 4], True, 0),
                                               ([], False, 0), ([6], False, 3)):
        model = NumpyMLP(8, hidden, 4, use_batch_norm, "gelu", bottleneck=bottleneck,
                         projection=orthonormal_columns(rng, 8, 5))
        assert type(model.layers[0]).__name__ == "ProjectionModule"
        assert not model.linear_layers[0].input_grad
        x, labels = rng.standard_normal((6, 8)), rng.integers(0, 4, 6)
        loss = CrossEntropyModule()
        model.backward_logits(loss.logits_grad(model.forward(x), labels))
        assert "layers.0" not in " ".join(name for name, _, _ in model.parameters())
        before_batch_norm = {f"layers.{i - 1}.bias" for i, layer in enumerate(model.layers)
                             if isinstance(layer, BatchNormModule)}
        for name, param, grad in model.parameters():
            if name in before_batch_norm:
                continue  # the batch mean cancels it: 0, checked in the test above
            numeric = numerical_gradient(lambda: loss.forward(model.forward(x), labels), param)
            assert rel_error(grad, numeric) < REL_ERROR_MAX, (hidden, name)


def test_residual_block_model_gradients():
    """Two residual blocks after the hidden layers, with BatchNorm and dropout (inside the blocks
    too): every parameter, LayerNorm's γ and β and the blocks' weights among them."""
    rng = np.random.default_rng(23)
    for hidden, block_width in (([6, 5], 7), ([6], 0)):
        model = NumpyMLP(8, hidden, 4, use_batch_norm=True, activation="gelu", dropout=0.3,
                         blocks=2, block_width=block_width)
        kinds = [type(layer).__name__ for layer in model.layers]
        assert kinds[-3:] == ["ResidualBlockModule", "ResidualBlockModule", "LinearModule"]
        assert model.layers[-2].branch[1].params["weight"].shape == (block_width or 6, hidden[-1])
        dropouts = [module for module in model.modules() if isinstance(module, DropoutModule)]
        assert len(dropouts) == len(hidden) + 2
        for i, dropout in enumerate(dropouts):
            dropout.rng = RepeatingGenerator(i)
        for name, param, _ in model.parameters():
            if ".branch.0." in name:  # LayerNorm's γ and β made other than 1 and 0
                param += rng.uniform(-0.5, 0.5, param.shape)
        x, labels = rng.standard_normal((9, 8)), rng.integers(0, 4, 9)
        loss = CrossEntropyModule()
        model.backward_logits(loss.logits_grad(model.forward(x), labels))
        before_batch_norm = {f"layers.{i - 1}.bias" for i, layer in enumerate(model.layers)
                             if isinstance(layer, BatchNormModule)}
        checked = 0
        for name, param, grad in model.parameters():
            if name in before_batch_norm:
                continue  # the batch mean cancels it: 0, checked in a test above
            numeric = numerical_gradient(lambda: loss.forward(model.forward(x), labels), param)
            assert rel_error(grad, numeric) < REL_ERROR_MAX, (hidden, name)
            checked += ".branch." in name
        assert checked == 2 * 6


def test_projection_is_saved_with_the_model_and_filters_reach_the_pixels():
    rng = np.random.default_rng(23)
    model = NumpyMLP(8, [5], 3, projection=orthonormal_columns(rng, 8, 4))
    other = NumpyMLP(8, [5], 3, projection=np.zeros((8, 4)))
    other.load_state_dict(model.state_dict())
    x = rng.standard_normal((3, 8))
    np.testing.assert_array_equal(model.forward(x), other.forward(x))
    first = model.linear_layers[0]
    np.testing.assert_allclose(x @ model.input_filters().T + first.params["bias"],
                               first.forward(model.layers[0].forward(x)), atol=1e-12)


def test_linear_20_to_40_with_batch_norm_has_920_parameters():
    """The seed's Q5b, counted on the NumPy model: 20*40 + 40 (Linear) + 40 + 40 (γ, β)."""
    model = NumpyMLP(20, [40], 10, use_batch_norm=True)
    first_block = [name for name in model.state_dict() if name.startswith(("layers.0.",
                                                                            "layers.1."))]
    parameters = {name: param.size for name, param, _ in model.parameters()}
    assert sum(parameters[name] for name in first_block if name in parameters) == 920
    assert sorted(first_block) == ["layers.0.bias", "layers.0.weight", "layers.1.beta",
                                   "layers.1.gamma", "layers.1.running_mean",
                                   "layers.1.running_var"]


def test_train_and_eval_switch_every_layer():
    model = NumpyMLP(5, [4], 3, use_batch_norm=True, dropout=0.5, blocks=1)
    assert all(module.training for module in model.modules())
    model.eval()
    assert not (model.training or any(module.training for module in model.modules()))
    x = np.random.default_rng(20).standard_normal((3, 5))
    np.testing.assert_array_equal(model.forward(x), model.forward(x))  # no dropout now
    model.train()
    assert all(module.training for module in model.modules())


def test_course_backward_path_equals_fused_path():
    rng = np.random.default_rng(10)
    model = NumpyMLP(6, [5], 3, dtype=np.float64)
    x, labels = rng.standard_normal((4, 6)), rng.integers(0, 3, 4)
    loss = CrossEntropyModule()
    probs = model.forward(x)
    model.backward(loss.backward(probs, labels))
    course = [layer.grads["weight"].copy() for layer in model.linear_layers]
    model.backward_logits(loss.logits_grad(probs, labels))
    for a, b in zip(course, [layer.grads["weight"] for layer in model.linear_layers]):
        assert rel_error(a, b) < 1e-10


def test_logistic_regression_has_one_layer():
    model = NumpyMLP(10, [], 3)
    assert len(model.layers) == 1
    assert model.forward(np.zeros((2, 10), np.float32)).shape == (2, 3)


def test_state_dict_round_trip_and_mismatch_message():
    model = NumpyMLP(6, [5], 3, use_batch_norm=True)
    other = NumpyMLP(6, [5], 3, use_batch_norm=True)
    model.forward(np.random.default_rng(21).standard_normal((8, 6)))  # running statistics move
    other.load_state_dict(model.state_dict())
    model.eval()
    other.eval()
    x = np.ones((2, 6))
    np.testing.assert_array_equal(model.forward(x), other.forward(x))
    with pytest.raises(ValueError, match=r"\(4, 6\).*\(5, 6\)"):
        other.load_state_dict(NumpyMLP(6, [4], 3, use_batch_norm=True).state_dict())
