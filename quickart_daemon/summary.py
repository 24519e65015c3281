"""What a person reads when a job they waited for ends (`quickart run`, `quickart demo`)."""

from __future__ import annotations

import sys

from .queue import Job, JobQueue, JobState


def report_job(jq: JobQueue, job: Job) -> int:
    """What `quickart run` and the demo print at the end: the outputs, or the error (exit status 1)."""
    if job.state is not JobState.DONE:
        print(f"job {job.id} {job.state.value}: {job.error}", file=sys.stderr)
        return 1
    out = jq.artifacts(job.id)
    print(f"job {job.id} done: {job.shot} v{job.version:03d}")
    for kind in ("version", "contact", "otio", "sequence_otio", "manifest"):
        print(f"  {kind:<14} {out[kind]}")
    for w in job.warnings:
        print(f"  warning: {w}")
    return 0
