"""Operations: reload during traffic, alias polling, CORS."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from fastapi.testclient import TestClient

from server.config import Settings
from server.main import create_app
from tests.server.conftest import move_champion

pytestmark = pytest.mark.slow


def test_reload_during_traffic_swaps_atomically(served_params, test_rows, second_version):
    old, new = second_version
    app = create_app(Settings(prediction_log=False), served_params)

    async def scenario():
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://quire") as client:
                stop = asyncio.Event()

                async def traffic(i):
                    seen = []
                    while not stop.is_set():
                        path, body = (
                            ("/predict", test_rows[i])
                            if i % 2
                            else ("/predict/batch", test_rows[:20])
                        )
                        r = await client.post(path, json=body)
                        assert r.status_code == 200, r.text
                        seen.append(r.json()["model"]["version"])
                        # In process nothing else yields (small predictions run inline), so
                        # let the other tasks run, as a network server does between requests.
                        await asyncio.sleep(0)
                    return seen

                workers = [asyncio.create_task(traffic(i)) for i in range(6)]
                await asyncio.sleep(0.5)
                move_champion(served_params, new)
                reloaded = await client.post("/admin/reload")
                await asyncio.sleep(0.5)
                stop.set()
                return reloaded, await asyncio.gather(*workers)

    reloaded, seen = asyncio.run(scenario())
    assert reloaded.json()["version"] == new
    for versions in seen:
        assert versions[0] == old and versions[-1] == new
        # Once a worker has been answered by the new model it never sees the old one again.
        assert versions == sorted(versions, key=lambda v: v == new)


def test_polling_follows_the_champion_alias(served_params, second_version):
    old, new = second_version
    app = create_app(Settings(prediction_log=False, poll_seconds=0.2), served_params)
    with TestClient(app) as client:
        assert client.get("/model").json()["version"] == old
        move_champion(served_params, new)
        deadline = time.monotonic() + 30
        while client.get("/model").json()["version"] != new:
            assert time.monotonic() < deadline, "the server did not follow the alias in 30 s"
            time.sleep(0.1)
        assert "quire_model_info" in client.get("/metrics").text


def preflight(client, origin):
    return client.options(
        "/predict",
        headers={"Origin": origin, "Access-Control-Request-Method": "POST"},
    )


def test_cors_is_off_unless_configured(served_params):
    with TestClient(create_app(Settings(prediction_log=False), served_params)) as client:
        answer = preflight(client, "https://dash.example")
        assert "access-control-allow-origin" not in answer.headers
        assert (
            "access-control-allow-origin"
            not in client.get("/health/live", headers={"Origin": "https://dash.example"}).headers
        )
    settings = Settings(prediction_log=False, cors_origins=["https://dash.example"])
    with TestClient(create_app(settings, served_params)) as client:
        allowed = preflight(client, "https://dash.example")
        assert allowed.status_code == 200
        assert allowed.headers["access-control-allow-origin"] == "https://dash.example"
        refused = preflight(client, "https://evil.example")
        assert "access-control-allow-origin" not in refused.headers
