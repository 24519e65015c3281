"""Classical line cleanup: what a cleanup artist's scanner pass does, in well under a second.

Steps (each a function below, all on OpenCV/numpy):

1. `flatten_paper`: divide out the paper (tint, yellowing, scanner light fall-off).
2. Adaptive threshold with local hysteresis, on two measures: ink darkness (1 - the
   brightest channel, less a share of the chroma: graphite darkens every channel, a
   coloured pencil leaves its own bright) and chroma for colour-trace lines. A pixel is line
   when its measure is above its threshold relative to the local paper, or above half of it
   within two pixels of such a pixel (faint pencil next to firm pencil); never a global level.
3. Line classes: ink, and trace pixels classed red / blue / green by hue on evidence pooled
   over a small neighbourhood (JPEG colour bleeding does not flip them). The ink and trace
   masks may overlap (a black outline along a red shadow line); each class is cleaned as a
   separate channel from here on and ink is drawn on top.
4. Despeckle: connected pieces smaller than `despeckle` pixels go (dust, grain, stray dots).
5. Smooth and thin: a light blur merges the jittered double strokes of a pencil line and
   smooths its edges, slits left between the two passes are filled, solid areas (more than
   ~2.5 stroke widths thick) are set aside to be kept filled, and Zhang-Suen thinning gives
   one-pixel centre lines.
6. Spurs shorter than about two line widths (overshoots, hooks at stroke ends, double-stroke
   fringes) are cut back to their junction.
7. Gap closing between END POINTS: each centre-line end point looks ahead along its own
   direction for another end point facing it, or failing that a line straight ahead, within
   `gap` pixels, and the two are joined by a straight segment. Lines are never dilated
   as a whole, so nearby lines do not merge and widths stay as drawn.
8. Render: every centre line is drawn at `line_width` pixels through a blurred distance
   field (smooth contour, anti-aliased edge); trace lines in their own colour, black ink on
   top, on white or on transparency.

All lengths default to values measured from the drawing itself (its typical stroke width),
so the same settings serve a 720p rough and a 4K scan.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from .colours import CLASS_NAMES, CLASS_RGB, flatten_paper, trace_class, vote_trace_class
from .skeleton import neighbour_code, thin

#: blur (px) pooling the hue votes of trace pixels
VOTE_SIGMA = 0.5
#: blur before thinning, in stroke widths, and the level the blurred mask is cut at
SMOOTH = 0.15
SMOOTH_LEVEL = 0.4
#: parts of a mask thicker than 2 x SOLID stroke widths are kept filled (0 turns this off)
SOLID = 1.25
#: trace lines start at this fraction of `threshold`, measured on chroma
TRACE_LEVEL = 0.5
#: share of a pixel's chroma taken off its ink darkness (a coloured line is not ink)
INK_CHROMA = 0.3


def _endpoint_table() -> np.ndarray:
    """Codes whose centre pixel ends a line: one neighbour, or two that touch each other."""
    t = np.zeros(256, bool)
    for code in range(256):
        bits = [(code >> i) & 1 for i in range(8)]
        n = sum(bits)
        if n == 1:
            t[code] = True
        elif n == 2:
            i, j = [k for k in range(8) if bits[k]]
            t[code] = (j - i) in (1, 7)
    return t


_ENDPOINT = _endpoint_table()
# neighbour offsets in the bit order of skeleton._KERNEL: N, NE, E, SE, S, SW, W, NW
_OFFSETS = ((-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1))


@dataclass
class CleanupSettings:
    """Tunables; `None` means measured from the drawing."""

    threshold: float = 0.2         # darkness (1 = black, 0 = paper) that starts a line
    line_width: float | None = None  # output width in pixels
    despeckle: int | None = None   # pieces smaller than this many pixels are dropped
    gap: float | None = None       # largest gap closed, pixels
    transparent: bool = False


@dataclass
class Cleanup:
    """Per-class centre lines and the result."""

    skeletons: dict[str, np.ndarray]
    width: float
    stroke_width: float
    gaps_closed: int
    rgba: np.ndarray


def _hysteresis(value: np.ndarray, threshold: float) -> np.ndarray:
    """value > threshold, or > 0.55 x threshold within 2 px of such a pixel."""
    strong = (value > threshold).astype(np.uint8)
    near = cv2.dilate(strong, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5)))
    return (value > threshold * 0.55) & near.view(bool)


def line_masks(rgb: np.ndarray, threshold: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per-class binary line masks (uint8 0/1) and the ink darkness map.

    Ink darkness is 1 - the brightest channel (less a share of the chroma): graphite and
    ink darken every channel, a coloured pencil leaves its own channel bright. So a black line drawn over (or right
    next to) a red one still counts as ink, and the red one as red: the two masks may
    overlap, and ink is drawn on top. Trace lines are found on chroma."""
    flat = flatten_paper(rgb)
    r, g, b = cv2.split(flat)
    mx = cv2.max(cv2.max(r, g), b)
    mn = cv2.min(cv2.min(r, g), b)
    chroma = mx - mn
    # a clean coloured line dims its own brightest channel too (a green pencil's green is
    # darker than a red pencil's red): up to INK_CHROMA x its chroma of that is colour, not ink
    ink_dark = (1.0 - mx) - INK_CHROMA * chroma
    masks: dict[str, np.ndarray] = {}
    ink = _hysteresis(ink_dark, threshold)
    if ink.any():
        masks["ink"] = ink.astype(np.uint8)
    trace = _hysteresis(chroma, threshold * TRACE_LEVEL)
    ys, xs = np.nonzero(trace)
    if len(ys) == 0:
        return masks, ink_dark
    # hue votes pooled over a small window, weighted by chroma (JPEG colour bleeding and
    # anti-aliased edges do not flip a pixel's class)
    cls = np.zeros(chroma.shape, np.uint8)
    cy, cx = np.nonzero(cv2.dilate(trace.astype(np.uint8), np.ones((3, 3), np.uint8)))
    cls[cy, cx] = trace_class(flat[cy, cx][None])[0]
    winner = vote_trace_class(cls, chroma, ys, xs, VOTE_SIGMA, default=0)
    for idx in (1, 2, 3):
        sel = winner == idx
        if sel.any():
            m = np.zeros(chroma.shape, np.uint8)
            m[ys[sel], xs[sel]] = 1
            masks[CLASS_NAMES[idx]] = m
    return masks, ink_dark


def despeckle(mask: np.ndarray, min_area: int) -> np.ndarray:
    n, lab, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
    if n <= 1:
        return mask
    keep = stats[:, cv2.CC_STAT_AREA] >= min_area
    keep[0] = False
    return keep[lab].astype(np.uint8)


def stroke_width(mask: np.ndarray, dark: np.ndarray | None = None) -> float:
    """Typical stroke width (pixels) of a line mask: its ink (summed darkness, or its area
    without a darkness map) divided by its centre-line length and by the darkness of a
    full-pressure stroke. Anti-aliased fringes and faint edges count for what they weigh."""
    # solid areas (anything more than 12 px across at the working scale) are not strokes
    dt = cv2.distanceTransform(mask, cv2.DIST_L2, 3)
    core = (dt > 6).astype(np.uint8)
    keep = mask.astype(bool)
    if core.any():
        keep &= ~cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (15, 15))).view(bool)
    sk = thin(mask).astype(bool) & keep
    length = int(sk.sum())
    if length < 20:
        return 2.0
    if dark is None:
        return float(max(1.0, keep.sum() / length))
    peak = float(np.percentile(dark[sk], 75))
    return float(np.clip(dark[keep].sum() / (length * max(peak, 1e-3)), 1.0, 12.0))


def _walk(sk: np.ndarray, y: int, x: int, limit: int) -> tuple[list[tuple[int, int]], bool]:
    """Follow a centre line from end point (y, x): the pixels visited (up to `limit`) and
    whether a junction (3+ neighbours) was reached."""
    h, w = sk.shape
    path = [(y, x)]
    prev = None
    cy, cx = y, x
    for _ in range(limit):
        nbrs = [(cy + dy, cx + dx) for dy, dx in _OFFSETS
                if 0 <= cy + dy < h and 0 <= cx + dx < w and sk[cy + dy, cx + dx] and (cy + dy, cx + dx) != prev
                and (cy + dy, cx + dx) not in path[-3:]]
        if len(nbrs) == 0:
            return path, False
        if len(nbrs) > 1:
            # two neighbours that touch each other are one line stepping diagonally
            if len(nbrs) == 2 and abs(nbrs[0][0] - nbrs[1][0]) + abs(nbrs[0][1] - nbrs[1][1]) == 1:
                nbrs.sort(key=lambda p: abs(p[0] - cy) + abs(p[1] - cx))
            else:
                return path, True
        prev = (cy, cx)
        cy, cx = nbrs[0]
        path.append((cy, cx))
    return path, False


def endpoints(sk: np.ndarray) -> np.ndarray:
    code = neighbour_code(sk)
    ys, xs = np.nonzero(sk.astype(bool) & _ENDPOINT[code])
    return np.stack([ys, xs], 1)


def prune_spurs(sk: np.ndarray, max_len: int) -> np.ndarray:
    """Remove branches shorter than `max_len` that hang off a junction."""
    sk = sk.copy()
    for _ in range(2):
        removed = False
        for y, x in endpoints(sk):
            path, junction = _walk(sk, int(y), int(x), max_len)
            if junction and len(path) <= max_len:
                for py, px in path[:-1] if len(path) > 1 else path:
                    sk[py, px] = 0
                removed = True
        if not removed:
            break
    return sk


def close_gaps(sk: np.ndarray, max_gap: float, look_back: int = 8) -> tuple[np.ndarray, int]:
    """Join end points to the end point (or line) they face, within `max_gap` pixels."""
    sk = sk.copy()
    ends = endpoints(sk)
    if len(ends) == 0:
        return sk, 0
    h, w = sk.shape
    dirs = np.zeros((len(ends), 2), np.float32)
    for i, (y, x) in enumerate(ends):
        path, _ = _walk(sk, int(y), int(x), look_back)
        if len(path) >= 3:
            by, bx = path[-1]
            d = np.array([y - by, x - bx], np.float32)
            n = float(np.hypot(*d))
            dirs[i] = d / n if n else 0
    r = int(np.ceil(max_gap))
    end_index = {(int(y), int(x)): i for i, (y, x) in enumerate(ends)}
    n_comp, comp = cv2.connectedComponents(sk, connectivity=8)
    links = []
    cos_ee, cos_el = np.cos(np.radians(50)), np.cos(np.radians(25))
    for i, (y, x) in enumerate(ends):
        d = dirs[i]
        if not d.any():
            continue
        y0, y1, x0, x1 = max(0, y - r), min(h, y + r + 1), max(0, x - r), min(w, x + r + 1)
        py, px = np.nonzero(sk[y0:y1, x0:x1])
        py, px = py + y0, px + x0
        vy, vx = (py - y).astype(np.float32), (px - x).astype(np.float32)
        dist = np.hypot(vy, vx)
        ok = (dist > 1.5) & (dist <= max_gap)
        if not ok.any():
            continue
        cos = (vy * d[0] + vx * d[1]) / np.maximum(dist, 1e-6)
        best = None
        # 1) another end point that faces this one
        # (two ends closer than half the gap only need to face each other roughly)
        close = dist <= 0.5 * max_gap
        for k in np.flatnonzero(ok & ((cos > cos_ee) | (close & (cos > 0.26)))):
            j = end_index.get((int(py[k]), int(px[k])))
            if j is None or j == i:
                continue
            back = -(vy[k] * dirs[j][0] + vx[k] * dirs[j][1]) / dist[k]
            if dirs[j].any() and back > (0.0 if close[k] else np.cos(np.radians(60))):
                cost = dist[k] * (2.0 - cos[k])
                if best is None or cost < best[0]:
                    best = (cost, int(py[k]), int(px[k]))
        # 2) else a line straight ahead (a T junction left open), on another piece of line
        if best is None:
            cand = np.flatnonzero(ok & (cos > cos_el) & (dist <= 0.75 * max_gap)
                                  & (comp[py, px] != comp[y, x]))
            if len(cand):
                k = cand[np.argmin(dist[cand])]
                best = (dist[k], int(py[k]), int(px[k]))
        if best is not None:
            links.append(((int(x), int(y)), (best[2], best[1])))
    seen = set()
    for a, b in links:
        key = (min(a, b), max(a, b))
        if key in seen:
            continue
        seen.add(key)
        cv2.line(sk, a, b, 1, 1, cv2.LINE_8)
    return sk, len(seen)


def compose(covs: dict[str, tuple[np.ndarray, tuple[int, int, int, int]] | None], shape: tuple[int, int],
            transparent: bool = False) -> np.ndarray:
    """RGBA uint8 from per-class coverages (each a float32 patch and its box y0, y1, x0, x1):
    trace colours first, black ink on top, over white or on transparency."""
    h, w = shape
    out = np.zeros((h, w, 4), np.uint8)
    if not transparent:
        out[...] = 255
    covs = {k: v for k, v in covs.items() if v is not None}
    if not covs:
        return out
    y0 = min(b[0] for _, b in covs.values()); y1 = max(b[1] for _, b in covs.values())
    x0 = min(b[2] for _, b in covs.values()); x1 = max(b[3] for _, b in covs.values())
    bh, bw = y1 - y0, x1 - x0
    premul = np.zeros((bh, bw, 3), np.float32)
    alpha = np.zeros((bh, bw), np.float32)
    for name in [n for n in CLASS_NAMES[1:] if n in covs] + (["ink"] if "ink" in covs else []):
        c, (cy0, cy1, cx0, cx1) = covs[name]
        sl = (slice(cy0 - y0, cy1 - y0), slice(cx0 - x0, cx1 - x0))
        keep = 1.0 - c
        pm = premul[sl]
        pm *= keep[..., None]
        if name != "ink":
            pm += c[..., None] * np.array(CLASS_RGB[name], np.float32)
        al = alpha[sl]
        al *= keep
        al += c
    # cv2.convertScaleAbs rounds and saturates to uint8 (all values here are >= 0) several
    # times faster than numpy's clip and cast
    if transparent:
        rgb = premul / np.maximum(alpha, 1e-6)[..., None]
        out[y0:y1, x0:x1, :3] = cv2.convertScaleAbs(rgb)
        out[y0:y1, x0:x1, 3] = cv2.convertScaleAbs(alpha, alpha=255.0)
    else:
        alpha -= 1.0
        alpha *= -255.0  # 255 (1 - alpha): the white that shows through
        premul += alpha[..., None]
        out[y0:y1, x0:x1, :3] = cv2.convertScaleAbs(premul)
    return out


def coverage(skel: np.ndarray, width: float) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """Coverage in [0, 1] of a line of `width` pixels around a one-pixel centre line, as a
    float32 patch and its box (y0, y1, x0, x1); None without any line."""
    bx, by, bw, bh = cv2.boundingRect(skel)
    if bw == 0:
        return None
    pad = int(np.ceil(width)) + 4
    h, w = skel.shape
    y0, y1 = max(0, by - pad), min(h, by + bh + pad)
    x0, x1 = max(0, bx - pad), min(w, bx + bw + pad)
    sub = skel[y0:y1, x0:x1]
    dt = cv2.distanceTransform((sub == 0).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    field = np.minimum(width / 2.0 + 0.5 - dt, 2.0)  # signed, clipped far from the line
    field = cv2.GaussianBlur(field, (0, 0), 0.6 + 0.1 * width)  # smooths jaggies of the centre line
    np.clip(field, 0.0, 1.0, out=field)
    return field, (int(y0), int(y1), int(x0), int(x1))


def to_rgb(frame: np.ndarray) -> np.ndarray:
    """RGB uint8 of an RGBA frame, composited over white where it is transparent."""
    if frame.shape[2] == 3:
        return frame
    a = frame[..., 3:4]
    if cv2.minMaxLoc(np.ascontiguousarray(frame[..., 3]))[0] == 255:
        return np.ascontiguousarray(frame[..., :3])
    af = a.astype(np.float32) / 255.0
    return np.clip(frame[..., :3] * af + 255.0 * (1 - af) + 0.5, 0, 255).astype(np.uint8)


def fill_slivers(mask: np.ndarray, base: float) -> np.ndarray:
    """Fill enclosed holes that are tiny or at most 2 px across: the slits between the two
    passes of a jittered double stroke, which would otherwise thin into little loops (and
    hide the end points that gap closing needs). Real holes (eye highlights, the paper
    inside a small ring) are wider and stay."""
    bg = (mask == 0).astype(np.uint8)
    n, lab, stats, _ = cv2.connectedComponentsWithStats(bg, connectivity=4)
    if n <= 2:
        return mask
    h, w = mask.shape
    x, y, bw, bh = (stats[:, k] for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    enclosed = (x > 0) & (y > 0) & (x + bw < w) & (y + bh < h)
    enclosed[0] = False
    survives = np.zeros(n, bool)
    survives[np.unique(lab[cv2.erode(bg, np.ones((3, 3), np.uint8)).view(bool)])] = True
    fill = enclosed & ((stats[:, cv2.CC_STAT_AREA] < max(4.0, base * base)) | ~survives)
    if not fill.any():
        return mask
    return (mask.view(bool) | fill[lab]).astype(np.uint8)


def solid_areas(mask: np.ndarray, base: float) -> np.ndarray | None:
    """Filled parts of a line mask: wherever it is more than ~2.5 stroke widths thick, the
    shape around that core (uint8 0/1), else None."""
    dt = cv2.distanceTransform(mask, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    core = (dt > max(2.5, SOLID * base)).astype(np.uint8)
    if not core.any():
        return None
    r = int(np.ceil(SOLID * base)) + 1
    return cv2.dilate(core, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1))) & mask


def skeletons_from_masks(masks: dict[str, np.ndarray], s: CleanupSettings,
                         dark: np.ndarray | None = None
                         ) -> tuple[dict[str, np.ndarray], float, int, dict[str, np.ndarray]]:
    """Despeckle, smooth, thin, prune and close gaps of per-class masks.

    Returns the centre lines, the measured stroke width, the number of gaps closed and the
    solid areas (filled pupils, spotted blacks), which are kept filled, not thinned away."""
    base = stroke_width(masks.get("ink", next(iter(masks.values()))), dark)
    min_area = s.despeckle if s.despeckle is not None else int(max(6, 2.5 * base * base))
    max_gap = s.gap if s.gap is not None else max(4.0, 3.5 * base)
    spur = int(max(3, round(2.0 * base)))
    sigma = max(0.5, SMOOTH * base)
    out: dict[str, np.ndarray] = {}
    solids: dict[str, np.ndarray] = {}
    closed = 0
    for name, m in masks.items():
        m = despeckle(m, min_area)
        if not m.any():
            continue
        sm = cv2.GaussianBlur(m.astype(np.float32), (0, 0), sigma)
        m = (sm > SMOOTH_LEVEL).astype(np.uint8)
        m = fill_slivers(m, base)
        if SOLID:
            solid = solid_areas(m, base)
            if solid is not None:
                solids[name] = solid
        sk = thin(m)
        sk = prune_spurs(sk, spur)
        sk, n = close_gaps(sk, max_gap)
        closed += n
        sk = despeckle(sk, max(2, int(1.5 * base)))
        if sk.any():
            out[name] = sk
    return out, base, closed, solids


def work_scale(shape: tuple[int, int]) -> int:
    """Factor the analysis runs below full resolution: 1 up to ~900 lines, 2 at 1080p, 4 at 4K.
    Strokes of a scan grow with its resolution, and centre lines need only ~3 px strokes."""
    return max(1, int(round(min(shape[:2]) / 600.0)))


def cleanup(frame: np.ndarray, s: CleanupSettings | None = None, scale: int | None = None) -> Cleanup:
    s = s or CleanupSettings()
    rgb = to_rgb(frame)
    h, w = rgb.shape[:2]
    f = scale or work_scale((h, w))
    small = cv2.resize(rgb, (max(1, w // f), max(1, h // f)), interpolation=cv2.INTER_AREA) if f > 1 else rgb
    masks, dark = line_masks(small, s.threshold)
    if not masks:
        return Cleanup({}, s.line_width or 0.0, 0.0, 0, compose({}, (h, w), s.transparent))
    rel = CleanupSettings(s.threshold, None, None if s.despeckle is None else max(1, s.despeckle // (f * f)),
                          None if s.gap is None else s.gap / f)
    skels, base, closed, solids = skeletons_from_masks(masks, rel, dark)
    width = s.line_width or max(1.5, base * f)
    if f > 1:
        skels = {k: upscale_skeleton(v, f, (h, w)) for k, v in skels.items()}
        solids = {k: cv2.resize(v.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
                  for k, v in solids.items()}
    covs = {name: with_solid(coverage(sk, width), solids.get(name), 0.7 * f) for name, sk in skels.items()}
    rgba = compose(covs, (h, w), s.transparent)
    return Cleanup(skels, width, base * f, closed, rgba)


def with_solid(cov, solid: np.ndarray | None, soften: float = 0.7):
    """A line coverage (patch, box) with a filled area (0/1, or 0..1 when upscaled) added
    with a smooth anti-aliased edge."""
    if solid is None:
        return cov
    bx, by, bw, bh = cv2.boundingRect((solid > 0).astype(np.uint8))
    if bw == 0:
        return cov
    h, w = solid.shape
    m = int(np.ceil(3 * soften)) + 2
    y0, y1, x0, x1 = max(0, by - m), min(h, by + bh + m), max(0, bx - m), min(w, bx + bw + m)
    if cov is not None:
        _, (cy0, cy1, cx0, cx1) = cov
        y0, y1, x0, x1 = min(y0, cy0), max(y1, cy1), min(x0, cx0), max(x1, cx1)
    patch = np.zeros((y1 - y0, x1 - x0), np.float32)
    if cov is not None:
        c, (cy0, cy1, cx0, cx1) = cov
        patch[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0] = c
    soft = cv2.GaussianBlur(solid[y0:y1, x0:x1].astype(np.float32), (0, 0), soften)
    np.maximum(patch, np.clip((soft - 0.5) * 2.0 + 0.5, 0, 1), out=patch)
    return patch, (y0, y1, x0, x1)


def upscale_skeleton(sk: np.ndarray, f: int, shape: tuple[int, int]) -> np.ndarray:
    """A centre line found at 1/f resolution, as a connected centre line at full resolution."""
    h, w = shape
    out = np.zeros((h, w), np.uint8)
    ys, xs = np.nonzero(sk)
    off = f // 2
    cy, cx = np.minimum(ys * f + off, h - 1), np.minimum(xs * f + off, w - 1)
    out[cy, cx] = 1
    # join each pixel to its right, lower and diagonal neighbours so the line stays connected
    for dy, dx in ((0, 1), (1, 0), (1, 1), (1, -1)):
        ny, nx = ys + dy, xs + dx
        ok = (ny < sk.shape[0]) & (nx >= 0) & (nx < sk.shape[1])
        ok[ok] = sk[ny[ok], nx[ok]] > 0
        for k in range(1, f):
            out[np.minimum(cy[ok] + dy * k, h - 1), np.clip(cx[ok] + dx * k, 0, w - 1)] = 1
    return out
