"""Pixel helpers shared by the reference model, the shading transfer and the scenery: coarse colour
codes, the modal colour of each label, masks of pixels off a colour, shifted images."""

from __future__ import annotations

import numpy as np

#: a pixel within this RGB distance of a colour is that colour's paint (compression and
#: anti-aliasing noise)
FLAT_LEVEL = 12.0


#: colours on the coarse grid: 16 levels a channel (a gradient's neighbouring steps fall together,
#: a highlight or a shadow is another colour), 16 ** 3 codes
COARSE_CODES = 4096


def coarse_codes(rgb: np.ndarray) -> np.ndarray:
    """Colour code on a coarse grid (16 levels a channel)."""
    q = rgb.astype(np.int64) >> 4
    return (q[..., 0] << 8) | (q[..., 1] << 4) | q[..., 2]


def modal_colours(lab: np.ndarray, rgb: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The colour of each label (0..n) among pixels with labels `lab` and colours `rgb` (k, 3): the
    most frequent coarse colour (16 levels a channel: a gradient's neighbouring steps fall together,
    a highlight or a shadow is another colour), its value there the per-channel median (two paints
    are never mixed). Returns (colours (n+1, 3) int64, pixel counts (n+1,); 0: no colour)."""
    lab = lab.astype(np.int64)
    med = np.zeros((n + 1, 3), np.int64)
    if lab.size == 0:
        return med, np.zeros(n + 1, np.int64)
    coarse = coarse_codes(rgb)
    pair = lab * COARSE_CODES + coarse
    modal = np.full(n + 1, -1, np.int64)
    if (n + 1) * COARSE_CODES <= min(max(4 * lab.size, 1 << 22), 1 << 23):
        # a count per (label, coarse colour): the most frequent, the lowest code on a tie
        hist = np.bincount(pair, minlength=(n + 1) * COARSE_CODES).reshape(n + 1, COARSE_CODES)
        has = hist.any(1)
        modal[has] = hist[has].argmax(1)
    else:
        u, cnt = np.unique(pair, return_counts=True)
        order = np.lexsort((-cnt, u // COARSE_CODES))
        first = np.r_[True, (u // COARSE_CODES)[order][1:] != (u // COARSE_CODES)[order][:-1]]
        modal[u[order][first] // COARSE_CODES] = u[order][first] % COARSE_CODES
    pick = coarse == modal[lab]
    lk = lab[pick]
    counts = np.bincount(lk, minlength=n + 1)
    if (n + 1) * 256 <= max(4 * lk.size, 1 << 20):
        # its value there: the median, the (counts // 2)-th smallest, from a histogram per label
        for ch in range(3):
            cum = np.bincount(lk * 256 + rgb[pick, ch], minlength=(n + 1) * 256).reshape(n + 1, 256).cumsum(1)
            med[:, ch] = (cum <= (counts // 2)[:, None]).sum(1)
        med[counts == 0] = 0
        return med, counts
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    for ch in range(3):  # its value there: the median (sort by label, then value)
        v = rgb[pick, ch].astype(np.int64)
        order = np.lexsort((v, lk))
        med[:, ch] = v[order][np.minimum(starts + counts // 2, lk.size - 1)]
    return med, counts


def off_colour(img: np.ndarray, rgb, level: float) -> np.ndarray:
    """Pixels of `img` with a channel more than `level` off the colour `rgb` (channel by channel:
    a reduction over the last axis of three is slow in numpy)."""
    rgb = np.broadcast_to(np.asarray(rgb, np.float64), (3,))
    out = np.zeros(img.shape[:2], bool)
    for c in range(3):
        out |= np.abs(img[..., c].astype(np.int16) - rgb[c]) > level
    return out


def shifted_image(img: np.ndarray, off) -> np.ndarray:
    """out[p] = img[p + off] (zero where p + off is off the frame)."""
    h, w = img.shape[:2]
    dx, dy = int(off[0]), int(off[1])
    out = np.zeros_like(img)
    ys0, ys1, xs0, xs1 = max(0, -dy), min(h, h - dy), max(0, -dx), min(w, w - dx)
    if ys1 > ys0 and xs1 > xs0:
        out[ys0:ys1, xs0:xs1] = img[ys0 + dy:ys1 + dy, xs0 + dx:xs1 + dx]
    return out
