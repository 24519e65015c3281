"""`color`: paint-bucket colouring of clean line art (issue 5).

Regions come from a gap-tolerant trapped-ball segmentation (`regions`); colours come,
strongest first, from hint scribbles, from coloured references matched region to region
(`features`, `match`), or as flats; colour-trace lines give shadow and highlight tones
(`trace`); the passes over one drawing are `stage.PASSES`; `finish` paints the lines; every colour
snaps to `palette.yaml` and each palette style is rendered as a variant (`palette`).
See docs/color.md.
"""

from __future__ import annotations

import cv2
import numpy as np

from ..base import Frames, Option, StageContext, StageResult, StageSpec
from ..labels import confidence_image
from .palette import load_palette
from .reference import Colours, build_ref, is_coloured
from .stage import colour_drawing


def _fit(img: np.ndarray, shape) -> np.ndarray:
    if img.shape[:2] == tuple(shape[:2]):
        return img
    return cv2.resize(img, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)


def run(frames: Frames, ctx: StageContext) -> StageResult:
    params = {**SPEC.defaults(), **(ctx.params or {})}
    palette = load_palette(ctx.palette_path)
    colours = Colours()
    for rgb in palette.colors.values():
        colours.add(rgb)
    out: Frames = {}
    conf_maps: Frames = {}
    styles: dict[str, Frames] = {s: {} for s in palette.styles}
    low: list = []
    warnings: list[str] = []
    gap = float(params.get("gap", 0.0))
    refs_by_layer: dict[str, dict[int, np.ndarray]] = {}
    for (layer, frame), img in ctx.refs.items():
        refs_by_layer.setdefault(layer, {})[frame] = img
    models: dict[tuple[str, int], object] = {}
    counts = {"from_reference": 0, "matched": 0, "flats": 0, "already_coloured": 0}
    keys = sorted(frames)
    for i, (layer, frame) in enumerate(keys):
        img = frames[(layer, frame)]
        layer_refs = refs_by_layer.get(layer, {})
        if (layer, frame) in ctx.refs:
            # a frame that has a reference is reproduced from it (snapped to the palette)
            ref = _fit(ctx.refs[(layer, frame)], img.shape)
            res_img = ref.copy()
            if not palette.empty:
                painted = res_img[..., 3] > 0
                cols, inv = np.unique(res_img[..., :3][painted].reshape(-1, 3), axis=0, return_inverse=True)
                if len(cols) <= 4096:
                    # near-palette colours (noise, compression) snap; ink fringes stay as drawn
                    snapped = []
                    for c in cols:
                        rgb, d = palette.snap(tuple(int(v) for v in c))
                        snapped.append(rgb if d <= 12 else tuple(int(v) for v in c))
                    snapped = np.array(snapped, np.uint8)
                    res_img[..., :3][painted] = snapped[inv.ravel()]
            out[(layer, frame)] = res_img
            conf_maps[(layer, frame)] = confidence_image(np.ones(img.shape[:2], np.float32))
            for s in styles:
                st = res_img.copy()
                painted = st[..., 3] > 0
                cols, inv = np.unique(st[..., :3][painted].reshape(-1, 3), axis=0, return_inverse=True)
                if len(cols) <= 4096:
                    mapped = np.array([palette.apply_style(s, tuple(int(v) for v in c)) for c in cols], np.uint8)
                    st[..., :3][painted] = mapped[inv.ravel()]
                styles[s][(layer, frame)] = st
            counts["from_reference"] += 1
        elif is_coloured(img):
            out[(layer, frame)] = img
            conf_maps[(layer, frame)] = confidence_image(np.ones(img.shape[:2], np.float32))
            for s in styles:
                styles[s][(layer, frame)] = img
            counts["already_coloured"] += 1
            warnings.append(f"layer {layer} frame {frame}: already coloured, passed through")
        else:
            near = sorted(layer_refs, key=lambda f: (abs(f - frame), f))[: int(params.get("max-refs", 3))]
            refs = []
            for rf in near:
                if (layer, rf) not in models:
                    cel = _fit(layer_refs[rf], img.shape)
                    lines = frames.get((layer, rf))
                    models[(layer, rf)] = build_ref(rf, cel, lines, gap, colours)
                refs.append(models[(layer, rf)])
            hint = ctx.hints.get((layer, frame))
            res = colour_drawing(img, refs, hint, palette, colours, params, frame)
            out[(layer, frame)] = res.image
            conf_maps[(layer, frame)] = confidence_image(res.confidence)
            for s in styles:
                styles[s][(layer, frame)] = res.styles[s]
            for item in res.low:
                low.append({"layer": layer, **item})
            counts["matched" if refs else "flats"] += 1
        ctx.progress(i + 1, len(keys))
    for layer in sorted({l for l, _ in keys}):
        if layer not in refs_by_layer and counts["flats"]:
            warnings.append(f"layer {layer}: no colour reference; painted as flats (a distinct colour per region)")
    if low:
        warnings.append(f"{len(low)} regions below confidence {params['low-confidence']}: check those first "
                        f"(report: low_confidence)")
    variants: dict[str, Frames] = {"confidence": conf_maps}
    for s, table in styles.items():
        if s == "confidence":
            warnings.append("palette style 'confidence' clashes with the confidence maps; renamed style-confidence")
            variants["style-confidence"] = table
        else:
            variants[s] = table
    report = {"counts": counts, "low_confidence": low, "warnings": warnings,
              "styles": sorted(palette.styles)}
    return StageResult(out, report, variants)


SPEC = StageSpec(
    name="color", run=run, kind="keys", publish_folder="color",
    description="paint-bucket colouring from references, hints and palettes (trapped-ball regions)",
    options=(
        Option("gap", float, 0.0, "widest gap in the lines to close, in pixels (0: from the line width, at least 3)"),
        Option("lines", str, "keep", "keep: ink lines stay drawn; absorb: lines take the fill colour"),
        Option("line-color", str, "", "paint ink lines this #rrggbb instead of the drawing's ink"),
        Option("low-confidence", float, 0.5, "regions below this confidence are listed in the report"),
        Option("max-refs", int, 3, "references tried per frame (nearest in time first)"),
    ),
)
