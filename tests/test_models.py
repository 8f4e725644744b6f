import numpy as np
import pytest
import torch

from lossless_triplet.models import Encoder, encode


def test_codes_are_in_unit_interval_with_the_requested_width():
    model = Encoder(121, embedding_dim=5, hidden=(16,))
    x = torch.randn(64, 121) * 100  # large inputs saturate the sigmoid, still inside [0, 1]
    codes = model(x)
    assert codes.shape == (64, 5)
    assert codes.min() >= 0 and codes.max() <= 1


def test_config_rebuilds_the_same_architecture():
    model = Encoder(7, embedding_dim=3, hidden=(8, 4))
    clone = Encoder(**model.config())
    clone.load_state_dict(model.state_dict())
    x = torch.randn(5, 7)
    assert torch.equal(model(x), clone(x))


def test_encode_matches_forward_in_batches_and_restores_mode():
    model = Encoder(4, embedding_dim=2, hidden=())
    model.train()
    x = np.random.default_rng(0).normal(size=(50, 4)).astype(np.float32)
    codes = encode(model, x, batch_size=7)
    with torch.no_grad():
        np.testing.assert_allclose(codes, model(torch.from_numpy(x)).numpy(), rtol=1e-6)
    assert model.training
    assert encode(model, x[:0]).shape == (0, 2)


@pytest.mark.parametrize("kwargs", [{"embedding_dim": 0}, {"hidden": (8, 0)}])
def test_bad_widths(kwargs):
    with pytest.raises(ValueError, match=">= 1"):
        Encoder(4, **kwargs)
