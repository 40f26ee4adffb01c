"""modules.py beyond the course's unittests.py: what the NumPy modules take as inputs and labels,
and what they refuse."""
import numpy as np
import pytest

from mlp_numpy import MLP
from modules import CrossEntropyModule, LinearModule


@pytest.mark.parametrize("dtype", [np.int64, np.uint8, bool])
def test_integer_and_boolean_inputs_are_taken_in_the_weights_precision(dtype):
    np.random.seed(0)
    model = MLP(6, [4], 3)
    x = (np.arange(12).reshape(2, 6) % 2).astype(dtype)
    np.testing.assert_array_equal(model.forward(x), model.forward(x.astype(np.float64)))
    layer = LinearModule(6, 4)
    np.testing.assert_array_equal(layer.forward(x), layer.forward(x.astype(np.float64)))


@pytest.mark.parametrize("labels", [[-1, 0], [5, 0], [0.0, 1.0], [True, False]])
def test_labels_outside_the_classes_are_refused(labels):
    probabilities = np.full((2, 5), 0.2)
    for compute in (CrossEntropyModule().forward, CrossEntropyModule().backward,
                    CrossEntropyModule().logits_grad):
        with pytest.raises(ValueError, match="labels must be integers in 0..4"):
            compute(probabilities, np.array(labels))
