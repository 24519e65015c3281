"""The shot page as a review tool (issue 24): the flipbook (buffered before play, J/K/L, Home/End, keys and
drawings, zoom, full screen, onion skin, a wipe between two versions), the in-between confidence as an overlay
with its legend, the version's OTIO timeline, and review badges per version with the tracker's slot.

One studio for the module: the synthetic demo shot (clean keys 1001, 1005, 1009 on twos) run twice through
colour, light and the classical in-between (no weights needed), the second time with its keys redrawn
further along the move, so v001 and v002 differ. The API is read through Starlette's test client; the page
is served by `quickart web` as its own process and driven in Debian's Chromium with Playwright (helpers
from test_web.py).
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import numpy as np
import pytest
import yaml
from starlette.testclient import TestClient

from quickart_daemon.cli import main as quickart
from quickart_daemon.config import load_config
from quickart_daemon.tools.synth import write_clean_keys
from quickart_daemon.web.app import create_app
from test_web import AUTH, SHOT, TOKEN, free_port, launch_chromium, linked_out, listening_addresses, shot_yaml, \
    wait_for, write_config

REVIEW = {"name": "review", "description": "colour, light, classical in-betweens",
          "stages": [{"stage": "color"}, {"stage": "light"}, {"stage": "inbetween", "params": {"method": "classical"}}]}
SIZE = (480, 270)
KEYS = [1001, 1005, 1009]
DRAWINGS = [1001, 1003, 1005, 1007, 1009]  # keys and in-betweens on twos; 1010 holds 1009


@pytest.fixture(scope="module")
def studio(tmp_path_factory):
    base = tmp_path_factory.mktemp("review")
    config = write_config(base)
    (base / "pipelines" / "review.yaml").write_text(yaml.safe_dump(REVIEW))
    cfg = load_config(config)
    for speed in (1.0, 1.6):  # v002: the keys redrawn further along the move
        shot_dir = write_clean_keys(cfg.root, size=SIZE, keys=KEYS, speed=speed)
        shot_yaml(shot_dir, pipeline="review")
        assert quickart(["--config", str(config), "run", str(shot_dir)]) == 0
    return cfg


@pytest.fixture
def client(studio):
    with TestClient(create_app(studio), base_url="http://127.0.0.1") as c:
        yield c


# -- what the page reads ----------------------------------------------------------------------------------

def test_the_inbetween_confidence_is_published_and_described_as_an_overlay(client, studio):
    """The in-between stage's confidence maps reached no version (a timing stage published nothing but its
    drawings); now they lie in inbetween/confidence/, one per in-between drawing, and the page lists them."""
    folder = studio.root / SHOT / "quickart" / "v002"
    maps = sorted(p.name for p in (folder / "inbetween" / "confidence").iterdir())
    assert maps == [f"sh0010_{layer}.{d}.png" for layer in ("char", "fx") for d in (1003, 1007)]
    assert sorted(p.name for p in (folder / "inbetween").iterdir()) == ["confidence"]  # the drawings are frames/
    v = client.get(f"/api/shot/{SHOT}/versions/v002").json()
    overlays = {o["name"]: o for o in v["overlays"]}
    assert {"color/confidence", "inbetween/confidence", "light/layer"} <= set(overlays)
    conf = overlays["inbetween/confidence"]
    assert conf["blend"] == "multiply" and sorted(map(int, conf["layers"]["char"])) == [1003, 1007]
    png = client.get(conf["layers"]["char"]["1003"])
    assert png.status_code == 200 and png.headers["content-type"] == "image/png"
    from PIL import Image
    import io
    grey = np.asarray(Image.open(io.BytesIO(png.content)).convert("L"), np.float32) / 255
    assert grey.max() == 1.0 and grey.min() < 0.5  # sure where nothing moved, unsure somewhere on the move


def test_sequences_name_their_drawings_from_the_held_frames(client):
    v = client.get(f"/api/shot/{SHOT}/versions/v002").json()
    seqs = {s["name"]: s for s in v["sequences"]}
    assert seqs["comp"]["drawings"] == DRAWINGS and sorted(map(int, seqs["comp"]["frames"])) == list(range(1001, 1011))
    assert seqs["char"]["drawings"] == DRAWINGS and seqs["fx"]["drawings"] == DRAWINGS
    assert seqs["color/char"]["drawings"] == KEYS  # a stage folder holds its drawings, one file each
    assert v["keys"] == {"char": KEYS, "fx": KEYS}


def test_a_drawing_is_a_run_of_frames_sharing_one_file():
    from quickart_daemon.web.studio import _drawings
    frames = {1001: ("a", 7), 1002: ("b", 7), 1003: ("c", 9), 1004: ("d", 7), 1006: ("f", 7)}
    assert _drawings(frames) == [1001, 1003, 1004, 1006]  # the same file again later, or after a gap: a new start
    assert _drawings({f: (str(f), 0) for f in (1001, 1002, 1003)}) == [1001, 1002, 1003]  # no inode numbers


def test_the_otio_timeline_is_served_from_inside_the_version(client, studio, tmp_path):
    folder = studio.root / SHOT / "quickart" / "v001"
    v = client.get(f"/api/shot/{SHOT}/versions/v001").json()
    assert v["otio"] == f"/timeline/{SHOT}/v001.otio"
    r = client.get(v["otio"])
    assert r.status_code == 200 and r.content == (folder / "sh0010_v001.otio").read_bytes()
    assert r.headers["content-disposition"] == 'attachment; filename="sh0010_v001.otio"'
    assert b'"OTIO_SCHEMA": "Timeline' in r.content
    view = client.get(v["otio"] + "?view=1")
    assert view.headers["content-type"].startswith("text/plain") and "content-disposition" not in view.headers
    assert view.content == r.content
    for url in (f"/timeline/{SHOT}/v009.otio", f"/timeline/{SHOT}/latest.otio", "/timeline/DEMO/sq010/..%2F..%2Fetc/v001.otio"):
        assert client.get(url).status_code in (400, 404), url
    # a timeline linked out of the studio is never opened (open_inside), and the version shows none
    with linked_out(folder / "sh0010_v001.otio", tmp_path / "secret.otio", "web:\n  token: s3cret\n"):
        r = client.get(f"/timeline/{SHOT}/v001.otio")
        assert r.status_code == 404 and "s3cret" not in r.text
    moved = folder / "sh0010_v001.otio"
    moved.rename(folder / "elsewhere.bin")
    try:
        assert client.get(f"/api/shot/{SHOT}/versions/v001").json()["otio"] is None
        assert client.get(f"/timeline/{SHOT}/v001.otio").status_code == 404
    finally:
        (folder / "elsewhere.bin").rename(moved)


def test_review_badges_of_every_version_in_one_answer(client, studio):
    url = f"/api/reviews/{SHOT}"
    before = client.get(url).json()["versions"]
    v001 = f"/api/shot/{SHOT}/versions/v001/reviews"
    assert client.post(v001, json={"state": "needs_work", "text": "the hat pops", "author": "Ana"}, headers=AUTH).status_code == 201
    assert client.post(v001, json={"state": "note", "text": "and the fx is late"}, headers=AUTH).status_code == 201
    after = client.get(url).json()["versions"]
    assert after["v001"]["approval"]["state"] == "needs_work" and after["v001"]["approval"]["author"] == "Ana"
    assert after["v001"]["notes"] == before.get("v001", {}).get("notes", 0) + 2
    assert after.get("v002") == before.get("v002")  # another version's badge is its own
    assert client.get("/api/reviews/DEMO/sq010/sh9999").status_code == 404


# -- in a real browser --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def served(studio, tmp_path_factory):
    """`quickart web` on the module's studio; the browser is not trusted as the local user, so writes
    carry the token (the page reads it from its #token= link)."""
    port = free_port()
    state = tmp_path_factory.mktemp("review-web")
    data = {"root": str(studio.root), "state_dir": str(state / "state"), "database": {"url": studio.database.url},
            "pipelines_dir": str(studio.pipelines_dir), "slots": {"gpus": "none"},
            "web": {"token": TOKEN, "port": port, "trust_local_user": False}}
    config = state / "config.yaml"
    config.write_text(yaml.safe_dump(data))
    log = open(state / "web.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(config), "web"],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: listening_addresses(port), 30, "the page to be served", proc)
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
        log.close()


@pytest.fixture(scope="module")
def chromium(served):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = launch_chromium(p)
        yield browser
        browser.close()


@pytest.fixture
def page(chromium, served):
    """The shot page in a fresh browser context (nothing cached), with the page's errors collected: a test
    that leaves one fails."""
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.errors = []
    page.on("pageerror", lambda e: page.errors.append(str(e)))
    # DOMContentLoaded, not load: a test may hold the frames' answers back
    page.open = lambda: page.goto(f"{served}/shots/{SHOT}#token={TOKEN}", wait_until="domcontentloaded")
    yield page
    errors = page.errors
    context.close()
    assert errors == [], errors


def set_opacity(page, value: float) -> None:
    page.evaluate("(v) => { const o = document.getElementById('overlay-opacity'); o.value = v; "
                  "o.dispatchEvent(new Event('input')); }", value)


def frame_no(page) -> int:
    return int(page.inner_text("#frame-no"))


def pixels(page, canvas="screen-a") -> np.ndarray:
    """The canvas's pixels (h, w, 4), as the page drew them."""
    data = page.evaluate("""(id) => { const c = document.getElementById(id);
        return {w: c.width, h: c.height, px: Array.from(c.getContext('2d').getImageData(0, 0, c.width, c.height).data)}; }""",
                         canvas)
    return np.array(data["px"], np.uint8).reshape(data["h"], data["w"], 4)


def test_the_flipbook_buffers_every_drawing_before_it_plays(page):
    """Play waits for every drawing shown to be fetched and decoded, with n/N on the page; frames that are
    holds are not fetched again (5 drawings for 10 frames)."""
    from playwright.sync_api import expect
    held = []
    page.route("**/quickart/v002/comp/**", lambda route: held.append(route))  # answered when the test says
    page.open()
    expect(page.locator("#buffer-text")).to_have_text("buffered 0/5")
    for _ in range(100):  # every drawing asked for (the route's calls arrive while the page waits)
        if len(held) >= 5:
            break
        page.wait_for_timeout(100)
    page.click("#play")
    page.wait_for_timeout(400)
    assert frame_no(page) == 1001  # nothing plays while buffering
    expect(page.locator("#rate")).to_have_text("▶ 1× (buffering)")
    expect(page.locator("#play")).to_have_text("❚❚")
    for route in held[:2]:
        route.continue_()
    expect(page.locator("#buffer-text")).to_have_text("buffered 2/5")
    expect(page.locator("#buffer")).to_have_class("buffer filling")
    assert frame_no(page) == 1001
    for route in held[2:]:
        route.continue_()
    expect(page.locator("#buffer-text")).to_contain_text("buffered 5/5 in ")
    expect(page.locator("#buffer")).to_have_class("buffer full")
    expect(page.locator("#rate")).to_have_text("▶ 1×")
    page.wait_for_function("Number(document.getElementById('frame-no').textContent) > 1001")
    assert len(held) == 5, [r.request.url for r in held]  # one request per drawing
    page.keyboard.press("k")
    expect(page.locator("#rate")).to_have_text("")


def test_jkl_shuttle_home_end_keys_and_drawings(page):
    from playwright.sync_api import expect
    page.open()
    expect(page.locator("#buffer")).to_have_class("buffer full")
    page.keyboard.press("End")
    assert frame_no(page) == 1010
    page.keyboard.press("Home")
    assert frame_no(page) == 1001
    page.keyboard.press("]")
    assert frame_no(page) == 1005 and page.inner_text("#key-flag") == "KEY"
    page.keyboard.press("]")
    assert frame_no(page) == 1009
    page.keyboard.press("]")
    assert frame_no(page) == 1009  # no key after the last
    page.keyboard.press("[")
    assert frame_no(page) == 1005
    page.keyboard.press(".")
    assert frame_no(page) == 1007 and page.inner_text("#key-flag") == ""  # the next drawing: an in-between
    page.keyboard.press("ArrowRight")
    assert frame_no(page) == 1008  # its hold
    page.keyboard.press(",")
    assert frame_no(page) == 1005  # the drawing before the one on screen (1007)
    page.click("#last")
    assert frame_no(page) == 1010
    page.click("#prev-key")
    assert frame_no(page) == 1009
    page.click("#first")
    assert frame_no(page) == 1001

    page.keyboard.press("l")  # looping (the default): the rate holds while the test reads it
    expect(page.locator("#rate")).to_have_text("▶ 1×")
    page.wait_for_function("Number(document.getElementById('frame-no').textContent) > 1001")
    for rate in (2, 4, 8, 8):  # L again: twice as fast, to 8x
        page.keyboard.press("l")
        expect(page.locator("#rate")).to_have_text(f"▶ {rate}×")
    page.keyboard.press("j")  # the other way: back to 1x
    expect(page.locator("#rate")).to_have_text("◀ 1×")
    page.keyboard.press("j")
    expect(page.locator("#rate")).to_have_text("◀ 2×")
    page.keyboard.press("k")
    expect(page.locator("#rate")).to_have_text("")
    page.evaluate("document.getElementById('loop').checked = false")  # so a run ends at the shot's end
    page.keyboard.press("Home")
    page.keyboard.press("l")
    page.wait_for_function("document.getElementById('frame-no').textContent === '1010'")
    expect(page.locator("#rate")).to_have_text("")  # stopped at the end without loop
    page.keyboard.press("j")
    expect(page.locator("#rate")).to_have_text("◀ 1×")  # J: backwards
    page.wait_for_function("Number(document.getElementById('frame-no').textContent) < 1010")
    page.keyboard.press("l")
    expect(page.locator("#rate")).to_have_text("▶ 1×")  # the other way: back to 1x
    page.keyboard.press("k")
    expect(page.locator("#rate")).to_have_text("")
    stopped = frame_no(page)
    page.wait_for_timeout(250)
    assert frame_no(page) == stopped

    # typing a note is typing: no shortcut fires in the text box (nor in the name field)
    page.keyboard.press("Home")
    page.click("#review-text")
    page.keyboard.type("jkl ]. End o f 0 + t")
    page.keyboard.press("End")
    page.keyboard.press("Home")
    page.fill("#review-author", "")
    page.click("#review-author")
    page.keyboard.type("L ]")
    page.wait_for_timeout(200)
    assert frame_no(page) == 1001 and page.inner_text("#rate") == ""
    assert page.input_value("#review-text") == "jkl ]. End o f 0 + t" and page.input_value("#review-author") == "L ]"
    assert not page.is_checked("#onion") and page.inner_text("#zoom-level") == "fit"


def test_zoom_one_to_one_fit_and_full_screen(page):
    from playwright.sync_api import expect
    page.open()
    expect(page.locator("#buffer")).to_have_class("buffer full")
    width = lambda: page.evaluate("document.getElementById('screen-a').getBoundingClientRect().width")
    fit = width()
    assert page.inner_text("#zoom-level") == "fit" and fit > SIZE[0]  # fit: as large as the view allows
    page.keyboard.press("0")
    expect(page.locator("#zoom-level")).to_have_text("100%")
    assert abs(width() - SIZE[0]) <= 1  # 1:1: one frame pixel per CSS pixel
    page.keyboard.press("+")
    expect(page.locator("#zoom-level")).to_have_text("125%")
    page.keyboard.press("-")
    page.keyboard.press("-")
    expect(page.locator("#zoom-level")).to_have_text("80%")
    box = page.locator("#viewport-a").bounding_box()
    page.mouse.move(box["x"] + 100, box["y"] + 80)
    page.mouse.wheel(0, -100)  # the wheel zooms in about the mouse
    expect(page.locator("#zoom-level")).to_have_text("100%")
    for _ in range(6):
        page.mouse.wheel(0, -100)
        page.wait_for_timeout(50)
    expect(page.locator("#zoom-level")).to_have_text("381%")  # 1.25^6: wider and taller than the view
    scroll = page.evaluate("[document.getElementById('viewport-a').scrollLeft, document.getElementById('viewport-a').scrollTop]")
    assert scroll[0] > 0 and scroll[1] > 0  # the point under the mouse stayed there: the view scrolled
    page.click("#zoom-toggle")  # 1:1
    expect(page.locator("#zoom-level")).to_have_text("100%")
    page.click("#zoom-toggle")  # and back to fit
    expect(page.locator("#zoom-level")).to_have_text("fit")
    assert abs(width() - fit) <= 1

    page.keyboard.press("f")
    page.wait_for_function("document.fullscreenElement && document.fullscreenElement.id === 'viewer'")
    expect(page.locator("#fullscreen")).to_have_text("leave full screen")
    page.click("#fullscreen")
    page.wait_for_function("document.fullscreenElement === null")


#: the frame pixel (x, y) under a point on screen, in a canvas's own box
PIXEL_UNDER = """([id, x, y]) => { const c = document.getElementById(id), r = c.getBoundingClientRect();
    return [(x - r.left) / r.width * c.width, (y - r.top) / r.height * c.height]; }"""


def test_the_wheel_over_the_right_frame_of_a_side_by_side_compare_zooms_about_the_mouse(page):
    """Side by side, each frame zooms about the mouse in its own box: the frame pixel under the mouse over
    the right frame stays under it (it was zoomed about the left frame's position), and both frames still
    show the same part."""
    from playwright.sync_api import expect
    page.open()
    expect(page.locator("#buffer")).to_have_class("buffer full")
    page.select_option("#compare", "v001")
    expect(page.locator("#fig-b")).to_be_visible()
    expect(page.locator("#buffer-text")).to_contain_text("buffered 10/10")
    page.keyboard.press("0")
    for _ in range(6):  # 381%: the frames wider and taller than their views, so they can scroll
        page.keyboard.press("+")
    expect(page.locator("#zoom-level")).to_have_text("381%")
    scrolls = """() => ['viewport-a', 'viewport-b'].map((id) => {
        const v = document.getElementById(id); return [v.scrollLeft, v.scrollTop]; })"""
    page.wait_for_function(f"({scrolls})().every((s, i, all) => s[0] > 0 && s[0] === all[0][0] && s[1] === all[0][1])")
    right = page.locator("#viewport-b").bounding_box()
    mouse = (right["x"] + right["width"] * 0.3, right["y"] + right["height"] * 0.35)
    under = page.evaluate(PIXEL_UNDER, ["screen-b", *mouse])
    page.mouse.move(*mouse)
    page.mouse.wheel(0, -100)
    expect(page.locator("#zoom-level")).to_have_text("477%")
    page.wait_for_function(f"(() => {{ const [a, b] = ({scrolls})(); return a[0] === b[0] && a[1] === b[1]; }})()")
    moved = page.evaluate(PIXEL_UNDER, ["screen-b", *mouse])
    assert abs(moved[0] - under[0]) < 0.5 and abs(moved[1] - under[1]) < 0.5, (under, moved)
    left = page.locator("#viewport-a").bounding_box()  # the same point of the left frame shows the same pixel
    same = page.evaluate(PIXEL_UNDER, ["screen-a", mouse[0] - right["x"] + left["x"], mouse[1] - right["y"] + left["y"]])
    assert abs(same[0] - moved[0]) < 0.5 and abs(same[1] - moved[1]) < 0.5, (moved, same)


def test_onion_skin_shows_the_previous_drawing_red_and_the_next_green(page, studio):
    from playwright.sync_api import expect
    page.open()
    expect(page.locator("#buffer")).to_have_class("buffer full")
    page.select_option("#sequence", "char")
    page.keyboard.press("]")  # 1005: drawings 1003 before it, 1007 after it
    assert frame_no(page) == 1005
    plain = pixels(page).astype(int)
    page.keyboard.press("o")
    expect(page.locator("#onion")).to_be_checked()
    onion = pixels(page).astype(int)
    drop = plain[..., :3] - onion[..., :3]  # multiply only darkens: how much each channel lost
    reddened = (drop[..., 0] <= 2) & (drop[..., 1] > 20)  # red kept, green taken: the previous drawing's lines
    greened = (drop[..., 1] < drop[..., 0] - 20) & (drop[..., 0] > 20)  # the next drawing's, in green
    assert reddened.sum() > 200 and greened.sum() > 200, (reddened.sum(), greened.sum())
    # each where that drawing is: red on 1003, green on 1007 (read from the version's files)
    from PIL import Image
    frames = studio.root / SHOT / "quickart" / "v002" / "frames"
    drawn = {d: np.asarray(Image.open(frames / f"sh0010_char.{d}.png").convert("RGBA"))[..., 3] > 0 for d in (1003, 1007)}
    assert drawn[1003][reddened].mean() > 0.9 and drawn[1007][greened].mean() > 0.9
    assert drawn[1007][reddened].mean() < drawn[1003][reddened].mean()
    page.keyboard.press("o")
    page.keyboard.press("Home")  # the first drawing has no previous one: green alone
    plain_first = pixels(page)
    page.keyboard.press("o")
    drop = plain_first[..., :3].astype(int) - pixels(page).astype(int)[..., :3]
    assert ((drop[..., 0] <= 2) & (drop[..., 1] > 20)).sum() == 0 and (drop.max(axis=2) > 20).sum() > 200
    page.keyboard.press("o")
    assert np.array_equal(pixels(page), plain_first)  # off again: the plain frame


def test_a_wipe_between_two_versions_on_the_same_frame(page):
    from playwright.sync_api import expect
    page.open()
    expect(page.locator("#buffer")).to_have_class("buffer full")
    page.keyboard.press("]")
    a = pixels(page)
    page.select_option("#compare", "v001")
    page.select_option("#compare-mode", "toggle")
    expect(page.locator("#buffer-text")).to_contain_text("buffered 10/10")  # v001's frame drawn when shown
    page.keyboard.press("t")
    expect(page.locator("#label-a")).to_have_text("v001 · comp")
    b = pixels(page)
    page.keyboard.press("t")
    w = a.shape[1]
    assert (np.abs(a.astype(int) - b.astype(int)).max(axis=2) > 30).sum() > 500  # the versions differ
    page.select_option("#compare-mode", "wipe")
    expect(page.locator("#wipe-handle")).to_be_visible()
    expect(page.locator("#label-a")).to_have_text("v002 | v001 · comp")
    expect(page.locator("#buffer-text")).to_contain_text("buffered 10/10")  # both versions' drawings
    half = pixels(page)
    x = round(w * 0.5)
    assert np.array_equal(half[:, :x], a[:, :x]) and np.array_equal(half[:, x:], b[:, x:])
    # drag the divider to a quarter of the frame
    handle = page.locator("#wipe-handle").bounding_box()
    frame = page.locator("#box-a").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, frame["y"] + frame["height"] / 2)
    page.mouse.down()
    page.mouse.move(frame["x"] + frame["width"] * 0.25, frame["y"] + frame["height"] / 2, steps=5)
    page.mouse.up()
    quarter = pixels(page)
    wipe = page.evaluate("view.wipe")
    assert abs(wipe - 0.25) < 0.01, wipe
    x = int(np.floor(w * wipe + 0.5))  # as the page rounds (Math.round)
    assert np.array_equal(quarter[:, :x], a[:, :x]) and np.array_equal(quarter[:, x:], b[:, x:])
    page.keyboard.press("ArrowRight")  # the same frame of both, as the frame moves
    assert frame_no(page) == 1006
    page.select_option("#compare", "")
    expect(page.locator("#wipe-handle")).to_be_hidden()


def test_the_inbetween_confidence_overlay_and_its_legend(page, tmp_path):
    from playwright.sync_api import expect
    page.open()
    expect(page.locator("#buffer")).to_have_class("buffer full")
    expect(page.locator("#legend")).to_be_hidden()
    page.keyboard.press(".")
    assert frame_no(page) == 1003  # an in-between
    plain = pixels(page).astype(int)
    page.select_option("#overlay", "inbetween/confidence")
    expect(page.locator("#legend")).to_be_visible()
    expect(page.locator("#legend-ticks")).to_have_text("0 unsure0.51 sure")
    expect(page.locator("#legend-text")).to_contain_text("how sure the in-between is")
    expect(page.locator("#legend-text")).to_contain_text("Red: unsure")
    expect(page.locator("#buffer-text")).to_contain_text("buffered 9/9 in ", timeout=10_000)  # 5 drawings + 4 maps
    page.evaluate("new Promise((done) => requestAnimationFrame(() => done()))")  # the paint the last map asked for
    over = pixels(page).astype(int)
    drop = plain[..., :3] - over[..., :3]
    red = (drop[..., 0] <= 2) & (drop[..., 1] > 20) & (drop[..., 2] > 20)
    assert red.sum() > 50, red.sum()  # unsure pixels tinted red, red kept
    assert (drop[~red].max(axis=1) <= 20).mean() > 0.9  # the rest (sure) about as it was
    page.keyboard.press("ArrowRight")
    assert np.array_equal(pixels(page).astype(int), over)  # 1004 holds 1003: its map with it
    page.keyboard.press("ArrowRight")  # 1005, a key: no in-between map
    page.select_option("#overlay", "")
    key_plain = pixels(page)
    page.select_option("#overlay", "inbetween/confidence")
    assert np.array_equal(pixels(page), key_plain)
    # the legend's bar is the tint at the opacity it is drawn with
    set_opacity(page, 1)
    assert "rgb(255, 0, 0)" in page.evaluate("document.getElementById('legend-bar').style.background")
    page.select_option("#overlay", "light/layer")
    expect(page.locator("#legend-ticks")).to_have_text("shadow128: unchanged" + "light")

    # the screenshot of the page for docs/web-flipbook.png: v002 | v001 wiped at the in-between 1003, its map
    page.select_option("#overlay", "inbetween/confidence")
    set_opacity(page, 0.6)
    page.select_option("#compare", "v001")
    page.select_option("#compare-mode", "wipe")
    page.keyboard.press("Home")
    page.keyboard.press(".")
    expect(page.locator("#buffer")).to_have_class("buffer full")
    shot = tmp_path / "web-flipbook.png"
    bottom = page.evaluate("document.getElementById('viewer').getBoundingClientRect().bottom + window.scrollY")
    # bytes back, written here: a path makes Playwright write it from a thread pool that outlives the test
    shot.write_bytes(page.screenshot(clip={"x": 0, "y": 0, "width": 1280, "height": bottom + 8}, full_page=True))
    print(f"screenshot of the flipbook: {shot}")
    assert shot.stat().st_size > 20_000


def test_version_badges_the_otio_link_and_the_tracker_slot(page, client, served, tmp_path, studio):
    from playwright.sync_api import expect
    url = f"/api/shot/{SHOT}/versions/v001/reviews"
    assert client.post(url, json={"state": "needs_work", "text": "line boil on the hat"}, headers=AUTH).status_code == 201
    summary = client.get(f"/api/reviews/{SHOT}").json()["versions"]
    page.open()
    v001 = page.locator('#versions .version[data-version="v001"] .badges')
    v002 = page.locator('#versions .version[data-version="v002"] .badges')
    expect(v001.locator(".approval")).to_have_text(summary["v001"]["approval"]["label"])
    notes = summary["v001"]["notes"]
    expect(v001.locator(".notes-count")).to_have_text(f"{notes} note" + ("s" if notes != 1 else ""))
    # approving the version shown updates its badge on the page
    page.fill("#review-text", "good to go")
    page.fill("#review-author", "Bo")
    page.click('#review-form button[data-review="approved"]')
    expect(v002.locator(".approval")).to_have_text("approved")
    expect(v002.locator(".approval")).to_have_class("approval approved")
    expect(v002.locator(".notes-count")).to_contain_text("note")
    expect(page.locator("#tracker-slot")).to_be_empty()  # no tracker: no badge, no error

    # the OTIO timeline: a download of the version's own file
    expect(page.locator("#otio")).to_have_attribute("href", f"/timeline/{SHOT}/v002.otio")
    with page.expect_download() as download:
        page.click("#otio")
    assert download.value.suggested_filename == "sh0010_v002.otio"
    assert download.value.path().read_bytes() == (studio.root / SHOT / "quickart" / "v002" / "sh0010_v002.otio").read_bytes()


def test_the_tracker_status_of_a_version_as_the_tracker_gives_it(page, served):
    """The tracker helper's field in the version's description ({status, name, color, at, url} or null):
    here from a changed answer. A link that is not http(s) is no link; a colour that is not #rrggbb is not used."""
    import json as json_
    from playwright.sync_api import expect
    trackers = {"v002": {"status": "wfa", "name": "Waiting For Approval", "color": "#ffa500",
                         "at": "2026-12-06T08:00:00Z", "url": "https://kitsu.example/shots/1"},
                "v001": {"status": "<b>retake</b>", "name": "Retake", "color": "red;background:url(x)",
                         "at": None, "url": "javascript:window.pwned=1"}}

    def with_tracker(route):
        response = route.fetch()
        data = response.json()
        data["tracker"] = trackers[data["version"]]
        route.fulfill(response=response, body=json_.dumps(data))

    page.route(re.compile(r"/api/shot/.+/versions/v00[12]$"), with_tracker)
    page.open()
    badge = page.locator("#tracker-slot .tracker")
    expect(badge).to_have_text("wfa")
    expect(badge).to_have_attribute("href", "https://kitsu.example/shots/1")
    expect(badge).to_have_attribute("title", "tracker · Waiting For Approval · since " +
                                    page.evaluate("new Date('2026-12-06T08:00:00Z').toLocaleString()"))
    assert page.evaluate("getComputedStyle(document.querySelector('#tracker-slot .tracker')).backgroundColor") == \
        "rgb(255, 165, 0)"
    expect(page.locator('#versions .version[data-version="v002"] .badges .tracker')).to_have_text("wfa")
    page.select_option("#version", "v001")
    expect(badge).to_have_text("<b>retake</b>")  # text, never markup
    assert page.evaluate("document.querySelector('#tracker-slot .tracker').tagName") == "SPAN"  # no javascript: link
    assert page.evaluate("document.querySelector('#tracker-slot .tracker').style.background") == ""
    expect(page.locator("#tracker-slot b")).to_have_count(0)
    assert page.evaluate("window.pwned") is None
