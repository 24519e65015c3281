"""The reference model: a coloured key cut into regions as the drawings are (from its line art, or
without it from the cel's colour edges), each region's base colour, where its outlines lie, its
line colours and whether it is shaded, built once per reference (`build_ref`); the colour table
of a job (`Colours`); telling painted frames from line art (`is_coloured`)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace

import cv2
import numpy as np

from . import trace
from .align import outline_lines
from .features import Regions, describe
from .match import TRANSPARENT
from .palette import RGB
from .pixels import modal_colours
from .regions import PAINTED_ALPHA, LineArt, Segmentation, extract_lines, is_ink, line_strength, segment
from .shading import away_from_lines, rim_colours, shaded_regions


@dataclass
class Prepared:
    """A drawing cut into regions: its lines, its segmentation, its regions' features. Read-only once
    built (`prepare` locks its arrays): a pass that decides more of the drawing is background makes a
    new one (`with_background`), so what one pass decides never leaks into the segmentation another
    reads (a drawing that is also a reference, a variant of the ablation bench)."""
    art: LineArt
    seg: Segmentation
    regs: Regions

    def with_background(self, regions: np.ndarray) -> Prepared:
        """The same drawing with `regions` (a per-region mask or region ids) background too."""
        outside = self.regs.outside.copy()
        outside[regions] = True
        outside.setflags(write=False)
        return replace(self, regs=replace(self.regs, outside=outside))


def prepare(img: np.ndarray, gap: float = 0.0) -> Prepared:
    art = extract_lines(img)
    seg = segment(art, gap)
    prep = Prepared(art, seg, describe(seg))
    for part in (art, seg, prep.regs):
        for f in fields(part):
            value = getattr(part, f.name)
            if isinstance(value, np.ndarray):
                value.setflags(write=False)
    return prep


#: line strength (`line_strength`) above which a pixel is drawn, not paper grain or compression noise
DRAWN = 0.15
#: a frame with fewer drawn pixels than this is empty, not painted
DRAWN_MIN_PX = 16
#: eroded paint (areas wider than a line) makes up at least this share of what is drawn in a painted
#: frame: line art measures 0.00-0.07 (bold strokes and solid black parts are ink, fringes are too
#: thin to survive the erosion), painted cels 0.59 and more
PAINTED_SHARE = 0.15
#: paint wider than a line: the erosion's width is this share of the frame's smaller side (at least
#: PAINT_WIDTH_MIN px): thicker than the boldest strokes
PAINT_WIDTH_SHARE = 1 / 120
PAINT_WIDTH_MIN = 7


def is_coloured(img: np.ndarray) -> bool:
    """True for a frame that is already painted (filled areas, not just lines).

    Paint is what is drawn but not dark like ink (colour, or a tone). Bold line art
    (thick strokes, solid black pupils) is wide and dark but has no paint, and anti-aliased
    line fringes are paint-like but thin: so a frame is painted when eroded paint (areas
    wider than a line) makes up a good share of everything drawn."""
    s = line_strength(img)
    strong = s > DRAWN
    if strong.sum() < DRAWN_MIN_PX:
        return False
    paint = strong & ~is_ink(img)
    k = max(PAINT_WIDTH_MIN, int(round(min(img.shape[:2]) * PAINT_WIDTH_SHARE)) | 1)
    core = cv2.erode(paint.astype(np.uint8), np.ones((k, k), np.uint8))
    return core.sum() > PAINTED_SHARE * strong.sum()


def lines_from_cel(cel: np.ndarray) -> LineArt:
    """Line art recovered from a coloured cel: dark ink plus the edges between colour fills."""
    alpha = cel[..., 3]
    ink = (alpha >= PAINTED_ALPHA) & is_ink(cel)
    key = (cel[..., 0].astype(np.int64) << 24) | (cel[..., 1].astype(np.int64) << 16) | \
          (cel[..., 2].astype(np.int64) << 8) | (alpha >= PAINTED_ALPHA)
    edge = np.zeros(ink.shape, bool)
    dx = key[:, 1:] != key[:, :-1]
    dy = key[1:] != key[:-1]
    edge[:, 1:] |= dx
    edge[1:] |= dy
    line = ink | edge
    cov = line.astype(np.float32)
    z = np.zeros_like(ink)
    return LineArt(cov, line, ink, z, z.copy(), (0, 0, 0), 1.0)


@dataclass
class RefModel:
    frame: int
    image: np.ndarray
    prep: Prepared
    colour: np.ndarray               # (n+1,) index into the global colour table or TRANSPARENT
    from_lines: bool                 # regions come from the key's line art (else from the cel's colours)
    outline: np.ndarray              # where an outline can lie on its lines (`outline_lines`)
    rim: np.ndarray | None           # its regions' line colours (`rim_colours`); None without the
                                     # key's line art (then every colour edge of the cel is a "line")
    away: np.ndarray                 # where its paint is read (`away_from_lines`)
    shaded: np.ndarray               # (n+1,) bool: it paints the region off the region's own colour
    role: np.ndarray                 # (n+1,) its regions' trace roles (`trace.roles`; all BASE without
                                     # the key's line art)
    tones: tuple[dict[int, int], dict[int, int]]  # base colour -> shadow / highlight colour (`tone_tables`)


@dataclass
class Colours:
    """The global colour table of a job (every colour that may be painted)."""
    table: list[RGB] = field(default_factory=list)
    index: dict[RGB, int] = field(default_factory=dict)

    def add(self, rgb) -> int:
        rgb = tuple(int(c) for c in rgb)
        if rgb not in self.index:
            self.index[rgb] = len(self.table)
            self.table.append(rgb)
        return self.index[rgb]


#: above this many pixels (past 1920 x 1080; a 4K frame) a region's colour is read from every other
#: pixel in each direction: a quarter of them are still thousands per region
SUBSAMPLE_ABOVE_PX = 2_500_000


def region_colours(labels: np.ndarray, free: np.ndarray, cel: np.ndarray, n: int, colours: Colours) -> np.ndarray:
    """The base colour of `cel` inside every region (TRANSPARENT where mostly unpainted).

    Real cels are shaded: gradients, soft shadows and highlights inside a part, so the most
    frequent exact value may be a highlight or one step of a gradient. The base colour is the
    per-channel median of the pixels in the region's most frequent coarse colour (... its value
    there; on a flat cel the flat colour exactly, and a region straddling two paints takes the
    larger, never a mix). Ink drawn inside a region is not its colour, unless the region is all
    dark (a black part)."""
    step = 1 if labels.size <= SUBSAMPLE_ABOVE_PX else 2
    lab = labels[::step, ::step].ravel()
    c = cel[::step, ::step].reshape(-1, 4)
    sel = free[::step, ::step].ravel()
    painted = c[:, 3] >= PAINTED_ALPHA
    dark = is_ink(c)
    total = np.bincount(lab[sel], minlength=n + 1)
    light = np.bincount(lab[sel & ~dark], minlength=n + 1)
    use = sel & (~dark | (light[lab] == 0))  # a region with no light pixel keeps its dark ones
    n_painted = np.bincount(lab[use & painted], minlength=n + 1)
    n_used = np.bincount(lab[use], minlength=n + 1)
    out = np.full(n + 1, TRANSPARENT, int)
    keep = (total > 0) & (n_painted * 2 > n_used)  # mostly painted
    pick = use & painted & keep[lab]
    if not pick.any():
        return out
    med, counts = modal_colours(lab[pick], c[pick, :3], n)
    for r in np.nonzero(counts > 0)[0]:
        out[r] = colours.add(tuple(int(x) for x in med[r]))
    return out


def build_ref(frame: int, cel: np.ndarray, lines: np.ndarray | None, gap: float, colours: Colours) -> RefModel:
    h, w = cel.shape[:2]
    if lines is not None and lines.shape[:2] == (h, w) and not is_coloured(lines):
        prep = prepare(lines, gap)
        from_lines = True
    else:
        art = lines_from_cel(cel)
        seg = segment(art, 1.0, min_core=1)
        prep = Prepared(art, seg, describe(seg))
        from_lines = False
    col = region_colours(prep.seg.labels, prep.seg.free, cel, prep.seg.n, colours)
    painted = col >= 0
    base = np.zeros((len(col), 3), np.float32)
    base[painted] = np.array(colours.table, np.float32).reshape(-1, 3)[col[painted]]
    away = away_from_lines(prep)
    if from_lines:
        role, partner = trace.roles(prep.regs)
    else:
        role = partner = np.zeros(prep.regs.n + 1, int)
    # built once per reference: every drawing coloured from it asks for them
    return RefModel(frame, cel, prep, col, from_lines, outline_lines(prep),
                    rim_colours(prep, cel) if from_lines else None, away,
                    shaded_regions(prep.seg.labels, away, cel, base) & painted,
                    role, tone_tables(prep.regs, col, role, partner))


def tone_tables(regs, colour: np.ndarray, role: np.ndarray, partner: np.ndarray) -> tuple[dict[int, int], dict[int, int]]:
    """A reference's base colour index -> shadow / highlight colour index, as painted there: each
    trace region's colour (`colour`) beside its partner's, the largest area deciding."""
    tables: tuple[dict, dict] = ({}, {})
    votes: dict[tuple[int, int, int], float] = {}
    for t in np.nonzero(role)[0]:
        b, c = colour[partner[t]], colour[t]
        if b < 0 or c < 0 or b == c:
            continue
        key = (int(role[t]), int(b), int(c))
        votes[key] = votes.get(key, 0.0) + regs.area[t]
    for (r, b, c), v in sorted(votes.items(), key=lambda kv: kv[1]):
        tables[r - 1][b] = c
    return tables
