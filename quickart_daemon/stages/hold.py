"""`hold`: every drawing of the schedule shows the last key at or before it.

The pose test every studio watches first: the keys on their timing, nothing invented.
"""

from __future__ import annotations

from .base import Frames, StageContext, StageResult, StageSpec


def hold(frames: Frames, ctx: StageContext) -> StageResult:
    out = ctx.schedule.held(frames)
    return StageResult(out, {"held_drawings": len(out) - len(frames)})


SPEC = StageSpec(
    name="hold", run=hold, kind="timing", publish_folder=None,
    description="keys held on their timing (pose test)",
)
