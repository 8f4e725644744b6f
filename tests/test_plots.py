"""Figures and the animation's pieces: projection, sampling, recording, frame plan."""

import numpy as np
import pytest
import torch
from PIL import Image

from lossless_triplet.animation import MAX_FRAMES, MIN_FRAMES, CodeRecorder, Recording, _frame_plan, snapshot_epochs
from lossless_triplet.plots import (
    PALETTE,
    axis_names,
    class_styles,
    plot_embeddings,
    plot_loss_curves,
    project_to_3d,
    status_label,
    subsample_per_class,
)


def test_normal_is_green_and_styles_are_distinct():
    names = ["normal"] + [f"fault-{i}" for i in range(20)]
    styles = class_styles(names)
    assert styles[0] == (PALETTE[0], "o")
    assert status_label("node-down", 140, ["node-down"]) == "node-down (140, held out)"
    assert status_label("normal") == "normal"
    assert len(set(styles)) == len(names)


def test_pca_fitted_on_a_reference_gives_shared_axes():
    rng = np.random.default_rng(0)
    final = rng.random((50, 6))
    early = rng.random((50, 6))
    points, note = project_to_3d(early, reference=final)
    again, _ = project_to_3d(np.concatenate([early, final]), reference=final)
    assert points.shape == (50, 3)
    np.testing.assert_allclose(again[:50], points)
    assert "PCA" in note and "final" in note
    own, note_own = project_to_3d(final)
    np.testing.assert_allclose(own, again[50:])
    assert "final" not in note_own
    assert project_to_3d(early[:, :3])[0].shape == (50, 3)
    assert project_to_3d(early[:, :2])[0][:, 2].tolist() == [0.0] * 50
    with pytest.raises(ValueError, match="reference"):
        project_to_3d(early, reference=final[:, :4])
    assert axis_names(6) == ("PC 1", "PC 2", "PC 3") and axis_names(3)[0] == "code 1"


def test_subsample_keeps_small_classes_whole():
    labels = np.array([0] * 1000 + [1] * 5 + [2] * 30)
    rows = subsample_per_class(labels, 20, seed=1)
    assert np.bincount(labels[rows]).tolist() == [20, 5, 20]
    assert np.all(np.diff(rows) > 0)
    np.testing.assert_array_equal(rows, subsample_per_class(labels, 20, seed=1))


def test_snapshot_epochs_and_frame_plan():
    assert snapshot_epochs(6).tolist() == [1, 2, 3, 4, 5, 6]
    many = snapshot_epochs(100, max_snapshots=30)
    assert len(many) == 30 and many[0] == 1 and many[-1] == 100
    with pytest.raises(ValueError):
        snapshot_epochs(0)
    for n_snapshots in (1, 2, 6, 7, 19, 20, 30, 41, 200):
        plan = _frame_plan(n_snapshots)
        assert 10 <= MIN_FRAMES <= len(plan) <= MAX_FRAMES
        assert plan == sorted(plan) and plan[-1] == n_snapshots - 1


class _Shift(torch.nn.Module):
    """A stand-in encoder whose codes move with the epoch, so snapshots differ."""

    embedding_dim = 4

    def __init__(self):
        super().__init__()
        self.epoch = 0

    def forward(self, x):
        return torch.sigmoid(x[:, :4] + self.epoch)


def test_recorder_records_a_fixed_sample_at_chosen_epochs(tmp_path):
    labels = np.array([0] * 300 + [1] * 10 + [2] * 40)
    features = np.random.default_rng(0).normal(size=(len(labels), 7)).astype(np.float32)
    recorder = CodeRecorder(labels, ["normal", "x", "y"], epochs=5, max_snapshots=3, per_class=25)
    model = _Shift()
    for loss in ("triplet", "lossless"):
        on_epoch = recorder.factory(loss, features)
        for epoch in range(1, 6):
            model.epoch = epoch
            on_epoch(epoch, model, {"epoch": epoch, "train_loss": 1.0 / epoch})
    recording = recorder.recording()
    assert recording.epochs.tolist() == [1, 3, 5]
    assert np.bincount(recording.labels).tolist() == [25, 10, 25]
    np.testing.assert_array_equal(recording.labels, labels[recording.rows])
    assert recording.codes["lossless"].shape == (3, 60, 4)
    assert recording.train_loss["triplet"].tolist() == [1.0, 1 / 3, 1 / 5]
    assert np.isnan(recording.test_loss["triplet"]).all()
    model.epoch = 5
    np.testing.assert_allclose(recording.codes["triplet"][-1],
                               model(torch.from_numpy(features[recording.rows])).detach().numpy(), rtol=1e-6)

    path = recording.save(tmp_path / "animation.npz")
    with np.load(path, allow_pickle=False) as data:
        assert data["codes"].dtype == np.float32
    loaded = Recording.load(path)
    assert loaded.losses == ["triplet", "lossless"] and loaded.class_names == ("normal", "x", "y")
    assert loaded.total_epochs == 5
    np.testing.assert_array_equal(loaded.codes["lossless"], recording.codes["lossless"])


def test_recorder_refuses_an_unfinished_run():
    recorder = CodeRecorder(np.array([0, 1, 0, 1]), ["a", "b"], epochs=3)
    with pytest.raises(ValueError, match="nothing recorded"):
        recorder.recording()
    on_epoch = recorder.factory("triplet", np.zeros((4, 4), dtype=np.float32))
    on_epoch(1, _Shift(), {"train_loss": 1.0})
    with pytest.raises(ValueError, match="1 of 3"):
        recorder.recording()


def test_static_figures_are_legible_sizes(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 50)
    codes = rng.random((150, 5)).astype(np.float32)
    png = plot_embeddings(codes, labels, ["normal", "a", "b"], tmp_path / "e.png", title="t")
    with Image.open(png) as image:
        assert image.width >= 600 and image.height >= 500
    history = {"epoch": [1, 2, 3], "train_loss": [3.0, 2.0, 1.0], "test_loss": [3.1, 2.2, 1.4]}
    curves = plot_loss_curves({"triplet": history, "lossless": history}, tmp_path / "c.png")
    with Image.open(curves) as image:
        assert image.width > image.height
