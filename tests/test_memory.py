import numpy as np
import pytest

from lossless_triplet.memory import MAX_SAMPLE, RADIUS_FLOOR, UNKNOWN, FaultMemory, is_reserved
from lossless_triplet.validation import NotFittedError


def clusters(seed=0, n=40, spread=0.02):
    rng = np.random.default_rng(seed)
    centres = np.array([[0.1, 0.1], [0.9, 0.1], [0.1, 0.9]])
    codes = np.concatenate([c + spread * rng.normal(size=(n, 2)) for c in centres])
    return codes, np.repeat(np.arange(3), n), ["normal", "link-down", "cpu-hog"]


def test_signatures_are_class_centroids_with_quantile_radii():
    codes, labels, names = clusters()
    memory = FaultMemory(quantile=0.9, slack=1.0).fit(codes, labels, names)
    assert memory.names == names
    for c, name in enumerate(names):
        members = codes[labels == c]
        np.testing.assert_allclose(memory.signatures_[name].centroid, members.mean(0))
        expected = np.quantile(np.linalg.norm(members - members.mean(0), axis=1), 0.9)
        assert memory.radii()[name] == pytest.approx(expected)


def test_identify_nearest_distance_and_unknown():
    codes, labels, names = clusters()
    memory = FaultMemory().fit(codes, labels, names)
    queries = np.array([[0.11, 0.09], [0.88, 0.12], [0.9, 0.9]])  # normal, link-down, far from all
    result = memory.identify(queries)
    assert result["nearest"][:2].tolist() == ["normal", "link-down"]
    assert result["status"][:2].tolist() == ["normal", "link-down"]
    assert result["status"][2] == UNKNOWN and result["unknown"].tolist() == [False, False, True]
    centroid = memory.signatures_["normal"].centroid
    assert result["distance"][0] == pytest.approx(np.linalg.norm(queries[0] - centroid))
    assert result["unknown_score"][2] > 1 > result["unknown_score"][0]


def test_identify_in_blocks_equals_brute_force_over_every_signature(monkeypatch):
    import lossless_triplet.memory as memory_module

    codes, labels, names = clusters()
    memory = FaultMemory().fit(codes, labels, names)
    rng = np.random.default_rng(1)
    queries = np.concatenate([codes[::8], rng.uniform(-0.5, 1.5, size=(35, 2))]).astype(np.float32)  # members, others
    monkeypatch.setattr(memory_module, "_IDENTIFY_BLOCK", 7)  # 50 rows: 8 blocks, the last of 1
    result = memory.identify(queries)
    centroids = np.stack([memory.signatures_[n].centroid for n in names])
    radii = np.array([memory.radii()[n] for n in names])
    distances = np.linalg.norm(queries.astype(np.float64)[:, None] - centroids[None], axis=2)
    np.testing.assert_allclose(result["distance"], distances.min(1), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(result["unknown_score"], (distances / radii).min(1), rtol=1e-9)
    covered = distances <= radii
    expected = np.where(covered.any(1), np.array(names)[np.where(covered, distances, np.inf).argmin(1)], UNKNOWN)
    assert result["status"].tolist() == expected.tolist()
    assert result["nearest"].tolist() == np.array(names)[distances.argmin(1)].tolist()
    assert 0 < result["unknown"].sum() < 50  # both kinds of row were checked
    with pytest.raises(ValueError, match="1 non-finite"):
        memory.identify(np.where(np.arange(100).reshape(50, 2) == 77, np.nan, queries))


def test_one_example_signature_gets_the_median_learned_radius_or_half_its_distance_to_the_nearest_known():
    codes, labels, names = clusters()
    memory = FaultMemory().fit(codes, labels, names)
    learned = list(memory.radii().values())
    centroids = np.stack([codes[labels == k].mean(axis=0) for k in range(len(names))])
    # near the known clusters: the median learned radius is the larger
    memory.add("near", [0.12, 0.1])
    to_known = np.linalg.norm(centroids - [0.12, 0.1], axis=1).min()
    assert to_known < np.median(learned)
    assert memory.radii()["near"] == pytest.approx(np.median(learned))
    memory.remove("near")
    # far beyond them: the ball reaches half way to the nearest known centroid (brute force over the centroids)
    memory.add("node-down", [0.9, 0.9])
    to_known = np.linalg.norm(centroids - [0.9, 0.9], axis=1).min()
    assert to_known / 2 > np.median(learned)
    assert memory.radii()["node-down"] == pytest.approx(to_known / 2, rel=1e-5)
    # 0.3 away: beyond the median radius, inside the new one; 0.6 x the distance away: unknown, and
    # a row beyond a known radius but nearer to that known centroid is not taken over by the new one
    known_edge = centroids[1] + [0.0, 3 * learned[1]]
    result = memory.identify(np.array([[0.89, 0.9], [0.9, 1.2], [0.9 + 0.6 * to_known, 0.9], known_edge]))
    assert result["status"].tolist() == ["node-down", "node-down", "unknown", "unknown"]
    assert result["nearest"].tolist() == ["node-down"] * 3 + ["link-down"]
    assert memory.describe()[-1] == {"name": "node-down", "count": 1, "radius": pytest.approx(to_known / 2, rel=1e-5),
                                     "learned_radius": False}
    # the learned radii do not change
    assert [memory.radii()[n] for n in names] == pytest.approx(learned)


def test_extending_moves_the_centroid_to_the_mean_of_all_members():
    codes, labels, names = clusters()
    memory = FaultMemory(min_members=3).fit(codes, labels, names)
    memory.add("new", [[0.5, 0.5]])
    memory.add("new", [[0.6, 0.5], [0.7, 0.5]])
    signature = memory.signatures_["new"]
    assert signature.count == 3
    np.testing.assert_allclose(signature.centroid, [0.6, 0.5])
    assert memory.describe()[-1]["learned_radius"]


def test_sample_is_capped_but_centroid_is_exact():
    rng = np.random.default_rng(1)
    big = rng.random((MAX_SAMPLE + 500, 3))
    memory = FaultMemory()
    memory.add("a", big)
    assert len(memory.signatures_["a"].sample) == MAX_SAMPLE
    np.testing.assert_allclose(memory.signatures_["a"].centroid, big.mean(0))


def test_remove_and_state_roundtrip():
    codes, labels, names = clusters()
    memory = FaultMemory().fit(codes, labels, names)
    memory.add("one", [0.5, 0.5])
    memory.remove("cpu-hog")
    meta, arrays = memory.to_state()
    restored = FaultMemory.from_state(meta, arrays)
    assert restored.names == ["normal", "link-down", "one"]
    queries = np.random.default_rng(2).random((20, 2))
    for key, value in memory.identify(queries).items():
        np.testing.assert_array_equal(restored.identify(queries)[key], value)


def test_errors():
    codes, labels, names = clusters()
    memory = FaultMemory().fit(codes, labels, names)
    with pytest.raises(KeyError, match="known: normal"):
        memory.remove("nope")
    with pytest.raises(ValueError, match="width"):
        memory.add("x", [0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="name"):
        memory.add(UNKNOWN, [0.1, 0.2])
    with pytest.raises(ValueError, match="NaN"):
        memory.identify([[np.nan, 0.1]])
    with pytest.raises(NotFittedError, match="FaultMemory is not fitted yet"):
        FaultMemory().identify([[0.1, 0.2]])
    with pytest.raises(ValueError, match="quantile"):
        FaultMemory(quantile=0)
    with pytest.raises(ValueError, match="corrupt"):
        FaultMemory.from_state({"quantile": 0.9}, {})


def test_identify_follows_add_and_remove_after_a_cached_call():
    """identify caches centroids and radii; every change of the signatures must show at once."""
    memory = FaultMemory(min_members=2).fit(np.array([[0.0, 0.0], [0.1, 0.0], [1.0, 1.0], [0.9, 1.0]]),
                                            np.array([0, 0, 1, 1]), ["normal", "fault"])
    probe = np.array([[0.5, 0.0]])
    assert memory.identify(probe)["nearest"].tolist() == ["normal"]
    memory.add("new", probe)
    assert memory.identify(probe)["status"].tolist() == ["new"]
    memory.remove("new")
    assert memory.identify(probe)["nearest"].tolist() == ["normal"]
    memory.add("normal", np.array([[2.0, 2.0]] * 10))  # extending moves the centroid to (1.52, 1.52)
    assert memory.identify(probe)["nearest"].tolist() == ["fault"]


def test_identical_members_get_the_floor_radius_and_match_their_own_row():
    # Five identical rows: every member distance is 0, so the learned radius would be 0 and the
    # same row, moved by rounding, would be "unknown" with unknown_score = distance / 0.
    codes, labels, names = clusters()
    memory = FaultMemory().fit(codes, labels, names)
    row = np.array([0.5, 0.5])
    memory.add("dup5", np.repeat(row[None], 5, axis=0))
    floor = RADIUS_FLOOR * np.sqrt(2)
    assert memory.radius_floor() == pytest.approx(floor)
    assert memory.radii()["dup5"] == pytest.approx(floor)
    result = memory.identify(np.stack([row, row + 1e-7]))
    assert result["status"].tolist() == ["dup5", "dup5"] and not result["unknown"].any()
    assert np.isfinite(result["unknown_score"]).all() and (result["unknown_score"] <= 1).all()


def test_a_collapsed_memory_never_gives_nan():
    # Every member of every class at one point: all radii are the floor, scores stay finite.
    codes = np.zeros((30, 4))
    memory = FaultMemory().fit(codes, np.repeat(np.arange(3), 10), ["a", "b", "c"])
    assert list(memory.radii().values()) == pytest.approx([RADIUS_FLOOR * 2] * 3)
    result = memory.identify(np.array([[0.0, 0, 0, 0], [1.0, 1, 1, 1]]))
    assert np.isfinite(result["unknown_score"]).all()
    assert result["unknown"].tolist() == [False, True]


@pytest.mark.parametrize("name", ["unknown", "UNKNOWN", "Unknown", " unKnown "])
def test_unknown_is_reserved_in_any_case(name):
    memory = FaultMemory().fit(*clusters()[:2], clusters()[2])
    with pytest.raises(ValueError, match="other than 'unknown' in any case"):
        memory.add(name, [0.1, 0.2])
    assert is_reserved(name) and not is_reserved("unknown-link")
    with pytest.raises(ValueError, match="needs a name: got an empty"):
        memory.add("   ", [0.1, 0.2])


def test_the_last_signature_cannot_be_removed_and_entry_reads_one_row():
    memory = FaultMemory().fit([[0.0, 0.0], [1.0, 1.0]], [0, 1], ["normal", "fault"])
    assert memory.entry("fault") == next(r for r in memory.describe() if r["name"] == "fault")
    assert memory.entry("fault")["count"] == 1
    with pytest.raises(KeyError, match="known: normal, fault"):
        memory.entry("nope")
    assert memory.entry(" fault ")["name"] == "fault"  # names are stored stripped, and looked up so
    memory.remove(" fault")
    with pytest.raises(ValueError, match="'normal' is the last signature; add another"):
        memory.remove("normal")
    assert memory.names == ["normal"]  # refused: nothing changed
