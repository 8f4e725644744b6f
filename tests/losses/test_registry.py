"""Loss names with options: ``lossless:beta=2N``, ``triplet:margin=0.5``."""

import pytest

from lossless_triplet.losses import LOSSES, LosslessTripletLoss, TripletMarginLoss, make_loss
from lossless_triplet.losses.registry import parse_loss_name


def test_plain_names_build_the_registered_module_with_its_defaults():
    for name, cls in LOSSES.items():
        module = make_loss(name)
        assert type(module) is cls
    assert make_loss("lossless").beta is None


def test_options_reach_the_constructor_and_kn_means_times_the_code_width():
    module = make_loss("lossless:beta=2N", embedding_dim=8)
    assert isinstance(module, LosslessTripletLoss) and module.beta == 16.0
    assert make_loss("lossless:beta=N", embedding_dim=8).beta == 8.0
    assert make_loss("lossless: beta = 40 , eps=1e-6").eps == 1e-6
    module = make_loss("triplet:margin=0.5", validate=False)
    assert isinstance(module, TripletMarginLoss) and module.margin == 0.5 and module.validate is False
    assert parse_loss_name("soft_margin") == ("soft_margin", {})


@pytest.mark.parametrize("name, message", [
    ("cosine", "unknown loss 'cosine'; choose from triplet"),
    ("lossless:margin=1", "not valid for lossless; it takes beta=NUMBER, eps=NUMBER"),
    ("soft_margin:margin=1", "not valid for soft_margin; it takes no option"),
    ("lossless:beta", "not valid for lossless"),
    ("lossless:beta=big", "must be a number, or kN"),
    ("lossless:beta=2N", "where the code width is known"),
])
def test_bad_names_say_what_is_valid(name, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        make_loss(name)


def test_bad_values_fail_in_the_loss_itself():
    with pytest.raises(ValueError, match="margin=-1.0 must be finite and >= 0"):
        make_loss("triplet:margin=-1")
