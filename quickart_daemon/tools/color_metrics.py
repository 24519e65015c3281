"""Accuracy metrics of the `color` stage on synthetic cels with ground truth.

Used by the benchmark (bench/bench_color.py) and the tests (tests/test_color.py):
- `accuracy_table`: share of character pixels coloured correctly from one reference key,
  at several gaps in frames, ours and the naive nearest-centroid baseline, shadow and
  highlight pixels;
- `hint_and_trace`: hinted-region accuracy and the tones given by colour-trace lines;
- `leak_table`: regions merged through line gaps of 1-3 px.
"""

from __future__ import annotations

import cv2
import numpy as np

from . import synth
from ..stages.color.finish import paint
from ..stages.color.match import TRANSPARENT
from ..stages.color.palette import Palette
from ..stages.color.regions import extract_lines, segment
from ..stages.color.reference import Colours, RefModel, build_ref, prepare
from ..stages.color.stage import colour_drawing


def character_mask(f: synth.SynthFrame) -> np.ndarray:
    """Character pixels scored: region pixels away from the ink's anti-aliased fringe."""
    return (f.labels > 0) & (f.ink_alpha == 0)


def correct(img: np.ndarray, f: synth.SynthFrame) -> np.ndarray:
    d = np.abs(img[..., :3].astype(np.int16) - f.color[..., :3].astype(np.int16)).max(2)
    return (d <= 6) & (img[..., 3] > 0)


def naive(target_img: np.ndarray, ref: RefModel, colours: Colours) -> np.ndarray:
    """Baseline: each region takes the colour of the reference region with the nearest centroid
    (positions relative to the character's centre)."""
    p = prepare(target_img)
    t, r = p.regs, ref.prep.regs
    lut = np.zeros((t.n + 1, 4), np.uint8)
    R = [j for j in range(1, r.n + 1) if not r.outside[j]]
    pr = r.centroid[R] - r.char_center
    for i in range(1, t.n + 1):
        if t.outside[i]:
            continue
        j = R[int(np.linalg.norm(pr - (t.centroid[i] - t.char_center), axis=1).argmin())]
        c = ref.colour[j]
        if c != TRANSPARENT:
            lut[i, :3], lut[i, 3] = colours.table[c], 255
    return paint(p.seg.labels, lut, p.art.coverage, p.art.ink, p.art.red | p.art.blue, p.art.ink_rgb, "keep")


def break_lines(clean: np.ndarray, rng: np.random.Generator, n: int, max_gap: int = 3) -> np.ndarray:
    """Erase `n` short pieces of the ink outline (gaps 1..max_gap px along the line)."""
    img = clean.copy()
    ink = (img[..., :3].max(2) < 60)
    ys, xs = np.nonzero(ink)
    if len(ys) == 0:
        return img
    for k in rng.choice(len(ys), size=min(n, len(ys)), replace=False):
        g = int(rng.integers(1, max_gap + 1))
        y, x = ys[k], xs[k]
        # erase a g x (line width + 4) box across the line: a gap g pixels long
        r = 4
        y0, y1 = max(0, y - r), y + r + 1
        x0, x1 = max(0, x - r), x + r + 1
        patch = img[y0:y1, x0:x1]
        m = patch[..., :3].max(2) < 200
        sel = np.zeros(m.shape, bool)
        cy, cx = y - y0, x - x0
        sel[max(0, cy - g // 2): cy - g // 2 + g, :] = True if rng.random() < 0.5 else False
        if not sel.any():
            sel[:, max(0, cx - g // 2): cx - g // 2 + g] = True
        patch[m & sel] = (255, 255, 255, 255)
    return img


def leaks(img_lines: np.ndarray, f: synth.SynthFrame) -> tuple[int, int]:
    """(leaks, truth regions): a truth region (>= 30 px) leaks when our region holding most of
    it also holds >= 30 % of another truth region (two regions merged through a gap)."""
    seg = segment(extract_lines(img_lines))
    lab, ours = f.labels, seg.labels
    m = lab > 0
    t_ids, t_area = np.unique(lab[m], return_counts=True)
    big = t_ids[t_area >= 30]
    pairs, cnt = np.unique(np.stack([lab[m], ours[m]]), axis=1, return_counts=True)
    main = {}
    for (t, o), c in zip(pairs.T, cnt):
        if t in big and c > main.get(t, (0, 0))[1]:
            main[t] = (o, c)
    owners: dict[int, list[int]] = {}
    for t, (o, c) in main.items():
        if c >= 0.3 * t_area[list(t_ids).index(t)]:
            owners.setdefault(o, []).append(t)
    merged = sum(len(v) - 1 for v in owners.values() if len(v) > 1)
    return merged, len(big)


def hint_image(f: synth.SynthFrame, tones=("base", "shadow", "highlight")) -> tuple[np.ndarray, list]:
    """A dot of the true colour inside each of our regions whose true tone is in `tones` (what a
    colourist scribbles: one touch per paint-bucket region). Returns the hints and (label, rgb)."""
    seg = segment(extract_lines(f.clean))
    hint = np.zeros_like(f.color)
    touched = []
    for rid in range(1, seg.n + 1):
        sel = (seg.labels == rid) & seg.free & (f.labels > 0)
        if sel.sum() < 20:
            continue
        ids, cnt = np.unique(f.labels[sel], return_counts=True)
        reg = f.palette[int(ids[cnt.argmax()])]
        if reg.tone not in tones:
            continue
        m = (sel & (f.labels == reg.id)).astype(np.uint8)
        d = cv2.distanceTransform(m, cv2.DIST_L2, 3)
        y, x = np.unravel_index(int(d.argmax()), d.shape)
        cv2.circle(hint, (int(x), int(y)), 1, (*reg.rgb, 255), -1)
        touched.append((rid, reg.rgb))
    return hint, touched, seg


def hint_and_trace(seeds, size):
    """Hints on every region: share of hinted regions painted the hint's colour; hints on base
    regions only (palette naming NAME_shadow / NAME_highlight): shadow and highlight pixels
    coloured from the trace lines."""
    hinted_ok = hinted_n = 0
    sh_ok = sh_n = hl_ok = hl_n = 0
    for seed in seeds:
        char = synth.make_character(seed)
        f = synth.render(char, 1003.0, size, rough=False)
        pal = Palette({k: v for k, v in char.materials.items()})
        hint, touched, seg = hint_image(f)
        res = colour_drawing(f.clean, [], hint, pal, Colours(), {}, 1003)
        for rid, rgb in touched:
            sel = (res.labels == rid) & seg.free
            hinted_n += 1
            u, c = np.unique(res.image[sel][:, :3], axis=0, return_counts=True)  # the region's fill colour
            hinted_ok += bool(np.all(u[c.argmax()] == np.array(rgb, np.uint8)))  # (fringe pixels blend with ink)
        hint, _, _ = hint_image(f, tones=("base",))
        res = colour_drawing(f.clean, [], hint, pal, Colours(), {}, 1003)
        ok = correct(res.image, f)
        m = character_mask(f)
        sh_ok += ok[m & f.shadow].sum(); sh_n += (m & f.shadow).sum()
        hl_ok += ok[m & f.highlight].sum(); hl_n += (m & f.highlight).sum()
    return hinted_ok / max(hinted_n, 1), hinted_n, sh_ok / max(sh_n, 1), hl_ok / max(hl_n, 1)


def accuracy_table(seeds, size, gaps=(1, 4, 8)):
    rows = {g: {"ours": [], "naive": [], "shadow": [], "hl": []} for g in gaps}
    sheet = []
    for seed in seeds:
        seq = synth.sequence(seed, [1001] + [1001 + g for g in gaps], size=size, rough=False)
        key = seq[1001]
        colours = Colours()
        ref = build_ref(1001, key.color, key.clean, 0, colours)
        for g in gaps:
            f = seq[1001 + g]
            res = colour_drawing(f.clean, [ref], None, Palette(), colours, {}, 1001 + g)
            m = character_mask(f)
            ok = correct(res.image, f)
            rows[g]["ours"].append(ok[m].mean())
            rows[g]["naive"].append(correct(naive(f.clean, ref, colours), f)[m].mean())
            rows[g]["shadow"].append(ok[m & f.shadow].mean())
            rows[g]["hl"].append(ok[m & f.highlight].mean())
            if seed == seeds[0] and g in (4, 8):
                sheet.append((f, res.image, ok, m))
    return rows, sheet


def leak_table(seeds, size):
    tot_ours = tot_regions = 0
    tot_clean = 0
    for seed in seeds:
        f = synth.sequence(seed, [1001], size=size, rough=False)[1001]
        broken = break_lines(f.clean, np.random.default_rng(seed), 60, 3)
        l, n = leaks(broken, f)
        l0, _ = leaks(f.clean, f)
        tot_ours += l
        tot_clean += l0
        tot_regions += n
    return tot_ours, tot_clean, tot_regions
