"""`light`: lighting flat cels from a direction, our implementation of PaintingLight.

Per layer of a shot: the colour model (ink, flat fills, convex hull, palette) is built
once from all its frames and cached by its set of flat colours (palette.py); per frame:
stroke density and normals (geometry.py), then each light setup shaded in RGB
(render.py). Light settings come from the pipeline / command line and shot.yaml
(settings.py); see docs/light.md.
"""

from __future__ import annotations

import time

from ..base import Frames, Option, StageContext, StageResult, StageSpec
from ..color.palette import load_palette
from .palette import model_for, shadow_tones
from .render import light_layer, shade, surface
from .settings import DEFAULTS, parse_ambient, parse_color, parse_direction, parse_edge, parse_intensity, resolve

LAYER_VARIANT = "layer"


def run(frames: Frames, ctx: StageContext) -> StageResult:
    tracks = resolve(ctx.params, (ctx.shot_settings or {}).get("light"))
    named_colours = load_palette(ctx.palette_path)  # NAME_shadow: the shadow tone of colour NAME
    variants: dict[str, Frames] = {LAYER_VARIANT: {}, **{name: {} for name in tracks if name}}
    out: Frames = {}
    palettes, hits, seconds = {}, 0, {"palette": 0.0, "frames": 0.0}
    total, done = len(frames), 0
    for layer in sorted({l for l, _ in frames}):
        keys = sorted(f for l, f in frames if l == layer)
        t0 = time.perf_counter()
        model, hit = model_for([frames[(layer, f)] for f in keys])
        hits += hit
        t1 = time.perf_counter()
        seconds["palette"] += t1 - t0
        tones = shadow_tones(model.fills, named_colours)
        for f in keys:
            img = frames[(layer, f)]
            surf = surface(img, model, tones)
            lit = shade(img, surf, tracks[""].at(f))
            out[(layer, f)] = lit
            variants[LAYER_VARIANT][(layer, f)] = light_layer(img, lit)
            for name, track in tracks.items():
                if name:
                    variants[name][(layer, f)] = shade(img, surf, track.at(f))
            done += 1
            ctx.progress(done, total)
        seconds["frames"] += time.perf_counter() - t1
        palettes[layer] = model.describe()
    report = {"palettes": palettes, "setups": ["main", *[n for n in tracks if n]],
              "moving_light": any(len(t.frames) > 1 for t in tracks.values()),
              "colour_model_cache_hits": hits,
              "seconds_palette": round(seconds["palette"], 3),
              "seconds_per_frame": round(seconds["frames"] / max(total, 1), 3)}
    return StageResult(out, report, variants)


SPEC = StageSpec(
    name="light", run=run, kind="keys", publish_folder="light",
    description="light flat cels from a direction (PaintingLight: palette hull, figure-scale normals, cel shading)",
    options=(
        Option("direction", parse_direction, DEFAULTS["direction"],
               "X,Y,Z from the subject towards the light (x right, y down, z to the viewer); "
               "write --direction=-1,0,1 when X is negative (default -1,-1,1: front upper left)"),
        Option("color", parse_color, DEFAULTS["color"], "light colour R,G,B in 0-255 or #rrggbb (default white)"),
        Option("intensity", parse_intensity, DEFAULTS["intensity"], "0 = no change (default 0.7)"),
        Option("ambient", parse_ambient, DEFAULTS["ambient"],
               "light level on the side turned away, 0-1; 1 = no darkening (default 0.6)"),
        Option("edge", parse_edge, DEFAULTS["edge"], "edge of the shadow tone: hard or soft (default soft)"),
    ),
)

__all__ = ["SPEC", "run"]
