"""The training animation: codes of a fixed sample of test rows, epoch by epoch, one panel per loss.

:class:`CodeRecorder` hooks into :func:`~lossless_triplet.pipeline.compare.compare_losses`
(its ``on_epoch_factory``) and records the codes of a fixed, class-balanced
sample of test rows at chosen epochs; the result is a :class:`Recording`, which
saves to and loads from ``animation.npz`` (plain arrays, no pickle), and
:func:`write_training_gif` turns it into ``training.gif``: the seed's side-by-side
view of the standard and the lossless triplet loss learning, with a slowly
turning 3-D view.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import MaxNLocator
from PIL import Image

from .io import written_at_end
from .models import encode
from .plots import axis_names, class_styles, draw_status_scatter, project_to_3d, status_label, subsample_per_class

__all__ = ["CodeRecorder", "Recording", "snapshot_epochs", "write_training_gif"]

MAX_FRAMES = 40  # keeps the GIF a few MB: small enough to attach to a ticket
MIN_FRAMES = 20  # a short budget (6 epochs) still turns smoothly: extra frames rotate the view


def snapshot_epochs(epochs: int, max_snapshots: int = 30) -> np.ndarray:
    """Epochs at which to record codes: evenly spread over 1..epochs, always the last one.

    Shape:
        output (min(epochs, max_snapshots),) int64, increasing.

    Raises:
        ValueError: epochs or max_snapshots < 1.
    """
    if epochs < 1 or max_snapshots < 1:
        raise ValueError(f"epochs={epochs} and max_snapshots={max_snapshots} must be >= 1")
    return np.unique(np.round(np.linspace(1, epochs, min(epochs, max_snapshots))).astype(np.int64))


@dataclass
class Recording:
    """Codes of a fixed sample of test rows at some epochs, for every loss.

    Attributes:
        class_names: one name per class.
        labels: (n,) int64 class ids of the sampled rows.
        rows: (n,) int64 indices of the sampled rows in the test table.
        epochs: (T,) int64 epochs recorded (1-based, after the epoch's training).
        total_epochs: epochs of the whole run.
        codes: loss name -> (T, n, N) float32 codes.
        train_loss: loss name -> (T,) float64 mean training loss of each recorded epoch.
        test_loss: loss name -> (T,) float64 test loss (NaN when not measured).
    """

    class_names: tuple[str, ...]
    labels: np.ndarray
    rows: np.ndarray
    epochs: np.ndarray
    total_epochs: int
    codes: dict[str, np.ndarray]
    train_loss: dict[str, np.ndarray]
    test_loss: dict[str, np.ndarray]

    @property
    def losses(self) -> list[str]:
        """Loss names, in recording order."""
        return list(self.codes)

    def save(self, path: str | Path) -> Path:
        """Write the recording as ``.npz`` of plain arrays (readable with ``allow_pickle=False``).

        Raises:
            ValueError: nothing was recorded.
        """
        if not self.codes:
            raise ValueError("nothing recorded: train at least one loss with the recorder's callback")
        names = self.losses
        path = Path(path)
        with written_at_end(path) as tmp, tmp.open("wb") as handle:
            np.savez_compressed(
                handle,
                losses=np.array(names, dtype=str),
                class_names=np.array(self.class_names, dtype=str),
                labels=self.labels,
                rows=self.rows,
                epochs=self.epochs,
                total_epochs=np.int64(self.total_epochs),
                codes=np.stack([self.codes[n] for n in names]).astype(np.float32),
                train_loss=np.stack([self.train_loss[n] for n in names]),
                test_loss=np.stack([self.test_loss[n] for n in names]),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> Recording:
        """Read a recording written by :meth:`save`.

        Raises:
            FileNotFoundError: no such file.
            ValueError: the file lacks an array of the format (names it).
        """
        with np.load(Path(path), allow_pickle=False) as data:
            missing = {"losses", "class_names", "labels", "rows", "epochs", "total_epochs", "codes",
                       "train_loss", "test_loss"} - set(data.files)
            if missing:
                raise ValueError(f"{path} is not an animation recording: it lacks {sorted(missing)}")
            names = [str(n) for n in data["losses"]]
            return cls(
                class_names=tuple(str(c) for c in data["class_names"]),
                labels=data["labels"].astype(np.int64),
                rows=data["rows"].astype(np.int64),
                epochs=data["epochs"].astype(np.int64),
                total_epochs=int(data["total_epochs"]),
                codes={n: data["codes"][i] for i, n in enumerate(names)},
                train_loss={n: data["train_loss"][i] for i, n in enumerate(names)},
                test_loss={n: data["test_loss"][i] for i, n in enumerate(names)},
            )


class CodeRecorder:
    """Records the codes of a fixed, class-balanced sample of test rows during training.

    Pass :meth:`factory` as ``on_epoch_factory`` to
    :func:`~lossless_triplet.pipeline.compare.compare_losses`; every loss then sees the
    same rows at the same epochs, and :meth:`recording` returns what was seen.

    Args:
        test_labels: (n_test,) int class ids of the whole test table.
        class_names: one name per class.
        epochs: epochs of the training run.
        max_snapshots: at most this many recorded epochs (see :func:`snapshot_epochs`).
        per_class: at most this many sampled rows per class.
        seed: seeds the sample.

    Raises:
        ValueError: empty labels, or epochs / max_snapshots / per_class < 1.
    """

    def __init__(self, test_labels: np.ndarray, class_names: Sequence[str], *, epochs: int,
                 max_snapshots: int = 30, per_class: int = 60, seed: int = 0) -> None:
        test_labels = np.asarray(test_labels, dtype=np.int64)
        if test_labels.ndim != 1 or len(test_labels) == 0:
            raise ValueError(f"test_labels must be a non-empty (n,) array, got shape {test_labels.shape}")
        if per_class < 1:
            raise ValueError(f"per_class={per_class} must be >= 1")
        self.class_names = tuple(class_names)
        self.epochs = int(epochs)
        self.rows_ = subsample_per_class(test_labels, per_class, seed)
        self.labels_ = test_labels[self.rows_]
        self.epochs_ = snapshot_epochs(self.epochs, max_snapshots)
        self._codes: dict[str, list[np.ndarray]] = {}
        self._train_loss: dict[str, list[float]] = {}
        self._test_loss: dict[str, list[float]] = {}

    def factory(self, loss_name: str, test_features: np.ndarray) -> Callable:
        """The ``on_epoch(epoch, model, record)`` callback recording ``loss_name``.

        Args:
            loss_name: key of this loss in the recording.
            test_features: (n_test, F) scaled features of the whole test table, as
                fed to the encoder.

        Raises:
            ValueError: test_features has fewer rows than the sample needs.
        """

        if len(test_features) <= self.rows_.max():
            raise ValueError(f"test_features has {len(test_features)} rows; the recorder's labels had more")
        sample = np.asarray(test_features, dtype=np.float32)[self.rows_]
        wanted = set(self.epochs_.tolist())
        codes = self._codes[loss_name] = []
        train_loss = self._train_loss[loss_name] = []
        test_loss = self._test_loss[loss_name] = []

        def on_epoch(epoch: int, model, record: Mapping[str, float]) -> None:
            if epoch not in wanted:
                return
            codes.append(encode(model, sample))
            train_loss.append(float(record["train_loss"]))
            test_loss.append(float(record.get("test_loss", math.nan)))

        return on_epoch

    def recording(self) -> Recording:
        """What was recorded, as a :class:`Recording`.

        Raises:
            ValueError: a loss stopped before its last snapshot epoch, or nothing was recorded.
        """
        if not self._codes:
            raise ValueError("nothing recorded: pass recorder.factory as on_epoch_factory")
        for name, codes in self._codes.items():
            if len(codes) != len(self.epochs_):
                raise ValueError(f"{name}: recorded {len(codes)} of {len(self.epochs_)} snapshot epochs")
        return Recording(
            class_names=self.class_names,
            labels=self.labels_,
            rows=self.rows_,
            epochs=self.epochs_,
            total_epochs=self.epochs,
            codes={n: np.stack(c) for n, c in self._codes.items()},
            train_loss={n: np.asarray(v, dtype=np.float64) for n, v in self._train_loss.items()},
            test_loss={n: np.asarray(v, dtype=np.float64) for n, v in self._test_loss.items()},
        )


def _frame_plan(n_snapshots: int) -> list[int]:
    """Snapshot index shown by each frame: every snapshot (at most MAX_FRAMES of them, last kept),
    each repeated so that there are at least MIN_FRAMES frames."""
    shown = np.unique(np.round(np.linspace(0, n_snapshots - 1, min(n_snapshots, MAX_FRAMES))).astype(int))
    repeat = max(1, min(math.ceil(MIN_FRAMES / len(shown)), MAX_FRAMES // len(shown)))
    return [int(i) for i in shown for _ in range(repeat)]


def _panel_points(codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """All snapshots of one loss in one 3-D frame (a PCA fitted once, on the last snapshot, for
    N > 3): (T, n, 3) points and (2, 3) axis limits."""
    t, n, width = codes.shape
    points, _ = project_to_3d(codes.reshape(t * n, width), reference=codes[-1] if width > 3 else None)
    points = points.reshape(t, n, 3)
    if width <= 3:
        return points, np.array([[0.0] * 3, [1.0] * 3])  # sigmoid codes live in [0, 1]^N
    low, high = points.reshape(-1, 3).min(axis=0), points.reshape(-1, 3).max(axis=0)
    pad = 0.05 * np.maximum(high - low, 1e-6)
    return points, np.stack([low - pad, high + pad])


def _layout(n_panels: int) -> tuple[int, int]:
    """(rows, columns): one row up to 4 panels, then two rows; from 2 panels on, wider than tall."""
    return (1, n_panels) if n_panels <= 4 else (2, math.ceil(n_panels / 2))


def write_training_gif(recording: Recording, path: str | Path, *, panel_px: int = 400,
                       frame_ms: int = 180, hold_ms: int = 2000, swing_degrees: float = 50.0,
                       holdout: Collection[str] = ()) -> Path:
    """Write the side-by-side training animation as a GIF.

    One panel per loss: a 3-D scatter of the recorded codes coloured by status,
    the view swinging slowly to and fro (``swing_degrees`` from side to side),
    and the epoch shown and its training loss in the panel title. Short runs get
    several frames per recorded epoch (the view keeps turning, the title keeps
    the true epoch), so there are always between 20 and 40 frames. N > 3 codes are
    projected with a PCA fitted once on the final codes of that loss (said on the
    panel). Frames are drawn with matplotlib's Agg canvas and share one
    256-colour palette.

    Args:
        recording: what :class:`CodeRecorder` recorded (or :meth:`Recording.load`).
        path: the ``.gif`` to write.
        panel_px: width of one panel in pixels (panels are square).
        frame_ms, hold_ms: display time of a frame, and of the last frame.
        swing_degrees: how far the view turns, side to side.
        holdout: class names to mark "held out" in the legend.

    Returns:
        The path written.

    Raises:
        ValueError: an empty recording.
    """

    names = recording.losses
    if not names or len(recording.epochs) == 0:
        raise ValueError("the recording is empty: nothing to animate")
    panels = {name: _panel_points(recording.codes[name]) for name in names}
    plan = _frame_plan(len(recording.epochs))
    n_rows, n_cols = _layout(len(names))
    dpi = 100
    styles = class_styles(recording.class_names)
    present = np.unique(recording.labels)
    legend_columns = min(len(present), 2 * n_cols + 1)
    legend_rows = math.ceil(len(present) / legend_columns)
    legend_px = 28 + 20 * legend_rows
    fig = Figure(figsize=(n_cols * panel_px / dpi, (n_rows * panel_px + legend_px) / dpi), dpi=dpi)
    canvas = FigureCanvasAgg(fig)
    axes = [fig.add_subplot(n_rows, n_cols, i + 1, projection="3d") for i in range(len(names))]
    width = next(iter(recording.codes.values())).shape[-1]
    note = f"\nPCA of the N = {width} code, fitted at epoch {recording.epochs[-1]}" if width > 3 else ""
    title_px = 66 if note else 50
    fig.subplots_adjust(left=0.0, right=0.97, top=1 - title_px / (fig.get_figheight() * dpi),
                        bottom=legend_px / (fig.get_figheight() * dpi),
                        wspace=0.05, hspace=0.15)
    fig.legend(handles=[Line2D([], [], linestyle="", marker=styles[c][1], color=styles[c][0], markersize=7,
                               label=status_label(recording.class_names[c], holdout=holdout)) for c in present],
               loc="lower center", ncol=legend_columns, fontsize=9, frameon=False, handletextpad=0.2,
               columnspacing=1.2, title=f"status of {len(recording.labels)} sampled test rows",
               title_fontsize=9)
    for ax, name in zip(axes, names):
        limits = panels[name][1]
        ax.set_xlim(limits[:, 0])
        ax.set_ylim(limits[:, 1])
        ax.set_zlim(limits[:, 2])
        for axis, label in zip((ax.xaxis, ax.yaxis, ax.zaxis), axis_names(width)):
            axis.set_major_locator(MaxNLocator(2 if width <= 3 else 3))  # few ticks: legible, cheap
            axis.set_label_text(label, fontsize=9)
            axis.labelpad = -2 if width <= 3 else 4
        ax.tick_params(labelsize=8, pad=0)
        ax.set_box_aspect(None, zoom=0.9)  # keeps the turning box and its labels inside the panel
    frames = []
    for frame, snapshot in enumerate(plan):
        # a swing, not a full turn: never edge-on (azimuth 0 or -90), and the GIF loops without a jump
        azimuth = -55 + 0.5 * swing_degrees * math.sin(2 * math.pi * frame / len(plan))
        for ax, name in zip(axes, names):
            for artist in list(ax.collections):
                artist.remove()
            draw_status_scatter(ax, panels[name][0][snapshot], recording.labels, recording.class_names,
                                marker_size=10)
            ax.view_init(elev=22, azim=azimuth)
            loss_value = recording.train_loss[name][snapshot]
            ax.set_title(f"{name} loss\nepoch {recording.epochs[snapshot]}/{recording.total_epochs}, "
                         f"train loss {loss_value:.4g}{note}", fontsize=10)
        canvas.draw()
        frames.append(Image.fromarray(np.asarray(canvas.buffer_rgba())[..., :3]))
    palette = _shared_palette(frames)
    quantised = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    durations = [frame_ms] * (len(quantised) - 1) + [hold_ms]
    path = Path(path)
    with written_at_end(path) as tmp:
        quantised[0].save(tmp, save_all=True, append_images=quantised[1:], duration=durations, loop=0,
                          optimize=False, disposal=1)
    return path


def _shared_palette(frames: list) -> object:
    """One 256-colour palette for every frame (quantised from a first / middle / last montage),
    so colours do not flicker between frames."""

    picks = [frames[0], frames[len(frames) // 2], frames[-1]]
    montage = Image.new("RGB", (picks[0].width, picks[0].height * len(picks)))
    for i, frame in enumerate(picks):
        montage.paste(frame, (0, i * frame.height))
    return montage.quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
