"""Load benchmark of the detection service: a real ``lossless-triplet serve`` on loopback, a real load client.

Run by hand from the repository root (not part of the test suite)::

    .venv/bin/python benchmarks/service_load.py                 # ~1 min: build a model, 2 load runs
    .venv/bin/python benchmarks/service_load.py --duration 5    # shorter runs
    .venv/bin/python benchmarks/service_load.py --model DIR     # an existing bundle

What it measures (one uvicorn worker; server and client share the machine's cores):

- single-row ``POST /v1/identify`` at concurrency 16 (``--concurrency``): requests/s, p50 and p99 latency;
- batched ``POST /v1/identify``, ``--batch-rows`` rows per request at concurrency 2, sent as JSON
  columns and as an Arrow IPC stream: rows/s and latency.

The load client is ``wrk`` when it is on PATH (C, HdrHistogram latencies; bounded by ``--duration``),
else an asyncio + httpx client bounded by ``--duration`` and ``--max-requests``. Every run first
checks one request answers 200 and counts non-2xx answers. The model is the KDDI NFV train split
(``kpi-stats+delta`` view, N = 16, MLP 64-64, a short training: speed does not depend on accuracy);
rows are KDDI eval rows. Prints a Markdown table (and every number to ``--json PATH``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def free_port() -> int:
    """A TCP port free on 127.0.0.1 right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def build_model(directory: Path) -> Path:
    """Train a small but realistic bundle on the KDDI train split into ``directory``."""
    from lossless_triplet.data import load_kddi_nfv
    from lossless_triplet.pipeline import fit_fault_model
    from lossless_triplet.training import TrainConfig

    config = TrainConfig(embedding_dim=16, hidden=(64, 64), epochs=2, steps_per_epoch=10)
    model = fit_fault_model(load_kddi_nfv("train"), holdout=["node-down"], view="kpi-stats+delta", config=config,
                            progress=False)
    return model.save(directory)


def start_server(model: Path, port: int, log: Path, threads: int) -> subprocess.Popen:
    """``python -m lossless_triplet serve`` as a subprocess; returns once /healthz answers."""
    import httpx

    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    env.pop("LOSSLESS_TRIPLET_TOKEN", None)
    process = subprocess.Popen([sys.executable, "-m", "lossless_triplet", "serve", "--model", str(model),
                                "--port", str(port)], stdout=log.open("w"), stderr=subprocess.STDOUT, env=env)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited ({process.returncode}): {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.HTTPError:
            time.sleep(0.2)
    process.kill()
    raise RuntimeError("the server did not answer /healthz within 180 s")


def stop_server(process: subprocess.Popen) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


JSON, ARROW = "application/json", "application/vnd.apache.arrow.stream"


def bodies(batch_rows: int) -> tuple[bytes, bytes, bytes]:
    """Bodies from the KDDI eval split: one row as {"rows": [...]}; ``batch_rows`` rows as
    {"columns": ...}; the same ``batch_rows`` rows as an Arrow IPC stream."""
    import pyarrow as pa

    from lossless_triplet.data import load_kddi_nfv

    data = load_kddi_nfv("eval")
    names = list(data.feature_names)
    values = data.features.astype(np.float64)
    cells = np.where(np.isnan(values), None, values).tolist()
    single = json.dumps({"rows": [dict(zip(names, cells[0]))]}).encode()
    picks = np.resize(np.arange(len(cells)), batch_rows)
    columns = {name: [cells[i][j] for i in picks] for j, name in enumerate(names)}
    table = pa.table({name: pa.array(values[picks, j], from_pandas=True) for j, name in enumerate(names)})
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return single, json.dumps({"columns": columns}).encode(), sink.getvalue().to_pybytes()


# --------------------------------------------------------------------------- clients

_WRK_SCRIPT = """
local f = assert(io.open(os.getenv("WRK_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = os.getenv("WRK_CONTENT_TYPE")
"""


def _seconds(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0}[unit]


def run_wrk(url: str, body: bytes, content_type: str, concurrency: int, duration: float, workdir: Path) -> dict:
    """wrk -t1 (one client thread: the cores are shared with the server)."""
    (workdir / "body.json").write_bytes(body)
    (workdir / "post.lua").write_text(_WRK_SCRIPT)
    command = ["wrk", "-t1", f"-c{concurrency}", f"-d{max(1, round(duration))}s", "--timeout", "10s", "--latency",
               "-s", str(workdir / "post.lua"), url]
    text = subprocess.run(command, capture_output=True, text=True, check=True,
                          env={**os.environ, "WRK_BODY": str(workdir / "body.json"),
                               "WRK_CONTENT_TYPE": content_type}).stdout
    percentiles = {p: _seconds(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", text, re.MULTILINE)}
    total = int(re.search(r"(\d+) requests in", text).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    socket_errors = re.search(r"Socket errors: (.*)", text)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", text)[1])
    return {"client": "wrk", "requests": total, "requests_per_s": rate,
            "p50_ms": percentiles["50"] * 1e3, "p99_ms": percentiles["99"] * 1e3,
            "non_2xx": int(errors[1]) if errors else 0, "socket_errors": socket_errors[1] if socket_errors else None}


async def _run_httpx(url: str, body: bytes, content_type: str, concurrency: int, duration: float,
                     max_requests: int) -> dict:
    import httpx

    latencies, failures = [], 0
    deadline = time.perf_counter() + duration
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=10) as client:
        async def worker():
            nonlocal issued, failures
            while time.perf_counter() < deadline and issued < max_requests:
                issued += 1
                start = time.perf_counter()
                response = await client.post(url, content=body, headers={"Content-Type": content_type})
                latencies.append(time.perf_counter() - start)
                failures += response.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    latency = np.array(latencies)
    return {"client": "httpx-asyncio", "requests": len(latency), "requests_per_s": len(latency) / elapsed,
            "p50_ms": float(np.percentile(latency, 50) * 1e3), "p99_ms": float(np.percentile(latency, 99) * 1e3),
            "non_2xx": failures, "socket_errors": None}


def cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process and its threads (Linux /proc; None elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_load(url: str, body: bytes, content_type: str, concurrency: int, duration: float, max_requests: int,
             workdir: Path, client: str, server_pid: int) -> dict:
    """One bounded load run; checks a first request answers 200; adds the server's CPU time per request."""
    import httpx

    check = httpx.post(url, content=body, headers={"Content-Type": content_type}, timeout=60)
    if check.status_code != 200:
        raise RuntimeError(f"{url} answered {check.status_code}: {check.text[:300]}")
    cpu_before = cpu_seconds(server_pid)
    if client == "wrk":
        result = run_wrk(url, body, content_type, concurrency, duration, workdir)
    else:
        result = asyncio.run(_run_httpx(url, body, content_type, concurrency, duration, max_requests))
    cpu_after = cpu_seconds(server_pid)
    if cpu_before is not None and cpu_after is not None and result["requests"]:
        # What the load would cost on idle cores: CPU time, not wall time, per request.
        result["server_cpu_ms_per_request"] = (cpu_after - cpu_before) / result["requests"] * 1e3
    return result


# --------------------------------------------------------------------------- main


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", type=Path, help="an existing model bundle (default: build one)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per load run (default 10)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="request cap per run (httpx client)")
    parser.add_argument("--concurrency", type=int, default=16, help="single-row connections (default 16)")
    parser.add_argument("--batch-rows", type=int, default=5000, help="rows per batched request (default 5000)")
    parser.add_argument("--batch-concurrency", type=int, default=2, help="batched connections (default 2)")
    parser.add_argument("--client", choices=("auto", "wrk", "httpx"), default="auto")
    parser.add_argument("--server-threads", type=int, default=1, help="OMP_NUM_THREADS of the server (default 1)")
    parser.add_argument("--json", type=Path, help="also write every number to this JSON file")
    args = parser.parse_args(argv)
    client = args.client if args.client != "auto" else ("wrk" if shutil.which("wrk") else "httpx")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        model = args.model or build_model(tmp / "model")
        single, batch_json, batch_arrow = bodies(args.batch_rows)
        port = free_port()
        load_before = os.getloadavg()
        server = start_server(model, port, tmp / "server.log", args.server_threads)
        url = f"http://127.0.0.1:{port}/v1/identify"
        try:
            run_load(url, single, JSON, 4, 1.0, 500, tmp, "httpx", server.pid)  # warm-up
            one = run_load(url, single, JSON, args.concurrency, args.duration, args.max_requests, tmp, client,
                           server.pid)
            many = {kind: run_load(url, body, kind, args.batch_concurrency, args.duration, args.max_requests, tmp,
                                   client, server.pid)
                    for kind, body in ((JSON, batch_json), (ARROW, batch_arrow))}
        finally:
            stop_server(server)
    for run in many.values():
        run["rows_per_s"] = run["requests_per_s"] * args.batch_rows
    document = {
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
                    "loadavg_before": load_before, "loadavg_after": os.getloadavg()},
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()} | {"client": client},
        "single_row": one, "batched_json_columns": many[JSON], "batched_arrow": many[ARROW],
    }
    if args.json:
        args.json.write_text(json.dumps(document, indent=1) + "\n")
    print("| run | client | requests | requests/s | rows/s | p50 ms | p99 ms | non-2xx | server CPU ms/request |\n"
          "|---|---|---|---|---|---|---|---|---|")
    batched = f"{args.batch_rows} rows, {args.batch_concurrency} connections"
    for label, run, rows in ((f"1 row (JSON), {args.concurrency} connections", one, 1),
                             (f"{batched}, JSON columns", many[JSON], args.batch_rows),
                             (f"{batched}, Arrow IPC stream", many[ARROW], args.batch_rows)):
        cpu = run.get("server_cpu_ms_per_request")
        print(f"| {label} | {run['client']} | {run['requests']} | {run['requests_per_s']:.1f} "
              f"| {run['requests_per_s'] * rows:.0f} | {run['p50_ms']:.1f} | {run['p99_ms']:.1f} | {run['non_2xx']} "
              f"| {'n/a' if cpu is None else f'{cpu:.2f}'} |")
    print(f"load average before/after: {load_before[0]:.1f} / {document['machine']['loadavg_after'][0]:.1f} "
          f"on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
