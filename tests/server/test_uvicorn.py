"""A real `python -m server` process on a free loopback port: start, serve, stop gracefully."""

from __future__ import annotations

import contextlib
import json
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.server import helpers

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def real_server(served_root, tmp_path, **settings: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """The tiny champion served by a real process, its log under ``served_root``."""
    with helpers.real_server(
        served_root / "data", served_root / "mlruns", tmp_path / "server.log", **settings
    ) as served:
        yield served


def test_real_server_serves_and_stops_cleanly(served_root, test_rows, tmp_path):
    folder = served_root / "data" / "predictions" / "quire-churn"
    before = set(folder.glob("part-*.parquet")) if folder.exists() else set()
    with real_server(served_root, tmp_path, log_flush_seconds="60") as (base, proc):
        with httpx.Client(base_url=base, timeout=10) as client:
            answers = [client.post("/predict", json=r) for r in test_rows[:20]]
            assert all(a.status_code == 200 for a in answers)
            assert client.post("/predict", json={}).status_code == 422
            assert client.get("/health/live").status_code == 200
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    # uvicorn re-raises the signal once its graceful shutdown is done.
    assert code in (0, -signal.SIGTERM)
    written = set(folder.glob("part-*.parquet")) - before
    assert len(written) == 1  # the buffered rows were flushed at shutdown


def test_sigterm_lets_accepted_requests_finish(served_root, test_rows, tmp_path):
    big = (test_rows * 250)[:10_000]  # each request takes a while to check and predict
    with real_server(served_root, tmp_path, prediction_log="false") as (base, proc):
        with ThreadPoolExecutor(3) as pool:
            futures = [
                pool.submit(httpx.post, f"{base}/predict/batch", json=big, timeout=120)
                for _ in range(3)
            ]
            _wait_in_flight(base, 3)  # accepted and being worked on
            proc.send_signal(signal.SIGTERM)
            answers = [f.result() for f in futures]
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert all(len(a.json()["predictions"]) == len(big) for a in answers)
    with pytest.raises(httpx.TransportError):  # and then it is gone
        httpx.get(f"{base}/health/live", timeout=2)


def _wait_in_flight(base: str, requests: int, seconds: float = 60) -> None:
    """Wait until the server has taken all ``requests`` and is still answering one of them.

    Taken means in flight (besides this /metrics request) or already answered: on a busy
    machine the event loop checks one request's rows at a time, so three may never be in
    flight together, but SIGTERM must still find at least one unfinished.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lines = httpx.get(f"{base}/metrics", timeout=10).text.splitlines()
        line = next(x for x in lines if x.startswith("quire_requests_in_flight "))
        busy = float(line.split()[1]) - 1
        done = sum(
            float(x.split()[1])
            for x in lines
            if x.startswith('quire_requests_total{route="/predict/batch"')
        )
        if busy >= 1 and busy + done >= requests:
            return
        time.sleep(0.02)
    raise AssertionError(f"the server did not take {requests} requests in {seconds} s")


def test_invalid_parameters_in_the_environment_are_one_line_and_exit_2(tmp_path):
    import os
    import sys

    from lib.core.paths import PROJECT_ROOT

    env = {**os.environ, "QUIRE__TRAIN__CV_FOLDS": "abc", "QUIRE__PROJECT__DATA_DIR": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, "-m", "server"],
        cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr.startswith("error: invalid parameters:")
    assert "QUIRE__TRAIN__CV_FOLDS" in done.stderr and "Traceback" not in done.stderr


# -- graceful shutdown under load: every request sent on an accepted connection is answered -----


@pytest.mark.parametrize("run", range(3))
def test_sigterm_under_keep_alive_load_resets_no_request(served_root, test_rows, tmp_path, run):
    with real_server(served_root, tmp_path, prediction_log="false") as (base, proc):
        until = time.monotonic() + 30
        with ThreadPoolExecutor(32) as pool:
            futures = [
                pool.submit(helpers.client_loop, base, test_rows[i], until) for i in range(32)
            ]
            _wait_answered(base, 200)  # every client is posting
            proc.send_signal(signal.SIGTERM)
            seen = [f.result() for f in futures]
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert sum(s["reset"] for s in seen) == 0, seen
    assert all(s["refused"] == 1 for s in seen)  # each client ran until the server was gone


def _wait_answered(base: str, requests: int, seconds: float = 60) -> None:
    metric = 'quire_requests_total{route="/predict",status="200"} '
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        lines = httpx.get(f"{base}/metrics", timeout=10).text.splitlines()
        if sum(float(x.removeprefix(metric)) for x in lines if x.startswith(metric)) >= requests:
            return
        time.sleep(0.05)
    raise AssertionError(f"the server did not answer {requests} requests in {seconds} s")


def _request(row: dict) -> bytes:
    body = json.dumps(row).encode()
    head = "POST /predict HTTP/1.1\r\nHost: quire\r\nContent-Type: application/json\r\n"
    return f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body


def _read_answer(sock: socket.socket) -> bytes:
    """Read until the peer closes (or 30 s pass)."""
    sock.settimeout(30)
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _read_one(sock: socket.socket) -> bytes:
    """Read one answer (headers, then content-length bytes of body) from a kept-alive socket."""
    sock.settimeout(30)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.lower().split(b"\r\n")
        if line.startswith(b"content-length:")
    )  # fmt: skip
    while len(body) < length:
        body += sock.recv(65536)
    return data


def test_sigterm_answers_a_request_half_sent_on_a_keep_alive_connection(
    served_root, test_rows, tmp_path
):
    with real_server(served_root, tmp_path, prediction_log="false") as (base, proc):
        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.sendall(_request(test_rows[0]))
            assert _read_one(sock).startswith(b"HTTP/1.1 200")  # now an idle keep-alive
            second = _request(test_rows[1])
            sock.sendall(second[:30])  # the next request's headers, half sent
            time.sleep(0.3)
            proc.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            sock.sendall(second[30:])
            answer = _read_answer(sock)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert b"connection: close" in answer.lower()


# -- timeouts and clients that go away -------------------------------------------------------


def _send_half(port: int, path: str) -> socket.socket:
    """Open a connection and send a request's headers and half its declared body."""
    sock = socket.create_connection(("127.0.0.1", port))
    head = f"POST {path} HTTP/1.1\r\nHost: quire\r\nContent-Type: application/json\r\n"
    sock.sendall(f"{head}Content-Length: 1000\r\n\r\n".encode() + b"[" * 500)
    return sock


def test_a_stalled_upload_is_answered_408_and_its_connection_freed(served_root, tmp_path):
    with real_server(served_root, tmp_path, request_timeout_seconds="1") as (base, _):
        port = int(base.rsplit(":", 1)[1])
        answers = {}
        for path in ("/predict/batch", "/invocations", "/v2/models/quire-churn/infer"):
            started = time.monotonic()
            with _send_half(port, path) as sock:
                answers[path] = (_read_answer(sock), time.monotonic() - started)
        metrics = httpx.get(f"{base}/metrics", timeout=10).text
        headers_answer, silent = _stall_headers(port)
    head, _, body = headers_answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408") and b"connection: close" in head, headers_answer
    assert json.loads(body) == {  # the path was read: the MLflow protocol's shape
        "error_code": "BAD_REQUEST",
        "message": "the request headers were not received within 1 s",
    }
    assert silent == b""  # a connection that sends nothing is closed, not kept
    for path, (answer, seconds) in answers.items():
        head, _, body = answer.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 408"), (path, answer[:300])
        assert b"connection: close" in head.lower()  # and the server closed it: recv ended
        assert seconds < 10, (path, seconds)
        message = "the body was not received within 1 s (500 bytes arrived); send it at once"
        assert _message(path, json.loads(body)).startswith(message), (path, body)
    assert 'quire_requests_total{route="/predict/batch",status="408"} 1.0' in metrics
    assert "quire_requests_in_flight 1.0" in metrics  # the stalled requests are gone


def _stall_headers(port: int) -> tuple[bytes, bytes]:
    """Half a request's headers, then nothing; and a connection that sends nothing at all."""
    with (
        socket.create_connection(("127.0.0.1", port)) as half,
        socket.create_connection(("127.0.0.1", port)) as silent,
    ):
        half.sendall(b"POST /invocations HTTP/1.1\r\nHost: quire\r\nContent-Ty")
        return _read_answer(half), _read_answer(silent)


def _message(path: str, body: dict) -> str:
    """The error message, from each protocol's own body."""
    if path == "/invocations":
        return str(body["message"])
    if path.startswith("/v2/"):
        return str(body["error"])
    return str(body["error"]["message"])


def test_a_client_gone_mid_upload_is_one_log_line_without_a_trace(served_root, tmp_path):
    log = tmp_path / "server.log"
    with real_server(served_root, tmp_path) as (base, _):
        port = int(base.rsplit(":", 1)[1])
        _send_half(port, "/predict/batch").close()
        metric = 'quire_requests_total{route="/predict/batch",status="499"} 1.0'
        deadline = time.monotonic() + 10
        while metric not in httpx.get(f"{base}/metrics", timeout=10).text:
            assert time.monotonic() < deadline, "the disconnect was not counted as 499"
            time.sleep(0.1)
    text = log.read_text()
    assert "Traceback" not in text and "Exception in ASGI" not in text, text[-2000:]
    lines = [x for x in text.splitlines() if "client_disconnected" in x]
    assert len(lines) == 1 and "/predict/batch" in lines[0] and "500" in lines[0], text[-2000:]
