"""One status model (status.py): `quickart status`, `quickart nodes` and the web page agree on which
nodes are alive, and the database decides it (its state column and its clock)."""

from __future__ import annotations

import json
from datetime import timedelta

from quickart_daemon.cli import main
from quickart_daemon.db import reads
from quickart_daemon.db.models import Node, utcnow
from quickart_daemon.nodes import NodeRegistry
from quickart_daemon.queue import open_queue
from quickart_daemon.status import read_status
from quickart_daemon.web.feed import nodes_view


def test_status_nodes_and_the_page_agree_on_alive(make_config, db_url, capsys):
    cfg = make_config(database={"url": db_url})
    jq = open_queue(cfg)
    registry = NodeRegistry(jq.db, jq)
    for name in ("up-node", "down-node", "silent-node", "stopped-node"):
        registry.heartbeat(name, 7, ["cpu.0"], "native", starting=True)
    registry.heartbeat("stopped-node", 7, ["cpu.0"], "native", stopping=True)
    with jq.sessions.begin() as s:
        s.get(Node, "down-node").state = "down"  # marked down by another node, its last beat still recent
        s.get(Node, "silent-node").heartbeat_at = utcnow() - timedelta(minutes=5)
    expected = {"up-node": True, "down-node": False, "silent-node": False, "stopped-node": False}

    with reads.open_reader(cfg.database.url, cfg.database.busy_timeout_ms) as run:
        status = read_status(run)
        page = {n["name"]: n["alive"] for n in nodes_view(run, [])}
    assert {n.name: n.alive for n in status.nodes} == expected
    assert page == expected
    assert [s["node"] for s in status.slots()] == ["up-node"]  # only an alive node's slots are offered

    assert main(["--config", str(cfg.source), "nodes", "--json"]) == 0
    assert {n["name"]: n["alive"] for n in json.loads(capsys.readouterr().out)} == expected
    assert main(["--config", str(cfg.source), "nodes"]) == 0
    table = capsys.readouterr().out
    assert "silent-node   silent" in table and "down-node     down" in table, table
    assert main(["--config", str(cfg.source), "status", "--json"]) == 0
    assert {n["node"]: n["alive"] for n in json.loads(capsys.readouterr().out)["nodes"]} == expected


def test_the_database_clock_reads_as_naive_utc(make_config, db_url):
    cfg = make_config(database={"url": db_url})
    open_queue(cfg)
    with reads.open_reader(cfg.database.url, cfg.database.busy_timeout_ms) as run:
        now = reads.database_now(run)
    assert now.tzinfo is None and abs((now - utcnow()).total_seconds()) < 5
