"""The background and what held still (issue 14). What held still (no line moved nearby) is the
reference pixel for pixel (`hold_still`). The background comes from the reference too
(`paint_scenery`): in place where its lines held still, shifted with them where they moved,
never as the ghost of a part that has gone."""

from __future__ import annotations

import cv2
import numpy as np

from ..labels import fill_from_nearest
from .align import ALIGN_SIZE
from .pixels import FLAT_LEVEL, off_colour, shifted_image


#: width (pixels) of a line's anti-aliased fringe in the reference's background
SCENERY_FRINGE_PX = 3.0
#: how near (share of the frame's height) a difference between the drawing's and the reference's
#: lines makes the background there "moved"
MOVED_NEAR = 0.02
#: half-width (share of the frame's height) of the window in which the lines decide which motion a
#: piece of scenery took (a few lines of text: enough lines to tell the motions apart)
SCENERY_WINDOW = 0.05
#: motions of the scenery tried beside holding still, and the least correlation (share of the best)
#: that makes a shift a candidate
SCENERY_MOTIONS = 3
PEAK_SHARE = 0.3
#: pixels of the background sampled for the paper's colour (a median: a few thousand suffice)
PAPER_SAMPLE = 20000


def _window(height: int) -> int:
    """Half-width in pixels of the window that chooses a scenery motion (SCENERY_WINDOW)."""
    return max(3, int(round(SCENERY_WINDOW * height)))


def scenery_motions(t_lines: np.ndarray, r_lines: np.ndarray, k: int) -> list[np.ndarray]:
    """Up to `k` shifts (x, y; added to a drawing pixel to reach the reference), besides none, under
    which the reference's lines `r_lines` lie on the drawing's `t_lines`: the peaks of their
    cross-correlation over the whole frame (at most 2 x ALIGN_SIZE cells across), each at least
    PEAK_SHARE of the best. No cost on a shift's length (a chat scrolls by a whole bubble): which
    candidate holds where is decided locally (`scenery_layers`)."""
    h, w = t_lines.shape
    s = max(1, int(np.ceil(max(h, w) / (2 * ALIGN_SIZE))))
    t = cv2.resize(t_lines.astype(np.float32), (max(1, w // s), max(1, h // s)), interpolation=cv2.INTER_AREA)
    r = cv2.resize(r_lines.astype(np.float32), (max(1, w // s), max(1, h // s)), interpolation=cv2.INTER_AREA)
    hh, ww = t.shape
    H, W = 2 * hh, 2 * ww
    c = np.fft.irfft2(np.conj(np.fft.rfft2(t, (H, W))) * np.fft.rfft2(r, (H, W)), (H, W))
    ky = np.arange(H)
    ky = np.where(ky >= hh, ky - H, ky)
    kx = np.arange(W)
    kx = np.where(kx >= ww, kx - W, kx)
    out: list[np.ndarray] = []
    # motions nearer each other than the window that chooses between them (`scenery_layers`) are
    # one motion (a shift by one dash of a dashed text line); holding still is always a candidate
    sep = max(2, _window(h) // s)
    near = lambda y, x: np.ix_(np.abs(ky - y) <= sep, np.abs(kx - x) <= sep)
    c[near(0, 0)] = -np.inf
    best = float(c.max())
    if best <= 1e-6:
        return out
    for _ in range(k):
        iy, ix = np.unravel_index(int(np.argmax(c)), c.shape)
        if c[iy, ix] < PEAK_SHARE * best:
            break
        out.append(np.array([kx[ix] * s, ky[iy] * s]))
        c[near(ky[iy], kx[ix])] = -np.inf
    return out


def scenery_layers(t_lines: np.ndarray, r_lines: np.ndarray, want: np.ndarray, lab: np.ndarray,
                   motions: list[np.ndarray]) -> np.ndarray:
    """Per pixel of `want`, which of `motions` (the first: none) its scenery took (index): the one
    under which the reference's lines agree best with the drawing's in a window around it
    (SCENERY_WINDOW of the frame's height: a few text lines), ties to the first. A pixel with no
    line in its window takes the choice of the nearest decided pixel of its region (a bubble's
    margin moves with its text, the gap between two bubbles too)."""
    r = _window(want.shape[0])
    # (counts of pixels: exact in float32, whatever the input type)
    box = lambda m: cv2.boxFilter(m.view(np.uint8), cv2.CV_32F, (2 * r + 1, 2 * r + 1), normalize=False)
    t_box = box(t_lines)
    dice = lambda b: 2 * box(t_lines & b) / np.maximum(t_box + box(b), 1.0)
    best = dice(r_lines)
    pick = np.where(best > 0, 0, -1).astype(np.int32)
    for i, off in enumerate(motions[1:], 1):
        agree = dice(shifted_image(r_lines, off))
        take = agree > best
        best[take], pick[take] = agree[take], i
    pick[~want] = -1
    known = pick >= 0
    spread = pick[..., None].copy()
    fill_from_nearest(spread, known, want & ~known, lab)
    return spread[..., 0]


def _scenery_moved(fill: np.ndarray, prep, moved: np.ndarray, ref, source: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The background, where its own lines moved (a scrolling screen, a pan): the few motions that
    lay the reference's moved scenery lines on the drawing's (`scenery_motions`) and holding still
    are the candidates, every pixel of the background takes the one its surrounding lines took
    (`scenery_layers`; a pixel far from any line, the one of its nearest lines: a bubble's margin
    moves with its text) and copies the reference's background (`source`) from its moved place.
    Returns where it copied (in place) and where the scenery moved (the reference's pixel at the
    same place is not its colour)."""
    lab, rlab = prep.seg.labels, ref.prep.seg.labels
    outside = prep.regs.outside[lab]
    tline = ~prep.seg.free & outside
    rline = ~ref.prep.seg.free & ref.prep.regs.outside[rlab]
    none = np.zeros_like(outside)
    # the motion shows in the lines that moved: the pixels where only one drawing has a line (a
    # screen's frame that held still would pull every candidate its way), and, as a stroke that
    # moved can fall in part on another one by chance (text lines a line apart), the lines where
    # something moved
    sep = _window(lab.shape[0])
    motions = [np.zeros(2, int)]
    for cand in scenery_motions(tline & ~rline, rline & ~tline, SCENERY_MOTIONS) + \
            scenery_motions(tline & moved, rline & moved, SCENERY_MOTIONS):
        if all(np.abs(cand - m).max() > sep for m in motions):
            motions.append(cand)
    if len(motions) == 1:
        return none, none
    pick = scenery_layers(tline, rline, outside, lab, motions)
    h, w = outside.shape
    ys, xs = np.nonzero(pick > 0)
    off = np.array(motions)[pick[ys, xs]]
    sy, sx = ys + off[:, 1], xs + off[:, 0]
    ok = (sy >= 0) & (sy < h) & (sx >= 0) & (sx < w)
    ok[ok] = source[sy[ok], sx[ok]]
    fill[ys[ok], xs[ok]] = ref.image[sy[ok], sx[ok]]
    copied = none.copy()
    copied[ys[ok], xs[ok]] = True
    return copied, pick > 0


def lines_moved(line: np.ndarray, ref) -> np.ndarray:
    """Where the drawing's lines and the reference's differ nearby (within MOVED_NEAR of the
    frame's height): something moved there. Elsewhere the drawing holds still."""
    r = max(3, int(round(MOVED_NEAR * line.shape[0])))
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))
    return cv2.dilate((line != ~ref.prep.seg.free).astype(np.uint8), k).astype(bool)


def hold_still(fill: np.ndarray, lab: np.ndarray, line: np.ndarray, moved: np.ndarray, outside: np.ndarray,
               ref) -> np.ndarray:
    """A region none of whose lines moved, and the lines on the background away from lines that
    moved, held still (a hold, or the parts of a drawing that do not take part in the motion):
    the reference there is the answer, pixel for pixel, its lines' colours and anti-aliasing
    included (in place in `fill`; the background between the lines is `paint_scenery`'s).
    Returns where the drawing held still (no ink to draw over: the reference's pixels show it)."""
    still = np.bincount(lab[moved], minlength=len(outside)) == 0
    still[outside] = False
    px = still[lab] | (outside[lab] & line & ~moved)
    np.copyto(fill, ref.image, where=px[..., None])
    return still[lab] | (outside[lab] & ~moved)


def paints_scenery(ref, shape) -> bool:
    """Does the reference paint the background of a drawing of this shape (an opaque cel of the
    same size: a screen, paper, a sky), so that `paint_scenery` copies it?"""
    return ref.image.shape[:2] == tuple(shape[:2]) and not (ref.image[..., 3] < 255).any()


def paint_scenery(fill: np.ndarray, prep, moved: np.ndarray, ref) -> tuple[np.ndarray, np.ndarray]:
    """An opaque reference paints its background too (paper, a screen, a sky: parts with no
    lines around them). The background does not move with the characters: where the line art
    shows background, the fill takes the reference's pixel at the same place (in place in
    `fill`). Whether the scenery there held still shows in the lines: where the drawing's lines
    and the reference's differ nearby (`moved`), something moved, and a part the reference's lines
    close there (a duck that has since stepped aside, a bubble that scrolled) is not copied: the
    nearest background of the reference continues. Where the lines agree, a part that the drawing
    leaves open (a post drawn without its bottom line) is copied like the background; where the
    scenery's own lines moved, it moves with them (`_scenery_moved`). Returns where the result is
    scenery (not paper, or moved) and where the scenery moved. A reference with transparency keeps
    the background transparent."""
    img, lab = ref.image, prep.seg.labels
    outside = prep.regs.outside[lab]
    if not paints_scenery(ref, fill.shape):
        return np.zeros(outside.shape, bool), np.zeros(outside.shape, bool)
    rlab = ref.prep.seg.labels
    part = ~ref.prep.regs.outside[rlab]
    # a part of the reference that lies on the drawing's background where lines moved (a fin the
    # dart has taken elsewhere) has moved as a whole, its inside too
    gone = np.bincount(rlab[outside & moved & part], minlength=ref.prep.regs.n + 1) > 0
    # the anti-aliased fringe of a reference line: copied where the line still is, never
    # spread into what was hidden (it would streak grey) nor left where the line has gone
    fringe = cv2.distanceTransform(ref.prep.seg.free.astype(np.uint8), cv2.DIST_L2, 3) < SCENERY_FRINGE_PX
    seen = outside & ref.prep.seg.free & ~(part & gone[rlab]) & ~(fringe & moved)
    np.copyto(fill, img, where=seen[..., None])
    copied, shifted = _scenery_moved(fill, prep, moved, ref, ~part & ref.prep.seg.free & ~fringe)
    seen = (seen & ~shifted) | copied
    got = seen | fill_from_nearest(fill, seen & ~fringe, outside & ~seen, lab)
    paper = np.median(img[..., :3][seen][:: max(1, int(seen.sum()) // PAPER_SAMPLE)], axis=0) if seen.any() else 255
    scenery = got & off_colour(fill, paper, FLAT_LEVEL)
    # scenery that took a motion is a guess away from its lines, even where it is paper-coloured (a
    # white chat bubble), when the reference has scenery that is not paper (at least a window's
    # area of it, SCENERY_WINDOW: not a line's fringe, not a speck); paper is paper whichever way
    # it moved
    r = _window(lab.shape[0])
    ref_scenery = ~part & ref.prep.seg.free & ~fringe & \
        off_colour(img, paper, FLAT_LEVEL)
    if int(ref_scenery.sum()) >= (2 * r + 1) ** 2:
        scenery |= got & shifted
    return scenery, shifted
