"""Logging: one line per event on stdout (journald adds time and host), and each job's own log.

The job log is a file in the job's staging folder, so it travels into the published
version: a header saying what ran where, every log line of the job's stages, the
traceback of anything unexpected, and a footer with the outcome and peak memory.
"""

from __future__ import annotations

import logging
import resource
import sys
import time
from pathlib import Path

#: loggers whose records also go to a job's own log
JOB_LOGGERS = ("quickart", "quickart_daemon")


def setup_logging(level: str = "INFO") -> None:
    """One line per event on stdout; idempotent (the worker processes call it too)."""
    root = logging.getLogger()
    if getattr(root, "_quickart", False):
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    handler.setLevel(level)  # the job log may ask loggers for more detail than the console shows
    root.addHandler(handler)
    root.setLevel(level)
    root._quickart = True
    for noisy in ("apscheduler", "alembic"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


class JobLog:
    """The job's own log file: `open` writes the header and starts collecting log lines."""

    def __init__(self, path: Path):
        self.path = path
        self._handler: logging.Handler | None = None

    def open(self, header: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(header.rstrip("\n") + "\n")
        handler = logging.FileHandler(self.path, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
        handler.setLevel(logging.INFO)
        for name in JOB_LOGGERS:
            logger = logging.getLogger(name)
            logger.addHandler(handler)
            if logger.level == logging.NOTSET:
                logger.setLevel(logging.INFO)
        self._handler = handler

    def write(self, text: str) -> None:
        """Raw text (a traceback) straight into the file."""
        if self.path.parent.is_dir():
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(text.rstrip("\n") + "\n")

    def footer(self, status: str, started: float) -> None:
        """The last line: outcome, wall time, peak RSS and (when a stage used CUDA) peak VRAM."""
        peak_vram = ""
        torch = sys.modules.get("torch")  # only report VRAM when a stage actually used torch
        if torch is not None and torch.cuda.is_available():
            peak_vram = f"  peak VRAM {torch.cuda.max_memory_allocated() / 2**20:.0f} MiB"
        self.write(f"=== {status} after {time.monotonic() - started:.2f} s  peak RSS "
                   f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB{peak_vram}")

    def close(self) -> None:
        if self._handler is None:
            return
        for name in JOB_LOGGERS:
            logging.getLogger(name).removeHandler(self._handler)
        self._handler.close()
        self._handler = None
