"""The web application: pages, the JSON API, live events, files, uploads and downloads.

Safe by default: the server binds 127.0.0.1 unless `web.host` says otherwise and then only
answers to loopback host names (a DNS-rebinding page cannot read it); every write (retry,
cancel, priority, upload, clear uploads, a review of a version) needs `Authorization: Bearer <web.token>` (a header a cross-site
form cannot send), or comes from a browser on this machine run by a trusted local user (the
kernel names a loopback socket's owner, `peer.py`) and carries the page's own header; with
neither the page is read-only; every path is
resolved inside the studio root (`studio.inside_root`); uploads stop at
`web.max_upload_bytes`; an error answers one sentence of JSON, never a traceback.

Each endpoint is a module-level function of the request; what they share (config, live feed,
templates, the queue of the write actions) is one `WebState` on `app.state.web`, so an endpoint
can be called alone (tests/test_web_endpoints.py). `create_app` only wires routes, middleware
and error handlers.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import os
import tempfile
import threading
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from ..config import Config
from ..db import reads
from ..errors import InvalidTransition, JobNotFound, QuickArtError
from .. import rerun, reviews, tracker_status
from ..jobs import FINISHED, JobState
from ..naming import ShotId
from . import peer, studio
from .feed import Feed, job_view, nodes_view

log = logging.getLogger("quickart.web")
HERE = Path(__file__).parent
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
#: version files never change once published: browsers keep them without asking again
IMMUTABLE = {"Cache-Control": "public, max-age=31536000, immutable"}
#: rows of the farm view's first paint (newest first); "more" asks for more
FIRST_ROWS = 100
SSE_WAIT = 0.1
SSE_KEEPALIVE = 15.0


class Forbidden(QuickArtError):
    """This action needs the web token."""


class TooLarge(QuickArtError):
    """The upload is larger than web.max_upload_bytes."""


@dataclass
class WebState:
    """What every endpoint shares, for the life of one app: the config, the live feed, the templates,
    and the queue the write actions open on first use. It lives on `app.state.web`."""

    cfg: Config
    feed: Feed
    templates: Jinja2Templates
    _queue: object = None
    _queue_lock: threading.Lock = field(default_factory=threading.Lock)

    @classmethod
    def create(cls, cfg: Config, feed_interval: float = 0.25) -> "WebState":
        return cls(cfg, Feed(cfg, lambda shot: studio.shot_rel(cfg, shot), feed_interval),
                   Jinja2Templates(directory=str(HERE / "templates")))  # autoescapes .html

    def reader(self):
        return reads.open_reader(self.cfg.database.url, self.cfg.database.busy_timeout_ms)

    def queue(self):
        """One queue (one engine, one pool) for the page's life, opened on the first write."""
        with self._queue_lock:
            if self._queue is None:
                from ..queue import open_queue
                self._queue = open_queue(self.cfg, migrate=False)
            return self._queue


def _web(request: Request) -> WebState:
    return request.app.state.web


# -- who may write ------------------------------------------------------------------------------

def local_user(web: WebState, request: Request) -> str | None:
    """The login name of a trusted user of this machine at the other end of a loopback connection
    (`web.trust_local_user` for the page's own user, `web.local_users`), else None."""
    if not _is_loopback_host(request.headers.get("host", "")):
        # a page on another name that resolves to 127.0.0.1 (DNS rebinding, with web.host 0.0.0.0)
        # reaches us from a loopback socket too: only a loopback Host is the user's own browser here
        return None
    uid = peer.loopback_peer_uid(request.client, request.scope.get("server"))
    if uid is None:
        return None
    name = _login_name(uid)
    if (web.cfg.web.trust_local_user and uid == os.getuid()) or (name is not None and name in web.cfg.web.local_users):
        return name or f"uid {uid}"
    return None


def require_writer(web: WebState, request: Request) -> None:
    """Every write needs the token, or a trusted local user whose request the page itself sent
    (its X-Requested-By header: a form or a plain request from another site cannot carry it)."""
    token = web.cfg.web.token
    given = request.headers.get("authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return
    if local_user(web, request) is not None:
        origin = request.headers.get("origin")
        if request.headers.get("x-requested-by") != "quickart" or \
                (origin is not None and origin.split("://", 1)[-1] != request.headers.get("host")):
            raise Forbidden("a write from a browser on this machine must come from the QuickArt page itself")
        return
    if not token:
        raise Forbidden("write actions are off: set web.token in config.yaml to allow them, or open the page "
                        "on this machine as the user it runs as (web.trust_local_user, web.local_users)")
    raise Forbidden("write actions need the web token (Authorization: Bearer ...)")


def writer_name(web: WebState, request: Request, given=None) -> str:
    """Who wrote, as the page knows it (after `require_writer`): a trusted local user by their login name
    (the kernel names them), else the token's holder by the name they give ("token" without one)."""
    name = local_user(web, request)
    if name is not None:
        return name
    if given is None or (isinstance(given, str) and not given.strip()):
        return "token"
    return given if isinstance(given, str) else ""  # a name that is not text is refused by reviews.check


def writer(web: WebState, request: Request) -> dict:
    """What the page shows of the visitor's right to write."""
    name = local_user(web, request)
    return {"writable": bool(web.cfg.web.token) or name is not None, "local_user": name}


# -- what the pages read ---------------------------------------------------------------------------

def jobs_query(request: Request):
    q = request.query_params
    try:
        states = [JobState(s) for value in q.getlist("state") for s in value.split(",") if s]
        limit = max(1, min(int(q.get("limit", FIRST_ROWS)), 2000))
    except ValueError:
        raise QuickArtError(f"state: one or more of {', '.join(s.value for s in JobState)}; limit: a number")
    return states or None, (q.get("shot") or "").strip() or None, limit


def farm_data(web: WebState, request: Request) -> dict:
    states, shot, limit = jobs_query(request)
    with web.reader() as run:
        jobs = reads.list_jobs(run, states, shot, limit)
        counts = reads.count_states(run)
        nodes = nodes_view(run, reads.list_jobs(run, [JobState.RUNNING]))
    return {"jobs": [job_view(j, studio.shot_rel(web.cfg, j.shot)) for j in jobs], "counts": counts, "nodes": nodes,
            "filters": {"state": [s.value for s in states or []], "shot": shot or "", "limit": limit}}


def retry_points(web: WebState, run, job, stage_runs: list[dict] | None = None,
                 pipelines: dict | None = None) -> list[str]:
    """The stages a finished job can start again at (the first one always, if it has any)."""
    if job.state not in FINISHED:
        return []
    stage_runs = reads.stage_runs(run, job.id) if stage_runs is None else stage_runs
    return rerun.retry_points(web.cfg, job, stage_runs, pipelines)


# -- pages -----------------------------------------------------------------------------------------

def farm_page(request: Request):
    web = _web(request)
    web.feed.start()
    data = farm_data(web, request)
    return web.templates.TemplateResponse(request, "farm.html", {
        **data, "states": [s.value for s in JobState], "seq": web.feed.seq, **writer(web, request),
        "initial": _script_json({"seq": web.feed.seq, "epoch": web.feed.epoch, "filters": data["filters"]})})


def shot_page(request: Request):
    web = _web(request)
    ref = studio.shot_ref(web.cfg, request.path_params["rel"])
    info = studio.shot_versions(ref)
    with web.reader() as run:
        pipelines: dict = {}  # each pipeline file read once per page
        jobs = [job_view(j, ref.rel) | {"retry_from": retry_points(web, run, j, pipelines=pipelines)}
                for j in reads.list_jobs(run, None, str(ref.id), 50)]
    return web.templates.TemplateResponse(request, "shot.html", {
        "shot": str(ref.id), "rel": ref.rel, "info": info, "jobs": jobs, **writer(web, request),
        "initial": _script_json({"rel": ref.rel, "versions": info["versions"], "latest": info["latest"]})})


# -- read API --------------------------------------------------------------------------------------

def api_farm(request: Request):
    return JSONResponse(farm_data(_web(request), request))


def api_job(request: Request):
    web = _web(request)
    job_id = _int(request.path_params["id"])
    with web.reader() as run:
        job = reads.get_job(run, job_id)
        stages = reads.stage_runs(run, job.id)
        data = job_view(job, studio.shot_rel(web.cfg, job.shot)) | {
            "warnings": list(job.warnings), "stages": stages,
            "outputs": reads.artifacts(run, job.id), "retry_from": retry_points(web, run, job, stages)}
    return JSONResponse(data)


def api_job_log(request: Request):
    web = _web(request)
    cfg = web.cfg
    job_id = _int(request.path_params["id"])
    with web.reader() as run:
        job = reads.get_job(run, job_id)
        outputs = reads.artifacts(run, job.id)
    ref = studio.shot_ref(cfg, studio.shot_rel(cfg, job.shot))
    staging = f"{studio.OUTPUT_DIR}/.job-{job.id}.tmp/job.log"
    candidates = [outputs.get("log"), outputs.get("version") and f"{outputs['version']}/job.log", staging]
    if job.state is JobState.RUNNING:  # a retried job is writing a new log; its last version holds the old one
        candidates.insert(0, staging)
    for path in filter(None, candidates):
        # a path on the job row may be another node's (its own mount of the root): keep the
        # part from the shot's output folder on, and look for it in this node's shot folder
        parts = PurePosixPath(path).parts
        if studio.OUTPUT_DIR not in parts:
            continue
        inner = "/".join(parts[len(parts) - 1 - parts[::-1].index(studio.OUTPUT_DIR):])
        try:
            found = studio.inside_root(cfg.root, f"{ref.rel}/{inner}")
        except QuickArtError:
            continue
        if found.is_file():
            with studio.open_inside(ref.root, found) as fh:  # checked on the open file, as inside_file does
                if "offset" in request.query_params:
                    return log_tail(fh, inner, _int(request.query_params["offset"]))
                return Response(fh.read().decode("utf-8", errors="replace"), media_type="text/plain")
    raise studio.NotFound(f"job {job_id} has no log yet")


def api_shot(request: Request):
    ref = studio.shot_ref(_web(request).cfg, request.path_params["rel"])
    return JSONResponse({"shot": str(ref.id), "rel": ref.rel, **studio.shot_versions(ref)})


def api_version(request: Request):
    """A version's description, its reviews' summary, and `tracker`: its status on the production tracker
    as the daemon last read it (tracker_status.latest; null when none)."""
    web = _web(request)
    ref = studio.shot_ref(web.cfg, request.path_params["rel"])
    version = request.path_params["version"]
    data = studio.describe_version(web.cfg, ref, version)
    with web.reader() as run:
        found = reviews.list_reviews(run, ref.id, _version_number(version))
        tracker = tracker_status.latest(run, ref.id, _version_number(version))
    return JSONResponse(data | reviews.summary(found) | {"tracker": tracker})


def _version_number(version: str) -> int:
    return int(version.lstrip("v"))


async def version_reviews(request: Request):
    """GET: a version's reviews (oldest first) and its current approval. POST (a write): one review,
    JSON {state: approved | needs_work | note, text, author?} (author: a token writer's name; a trusted
    local user is named by the system)."""
    web = _web(request)
    ref = studio.shot_ref(web.cfg, request.path_params["rel"])
    version = request.path_params["version"]
    studio.version_dir(ref, version)  # 404 for a version the shot does not have
    number = _version_number(version)
    if request.method == "POST":
        require_writer(web, request)
        body = await _json_body(request, limit=reviews.MAX_TEXT * 4 + 1024)
        author = writer_name(web, request, body.get("author"))
        state, text, author = reviews.check(body.get("state"), body.get("text"), author)

        def add():
            jq = web.queue()
            return reviews.add(web.cfg, jq.sessions, jq.upsert_shot(ref.id, ref.rel), ref.id, number, state, text,
                               author)
        review = await run_in_threadpool(add)
        log.info("action=web_review shot=%s version=%s state=%s review=%s", ref.id, version, state, review["id"])
        return JSONResponse(review, status_code=201)

    def read():
        with web.reader() as run:
            return reviews.list_reviews(run, ref.id, number)
    found = await run_in_threadpool(read)
    return JSONResponse({"reviews": found, **reviews.summary(found)})


def api_version_text(request: Request):
    cfg = _web(request).cfg
    ref = studio.shot_ref(cfg, request.path_params["rel"])
    name = {"log": "job.log", "manifest": "manifest.json"}.get(request.path_params["what"])
    if name is None:
        raise studio.NotFound(f"{request.path_params['what']!r}: a version's log or manifest")
    path = studio.version_file(cfg, ref, request.path_params["version"], name)
    return inside_file(ref, path, "text/plain; charset=utf-8", "inline")


async def events(request: Request):
    """Server-sent events: the feed's updates after `?seq=N` (the number the page was rendered at)."""
    feed = _web(request).feed
    feed.start()
    seq = _int(request.query_params.get("seq", "0"))
    epoch = request.query_params.get("epoch")

    async def stream():
        nonlocal seq
        quiet = 0.0
        yield "retry: 1000\n\n"
        while not feed.stopped:
            latest, items = feed.since(seq, epoch)
            if any(item.get("type") == "reload" for item in items):
                yield 'data: {"type": "reload"}\n\n'
                return
            for item in items:
                yield f"data: {json.dumps(item, default=str)}\n\n"
            if items:
                quiet = 0.0
            seq = latest
            await asyncio.sleep(SSE_WAIT)
            quiet += SSE_WAIT
            if quiet >= SSE_KEEPALIVE:
                yield ": keepalive\n\n"
                quiet = 0.0

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})


# -- files -----------------------------------------------------------------------------------------

def files(request: Request):
    """A file of a version folder: /files/{shot}/quickart/vNNN/{inner}."""
    cfg = _web(request).cfg
    rel = request.path_params["path"]
    parts = rel.split("/")
    marker = parts.index(studio.OUTPUT_DIR) if studio.OUTPUT_DIR in parts else -1
    if marker < 1 or len(parts) < marker + 3:
        raise studio.NotFound(f"{rel}: only files of version folders are served")
    ref = studio.shot_ref(cfg, "/".join(parts[:marker]))
    path = studio.version_file(cfg, ref, parts[marker + 1], "/".join(parts[marker + 2:]))
    media_type, disposition = _served_as(path.name)
    return inside_file(ref, path, media_type, disposition)


def inside_file(ref: studio.ShotRef, path: Path, media_type: str, disposition: str | None) -> Response:
    """A version's file, streamed from the file `studio.open_inside` opened: the check that it lies in the
    studio is made on the open file itself, so a link swapped in after the path was looked up is never
    served (FileResponse would open the path again). `disposition`: inline, attachment, or None (no
    header); the file name is written as FileResponse writes it."""
    fh = studio.open_inside(ref.root, path)
    headers = {**IMMUTABLE, "Content-Length": str(os.fstat(fh.fileno()).st_size)}
    if disposition:
        quoted = urllib.parse.quote(path.name)
        headers["Content-Disposition"] = (f'{disposition}; filename="{path.name}"' if quoted == path.name
                                          else f"{disposition}; filename*=utf-8''{quoted}")

    def chunks():
        with fh:
            while chunk := fh.read(1 << 20):
                yield chunk
    return StreamingResponse(chunks(), media_type=media_type, headers=headers)


def thumb(request: Request):
    cfg = _web(request).cfg
    ref = studio.shot_ref(cfg, request.path_params["rel"])
    return FileResponse(studio.thumbnail(cfg, ref, request.path_params["version"]), media_type="image/png",
                        headers=IMMUTABLE, content_disposition_type="inline")


def download(request: Request):
    """/download/{shot}/quickart/vNNN.zip: frames, comp, OTIO, manifest, contact sheet and log, streamed."""
    rel = request.path_params["path"]
    head, _, version = rel.rpartition("/")
    shot_rel, _, tail = head.rpartition("/")
    if tail != studio.OUTPUT_DIR or not version.endswith(".zip"):
        raise studio.NotFound(f"{rel}: download a version as {{shot}}/quickart/vNNN.zip")
    ref = studio.shot_ref(_web(request).cfg, shot_rel)
    version = version[:-4]
    entries = studio.version_zip_files(ref, version)
    name = f"{ref.id.shot}_{version}.zip"
    return StreamingResponse(studio.stream_zip(ref.root, entries), media_type="application/zip",
                             headers={"Content-Disposition": f'attachment; filename="{name}"'})


# -- write actions ---------------------------------------------------------------------------------

def act_on_job(web: WebState, job_id: int, action: str, body: dict):
    """A write action on a job through the queue (in a worker thread: the queue blocks)."""
    jq = web.queue()
    if action == "retry":
        return rerun.retry_job(web.cfg, jq, job_id, str(body.get("from_stage") or "") or None)
    if action == "cancel":
        return jq.cancel(job_id)
    if action == "priority":
        try:
            return jq.set_priority(job_id, int(body.get("priority")))
        except (TypeError, ValueError):
            raise QuickArtError("priority: a whole number") from None
    raise studio.NotFound(f"no action {action!r}; retry, cancel or priority")


async def job_action(request: Request):
    web = _web(request)
    require_writer(web, request)
    job_id = _int(request.path_params["id"])
    action = request.path_params["action"]
    body = await _json_body(request)
    job = await run_in_threadpool(act_on_job, web, job_id, action, body)
    log.info("action=web_%s job=%s state=%s", action, job.id, job.state.value)
    return JSONResponse(job_view(job, studio.shot_rel(web.cfg, job.shot)))


async def upload(request: Request):
    """Keys for a shot: multipart files (one zip, or PNGs), checked like a zip drop on the share."""
    web = _web(request)
    cfg = web.cfg
    require_writer(web, request)
    ref = studio.shot_ref(cfg, request.path_params["rel"])
    limit = cfg.web.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is None:
        raise HTTPException(411, "uploads need a Content-Length")
    if not declared.isdigit() or int(declared) > limit:
        raise TooLarge(f"upload of {declared} bytes is larger than web.max_upload_bytes ({limit:,})")
    limited = Request(request.scope, _limited_receive(request.receive, limit))
    with tempfile.TemporaryDirectory(prefix="quickart-upload-") as tmp:
        form = await limited.form(max_files=cfg.drop.max_zip_files, max_fields=10)
        try:
            files = []
            for i, item in enumerate(form.getlist("files")):
                if isinstance(item, str):
                    continue
                path = Path(tmp) / f"{i:05d}"
                with open(path, "wb") as out:
                    while chunk := await item.read(1 << 20):
                        out.write(chunk)
                files.append((item.filename or "", path))
        finally:
            await form.close()
        result = await run_in_threadpool(studio.accept_upload, cfg, ref, files)
    log.info("action=web_upload shot=%s files=%s placed=%s", ref.id, result["files"], ",".join(result["placed"]))
    return JSONResponse(result, status_code=201)


async def clear_uploads(request: Request):
    """Remove the page's own uploads of a shot (never the artist's keys): undoes a bad upload."""
    web = _web(request)
    require_writer(web, request)
    ref = studio.shot_ref(web.cfg, request.path_params["rel"])
    return JSONResponse(await run_in_threadpool(studio.clear_uploads, web.cfg, ref))


# -- the shot browser and the job panel (issue 24: the web page as a review tool) ----------------------

#: the outbox's delivery states as the shot browser says them
DELIVERY_STATES = {"pending": "waiting", "done": "delivered", "failed": "failed"}
#: the most of a job log one tail answer carries (the page asks again for the rest)
LOG_TAIL_BYTES = 1 << 20


def shot_entry(cfg: Config, row: dict, tracker: dict | None = None) -> dict:
    """One shot of the browser (`reads.list_shots`'s row): where its page and thumbnail are, its newest
    job, newest version, that version's approval and tracker state. `tracker` is the tracker's own status
    of the shot's newest version it has read back (tracker_status.latest_by_shot; its "version" says which;
    None until a tracker reads statuses back); `delivery` the outbox's state of the version."""
    shot = ShotId(row["show"], row["seq"], row["name"])
    rel = studio.shot_rel(cfg, shot)  # from the name, not a node's stored path
    version = f"v{row['version']:03d}" if row["version"] else None
    job = None if row["last_job"] is None else {
        "id": row["last_job"], "state": row["job_state"], "stage": row["current_stage"],
        "progress": row["progress"], "error": row["error"]}
    approval = None if row["approval"] is None else {
        "state": row["approval"], "label": reviews.STATES.get(row["approval"], row["approval"]),
        "author": row["approval_author"], "at": _utc_text(row["approval_at"])}
    delivery = None if row["delivery_state"] is None else {
        "state": DELIVERY_STATES.get(row["delivery_state"], row["delivery_state"]),
        "tracker": row["delivery_tracker"], "attempts": row["delivery_attempts"], "error": row["delivery_error"]}
    return {"shot": str(shot), "show": shot.show, "seq": shot.seq, "name": shot.shot, "rel": rel,
            "last_job": row["last_job"], "version": version,
            "thumb": f"/thumbs/{rel}/{version}.png" if version else None,  # made when the browser first asks
            "job": job, "approval": approval, "delivery": delivery, "tracker": tracker}


def shots_data(web: WebState) -> list[dict]:
    with web.reader() as run:
        rows = reads.list_shots(run)
        tracked = tracker_status.latest_by_shot(run)
    return [shot_entry(web.cfg, row, tracked.get(f"{row['show']}/{row['seq']}/{row['name']}")) for row in rows]


def shots_page(request: Request):
    """/shots: every shot by show and sequence, filtered in the browser (the list is in the page)."""
    web = _web(request)
    web.feed.start()
    shots = shots_data(web)
    return web.templates.TemplateResponse(request, "shots.html", {
        "count": len(shots), "states": [s.value for s in JobState], "approvals": reviews.STATES, **writer(web, request),
        "initial": _script_json({"shots": shots, "seq": web.feed.seq, "epoch": web.feed.epoch})})


def api_shots(request: Request):
    return JSONResponse(shots_data(_web(request)))


def api_shots_one(request: Request):
    """/api/shots/{shot folder}: one shot's row of the browser, for a page that learns of a new shot from the
    live feed. Read from the database by the shot's name (its folder may not exist yet, or be another node's)."""
    web = _web(request)
    rel = request.path_params["rel"]
    shot = web.cfg.naming_rules.parse_shot_path(rel)
    if shot is None:
        raise studio.NotFound(f"{rel} is not a shot folder")
    with web.reader() as run:
        rows = reads.list_shots(run, shot)
        tracked = tracker_status.of_shot(run, shot) if rows else {}
    if not rows:
        raise studio.NotFound(f"no shot {shot} in the queue")
    return JSONResponse(shot_entry(web.cfg, rows[0], tracked[max(tracked)] if tracked else None))


def log_tail(fh, name: str, offset: int) -> Response:
    """The job log's (`fh`, open for binary reading) whole lines from byte `offset` on, for a page that
    follows it: X-Log-From says where the text starts (0 when the offset is past the end: another file),
    X-Log-Next what to ask for next, X-Log-File which file it is (a published job's log moves from staging
    into its version folder)."""
    size = fh.seek(0, os.SEEK_END)
    start = offset if 0 <= offset <= size else 0
    fh.seek(start)
    data = fh.read(min(size - start, LOG_TAIL_BYTES))
    end = data.rfind(b"\n") + 1  # a line being written is sent once it is whole
    return Response(data[:end].decode("utf-8", errors="replace"), media_type="text/plain; charset=utf-8",
                    headers={"X-Log-From": str(start), "X-Log-Next": str(start + end), "X-Log-File": name,
                             "Cache-Control": "no-store"})


def _utc_text(when) -> str | None:
    return when.isoformat(timespec="seconds") + "Z" if when else None


# -- the shot page as a review tool (issue 24): review badges of every version, the OTIO timeline ------

def shot_reviews(request: Request):
    """{versions: {vNNN: {approval, notes, tracker}}}: every reviewed or tracked version's badges for the
    shot page's version list, in two queries (a version with neither is absent)."""
    web = _web(request)
    ref = studio.shot_ref(web.cfg, request.path_params["rel"])
    with web.reader() as run:
        found = reviews.shot_summaries(run, ref.id)
        tracked = tracker_status.of_shot(run, ref.id)
    versions = {n: {**found.get(n, {}), "tracker": tracked.get(n)} for n in sorted(found.keys() | tracked.keys())}
    return JSONResponse({"versions": {f"v{n:03d}": data for n, data in versions.items()}})


def version_timeline(request: Request):
    """/timeline/{shot}/vNNN.otio: the version's OTIO timeline, read through `studio.open_inside` (a link
    out of the studio is never opened), as a download; `?view=1` shows it as plain text."""
    web = _web(request)
    ref = studio.shot_ref(web.cfg, request.path_params["rel"])
    version = request.path_params["version"]
    path = studio.version_otio(ref, version)
    if path is None:
        raise studio.NotFound(f"{ref.id} {version} has no OTIO timeline")
    if request.query_params.get("view"):
        return inside_file(ref, path, "text/plain; charset=utf-8", None)
    return inside_file(ref, path, "application/json", "attachment")


# -- errors: one sentence, never a traceback ----------------------------------------------------------

def sentence(cfg: Config, exc: Exception) -> str:
    """The error's message with the studio root's path taken out."""
    root = str(cfg.root.resolve())
    return str(exc).replace(root + "/", "").replace(root, "studio root")


async def on_error(request: Request, exc: Exception):
    if isinstance(exc, HTTPException):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    status = 500
    if isinstance(exc, QuickArtError):
        status = (403 if isinstance(exc, Forbidden) else 413 if isinstance(exc, TooLarge)
                  else 404 if isinstance(exc, (studio.NotFound, studio.NotInStudio, JobNotFound))
                  else 409 if isinstance(exc, InvalidTransition) else 400)
        return JSONResponse({"error": sentence(_web(request).cfg, exc)}, status_code=status)
    log.error("action=web_error path=%s error=%s", request.url.path, exc, exc_info=exc)
    return JSONResponse({"error": "internal error; the log of the web server has the details"}, status_code=500)


ROUTES = [
    Route("/", farm_page),
    Route("/shots/{rel:path}", shot_page),
    Route("/api/farm", api_farm),
    Route("/api/events", events),
    Route("/api/shots", api_shots),
    Route("/api/shots/{rel:path}", api_shots_one),
    Route("/api/jobs/{id}", api_job),
    Route("/api/jobs/{id}/log", api_job_log),
    Route("/api/jobs/{id}/{action}", job_action, methods=["POST"]),
    Route("/api/shot/{rel:path}/versions/{version}/reviews", version_reviews, methods=["GET", "POST"]),
    Route("/api/shot/{rel:path}/versions/{version}/{what}", api_version_text),
    Route("/api/shot/{rel:path}/versions/{version}", api_version),
    Route("/api/shot/{rel:path}/upload", upload, methods=["POST"]),
    Route("/api/shot/{rel:path}/clear-uploads", clear_uploads, methods=["POST"]),
    Route("/api/shot/{rel:path}", api_shot),
    Route("/thumbs/{rel:path}/{version}.png", thumb),
    Route("/files/{path:path}", files),
    Route("/download/{path:path}", download),
    Route("/shots", shots_page),
    Route("/api/reviews/{rel:path}", shot_reviews),
    Route("/timeline/{rel:path}/{version}.otio", version_timeline),
    Mount("/static", StaticFiles(directory=str(HERE / "static")), name="static"),
]


def create_app(cfg: Config, feed_interval: float = 0.25) -> Starlette:
    """The routes, the middleware and the error handlers over one `WebState` (`app.state.web`)."""
    web = WebState.create(cfg, feed_interval)
    hosts = list(LOOPBACK) if cfg.web.host in LOOPBACK else ["*"]

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        web.feed.stop()  # its thread starts with the first page that listens

    app = Starlette(routes=ROUTES, middleware=[Middleware(SecurityHeaders),
                                               Middleware(TrustedHostMiddleware, allowed_hosts=hosts)],
                    exception_handlers={QuickArtError: on_error, HTTPException: on_error, Exception: on_error},
                    lifespan=lifespan)
    app.state.web = web
    app.state.feed = web.feed
    return app


#: what /files serves inline: images as themselves, text as plain text; anything else (HTML a
#: stage or a person put in a version, say) is a download, so no page of ours ever runs it
INLINE_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".webp": "image/webp",
                ".gif": "image/gif", ".json": "text/plain; charset=utf-8", ".otio": "text/plain; charset=utf-8",
                ".log": "text/plain; charset=utf-8", ".txt": "text/plain; charset=utf-8",
                ".csv": "text/plain; charset=utf-8", ".yaml": "text/plain; charset=utf-8"}
#: on every answer: no other site may frame the page (a framed farm is one click from a retry),
#: no browser guesses a type the server did not give
SECURITY_HEADERS = [(b"x-frame-options", b"DENY"), (b"content-security-policy", b"frame-ancestors 'none'"),
                    (b"x-content-type-options", b"nosniff"), (b"referrer-policy", b"same-origin")]


class SecurityHeaders:
    """Pure ASGI middleware (it does not buffer, so the live feed and zips still stream)."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def send_with_headers(message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    (name, value) for name, value in SECURITY_HEADERS if name not in names]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _served_as(name: str) -> tuple[str, str]:
    """(media type, content disposition) of a version file served by /files."""
    media_type = INLINE_TYPES.get(Path(name).suffix.lower())
    return (media_type, "inline") if media_type else ("application/octet-stream", "attachment")


def _is_loopback_host(host: str) -> bool:
    """Whether a Host header names this machine's loopback (`localhost:8750`, `[::1]:8750`, `127.0.0.1`)."""
    host = host.strip().lower()
    name = host[: host.index("]") + 1] if host.startswith("[") and "]" in host else host.rsplit(":", 1)[0]
    return name in LOOPBACK


def _login_name(uid: int) -> str | None:
    import pwd
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return None


def _script_json(data) -> str:
    """JSON to embed in a <script> element: no "</script>" can end it early."""
    return json.dumps(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _int(text: str) -> int:
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise studio.NotFound(f"{text[:40]!r} is not a number") from None
    if abs(value) > reads.MAX_ID:  # more than the database stores: nothing has that number
        raise studio.NotFound(f"{text[:40]}: no such number here (at most {reads.MAX_ID:,})")
    return value


async def _json_body(request: Request, limit: int = 4096) -> dict:
    raw = await request.body()
    if len(raw) > limit:
        raise TooLarge("request body too large for an action")
    try:
        data = json.loads(raw) if raw else {}
    except ValueError:
        raise QuickArtError("the body is not JSON") from None
    return data if isinstance(data, dict) else {}


def _limited_receive(receive, limit: int):
    """The request body, refused past `limit` bytes whatever Content-Length said."""
    seen = 0

    async def limited():
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise TooLarge(f"upload larger than web.max_upload_bytes ({limit:,})")
        return message

    return limited
