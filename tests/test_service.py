"""The detection service over real HTTP on loopback: identify == detect, tokens, persistence, events, bad input.

Servers are real uvicorn servers on free loopback ports: in a thread of this process (fast to
start, the model is already imported) and, once, the ``lossless-triplet serve`` command in a
subprocess. Webhooks go to a real ``http.server`` in a thread.
"""

import concurrent.futures
import hashlib
import http.server
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pandas as pd
import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")


from lossless_triplet.bundle import SIGNATURES_FILE, FaultModel  # noqa: E402
from lossless_triplet.data import Dataset, Standardizer  # noqa: E402
from lossless_triplet.data.views import FeatureView  # noqa: E402
from lossless_triplet.losses import make_loss  # noqa: E402
from lossless_triplet.memory import FaultMemory  # noqa: E402
from lossless_triplet.models import encode  # noqa: E402
from lossless_triplet.pipeline.detect import detect_file  # noqa: E402
from lossless_triplet.service import TOKEN_ENV, UNKNOWN, create_app, identify_many, lock_bundle, read_token  # noqa: E402
from lossless_triplet.service.server import MAX_HEAD_BYTES, BoundedHttpToolsProtocol, server_config  # noqa: E402
from lossless_triplet.training import TrainConfig, train_encoder  # noqa: E402

TOKEN = "s3cret-token-for-tests-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NAMES = [f"{group}/{item}" for group in ("cpu", "rx", "tx") for item in ("a", "b", "c")]
CLASSES = ("normal", "link-down", "cpu-hog", "disk-full")
FAST_WEBHOOK = {"attempts": 3, "backoff": 0.05, "max_backoff": 0.2, "timeout": 1.0}


def synthetic(n_per_class: int, seed: int) -> Dataset:
    """Four statuses with distinct centres in 9 KPI columns (3 groups), rows in time order."""
    rng = np.random.default_rng(seed)
    centres = np.random.default_rng(0).normal(0, 3, size=(len(CLASSES), len(NAMES)))
    centres[0] = 0
    labels = np.repeat(np.arange(len(CLASSES)), n_per_class)
    features = centres[labels] + rng.normal(0, 0.3, size=(len(labels), len(NAMES)))
    return Dataset(features=features.astype(np.float32), labels=labels, feature_names=NAMES, class_names=CLASSES)


def tiny_model(data: Dataset, holdout: str = "disk-full", view_name: str = "kpi-stats+delta") -> FaultModel:
    """The pipeline of ``fit_fault_model`` with a short training (40 steps of a tiny encoder, well
    under a second): the tests send single rows, whose deltas are missing, and an untrained encoder
    read every such row as normal."""
    known = data.labels != data.class_names.index(holdout)
    view = FeatureView(view_name).fit(data.features[known], data.feature_names)
    x = view.transform(data.features)[known]  # previous rows before dropping, as fit_fault_model does
    scaler = Standardizer().fit(x)
    x = scaler.transform(x)
    config = TrainConfig(embedding_dim=4, hidden=(16,), epochs=1, steps_per_epoch=40, seed=0)
    encoder = train_encoder(x, data.labels[known], make_loss("triplet"), config, progress=False).model.eval()
    memory = FaultMemory().fit(encode(encoder, x), data.labels[known], data.class_names)
    return FaultModel(view=view, scaler=scaler, encoder=encoder, memory=memory, info={"loss": "lossless"})


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    """A saved tiny model (delta view: previous-row semantics matter); disk-full has no signature."""
    return tiny_model(synthetic(30, 1)).save(tmp_path_factory.mktemp("bundle") / "model")


@pytest.fixture
def model_dir(bundle, tmp_path):
    """A private copy of the bundle (tests that change faults never touch the shared one)."""
    return shutil.copytree(bundle, tmp_path / "model")


@pytest.fixture(scope="module")
def rows():
    """Raw test rows with a few missing cells: (n, F) float32."""
    raw = synthetic(8, 2).features.copy()
    raw[[0, 5, 17], [1, 4, 8]] = np.nan
    return raw


def as_records(raw, **extra):
    cells = np.where(np.isnan(raw), None, raw.astype(np.float64)).tolist()
    return [{**dict(zip(NAMES, row)), **extra} for row in cells]


def digest(path):
    return hashlib.sha256((path / SIGNATURES_FILE).read_bytes()).hexdigest()


# --------------------------------------------------------------------------- real servers


class ThreadServer:
    """uvicorn serving ``app`` on a loopback socket of its own, in a thread."""

    def __init__(self, app, protocol=None):
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.socket.getsockname()[1]}"
        config = server_config(app, log_level="warning", lifespan="on")
        if protocol is not None:  # a subclass with other limits (read when the server starts)
            config.http = protocol
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        self.client = httpx.Client(base_url=self.url, timeout=30)
        return self

    def __exit__(self, *exc):
        self.client.close()
        self.server.should_exit = True
        self.thread.join(30)
        self.socket.close()


class Receiver:
    """A webhook: records JSON bodies; answers 500 to the first ``fail_first`` posts."""

    def __init__(self, fail_first=0):
        self.events, self.posts, self.fail_first = [], 0, fail_first
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.posts += 1
                if receiver.posts <= receiver.fail_first:
                    self.send_response(500)
                else:
                    receiver.events.append(json.loads(body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/hook"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_for(self, n, timeout=15):
        deadline = time.monotonic() + timeout
        while len(self.events) < n and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.events

    def close(self):
        self.httpd.shutdown()


@pytest.fixture(scope="module")
def receiver():
    hook = Receiver()
    yield hook
    hook.close()


@pytest.fixture(scope="module")
def served(bundle, receiver, tmp_path_factory):
    """The shared server: token, webhook; serves a copy of the bundle."""
    directory = shutil.copytree(bundle, tmp_path_factory.mktemp("served") / "model")
    with ThreadServer(create_app(directory, token=TOKEN, webhook=receiver.url,
                                 webhook_options=FAST_WEBHOOK)) as server:
        server.model_dir = directory
        yield server


# --------------------------------------------------------------------------- identify


def test_identify_equals_detect_on_the_same_rows(served, rows, tmp_path):
    table = tmp_path / "rows.csv"
    pd.DataFrame(rows, columns=NAMES).assign(source="vnf-x").to_csv(table, index=False, na_rep="")
    detect_file(FaultModel.load(served.model_dir), table, tmp_path / "pred.csv", progress=False)
    expected = pd.read_csv(tmp_path / "pred.csv", keep_default_na=False)
    by_rows = served.client.post("/v1/identify", json={"rows": as_records(rows)})
    columns = {name: [None if np.isnan(v) else float(v) for v in rows[:, j]] for j, name in enumerate(NAMES)}
    by_columns = served.client.post("/v1/identify", json={"columns": columns})
    bare = served.client.post("/v1/identify", json=as_records(rows))
    for response in (by_rows, by_columns, bare):
        assert response.status_code == 200, response.text
        document = response.json()
        assert document["n_rows"] == len(rows)
        got = pd.DataFrame(document["results"])
        assert got["status"].tolist() == expected["status"].tolist()
        assert got["nearest"].tolist() == expected["nearest"].tolist()
        assert got["unknown"].tolist() == (expected["unknown"].astype(str) == "true").tolist()
        np.testing.assert_allclose(got["distance"], expected["distance"], rtol=2e-5)
        np.testing.assert_allclose(got["unknown_score"], expected["unknown_score"], rtol=2e-3)


def arrow_body(columns: dict) -> bytes:
    """An Arrow IPC stream of one table with these columns."""
    import pyarrow as pa

    table = pa.table(columns)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


ARROW = {"Content-Type": "application/vnd.apache.arrow.stream"}


def test_identify_from_an_arrow_stream_equals_json(served, rows):
    """The binary body gives the JSON body's answer, nulls (missing cells) and source included."""
    import pyarrow as pa

    columns = {name: pa.array(rows[:, j], from_pandas=True) for j, name in enumerate(NAMES)}  # NaN -> null
    columns["source"] = pa.array([f"vnf-{i % 3}" for i in range(len(rows))])
    by_arrow = served.client.post("/v1/identify", content=arrow_body(columns), headers=ARROW)
    by_json = served.client.post("/v1/identify", json={"rows": [
        {**record, "source": f"vnf-{i % 3}"} for i, record in enumerate(as_records(rows))]})
    assert by_arrow.status_code == 200, by_arrow.text
    assert by_arrow.json() == by_json.json()


def _arrow_case(change):
    import pyarrow as pa

    columns = {name: pa.array([0.0, 1.0]) for name in NAMES}
    change(columns)
    return arrow_body(columns)


@pytest.mark.parametrize("make, status, words", [
    (lambda: b"not arrow", 400, "malformed Arrow IPC stream"),
    (lambda: b"", 400, "empty request body"),
    (lambda: _arrow_case(lambda c: c.pop("rx/b")), 422, "lacks feature column(s) 'rx/b'"),
    (lambda: _arrow_case(lambda c: c.update({"rx/z": [1.0, 2.0]})), 422, "'rx/z'"),
    (lambda: _arrow_case(lambda c: c.update({"cpu/a": ["1", "2"]})), 422, "'cpu/a' has Arrow type string"),
    (lambda: _arrow_case(lambda c: c.update({"cpu/a": [True, False]})), 422, "'cpu/a' has Arrow type bool"),
    (lambda: _arrow_case(lambda c: c.update({"tx/c": [0.0, float("inf")]})), 422, "'tx/c' row 1 is infinite"),
    (lambda: _arrow_case(lambda c: c.update({"tx/c": [1e39, 0.0]})), 422, "'tx/c' row 0 is infinite or beyond"),
    (lambda: _arrow_case(lambda c: c.update({"source": [1, 2]})), 422, "'source' has Arrow type int64"),
    (lambda: _arrow_case(lambda c: c.update({"timestamp": [1.0, float("nan")]})), 422,
     "'timestamp' row 1 is nan: send a finite number"),  # events carry it as strict JSON
    (lambda: _arrow_case(lambda c: c.update({k: [] for k in c})), 422, "no rows"),
    (lambda: _arrow_case(lambda c: None) * 2, 400, "after the end of the Arrow IPC stream"),
    (lambda: _arrow_case(lambda c: None)[:-8], 400, "no end-of-stream marker"),
    (lambda: b"ARROW1\x00\x00" + _arrow_case(lambda c: None), 400, "Arrow IPC *file*"),
])
def test_bad_arrow_input_gets_a_4xx_naming_the_problem(served, make, status, words):
    response = served.client.post("/v1/identify", content=make(), headers=ARROW)
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]


def test_arrow_bodies_are_for_identify_only(served, rows):
    import pyarrow as pa

    body = arrow_body({name: pa.array(rows[:1, j]) for j, name in enumerate(NAMES)})
    response = served.client.post("/v1/faults", content=body, headers={**ARROW, **AUTH})
    assert response.status_code == 415 and "JSON only" in response.json()["detail"]


def test_batching_keeps_each_request_on_its_own(bundle, rows):
    """Blocks identified together give what each gives alone (delta views included)."""
    model = FaultModel.load(bundle)
    blocks = [rows[:1], rows[1:4], rows[4:5], rows[5:20]]
    together = identify_many(model, model.memory, blocks)
    for block, result in zip(blocks, together):
        alone = model.identify(block)
        assert result["status"].tolist() == alone["status"].tolist()
        np.testing.assert_allclose(result["distance"], alone["distance"], rtol=1e-5, atol=1e-7)


def test_batching_keeps_each_request_on_its_own_with_a_baseline_view(rows):
    """A baseline view looks 10 rows back: blocks batched together must not see each other's rows."""
    model = tiny_model(synthetic(30, 1), view_name="kpi-stats+baseline")
    blocks = [rows[:12], rows[12:13], rows[13:30]]
    together = identify_many(model, model.memory, blocks)
    for block, result in zip(blocks, together):
        np.testing.assert_allclose(result["distance"], model.identify(block)["distance"], rtol=1e-5, atol=1e-7)


def test_batched_requests_are_each_explained_on_their_own(rows):
    """The evidence's baseline looks 10 rows back too: batched blocks must not see each other's rows."""
    from lossless_triplet.explain import Explainer

    data = synthetic(30, 1)
    model = tiny_model(data)
    model.explainer = Explainer.fit(data.features[data.labels == 0], data.feature_names, normal_status="normal",
                                    time_ordered=True)
    blocks = [rows[:12], rows[12:13], rows[13:30]]
    for block, result in zip(blocks, identify_many(model, model.memory, blocks)):
        alone = model.explainer.explain(block)
        assert result["element"].tolist() == alone["element"].tolist()
        for entries, columns, values, missing in zip(result["evidence"], alone["evidence_columns"],
                                                     alone["evidence_values"], alone["evidence_missing"]):
            assert [e["column"] for e in entries] == [NAMES[j] for j, v in zip(columns, values) if v != 0]
            assert [e["missing"] for e in entries] == [bool(m) for m, v in zip(missing, values) if v != 0]
            assert [e["deviation"] for e in entries if not e["missing"]] == pytest.approx(
                [v for v, m in zip(values, missing) if v != 0 and not m], abs=0.006)


def test_batches_split_over_two_threads_give_the_same_answer(bundle, rows, monkeypatch):
    """Past PARALLEL_ROWS the features are computed in two halves; the seam must not show."""
    from lossless_triplet import bundle as bundle_module

    model = FaultModel.load(bundle)
    assert model.view.needs_previous_row  # the delta view is the one with a seam to get right
    blocks = [rows[:3], rows[3:20], rows[20:]]
    alone = identify_many(model, model.memory, blocks)
    monkeypatch.setattr(bundle_module, "PARALLEL_ROWS", 4)
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        split = identify_many(model, model.memory, blocks, pool=pool)
        whole = identify_many(model, model.memory, [rows], pool=pool)
    for a, b in zip(alone, split):
        assert a["status"].tolist() == b["status"].tolist()
        np.testing.assert_allclose(a["distance"], b["distance"], rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(whole[0]["distance"], model.identify(rows)["distance"], rtol=1e-5, atol=1e-7)


def test_concurrent_identify_requests_each_get_their_own_answer(served, rows):
    model = FaultModel.load(served.model_dir)
    blocks = [rows[i:i + 1 + i % 3] for i in range(16)]

    def ask(block):
        return served.client.post("/v1/identify", json={"rows": as_records(block)})

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(ask, blocks))
    for block, response in zip(blocks, responses):
        assert response.status_code == 200, response.text
        assert [r["status"] for r in response.json()["results"]] == model.identify(block)["status"].tolist()


# --------------------------------------------------------------------------- bad input

GOOD = as_records(np.zeros((1, len(NAMES)), dtype=np.float32))[0]


@pytest.mark.parametrize("body, status, words", [
    (b"{\"rows\": [", 400, "malformed JSON"),
    (b"", 400, "empty request body"),
    (b"\xff\xfe{", 400, "malformed JSON"),
    (json.dumps({"rows": []}), 422, "empty"),
    (json.dumps([]), 422, "empty"),
    (json.dumps({"rows": [{k: v for k, v in GOOD.items() if k != "rx/b"}]}), 422, "'rx/b'"),
    (json.dumps({"rows": [{**GOOD, "rx/z": 1.0}]}), 422, "'rx/z'"),
    (json.dumps({"rows": [{**GOOD, "cpu/a": "high"}]}), 422, "rows[0]['cpu/a'] is a string"),
    (json.dumps({"rows": [{**GOOD, "cpu/a": True}]}), 422, "is a boolean"),
    (json.dumps({"rows": [{**GOOD, "tx/c": 1e39}]}), 422, "rows[0]['tx/c'] is infinite"),
    ("{\"rows\": [" + json.dumps(GOOD)[:-1] + ", \"tx/a\": 1e999}]}", 422, "infinite"),
    ("{\"rows\": [" + json.dumps(GOOD)[:-1] + ", \"tx/a\": NaN}]}", 422, "NaN"),
    ("{\"rows\": [" + json.dumps(GOOD)[:-1] + ", \"tx/a\": -Infinity}]}", 422, "Infinity"),
    (json.dumps({"rows": [GOOD, 3]}), 422, "rows[1] is a number"),
    (json.dumps({"rows": [{**GOOD, "source": 7}]}), 422, "source"),
    (json.dumps({"columns": {**{k: [0.0, 1.0] for k in NAMES}, "cpu/a": [0.0]}}), 422, "differ in length"),
    (json.dumps({"rows": [GOOD], "limit": 3}), 422, "'limit'"),
    (json.dumps("rows"), 422, "the body is a string"),
])
def test_bad_input_gets_a_4xx_naming_the_problem(served, body, status, words):
    response = served.client.post("/v1/identify", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == status, response.text
    assert words in response.json()["detail"]
    assert served.client.get("/healthz").status_code == 200


def test_body_over_the_limit_gets_413(model_dir, rows):
    with ThreadServer(create_app(model_dir, max_body_bytes=4000)) as server:
        big = server.client.post("/v1/identify", json={"rows": as_records(np.repeat(rows, 20, axis=0))})
        assert big.status_code == 413 and "bytes" in big.json()["detail"]
        assert server.client.post("/v1/identify", json={"rows": as_records(rows[:1])}).status_code == 200


# --------------------------------------------------------------------------- changes and security


def test_changes_without_the_right_token_get_401_and_change_nothing(served, rows):
    before, faults = digest(served.model_dir), served.client.get("/v1/faults").json()
    body = {"name": "disk-full", "rows": as_records(rows[-1:])}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {TOKEN}"}):
        response = served.client.post("/v1/faults", json=body, headers=headers)
        assert response.status_code == 401 and response.headers["www-authenticate"] == "Bearer"
        assert served.client.delete("/v1/faults/normal", headers=headers).status_code == 401
    assert digest(served.model_dir) == before
    assert served.client.get("/v1/faults").json() == faults


def test_without_a_configured_token_changes_are_disabled(model_dir, rows):
    before = digest(model_dir)
    with ThreadServer(create_app(model_dir)) as server:
        response = server.client.post("/v1/faults", json={"name": "x", "rows": as_records(rows[:1])}, headers=AUTH)
        assert response.status_code == 403 and "--token-file" in response.json()["detail"]
        assert server.client.post("/v1/identify", json=as_records(rows[:1])).status_code == 200
    assert digest(model_dir) == before


def test_added_fault_is_persisted_before_the_answer_and_survives_a_restart(model_dir, rows):
    one = {"name": "disk-full", "rows": as_records(rows[-1:])}
    with ThreadServer(create_app(model_dir, token=TOKEN)) as server:
        created = server.client.post("/v1/faults", json=one, headers=AUTH)
        assert created.status_code == 201 and created.json()["created"] and created.json()["count"] == 1
        assert "disk-full" in FaultModel.load(model_dir).memory.names  # on disk when the answer came
        extended = server.client.post("/v1/faults", json=one, headers=AUTH)
        assert extended.status_code == 200 and extended.json()["count"] == 2
        for reserved in ("unknown", "UNKNOWN", "Unknown"):
            assert server.client.post("/v1/faults", json={**one, "name": reserved}, headers=AUTH).status_code == 422
        assert server.client.delete("/v1/faults/cpu-hog", headers=AUTH).status_code == 200
        assert server.client.delete("/v1/faults/cpu-hog", headers=AUTH).status_code == 404
        answer = server.client.post("/v1/identify", json=as_records(rows[-1:])).json()["results"][0]
        faults = server.client.get("/v1/faults").json()["faults"]
    with ThreadServer(create_app(model_dir, token=TOKEN)) as restarted:
        assert restarted.client.get("/v1/faults").json()["faults"] == faults
        assert restarted.client.post("/v1/identify", json=as_records(rows[-1:])).json()["results"][0] == answer
    assert {f["name"] for f in faults} == {"normal", "link-down", "disk-full"}


def test_concurrent_changes_never_corrupt_the_bundle(model_dir, rows):
    jobs = [(f"fault-{i % 10}", rows[i:i + 1]) for i in range(20)]  # 10 names, each added twice
    with ThreadServer(create_app(model_dir, token=TOKEN)) as server:
        def add(job):
            name, raw = job
            return server.client.post("/v1/faults", json={"name": name, "rows": as_records(raw)}, headers=AUTH)

        with concurrent.futures.ThreadPoolExecutor(20) as pool:
            codes = [r.status_code for r in pool.map(add, jobs)]
        assert sorted(codes) == [200] * 10 + [201] * 10
        served_faults = server.client.get("/v1/faults").json()["faults"]
    memory = FaultModel.load(model_dir).memory  # a restart reads exactly this
    assert {f"fault-{i}" for i in range(10)} <= set(memory.names)
    assert all(memory.signatures_[f"fault-{i}"].count == 2 for i in range(10))
    assert memory.describe() == served_faults
    assert not list(model_dir.glob("*.tmp"))


def test_one_server_per_bundle(model_dir):
    handle = lock_bundle(model_dir)
    try:
        with pytest.raises(ValueError, match="one server per model bundle"):
            lock_bundle(model_dir)
    finally:
        handle.close()


def test_token_comes_from_a_file_or_the_environment(tmp_path):
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    assert read_token(path, environ={}) == TOKEN
    assert read_token(None, environ={TOKEN_ENV: TOKEN}) == TOKEN
    assert read_token(None, environ={}) is None
    path.write_text("\n")
    with pytest.raises(ValueError, match="empty"):
        read_token(path, environ={})
    with pytest.raises(FileNotFoundError):
        read_token(tmp_path / "missing", environ={})


# --------------------------------------------------------------------------- events


def expected_events(statuses, normal="normal"):
    """(previous, status) pairs the service should report for one source's statuses in order."""
    pairs, previous = [], None
    for status in statuses:
        if status != previous and not (previous is None and status == normal):
            pairs.append((previous, status))
        previous = status
    return pairs


def test_status_changes_of_a_source_reach_the_webhook_and_the_log(served, receiver, rows, caplog):
    model = FaultModel.load(served.model_dir)
    statuses = np.array([model.identify(row[None])["status"][0] for row in rows])  # one row per request, as sent
    normal = rows[statuses == "normal"][:1]
    fault = rows[(statuses != "normal") & (statuses != UNKNOWN)][:1]
    assert len(normal) and len(fault), statuses
    odd = np.full((1, len(NAMES)), 1e6, dtype=np.float32)
    sequence = [normal, fault, fault, normal, odd]
    first_post, first_event = receiver.posts, len(receiver.events)
    receiver.fail_first = first_post + 2  # the first event of this test is retried twice before it lands
    seen = []
    with caplog.at_level(logging.INFO, logger="lossless_triplet.events"):
        for block in sequence:  # one request per minute of telemetry
            response = served.client.post("/v1/identify", json={"rows": as_records(block, source="vnf-7",
                                                                                   timestamp=len(seen))})
            seen.append(response.json()["results"][0]["status"])
        served.client.post("/v1/identify", json={"rows": as_records(normal)})  # no source: no event
    wanted = expected_events(seen)
    assert len(wanted) >= 2, seen  # -> fault, -> normal (and the odd row's change unless it reads normal)
    events = receiver.wait_for(first_event + len(wanted))[first_event:]
    assert [(e["previous"], e["status"]) for e in events] == wanted
    assert all(e["source"] == "vnf-7" and e["event"] == "status_change" for e in events)
    kinds = {"normal": "recovered", UNKNOWN: UNKNOWN}
    assert [e["kind"] for e in events] == [kinds.get(s, "fault") for _, s in wanted]
    assert receiver.posts - first_post == len(wanted) + 2  # the first event needed two retries
    logged = [json.loads(r.getMessage()) for r in caplog.records if r.name == "lossless_triplet.events"]
    assert [(e["previous"], e["status"]) for e in logged] == wanted


def test_a_down_webhook_never_blocks_identify(model_dir, rows):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{probe.getsockname()[1]}/hook"
    app = create_app(model_dir, webhook=dead, webhook_options={**FAST_WEBHOOK, "queue_size": 2})
    with ThreadServer(app) as server:
        started = time.monotonic()
        for i in range(20):  # alternate two far-apart rows: every request is a status change
            block = rows[:1] if i % 2 else np.full((1, len(NAMES)), 1e6 * (i % 3 + 1), dtype=np.float32)
            assert server.client.post("/v1/identify", json=as_records(block, source=f"s{i % 2}")).status_code == 200
        assert time.monotonic() - started < 15
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            text = server.client.get("/metrics").text
            if 'lossless_triplet_events_total{outcome="failed"}' in text:
                break
            time.sleep(0.1)
        assert 'lossless_triplet_events_total{outcome="failed"}' in text


# --------------------------------------------------------------------------- operations


def test_metrics_health_and_docs(served, rows):
    served.client.post("/v1/identify", json=as_records(rows[:3]))
    assert served.client.get("/healthz").json()["status"] == "ok"
    text = served.client.get("/metrics").text
    for name in ("lossless_triplet_rows_identified_total", "lossless_triplet_rows_unknown_total",
                 "lossless_triplet_unknown_rate", "lossless_triplet_http_request_duration_seconds_bucket",
                 "lossless_triplet_signatures"):
        assert name in text
    assert 'route="/v1/identify"' in text
    docs = served.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    spec = served.client.get("/openapi.json").json()
    assert {"/v1/identify", "/v1/faults", "/v1/faults/{name}", "/healthz", "/metrics"} <= set(spec["paths"])
    model = served.client.get("/v1/model").json()
    assert model["feature_names"] == NAMES and model["extra_fields"] == ["source", "timestamp"]
    # the schema comes from the request and response models, and answers match them
    from lossless_triplet.service.models import IdentifyResult, ModelInfo

    body = spec["paths"]["/v1/identify"]["post"]["requestBody"]["content"]
    assert [s["title"] for s in body["application/json"]["schema"]["oneOf"]] == ["RowsBody", "ColumnsBody"]
    assert "application/vnd.apache.arrow.stream" in body
    answer = spec["paths"]["/v1/identify"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer == {"$ref": "#/components/schemas/IdentifyResult"}
    assert {"IdentifyResult", "RowResult", "FaultChange", "ModelInfo", "Error"} <= set(spec["components"]["schemas"])
    ModelInfo.model_validate(model)
    IdentifyResult.model_validate(served.client.post("/v1/identify", json=as_records(rows[:3])).json())


def test_faults_added_counter(model_dir, rows):
    with ThreadServer(create_app(model_dir, token=TOKEN)) as server:
        server.client.post("/v1/faults", json={"name": "disk-full", "rows": as_records(rows[:1])}, headers=AUTH)
        assert 'lossless_triplet_faults_added_total{kind="created"} 1.0' in server.client.get("/metrics").text


# --------------------------------------------------------------------------- bounded request heads


def raw_request(url: str, chunks, pause: float = 0.0, timeout: float = 30.0) -> tuple[bytes, float]:
    """Send ``chunks`` over a plain socket (stopping early if the server closes); the bytes answered
    and the seconds until the answer was complete."""
    host, port = url.removeprefix("http://").split(":")
    started = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        try:
            for chunk in chunks:
                sock.sendall(chunk)
                if pause:
                    time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before everything was sent: what is tested
        answer = b""
        try:
            while data := sock.recv(65536):
                answer += data
        except ConnectionResetError:
            pass
    return answer, time.monotonic() - started


def huge_header(total: int, chunk: int = 2**20):
    yield b"GET /healthz HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
    for _ in range(total // chunk):
        yield b"a" * chunk
    yield b"\r\n\r\n"


def test_an_oversized_header_gets_431_quickly_and_healthz_stays_fast(served):
    # 100 MB of Authorization header: before, read to the end (23 s, +180 MB) and answered 200.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(raw_request, served.url, huge_header(100 * 2**20))
        healthz = [served.client.get("/healthz") for _ in range(5)]
        answer, seconds = pending.result()
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large") and b"16384 bytes" in answer
    assert seconds < 10
    assert all(r.status_code == 200 for r in healthz)
    assert max(r.elapsed.total_seconds() for r in healthz) < 1.0


def test_a_long_request_line_gets_414_and_a_head_just_under_the_limit_is_served(served):
    answer, _ = raw_request(served.url, [b"GET /healthz?" + b"q" * (2 * MAX_HEAD_BYTES) + b" HTTP/1.1\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 414 URI Too Long")
    head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Pad: "
    padding = b"p" * (MAX_HEAD_BYTES - len(head) - 4)
    answer, _ = raw_request(served.url, [head + padding + b"\r\n\r\n"])
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:80]


class QuickTimeout(BoundedHttpToolsProtocol):
    head_timeout = 0.5


def test_a_slow_sender_is_timed_out_with_408(model_dir):
    with ThreadServer(create_app(model_dir), protocol=QuickTimeout) as server:
        answer, seconds = raw_request(server.url, [b"GET /healthz HTTP/1.1\r\n", b"Host: x\r\n", b"X-A: 1\r\n"],
                                      pause=0.4)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout") and seconds < 5


def test_server_config_chooses_the_bounded_protocol(model_dir):
    assert server_config(create_app(model_dir)).http is BoundedHttpToolsProtocol
    with pytest.raises(ValueError, match="do not pass http="):
        server_config(create_app(model_dir), http="h11")


# --------------------------------------------------------------------------- the command


def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_serve_command_with_a_token_file(model_dir, rows, tmp_path):
    """`lossless-triplet serve` as a user runs it: token from a file, fault added, restart keeps it."""
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    port, log = free_port(), tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if k != TOKEN_ENV}
    command = [sys.executable, "-m", "lossless_triplet", "serve", "--model", str(model_dir), "--port", str(port),
               "--token-file", str(token_file), "--event-log", str(tmp_path / "events.jsonl")]
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "serve did not answer /healthz"
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        body = {"name": "disk-full", "rows": as_records(rows[-1:])}
        assert httpx.post(f"{url}/v1/faults", json=body, timeout=30).status_code == 401
        assert "disk-full" not in FaultModel.load(model_dir).memory.names
        assert httpx.post(f"{url}/v1/faults", json=body, headers=AUTH, timeout=30).status_code == 201
        odd = as_records(np.full((1, len(NAMES)), 1e6, dtype=np.float32), source="vnf-1")
        answer = httpx.post(f"{url}/v1/identify", json={"rows": odd}, timeout=30).json()["results"][0]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert "disk-full" in FaultModel.load(model_dir).memory.names  # what a restart serves
    events = [json.loads(line) for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert [(e["source"], e["status"]) for e in events] == (
        [] if answer["status"] == "normal" else [("vnf-1", answer["status"])])
    assert TOKEN not in log.read_text()


# --------------------------------------------------------------------------- a full disk


def test_a_full_disk_answers_507_and_changes_nothing(model_dir, rows, monkeypatch, caplog):
    import errno

    import lossless_triplet.io as io_module

    before = digest(model_dir)
    with ThreadServer(create_app(model_dir, token=TOKEN)) as server:
        names = server.client.get("/v1/faults").json()["faults"]
        baseline = server.client.post("/v1/identify", json=as_records(rows[:5])).json()

        def full(fd):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(io_module.os, "fsync", full)
        with caplog.at_level(logging.ERROR, logger="lossless_triplet.service"):
            added = server.client.post("/v1/faults", json={"name": "disk-full", "rows": as_records(rows[:1])},
                                       headers=AUTH)
            removed = server.client.delete(f"/v1/faults/{names[0]['name']}", headers=AUTH)
        assert added.status_code == 507 and removed.status_code == 507
        detail = added.json()["detail"]
        assert "no space left on device while saving signatures.safetensors" in detail
        assert "nothing was changed" in detail and str(model_dir) in detail
        assert detail.count("nothing was changed") == 1  # said once, whatever the write error
        assert sum("fault memory not saved" in r.message and str(model_dir) in r.message for r in caplog.records) == 2
        # The live memory and answers are the ones before, the bundle is byte for byte the same, and no
        # temporary file is left behind.
        assert server.client.get("/v1/faults").json()["faults"] == names
        assert server.client.post("/v1/identify", json=as_records(rows[:5])).json() == baseline
        assert digest(model_dir) == before
        assert 'lossless_triplet_storage_errors_total{reason="no_space"} 2.0' in server.client.get("/metrics").text
        monkeypatch.undo()
        assert server.client.post("/v1/faults", json={"name": "disk-full", "rows": as_records(rows[:1])},
                                  headers=AUTH).status_code == 201
    assert digest(model_dir) != before
    assert not [p for p in model_dir.iterdir() if p.name.endswith(".tmp")]
