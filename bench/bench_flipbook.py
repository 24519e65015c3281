#!/usr/bin/env python
"""The shot page's flipbook at 1080p: how long until every drawing is buffered (fetched and decoded), and the
rate playback reaches at 1x and 2x (J/K/L). Prints a table; not a test, never fails.

Real parts: `quickart web` as its own process, Debian's headless Chromium driven by Playwright, a version
folder of 1920x1080 RGBA PNG frames (`bench_web.write_1080p_version`: 12 drawings of a synthetic character,
every frame its own file), and a second version of the same frames published as QuickArt publishes a shot
on twos (each held frame a hard link to its drawing's file), which the page fetches once per drawing.

    .venv/bin/python bench/bench_flipbook.py              # 48 frames, 3 cold loads per version
    .venv/bin/python bench/bench_flipbook.py --frames 96 --loads 5
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_daemon import loadavg, machine_info, write_config  # noqa: E402
from bench_web import CHROMIUM, CHROMIUM_ARGS, SHOT, free_port, wait_http, write_1080p_version  # noqa: E402

#: frames shown per second of playback, sampled in the page (no round trips in the timing)
PLAY_RATE_JS = """() => new Promise((done) => {
    const read = () => [Number(document.getElementById('frame-no').textContent), performance.now()];
    setTimeout(() => { const [f0, t0] = read(); let shown = 0, last = f0;
        const count = () => { const f = read()[0]; if (f !== last) { shown += 1; last = f; } };
        const timer = setInterval(count, 2);
        setTimeout(() => { clearInterval(timer); count(); done(shown / (performance.now() - t0) * 1000); }, 1500);
    }, 200);
})"""


def on_twos(first: Path, n_frames: int) -> Path:
    """v002: v001's frames as a shot on twos is published, each odd frame a hard link to the frame before."""
    folder = first.parent / "v002"
    (folder / "comp").mkdir(parents=True)
    names = sorted(p.name for p in (first / "comp").iterdir())[:n_frames]
    for i, name in enumerate(names):
        os.link(first / "comp" / (name if i % 2 == 0 else names[i - 1]), folder / "comp" / name)
    shutil.copy(first / "manifest.json", folder / "manifest.json")
    return folder


def point_latest(folder: Path) -> None:
    (folder.parent / "latest.json").write_text(json.dumps({"version": int(folder.name[1:]), "path": folder.name}))


def measure(browser, base: str, loads: int) -> dict:
    """Cold loads (a fresh context each: nothing cached) until the page says every drawing is buffered."""
    page_ms, buffer_ms, total = [], [], 0
    for _ in range(loads):
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.goto(f"{base}/shots/{SHOT}", wait_until="domcontentloaded")
        page.wait_for_function("document.getElementById('buffer').dataset.ms !== undefined", timeout=120_000)
        at = page.evaluate("[performance.now(), Number(document.getElementById('buffer').dataset.ms), "
                           "Number(document.getElementById('buffer').dataset.total)]")
        page_ms.append(at[0])
        buffer_ms.append(at[1])
        total = at[2]
        context.close()
    page = browser.new_page(viewport={"width": 1600, "height": 1000})
    page.goto(f"{base}/shots/{SHOT}")
    page.wait_for_function("document.getElementById('buffer').dataset.ms !== undefined", timeout=120_000)
    rates = {}
    for rate in (1, 2):
        page.keyboard.press("l")
        page.wait_for_function(f"document.getElementById('rate').textContent === '▶ {rate}×'")
        rates[rate] = page.evaluate(PLAY_RATE_JS)
    page.keyboard.press("k")
    page.close()
    return {"drawings": total, "page_ms": statistics.median(page_ms), "page_max": max(page_ms),
            "buffer_ms": statistics.median(buffer_ms), "rates": rates}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--loads", type=int, default=3)
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium", file=sys.stderr)
        return 1
    from playwright.sync_api import sync_playwright

    from quickart_daemon.config import load_config
    from quickart_daemon.queue import open_queue
    tmp = Path(tempfile.mkdtemp(prefix="quickart-bench-flipbook-"))
    port = free_port()
    server = None
    results = {}
    try:
        config = write_config(tmp, web={"port": port})
        cfg = load_config(config)
        open_queue(cfg)  # the database the page reads (no jobs)
        first = write_1080p_version(cfg.root, args.frames)
        twos = on_twos(first, args.frames)
        info, load0 = machine_info(tmp), loadavg()
        server = subprocess.Popen([str(Path(sys.executable).parent / "quickart"), "--config", str(config), "web"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                                  env={**os.environ, "OMP_NUM_THREADS": "1"})
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/api/shots")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for name, folder in (("every frame its own file", first), ("on twos, holds hard-linked", twos)):
                point_latest(folder)
                results[name] = measure(browser, base, args.loads)
            browser.close()
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        shutil.rmtree(tmp, ignore_errors=True)

    print(f"machine: {info}")
    print(f"load average: start {load0}, end {loadavg()}")
    print(f"{args.frames} frames of 1920x1080 RGBA, median of {args.loads} cold loads\n")
    header = ("version", "drawings fetched", "buffered (page's own clock)", "page open -> buffered",
              "play 1x", "play 2x")
    rows = [(name, str(r["drawings"]), f"{r['buffer_ms'] / 1000:.2f} s", f"{r['page_ms'] / 1000:.2f} s "
             f"(max {r['page_max'] / 1000:.2f})", f"{r['rates'][1]:.1f} fps", f"{r['rates'][2]:.1f} fps")
            for name, r in results.items()]
    widths = [max(len(row[i]) for row in rows + [header]) for i in range(len(header))]
    for row in [header] + rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    print("\nplay: distinct frame numbers shown per second (the shot is 24 fps: 1x asks 24, 2x asks 48; a display "
          "refreshing at 60 Hz shows at most 60)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
