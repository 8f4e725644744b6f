"""One protocol for fitted objects: NotFittedError from check_is_fitted, versioned to_dict states."""

import numpy as np
import pytest

from lossless_triplet.data import NotFittedError as DataNotFittedError
from lossless_triplet.data import Standardizer
from lossless_triplet.data.views import FeatureView
from lossless_triplet.explain import Explainer
from lossless_triplet.memory import FaultMemory
from lossless_triplet.representation import Representation
from lossless_triplet.validation import (
    NotFittedError,
    check_codes,
    check_codes_labels,
    check_is_fitted,
    check_state,
    state_header,
)

NAMES = ["rx/a", "rx/b", "tx/a"]
X = np.random.default_rng(0).random((40, 3)).astype(np.float32) * 10


def test_every_fitted_object_raises_the_one_not_fitted_error():
    assert DataNotFittedError is NotFittedError and issubclass(NotFittedError, ValueError)
    calls = [lambda: Standardizer().transform(X), lambda: FeatureView("columns").transform(X),
             lambda: FeatureView("columns").to_dict(), lambda: FaultMemory().identify([[0.1, 0.2]]),
             lambda: Representation(excess_weight=4.0).combine(np.zeros((2, 3)), np.zeros((2, 5)))]
    for call in calls:
        with pytest.raises(NotFittedError, match="is not fitted yet; call fit"):
            call()


def test_check_is_fitted_names_the_class_and_the_fit_call():
    class Thing:
        learned_ = None

    with pytest.raises(NotFittedError, match=r"this Thing is not fitted yet; call fit\(rows\) first"):
        check_is_fitted(Thing(), "learned_", "fit(rows)")  # None counts as not learned
    thing = Thing()
    thing.learned_ = 1
    check_is_fitted(thing, "learned_", "fit(rows)")


def _states():
    view = FeatureView("columns").fit(X, NAMES)
    labels = np.arange(40) % 2
    memory_meta, arrays = FaultMemory().fit(np.random.default_rng(1).random((40, 2)), labels, ["n", "f"]).to_state()
    explainer = Explainer.fit(X, NAMES, normal_status="n", time_ordered=False)
    return {"Standardizer": (Standardizer().fit(X).to_dict(), Standardizer.from_dict),
            "FeatureView": (view.to_dict(), FeatureView.from_dict),
            "Representation": (Representation(True, 0.0, 4.0).fit(X).to_dict(), Representation.from_dict),
            "Explainer": (explainer.to_dict(), Explainer.from_dict),
            "FaultMemory": (memory_meta, lambda state: FaultMemory.from_state(state, arrays))}


CURRENT = {"Representation": 2}  # version 2 keeps the ranges of every feature (the sorted excess reads them all)


def test_every_state_is_versioned_and_another_version_is_refused():
    for kind, (state, load) in _states().items():
        version = CURRENT.get(kind, 1)
        assert {k: state[k] for k in ("format", "version")} == state_header(kind, version) == {
            "format": f"lossless_triplet.{kind}", "version": version}
        load(state)  # reads back
        with pytest.raises(ValueError, match=f"not a readable {kind} state .*version 9"):
            load({**state, "version": 9})
        with pytest.raises(ValueError, match=f"not a readable {kind} state"):
            load({**state, "format": "lossless_triplet.Other"})


def test_states_written_before_the_header_still_load():
    # model bundles of format 2 saved before this protocol hold states without format/version
    for kind, (state, load) in _states().items():
        if kind == "Standardizer":  # always carried its header
            continue
        bare = {k: v for k, v in state.items() if k not in ("format", "version")}
        load(bare)
    with pytest.raises(ValueError, match="must be a dict"):
        check_state([1], "FeatureView", (1,))


def test_codes_are_checked_once_at_the_boundary_with_messages_that_name_the_fix():
    np.testing.assert_array_equal(check_codes([[1, 2]]), np.array([[1.0, 2.0]]))
    for bad, message in (([1.0, 2.0], "2-D array .* Reshape a single code"), (np.zeros((0, 2)), "at least 1 row"),
                         (np.zeros((2, 0)), "zero columns"), ([[np.nan, 1.0]], "1 non-finite value")):
        with pytest.raises(ValueError, match=message):
            check_codes(bad)
    with pytest.raises(ValueError, match="width 3 but width-2 codes"):
        check_codes(np.zeros((1, 3)), width=2)
    with pytest.raises(ValueError, match="labels has 1 entries but codes has 2 rows"):
        check_codes_labels(np.zeros((2, 2)), [0])
    with pytest.raises(ValueError, match="must be 1-D"):
        check_codes_labels(np.zeros((2, 2)), [[0, 1]])
    # the fault memory and the metrics use the same check
    with pytest.raises(ValueError, match="width 3 but width-2"):
        FaultMemory().fit(np.zeros((2, 2)), [0, 1], ["a", "b"]).identify(np.zeros((1, 3)))
