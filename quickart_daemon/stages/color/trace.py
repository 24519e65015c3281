"""Colour-trace lines: which regions are shadows (bounded by red) or highlights (blue).

Two regions that meet along a red trace line are the lit and the shadow side of one
surface. The shadow side is the one whose outline is red to a larger share (a shadow is
the crescent cut off by the trace line; the lit side keeps most of the part's ink
outline). Blue works the same way for highlights. The shadow region then takes the
shadow tone of its partner's colour (from the reference, the palette `NAME_shadow`, or a
computed shade), and the trace line itself is painted over with the region colour.
"""

from __future__ import annotations

import numpy as np

from .features import Regions

BASE, SHADOW, HIGHLIGHT = 0, 1, 2


#: least length (pixels) of boundary along a trace line that makes two regions a trace pair (less
#: is where a trace line's end touches a region)
TRACE_MIN_LEN = 3.0
#: share of two regions' shared boundary that must run along the trace line for them to be its two
#: sides (more than half: not neighbours whose ink outline a trace line merely touches)
TRACE_SHARE = 0.5


def along(regs: Regions, tone: int) -> np.ndarray:
    """(n+1, n+1): the boundary each pair of regions shares along red (SHADOW) or blue (HIGHLIGHT) trace lines."""
    return regs.adj_red if tone == SHADOW else regs.adj_blue


def trace_pairs(regs: Regions, tone: int) -> np.ndarray:
    """(n+1, n+1) bool: the pairs of regions that meet along a red (SHADOW) or blue (HIGHLIGHT)
    trace line, the two sides of one."""
    adj_k = along(regs, tone)
    strong = (adj_k >= TRACE_MIN_LEN) & (adj_k >= TRACE_SHARE * np.maximum(regs.adj, 1))
    strong[0, :] = strong[:, 0] = False
    return strong


def roles(regs: Regions) -> tuple[np.ndarray, np.ndarray]:
    """(role, partner) per region: role BASE/SHADOW/HIGHLIGHT; partner = the region across the trace line."""
    n = regs.n
    role = np.zeros(n + 1, int)
    partner = np.zeros(n + 1, int)
    for tone, adj_k, col in ((HIGHLIGHT, regs.adj_blue, 2), (SHADOW, regs.adj_red, 1)):
        strong = trace_pairs(regs, tone)
        frac = regs.line_ctx[:, col]
        for t in range(1, n + 1):
            if regs.outside[t] or role[t] != BASE:
                continue
            nb = [j for j in np.nonzero(strong[t])[0] if not regs.outside[j]]
            if not nb:
                continue
            # a region lies on one side of one trace line: the one it shares most of. It is the
            # shadow (highlight) side when it is the redder (bluer) of the two; a lit torso whose
            # shadow crescent's line also touches a scrap of a hand is not that scrap's shadow
            j = max(nb, key=lambda j: (adj_k[t, j], -j))
            if frac[t] > frac[j]:
                role[t] = tone
                partner[t] = j
    # a partner that is itself a shadow/highlight: follow to its base
    for t in range(1, n + 1):
        seen = 0
        while role[t] != BASE and partner[t] and role[partner[t]] != BASE and seen < 4:
            partner[t] = partner[partner[t]]
            seen += 1
    return role, partner
