"""Synthetic shots as the web page's shot browser sees them: many shots across shows and sequences, each
with a small real version folder (one comp frame of a synthetic character, a manifest, latest.json) and
its jobs, reviews and tracker deliveries recorded through the queue's, reviews' and outbox's own calls.

For the shot browser's tests, its screenshot (docs/web-shots.png) and bench/bench_web.py (1,000 shots).
Deterministic: shot k's states depend on k alone, so a test knows what each row must show.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import update

from ..db.models import Delivery
from ..naming import ShotId

SHOWS = ("ARROW", "BRAMBLE", "COMET")
SHOTS_PER_SEQUENCE = 12
FRAME = 1001
OWNER = "synth-node:1:cpu0"
#: the outbox's stored states for the browser's delivered / waiting / failed
DELIVERY_ROW_STATES = ("done", "pending", "failed")


@dataclass(frozen=True)
class SynthShot:
    """What shot k was given: its name, its newest job's state, its newest version (0: none), that
    version's verdict (None: not reviewed) and its tracker delivery (None: none)."""

    shot: ShotId
    job_state: str
    version: int
    approval: str | None
    delivery: str | None


def plan(k: int, n: int) -> SynthShot:
    """Shot k of n: shows split the shots evenly, SHOTS_PER_SEQUENCE shots per sequence; one in ten has
    only a queued job (no version yet), one in ten a failed and one in ten a running job after a
    version, one in four two versions; a third of the versions are approved, a third need work."""
    per_show = -(-n // len(SHOWS))
    show, index = SHOWS[k // per_show], k % per_show
    shot = ShotId(show, f"sq{(index // SHOTS_PER_SEQUENCE + 1) * 10:03d}", f"sh{(index + 1) * 10:04d}")
    job_state = {9: "queued", 3: "failed", 7: "running"}.get(k % 10, "done")
    version = 0 if job_state == "queued" else 2 if k % 4 == 0 else 1
    approval = None if not version else ("approved", "needs_work", None)[k % 3]
    delivery = None if not version or k % 5 == 4 else ("delivered", "waiting", "failed")[k % 5 % 3]
    return SynthShot(shot, job_state, version, approval, delivery)


def drawings(count: int = 12, size: tuple[int, int] = (320, 180)) -> list[bytes]:
    """`count` PNGs of a synthetic character at successive times (encoded once, written per shot)."""
    from PIL import Image

    from .synth import make_character, render
    character = make_character(7)
    out = []
    for i in range(count):
        buf = io.BytesIO()
        Image.fromarray(render(character, FRAME + 2 * i, size, rough=False).color).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def write_version(cfg, shot: ShotId, number: int, png: bytes, job_id: int) -> Path:
    """A published-looking version folder: comp/ with one frame, manifest.json, latest.json."""
    output = cfg.root / cfg.naming_rules.format_shot_path(shot) / "quickart"
    folder = output / f"v{number:03d}"
    (folder / "comp").mkdir(parents=True, exist_ok=True)
    (folder / "comp" / f"{shot.shot}.{FRAME}.png").write_bytes(png)
    (folder / "manifest.json").write_text(json.dumps({"job_id": job_id, "timing": {
        "fps": 24, "frame_range": [FRAME, FRAME], "layers": ["char"]}}))
    (folder / "job.log").write_text(f"=== job {job_id}  {shot}  synthetic\n=== done: v{number:03d}\n")
    (output / "latest.json").write_text(json.dumps({"version": number, "path": folder.name}))
    return folder


def seed_shots(cfg, jq, n: int, tracker: str = "kitsu") -> list[SynthShot]:
    """n shots (`plan`) in the queue's database and under cfg.root; returns their plans in order."""
    from .. import outbox, reviews
    pictures = drawings()
    plans = [plan(k, n) for k in range(n)]
    for k, p in enumerate(plans):
        rel = cfg.naming_rules.format_shot_path(p.shot)
        (cfg.root / rel / "keys").mkdir(parents=True, exist_ok=True)
        for number in range(1, p.version + 1):
            job = jq.claim(jq.enqueue(p.shot, rel, "default", source="submit").id, OWNER, "synth-node", "cpu0")
            folder = write_version(cfg, p.shot, number, pictures[(k + number) % len(pictures)], job.id)
            jq.finish(job.id, OWNER, version=number, output_path=str(folder), artifacts={"version": str(folder)})
        if p.job_state != "done":
            job = jq.enqueue(p.shot, rel, "default", source="submit")
            if p.job_state in ("running", "failed"):
                jq.claim(job.id, OWNER, "synth-node", "cpu0")
                jq.heartbeat(job.id, OWNER, stage="color", progress=0.4)
            if p.job_state == "failed":
                jq.fail(job.id, OWNER, "stage color crashed: RuntimeError: synthetic failure", retryable=False)
        shot_id = jq.upsert_shot(p.shot, rel)
        if p.approval:
            reviews.add(cfg, jq.sessions, shot_id, p.shot, p.version, p.approval,
                        "" if p.approval == "approved" else "the hat flickers on 1003", "Ana")
        if p.delivery:
            outbox.put(jq.sessions, shot_id, p.version, "published", tracker, {"event": "published"})
            state = DELIVERY_ROW_STATES[("delivered", "waiting", "failed").index(p.delivery)]
            with jq.sessions.begin() as s:
                s.execute(update(Delivery).where(Delivery.shot_id == shot_id, Delivery.version == p.version)
                          .values(state=state, attempts=1 if state == "done" else 3,
                                  last_error="project not found" if state == "failed" else None))
    return plans
