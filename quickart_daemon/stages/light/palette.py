"""The colour model: ink, flat fill colours, their RGB convex hull and a small palette.

PaintingLight starts from the convex hull of the image's colours in RGB and a
simplified hull whose few vertices are the palette; every pixel is a convex mix of
those vertices. On a flat cel two kinds of colour mix: the ink of the lines with a
fill (anti-aliased line edges) and fills with each other (edges between fills). So
the model separates them: the hull is built from the *flat* fill colours only, and a
pixel's colour is read as ``ink * a + fill * (1 - a)`` with the smallest ink share
``a`` that puts the fill part inside the hull. Line pixels (a >= 0.5) are never lit;
the fill part is decomposed into palette weights and lit.

Everything here works on the set of distinct colours, not on pixels: a cel has a few
dozen flat colours and a few thousand anti-aliasing blends, so a model is built once
per layer and colour set and reused on every frame of the shot (see ``model_for``).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ..color.palette import Palette, shade

#: palette size of the simplified hull (the paper uses about this many for paintings)
PALETTE_SIZE = 6
#: colours within this RGB distance (0..1 units) of the hull count as inside it
HULL_TOLERANCE = 2.0 / 255.0
#: a colour this close to the ink is never a fill
INK_DISTANCE = 0.15
#: an ink-and-fill mix explains a colour outside the hull when it is this close (0..1 RGB)
MIX_TOLERANCE = 0.08
#: colours this close to the ink that nothing else explains count as line pixels
DARK_RADIUS = 0.35
_LUT_SIZE = 1 << 24
_UNKNOWN = np.uint16(0xFFFF)


def pack(rgb: np.ndarray) -> np.ndarray:
    """uint8 (..., 3) -> int32 0xRRGGBB."""
    rgb = rgb.astype(np.int32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def unpack(packed: np.ndarray) -> np.ndarray:
    """int32 0xRRGGBB -> float64 (..., 3) in 0..1."""
    packed = np.asarray(packed, np.int64)
    return np.stack([(packed >> 16) & 255, (packed >> 8) & 255, packed & 255], -1) / 255.0


# -- convex hull (incremental; the point sets here are small) -------------------------------------

def _plane(pts: np.ndarray, f: tuple[int, int, int]) -> tuple[np.ndarray, float]:
    a, b, c = pts[f[0]], pts[f[1]], pts[f[2]]
    n = np.cross(b - a, c - a)
    n /= np.linalg.norm(n) + 1e-300
    return n, float(n @ a)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Triangles (F, 3) of indices into ``points``, outward-oriented.

    ``points`` must span 3-D (callers add a small jitter octahedron, see ``_hull_points``).
    """
    pts = np.asarray(points, np.float64)
    i0 = int(np.argmin(pts[:, 0]))
    i1 = int(np.argmax(np.linalg.norm(pts - pts[i0], axis=1)))
    line = pts[i1] - pts[i0]
    i2 = int(np.argmax(np.linalg.norm(np.cross(pts - pts[i0], line), axis=1)))
    n = np.cross(line, pts[i2] - pts[i0])
    i3 = int(np.argmax(np.abs((pts - pts[i0]) @ n)))
    if abs((pts[i3] - pts[i0]) @ n) < 1e-12:
        raise ValueError("points do not span three dimensions")
    inside = pts[[i0, i1, i2, i3]].mean(0)
    faces: list[tuple[int, int, int]] = []
    for f in ((i0, i1, i2), (i0, i1, i3), (i0, i2, i3), (i1, i2, i3)):
        nn, d = _plane(pts, f)
        faces.append(f if nn @ inside < d else (f[0], f[2], f[1]))
    planes = [_plane(pts, f) for f in faces]
    for p in np.argsort(-np.linalg.norm(pts - inside, axis=1)):  # far points first: fewer faces to redo
        if p in (i0, i1, i2, i3):
            continue
        normals = np.array([pl[0] for pl in planes])
        offsets = np.array([pl[1] for pl in planes])
        visible = normals @ pts[p] - offsets > 1e-12
        if not visible.any():
            continue
        vis_edges = {(f[i], f[(i + 1) % 3]) for f, v in zip(faces, visible) if v for i in range(3)}
        horizon = [(u, w) for (u, w) in vis_edges if (w, u) not in vis_edges]
        faces = [f for f, v in zip(faces, visible) if not v]
        planes = [pl for pl, v in zip(planes, visible) if not v]
        for u, w in horizon:
            faces.append((u, w, int(p)))
            planes.append(_plane(pts, faces[-1]))
    return np.array(faces, np.int64)


def _hull_points(colours: np.ndarray, tol: float) -> np.ndarray:
    """The colours plus a tiny octahedron around each hull candidate: the hull is always
    3-D (one or two flat colours, greys) and colours within ``tol`` of it count as inside."""
    dirs = _sphere(128)
    cand = np.unique(np.argmax(colours @ dirs.T, axis=0)) if len(colours) > 16 else np.arange(len(colours))
    octa = np.concatenate([np.eye(3), -np.eye(3)]) * tol
    return (colours[cand][:, None, :] + octa[None]).reshape(-1, 3)


def _sphere(n: int) -> np.ndarray:
    i = np.arange(n) + 0.5
    phi, theta = np.arccos(1 - 2 * i / n), np.pi * (1 + 5 ** 0.5) * i
    return np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)


def hull_planes(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(normals (F, 3), offsets (F,)) with ``normals @ x <= offsets`` inside."""
    faces = convex_hull(points)
    planes = [_plane(points, tuple(f)) for f in faces]
    return np.array([p[0] for p in planes]), np.array([p[1] for p in planes])


# -- palette: a few hull vertices that still enclose every fill -----------------------------------

def simplify_palette(hull_vertices: np.ndarray, fills: np.ndarray, size: int = PALETTE_SIZE) -> np.ndarray:
    """Pick ``size`` hull vertices greedily (each the one farthest outside the hull of those
    already picked, as the paper's coarse hull keeps the extreme colours), then scale the
    result about its centre until it encloses every fill colour again."""
    v = np.unique(np.round(hull_vertices, 6), axis=0)
    if len(v) <= size:
        chosen = v
    else:
        idx = [int(np.argmin(v.sum(1))), int(np.argmax(v.sum(1)))]
        while len(idx) < size:
            pts = v[idx]
            if len(idx) < 4:  # distance to the affine span of what we have
                base = pts - pts[0]
                q, _ = np.linalg.qr(base[1:].T) if len(idx) > 1 else (np.zeros((3, 0)), None)
                rel = v - pts[0]
                dist = np.linalg.norm(rel - rel @ q @ q.T, axis=1)
            else:
                try:
                    n, d = hull_planes(pts)
                    dist = (v @ n.T - d).max(1)
                except ValueError:
                    dist = np.linalg.norm(v - pts.mean(0), axis=1)
            dist[idx] = -np.inf
            idx.append(int(np.argmax(dist)))
        chosen = v[idx]
    centre = chosen.mean(0)
    try:
        n, d = hull_planes(_hull_points(chosen, 1e-4))
        room = d - n @ centre
        scale = max(1.0, float(((fills - centre) @ n.T / np.maximum(room, 1e-9)).max()))
    except ValueError:
        scale = 1.0
    return np.clip(centre + (chosen - centre) * scale, 0.0, 1.0)


def _project_simplex(w: np.ndarray) -> np.ndarray:
    """Row-wise Euclidean projection onto {w >= 0, sum w = 1}."""
    k = w.shape[1]
    s = -np.sort(-w, axis=1)
    css = np.cumsum(s, axis=1) - 1.0
    rho = np.count_nonzero(s - css / np.arange(1, k + 1) > 0, axis=1)
    theta = css[np.arange(len(w)), rho - 1] / rho
    return np.maximum(w - theta[:, None], 0.0)


def palette_weights(colours: np.ndarray, palette: np.ndarray, iterations: int = 150) -> np.ndarray:
    """Convex weights (M, K) so that ``weights @ palette`` best reproduces each colour
    (projected gradient on the simplex; exact for colours inside the palette's hull)."""
    if len(colours) == 0:
        return np.zeros((0, len(palette)))
    gram = palette @ palette.T
    step = 1.0 / max(float(np.linalg.eigvalsh(gram).max()), 1e-9)
    w = np.full((len(colours), len(palette)), 1.0 / len(palette))
    target = colours @ palette.T
    for _ in range(iterations):
        w = _project_simplex(w - step * (w @ gram - target))
    return w


# -- the model --------------------------------------------------------------------------------------

@dataclass
class ColourModel:
    """Ink, flat fills, hull planes and palette, plus per-colour decompositions (cached)."""

    ink: np.ndarray                 # (3,) 0..1
    fills: np.ndarray               # (N, 3) 0..1, the flat colours
    normals: np.ndarray             # hull of the fills: normals @ x <= offsets
    offsets: np.ndarray
    palette: np.ndarray             # (K, 3) simplified hull vertices
    lut: np.ndarray = field(repr=False, default_factory=lambda: np.full(_LUT_SIZE, _UNKNOWN, np.uint16))
    ink_share: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.float32))
    fill_part: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 3), np.float32))
    fill_index: np.ndarray = field(repr=False, default_factory=lambda: np.zeros(0, np.int32))
    weights: np.ndarray = field(repr=False, default_factory=lambda: np.zeros((0, 0), np.float32))
    reconstruction_error: float = 0.0

    def lookup(self, packed: np.ndarray) -> np.ndarray:
        """Row indices into the per-colour tables for packed colours; decomposes new colours."""
        idx = self.lut[packed]
        missing = idx == _UNKNOWN
        if missing.any():
            self._add(np.unique(packed[missing]))
            idx = self.lut[packed]
        return idx

    def _add(self, new: np.ndarray) -> None:
        if len(self.ink_share) + len(new) >= int(_UNKNOWN):
            raise ValueError("more than 65,534 distinct colours: not a flat cel")
        rgb = unpack(new)
        share, fill = decompose(rgb, self.ink, self.normals, self.offsets, self.fills)
        w = palette_weights(fill, self.palette)
        # the nearest flat colour names the fill region a pixel belongs to (geometry edges)
        d = ((w @ self.palette)[:, None, :] - self.fills[None]) ** 2
        nearest = d.sum(2).argmin(1)
        start = len(self.ink_share)
        self.ink_share = np.concatenate([self.ink_share, share.astype(np.float32)])
        self.fill_part = np.concatenate([self.fill_part, fill.astype(np.float32)])
        self.fill_index = np.concatenate([self.fill_index, nearest.astype(np.int32)])
        self.weights = np.concatenate([self.weights.reshape(-1, len(self.palette)), w.astype(np.float32)])
        err = np.linalg.norm(w @ self.palette - fill, axis=1)
        self.reconstruction_error = max(self.reconstruction_error, float(err.max()) if len(err) else 0.0)
        self.lut[new] = np.arange(start, start + len(new), dtype=np.uint16)

    def describe(self) -> dict:
        hexes = lambda a: ["#%02x%02x%02x" % tuple(int(round(c * 255)) for c in row) for row in a]
        return {"ink": hexes(self.ink[None])[0], "fills": len(self.fills), "palette": hexes(self.palette),
                "colours_decomposed": int(len(self.ink_share)),
                "max_reconstruction_error": round(self.reconstruction_error * 255, 2)}


def _nearest_mix(rgb: np.ndarray, ink: np.ndarray, fills: np.ndarray) -> np.ndarray:
    """Ink share of the best ink-and-one-fill mix for each colour (the fallback for colours
    outside the hull: a line over a flat colour too small to be in the model); a colour no
    such mix explains is a fill of its own (share 0)."""
    span = fills - ink                                                     # (N, 3)
    rel = rgb - ink                                                        # (M, 3)
    keep = np.clip((rel @ span.T) / np.maximum((span * span).sum(1), 1e-9), 0.0, 1.0)  # (M, N) fill share
    resid = np.linalg.norm(rel[:, None, :] - keep[..., None] * span[None], axis=2)
    best = resid.argmin(1)
    rows = np.arange(len(rgb))
    share = 1.0 - keep[rows, best]
    # a dark colour no mix explains is ink over a fill too small to be in the model (an iris):
    # its share falls from 1 at the ink to a line's 0.5 at DARK_RADIUS
    dark = np.clip(1.0 - 0.5 * np.linalg.norm(rel, axis=1) / DARK_RADIUS, 0.0, 1.0)
    dark = np.where(dark >= 0.5, dark, 0.0)
    return np.where(resid[rows, best] < MIX_TOLERANCE, np.maximum(share, dark), dark)


def decompose(rgb: np.ndarray, ink: np.ndarray, normals: np.ndarray, offsets: np.ndarray,
              fills: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ink share ``a`` and fill part ``f`` of each colour, ``rgb = a * ink + (1 - a) * f``.

    ``f`` runs along the ray from the ink through the colour; ``a`` is the smallest share
    that puts ``f`` inside the fill hull. A colour the ray cannot explain (it misses the
    hull: a colour that is neither a fill nor a fill darkened by ink) counts as ink when it
    lies close to the ink, else as a fill of its own."""
    rgb = np.asarray(rgb, np.float64)
    slack = offsets[None] - rgb @ normals.T                      # >= 0 on the inner side of a plane
    inside = (slack >= -HULL_TOLERANCE).all(1)
    d = (rgb - ink) @ normals.T                                  # how the ray moves across each plane
    base = offsets[None] - (ink @ normals.T)[None]               # plane offset seen from the ink
    with np.errstate(divide="ignore", invalid="ignore"):
        t = base / d
    enter = np.where(d < 0, t, -np.inf).max(1)
    leave = np.where(d > 0, t, np.inf).min(1)
    hits = (enter <= leave + 1e-9) & (enter > 1.0)
    share = np.where(hits, 1.0 - 1.0 / np.where(hits, enter, 1.0), 0.0)
    share = np.where(inside, 0.0, np.where(hits, share, _nearest_mix(rgb, ink, fills)))
    keep = share < 0.999
    fill = np.where(keep[:, None], (rgb - share[:, None] * ink) / np.maximum(1.0 - share[:, None], 1e-3), rgb)
    return share, np.clip(fill, 0.0, 1.0)


def flat_colours(images: list[np.ndarray], min_interior: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Packed colours of flat areas (a pixel whose 4 neighbours share its colour) with their
    interior pixel counts, over all images; anti-aliasing blends have no interior."""
    counts: dict[int, int] = {}
    for img in images:
        visible = img[..., 3] >= 128
        p = np.where(visible, pack(img[..., :3]), -1)
        interior = visible.copy()
        interior[1:-1, 1:-1] &= ((p[1:-1, 1:-1] == p[:-2, 1:-1]) & (p[1:-1, 1:-1] == p[2:, 1:-1])
                                 & (p[1:-1, 1:-1] == p[1:-1, :-2]) & (p[1:-1, 1:-1] == p[1:-1, 2:]))
        interior[[0, -1], :] = False
        interior[:, [0, -1]] = False
        u, n = np.unique(p[interior], return_counts=True)
        for c, k in zip(u.tolist(), n.tolist()):
            counts[c] = counts.get(c, 0) + k
    colours = np.array([c for c, k in counts.items() if k >= min_interior], np.int64)
    return colours, np.array([counts[c] for c in colours.tolist()], np.int64)


def build_model(colours: np.ndarray, counts: np.ndarray) -> ColourModel:
    """The colour model of a set of flat colours (packed)."""
    rgb = unpack(colours) if len(colours) else np.zeros((0, 3))
    luma = rgb @ np.array([0.299, 0.587, 0.114]) if len(rgb) else np.zeros(0)
    dark = np.flatnonzero(luma < 0.2)
    # the ink is the most used dark flat colour (lines are drawn in one ink); black if none
    ink = rgb[dark[np.argmax(counts[dark])]] if len(dark) else np.zeros(3)
    fills = rgb[np.linalg.norm(rgb - ink, axis=1) >= INK_DISTANCE] if len(rgb) else rgb
    if len(fills) == 0:  # nothing but ink: a mid grey keeps the maths defined, nothing is lit anyway
        fills = np.array([[0.5, 0.5, 0.5]])
    pts = _hull_points(fills, HULL_TOLERANCE)
    normals, offsets = hull_planes(pts)
    faces_pts = pts[np.unique(convex_hull(pts))]
    palette = simplify_palette(faces_pts, fills)
    return ColourModel(ink=ink, fills=fills, normals=normals, offsets=offsets, palette=palette)


def shadow_tones(fills: np.ndarray, palette: Palette | None) -> np.ndarray:
    """The shadow tone (N, 3, 0..1) of each flat fill colour: the palette's NAME_shadow when the
    fill is the palette colour NAME and has one (the colour designer's choice, as the colour stage
    paints trace-line shadows), else the colour stage's computed tone (darker and cooler)."""
    tones = []
    for rgb in np.rint(np.asarray(fills) * 255.0).astype(int).tolist():
        rgb = tuple(rgb)
        named = palette is not None and palette.name_of(rgb) is not None
        tones.append(palette.tone(rgb, "shadow") if named else shade(rgb))
    return np.asarray(tones, np.float64).reshape(-1, 3) / 255.0


_CACHE: OrderedDict[bytes, ColourModel] = OrderedDict()
_CACHE_SIZE = 4  # each model holds a 32 MiB colour lookup table


def model_for(images: list[np.ndarray]) -> tuple[ColourModel, bool]:
    """The colour model of these frames (one layer of a shot), from the cache when the same
    set of flat colours was seen before. Returns (model, cache hit)."""
    colours, counts = flat_colours(images)
    order = np.argsort(colours)
    key = colours[order].tobytes()
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key], True
    model = build_model(colours[order], counts[order])
    _CACHE[key] = model
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return model, False
