import itertools
import warnings

import numpy as np
import pytest

from lossless_triplet.data import views
from lossless_triplet.data.views import (
    _MEDIAN_STEPS,
    _NETWORK_10,
    BASELINE_ROWS,
    CLIP,
    SPREAD_FLOOR,
    VIEWS,
    FeatureView,
    _rolling_median,
    _sorted_median,
    candidate_views,
    column_parts,
    kpi_groups,
    link_pairs,
    resolve_view,
    signed_log1p,
)
from lossless_triplet.validation import NotFittedError

NAMES = ["rx/a", "rx/b", "rx/c", "rx/d", "cpu/r1", "cpu/r2"]


def table(seed=0, n=30):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(NAMES))) * [1, 10, 100, 1000, 1, 2] + [5, 50, 500, 5000, 0, 0]
    x[4, 1] = np.nan
    return x


def test_groups_come_from_the_name_prefix():
    assert kpi_groups(NAMES + ["plain"]) == {"rx": [0, 1, 2, 3], "cpu": [4, 5], "plain": [6]}


def test_kpi_stats_match_a_hand_computation():
    x = table()
    view = FeatureView("kpi-stats").fit(x, NAMES)
    out = view.transform(x)
    assert out.shape == (30, 2 * 12)
    logged = np.sign(x) * np.log(1 + np.abs(x))
    q1, med, q3 = np.nanpercentile(logged, [25, 50, 75], axis=0)
    scaled = (logged - med) / (q3 - q1)
    rx = scaled[7, :4]
    expected = [rx.min(), rx.max(), rx.mean(), rx.std(), *np.sort(rx)[:3], *np.sort(rx)[::-1][:3], 0.0, 0.0]
    np.testing.assert_allclose(out[7, :12], expected, rtol=1e-4, atol=1e-5)  # the view computes in float32
    # Row 4 misses rx/b: statistics over the 3 observed links, missing fraction 1/4.
    rx4 = scaled[4, [0, 2, 3]]
    np.testing.assert_allclose(out[4, [0, 1, 10]], [rx4.min(), rx4.max(), 0.25], rtol=1e-5)
    assert view.feature_names_out_[0] == "rx/min" and view.feature_names_out_[10] == "rx/missing"
    assert view.feature_names_out_[11] == "rx/moved"


def test_kpi_stats_do_not_depend_on_which_link_is_hit():
    x = table()
    view = FeatureView("kpi-stats").fit(x, NAMES)
    spike_a, spike_c = x[10].copy(), x[10].copy()
    # Values whose signed log sits 8 IQRs above the column's median.
    spike_a[0] = np.expm1(view.median_[0] + 8 * view.iqr_[0])
    spike_c[2] = np.expm1(view.median_[2] + 8 * view.iqr_[2])
    out = view.transform(np.vstack([spike_a, spike_c]))
    assert out[0, 1] == pytest.approx(8.0) and out[1, 1] == pytest.approx(8.0)  # max of the group


def test_delta_view_streams_in_chunks_like_the_whole_table():
    x = table(n=50)
    view = FeatureView("kpi-stats+delta").fit(x, NAMES)
    whole = view.transform(x)
    parts = np.vstack([view.transform(x[:17]), view.transform(x[17:], previous=x[16])])
    np.testing.assert_array_equal(whole, parts)
    # No previous row: the first row's deltas are missing (imputed downstream), missing fraction 1.
    first = whole[0, 24:].reshape(2, 12)
    assert np.isnan(first[:, :10]).all() and (first[:, 10] == 1).all()
    step = (signed_log1p(x[9]) - signed_log1p(x[8])) / view.iqr_
    np.testing.assert_allclose(whole[9, 24 + 12 + 1], step[4:].max(), rtol=1e-5)  # delta-cpu/max


def test_signed_log_keeps_sign_and_zero():
    np.testing.assert_allclose(signed_log1p(np.array([-np.e + 1, 0.0, np.e - 1])), [-1.0, 0.0, 1.0])
    assert np.isnan(signed_log1p(np.array([np.nan])))[0]


def test_raw_view_and_serialisation():
    x = table()
    raw = FeatureView("raw").fit(x, NAMES)
    np.testing.assert_array_equal(raw.transform(x), x.astype(np.float32))
    view = FeatureView("kpi-stats+delta").fit(x, NAMES)
    restored = FeatureView.from_dict(view.to_dict())
    np.testing.assert_array_equal(restored.transform(x), view.transform(x))
    assert restored.feature_names_out_ == view.feature_names_out_


def test_errors():
    with pytest.raises(ValueError, match="unknown feature view"):
        FeatureView("pca")
    with pytest.raises(NotFittedError, match="FeatureView is not fitted yet; call fit"):
        FeatureView("kpi-stats").transform(table())
    view = FeatureView("kpi-stats").fit(table(), NAMES)
    with pytest.raises(ValueError, match="expected"):
        view.transform(table()[:, :3])
    with pytest.raises(ValueError, match="incomplete"):
        FeatureView.from_dict({"name": "raw"})


# Two routers A and B joined by link l1 (measured at both ends), plus l2 seen only at A.
LINK_NAMES = ["tx-pps/A+l1", "tx-pps/B+l1", "rx-pps/A+l1", "rx-pps/B+l1", "tx-pps/A+l2", "rx-pps/A+l2",
              "txq-depth/A+l1", "cpu/A"]


def link_table(seed=0, n=40):
    rng = np.random.default_rng(seed)
    volume = rng.uniform(100, 5000, size=(n, 1))  # traffic level varies; both ends see the same
    x = np.hstack([volume * rng.uniform(0.98, 1.02, size=(n, 6)), rng.uniform(0, 9, size=(n, 2))])
    return x


def test_link_pairs_pair_the_sender_with_the_receiver():
    pairs = link_pairs(LINK_NAMES)
    # sorted by link then sender: A sends (tx at A, rx at B), then B sends (tx at B, rx at A);
    # l2 has one end and txq-depth is no direction word, so neither gives a pair
    assert list(pairs) == ["tx-pps>rx-pps"]
    np.testing.assert_array_equal(pairs["tx-pps>rx-pps"], [[0, 3], [1, 2]])
    rates = link_pairs(["net-outgoing-rate/r1+x", "net-incoming-rate/r2+x", "net-outgoing-rate/r2+x",
                        "net-incoming-rate/r1+x"])
    np.testing.assert_array_equal(rates["net-outgoing-rate>net-incoming-rate"], [[0, 1], [2, 3]])
    assert link_pairs(NAMES) == {}


def test_link_view_matches_a_hand_computation():
    x = link_table()
    view = FeatureView("kpi-stats+link").fit(x, LINK_NAMES)
    out = view.transform(x)
    n_groups = len(kpi_groups(LINK_NAMES)) + 1
    assert out.shape == (40, n_groups * 12)
    assert view.feature_names_out_[-12] == "tx-pps>rx-pps/min"
    logged = signed_log1p(x)
    ratios = np.column_stack([logged[:, 0] - logged[:, 3], logged[:, 1] - logged[:, 2]])
    q1, med, q3 = np.nanpercentile(ratios, [25, 50, 75], axis=0)
    scaled = (ratios - med) / (q3 - q1)
    np.testing.assert_allclose(view.link_median_, med)
    row = scaled[5]
    expected = [row.min(), row.max(), row.mean(), row.std(), *np.sort(row), np.nan, *np.sort(row)[::-1], np.nan, 0, 0]
    np.testing.assert_allclose(out[5, -12:], expected, rtol=1e-3, atol=1e-3)  # float32 logs of ~1e3


def test_link_view_sees_a_lossy_link_whichever_direction_is_hit():
    x = link_table(n=60)
    view = FeatureView("kpi-stats+link").fit(x, LINK_NAMES)
    lossy_ab, lossy_ba = x[7].copy(), x[7].copy()
    lossy_ab[3] *= 0.5  # B receives half of what A sends
    lossy_ba[2] *= 0.5  # A receives half of what B sends
    normal, ab, ba = view.transform(np.vstack([x[7], lossy_ab, lossy_ba]))[:, -12:]
    assert ab[1] > normal[1] + 5 and ab[1] == pytest.approx(ba[1], rel=0.1)  # max balance jumps the same


def test_delta_link_view_streams_and_round_trips():
    x = link_table(n=50)
    view = FeatureView("kpi-stats+delta+link").fit(x, LINK_NAMES)
    whole = view.transform(x)
    assert whole.shape[1] == 2 * (len(kpi_groups(LINK_NAMES)) + 1) * 12
    np.testing.assert_array_equal(whole, np.vstack([view.transform(x[:20]), view.transform(x[20:], previous=x[19])]))
    restored = FeatureView.from_dict(view.to_dict())
    np.testing.assert_array_equal(restored.transform(x), whole)
    state = view.to_dict()
    del state["link_iqr"]
    with pytest.raises(ValueError, match="incomplete"):
        FeatureView.from_dict(state)


def test_link_view_needs_a_link_seen_at_both_ends():
    with pytest.raises(ValueError, match="no link measured at both ends.*kpi-stats\\+delta for this table"):
        FeatureView("kpi-stats+delta+link").fit(table(), NAMES)


def test_auto_picks_the_link_view_when_links_are_measured_at_both_ends():
    assert resolve_view("auto", LINK_NAMES) == "kpi-stats+link"
    assert resolve_view("auto", NAMES) == "kpi-stats"
    assert resolve_view("auto", ["a", "b"]) == "columns"
    assert resolve_view("kpi-stats", LINK_NAMES) == "kpi-stats"


def test_baseline_view_is_the_deviation_from_the_median_of_the_previous_rows():
    x = table(n=40)
    view = FeatureView("kpi-stats+baseline").fit(x, NAMES)
    out = view.transform(x)
    level = FeatureView("kpi-stats").fit(x, NAMES).transform(x)
    width = level.shape[1]
    assert out.shape == (40, 2 * width) and view.feature_names_out_[width] == "baseline-rx/min"
    np.testing.assert_array_equal(out[:, :width], level)
    for i in (1, 4, 10, 25):  # the median of up to BASELINE_ROWS rows before row i, NaN ignored
        window = level[max(0, i - BASELINE_ROWS):i]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # statistics never observed (low3 of 2 columns)
            expected = level[i] - np.nanmedian(window, axis=0)
        np.testing.assert_allclose(out[i, width:], expected, rtol=1e-5, atol=1e-5)
    assert np.isnan(out[0, width:]).all()  # the first row has no history


def test_baseline_view_streams_in_chunks_like_the_whole_table():
    x = link_table(n=60)
    view = FeatureView("kpi-stats+link+baseline").fit(x, LINK_NAMES)
    whole = view.transform(x)
    # chunks shorter and longer than the window; previous may hold more rows than needed
    parts = [view.transform(x[:4]), view.transform(x[4:9], previous=x[:4]), view.transform(x[9:37], previous=x[:9]),
             view.transform(x[37:], previous=x[37 - BASELINE_ROWS:37])]
    np.testing.assert_array_equal(np.vstack(parts), whole)
    assert view.history_rows == BASELINE_ROWS and FeatureView("kpi-stats+delta").history_rows == 1


def test_direction_words_match_in_any_case_and_all_at_once():
    names = ["TX/A+l", "RX/B+l", "TX/B+l", "RX/A+l", "Tx-Out/A+m", "Rx-In/B+m", "Tx-Out/B+m", "Rx-In/A+m",
             "ifOutOctets/A+l", "ifInOctets/B+l"]
    assert list(link_pairs(names)) == ["TX>RX", "Tx-Out>Rx-In"]  # camelCase words are not split


def test_a_saved_link_view_without_links_is_a_corrupt_bundle():
    state = FeatureView("kpi-stats+link").fit(link_table(), LINK_NAMES).to_dict()
    state["feature_names_in"] = [f"col{i}" for i in range(len(LINK_NAMES))]
    with pytest.raises(ValueError, match="model bundle is corrupt"):
        FeatureView.from_dict(state)


def test_group_statistics_in_blocks_equal_one_block(monkeypatch):
    rng = np.random.default_rng(5)
    scaled = rng.normal(size=(50, 7)).astype(np.float32)
    scaled[rng.random(scaled.shape) < 0.2] = np.nan
    index = np.array([[0, 1, 2, 7], [3, 4, 5, 6]])  # two groups, the first padded with the NaN column
    sizes, constant = np.array([3, 4]), np.array([False, True, False, True, False, False, True])
    whole = views._pooled_stats(scaled, index, sizes, constant)
    monkeypatch.setattr(views, "_POOL_BLOCK", 7)
    np.testing.assert_array_equal(views._pooled_stats(scaled, index, sizes, constant), whole)
    # and by hand for one row: the mean of group 0 (columns 0-2, NaN ignored)
    observed = scaled[3, :3][~np.isnan(scaled[3, :3])]
    assert whole[3, 2] == pytest.approx(observed.mean() if observed.size else np.nan, nan_ok=True)


def test_the_median_network_sorts_every_zero_one_input():
    # the 0/1 principle (Knuth, TAOCP 5.3.4): a comparator network that sorts all 2^10 0/1 inputs sorts all inputs
    lanes = list(np.array(list(itertools.product([0, 1], repeat=10))).T)
    for a, b in _NETWORK_10:
        lanes[a], lanes[b] = np.minimum(lanes[a], lanes[b]), np.maximum(lanes[a], lanes[b])
    np.testing.assert_array_equal(np.array(lanes).T, np.sort(np.array(list(itertools.product([0, 1], repeat=10))), axis=1))


def test_the_pruned_median_steps_give_the_two_middle_values_of_every_zero_one_input():
    inputs = np.array(list(itertools.product([0, 1], repeat=10)))
    lanes = list(inputs.T)
    for a, b, low, high in _MEDIAN_STEPS:
        x, y = lanes[a], lanes[b]
        lanes[a], lanes[b] = (np.minimum(x, y) if low else None), (np.maximum(x, y) if high else None)
    np.testing.assert_array_equal(np.array([lanes[4], lanes[5]]).T, np.sort(inputs, axis=1)[:, 4:6])
    assert sum(low + high for *_, low, high in _MEDIAN_STEPS) == 50  # of 58 for the whole network


@pytest.mark.parametrize("block", [512, 7])
def test_rolling_median_network_and_sort_agree_with_gaps(block, monkeypatch):
    monkeypatch.setattr(views, "_MEDIAN_BLOCK", block)
    rng = np.random.default_rng(4)
    level = rng.normal(size=(300, 6)).astype(np.float32)
    level[rng.random(level.shape) < 0.01] = np.nan  # about half the windows have a gap: the sorted path
    past = rng.normal(size=(4, 6)).astype(np.float32)
    fast = _rolling_median(past, level)
    padded = np.concatenate([np.full((6, 6), np.nan, np.float32), past, level])
    every = np.lib.stride_tricks.sliding_window_view(padded, 10, axis=0)[:300]
    np.testing.assert_array_equal(fast, _sorted_median(every))


# ---------------------------------------------------------------- bounded features, any names, columns views


def test_a_column_constant_in_training_gives_a_bounded_feature_and_a_moved_flag():
    x = table()
    x[:, 5] = 1.0  # cpu/r2 reads 1 in every training row (an admin status that is always up)
    view = FeatureView("kpi-stats").fit(x, NAMES)
    assert view.constant_.tolist() == [False] * 5 + [True]
    assert view.iqr_[5] == pytest.approx(SPREAD_FLOOR)  # floor * max(1, |ln 2|), not float noise
    down = x[3].copy()
    down[5] = 0.0  # the status goes down at run time: ln(1) - ln(2) = -0.69 is 693 floors: clipped
    out = view.transform(np.vstack([x[3], down]))
    cpu = slice(12, 24)
    assert out[1, cpu][0] == -CLIP  # cpu/min
    assert out[0, cpu][-1] == 0 and out[1, cpu][-1] == 0.5  # moved: 1 of the group's 2 columns
    assert np.nanmax(np.abs(out)) <= CLIP  # NaN: low3 / high3 of a 2-column group


def test_no_view_feature_of_real_data_exceeds_1e3():
    """The issue's float-artifact test: KDDI's admin-status columns never move in known-class training
    rows, and held-out interface-down minutes move them (the first round's view gave about 1e13)."""
    from lossless_triplet.data import load_kddi_nfv

    train, test = load_kddi_nfv("train"), load_kddi_nfv("eval")
    known = ~np.isin(train.labels, [train.class_names.index(c) for c in ("node-down", "interface-down")])
    for name in VIEWS[1:]:
        if "+link" in name and not link_pairs(train.feature_names):
            continue
        view = FeatureView(name).fit(train.features[known], train.feature_names)
        for rows in (train.features, test.features):
            out = view.transform(rows)
            assert np.nanmax(np.abs(out)) <= 2 * CLIP < 1e3, name


@pytest.mark.parametrize("separator", [":", ".", "|"])
def test_names_with_another_separator_give_the_same_features(separator):
    from lossless_triplet.data import load_kddi_nfv

    data = load_kddi_nfv("eval")
    names = [n.replace("/", separator) if separator != "." else n.replace("/", ".").replace("+", ".")
             for n in data.feature_names]
    x = data.features[:300]
    for view_name in ("kpi-stats+link+baseline", "kpi-stats+delta"):
        slash = FeatureView(view_name).fit(x, data.feature_names)
        other = FeatureView(view_name).fit(x, names)
        assert len(other.links_) == len(slash.links_) and list(other.groups_) == list(slash.groups_)
        np.testing.assert_array_equal(other.transform(x), slash.transform(x))


def test_column_parts_read_the_usual_namings():
    assert column_parts(["rx-pps/IntGW-01+link-a", "cpu/IntGW-01"]) == [("rx-pps", "IntGW-01", "link-a"),
                                                                        ("cpu", "IntGW-01", "")]
    assert column_parts(["rx_pps.intgw01.link_a", "tx_pps.intgw02.link_a"])[0] == ("rx_pps", "intgw01", "link_a")
    assert column_parts(["kpi_00", "kpi_01"]) == [("kpi_00", "", ""), ("kpi_01", "", "")]
    pairs = link_pairs(["tx_pps.r1.l", "rx_pps.r2.l", "tx_pps.r2.l", "rx_pps.r1.l"])
    np.testing.assert_array_equal(pairs["tx_pps>rx_pps"], [[0, 1], [2, 3]])


def test_columns_view_scales_each_column_and_pooled_adds_the_statistics_of_all():
    x = table()
    view = FeatureView("columns+pooled").fit(x, NAMES)
    out = view.transform(x)
    logged = signed_log1p(x)
    q1, med, q3 = np.nanpercentile(logged, [25, 50, 75], axis=0)
    scaled = np.clip((logged - med) / (q3 - q1), -CLIP, CLIP)
    assert out.shape == (30, 6 + 12) and view.feature_names_out_[:6] == tuple(NAMES)
    np.testing.assert_allclose(out[:, :6], scaled, rtol=1e-4, atol=1e-4)
    row = scaled[7]
    np.testing.assert_allclose(out[7, 6:10], [row.min(), row.max(), row.mean(), row.std()], rtol=1e-4, atol=1e-4)
    assert view.feature_names_out_[6] == "*/min"
    base = FeatureView("columns+baseline").fit(x, NAMES).transform(x)
    np.testing.assert_allclose(base[12, 6:], out[12, :6] - np.nanmedian(out[2:12, :6], axis=0), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name, error", [("kpi-stats+foo", "unknown option"), ("pca", "must start with"),
                                         ("raw+delta", "takes no options"), ("columns+delta+delta", "repeats")])
def test_view_names_are_parsed_with_clear_errors(name, error):
    with pytest.raises(ValueError, match=error):
        FeatureView(name)


def test_view_names_are_canonical_whatever_the_order_of_options():
    assert FeatureView("kpi-stats+baseline+link").name == "kpi-stats+link+baseline"
    assert resolve_view("kpi-stats+link+delta", LINK_NAMES) == "kpi-stats+delta+link"
    # pooled alone is not a candidate: the sorted excess needs per-column features (candidate_views' docstring)
    assert candidate_views(["a", "b"], time_ordered=True) == ["columns", "columns+pooled", "columns+baseline",
                                                              "columns+pooled+baseline"]


def test_pooled_view_reads_the_same_whichever_column_moves():
    x = table()
    view = FeatureView("pooled").fit(x, NAMES)
    assert view.feature_names_out_[0] == "*/min" and len(view.feature_names_out_) == 12
    a, b = x[5].copy(), x[5].copy()
    a[0] = np.expm1(view.median_[0] + 9 * view.iqr_[0])  # column 0 moves 9 spreads up
    b[2] = np.expm1(view.median_[2] + 9 * view.iqr_[2])  # or column 2 does
    out = view.transform(np.vstack([a, b]))
    assert out[0, 1] == pytest.approx(9.0, rel=1e-3) and out[1, 1] == pytest.approx(9.0, rel=1e-3)  # */max
    with pytest.raises(ValueError, match="already pools"):
        FeatureView("pooled+pooled")


@pytest.mark.parametrize("name", ["kpi-stats+link", "columns+link+baseline", "kpi-stats+link+pooled+delta"])
def test_zero_rows_give_zero_feature_rows(name):
    from lossless_triplet.data import load_kddi_nfv

    train = load_kddi_nfv("train")
    view = FeatureView(name).fit(train.features[:200], train.feature_names)
    out = view.transform(train.features[:0])
    assert out.shape == (0, len(view.feature_names_out_))
