"""Alert rules, the alerts history file, and webhook delivery to a local HTTP server."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from lib.core.param_sections import AlertParams
from lib.monitoring.alerts import (
    Alert,
    Facts,
    append_history,
    dispatch,
    evaluate_rules,
    send_webhook,
)


class Receiver:
    """A webhook receiver on 127.0.0.1 answering with the given statuses in turn."""

    def __init__(self, statuses: list[int]) -> None:
        self.statuses = statuses
        self.bodies: list[dict] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["Content-Length"])
                receiver.bodies.append(json.loads(self.rfile.read(length)))
                status = receiver.statuses[min(len(receiver.bodies), len(receiver.statuses)) - 1]
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook?token=secret"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def facts(**kw) -> Facts:
    base = {
        "dataset_drift": False,
        "drifted_share": 0.0,
        "drifted": [],
        "prediction_drifted": [],
        "missing_jumps": {},
        "metric_drops": [],
        "concept_drift": False,
    }
    return Facts(**(base | kw))


RULES = AlertParams(key_features=["monthly_charges"], metric_drop={"roc_auc": 0.05})


def test_quiet_run_fires_nothing():
    assert evaluate_rules(facts(), RULES) == []


def test_each_rule_fires_on_its_fact_and_critical_ones_come_first():
    fired = evaluate_rules(
        facts(
            drifted_share=0.4,
            drifted=["monthly_charges", "region"],
            prediction_drifted=["proba_1"],
            missing_jumps={"age": 0.25, "region": 0.05},
            metric_drops=[{"metric": "roc_auc", "reference": 0.8, "current": 0.7, "drop": 0.1}],
            concept_drift=True,
            concept_reason="the error rate rose",
        ),
        RULES,
    )
    rules = [a.rule for a in fired]
    assert set(rules) == {
        "drift_share",
        "key_feature",
        "prediction_drift",
        "missing_jump",
        "metric_drop",
        "concept_drift",
    }
    assert all(a.severity == "critical" for a in fired[:3])
    missing = next(a for a in fired if a.rule == "missing_jump")
    assert missing.details["columns"] == {"age": 0.25}  # 0.05 is under the 0.1 limit


def test_dataset_drift_replaces_the_share_rule_and_rules_can_be_turned_off():
    both = facts(dataset_drift=True, drifted_share=0.6, drifted=["a", "b", "c"])
    assert [a.rule for a in evaluate_rules(both, RULES)] == ["dataset_drift"]
    off = AlertParams(dataset_drift=False, drift_share=None)
    assert evaluate_rules(both, off) == []


def test_webhook_delivers_the_alerts_as_json(tmp_path):
    alert = Alert("key_feature", "critical", "key features drifted: x", {"columns": ["x"]})
    with Receiver([200]) as hook:
        delivery = dispatch([alert], RULES, tmp_path / "alerts.jsonl", {"run_id": "r1"}, hook.url)
    assert delivery is not None and delivery.delivered and delivery.attempts == 1
    assert "secret" not in str(delivery.url)  # tokens in the URL stay out of logs and results
    assert hook.bodies == [
        {
            "run_id": "r1",
            "alerts": [
                {
                    "rule": "key_feature",
                    "severity": "critical",
                    "message": "key features drifted: x",
                    "details": {"columns": ["x"]},
                }
            ],
        }
    ]
    lines = (tmp_path / "alerts.jsonl").read_text().splitlines()
    assert [json.loads(x)["rule"] for x in lines] == ["key_feature"]


def test_failing_webhook_is_retried_with_backoff_then_reported_not_raised():
    waits: list[float] = []
    rules = AlertParams(webhook_retries=3, webhook_backoff=0.5)
    with Receiver([500, 503, 200]) as hook:
        delivery = send_webhook({"a": 1}, rules, hook.url, sleep=waits.append)
    assert delivery.delivered and delivery.attempts == 3
    assert waits == [0.5, 1.0]
    with Receiver([500]) as hook:
        delivery = send_webhook({"a": 1}, rules, hook.url, sleep=waits.append)
    assert not delivery.delivered and delivery.attempts == 4 and delivery.error == "HTTP 500"


def test_refused_payload_is_not_retried():
    with Receiver([400]) as hook:
        delivery = send_webhook({"a": 1}, AlertParams(), hook.url, sleep=lambda s: None)
    assert not delivery.delivered and delivery.attempts == 1 and len(hook.bodies) == 1


def test_unreachable_webhook_times_out_and_is_logged_not_raised():
    with Receiver([200]) as hook:
        url = hook.url
    rules = AlertParams(webhook_retries=1, webhook_timeout=0.5)
    delivery = send_webhook({"a": 1}, rules, url, sleep=lambda s: None)
    assert not delivery.delivered and delivery.attempts == 2
    assert "ConnectError" in str(delivery.error)


def test_no_webhook_configured_is_not_an_error(monkeypatch):
    monkeypatch.delenv("QUIRE_ALERT_WEBHOOK_URL", raising=False)
    delivery = send_webhook({"a": 1}, AlertParams())
    assert not delivery.delivered and delivery.attempts == 0


def test_history_file_only_grows(tmp_path):
    path = tmp_path / "deep" / "alerts.jsonl"
    append_history(path, [Alert("a", "warning", "one")], {"run_id": "1"})
    before = path.read_bytes()
    append_history(path, [], {"run_id": "2"})
    append_history(path, [Alert("b", "critical", "two")], {"run_id": "3"})
    assert path.read_bytes().startswith(before)
    assert [json.loads(x)["run_id"] for x in path.read_text().splitlines()] == ["1", "3"]


def test_window_rules_name_their_windows_in_time_order_and_can_be_turned_off():
    import pandas as pd

    from lib.monitoring.alerts import window_facts

    def table(rows, **cols):
        return pd.DataFrame([{"period": p, "window": w, **dict(zip(cols, v, strict=True))}
                             for p, w, *v in rows])  # fmt: skip

    drift = table(
        [("reference", "w2", "x", True), ("current", "w1", "x", False),
         ("current", "w2", "y", True), ("current", "w3", "x", True), ("current", "w2", "x", True)],
        column=None, alert=None,
    )  # fmt: skip
    perf = table(
        [("current", "w1", "roc_auc", False, True), ("current", "w3", "roc_auc", True, False)],
        metric=None, alert_estimated=None, alert_realized=None,
    )  # fmt: skip
    quality = table([("current", "w3", "plan", True)], column=None, alert=None)
    multi = table([("current", "w2", "pca_reconstruction", True)], method=None, alert=None)
    w = window_facts(drift, multi, quality, perf)
    assert w.drift == {"w2": ["y", "x"], "w3": ["x"]}  # the reference's own window never alerts
    fired = {a.rule: a for a in evaluate_rules(facts(windows=w), RULES)}
    assert set(fired) == {
        "window_drift", "multivariate", "estimated_performance", "realized_performance",
        "data_quality",
    }  # fmt: skip
    assert fired["window_drift"].message.endswith("in 2 window(s): w2: y, x; w3: x")
    assert fired["realized_performance"].details == {"windows": {"w1": ["roc_auc"]}}
    assert fired["estimated_performance"].severity == "critical"
    assert fired["multivariate"].details == {"windows": ["w2"]}
    off = AlertParams(window_drift=False, multivariate=False, data_quality=False,
                      estimated_performance=False, realized_performance=False)  # fmt: skip
    assert evaluate_rules(facts(windows=w), off) == []
    # the alerts the diagnosis set aside as lone ones chance explains raise nothing
    lone = window_facts(drift, multi, quality, perf, chance={"w3": ["x"], "w2": ["multivariate"]})
    assert lone.drift == {"w2": ["y", "x"]} and lone.multivariate == []
    fired = {a.rule: a for a in evaluate_rules(facts(windows=lone), RULES)}
    assert "multivariate" not in fired
    assert fired["window_drift"].message.endswith("in 1 window(s): w2: y, x")
