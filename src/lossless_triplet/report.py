"""The HTML report of a comparison: one self-contained file that opens without a network.

Metrics table, one-shot results, an interactive 3-D scatter of the test codes of
each loss, the loss curves, the training animation (when recorded), the
configuration and the credits. plotly.js is inlined once (``include_plotlyjs``
is off for each figure and the library goes into the page head), the animation
is a ``data:`` URI, and no element loads anything from the network.

Two tiny inline scripts make the page checkable by a headless browser: one
counts script errors into ``<html data-script-errors="N">``, the other writes
``<html data-plots-rendered="k/n">`` once ``k`` of the ``n`` plots have drawn.
"""

from __future__ import annotations

import base64
import html
import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs
from plotly.subplots import make_subplots

from .io import atomic_write_text
from .plots import PALETTE, axis_names, class_styles, project_to_3d, status_label, subsample_per_class

__all__ = ["METRIC_COLUMNS", "ONE_SHOT_COLUMNS", "write_report"]

# (metrics.json key, column title, tooltip, higher is better)
METRIC_COLUMNS = (
    ("precision_at_1", "P@1", "precision at 1: the nearest other test code has the same status", True),
    ("r_precision", "R-precision", "R-precision (Musgrave et al. 2020)", True),
    ("map_at_r", "MAP@R", "mean average precision at R (Musgrave et al. 2020)", True),
    ("compactness", "compactness", "within-class spread / between-centroid spread (lower is tighter)", False),
    ("final_train_loss", "final train loss", "mean batch loss of the last epoch (scales differ per loss)", None),
    ("train_seconds", "train seconds", "wall-clock seconds of the optimisation", None),
)
ONE_SHOT_COLUMNS = (
    ("one_shot_macro_f1", "one-shot macro-F1", "macro-F1 over all classes, nearest representative", True),
    ("heldout_accuracy", "held-out accuracy", "accuracy on rows of the held-out classes", True),
    ("unknown_auroc", "unknown AUROC", "AUROC of telling held-out-class rows from known ones before their "
     "signatures are added (fault memory unknown score)", True),
)
MAX_POINTS_PER_CLASS = 400  # keeps the page light while small fault classes stay visible
# matplotlib marker (plots.class_styles) -> nearest plotly 3-D symbol (scatter3d has no triangle)
_PLOTLY_SYMBOLS = {"o": "circle", "s": "square", "D": "diamond", "P": "cross", "X": "x",
                   "^": "diamond-open", "v": "square-open"}

_KDDI_CREDIT = (
    "KDDI NFV IP-core fault data: ITU AI/ML in 5G Challenge 2020, problem PS-032-KDDI, MIT licence. "
    "J. Kawasaki, G. Mouri, Y. Suzuki, &ldquo;Comparative Analysis of Network Fault Classification Using "
    "Machine Learning&rdquo;, IEEE/IFIP NOMS 2020, doi:10.1109/NOMS47738.2020.9110454."
)
_METHOD_CREDITS = (
    "Lossless triplet loss: M.-O. Arsenault, &ldquo;Lossless Triplet loss&rdquo;, 2018.",
    "Triplet margin loss: F. Schroff, D. Kalenichenko, J. Philbin, &ldquo;FaceNet&rdquo;, CVPR 2015.",
    "Contrastive loss: R. Hadsell, S. Chopra, Y. LeCun, CVPR 2006.",
    "Metrics: K. Musgrave, S. Belongie, S.-N. Lim, &ldquo;A Metric Learning Reality Check&rdquo;, ECCV 2020.",
    "Colours: M. Okabe, K. Ito, &ldquo;Color Universal Design&rdquo;, 2008 (colour-blind safe).",
    "Interactive plots: plotly.js (MIT licence), inlined in this file.",
)

_ERROR_PROBE = """<script>
document.documentElement.setAttribute("data-script-errors", "0");
window.reportErrors = [];
function reportError(message) {
  window.reportErrors.push(String(message));
  document.documentElement.setAttribute("data-script-errors", String(window.reportErrors.length));
}
window.addEventListener("error", function (e) { reportError(e.message); });
window.addEventListener("unhandledrejection", function (e) { reportError(e.reason); });
</script>"""

_RENDER_PROBE = """<script>
(function () {
  function check(triesLeft) {
    var plots = document.querySelectorAll(".plotly-graph-div");
    var drawn = 0;
    plots.forEach(function (d) { if (d.querySelector(".main-svg")) { drawn += 1; } });
    document.documentElement.setAttribute("data-plots-rendered", drawn + "/" + plots.length);
    if (drawn < plots.length && triesLeft > 0) { setTimeout(function () { check(triesLeft - 1); }, 100); }
  }
  window.addEventListener("load", function () {
    document.querySelectorAll(".plotly-graph-div").forEach(function (d) {
      if (window.Plotly && d._fullLayout) { Plotly.Plots.resize(d); }
    });
    check(100);
  });
})();
</script>"""

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1240px;
       padding: 0 24px 48px; color: #222; line-height: 1.45; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
.lead { color: #555; margin-top: 0; }
table { border-collapse: collapse; margin: 0.6em 0; font-variant-numeric: tabular-nums; }
th, td { padding: 4px 12px; border-bottom: 1px solid #e4e4e4; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f4f4f4; cursor: help; } td.best { font-weight: 700; color: #00664a; }
td.collapsed { color: #a33; cursor: help; }
tr.baseline td { color: #666; font-style: italic; }
/* auto-fill, not auto-fit: a plot drawn before its neighbours exist must already get its final width */
.grid { display: grid; grid-template-columns: repeat(auto-fill, minmax(560px, 1fr)); gap: 12px; }
.note { color: #555; font-size: 0.92em; }
img.animation { max-width: 100%; border: 1px solid #ddd; }
pre { background: #f7f7f7; padding: 10px; overflow-x: auto; font-size: 0.85em; }
"""


def _fmt(value, digits: int = 3) -> str:
    return "&ndash;" if value is None else f"{value:.{digits}f}"


SATURATED = 0.9  # share of code units at 0 or 1 above which a code's geometry is its saturation


def collapsed(metrics: Mapping) -> bool:
    """Whether a loss's code collapsed (fewer distinct codes than classes) or saturated (most units at
    exactly 0 or 1): its compactness then measures the corners, not learning, and is never "best"."""
    return bool(metrics.get("collapsed")) or (metrics.get("saturated_share") or 0.0) >= SATURATED


def _table(rows: Sequence[tuple[str, Mapping, bool]], columns, *, with_std: bool = False) -> str:
    """rows: (name, metrics, is_baseline); the best trained value of each ranked column is bold, except
    the compactness of a collapsed or saturated code (marked so instead)."""
    best = {}
    for key, _, _, higher in columns:
        values = [m.get(key) for _, m, baseline in rows if not baseline and m.get(key) is not None
                  and not (key == "compactness" and collapsed(m))]
        if higher is not None and values:
            best[key] = max(values) if higher else min(values)
    head = "".join(f'<th title="{html.escape(tip)}">{html.escape(title)}</th>' for _, title, tip, _ in columns)
    body = []
    for name, metrics, baseline in rows:
        cells = []
        for key, _, _, _ in columns:
            value = metrics.get(key)
            text = _fmt(value)
            if with_std and value is not None and metrics.get(f"{key}_std") is not None:
                text += f" &plusmn; {_fmt(metrics[f'{key}_std'])}"
            if key == "compactness" and not baseline and collapsed(metrics):
                cells.append(f'<td class="collapsed" title="the code collapsed or saturated '
                             f'({_fmt(metrics.get("saturated_share"), 2)} of units at 0 or 1): not a tight '
                             f'clustering">{text} (collapsed)</td>')
                continue
            bold = not baseline and value is not None and best.get(key) == value
            cells.append(f'<td class="best">{text}</td>' if bold else f"<td>{text}</td>")
        row_class = ' class="baseline"' if baseline else ""
        body.append(f"<tr{row_class}><td>{html.escape(name)}</td>{''.join(cells)}</tr>")
    return f"<table><thead><tr><th>loss</th>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _metric_rows(metrics: Mapping) -> list[tuple[str, Mapping, bool]]:
    rows = [(name, m, False) for name, m in metrics.get("losses", {}).items()]
    rows += [(f"{name} (no training)", m, True) for name, m in metrics.get("baselines", {}).items()]
    return rows


def _scatter_figure(name: str, codes: np.ndarray, labels: np.ndarray, class_names: Sequence[str],
                    holdout: Sequence[str]):

    points, note = project_to_3d(codes)
    rows = subsample_per_class(labels, MAX_POINTS_PER_CLASS, seed=0)
    counts = np.bincount(labels, minlength=len(class_names))
    fig = go.Figure()
    for c, (colour, marker) in enumerate(class_styles(class_names)):
        mine = rows[labels[rows] == c]
        if len(mine) == 0:
            continue
        label = status_label(class_names[c], counts[c], holdout)
        x, y, z = np.round(points[mine], 4).T
        fig.add_trace(go.Scatter3d(
            x=x, y=y, z=z, mode="markers", name=label,
            marker={"size": 3, "color": colour, "symbol": _PLOTLY_SYMBOLS.get(marker, "circle"), "opacity": 0.8},
            hovertemplate=f"{html.escape(class_names[c])}<br>%{{x:.3f}}, %{{y:.3f}}, %{{z:.3f}}<extra></extra>",
        ))
    x_title, y_title, z_title = axis_names(codes.shape[1])
    fig.update_layout(
        title={"text": f"{html.escape(name)} loss<br><sub>{html.escape(note)}</sub>", "x": 0.02},
        height=560, margin={"l": 0, "r": 0, "t": 60, "b": 10},
        # a vertical legend beside the scene: every status shows whatever its name's length (a horizontal
        # legend under the scene wrapped and was cut off)
        legend={"title": {"text": "status (test rows)"}, "itemsizing": "constant", "font": {"size": 12},
                "orientation": "v", "x": 1.0, "xanchor": "right", "y": 1.0, "yanchor": "top"},
        scene={"xaxis_title": x_title, "yaxis_title": y_title, "zaxis_title": z_title,
               "camera": {"eye": {"x": 1.6, "y": -1.6, "z": 1.0}}, "domain": {"x": [0, 0.68], "y": [0, 1]}},
        font={"size": 13},
    )
    return fig


def _confusion_figure(name: str, confusion: Mapping):
    """Heatmap of one loss's one-shot confusion: colour = share of the true status's rows (row-normalised),
    text = mean count over the draws."""

    counts = np.asarray(confusion["counts"], dtype=np.float64)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1e-12)
    fig = go.Figure(go.Heatmap(
        z=np.round(share, 3), x=list(confusion["predicted"]), y=list(confusion["true"]), zmin=0, zmax=1,
        colorscale="Blues", text=np.round(counts, 1), texttemplate="%{text}", colorbar={"title": {"text": "share"}},
        hovertemplate="true %{y}<br>predicted %{x}<br>%{text} rows (%{z:.0%} of the true status)<extra></extra>"))
    fig.update_layout(title={"text": f"{html.escape(name)} loss: one-shot confusion", "x": 0.02}, height=420,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, xaxis={"title": "predicted", "side": "bottom"},
                      yaxis={"title": "true", "autorange": "reversed"}, font={"size": 12})
    return fig


def _evidence_table(by_status: Mapping[str, Sequence[Mapping]]) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(status)}</td><td>"
        + "<br>".join(f"{html.escape(e['column'])} ({e['share']:.0%})" for e in entries) + "</td></tr>"
        for status, entries in by_status.items())
    return f"<table><thead><tr><th>true status</th><th>columns most often in the top-3 evidence (share of " \
           f"its rows)</th></tr></thead><tbody>{rows}</tbody></table>"


def _curves_figure(histories: Mapping[str, Mapping[str, Sequence[float]]]):

    names = list(histories)
    fig = make_subplots(rows=1, cols=len(names), subplot_titles=[html.escape(n) for n in names],
                        horizontal_spacing=0.06)
    for i, name in enumerate(names, start=1):
        history = histories[name]
        fig.add_trace(go.Scatter(x=history["epoch"], y=history["train_loss"], mode="lines+markers",
                                 name="train", legendgroup="train", showlegend=i == 1,
                                 line={"color": PALETTE[5]}), row=1, col=i)
        if history.get("test_loss"):
            fig.add_trace(go.Scatter(x=history["epoch"], y=history["test_loss"], mode="lines+markers",
                                     name="test", legendgroup="test", showlegend=i == 1,
                                     line={"color": PALETTE[3], "dash": "dash"}), row=1, col=i)
        fig.add_hline(y=0.0, line={"color": "grey", "width": 1}, row=1, col=i)
        fig.update_xaxes(title_text="epoch", dtick=1 if len(history["epoch"]) <= 15 else None, row=1, col=i)
    fig.update_yaxes(title_text="loss (batch-all mean)", row=1, col=1)
    fig.update_layout(height=340, margin={"l": 60, "r": 20, "t": 40, "b": 50}, font={"size": 13},
                      legend={"orientation": "h", "y": -0.25})
    return fig


def _config_rows(config: Mapping, prefix: str = "") -> list[tuple[str, str]]:
    rows = []
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += _config_rows(value, f"{name}.")
        else:
            rows.append((name, json.dumps(value)))
    return rows


def _plot_div(fig, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False, "responsive": True})


def write_report(
    path: str | Path,
    metrics: Mapping,
    test_codes: Mapping[str, np.ndarray],
    test_labels: np.ndarray,
    class_names: Sequence[str],
    histories: Mapping[str, Mapping[str, Sequence[float]]],
    *,
    animation_gif: str | Path | None = None,
) -> Path:
    """Write the self-contained HTML report of one comparison run.

    Args:
        path: the ``.html`` file to write.
        metrics: the metrics.json document (DESIGN.md schema; ``config`` and
            ``baselines`` are shown when present).
        test_codes: loss name -> (n, N) float codes of the test rows.
        test_labels: (n,) int class ids indexing class_names.
        class_names: one name per class.
        histories: loss name -> history with ``epoch``, ``train_loss`` and
            optionally ``test_loss`` lists.
        animation_gif: the training animation to embed (as a data URI), if any.

    Returns:
        The path written (about 5 MB: plotly.js is most of it).

    Raises:
        ValueError: no codes, or codes whose row count differs from test_labels.
        FileNotFoundError: animation_gif given but missing.
    """

    test_labels = np.asarray(test_labels, dtype=np.int64)
    if not test_codes:
        raise ValueError("no test codes to show: pass at least one loss")
    for name, codes in test_codes.items():
        if np.ndim(codes) != 2 or len(codes) != len(test_labels):
            raise ValueError(f"{name}: codes of shape {np.shape(codes)} do not match {len(test_labels)} test labels")
    dataset = str(metrics.get("dataset", "table"))
    holdout = list(metrics.get("holdout", []))
    config = metrics.get("config", {})
    train_config = config.get("train", {})
    width = next(iter(test_codes.values())).shape[1]

    parts = [f"<h1>lossless-triplet: {html.escape(dataset)}</h1>",
             f'<p class="lead">{len(test_codes)} losses compared under one protocol: code width N = {width}, '
             f"{train_config.get('epochs', '?')} epochs of {train_config.get('steps_per_epoch', '?')} steps, "
             f"view {html.escape(str(config.get('view', '?')))}, {len(test_labels)} test rows, classes: "
             f"{html.escape(', '.join(class_names))}.</p>"]
    parts += ["<h2>Metrics</h2>",
              '<p class="note">Each test code queried against the other test codes; best trained value in bold; '
              "italic rows are the standardised features without training. Hover a column title for its "
              "definition.</p>",
              _table(_metric_rows(metrics), METRIC_COLUMNS)]
    held = ", ".join(holdout) if holdout else "none"
    parts += ["<h2>One-shot recognition</h2>",
              f'<p class="note">Held-out classes (removed from training): <b>{html.escape(held)}</b>. Each '
              "known class is represented by the centroid of its training codes, each held-out class by ONE "
              "random training example; every test row gets the nearest representative. Mean &plusmn; standard "
              f"deviation over {config.get('n_draws', '?')} seeded draws.</p>",
              _table(_metric_rows(metrics), ONE_SHOT_COLUMNS, with_std=True)]
    parts += ["<h2>Codes of the test rows</h2>",
              '<p class="note">Drag to turn, scroll to zoom, click a status in the legend to hide it. At most '
              f"{MAX_POINTS_PER_CLASS} rows per status are drawn (seeded); the legend gives every status's "
              "row count.</p>",
              '<div class="grid">']
    parts += [_plot_div(_scatter_figure(name, np.asarray(codes), test_labels, class_names, holdout),
                        f"scatter-{i}") for i, (name, codes) in enumerate(test_codes.items())]
    parts.append("</div>")
    confusions = [(name, m["one_shot_confusion"]) for name, m in metrics.get("losses", {}).items()
                  if m.get("one_shot_confusion")]
    if confusions:
        parts += ["<h2>One-shot confusion</h2>", '<p class="note">Per loss: rows are the true statuses of the test rows, '
                  "columns the predicted ones; the number is the mean row count over the draws, the colour its "
                  "share of the true status's rows.</p>", '<div class="grid">']
        parts += [_plot_div(_confusion_figure(name, confusion), f"confusion-{i}")
                  for i, (name, confusion) in enumerate(confusions)]
        parts.append("</div>")
    if metrics.get("evidence_by_status"):
        parts += ["<h2>Evidence by status</h2>",
                  '<p class="note">For every test row, the three columns that deviate most from the training rows '
                  "of the normal status (and from the row's last 10 minutes on time-ordered tables; a cell that "
                  "stopped reporting counts most): the KPIs an operator reads first for each status.</p>",
                  _evidence_table(metrics["evidence_by_status"])]
    parts.append("<h2>Training</h2>")
    if histories:
        parts.append(_plot_div(_curves_figure(histories), "loss-curves"))
    if animation_gif is not None:
        data = base64.b64encode(Path(animation_gif).read_bytes()).decode("ascii")
        parts += ['<p class="note">Codes of a fixed sample of test rows during training, one panel per loss.</p>',
                  f'<img class="animation" alt="training animation" src="data:image/gif;base64,{data}">']
    config_rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{html.escape(v)}</td></tr>"
                          for k, v in _config_rows(config))
    parts += ["<h2>Configuration</h2>", f"<table><tbody>{config_rows}</tbody></table>",
              "<details><summary>metrics.json</summary><pre>"
              f"{html.escape(json.dumps(metrics, indent=2))}</pre></details>"]
    data_credit = _KDDI_CREDIT if dataset == "kddi-nfv" else (
        f"Data: {html.escape(dataset)} (a user-supplied table; its source is not recorded in the run).")
    parts += ["<h2>Credits</h2>", f"<p>{data_credit}</p>",
              "<ul>" + "".join(f"<li>{c}</li>" for c in _METHOD_CREDITS) + "</ul>"]

    page = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>lossless-triplet report: {html.escape(dataset)}</title>\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<style>{_CSS}</style>\n{_ERROR_PROBE}\n"
        f'<script type="text/javascript">{get_plotlyjs()}</script>\n</head>\n<body>\n'
        + "\n".join(parts) + f"\n{_RENDER_PROBE}\n</body>\n</html>\n"
    )
    path = Path(path)
    atomic_write_text(path, page)
    return path
