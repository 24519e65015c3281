"""The web app's endpoints are module-level functions over one `WebState` (issue 25): each can be
called alone, with a bare request, no server and no app around it."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest

from quickart_daemon.errors import InvalidTransition
from quickart_daemon.naming import ShotId
from quickart_daemon.queue import JobState, open_queue
from quickart_daemon.web import app as web_app
from starlette.requests import Request


def _request(web: web_app.WebState, path: str = "/", query: bytes = b"", path_params: dict | None = None,
             headers: list | None = None) -> Request:
    scope = {"type": "http", "method": "GET", "path": path, "query_string": query, "headers": headers or [],
             "path_params": path_params or {}, "app": SimpleNamespace(state=SimpleNamespace(web=web)),
             "client": ("203.0.113.9", 5000), "server": ("127.0.0.1", 8750)}
    return Request(scope)


@pytest.fixture
def web(make_config):
    cfg = make_config()
    jq = open_queue(cfg)
    jq.enqueue(ShotId("DEMO", "sq010", "sh0010"), "DEMO/sq010/sh0010", "default")
    jq.enqueue(ShotId("DEMO", "sq010", "sh0020"), "DEMO/sq010/sh0020", "default")
    state = web_app.WebState.create(cfg)
    yield state
    state.feed.stop()


def test_the_farm_endpoint_alone(web):
    answer = web_app.api_farm(_request(web, "/api/farm", b"shot=sh0020"))
    data = json.loads(answer.body)
    assert [j["shot_rel"] for j in data["jobs"]] == ["DEMO/sq010/sh0020"]
    assert data["counts"] == {"queued": 2} and data["nodes"] == []
    assert data["filters"] == {"state": [], "shot": "sh0020", "limit": web_app.FIRST_ROWS}


def test_a_job_endpoint_and_a_write_action_alone(web):
    job = json.loads(web_app.api_job(_request(web, "/api/jobs/1", path_params={"id": "1"})).body)
    assert (job["id"], job["state"], job["retry_from"]) == (1, "queued", [])
    assert web_app.act_on_job(web, 1, "cancel", {}).state is JobState.CANCELLED
    with pytest.raises(InvalidTransition):
        web_app.act_on_job(web, 1, "priority", {"priority": 5})
    assert web.queue() is web.queue()  # opened once


def test_writes_need_the_token_and_errors_are_one_sentence_alone(web):
    request = _request(web, "/api/jobs/2/cancel", headers=[(b"host", b"127.0.0.1:8750")])
    with pytest.raises(web_app.Forbidden, match="write actions are off"):
        web_app.require_writer(web, request)  # no token in the config, and a visitor from elsewhere
    assert web_app.writer(web, request) == {"writable": False, "local_user": None}
    answer = asyncio.run(web_app.on_error(request, web_app.Forbidden(f"{web.cfg.root.resolve()}/DEMO: no")))
    assert answer.status_code == 403 and json.loads(answer.body) == {"error": "DEMO: no"}  # paths inside the root
    assert web_app.sentence(web.cfg, OSError(f"{web.cfg.root.resolve()} is full")) == "studio root is full"
