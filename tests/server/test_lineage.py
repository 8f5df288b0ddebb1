"""GET /lineage/{request_id} reads only the part files its index names; ids are capped."""

from __future__ import annotations

import pandas as pd
import pytest
from fastapi.testclient import TestClient

from lib.data.feedback import LogIndex
from lib.loop import lineage
from server.config import Settings
from server.main import create_app


def _part(folder, name: str, requests: list[str], ids: list[str] | None = None) -> None:
    rows = pd.DataFrame(
        {
            "x": [float(i) for i in range(len(requests))],
            "request_id": requests,
            "row": [0] * len(requests),
            "prediction": [1] * len(requests),
        }
    )
    if ids is not None:
        rows["cid"] = ids
    rows.to_parquet(folder / f"part-{name}.parquet", index=False)


def test_a_lookup_reads_only_the_parts_the_index_names(tmp_path):
    for n in range(200):
        _part(tmp_path, f"{n:04d}", [f"r{n}-{k}" for k in range(5)])
    _part(tmp_path, "0100b", ["r100-2", "other"])  # one request may span two parts
    index = LogIndex(tmp_path)
    assert index.refresh() == 201
    assert lineage.find_rows(tmp_path, "r100-2", index)["x"].tolist() == [2.0, 0.0]
    for path in tmp_path.glob("part-*.parquet"):
        if not path.name.startswith(("part-0100", "part-0150")):
            path.write_bytes(b"not parquet: a lookup that reads this file fails")
    assert lineage.find_rows(tmp_path, "r100-2", index)["x"].tolist() == [2.0, 0.0]
    assert lineage.find_rows(tmp_path, "r150-4", index)["x"].tolist() == [4.0]
    assert lineage.find_rows(tmp_path, "never", index).empty


def test_the_index_follows_new_parts_and_knows_ids(tmp_path):
    _part(tmp_path, "0001", ["a", "b"], ["C-1", None])
    index = LogIndex(tmp_path, ("request_id", "cid"))
    assert index.known("request_id", ["a", "z"]) == {"a"}
    _part(tmp_path, "0002", ["z"])  # an old part without the id column
    _part(tmp_path, "0003", ["y"], ["C-2"])
    assert index.known("request_id", ["a", "z", "y", "q"]) == {"a", "z", "y"}
    assert index.known("cid", ["C-1", "C-2", "C-3"]) == {"C-1", "C-2"}
    assert [p.name for p in index.files("request_id", "z")] == ["part-0002.parquet"]
    assert index.refresh() == 0 and index.nbytes() > 0


@pytest.fixture(scope="module")
def client(served_params):
    with TestClient(create_app(Settings(log_flush_seconds=0.1), served_params)) as c:
        yield c


@pytest.mark.slow
def test_a_long_request_id_is_422_without_echoing_it(client):
    long_id = "x" * 8000
    answer = client.get(f"/lineage/{long_id}")
    assert answer.status_code == 422, answer.text[:300]
    assert "at most 128 characters, got 8,000" in answer.json()["error"]["message"]
    assert len(answer.text) < 400
    missing = client.get("/lineage/" + "n" * 128)
    assert missing.status_code == 404 and "no logged prediction" in missing.text


def test_an_unchanged_folder_is_not_listed_again(tmp_path, monkeypatch):
    import os

    from lib.data import feedback

    _part(tmp_path, "0001", ["a"])
    os.utime(tmp_path, ns=(10**18, 10**18))  # changed long ago
    index = LogIndex(tmp_path)
    assert index.refresh() == 1
    listed = []
    monkeypatch.setattr(feedback, "_part_files", lambda folder: listed.append(folder) or [])
    assert index.known("request_id", ["a", "b"]) == {"a"} and listed == []
    monkeypatch.undo()
    _part(tmp_path, "0002", ["b"])  # a new file changes the folder's mtime
    assert index.known("request_id", ["a", "b"]) == {"a", "b"}


@pytest.mark.slow
def test_the_index_is_built_when_the_server_starts(client, served_params, test_rows, monkeypatch):
    import time

    from lib.core.layout import predictions_dir
    from lib.data import feedback

    served = client.post("/predict", json=test_rows[0]).headers["x-request-id"]
    deadline = time.monotonic() + 10
    while client.get(f"/lineage/{served}").status_code != 200:
        assert time.monotonic() < deadline, "never logged"
        time.sleep(0.1)
    monkeypatch.setattr(feedback, "_INDEXES", {})  # a new process: no index yet
    folder = predictions_dir(served_params.project.data_dir, "quire-churn")
    with TestClient(create_app(Settings(), served_params)):
        (index,) = feedback._INDEXES.values()  # made at start, before any lookup
        deadline = time.monotonic() + 10
        while index.parts == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert index.folder == folder and index.parts >= 1
        assert index.known("request_id", [served]) == {served}
