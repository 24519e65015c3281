"""The contact sheet of a version: every frame at a glance, so a supervisor checks a shot in seconds.

One block per row (a layer, or the comp), in the order the rows first appear in the
tiles; inside a block the frames run left to right by frame number and wrap onto
further lines so the sheet stays under ``MAX_WIDTH``. Each thumbnail keeps its aspect
ratio and sits over a light checkerboard, so transparency shows as transparency and
not as black. Keys get a red frame and the label ``KEY 1001``; generated frames get a
grey (in-between) or blue (hold) frame and ``1003 inbetween-blend``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .images import to_rgba, write_png

MAX_WIDTH = 2400  # px; a sheet wider than a screen is not "at a glance"
MAX_PER_ROW = 48  # tiles per row before sampling evenly
MARGIN = 12  # outer margin
GAP = 8  # between cells, and between lines of a row
BORDER = 4  # coloured frame around each thumbnail
LABEL_H = 22  # label strip under each thumbnail
ROW_HEADER_H = 26  # row name above each row
TITLE_H = 44
CHECKER = 8  # checkerboard square size
MAX_ASPECT = 2.0  # thumbnail height at most this times its width (portrait strips)

BACKGROUND = (32, 32, 32)
TEXT = (235, 235, 235)
CHECKER_LIGHT, CHECKER_DARK = 255, 204
BORDER_COLORS = {"key": (220, 40, 40), "inbetween": (96, 96, 96), "hold": (70, 110, 170)}
FONT = cv2.FONT_HERSHEY_SIMPLEX


@dataclass(frozen=True)
class Tile:
    image: np.ndarray  # RGBA uint8
    frame: int
    kind: str  # "key" or "inbetween" (or "hold")
    stage: str  # the stage that produced it, e.g. "inbetween-blend"
    row: str  # row label, e.g. the layer name or "comp"


def label(tile: Tile) -> str:
    return f"KEY {tile.frame}" if tile.kind == "key" else f"{tile.frame} {tile.stage}"


def title_text(title: str, shown: int, total: int) -> str:
    """The title bar, saying so when frames were left out."""
    return title if shown >= total else f"{title}  [sampled evenly: {shown} of {total} frames shown]"


def _evenly(items: list[Tile], n: int) -> list[Tile]:
    return [items[i] for i in np.linspace(0, len(items) - 1, n).round().astype(int)] if n > 0 else []


def _sample(tiles: list[Tile], cap: int) -> list[Tile]:
    """At most ``cap`` tiles in frame order: every key if they fit, the rest evenly spaced."""
    if len(tiles) <= cap:
        return tiles
    keys = [t for t in tiles if t.kind == "key"]
    if len(keys) >= cap:
        return _evenly(keys, cap)
    others = _evenly([t for t in tiles if t.kind != "key"], cap - len(keys))
    return sorted(keys + others, key=lambda t: t.frame)


def _fit(text: str, scale: float, width: int) -> str:
    """``text`` shortened with '...' until it fits in ``width`` pixels."""
    while text and cv2.getTextSize(text, FONT, scale, 1)[0][0] > width:
        text = text[:-4] + "..." if len(text) > 4 else ""
    return text


def _put(img: np.ndarray, text: str, x: int, y: int, scale: float, width: int) -> None:
    cv2.putText(img, _fit(text, scale, width), (x, y), FONT, scale, TEXT, 1, cv2.LINE_AA)


def _thumbnail(image: np.ndarray, box_w: int, box_h: int) -> np.ndarray:
    """RGB thumbnail fitting in the box, composited over a checkerboard."""
    rgba = to_rgba(image)
    h, w = rgba.shape[:2]
    scale = min(box_w / w, box_h / h)
    tw, th = max(1, round(w * scale)), max(1, round(h * scale))
    # Resize premultiplied, so the colour of fully transparent pixels cannot bleed into edges.
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    premult = np.concatenate([rgba[..., :3].astype(np.float32) * alpha, alpha], axis=2)
    small = cv2.resize(premult, (tw, th), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    yy, xx = np.mgrid[0:th, 0:tw]
    checker = np.where(((yy // CHECKER + xx // CHECKER) % 2 == 0), CHECKER_LIGHT, CHECKER_DARK)
    out = small[..., :3] + checker[..., None].astype(np.float32) * (1.0 - small[..., 3:4])
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def contact_sheet(tiles: Sequence[Tile], title: str, thumb_width: int = 240) -> np.ndarray:
    """An RGB uint8 sheet of ``tiles``: one block per row, a title bar on top."""
    rows: dict[str, list[Tile]] = {}
    for tile in tiles:
        rows.setdefault(tile.row, []).append(tile)
    total = sum(len(r) for r in rows.values())
    rows = {name: _sample(sorted(r, key=lambda t: t.frame), MAX_PER_ROW) for name, r in rows.items()}
    title = title_text(title, sum(len(r) for r in rows.values()), total)

    # One cell size for the whole sheet, from the tallest aspect ratio shown.
    aspects = [t.image.shape[0] / t.image.shape[1] for r in rows.values() for t in r]
    thumb_h = max(1, round(thumb_width * min(max(aspects, default=9 / 16), MAX_ASPECT)))
    cell_w, cell_h = thumb_width + 2 * BORDER, thumb_h + 2 * BORDER + LABEL_H
    fit = max(1, (MAX_WIDTH - 2 * MARGIN + GAP) // (cell_w + GAP))
    cols = min(fit, max((len(r) for r in rows.values()), default=1))
    lines = {name: -(-len(r) // cols) for name, r in rows.items()}
    grid_w = 2 * MARGIN + cols * cell_w + (cols - 1) * GAP
    title_w = cv2.getTextSize(title, FONT, 0.7, 1)[0][0] + 2 * MARGIN
    width = max(grid_w, min(title_w, MAX_WIDTH))
    height = TITLE_H + sum(ROW_HEADER_H + n * (cell_h + GAP) for n in lines.values()) + MARGIN

    sheet = np.empty((height, width, 3), np.uint8)
    sheet[:] = BACKGROUND
    _put(sheet, title, MARGIN, TITLE_H - 16, 0.7, width - 2 * MARGIN)
    y = TITLE_H
    for name, row in rows.items():
        _put(sheet, name, MARGIN, y + ROW_HEADER_H - 8, 0.6, width - 2 * MARGIN)
        y += ROW_HEADER_H
        for i, tile in enumerate(row):
            x0 = MARGIN + (i % cols) * (cell_w + GAP)
            y0 = y + (i // cols) * (cell_h + GAP)
            sheet[y0 : y0 + thumb_h + 2 * BORDER, x0 : x0 + cell_w] = BORDER_COLORS.get(tile.kind, BORDER_COLORS["inbetween"])
            sheet[y0 + BORDER : y0 + BORDER + thumb_h, x0 + BORDER : x0 + BORDER + thumb_width] = BACKGROUND
            thumb = _thumbnail(tile.image, thumb_width, thumb_h)
            ty = y0 + BORDER + (thumb_h - thumb.shape[0]) // 2
            tx = x0 + BORDER + (thumb_width - thumb.shape[1]) // 2
            sheet[ty : ty + thumb.shape[0], tx : tx + thumb.shape[1]] = thumb
            _put(sheet, label(tile), x0 + 2, y0 + cell_h - 6, 0.45, cell_w - 4)
        y += lines[name] * (cell_h + GAP)
    return sheet


def write_contact_sheet(path: Path, tiles: Sequence[Tile], title: str, thumb_width: int = 240) -> None:
    """Write the contact sheet as PNG, atomically."""
    write_png(path, contact_sheet(tiles, title, thumb_width))
