"""The Open Inference Protocol (V2): its own client, unmodified, and the raw protocol's cases."""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np
import pytest

from lib.serving.contract import check_rows
from tests.server.helpers import quiet_client, real_server, v2_body

tritonclient = pytest.importorskip("tritonclient.http")
from tritonclient.utils import InferenceServerException  # noqa: E402

MODEL = "quire-churn"
INFER = f"/v2/models/{MODEL}/infer"
BOOLEANS = {"is_senior", "has_partner", "paperless_billing", "auto_pay"}


@pytest.fixture(scope="module")
def client(served_params):
    with quiet_client(served_params) as c:
        yield c


@pytest.fixture(scope="module")
def datatypes(client) -> dict[str, str]:
    return {i["name"]: i["datatype"] for i in client.get(f"/v2/models/{MODEL}").json()["inputs"]}


@pytest.fixture(scope="module")
def expected(client, test_rows) -> tuple[np.ndarray, np.ndarray]:
    model = client.app.state.serving.current()
    return model.predict(check_rows(test_rows, model.schema))


def complete(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose only missing values are numbers (a BOOL or BYTES tensor has no null)."""
    return [r for r in rows if all(v is not None for k, v in r.items() if isinstance(v, str | bool)
            or k in BOOLEANS or k in {"region", "payment_method", "contract_type", "plan_tier"})]  # fmt: skip


def triton_inputs(rows, datatypes, binary: bool) -> list[Any]:
    """One ``InferInput`` per column, with NumPy data of the metadata's datatype."""
    inputs = []
    for name, datatype in datatypes.items():
        values = [r[name] for r in rows]
        if datatype == "FP64":
            array = np.array([np.nan if v is None else v for v in values], dtype=np.float64)
        elif datatype == "BOOL":
            array = np.array(values, dtype=bool)
        else:
            array = np.array(values, dtype=object)
        tensor = tritonclient.InferInput(name, [len(rows)], datatype)
        tensor.set_data_from_numpy(array, binary_data=binary)
        inputs.append(tensor)
    return inputs


# ----------------------------------------------------------------------------- the real client
@pytest.mark.slow
def test_the_protocols_own_client_works_unmodified(served_root, test_rows, tmp_path, expected):
    rows = complete(test_rows)
    index = [test_rows.index(r) for r in rows]
    labels, proba = expected[0][index], expected[1][index]
    key = {"X-API-Key": "s3cret"}  # copied for each call: tritonclient adds its own headers to it
    with (
        real_server(served_root / "data", served_root / "mlruns", tmp_path / "server.log",
                    prediction_log="false", api_key="s3cret") as (base, _),
        tritonclient.InferenceServerClient(base.removeprefix("http://")) as triton,
    ):  # fmt: skip
        assert triton.is_server_live() and triton.is_server_ready()
        server = triton.get_server_metadata()
        assert server["name"] == "quire" and "binary_tensor_data" in server["extensions"]
        assert triton.is_model_ready(MODEL, headers=dict(key))
        assert triton.is_model_ready(MODEL, "1", headers=dict(key))
        assert not triton.is_model_ready(MODEL, "7", headers=dict(key))
        assert not triton.is_model_ready("other", headers=dict(key))
        meta = triton.get_model_metadata(MODEL, headers=dict(key))
        assert triton.get_model_metadata(MODEL, "1", headers=dict(key)) == meta
        assert meta["versions"] == ["1"]
        assert {o["name"]: o["datatype"] for o in meta["outputs"]} == {
            "predict": "INT64", "predict_proba": "FP64"}  # fmt: skip
        datatypes = {i["name"]: i["datatype"] for i in meta["inputs"]}
        for binary in (False, True):
            inputs = triton_inputs(rows, datatypes, binary)
            # no outputs named: the client asks for all of them as binary data
            result = triton.infer(MODEL, inputs, request_id="req-1", headers=dict(key))
            assert result.get_response()["id"] == "req-1"
            assert result.as_numpy("predict").tolist() == labels.tolist()
            assert result.as_numpy("predict").dtype == np.int64
            np.testing.assert_allclose(result.as_numpy("predict_proba"), proba, rtol=1e-12)
            for compression in ("gzip", "deflate"):  # the client may compress its request
                result = triton.infer(MODEL, inputs, headers=dict(key),
                                      request_compression_algorithm=compression)  # fmt: skip
                assert result.as_numpy("predict").tolist() == labels.tolist()
            for as_binary in (False, True):  # each output alone, as JSON and as binary data
                only = [tritonclient.InferRequestedOutput("predict_proba", binary_data=as_binary)]
                result = triton.infer(MODEL, inputs, "1", outputs=only, headers=dict(key))
                assert [o["name"] for o in result.get_response()["outputs"]] == ["predict_proba"]
                assert result.as_numpy("predict") is None
                np.testing.assert_allclose(result.as_numpy("predict_proba"), proba, rtol=1e-12)
                only = [tritonclient.InferRequestedOutput("predict", binary_data=as_binary)]
                result = triton.infer(MODEL, inputs, "1", outputs=only, headers=dict(key))
                assert [o["name"] for o in result.get_response()["outputs"]] == ["predict"]
                assert result.as_numpy("predict_proba") is None
                assert result.as_numpy("predict").tolist() == labels.tolist()
        refusals = {
            "404": (lambda: triton.infer(MODEL, inputs, "7", headers=dict(key)),
                    "model 'quire-churn' has no version '7' here; this server serves version '1'"),
            "400": (lambda: triton.infer(MODEL, inputs, outputs=[
                        tritonclient.InferRequestedOutput("score")], headers=dict(key)),
                    "output 'score': no such output; this model's outputs are predict, "
                    "predict_proba"),
            "401": (lambda: triton.get_model_metadata(MODEL),  # a dependency's error
                    "missing or wrong API key; send it in the X-API-Key header"),
        }  # fmt: skip
        for status, (call, message) in refusals.items():
            with pytest.raises(InferenceServerException) as refused:
                call()
            assert (refused.value.status(), refused.value.message()) == (status, message)
            assert str(refused.value) == f"[{status}] {message}"


# ----------------------------------------------------------------------------- raw protocol
def binary_request(body: dict[str, Any], blobs: list[bytes]) -> tuple[bytes, dict[str, str]]:
    """A request of the binary tensor data extension: the JSON header, then the tensors."""
    import orjson

    head = orjson.dumps(body)
    return head + b"".join(blobs), {"Inference-Header-Content-Length": str(len(head))}


def bytes_tensor(values: list[str]) -> bytes:
    return b"".join(struct.pack("<I", len(v.encode())) + v.encode() for v in values)


def test_no_content_type_is_read_as_json(client, test_rows, datatypes):
    import orjson

    body = orjson.dumps(v2_body(test_rows[:2], datatypes))
    answer = client.post(INFER, content=body, headers={"content-type": ""})
    assert answer.status_code == 200, answer.text
    refused = client.post(INFER, content=body, headers={"content-type": "text/csv"})
    assert refused.status_code == 415
    assert refused.json() == {
        "error": "send the body as application/json (or with no content type)"
    }


def test_server_metadata_and_model_readiness(client):
    server = client.get("/v2").json()
    assert server == {"name": "quire", "version": "0.1.0", "extensions": ["binary_tensor_data"]}
    assert client.get(f"/v2/models/{MODEL}/ready").json() == {"name": MODEL, "ready": True}
    assert client.get(f"/v2/models/{MODEL}/versions/1/ready").status_code == 200
    meta = client.get(f"/v2/models/{MODEL}/versions/1")
    assert meta.json() == client.get(f"/v2/models/{MODEL}").json()


@pytest.mark.parametrize(
    ("method", "path", "status", "message"),
    [
        ("get", "/v2/models/other", 404, "no model 'other' here; this server serves 'quire-churn'"),
        ("get", "/v2/models/other/ready", 404,
         "no model 'other' here; this server serves 'quire-churn'"),
        ("get", f"/v2/models/{MODEL}/versions/2", 404,
         "model 'quire-churn' has no version '2' here; this server serves version '1'"),
        ("get", f"/v2/models/{MODEL}/versions/2/ready", 404,
         "model 'quire-churn' has no version '2' here; this server serves version '1'"),
        ("post", f"/v2/models/{MODEL}/versions/2/infer", 404,
         "model 'quire-churn' has no version '2' here; this server serves version '1'"),
        ("get", "/v2/nothing/here", 404, "Not Found"),
        ("get", INFER, 405, "Method Not Allowed"),
    ],
)  # fmt: skip
def test_every_v2_error_is_a_string(client, method, path, status, message):
    answer = getattr(client, method)(path)
    assert answer.status_code == status
    assert answer.json() == {"error": message}


def test_not_loaded_is_503_with_a_string_error(client, test_rows, datatypes, monkeypatch):
    monkeypatch.setattr(client.app.state.serving, "model", None)
    message = {"error": "the model is not loaded yet; retry shortly"}
    for answer in (
        client.get(f"/v2/models/{MODEL}"),
        client.get(f"/v2/models/{MODEL}/ready"),
        client.post(INFER, json=v2_body(test_rows[:1], datatypes)),
    ):
        assert answer.status_code == 503 and answer.json() == message


def test_binary_inputs_and_outputs(client, test_rows, datatypes, expected):
    rows = complete(test_rows)[:3]
    index = [test_rows.index(r) for r in rows]
    tensors, blobs = [], []
    for name, datatype in datatypes.items():
        values = [r[name] for r in rows]
        if datatype == "BYTES":
            blob = bytes_tensor(values)
        else:
            blob = np.array([np.nan if v is None else v for v in values], dtype=
                            "<f8" if datatype == "FP64" else "?").tobytes()  # fmt: skip
        blobs.append(blob)
        parameters = {"binary_data_size": len(blob)}
        tensors.append({"name": name, "shape": [3], "datatype": datatype, "parameters": parameters})
    request = {"inputs": tensors, "outputs": [
        {"name": "predict", "parameters": {"binary_data": True}}, {"name": "predict_proba"}]}  # fmt: skip
    content, headers = binary_request(request, blobs)
    answer = client.post(INFER, content=content, headers=headers)
    assert answer.status_code == 200, answer.text
    size = int(answer.headers["inference-header-content-length"])
    import orjson

    header = orjson.loads(answer.content[:size])
    predict, proba = header["outputs"]
    assert predict == {"name": "predict", "shape": [3], "datatype": "INT64",
                       "parameters": {"binary_data_size": 24}}  # fmt: skip
    labels = np.frombuffer(answer.content[size:], dtype="<i8")
    assert labels.tolist() == expected[0][index].tolist()
    assert proba["datatype"] == "FP64"
    np.testing.assert_allclose(proba["data"], expected[1][index].ravel(), rtol=1e-12)


def test_float32_and_integer_tensors_are_numbers(client, test_rows, datatypes, expected):
    rows = complete(test_rows)[:2]
    body = v2_body(rows, datatypes)
    for tensor in body["inputs"]:
        if tensor["name"] == "support_calls":
            tensor["datatype"], tensor["data"] = "INT32", [int(v) for v in tensor["data"]]
    answer = client.post(INFER, json=body)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda b: b["inputs"][1].update(datatype="BYTES", data=["1", "2"]),
         "input 'age': datatype BYTES does not fit this column (numeric); send it as FP64 or "
         "FP16 or FP32"),
        (lambda b: b["inputs"][1].update(data=["1", "2"]),
         "input 'age': declared FP64, but element 0 is the string '1'; send the values as FP64 "
         "or declare the datatype they have"),
        (lambda b: b["inputs"][14].update(datatype="FP64"),
         "input 'is_senior': datatype FP64 does not fit this column (boolean); send it as BOOL"),
        (lambda b: b["inputs"][2].update(data=[1, None]),
         "input 'region': declared BYTES, but element 0 is int; send the values as BYTES or "
         "declare the datatype they have"),
        (lambda b: b["inputs"][2].update(datatype="BF16"),
         "input 'region': unknown or unsupported datatype 'BF16'"),
        (lambda b: b["inputs"][1].update(shape=[2, 2]),
         "input 'age': shape [2, 2] does not fit its 2 values; send one value per row, shape [2]"),
        (lambda b: b.update(id=7), "id: expected a string, got int; send the id as a string"),
        (lambda b: b.update(outputs=[{"name": "score"}]),
         "output 'score': no such output; this model's outputs are predict, predict_proba"),
        (lambda b: b.update(outputs=[{"name": "predict", "parameters": {"binary_data": 1}}]),
         "output 'predict': parameters.binary_data: expected true or false, got int"),
        (lambda b: b.update(parameters={"binary_data_output": "yes"}),
         "parameters.binary_data_output: expected true or false, got str"),
        (lambda b: b["inputs"].append(dict(b["inputs"][1])),
         "input 'age': sent twice; send each column once"),
        (lambda b: b["inputs"][1].update(parameters={"binary_data_size": 16}),
         "input 'age': parameters.binary_data_size says 16 bytes, but only 0 bytes of binary "
         "data are left"),
    ],
)  # fmt: skip
def test_bad_requests_are_400_naming_the_input(client, test_rows, datatypes, change, message):
    body = v2_body(complete(test_rows)[:2], datatypes)
    assert [t["name"] for t in body["inputs"]][:3] == ["signup_date", "age", "region"]
    assert body["inputs"][14]["name"] == "is_senior"
    change(body)
    answer = client.post(INFER, json=body)
    assert answer.status_code == 400
    assert answer.json() == {"error": message}


def test_bad_binary_bodies_are_400(client):
    name = {"name": "region", "shape": [1], "datatype": "BYTES"}
    cases = {
        "x": (b"{}", "Inference-Header-Content-Length: expected the byte length of the JSON part "
                     "(0 to 2), got 'x'"),
        "99": (b"{}", "Inference-Header-Content-Length: expected the byte length of the JSON "
                      "part (0 to 2), got '99'"),
    }  # fmt: skip
    cases["9" * 5000] = (b"{}", "Inference-Header-Content-Length: expected the byte length of "
                         f"the JSON part (0 to 2), got {'9' * 40!r}")  # fmt: skip
    for header, (content, message) in cases.items():
        answer = client.post(
            INFER, content=content, headers={"Inference-Header-Content-Length": header}
        )
        assert answer.status_code == 400 and answer.json() == {"error": message}
    request = {"inputs": [{**name, "parameters": {"binary_data_size": 6}}]}
    content, headers = binary_request(request, [struct.pack("<I", 50) + b"ab"])
    answer = client.post(INFER, content=content, headers=headers)
    assert answer.json() == {
        "error": "input 'region': a BYTES element of 50 bytes runs past its data"
    }
    content, headers = binary_request({"inputs": [{**name, "data": ["a"]}]}, [b"extra"])
    assert client.post(INFER, content=content, headers=headers).json() == {
        "error": "the body has 5 bytes of binary data after the JSON, but the inputs' "
        "binary_data_size add up to 0"
    }


def test_v2_predictions_are_counted(client, test_rows, datatypes):
    def counted() -> float:
        text = client.get("/metrics").text
        lines = [x for x in text.splitlines() if x.startswith("quire_predictions_total{")]
        return sum(float(x.rsplit(" ", 1)[1]) for x in lines)

    before = counted()
    assert client.post(INFER, json=v2_body(test_rows[:4], datatypes)).status_code == 200
    assert counted() == before + 4


def test_deeply_nested_values_are_a_400_not_a_500(client, test_rows, datatypes):
    deep: Any = "x"
    for _ in range(900):  # deep enough that a repr of it overflows the server's stack
        deep = [deep]
    body = v2_body(complete(test_rows)[:2], datatypes)
    body["inputs"][2]["data"][0] = deep
    answer = client.post(INFER, content=json.dumps(body))
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "input 'region': declared BYTES, but element 0 is list; send the values as "
        "BYTES or declare the datatype they have"
    }
    body["inputs"][2]["data"][0] = "north"
    body["inputs"][2]["shape"] = deep
    answer = client.post(INFER, content=json.dumps(body))
    assert answer.status_code == 400
    assert answer.json() == {
        "error": "input 'region': shape list does not fit its 2 values; send one value per row, "
        "shape [2]"
    }
    body["inputs"][2]["datatype"] = deep
    answer = client.post(INFER, content=json.dumps(body))
    assert answer.status_code == 400
    assert answer.json() == {"error": "input 'region': unknown or unsupported datatype list"}


def test_compressed_bodies_are_read_within_the_size_limit(client, test_rows, datatypes):
    import gzip
    import zlib

    import orjson

    body = orjson.dumps(v2_body(test_rows[:2], datatypes))
    for encoding, packed in (("gzip", gzip.compress(body)), ("deflate", zlib.compress(body))):
        answer = client.post(INFER, content=packed, headers={"Content-Encoding": encoding})
        assert answer.status_code == 200, (encoding, answer.text)
    limit = client.app.state.serving.settings.max_body_bytes
    bomb = gzip.compress(b" " * (limit + 1))  # a few kilobytes that expand past the limit
    answer = client.post(INFER, content=bomb, headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 413
    assert answer.json() == {"error": f"the body exceeds {limit:,} bytes once decompressed"}
    answer = client.post(INFER, content=body, headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 400
    assert answer.json() == {"error": "the body is not valid gzip data"}
    answer = client.post(INFER, content=body, headers={"Content-Encoding": "br"})
    assert answer.status_code == 415
    assert answer.json() == {"error": "Content-Encoding 'br': send gzip, deflate or none"}
