"""examples/keras_siamese.py: triplets are valid and one epoch lowers the loss."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("keras")

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "keras_siamese.py"

# Keras' torch backend copies tensors to NumPy the way NumPy 2 deprecates (not our code).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("keras_siamese", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks itself up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


@pytest.fixture(scope="module")
def kddi(example):
    return example.load_data()


def test_make_triplets_are_valid(example):
    labels = np.array([0, 0, 0, 1, 1, 2])
    a, p, n = example.make_triplets(labels, 200, np.random.default_rng(0))
    assert (a != p).all() and (labels[a] == labels[p]).all() and (labels[a] != labels[n]).all()
    assert set(labels[a]) == {0, 1}  # class 2 has one row: never an anchor
    with pytest.raises(ValueError, match="two classes"):
        example.make_triplets(np.zeros(4, dtype=int), 5, np.random.default_rng(0))


@pytest.mark.parametrize("layout", ["triplets", "labels"])
def test_one_epoch_lowers_the_loss(example, kddi, layout):
    x_train, y_train, _, _ = kddi
    # A fixed subset keeps the test to a few steps; the script uses every row.
    rows = np.random.default_rng(0).choice(len(y_train), 1024, replace=False)
    result = example.train(x_train[rows], y_train[rows], layout=layout, epochs=1, batch_size=128, learning_rate=1e-2)
    assert np.isfinite(result.loss_before) and result.loss_after < result.loss_before
    assert len(result.history.history["loss"]) == 1
    assert result.encoder.output_shape == (None, 3)
