"""Fuzzing the raw request: whatever the bytes, no route answers 5xx, and errors keep their shape.

Hypothesis writes the body itself (bytes, JSON with huge numbers, deep nesting, lone surrogates
as ``\\u`` escapes, control characters, wrong types at every level, real rows with one field
mutated) for every POST route, and odd path parameters for the GET routes. Examples are bounded
and derandomized, so the file runs the same in CI every time.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from server.bodies import MAX_DEPTH
from server.config import Settings
from server.main import create_app

pytestmark = pytest.mark.slow

MODEL = "quire-churn"
JSON_ROUTES = (
    "/predict",
    "/predict/batch",
    "/feedback",
    "/invocations",
    f"/v2/models/{MODEL}/infer",
)
FUZZ = settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)


@pytest.fixture(scope="module")
def client(served_params):
    app = create_app(Settings(prediction_log=False, max_batch_rows=50), served_params)
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def assert_answered(answer: Any, path: str) -> None:
    """No 5xx; an error in its protocol's body, short, without a trace."""
    label = f"{path}: {answer.status_code} {answer.text[:300]}"
    assert answer.status_code < 500, label
    assert "Traceback" not in answer.text, label
    if answer.status_code < 400:
        return
    body = answer.json()
    if path == "/invocations":
        assert set(body) == {"error_code", "message"}, label
        message = body["message"]
    elif path.startswith("/v2/"):
        assert set(body) == {"error"} and isinstance(body["error"], str), label
        message = body["error"]
    else:
        assert set(body) == {"error"} and {"code", "message"} <= set(body["error"]), label
        message = body["error"]["message"]
    assert message and len(message) <= 1000, label


def post(client: TestClient, path: str, raw: bytes, kind: str = "application/json") -> Any:
    answer = client.post(path, content=raw, headers={"content-type": kind})
    assert_answered(answer, path)
    return answer


def dumps(value: Any) -> bytes:
    """JSON text as a client could send it: NaN/Infinity and surrogates as ``\\u`` escapes."""
    return json.dumps(value, allow_nan=True).encode()


# -- the defects the audit found, each its own case ---------------------------------------------

BIG = "9" * 400
DEEP = "[" * 1100 + "]" * 1100


def v2_body(rows: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    inputs = [{"name": k, "datatype": "BYTES", "shape": [len(rows)], "data": [r[k] for r in rows]}
              for k in rows[0]]  # fmt: skip
    return {"inputs": inputs, **extra}


def known_bodies(row: dict[str, Any]) -> list[tuple[str, bytes, str]]:
    """(path, raw body, what the 400 names) for every input the audit answered 5xx."""
    with_big = json.dumps({**row, "monthly_charges": "BIG"}).replace('"BIG"', BIG)
    surrogate_key = json.dumps({**row, "\ud800": 1})
    surrogate_value = json.dumps({**row, "contract": "a\udfffb"})
    v2 = json.dumps(v2_body([row], id="\ud800"))
    return [
        ("/predict", with_big.encode(), "$.monthly_charges: an integer of 400 digits"),
        ("/predict/batch", f"[{with_big}]".encode(), "$[0].monthly_charges"),
        ("/predict/batch", DEEP.encode(), f"deeper than {MAX_DEPTH}"),
        ("/predict", surrogate_key.encode(), "surrogate"),
        ("/predict/batch", f"[{surrogate_value}]".encode(), "$[0].contract"),
        ("/invocations", f'{{"dataframe_records": [{surrogate_value}]}}'.encode(), "surrogate"),
        ("/invocations", f'{{"dataframe_records": [{with_big}]}}'.encode(), "digits"),
        (f"/v2/models/{MODEL}/infer", v2.encode(), "$.id"),
        ("/feedback", b'{"labels": [{"request_id": "\\ud83d", "label": "yes"}]}',
         "$.labels[0].request_id"),
        ("/feedback", f'{{"labels": [{{"request_id": "r", "row": {BIG}, "label": 1}}]}}'.encode(),
         "$.labels[0].row"),
    ]  # fmt: skip


def test_the_audits_bodies_are_400s_naming_the_path(client, test_rows):
    for path, raw, named in known_bodies(test_rows[0]):
        answer = post(client, path, raw)
        assert answer.status_code == 400, (path, answer.text)
        assert named in answer.text, (path, answer.text)


def test_nan_is_still_read_where_a_route_reads_it(client, test_rows):
    row = {**test_rows[0], "monthly_charges": float("nan")}
    mlflow = post(client, "/invocations", dumps({"dataframe_records": [row]}))
    assert mlflow.status_code == 200, mlflow.text  # NaN is a missing value, as in MLflow
    quire = post(client, "/predict", dumps(row))
    assert quire.status_code == 422
    assert quire.json()["error"]["details"][0]["field"] == "monthly_charges"


def test_edge_cases_of_the_request_itself(client, test_rows):
    row = json.dumps(test_rows[0]).encode()
    for path in JSON_ROUTES:
        assert post(client, path, b"").status_code == 400
        assert post(client, path, b"not json").status_code == 400
        assert post(client, path, b"\xff\xfe{").status_code == 400
        assert post(client, path, b'"\x01"').status_code in (400, 422)
        assert post(client, path, row, 'application/json; charset=utf-8; x="y"').status_code < 500
        assert post(client, path, row, "APPLICATION/JSON;").status_code < 500
        assert post(client, path, row, "text/plain").status_code in (400, 415)
    for odd in ("%ed%a0%80", "%ff%fe", "%00", "..%2F..%2Fetc", "x" * 3000, "%F0%9F%98%80"):
        for path in (f"/lineage/{odd}", f"/v2/models/{odd}", f"/v2/models/{odd}/infer"):
            answer = (client.post(path, content=row, headers={"content-type": "application/json"})
                      if path.endswith("/infer") else client.get(path))  # fmt: skip
            assert_answered(answer, path)
            assert len(answer.text) < 2000  # a long path parameter is not echoed in full
    assert client.get("/model?x=%ff&y=\u00e9", headers={"x-odd": b"\xe9\xff"}).status_code == 200


# -- property-based --------------------------------------------------------------------------

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF)
texts = st.text(st.one_of(st.characters(), surrogates, st.sampled_from('\x00\x1f"\\')), max_size=12)
numbers = st.one_of(
    st.integers(),
    st.integers(min_value=2**63 - 2, max_value=2**64 + 2),
    st.integers(min_value=300, max_value=500).map(lambda n: int("9" * n)),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, texts)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(texts, inner, max_size=4)),
    max_leaves=12,
)
deep = st.integers(min_value=MAX_DEPTH - 50, max_value=MAX_DEPTH + 200).map(
    lambda n: ("[" * n + "1" + "]" * n).encode()
) | st.integers(min_value=100, max_value=3000).map(lambda n: ('{"a":' * n + "1" + "}" * n).encode())
raw_bodies = st.one_of(st.binary(max_size=64), values.map(dumps), deep)


@FUZZ
@given(raw=raw_bodies, path=st.sampled_from(JSON_ROUTES))
def test_any_body_on_any_route(client, raw, path):
    post(client, path, raw)


@FUZZ
@given(
    raw=st.one_of(st.binary(max_size=200), texts.map(lambda t: t.encode("utf-8", "surrogatepass")))
)
def test_any_csv_body(client, raw):
    post(client, "/invocations", raw, "text/csv")


def mutated_bodies(row: dict[str, Any]) -> st.SearchStrategy[tuple[str, bytes]]:
    """A real row with one field (or a new key) set to any value, sent to each route."""

    def bodies(field: str, value: Any) -> list[tuple[str, bytes]]:
        bad = {**row, field: value}
        columns = list(bad)
        return [
            ("/predict", dumps(bad)),
            ("/predict/batch", dumps({"rows": [row, bad]})),
            ("/invocations", dumps({"dataframe_records": [bad]})),
            ("/invocations", dumps({"dataframe_split": {"columns": columns,
                                                        "data": [[bad[c] for c in columns]]}})),
            (f"/v2/models/{MODEL}/infer", dumps(v2_body([bad], id=value))),
            ("/feedback", dumps({"labels": [{"request_id": "r1", "row": value, "label": 1}]})),
            ("/feedback", dumps({"labels": [{"request_id": value, "label": value}]})),
            ("/feedback", dumps({"labels": [{"id": value, "label": 1}]})),
        ]  # fmt: skip

    fields = st.sampled_from([*row, "unknown_field"]) | texts
    return st.builds(bodies, fields, values).flatmap(st.sampled_from)


def test_real_rows_with_one_field_mutated(client, test_rows):
    @FUZZ
    @given(case=mutated_bodies(test_rows[0]))
    def run(case):
        post(client, *case)

    run()


DEEP_VALUE = "[" * 1000 + "1" + "]" * 1000  # within MAX_DEPTH: orjson reads it, the route gets it


@pytest.mark.parametrize(
    ("path", "raw"),
    [
        pytest.param(
            "/feedback",
            f'{{"labels": [{{"request_id": "r", "label": {DEEP_VALUE}}}]}}',
        ),
        pytest.param(
            f"/v2/models/{MODEL}/infer",
            f'{{"id": {"[" * 300 + "]" * 300}, "inputs": ROWS}}',
        ),
    ],
)
def test_deep_values_within_the_limit_reach_no_5xx(client, test_rows, path, raw):
    inputs = json.dumps(v2_body(test_rows[:1])["inputs"])
    assert post(client, path, raw.replace("ROWS", inputs).encode()).status_code < 500
