"""A model compiled with a Keras loss of this package saves and loads with its loss."""

import numpy as np
import pytest

keras = pytest.importorskip("keras")
import lossless_triplet.keras as lk  # noqa: E402

# Keras' torch backend copies tensors to NumPy the way NumPy 2 deprecates (not our code).
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


def siamese(n_features=5, dim=3):
    encoder = keras.Sequential([keras.Input((n_features,)), keras.layers.Dense(dim, activation="sigmoid")])
    inputs = [keras.Input((n_features,)) for _ in range(3)]
    return keras.Model(inputs, keras.layers.Concatenate()([encoder(x) for x in inputs]))


@pytest.mark.parametrize(
    "loss", [lk.LosslessTripletLoss(8.0, layout="triplets"), lk.ContrastiveLoss(0.5, layout="triplets")]
)
def test_compiled_model_saves_and_loads(tmp_path, loss):
    keras.utils.set_random_seed(0)
    model = siamese()
    model.compile(optimizer="adam", loss=loss)
    x = list(np.random.default_rng(0).random((3, 16, 5)).astype("float32"))
    model.fit(x, np.zeros(16), epochs=1, verbose=0)
    path = tmp_path / "siamese.keras"
    model.save(path)

    loaded = keras.saving.load_model(path)
    assert type(loaded.loss) is type(loss)
    assert loaded.loss.get_config() == loss.get_config()
    expected = model.evaluate(x, np.zeros(16), verbose=0)
    assert loaded.evaluate(x, np.zeros(16), verbose=0) == pytest.approx(expected, rel=1e-6)
    loaded.fit(x, np.zeros(16), epochs=1, verbose=0)  # the restored optimizer and loss still train
