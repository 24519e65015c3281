"""Submitting a shot: the one way a drop becomes a job (the watcher, `quickart submit` and
`quickart run` all come through here)."""

from __future__ import annotations

import logging
from pathlib import Path

from .config import Config
from .drops import input_files, signature
from .outputs import read_latest
from .pipeline import parse_requirements, pipeline_requirements
from .queue import Job, JobQueue, drop_key
from .shot import OUTPUT_DIR, read_settings, shot_id_for

log = logging.getLogger("quickart.intake")


def submit_shot(cfg: Config, jq: JobQueue, shot_dir: Path, source: str, priority: int = 0,
                force: bool = False) -> Job | None:
    """Queue a job for a shot whose inputs changed since its last drop (or always, with force).
    Every node watching the root may call this for the same drop at the same moment: the drop's
    key makes the database keep one (`queue.drop_key`), and the others get None."""
    shot_dir = Path(shot_dir)
    shot = shot_id_for(shot_dir, cfg.root, cfg.naming_rules)
    files = input_files(shot_dir, cfg.root)
    sig = signature(files, shot_dir)  # relative paths: a root mounted elsewhere is not a new drop
    shot_pk = jq.upsert_shot(shot, cfg.naming_rules.format_shot_path(shot))
    rel = [str(f.relative_to(shot_dir)) for f in files]
    last = None if force else jq.last_drop(shot_pk)
    key = drop_key(sig, last and last[0], forced=force)
    if not force:
        if last is not None and last[1] == sig:
            return None
        if last is None and _published_signature(shot_dir) == sig:
            # a database that does not know this shot (new, or rebuilt) while its latest version was
            # made from exactly these files: remember the drop, make no job
            jq.record_drop(shot_pk, sig, rel, source, key=key)
            log.info("action=already_published shot=%s", shot)
            return None
    settings = read_settings(shot_dir)
    pipeline = settings.pipeline or cfg.pipeline
    requires_gpu, node_group = parse_requirements(
        [*pipeline_requirements(pipeline, [cfg.pipelines_dir]), *(settings.requires or [])], str(shot_dir))
    job = jq.enqueue(shot, cfg.naming_rules.format_shot_path(shot), pipeline, signature=sig, files=rel, source=source,
                     priority=priority, key=key, requires_gpu=requires_gpu, node_group=node_group)
    if job is None:
        log.info("action=seen_by_another_node shot=%s", shot)
        return None
    log.info("action=queued job=%s shot=%s source=%s files=%d", job.id, shot, source, len(files))
    return job


def _published_signature(shot_dir: Path) -> str | None:
    """The drop signature the shot's latest version was made from (latest.json), if any."""
    drop = (read_latest(shot_dir / OUTPUT_DIR) or {}).get("drop") or {}
    return drop.get("signature")
