"""Contact sheets: layout, key frames, transparency and row order, checked on the pixels."""

from __future__ import annotations

import numpy as np

from quickart_daemon import contact
from quickart_daemon.contact import Tile, contact_sheet, write_contact_sheet
from quickart_daemon.images import read_png

C = contact
W = 120  # thumbnail width used by the tests
KEY = np.array(C.BORDER_COLORS["key"], np.uint8)


def solid(rgb: tuple[int, int, int], alpha: int = 255, size: tuple[int, int] = (90, 160)) -> np.ndarray:
    img = np.zeros((*size, 4), np.uint8)
    img[..., :3], img[..., 3] = rgb, alpha
    return img


def row(name: str, frames: range, rgb=(200, 180, 150), keys=(), alpha=255) -> list[Tile]:
    return [Tile(solid(rgb, alpha), f, "key" if f in keys else "inbetween", "inbetween-blend", name) for f in frames]


def cell(thumb_h: int) -> tuple[int, int]:
    return W + 2 * C.BORDER, thumb_h + 2 * C.BORDER + C.LABEL_H


def origin(index: int, cols: int, thumb_h: int, row_top: int = C.TITLE_H) -> tuple[int, int]:
    """(y, x) of the top-left corner of the index-th cell of the row block starting at row_top."""
    cw, ch = cell(thumb_h)
    return row_top + C.ROW_HEADER_H + (index // cols) * (ch + C.GAP), C.MARGIN + (index % cols) * (cw + C.GAP)


def test_size_follows_tile_count():
    thumb_h = round(W * 90 / 160)
    cw, ch = cell(thumb_h)
    fit = (C.MAX_WIDTH - 2 * C.MARGIN + C.GAP) // (cw + C.GAP)
    for n in (1, 3, fit, fit + 1, 2 * fit + 2):  # all under MAX_PER_ROW
        sheet = contact_sheet(row("comp", range(1001, 1001 + n)), "t", thumb_width=W)
        cols, lines = min(n, fit), -(-n // fit)
        assert sheet.dtype == np.uint8 and sheet.shape[2] == 3
        assert sheet.shape[1] == 2 * C.MARGIN + cols * cw + (cols - 1) * C.GAP <= C.MAX_WIDTH
        assert sheet.shape[0] == C.TITLE_H + C.ROW_HEADER_H + lines * (ch + C.GAP) + C.MARGIN


def test_two_rows_add_their_blocks():
    thumb_h = round(W * 90 / 160)
    _, ch = cell(thumb_h)
    sheet = contact_sheet(row("comp", range(1, 4)) + row("char", range(1, 3)), "t", thumb_width=W)
    assert sheet.shape[0] == C.TITLE_H + 2 * (C.ROW_HEADER_H + ch + C.GAP) + C.MARGIN


def test_key_tiles_have_the_key_border():
    tiles = row("comp", range(1001, 1006), keys={1001, 1004})
    thumb_h = round(W * 90 / 160)
    sheet = contact_sheet(tiles, "t", thumb_width=W)
    for i, frame in enumerate(range(1001, 1006)):
        y, x = origin(i, cols=5, thumb_h=thumb_h)
        h, w = thumb_h + 2 * C.BORDER, W + 2 * C.BORDER
        ring = np.concatenate([sheet[y, x : x + w], sheet[y + h - 1, x : x + w],
                               sheet[y : y + h, x], sheet[y : y + h, x + w - 1]])
        is_key = (ring == KEY).all(axis=1)
        assert is_key.all() if frame in (1001, 1004) else not is_key.any(), frame
    # nothing else on the sheet is the key colour: two rings' worth of pixels
    ring_area = (W + 2 * C.BORDER) * (thumb_h + 2 * C.BORDER) - W * thumb_h
    assert (sheet == KEY).all(axis=2).sum() == 2 * ring_area


def test_transparent_tile_shows_checkerboard():
    thumb_h = round(W * 90 / 160)
    sheet = contact_sheet(row("comp", range(1, 2), rgb=(0, 0, 0), alpha=0), "t", thumb_width=W)
    y, x = origin(0, cols=1, thumb_h=thumb_h)
    inside = sheet[y + C.BORDER : y + C.BORDER + thumb_h, x + C.BORDER : x + C.BORDER + W]
    assert set(np.unique(inside)) == {C.CHECKER_DARK, C.CHECKER_LIGHT}  # grey squares, no black
    assert (inside[0, 0] == C.CHECKER_LIGHT).all() and (inside[0, C.CHECKER] == C.CHECKER_DARK).all()
    # an opaque tile shows its own colour instead
    opaque = contact_sheet(row("comp", range(1, 2), rgb=(10, 200, 30)), "t", thumb_width=W)
    assert (opaque[y + C.BORDER : y + C.BORDER + thumb_h, x + C.BORDER : x + C.BORDER + W] == (10, 200, 30)).all()


def test_rows_in_given_order_and_frames_sorted():
    red, blue = (250, 0, 0), (0, 0, 250)
    tiles = row("comp", range(1001, 1004), rgb=red)[::-1] + row("char", range(1001, 1004), rgb=blue)
    sheet = contact_sheet(tiles, "t", thumb_width=W)
    ys_red = np.nonzero((sheet == red).all(axis=2))[0]
    ys_blue = np.nonzero((sheet == blue).all(axis=2))[0]
    assert ys_red.max() < ys_blue.min()
    # frames left to right: distinct greys per frame, reversed on input, come back in order
    tiles = [Tile(solid((g, g, g)), f, "inbetween", "s", "comp") for f, g in ((3, 30), (1, 10), (2, 20))]
    sheet = contact_sheet(tiles, "t", thumb_width=W)
    y, _ = origin(0, cols=3, thumb_h=round(W * 90 / 160))
    xs = [origin(i, cols=3, thumb_h=0)[1] + C.BORDER + 5 for i in range(3)]
    assert [int(sheet[y + C.BORDER + 5, x, 0]) for x in xs] == [10, 20, 30]


def test_portrait_tiles_keep_aspect():
    tiles = [Tile(solid((10, 200, 30), size=(160, 80)), 1, "key", "refine", "comp")]
    sheet = contact_sheet(tiles, "t", thumb_width=W)
    y, x = origin(0, cols=1, thumb_h=2 * W)
    green = (sheet == (10, 200, 30)).all(axis=2)
    ys, xs = np.nonzero(green)
    assert (ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) == (2 * W, W)


def test_long_rows_are_sampled_and_say_so(tmp_path):
    tiles = row("comp", range(1, 201), keys={1, 100, 200})
    sheet = contact_sheet(tiles, "t", thumb_width=W)
    thumb_h = round(W * 90 / 160)
    cw, ch = cell(thumb_h)
    fit = (C.MAX_WIDTH - 2 * C.MARGIN + C.GAP) // (cw + C.GAP)
    lines = -(-C.MAX_PER_ROW // fit)
    assert sheet.shape[0] == C.TITLE_H + C.ROW_HEADER_H + lines * (ch + C.GAP) + C.MARGIN
    ring_area = (W + 2 * C.BORDER) * (thumb_h + 2 * C.BORDER) - W * thumb_h
    assert (sheet == KEY).all(axis=2).sum() == 3 * ring_area  # every key survives the sampling
    sampled = C._sample(sorted(tiles, key=lambda t: t.frame), C.MAX_PER_ROW)
    assert len(sampled) == C.MAX_PER_ROW and sampled[0].frame == 1 and sampled[-1].frame == 200
    assert [t.frame for t in sampled] == sorted({t.frame for t in sampled})

    path = tmp_path / "contact.png"
    write_contact_sheet(path, tiles, "BRV/sq010/sh0040 v003 standard", thumb_width=W)
    assert read_png(path)[..., :3].tolist() == contact_sheet(
        tiles, "BRV/sq010/sh0040 v003 standard", thumb_width=W).tolist()


def test_labels():
    assert C.label(Tile(solid((0, 0, 0)), 1001, "key", "refine", "comp")) == "KEY 1001"
    assert C.title_text("sh0040 v003", 48, 200) == "sh0040 v003  [sampled evenly: 48 of 200 frames shown]"
    assert C.title_text("sh0040 v003", 12, 12) == "sh0040 v003"
    assert C.label(Tile(solid((0, 0, 0)), 1003, "inbetween", "inbetween-blend", "comp")) == "1003 inbetween-blend"
