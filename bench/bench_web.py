#!/usr/bin/env python
"""QuickArt web page benchmark: farm view first paint and live-update latency with 10 000 jobs,
and flipbook frame serving at 1080p. Prints a table against the issue's targets.

Everything is real: a SQLite database seeded like `bench_daemon.py` (`seed_jobs`), the
`quickart web` server as its own process (uvicorn), Debian's headless Chromium driven by
Playwright for what a person sees, and a version folder of 1920x1080 RGBA PNG frames.

    .venv/bin/python bench/bench_web.py            # about a minute
    .venv/bin/python bench/bench_web.py --quick    # fewer repetitions
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_daemon import loadavg, machine_info, pct, seed_jobs, write_config  # noqa: E402

import httpx2 as httpx  # noqa: E402  (the test extra's HTTP client; Starlette's test client uses it too)

TARGET_PAINT_MS = 500
TARGET_UPDATE_MS = 1000
TARGET_FPS = 24
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOT = "BENCH/sq010/sh0010"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not answer")


def write_1080p_version(root: Path, n_frames: int) -> Path:
    """A published-looking version: comp/ of n_frames 1920x1080 RGBA frames (12 distinct drawings of
    a synthetic character in flat colour, each file written separately), manifest and latest.json."""
    import json

    from quickart_daemon.images import write_png
    from quickart_daemon.tools.synth import make_character, render
    folder = root / SHOT / "quickart" / "v001"
    (folder / "comp").mkdir(parents=True)
    char = make_character(7)
    drawings = [render(char, 1001 + 2 * i, (1920, 1080), rough=False).color for i in range(12)]
    for i in range(n_frames):
        write_png(folder / "comp" / f"sh0010.{1001 + i:04d}.png", drawings[(i // 2) % len(drawings)])
    (folder / "manifest.json").write_text(json.dumps({"job_id": 1, "timing": {"fps": 24, "frame_range":
                                                      [1001, 1000 + n_frames], "layers": ["char"]}}))
    (folder.parent / "latest.json").write_text(json.dumps({"version": 1, "path": "v001"}))
    (root / SHOT / "keys").mkdir()
    return folder


def median(values):
    return statistics.median(values) if values else float("nan")


def bench_http_pages(base: str, reps: int) -> dict:
    out = {}
    with httpx.Client(base_url=base) as c:
        for name, url in (("GET / (newest 100 rows)", "/"), ("GET /?limit=2000", "/?limit=2000"),
                          ("GET /?state=queued", "/?state=queued"), ("GET /api/farm", "/api/farm")):
            times = []
            for _ in range(reps):
                t = time.perf_counter()
                r = c.get(url)
                times.append((time.perf_counter() - t) * 1000)
                assert r.status_code == 200
            out[name] = (median(times), pct(times, 95), len(r.content))
    return out


def bench_browser(base: str, cfg, reps: int, updates: int, n_frames: int) -> dict:
    from playwright.sync_api import sync_playwright

    from quickart_daemon.queue import open_queue
    results = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        # first paint: a fresh context (empty cache) per load
        fcp, dcl = [], []
        for _ in range(reps):
            context = browser.new_context()
            page = context.new_page()
            page.goto(base + "/", wait_until="load")
            page.wait_for_function("performance.getEntriesByName('first-contentful-paint').length > 0",
                                   timeout=10_000)
            timing = page.evaluate("""() => ({
                fcp: (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime,
                dcl: performance.getEntriesByType('navigation')[0].domContentLoadedEventEnd})""")
            fcp.append(timing["fcp"])
            dcl.append(timing["dcl"])
            context.close()
        results["first_paint_ms"] = (median(fcp), pct(fcp, 95))
        results["dom_ready_ms"] = (median(dcl), pct(dcl, 95))

        # update latency: a job's state changes in the database; when does the open page show it?
        jq = open_queue(cfg)
        first = jq.get(1)
        job = jq.enqueue(first.shot, first.shot_path, "default", source="submit")
        page = browser.new_page()
        page.goto(base + "/")
        page.wait_for_selector(f'#jobs tr[data-id="{job.id}"]')
        page.wait_for_selector("#live.on")
        page.evaluate("""(id) => {
            window.seen = [];
            new MutationObserver(() => {
                const badge = document.querySelector(`#jobs tr[data-id="${id}"] .badge`);
                if (badge) window.seen.push([badge.textContent, Date.now()]);
            }).observe(document.querySelector('#jobs tbody'), {subtree: true, childList: true, characterData: true});
        }""", job.id)
        latencies = []
        for i in range(updates):
            want = "cancelled" if i % 2 == 0 else "queued"
            time.sleep(0.3 + (i % 5) * 0.07)  # not in step with the feed's polling
            t0 = time.time() * 1000
            jq.cancel(job.id) if want == "cancelled" else jq.retry(job.id)
            page.wait_for_function("(w) => window.seen.some(([s]) => s === w)", arg=want, timeout=10_000)
            seen = page.evaluate("window.seen")
            at = next(t for s, t in seen if s == want)
            latencies.append(at - t0)
            page.evaluate("window.seen = []")
        results["update_ms"] = (median(latencies), pct(latencies, 95), max(latencies))
        page.close()

        # flipbook: open the shot, time until every 1080p frame is loaded and decoded, then play
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        t = time.perf_counter()
        page.goto(f"{base}/shots/{SHOT}")
        page.wait_for_function(f"() => typeof images !== 'undefined' && images.size >= {n_frames} && "
                               "[...images.values()].every((i) => i.complete && i.naturalWidth)", timeout=120_000)
        loaded = time.perf_counter() - t
        results["preload_s"] = loaded
        results["preload_fps"] = n_frames / loaded
        page.click("#play")
        # sampled inside the page (no round trips in the timing): frames shown per second of playback
        results["play_fps"] = page.evaluate("""(n) => new Promise((done) => {
            const read = () => [Number(document.getElementById('frame-no').textContent), performance.now()];
            setTimeout(() => { const [f0, t0] = read();
                setTimeout(() => { const [f1, t1] = read(); done(((f1 - f0 + n) % n) / (t1 - t0) * 1000); }, 1500);
            }, 200);
        })""", n_frames)
        page.click("#play")
        browser.close()
    return results


def bench_frames(base: str, folder: Path, rounds: int) -> dict:
    names = sorted(p.name for p in (folder / "comp").iterdir())
    urls = [f"/files/{SHOT}/quickart/v001/comp/{n}" for n in names]
    total_bytes = sum((folder / "comp" / n).stat().st_size for n in names)
    out = {"frames": len(urls), "mean_kib": total_bytes / len(urls) / 1024}
    with httpx.Client(base_url=base) as c:
        c.get(urls[0])
        t = time.perf_counter()
        for _ in range(rounds):
            for u in urls:
                assert len(c.get(u).content) > 0
        dt = time.perf_counter() - t
    out["sequential_fps"] = rounds * len(urls) / dt
    out["sequential_mib_s"] = rounds * total_bytes / dt / 2**20

    def worker(chunk):
        with httpx.Client(base_url=base) as c:
            for u in chunk:
                c.get(u)

    t = time.perf_counter()
    with ThreadPoolExecutor(4) as ex:
        all_urls = urls * rounds
        list(ex.map(worker, [all_urls[i::4] for i in range(4)]))
    dt = time.perf_counter() - t
    out["parallel4_fps"] = rounds * len(urls) / dt
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--jobs", type=int, default=10_000)
    ap.add_argument("--frames", type=int, default=48)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    if not Path(CHROMIUM).exists():
        print(f"Chromium is not installed at {CHROMIUM}: apt-get install -y chromium", file=sys.stderr)
        return 1
    reps, updates, rounds = (5, 10, 2) if args.quick else (15, 30, 5)
    tmp = Path(tempfile.mkdtemp(prefix="quickart-bench-web-"))
    port = free_port()
    server = None
    try:
        from quickart_daemon.config import load_config
        from quickart_daemon.queue import open_queue
        config = write_config(tmp, web={"port": port})
        cfg = load_config(config)
        jq = open_queue(cfg)
        t = time.perf_counter()
        seeded = seed_jobs(jq, args.jobs, n_queued=args.jobs // 5)
        seed_s = time.perf_counter() - t
        folder = write_1080p_version(cfg.root, args.frames)
        info = machine_info(tmp)
        load0 = loadavg()
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        server = subprocess.Popen([str(Path(sys.executable).parent / "quickart"), "--config", str(config), "web"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, env=env)
        base = f"http://127.0.0.1:{port}"
        wait_http(base + "/api/shots")
        pages = bench_http_pages(base, reps)
        browser = bench_browser(base, cfg, reps, updates, args.frames)
        frames = bench_frames(base, folder, rounds)
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    print(f"machine: {info}")
    print(f"load average: start {load0}, end {loadavg()}")
    print(f"database: {seeded['jobs']:,} jobs on {seeded['shots']:,} shots ({seeded['states']}), seeded in {seed_s:.1f} s")
    print()
    rows = [("farm view first contentful paint (Chromium, cold)", f"{browser['first_paint_ms'][0]:.0f} ms",
             f"{browser['first_paint_ms'][1]:.0f} ms", f"< {TARGET_PAINT_MS} ms",
             f"{browser['first_paint_ms'][0] / TARGET_PAINT_MS:.2f}"),
            ("farm view DOM ready (Chromium, cold)", f"{browser['dom_ready_ms'][0]:.0f} ms",
             f"{browser['dom_ready_ms'][1]:.0f} ms", "", "")]
    for name, (med, p95, size) in pages.items():
        rows.append((f"server {name} ({size / 1024:.0f} KiB)", f"{med:.1f} ms", f"{p95:.1f} ms", "", ""))
    med, p95, worst = browser["update_ms"]
    rows.append((f"state change -> shown on the open farm page (n={updates}, max {worst:.0f} ms)", f"{med:.0f} ms",
                 f"{p95:.0f} ms", f"< {TARGET_UPDATE_MS} ms", f"{p95 / TARGET_UPDATE_MS:.2f}"))
    rows.append((f"1080p frames over HTTP, one client ({frames['mean_kib']:.0f} KiB each)",
                 f"{frames['sequential_fps']:.0f} fps", f"{frames['sequential_mib_s']:.0f} MiB/s", f">= {TARGET_FPS} fps",
                 f"{TARGET_FPS / frames['sequential_fps']:.2f}"))
    rows.append(("1080p frames over HTTP, 4 clients", f"{frames['parallel4_fps']:.0f} fps", "", f">= {TARGET_FPS} fps",
                 f"{TARGET_FPS / frames['parallel4_fps']:.2f}"))
    rows.append((f"flipbook: {args.frames} 1080p frames fetched + decoded in Chromium",
                 f"{browser['preload_fps']:.0f} fps", f"{browser['preload_s']:.2f} s", f">= {TARGET_FPS} fps",
                 f"{TARGET_FPS / browser['preload_fps']:.2f}"))
    rows.append(("flipbook playback rate (frame counter, 1.5 s)", f"{browser['play_fps']:.1f} fps", "",
                 f"{TARGET_FPS} fps", ""))
    header = ("measure", "median", "p95 / other", "target", "ratio to target")
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(5)]
    for r in [header] + rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))
    print("\nratio to target: value / target for times (below 1 meets it), target / value for rates (below 1 meets it)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
