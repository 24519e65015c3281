"""Ablation of the colour stage's passes (issue 22): the stage run with some of its passes left out.

Shared by `bench/bench_real.py` (the development set) and `bench/bench_color.py` (synthetic cels):
`--without PASS[,PASS]` leaves those passes out, `--only PASS` keeps the passes up to and including
PASS (and the ones every output needs), `--ablate` runs the stage as shipped and once without each
pass that can be left out. All variants of one drawing start from one copy of its preparation
(the drawing's segmentation, `stage.drawing_state`) and share its reference models, so a whole
table costs the passes, not the segmentations.

The pipeline, in order, is `REFERENCE_PASSES` (run per reference inside `match_references`)
followed by the rest of `PASSES`; a pass is named by its function's name.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass

from quickart_daemon.stages.color import stage

#: passes every output needs, and why they cannot be left out
REQUIRED = {
    "match_references": "runs the reference passes (leave those out one by one instead)",
    "match_one": "writes the match that correct_by_outline and keep_best read",
    "keep_best": "moves each reference's match into the drawing's colours (without it nothing is coloured)",
    "snap": "writes the lut (each region's colour) that carry, paint and confidence read",
    "paint": "writes the frame",
    "paint_styles": "writes the palette styles' frames (the stage returns them; nothing to score)",
    "confidence": "writes the confidence map that the stage returns",
}
#: passes that do nothing on a bench that gives every drawing a reference and no hint scribble
NOT_EXERCISED = {
    "flats": "only without references",
    "flat_tones": "only without references",
    "hints": "only with hint scribbles",
}
#: pass -> the pass whose output it reads and is wrong without: `hold` takes where lines `moved`
#: from `scenery`; left at its start value (nothing moved) it would copy the whole reference
NEEDS = {"hold": "scenery"}


def pipeline() -> list[str]:
    """Every pass's name in the order it runs."""
    names = []
    for p in stage.PASSES:
        if p is stage.match_references:
            names += [r.__name__ for r in stage.REFERENCE_PASSES]
        names.append(p.__name__)
    return names


def skippable() -> list[str]:
    """The passes that can be left out and do something on these benches, in pipeline order."""
    return [n for n in pipeline() if n not in REQUIRED and n not in NOT_EXERCISED]


@dataclass
class Variant:
    label: str
    left_out: frozenset

    @property
    def passes(self) -> list:
        return [p for p in stage.PASSES if p.__name__ not in self.left_out]

    @property
    def reference_passes(self) -> list:
        return [p for p in stage.REFERENCE_PASSES if p.__name__ not in self.left_out]


def _check(names) -> None:
    known = pipeline()
    for n in names:
        if n not in known:
            raise SystemExit(f"no pass {n!r}; the passes are {', '.join(known)}")
        if n in REQUIRED:
            raise SystemExit(f"{n} cannot be left out: it {REQUIRED[n]}")


def without(names) -> Variant:
    """The stage without `names` (and without the passes that need one of them, `NEEDS`)."""
    names = set(names)
    _check(names)
    names |= {n for n, need in NEEDS.items() if need in names}
    return Variant("without " + ", ".join(n for n in pipeline() if n in names), frozenset(names))


def only(name: str) -> Variant:
    """The passes up to and including `name`, and after it only those every output needs."""
    order = pipeline()
    if name not in order:
        raise SystemExit(f"no pass {name!r}; the passes are {', '.join(order)}")
    after = order[order.index(name) + 1:]
    return Variant(f"only up to {name}", frozenset(n for n in after if n not in REQUIRED))


FULL = Variant("all passes", frozenset())


def variants(a) -> list[Variant]:
    """The variants asked for on the command line (`--without`, `--only`, `--ablate`), the stage as
    shipped first; [] when none is asked for."""
    out = []
    if a.ablate:
        out += [without([n]) for n in skippable() if n not in NEEDS]  # a needing pass goes with its need
        out += [without([n]) for n in skippable() if n in NEEDS]
    if a.without:
        out.append(without(a.without.split(",")))
    if a.only:
        out.append(only(a.only))
    return [FULL] + out if out else []


def add_arguments(ap) -> None:
    ap.add_argument("--without", default=None, help="PASS[,PASS]: also run the stage without these passes "
                                                    f"(one of {', '.join(skippable())})")
    ap.add_argument("--only", default=None, help="PASS: also run the passes up to and including PASS "
                                                 "(and those every output needs)")
    ap.add_argument("--ablate", action="store_true", help="also run the stage without each pass in turn, "
                                                          "and time each pass")


def run(base: "stage.DrawingState", v: Variant, times: dict | None = None) -> "stage.DrawingState":
    """A fresh copy of the prepared drawing `base` through the variant's passes (the references,
    the palette and the drawing's image are shared, read-only); with `times`, each pass's seconds
    are added to times[name] (a reference pass's also to match_references's)."""
    keep = {id(r): r for r in base.refs}
    keep[id(base.palette)] = base.palette
    s = copy.deepcopy(base, keep)

    def timed(p):
        def call(st):
            t0 = time.perf_counter()
            p(st)
            times[p.__name__] = times.get(p.__name__, 0.0) + time.perf_counter() - t0
        call.__name__ = p.__name__
        return call
    wrap = timed if times is not None else (lambda p: p)
    s.reference_passes = [wrap(p) for p in v.reference_passes]
    for p in v.passes:
        wrap(p)(s)
    return s
