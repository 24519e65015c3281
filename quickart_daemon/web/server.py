"""Running the web page: in the foreground (`quickart web`) or on a thread of the daemon."""

from __future__ import annotations

import logging
import threading

import uvicorn

from ..config import Config
from .app import create_app

log = logging.getLogger("quickart.web")


def _server(cfg: Config, host: str | None = None, port: int | None = None) -> uvicorn.Server:
    app = create_app(cfg)
    config = uvicorn.Config(app, host=host or cfg.web.host, port=port if port is not None else cfg.web.port,
                            log_level="warning", access_log=False, timeout_graceful_shutdown=2,
                            server_header=False, proxy_headers=False)
    server = uvicorn.Server(config)
    server.app_feed = app.state.feed
    return server


def serve(cfg: Config, host: str | None = None, port: int | None = None) -> int:
    """`quickart web`: serve until interrupted."""
    server = _server(cfg, host, port)
    log.info("action=web_ready url=http://%s:%s/ writable=%s", server.config.host, server.config.port,
             bool(cfg.web.token))
    try:
        server.run()
    finally:
        server.app_feed.stop()
    return 0


class WebThread:
    """The page served from the daemon's own process (its main thread runs the daemon's loop)."""

    def __init__(self, cfg: Config):
        self.server = _server(cfg)
        self.thread = threading.Thread(target=self.server.run, name="quickart-web", daemon=True)

    def start(self) -> "WebThread":
        self.thread.start()
        log.info("action=web_ready url=http://%s:%s/", self.server.config.host, self.server.config.port)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.server.app_feed.stop()
        self.thread.join(timeout=10)
