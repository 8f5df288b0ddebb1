"""The shipped Prometheus configuration and rules: promtool, and a real Prometheus scraping Quire."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from lib.core.params import load_params
from lib.core.paths import PROJECT_ROOT
from lib.loop.replay import load_source, request_rows
from tests.conftest import tiny_training_overrides
from tests.server.helpers import free_port, real_server, stop

CONFIG = PROJECT_ROOT / "server" / "prometheus"
RULE_TESTS = Path(__file__).parent / "prometheus" / "rules_test.yml"
PROMTOOL = shutil.which("promtool")
PROMETHEUS = shutil.which("prometheus")
# CI installs Debian's prometheus package (.ci/run): there a missing binary fails, never skips
needs = pytest.mark.skipif(
    PROMETHEUS is None and not os.environ.get("CI"), reason="needs Debian's prometheus package"
)


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


@needs
def test_promtool_accepts_the_config_and_the_rules_pass_their_unit_tests():
    checked = promtool("check", "config", str(CONFIG / "prometheus.yml"))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout
    tested = promtool("test", "rules", str(RULE_TESTS))
    assert tested.returncode == 0, tested.stdout + tested.stderr


@needs
def test_promtool_refuses_a_broken_rule(tmp_path):
    """The check can fail: a rule whose expression names no valid query."""
    rules = yaml.safe_load((CONFIG / "rules.yml").read_text())
    rules["groups"][0]["rules"][0]["expr"] = "max by (instance) (quire_dataset_drift == "
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    assert promtool("check", "rules", str(tmp_path / "rules.yml")).returncode != 0


def prometheus_config(tmp_path: Path, target: str) -> Path:
    """The shipped config and rules, aimed at ``target``, scraping and evaluating every second.

    The rules' expressions are the shipped ones; only their ``for`` waits are dropped (minutes
    of waiting prove nothing here: promtool's unit tests cover them).
    """
    config = yaml.safe_load((CONFIG / "prometheus.yml").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["scrape_configs"][0]["static_configs"] = [{"targets": [target]}]
    rules = yaml.safe_load((CONFIG / "rules.yml").read_text())
    for group in rules["groups"]:
        for rule in group["rules"]:
            rule.pop("for", None)
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(rules))
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    return tmp_path / "prometheus.yml"


def firing(prometheus: str) -> dict[str, list[dict]]:
    """Prometheus's own view: alert name -> the labels of its firing alerts."""
    alerts = httpx.get(f"{prometheus}/api/v1/alerts", timeout=5).json()["data"]["alerts"]
    out: dict[str, list[dict]] = {}
    for alert in alerts:
        if alert["state"] == "firing":
            out.setdefault(alert["labels"]["alertname"], []).append(alert["labels"])
    return out


def wait_until_firing(prometheus: str, name: str, seconds: float = 60) -> list[dict]:
    deadline = time.monotonic() + seconds
    seen: dict[str, list[dict]] = {}
    while time.monotonic() < deadline:
        seen = firing(prometheus)
        if name in seen:
            return seen[name]
        time.sleep(0.5)
    pytest.fail(f"{name} did not fire within {seconds} s; firing: {sorted(seen)}")


@pytest.mark.slow
@needs
def test_a_real_prometheus_sees_quire_drift_fire_then_the_server_go_down(
    served_root, tmp_path, monkeypatch
):
    source = tmp_path / "source"
    frame, _ = load_source(load_params(overrides=[*tiny_training_overrides(source),
                                                  "generator.production.rows=300"]))  # fmt: skip
    live = {"WINDOW_ROWS": "300", "MIN_ROWS": "50", "EVERY_SECONDS": "0.5"}
    for key, value in live.items():
        monkeypatch.setenv(f"QUIRE__MONITOR__LIVE__{key}", value)
    # a user's setting, honoured live: the production batch shifts 3 of the 17 features (18%)
    monkeypatch.setenv("QUIRE__MONITOR__DRIFT_SHARE", "0.15")
    data = tmp_path / "data"
    # the served project's data (the champion's reference) without its prediction log
    shutil.copytree(served_root / "data", data, ignore=shutil.ignore_patterns("predictions"))
    port = free_port()
    with real_server(data, served_root / "mlruns", tmp_path / "server.log") as (base, proc):
        config = prometheus_config(tmp_path, base.removeprefix("http://"))
        prom = subprocess.Popen(
            [PROMETHEUS or "prometheus", f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}", f"--web.listen-address=127.0.0.1:{port}"],
            stdout=subprocess.DEVNULL, stderr=(tmp_path / "prometheus.log").open("w"),
        )  # fmt: skip
        prometheus = f"http://127.0.0.1:{port}"
        try:
            wait_until_scraped(prometheus)
            assert "QuireDatasetDrift" not in firing(prometheus)  # nothing served yet
            schema_names = httpx.get(f"{base}/model").json()["schema"]
            names = [c["name"] for c in schema_names["features"]]
            rows = request_rows(frame, names)
            for start in range(0, len(rows), 50):
                answer = httpx.post(f"{base}/predict/batch", json=rows[start : start + 50])
                assert answer.status_code == 200, answer.text
            drift = wait_until_firing(prometheus, "QuireDatasetDrift")
            features = {a["column"] for a in wait_until_firing(prometheus, "QuireFeatureDrift")}
            assert drift[0]["severity"] == "warning"
            assert "payment_method" in features  # the production batch's new payment method
            assert "QuireUnseenCategories" in firing(prometheus)
            empty = wait_for_dashboard_data(prometheus)
            assert not empty, f"dashboard panels with no data from a drifted, served Quire: {empty}"
            stop(proc)  # the server goes away: Prometheus cannot scrape it
            down = wait_until_firing(prometheus, "QuireDown")
            assert down[0]["instance"] == base.removeprefix("http://")
        finally:
            prom.terminate()
            prom.wait(timeout=30)


def wait_for_dashboard_data(prometheus: str, seconds: float = 30) -> list[str]:
    """Query the dashboard until every panel has data; the titles still empty at the deadline.

    A rate needs two scrapes of a series after the requests that created it: the drift alerts
    can fire from the first one (a scrape and an evaluation a second), and the latency panel
    then had no data yet (seen once in CI).
    """
    deadline = time.monotonic() + seconds
    empty = dashboard_queries_without_data(prometheus)
    while empty and time.monotonic() < deadline:
        time.sleep(0.5)
        empty = dashboard_queries_without_data(prometheus)
    return empty


def dashboard_queries_without_data(prometheus: str) -> list[str]:
    """Run every query of the shipped Grafana dashboard; the titles of panels with no series.

    A query Prometheus refuses fails the test.
    """
    dashboard = json.loads((CONFIG / "grafana-dashboard.json").read_text())
    empty = []
    for panel in dashboard["panels"]:
        series = 0
        for target in panel["targets"]:
            query = (target["expr"].replace("$job", "quire").replace("$instance", ".*")
                     .replace("$__rate_interval", "30s"))  # fmt: skip
            answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": query}, timeout=5)
            assert answer.status_code == 200, (panel["title"], query, answer.text)
            series += len(answer.json()["data"]["result"])
        if not series:
            empty.append(panel["title"])
    return empty


def wait_until_scraped(prometheus: str, seconds: float = 60) -> None:
    """Wait for Prometheus to answer and to have scraped its target once."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            targets = httpx.get(f"{prometheus}/api/v1/targets", timeout=2).json()
            active = targets["data"]["activeTargets"]
            if active and active[0]["health"] == "up":
                return
        except (httpx.HTTPError, ValueError, KeyError):
            pass
        time.sleep(0.3)
    pytest.fail("Prometheus did not scrape Quire within 60 s")
