"""Naming templates parse and format both ways; what does not parse is None, never a guess."""

import pytest

from quickart_daemon.errors import NamingError
from quickart_daemon.naming import FrameName, Naming, ShotId, Template, parse_folder_frame

N = Naming("{show}/{seq}/{shot}", "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png",
           "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png", frame_padding=4)


@pytest.mark.parametrize("name,expected", [
    ("sh0040_char.1001.png", FrameName("char", 1001)),
    ("sh0040_char_a.1001.png", FrameName("char_a", 1001)),  # "_" in a layer: the shot is known
    ("sh0040.0001.png", FrameName("main", 1)),
    ("sh0040_bg.10001.png", FrameName("bg", 10001)),
    ("sh0040_char.101.png", None),  # under the configured padding
    ("sh0050_char.1001.png", None),  # another shot's file
    ("sh0040_.1001.png", None),
    ("notes.png", None),
])
def test_parse_key_names(name, expected):
    assert N.parse_key_name(name, "sh0040") == expected


def test_round_trip():
    for layer, frame in (("char", 1001), ("fx_2", 7), ("bg", 12345)):
        assert N.parse_key_name(N.format_key_name("sh0040", layer, frame), "sh0040") == FrameName(layer, frame)
    shot = ShotId("BRV", "sq010", "sh0040")
    assert N.parse_shot_path(N.format_shot_path(shot)) == shot
    assert N.parse_shot_path("BRV/sq010") is None
    assert N.parse_shot_path("BRV/sq 010/sh0040") is None


def test_another_convention():
    n = Naming("{show}/shots/{seq}_{shot}", "{layer}/{shot}.{frame}.png", "{shot}.{frame}.png",
               "{shot}-{layer}-{frame}.png", "{shot}-{frame}.png", frame_padding=3)
    assert n.parse_shot_path("BRV/shots/sq010_sh0040") is not None
    assert n.format_output_name("sh1", "char", 7) == "sh1-char-007.png"
    assert n.output_prefix_suffix("sh1", "char") == ("sh1-char-", ".png")


def test_bad_templates_are_refused():
    with pytest.raises(NamingError):
        Template("{shot}_{take}.png")
    with pytest.raises(NamingError):
        Naming("{show}/{shot}", "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png",
               "{shot}_{layer}.{frame}.png", "{shot}.{frame}.png")
    with pytest.raises(NamingError):
        N.format_key_name("sh 0040", "char", 1)


def test_folder_frames():
    assert parse_folder_frame("anything.goes.0012.png") == ("anything.goes", 12)
    assert parse_folder_frame("x.png") is None


@pytest.mark.parametrize("name", ["sh1200.１０１７.png", "sh1200_char.１０１７.png", "sh1200_char.١٠١٧.png"])
def test_frames_in_non_ascii_digits_are_not_keys(name):
    """Issue 23 D7: `\\d` matches any Unicode digit and int() reads them, so a full-width frame number
    became key 1017; only ASCII digits are frame numbers, and the name is reported."""
    assert N.parse_key_name(name, "sh1200") is None
    assert parse_folder_frame(name) is None
    assert "contains" in N.why_not_key_name(name, "sh1200")
