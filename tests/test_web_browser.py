"""Issue 24, the web page as a review tool: the shot and sequence browser (/shots) and the job panel of
the farm page and the shot page (a job's live log, its error and its warnings).

The list is checked against each shot read alone on SQLite and PostgreSQL; the pages run in Debian's
headless Chromium against the real `quickart web` server (synthetic shots from tools/synth_shots.py,
each a real version folder and real queue rows), and the job panel against the real daemon running
studio stages from the `stage_package` fixture: one that crashes, one that warns, one that takes a while.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections import Counter
from urllib.parse import parse_qs, urlparse

import yaml
from starlette.testclient import TestClient

from quickart_daemon import reviews
from quickart_daemon.cli import main as quickart
from quickart_daemon.config import load_config
from quickart_daemon.db import reads
from quickart_daemon.naming import ShotId
from quickart_daemon.queue import JobState, open_queue
from quickart_daemon.tools.synth import write_clean_keys
from quickart_daemon.tools.synth_shots import OWNER, drawings, seed_shots, write_version
from quickart_daemon.web import studio as web_studio
from quickart_daemon.web.app import create_app
from test_web import free_port, launch_chromium, listening_addresses, shot_yaml, wait_for, write_config

N_SHOTS = 45  # 3 shows of 15 shots, each in two sequences (12 + 3: synth_shots.plan)


def serve(config, log_path, command="web") -> subprocess.Popen:
    log = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", "quickart_daemon.cli", "--config", str(config), command],
                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


# -- the list: one query, the same answer as each shot read alone ------------------------------------------

def test_the_shot_list_is_one_query_that_agrees_with_each_shot_read_alone(make_config, db_url):
    cfg = make_config(database={"url": db_url})
    jq = open_queue(cfg)
    plans = seed_shots(cfg, jq, N_SHOTS)
    jq.enqueue(plans[0].shot, "ARROW/sq010/sh0010", "default", source="submit")  # a newer job: queued after v002
    statements = []
    with reads.open_reader(cfg.database.url, cfg.database.busy_timeout_ms) as run:
        def counted(sql, params):
            statements.append(sql)
            return run(sql, params)
        rows = reads.list_shots(counted)
        assert len(statements) == 1, "one statement for every shot, not one per shot"
        assert [(r["show"], r["seq"], r["name"]) for r in rows] == sorted((p.shot.show, p.shot.seq, p.shot.shot)
                                                                           for p in plans)
        with TestClient(create_app(cfg), base_url="http://127.0.0.1") as client:
            listed = {s["shot"]: s for s in client.get("/api/shots").json()}
            assert len(listed) == N_SHOTS
            for p in plans:
                shot = listed[str(p.shot)]
                assert client.get(f"/api/shots/{shot['rel']}").json() == shot  # the row a live page adds
                newest = reads.list_jobs(run, None, str(p.shot), 1)[0]  # read alone
                assert shot["job"]["id"] == newest.id and shot["job"]["state"] == newest.state.value
                ref = web_studio.shot_ref(cfg, shot["rel"])
                on_disk = web_studio.shot_versions(ref)["latest"]
                assert shot["version"] == on_disk, p
                approval = reviews.current(reviews.list_reviews(run, p.shot, p.version)) if p.version else None
                assert (shot["approval"] or {}).get("state") == (approval or {}).get("state") == p.approval
                assert (shot["delivery"] or {}).get("state") == p.delivery and shot["tracker"] is None
                if p.version:
                    assert shot["thumb"] == f"/thumbs/{shot['rel']}/{on_disk}.png"
                    assert not (cfg.state_dir / "web-thumbs").exists(), "the list makes no thumbnail"
                else:
                    assert shot["thumb"] is None
            assert client.get("/api/shots/ARROW/sq010/sh9999").status_code == 404  # not in the queue
            assert client.get("/api/shots/ARROW/sq010").status_code == 404  # not a shot folder
            assert listed[str(plans[0].shot)]["job"]["state"] == "queued"
            assert listed[str(plans[0].shot)]["version"] == "v002"  # the newest version stays listed
            assert Counter(s["job"]["state"] for s in listed.values()) == \
                Counter(p.job_state for p in plans[1:]) + Counter(["queued"])


def test_the_job_log_is_followed_by_whole_lines_from_an_offset(make_config):
    """The page asks only for what it has not seen; a line still being written waits until it is whole;
    a retried job that is running is followed in its new log, not its last version's."""
    cfg = make_config()
    jq = open_queue(cfg)
    seed_shots(cfg, jq, 1)
    with TestClient(create_app(cfg), base_url="http://127.0.0.1") as client:
        whole = client.get("/api/jobs/1/log").text
        first = client.get("/api/jobs/1/log?offset=0")
        assert first.text == whole and first.headers["x-log-from"] == "0"
        assert first.headers["x-log-file"] == "quickart/v001/job.log"
        end = int(first.headers["x-log-next"])
        assert end == len(whole.encode())
        log = cfg.root / "ARROW/sq010/sh0010/quickart/v001/job.log"
        with open(log, "a") as fh:
            fh.write("a line being writ")
        assert client.get(f"/api/jobs/1/log?offset={end}").text == ""
        with open(log, "a") as fh:
            fh.write("ten é\nand the next")
        tail = client.get(f"/api/jobs/1/log?offset={end}")
        assert tail.text == "a line being written é\n" and tail.headers["x-log-from"] == str(end)
        past = client.get("/api/jobs/1/log?offset=999999")  # past the end: another file, sent whole
        assert past.headers["x-log-from"] == "0" and past.text.startswith("=== job 1")

        jq.retry(1)
        owner = "test:1:cpu0"
        jq.claim(1, owner, "test", "cpu0")
        staging = cfg.root / "ARROW/sq010/sh0010/quickart/.job-1.tmp"
        staging.mkdir()
        (staging / "job.log").write_text("=== job 1 attempt 1 (the retry)\n")
        again = client.get("/api/jobs/1/log?offset=0")
        assert again.text == "=== job 1 attempt 1 (the retry)\n" and again.headers["x-log-file"] == \
            "quickart/.job-1.tmp/job.log"


# -- the browser page ------------------------------------------------------------------------------------------

def visible_shots(page) -> list[str]:
    return page.eval_on_selector_all("#shots .shot-row:not([hidden]) .name a",
                                     "(links) => links.map((a) => a.textContent)")


#: what a person sees of the list, in page order: [a show's or sequence's heading and its count, or a shot
#: row's folder and "", hidden or not]
LIST_LAYOUT = """() => [...document.querySelectorAll('#shot-rows > *')].map((r) => r.classList.contains('shot-row')
    ? [r.dataset.rel, '', r.hidden] : [r.firstElementChild.firstChild.textContent, r.querySelector('.count').textContent,
                                       r.hidden])"""


def test_the_shot_browser_in_a_real_browser(tmp_path):
    from playwright.sync_api import expect, sync_playwright
    port = free_port()
    config = write_config(tmp_path, port=port)
    cfg = load_config(config)
    jq = open_queue(cfg)
    plans = seed_shots(cfg, jq, N_SHOTS)
    names = {str(p.shot): p for p in plans}
    proc = serve(config, tmp_path / "web.log")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: listening_addresses(port), 30, "the page to be served", proc)
        with sync_playwright() as p:
            browser = launch_chromium(p)
            context = browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            errors = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(f"{base}/")
            page.click("header nav a[href='/shots']")  # linked from the farm page's header
            expect(page.locator("#shots .shot-row")).to_have_count(N_SHOTS)
            assert visible_shots(page) == sorted(names)  # by show, sequence and name
            expect(page.locator("#shots .group.show")).to_have_count(3)
            sequences = {(p.shot.show, p.shot.seq) for p in plans}
            expect(page.locator("#shots .group.seq")).to_have_count(len(sequences))
            expect(page.locator("#shots .group.show").first).to_contain_text("ARROW 15")

            # each row: thumbnail of the newest version, its number, job state, approval, tracker delivery
            for shot, cells in (("ARROW/sq010/sh0010", ["v002", "done", "approved", "kitsu: delivered"]),
                                ("ARROW/sq010/sh0040", ["v001", "failed", "approved", "kitsu: delivered"]),
                                ("ARROW/sq010/sh0030", ["v001", "done", "not reviewed", "kitsu: failed"]),
                                ("ARROW/sq010/sh0100", ["", "queued", "", ""])):
                row = page.locator("#shots .shot-row", has=page.locator(f".name a:text-is('{shot}')"))
                for cell, text in zip(("version", "job", "review", "tracker"), cells):  # waits out a live redraw
                    expect(row.locator(f".{cell}"), f"{shot} {cell}").to_have_text(text)
            first = page.locator("#shots .shot-row .thumb img").first
            expect(first).to_have_attribute("loading", "lazy")
            page.wait_for_function("""() => { for (const i of document.querySelectorAll('#shots .thumb img')) {
                if (i.getBoundingClientRect().top >= innerHeight) return true;
                if (!i.hidden && !(i.complete && i.naturalWidth > 0)) return false; } return true; }""")
            picture = tmp_path / "shots-view.png"  # docs/web-shots.png is this picture
            page.screenshot(path=str(picture))
            print(f"screenshot of the shot browser: {picture}")

            # a text search, instantly, in the URL
            page.fill("#f-text", "sh0020")
            assert visible_shots(page) == ["ARROW/sq010/sh0020", "BRAMBLE/sq010/sh0020", "COMET/sq010/sh0020"]
            assert parse_qs(urlparse(page.url).query) == {"q": ["sh0020"]}
            expect(page.locator("#shown-count")).to_have_text("3")
            page.select_option("#f-show", "BRAMBLE")
            assert visible_shots(page) == ["BRAMBLE/sq010/sh0020"]
            expect(page.locator("#shots .group:not([hidden])")).to_have_count(2)  # its show and sequence
            page.fill("#f-text", "")
            seqs = page.eval_on_selector_all("#f-seq option", "(o) => o.map((x) => x.value)")
            assert seqs == [""] + sorted({p.shot.seq for p in plans if p.shot.show == "BRAMBLE"})
            page.select_option("#f-seq", "sq010")
            assert visible_shots(page) == sorted(n for n, p in names.items()
                                                 if p.shot.show == "BRAMBLE" and p.shot.seq == "sq010")
            page.click("#f-clear")
            page.select_option("#f-state", "failed")
            page.select_option("#f-review", "needs_work")
            wanted = sorted(n for n, p in names.items() if p.job_state == "failed" and p.approval == "needs_work")
            assert visible_shots(page) == wanted and wanted
            page.select_option("#f-review", "none")
            assert visible_shots(page) == sorted(n for n, p in names.items()
                                                 if p.job_state == "failed" and p.approval is None)
            page.fill("#f-text", "no such shot")
            expect(page.locator("#no-shots")).to_be_visible()

            # a filtered view can be linked: a fresh page with the URL shows the same rows
            linked = context.new_page()
            linked.on("pageerror", lambda e: errors.append(str(e)))
            linked.goto(f"{base}/shots?show=COMET&review=approved")
            expect(linked.locator("#f-show")).to_have_value("COMET")
            expect(linked.locator("#f-review")).to_have_value("approved")
            approved = sorted(n for n, p in names.items() if p.shot.show == "COMET" and p.approval == "approved")
            assert visible_shots(linked) == approved and approved

            # live: a new job for a listed shot joins the "queued" filter without reloading the page
            linked.goto(f"{base}/shots?state=queued")
            expect(linked.locator("#live")).to_have_class("live on")
            before = visible_shots(linked)
            job = jq.enqueue(plans[1].shot, "ARROW/sq010/sh0020", "default", source="submit")
            expect(linked.locator("#shots .shot-row:not([hidden])")).to_have_count(len(before) + 1)
            assert "ARROW/sq010/sh0020" in visible_shots(linked)
            # ... and when it publishes v002 the row shows the new version, not yet reviewed nor delivered
            jq.claim(job.id, OWNER, "synth-node", "cpu0")
            folder = write_version(cfg, plans[1].shot, 2, drawings(1)[0], job.id)
            jq.finish(job.id, OWNER, version=2, output_path=str(folder), artifacts={"version": str(folder)})
            row = linked.locator("[data-rel='ARROW/sq010/sh0020']")
            expect(row.locator(".version")).to_have_text("v002")
            expect(row).to_be_hidden()  # no longer queued
            assert [row.locator(f".{c}").text_content().strip() for c in ("job", "review", "tracker")] == \
                ["done", "not reviewed", ""]
            expect(row.locator(".thumb img")).to_have_attribute("src", "/thumbs/ARROW/sq010/sh0020/v002.png")

            # live: shots created after the page loaded join the list where a reload puts them, under their
            # show and sequence (a new sequence and a new show get their headings), with the filters applied
            new = [ShotId("ARROW", "sq015", "sh0011"), ShotId("BRAMBLE", "sq010", "sh0015"),
                   ShotId("DELTA", "sq001", "sh0001")]
            for shot in new:
                jq.enqueue(shot, f"{shot.show}/{shot.seq}/{shot.shot}", "default", source="submit")
            expect(linked.locator("#shots .shot-row")).to_have_count(N_SHOTS + len(new))
            for shot in new:
                expect(linked.locator(f"[data-rel='{shot}'] .job .badge")).to_have_text("queued")
            layout = linked.evaluate(LIST_LAYOUT)
            where = {name: i for i, (name, _, _) in enumerate(layout)}
            headings = [name for name, count, _ in layout if count]
            assert headings.index("ARROW / sq015") == headings.index("ARROW / sq010") + 1  # a new sequence, in order
            assert layout[where["ARROW / sq015"]:where["ARROW / sq015"] + 2] == [
                ["ARROW / sq015", "1", False], ["ARROW/sq015/sh0011", "", False]]
            assert where["BRAMBLE/sq010/sh0015"] == where["BRAMBLE/sq010/sh0010"] + 1  # in name order
            assert layout[-3:] == [["DELTA", "1", False], ["DELTA / sq001", "1", False],  # a new show, last
                                   ["DELTA/sq001/sh0001", "", False]]
            expect(linked.locator("#total-count")).to_have_text(str(N_SHOTS + len(new)))
            reloaded = context.new_page()
            reloaded.goto(linked.url)
            expect(reloaded.locator("#shots .shot-row")).to_have_count(N_SHOTS + len(new))
            assert reloaded.evaluate(LIST_LAYOUT) == layout
            shows = "(select) => [...select.options].map((o) => o.value)"
            assert linked.eval_on_selector("#f-show", shows) == reloaded.eval_on_selector("#f-show", shows)
            linked.select_option("#f-show", "ARROW")
            assert "sq015" in linked.eval_on_selector("#f-seq", shows)
            linked.select_option("#f-show", "")
            reloaded.close()

            # the tracker's own status, once read back, replaces the outbox's state (colour and link checked)
            linked.evaluate("""() => {
                const e = byRel.get('ARROW/sq010/sh0020');
                e.shot.tracker = {status: 'wfa', name: 'Waiting For Approval', color: '#ab7',
                                  at: '2026-12-06T07:00:00Z', url: 'https://kitsu.example/shots/1'};
                fill(e);
                const f = byRel.get('ARROW/sq010/sh0030');
                f.shot.tracker = {status: 'retake', name: 'Retake', color: 'red;background:url(x)',
                                  url: 'javascript:alert(1)'};
                fill(f);
            }""")
            status = linked.locator("[data-rel='ARROW/sq010/sh0020'] .tracker a .tracker-status")
            expect(status).to_have_text("Waiting For Approval")
            assert status.evaluate("(s) => [s.style.backgroundColor, s.parentElement.href]") == \
                ["rgb(170, 187, 119)", "https://kitsu.example/shots/1"]
            retake = linked.locator("[data-rel='ARROW/sq010/sh0030'] .tracker")
            assert retake.evaluate("(td) => [td.textContent, td.querySelector('a'),"
                                   " td.firstElementChild.style.background]") == ["Retake", None, ""]

            # a shot opens its shot page; its job badge opens the job's panel on the farm page
            page.click("#f-clear")
            page.click("#shots .name a:text-is('BRAMBLE/sq020/sh0130')")
            expect(page).to_have_url(f"{base}/shots/BRAMBLE/sq020/sh0130")
            expect(page.locator("h1")).to_have_text("BRAMBLE/sq020/sh0130")
            page.go_back()
            page.locator("[data-rel='ARROW/sq010/sh0040'] .job .badge").click()
            expect(page.locator("#job-panel")).to_be_visible()
            expect(page.locator("#job-panel .jp-error")).to_have_text(
                "stage color crashed: RuntimeError: synthetic failure")
            assert errors == [], errors
            browser.close()
    finally:
        stop(proc)


def test_the_job_panel_follows_a_running_job_and_shows_errors_and_warnings(tmp_path, stage_package):
    from playwright.sync_api import expect, sync_playwright
    port = free_port()
    config = write_config(tmp_path, serve=True, port=port)
    data = yaml.safe_load(config.read_text())
    config.write_text(yaml.safe_dump(data | {"retry": {"max_attempts": 1}}))
    slow = {"stage": "test-slow", "params": {"seconds": 3}}
    pipelines = {"crash": [{"stage": "test-crash"}, {"stage": "inbetween-blend"}],
                 "warn": [{"stage": "test-variants"}, {"stage": "inbetween-blend"}],
                 "slow": [slow, slow, {"stage": "inbetween-blend"}]}
    for name, stages in pipelines.items():
        (tmp_path / "pipelines" / f"{name}.yaml").write_text(yaml.safe_dump({"name": name, "stages": stages}))
    cfg = load_config(config)
    shots = {}
    for shot, pipeline in (("sh0010", "crash"), ("sh0020", "warn")):
        shots[pipeline] = write_clean_keys(cfg.root, shot=shot, size=(160, 90), keys=(1001, 1005), fx=False)
        shot_yaml(shots[pipeline], pipeline=pipeline)
        quickart(["--config", str(config), "run", str(shots[pipeline])])
    jq = open_queue(cfg)
    crashed = next(j for j in jq.list() if j.shot.shot == "sh0010")
    warned = next(j for j in jq.list() if j.shot.shot == "sh0020")
    assert crashed.state is JobState.FAILED and warned.state is JobState.DONE and warned.warnings
    slow_dir = write_clean_keys(cfg.root, shot="sh0030", size=(160, 90), keys=(1001, 1005), fx=False)
    shot_yaml(slow_dir, pipeline="slow")
    daemon = serve(config, tmp_path / "daemon.log", "daemon")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: listening_addresses(port), 30, "the page to be served", daemon)
        with sync_playwright() as p:
            browser = launch_chromium(p)
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            errors, tails = [], []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("request", lambda r: "/log?offset=" in r.url and tails.append(int(r.url.rsplit("=", 1)[1])))
            panel = page.locator("#job-panel")

            # a failed job: its error and its kept log (with the traceback); linked by ?job=N
            page.goto(f"{base}/?job={crashed.id}")
            expect(panel).to_be_visible()
            expect(panel.locator(".jp-state .badge")).to_have_text("failed")
            expect(panel.locator(".jp-error")).to_contain_text("RuntimeError: injected fault for the test")
            expect(panel.locator(".jp-log")).to_contain_text("Traceback")
            expect(panel.locator(".jp-warnings")).to_be_hidden()
            panel.locator(".jp-close").click()
            expect(panel).to_be_hidden()
            assert "job=" not in page.url

            # a job with warnings lists them, and has no error
            page.locator(f'#jobs tr[data-id="{warned.id}"] button[data-open-job]').click()
            expect(panel.locator(".jp-id")).to_have_text(str(warned.id))
            expect(panel.locator(".jp-warnings li")).to_have_count(len(warned.warnings))
            expect(panel.locator(".jp-warnings li").first).to_have_text(warned.warnings[0])
            assert "inverted for the test" in " ".join(warned.warnings)
            expect(panel.locator(".jp-error")).to_be_hidden()
            expect(panel.locator(".jp-log")).to_contain_text("=== done")

            # a running job: the log grows on the page while it runs, to its last line
            slow = wait_for(lambda: next((j for j in jq.list([JobState.RUNNING]) if j.shot.shot == "sh0030"), None),
                            60, "the slow job to start", daemon)
            page.locator(f'#jobs tr[data-id="{slow.id}"] button[data-open-job]').click()
            expect(panel.locator(".jp-state .badge")).to_have_text("running")
            expect(panel.locator(".jp-log")).to_contain_text(f"=== job {slow.id}")
            seen = len(panel.locator(".jp-log").inner_text())
            assert jq.get(slow.id).state is JobState.RUNNING
            page.wait_for_function("(n) => document.querySelector('#job-panel .jp-log').textContent.length > n",
                                   arg=seen, timeout=20_000)
            expect(panel.locator(".jp-state .badge")).to_have_text("done", timeout=45_000)
            expect(panel.locator(".jp-log")).to_contain_text("=== done", timeout=10_000)
            text = panel.locator(".jp-log").inner_text()
            assert text.count(f"=== job {slow.id}") == 1, "each line once: new lines were appended, not repeated"
            assert text.count("action=stage_done") == 3
            assert any(offset > 0 for offset in tails), "the page asked for new lines only"

            # the shot page opens the same panel from its own list of jobs: the failed job's error and log
            page.goto(f"{base}/shots/{shots['crash'].relative_to(cfg.root).as_posix()}")
            expect(panel).to_be_hidden()
            page.locator(f'#jobs tr[data-id="{crashed.id}"] button[data-open-job]').click()
            expect(panel.locator(".jp-id")).to_have_text(str(crashed.id))
            expect(panel.locator(".jp-state .badge")).to_have_text("failed")
            expect(panel.locator(".jp-error")).to_contain_text("RuntimeError: injected fault for the test")
            expect(panel.locator(".jp-log")).to_contain_text("Traceback")
            page.keyboard.press("Escape")
            expect(panel).to_be_hidden()
            # ... and from a row the live feed adds: a job submitted while the page is open, followed as it runs
            quickart(["--config", str(config), "submit", str(shots["crash"])])
            again = max(j.id for j in jq.list() if j.shot.shot == "sh0010")
            page.locator(f'#jobs tr[data-id="{again}"] button[data-open-job]').click()
            expect(panel.locator(".jp-id")).to_have_text(str(again))
            expect(panel.locator(".jp-state .badge")).to_have_text("failed", timeout=45_000)
            expect(panel.locator(".jp-error")).to_contain_text("RuntimeError: injected fault for the test")
            expect(panel.locator(".jp-log")).to_contain_text(f"=== job {again}", timeout=10_000)
            assert errors == [], errors
            browser.close()
    finally:
        stop(daemon)
