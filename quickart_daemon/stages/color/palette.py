"""palette.yaml: named colours, their shadow/highlight tones, and styles.

Schema (every key but `colors` optional)::

    colors:                      # name -> "#rrggbb"; the only colours a frame may contain
      skin: "#fadcc4"
      skin_shadow: "#b99a9c"     # NAME_shadow / NAME_highlight: the trace-line tones of NAME
      skin_highlight: "#fcede1"
    styles:                      # each style is rendered to its own variant folder
      night:
        tint: "#6a78b0"          # optional: multiply every colour not listed below
        skin: "#7a6f8c"          # name -> "#rrggbb" or the name of another colour
        skin_shadow: hair        #   ("hair": that colour's base value)

A colour that is not in the palette is snapped to the nearest palette colour (and
reported when it was far off): no off-model colour reaches a frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import StageFailed
from ...yamlfile import read_yaml

RGB = tuple[int, int, int]


def parse_hex(value, where: str) -> RGB:
    if isinstance(value, (list, tuple)) and len(value) == 3:
        return tuple(int(v) for v in value)  # type: ignore[return-value]
    s = str(value).strip().lstrip("#")
    if len(s) != 6:
        raise StageFailed(f"{where}: {value!r} is not a #rrggbb colour")
    try:
        return (int(s[0:2], 16), int(s[2:4], 16), int(s[4:6], 16))
    except ValueError:
        raise StageFailed(f"{where}: {value!r} is not a #rrggbb colour") from None


#: a computed shadow tone (no palette NAME_shadow, no reference): each channel scaled (red and green
#: most: a shadow is darker and cooler, as painters mix it), and SHADE_BLUE_LIFT added to blue
SHADE_SCALE = (0.74, 0.70, 0.80)
SHADE_BLUE_LIFT = 18
#: a computed highlight tone: this share of the way to white
LIGHTEN_TO_WHITE = 0.5


def shade(rgb: RGB) -> RGB:
    """A computed shadow tone: darker and slightly cooler."""
    r, g, b = rgb
    return (int(r * SHADE_SCALE[0]), int(g * SHADE_SCALE[1]), int(min(255, b * SHADE_SCALE[2] + SHADE_BLUE_LIFT)))


def lighten(rgb: RGB) -> RGB:
    """A computed highlight tone: LIGHTEN_TO_WHITE of the way to white."""
    return tuple(int(c + (255 - c) * LIGHTEN_TO_WHITE) for c in rgb)  # type: ignore[return-value]


@dataclass
class Palette:
    colors: dict[str, RGB] = field(default_factory=dict)
    styles: dict[str, dict[str, RGB]] = field(default_factory=dict)   # style -> base name -> rgb
    tints: dict[str, RGB] = field(default_factory=dict)               # style -> multiply colour

    @property
    def empty(self) -> bool:
        return not self.colors

    def name_of(self, rgb: RGB) -> str | None:
        for k, v in self.colors.items():
            if v == tuple(rgb):
                return k
        return None

    def snap(self, rgb: RGB) -> tuple[RGB, float]:
        """Nearest palette colour and the distance to it (0 without a palette)."""
        if self.empty:
            return tuple(int(c) for c in rgb), 0.0  # type: ignore[return-value]
        cols = np.array(list(self.colors.values()), np.float64)
        d = np.linalg.norm(cols - np.array(rgb, np.float64), axis=1)
        i = int(d.argmin())
        return tuple(int(c) for c in cols[i]), float(d[i])  # type: ignore[return-value]

    def tone(self, rgb: RGB, tone: str) -> RGB:
        """The shadow or highlight tone of a base colour: NAME_shadow from the palette, else computed."""
        name = self.name_of(rgb)
        if name is not None:
            for base_suffix in ("", ):
                key = f"{name}{base_suffix}_{tone}"
                if key in self.colors:
                    return self.colors[key]
        made = shade(rgb) if tone == "shadow" else lighten(rgb)
        return self.snap(made)[0] if not self.empty and name is None else made

    def base_of(self, rgb: RGB) -> tuple[RGB, str]:
        """(base colour, tone) of a palette colour named NAME_shadow / NAME_highlight."""
        name = self.name_of(rgb)
        if name:
            for tone in ("shadow", "highlight"):
                if name.endswith("_" + tone) and name[: -len(tone) - 1] in self.colors:
                    return self.colors[name[: -len(tone) - 1]], tone
        return tuple(rgb), "base"  # type: ignore[return-value]

    def style_lut(self, style: str) -> dict[RGB, RGB]:
        """base RGB -> styled RGB for every palette colour."""
        table = self.styles.get(style, {})
        tint = self.tints.get(style)
        out: dict[RGB, RGB] = {}
        for name, rgb in self.colors.items():
            if name in table:
                out[rgb] = table[name]
            elif tint is not None:
                out[rgb] = tuple(int(round(c * t / 255.0)) for c, t in zip(rgb, tint))  # type: ignore[assignment]
            else:
                out[rgb] = rgb
        return out

    def apply_style(self, style: str, rgb: RGB) -> RGB:
        lut = self.style_lut(style)
        if tuple(rgb) in lut:
            return lut[tuple(rgb)]
        tint = self.tints.get(style)
        if tint is not None:
            return tuple(int(round(c * t / 255.0)) for c, t in zip(rgb, tint))  # type: ignore[return-value]
        return tuple(rgb)  # type: ignore[return-value]


def load_palette(path: Path | None) -> Palette:
    if path is None:
        return Palette()
    path = Path(path)
    data = read_yaml(path, StageFailed) or {}
    if not isinstance(data, dict) or not isinstance(data.get("colors", {}), dict):
        raise StageFailed(f"{path}: a palette needs `colors: {{name: \"#rrggbb\"}}`")
    colors = {str(k): parse_hex(v, f"{path.name}: colors.{k}") for k, v in (data.get("colors") or {}).items()}
    styles: dict[str, dict[str, RGB]] = {}
    tints: dict[str, RGB] = {}
    raw_styles = data.get("styles") or {}
    if not isinstance(raw_styles, dict):
        raise StageFailed(f"{path.name}: `styles` must map a style name to colours")
    for sname, table in raw_styles.items():
        if not isinstance(table, dict):
            raise StageFailed(f"{path.name}: styles.{sname} must map colour names to colours")
        styles[str(sname)] = {}
        for k, v in table.items():
            where = f"{path.name}: styles.{sname}.{k}"
            if k == "tint":
                tints[str(sname)] = parse_hex(v, where)
                continue
            if str(k) not in colors:
                raise StageFailed(f"{where}: no colour named {k!r} in colors")
            styles[str(sname)][str(k)] = colors[str(v)] if str(v) in colors else parse_hex(v, where)
    return Palette(colors, styles, tints)
