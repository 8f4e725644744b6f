"""Forward + backward speed and peak memory of the batch losses, against pytorch-metric-learning.

Run by hand (not part of the test suite), from the repository root:

    python benchmarks/loss_speed.py                      # CPU, 2 threads, writes benchmarks/results.md
    python benchmarks/loss_speed.py --device cuda        # on a GPU
    python benchmarks/loss_speed.py --sizes 256,1024 --no-write

For B in {256, 1024, 4096, 16384}, N = 16, 10 classes (random labels), one
process and the same tensors for every method, it measures the median wall
time of one forward + backward and its peak memory:

- ``floor``: one materialised B x B squared-distance matrix (Gram expansion),
  summed, forward and backward: the least any O(B^2) pairwise loss can cost;
- this project's ``LosslessTripletLoss``, ``LinearLosslessTripletLoss`` and
  ``TripletMarginLoss`` (batch-all), and ``TripletMarginLoss(mining="hard")``;
- pytorch-metric-learning's ``TripletMarginLoss`` on all triplets, and with its
  ``BatchHardMiner``, configured to compute the same loss (squared Euclidean
  distance on the raw codes, margin 0.2, mean over triplets; the script checks
  that the values agree).

Peak memory is the peak resident set size above the level before the call
(sampled every 1 ms during a first, untimed call) on CPU, ``torch.cuda.max_memory_allocated`` above the
level before the call on CUDA. A method whose estimated memory exceeds half of
what is available is reported as such, not run. The whole-process peak RSS of
the lossless loss alone at the largest B is measured in a fresh subprocess.

The results replace only the section between ``<!-- loss_speed:start -->`` and
``<!-- loss_speed:end -->`` of ``benchmarks/results.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

from lossless_triplet.losses import LinearLosslessTripletLoss, LosslessTripletLoss, TripletMarginLoss

START, END = "<!-- loss_speed:start -->", "<!-- loss_speed:end -->"
RESULTS = Path(__file__).with_name("results.md")
N_DIM, N_CLASSES, MARGIN = 16, 10, 0.2
TIME_BUDGET_S = 20.0  # per (method, B): fewer repeats for slow methods


# ----------------------------------------------------------------------------- methods


def floor(x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    sq = x.pow(2).sum(dim=1, keepdim=True)
    return (sq + sq.T - 2.0 * (x @ x.T)).clamp_min(0.0).sum()


def _pml():
    try:
        from pytorch_metric_learning import distances, losses, miners, reducers
    except ImportError:
        return None
    distance = distances.LpDistance(normalize_embeddings=False, p=2, power=2)
    loss = losses.TripletMarginLoss(margin=MARGIN, distance=distance, reducer=reducers.MeanReducer())
    miner = miners.BatchHardMiner(distance=distance)
    return loss, miner


@dataclass
class Method:
    name: str
    fn: object
    # Bytes it needs for a batch: (B, n_triplets, element size) -> bytes.
    memory: object = lambda b, t, e: 2**29  # this project's losses: bounded by their block
    comparable_to: str | None = None  # name of a method whose value must agree


def methods() -> list[Method]:
    ours = [
        Method("floor: B x B distances", floor, lambda b, t, e: 4 * b * b * e + 8 * b * b),
        Method("lossless (ours, batch-all)", LosslessTripletLoss()),
        Method("linear lossless (ours, batch-all)", LinearLosslessTripletLoss()),
        Method("triplet (ours, batch-all)", TripletMarginLoss(margin=MARGIN)),
        Method("triplet (ours, batch-hard)", TripletMarginLoss(margin=MARGIN, mining="hard")),
    ]
    pml = _pml()
    if pml is None:
        return ours
    loss, miner = pml
    return ours + [
        # All triplets: a (B, B, B) bool mask, then ~48 bytes per triplet (indices, distances, grads).
        Method("PML TripletMarginLoss (all triplets)", loss, lambda b, t, e: b**3 + 48 * t + 16 * b * b * e,
               comparable_to="triplet (ours, batch-all)"),
        # Measured: about 8 B x B float matrices alive at once.
        Method("PML TripletMarginLoss + BatchHardMiner", lambda x, y: loss(x, y, miner(x, y)),
               lambda b, t, e: 8 * b * b * e, comparable_to="triplet (ours, batch-hard)"),
    ]


# ----------------------------------------------------------------------------- measuring


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _available_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    with open("/proc/meminfo") as f:
        info = dict(line.split(":", 1) for line in f)
    return int(info["MemAvailable"].split()[0]) * 1024


class _PeakSampler:
    """Peak resident memory while a block runs, sampled by a background thread."""

    def __init__(self, period_s: float = 0.001) -> None:
        self.period_s = period_s

    def __enter__(self):
        self.base = self.peak = _rss_bytes()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, _rss_bytes())
            time.sleep(self.period_s)

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, _rss_bytes())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _release_freed_memory() -> None:
    """Hand freed heap back to the OS, so the next call's RSS baseline is honest (glibc only)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_once(fn, codes: torch.Tensor, labels: torch.Tensor, sample_memory: bool) -> tuple[float, int | None, float]:
    """(seconds, peak extra bytes or None, loss value) of one forward + backward."""
    device = codes.device
    x = codes.clone().requires_grad_(True)
    _release_freed_memory()
    _sync(device)
    peak = None
    if device.type == "cuda":
        before = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        loss = fn(x, labels)
        loss.backward()
        _sync(device)
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(device) - before
    elif sample_memory:
        with _PeakSampler() as sampler:
            start = time.perf_counter()
            loss = fn(x, labels)
            loss.backward()
            seconds = time.perf_counter() - start
        peak = sampler.peak - sampler.base
    else:
        start = time.perf_counter()
        loss = fn(x, labels)
        loss.backward()
        seconds = time.perf_counter() - start
    value = float(loss.detach())
    del x, loss
    return seconds, peak, value


@dataclass
class Result:
    method: str
    batch: int
    seconds: float | None = None
    peak_bytes: int | None = None
    value: float | None = None
    repeats: int = 0
    skipped: str | None = None
    times: list[float] = field(default_factory=list)


def measure(method: Method, codes, labels, repeats: int, limit_bytes: int) -> Result:
    batch = len(labels)
    n_triplets = _triplet_count(labels)
    need = method.memory(batch, n_triplets, codes.element_size())
    if need > limit_bytes:
        skipped = f"not run: needs ~{need / 2**30:.1f} GiB, limit {limit_bytes / 2**30:.1f} GiB"
        return Result(method.name, batch, skipped=skipped)
    # The first call is the warm-up and the memory sample; it is timed only when no repeat fits the budget.
    seconds, peak, value = run_once(method.fn, codes, labels, sample_memory=True)
    times = [seconds]
    extra = min(repeats, int(TIME_BUDGET_S / max(seconds, 1e-6)))
    if extra > 0:
        times = [run_once(method.fn, codes, labels, sample_memory=False)[0] for _ in range(extra)]
    return Result(method.name, batch, statistics.median(times), peak, value, len(times), times=times)


def _triplet_count(labels: torch.Tensor) -> int:
    _, counts = torch.unique(labels, return_counts=True)
    counts = counts.to(torch.int64)
    return int((counts * (counts - 1) * (len(labels) - counts)).sum())


def make_batch(batch: int, device: torch.device, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    codes = torch.sigmoid(4.0 * torch.randn(batch, N_DIM, generator=g))  # codes in [0, 1], a sigmoid head
    labels = torch.randint(0, N_CLASSES, (batch,), generator=g)
    return codes.to(device), labels.to(device)


def _peak_rss_bytes() -> int:
    """This process's peak resident set size (VmHWM: unlike ru_maxrss, not inherited from a parent)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def isolated_peak_rss(batch: int, device: str, threads: int) -> dict:
    """Whole-process peak RSS of a fresh process that runs only the lossless loss at ``batch``."""
    code = (
        "import json, sys, time, torch\n"
        f"torch.set_num_threads({threads})\n"
        f"sys.path.insert(0, {str(Path(__file__).parent)!r})\n"
        "from loss_speed import _peak_rss_bytes, make_batch\n"
        "from lossless_triplet.losses import LosslessTripletLoss\n"
        f"codes, labels = make_batch({batch}, torch.device({device!r}))\n"
        "x = codes.clone().requires_grad_(True)\n"
        "t = time.perf_counter(); LosslessTripletLoss()(x, labels).backward(); t = time.perf_counter() - t\n"
        "print(json.dumps({'seconds': t, 'max_rss_bytes': _peak_rss_bytes()}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ----------------------------------------------------------------------------- reporting


def _fmt_time(seconds: float) -> str:
    if seconds < 1e-3:
        return f"{seconds * 1e6:.0f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.1f} ms"
    return f"{seconds:.2f} s"


def _fmt_bytes(n: int) -> str:
    if n < 2**20:
        return f"{max(n, 0) / 2**10:.0f} KiB"
    if n < 2**30:
        return f"{n / 2**20:.0f} MiB"
    return f"{n / 2**30:.2f} GiB"


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def device_name(device: torch.device, threads: int) -> str:
    if device.type == "cuda":
        return f"cuda: {torch.cuda.get_device_name(device)}"
    return f"cpu: {_cpu_name()}, {threads} thread(s)"


def headline(results: list[Result]) -> dict:
    def get(name, batch):
        for r in results:
            if r.method == name and r.batch == batch and r.seconds is not None:
                return r
        return None

    out = {}
    pml = get("PML TripletMarginLoss (all triplets)", 1024)
    for ours in ("lossless (ours, batch-all)", "triplet (ours, batch-all)"):
        mine = get(ours, 1024)
        if pml and mine:
            out[f"B=1024 PML all-triplets / {ours}"] = pml.seconds / mine.seconds
    largest = max(r.batch for r in results)
    base, mine = get("floor: B x B distances", largest), get("lossless (ours, batch-all)", largest)
    if base and mine:
        out[f"B={largest} lossless / floor"] = mine.seconds / base.seconds
    return out


def markdown(results, sizes, device_label, ratios, isolated, notes) -> str:
    names = list(dict.fromkeys(r.method for r in results))
    cell = {(r.method, r.batch): r for r in results}
    lines = [
        START,
        "## Loss speed",
        "",
        "Forward + backward of one batch, N = 16, 10 classes, codes = sigmoid(4 z); median wall time "
        "(peak memory above the level before the call). Written by `benchmarks/loss_speed.py`.",
        "",
        f"- device: **{device_label}**",
        f"- torch {torch.__version__}; pytorch-metric-learning {notes['pml_version']}; "
        f"python {platform.python_version()}; {notes['date']}",
        f"- load average at start / end: {notes['load_start']} / {notes['load_end']} "
        "(a shared machine: other processes compete for the cores)",
        "",
        "| method | " + " | ".join(f"B = {b}" for b in sizes) + " |",
        "|---|" + "---|" * len(sizes),
    ]
    for name in names:
        row = []
        for b in sizes:
            r = cell.get((name, b))
            if r is None:
                row.append("")
            elif r.skipped:
                row.append(r.skipped)
            else:
                row.append(f"{_fmt_time(r.seconds)} ({_fmt_bytes(r.peak_bytes)})")
        lines.append(f"| {name} | " + " | ".join(row) + " |")
    lines += ["", "Headline ratios (same device, same run):", ""]
    for key, value in ratios.items():
        lines.append(f"- {key}: **{value:.1f}x**" if "PML" in key else f"- {key}: **{value:.2f}x**")
    if isolated:
        lines.append(
            f"- whole-process peak RSS of a fresh process running only the lossless loss at B = "
            f"{isolated['batch']} (forward + backward {_fmt_time(isolated['seconds'])}): "
            f"**{_fmt_bytes(isolated['max_rss_bytes'])}**"
        )
    for text in notes.get("checks", []):
        lines.append(f"- {text}")
    lines += ["", END]
    return "\n".join(lines)


def write_section(path: Path, section: str) -> None:
    """Replace the loss_speed section of ``path`` (or append it), leaving other sections alone."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    path.write_text(text)


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--sizes", default="256,1024,4096,16384", help="comma-separated batch sizes")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per cell, at most (default 5)")
    parser.add_argument("--memory-fraction", type=float, default=0.5,
                        help="skip a method whose estimated memory exceeds this fraction of what is available")
    parser.add_argument("--out", type=Path, default=RESULTS, help="results file (default benchmarks/results.md)")
    parser.add_argument("--no-write", action="store_true", help="print only")
    parser.add_argument("--no-isolated", action="store_true", help="skip the fresh-process peak RSS measurement")
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda but torch.cuda.is_available() is False")
    sizes = [int(s) for s in args.sizes.split(",")]
    label = device_name(device, args.threads)
    notes = {"load_start": _load(), "date": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), "checks": []}
    try:
        import pytorch_metric_learning

        notes["pml_version"] = pytorch_metric_learning.__version__
    except ImportError:
        notes["pml_version"] = "not installed (its rows are missing)"

    results: list[Result] = []
    all_methods = methods()
    for batch in sizes:
        codes, labels = make_batch(batch, device)
        for method in all_methods:
            limit = int(args.memory_fraction * _available_bytes(device))
            result = measure(method, codes, labels, args.repeats, limit)
            results.append(result)
            shown = result.skipped or (
                f"{_fmt_time(result.seconds)}  peak +{_fmt_bytes(result.peak_bytes)}  x{result.repeats}"
            )
            print(f"[{label}] B={batch:>6} {method.name:42s} {shown}", flush=True)
            if method.comparable_to and result.value is not None:
                ours = next(r for r in results if r.method == method.comparable_to and r.batch == batch)
                agree = abs(ours.value - result.value) <= 1e-4 * max(1.0, abs(result.value))
                notes["checks"].append(
                    f"B = {batch}: {method.name} = {result.value:.6g}, {ours.method} = {ours.value:.6g}"
                    + (" (agree)" if agree else " (DISAGREE)")
                )
        del codes, labels
        if device.type == "cuda":
            torch.cuda.empty_cache()

    isolated = None
    if not args.no_isolated and device.type == "cpu":
        isolated = {"batch": max(sizes), **isolated_peak_rss(max(sizes), args.device, args.threads)}
        print(f"[{label}] isolated lossless B={isolated['batch']}: max RSS {_fmt_bytes(isolated['max_rss_bytes'])}")
    notes["load_end"] = _load()
    ratios = headline(results)
    for key, value in ratios.items():
        print(f"[{label}] {key}: {value:.2f}x")
    print(f"[{label}] this process's peak RSS (all methods): {_fmt_bytes(_peak_rss_bytes())}")
    if not args.no_write:
        write_section(args.out, markdown(results, sizes, label, ratios, isolated, notes))
        print(f"wrote the loss_speed section of {args.out}")
    return {"device": label, "ratios": ratios, "isolated": isolated}


if __name__ == "__main__":
    main()
