"""Kitsu (CGWire's Zou server), through gazu: a published version becomes a comment with a status and the
contact sheet as its preview, on the shot's task.

One delivery: log in; the project named for the show (`tracker.projects`, else the show's own name; it
must exist); the sequence and the shot, made with the version's frame range when missing
(`create_missing`, on by default), the shot's frame range brought up to date otherwise; the task of the
pipeline's task type (`task_types`, else `task_type`), made when missing; then one `publish_preview`:
the comment (version, job summary, a marker line), the status (`status`, "wfa" by default) and the
contact sheet PNG as preview, set as the shot's thumbnail. The task's comments are searched for the
marker first, so an event delivered once is never posted twice (the process may die after Kitsu took
it and before the outbox recorded it). When the version has a movie of its comp (comp.mp4, made at
publish with ffmpeg), it is a second preview of the same revision (`add_extra_preview`), kept as it is
unless `normalize_movie` (Kitsu needs ffprobe on its server to take a movie: without it the preview is
"broken").

A review of a version from the web page (event "review", reviews.py) is one comment on the same task: the
verdict, the author and the note, with the verdict's status (`approved_status`, "done"; `retake_status`,
"retake"); a note alone leaves the status as it is.

Reading back (`statuses`): per pass, a login, the task statuses, the task types, the tasks of each
(project, task type) that has delivered versions (one request each), and the comments of the tasks that
changed since the last pass (their status, last comment date or update time). A version's status is
the status of the newest comment about it: a comment carrying a QuickArt marker belongs to the version
it names (a review of v001 posted after v002 is about v001), any other to the newest version whose own
comment came before it; a task status set without a comment (the task's status differs from its newest
comment's) belongs to the newest version. A status counts as approved when Kitsu marks it done
(`is_done`) or it is `approved_status`.

Tested against a real Zou 1.0.97 with gazu 1.3.1 (tests/test_tracker.py).
"""

from __future__ import annotations

import functools
import logging
import re
from datetime import datetime

from . import DeliveryResult, StatusRequest, TrackerError, TrackerEvent, TrackerStatus

log = logging.getLogger("quickart.tracker.kitsu")


class KitsuTracker:
    name = "kitsu"

    def __init__(self, cfg):
        try:
            import gazu  # noqa: F401
        except ImportError:
            from ..errors import ConfigError
            raise ConfigError("tracker.kind kitsu needs gazu: pip install 'quickart[kitsu]' (gazu==1.3.1)") from None
        self.cfg = cfg
        # task id -> (what the task looked like, its comments): a task unchanged since the last read is not
        # asked for its comments again (the read-back's requests grow with the tasks that changed)
        self._comments: dict[str, tuple[tuple, list[dict]]] = {}

    def deliver(self, event: TrackerEvent) -> DeliveryResult:
        import gazu
        password = ""
        try:
            password = self.cfg.read_password()
            client = self._client()
            gazu.log_in(self.cfg.user or "", password, client=client)
            return self._deliver(gazu, client, event)
        except TrackerError as exc:
            return DeliveryResult(False, _clean(str(exc), password), exc.retryable)
        except ValueError as exc:  # the password's file or variable is missing: a person fixes it, then it goes
            return DeliveryResult(False, _clean(str(exc), password), True)
        except gazu.exception.AuthFailedException:
            return DeliveryResult(False, f"Kitsu refused the login of {self.cfg.user} (check the password "
                                         "file or variable)", True)
        except Exception as exc:  # connection refused, reset, timeouts, server errors: it may pass
            return DeliveryResult(False, _clean(_describe(exc, self.cfg), password), True)

    def check(self) -> DeliveryResult:
        """`quickart doctor`: log in and say so (the password is read as for a delivery, never shown)."""
        import gazu
        password = ""
        try:
            password = self.cfg.read_password()
            client = self._client()
            gazu.log_in(self.cfg.user or "", password, client=client)
            version = gazu.client.get_api_version(client=client)
            return DeliveryResult(True, f"logged in to Kitsu at {self.cfg.url} as {self.cfg.user} (Zou {version})")
        except ValueError as exc:
            return DeliveryResult(False, _clean(str(exc), password))
        except gazu.exception.AuthFailedException:
            return DeliveryResult(False, f"Kitsu at {self.cfg.url} refused the login of {self.cfg.user}")
        except Exception as exc:  # noqa: BLE001
            return DeliveryResult(False, _clean(_describe(exc, self.cfg), password))

    def _client(self):
        import gazu
        client = gazu.client.create_client(self.cfg.url)
        # requests has no session-wide timeout: a hung server must not hold the delivery loop forever
        client.session.request = functools.partial(_with_timeout, client.session.request, self.cfg.timeout_seconds)
        return client

    def _deliver(self, gazu, client, event: TrackerEvent) -> DeliveryResult:
        cfg = self.cfg
        project_name = cfg.project_for(event["show"])
        project = gazu.project.get_project_by_name(project_name, client=client)
        if project is None:
            raise TrackerError(f"Kitsu has no project named {project_name!r} for the show {event['show']} "
                               "(tracker.projects maps shows to projects)", retryable=False)
        sequence = gazu.shot.get_sequence_by_name(project, event["seq"], client=client)
        if sequence is None:
            self._may_create(f"sequence {event['seq']}", project_name)
            sequence = gazu.shot.new_sequence(project, event["seq"], client=client)
        shot = gazu.shot.get_shot_by_name(sequence, event["shot"], client=client)
        published = event.get("event", "published") == "published"
        frame_in, frame_out = event.get("frame_in"), event.get("frame_out")
        if shot is None:
            self._may_create(f"shot {event['seq']}/{event['shot']}", project_name)
            ranged = published and frame_in is not None
            shot = gazu.shot.new_shot(project, sequence, event["shot"],
                                      nb_frames=frame_out - frame_in + 1 if ranged else None,
                                      frame_in=frame_in if ranged else None, frame_out=frame_out if ranged else None,
                                      data={"fps": event.get("fps")}, client=client)
        elif published and frame_in is not None:
            self._update_range(gazu, client, shot, frame_in, frame_out)
        type_name = cfg.task_type_for(event.get("pipeline", ""))
        task_type = gazu.task.get_task_type_by_name(type_name, client=client)
        if task_type is None:
            raise TrackerError(f"Kitsu has no task type {type_name!r} (tracker.task_type / task_types)",
                               retryable=False)
        task = gazu.task.get_task_by_entity(shot, task_type, client=client)
        if task is None:
            self._may_create(f"{type_name} task of {event['seq']}/{event['shot']}", project_name)
            task = gazu.task.new_task(shot, task_type, client=client)
        refs = {"project": project["id"], "shot": shot["id"], "task": task["id"]}
        marker = event["marker"]
        for comment in gazu.task.all_comments_for_task(task, client=client):
            if marker in (comment.get("text") or ""):
                return DeliveryResult(True, f"already on Kitsu (comment {comment['id']})", refs=refs | {
                    "comment": comment["id"]})
        text = _comment(event, marker)
        if event.get("event") == "review":  # a review: a comment, with the verdict's status (a note: unchanged)
            status_name = event.get("status")
            status = gazu.task.get_task_status_by_short_name(status_name, client=client) if status_name \
                else task["task_status_id"]
            if status is None:
                raise TrackerError(f"Kitsu has no task status {status_name!r} (tracker.approved_status / "
                                   "retake_status)", retryable=False)
            comment = gazu.task.add_comment(task, status, text, client=client)
            return DeliveryResult(True, f"review of v{event['version']:03d} on Kitsu"
                                        + (f", status {status_name}" if status_name else ""),
                                  refs=refs | {"comment": comment["id"]})
        if not published:  # a failure: a comment, the task's status unchanged
            comment = gazu.task.add_comment(task, task["task_status_id"], text, client=client)
            return DeliveryResult(True, "failure posted", refs=refs | {"comment": comment["id"]})
        status_name = event.get("status") or cfg.status
        status = gazu.task.get_task_status_by_short_name(status_name, client=client)
        if status is None:
            raise TrackerError(f"Kitsu has no task status {status_name!r} (tracker.status)", retryable=False)
        preview, movie = event.get("contact_sheet"), event.get("movie")
        comment, preview_file = gazu.task.publish_preview(
            task, status, comment=text, preview_file_path=preview, set_thumbnail=bool(preview), client=client) \
            if preview else (gazu.task.add_comment(task, status, text, client=client), None)
        refs |= {"comment": comment["id"]}
        if preview_file:
            refs["preview"] = preview_file["id"]
        if movie:  # the same revision as the sheet (a second preview), or the revision itself without one
            movie_file = gazu.task.add_extra_preview(task, comment, preview_file, preview_file_path=movie,
                                                     normalize_movie=cfg.normalize_movie, client=client) \
                if preview_file else gazu.task.add_preview(task, comment, preview_file_path=movie,
                                                           normalize_movie=cfg.normalize_movie, client=client)
            refs["movie"] = movie_file["id"]
        return DeliveryResult(True, f"v{event['version']:03d} on Kitsu, status {status_name}"
                                    + (" with its movie" if movie else ""), refs=refs)

    # -- reading back ----------------------------------------------------------------------------

    def statuses(self, requests: list[StatusRequest]) -> list[TrackerStatus | None]:
        """Each delivered version's status on Kitsu (None where Kitsu has no task for it any more).
        TrackerError (one sentence, never the password) when Kitsu cannot be read."""
        import gazu
        password = ""
        try:
            password = self.cfg.read_password()
            client = self._client()
            gazu.log_in(self.cfg.user or "", password, client=client)
            return self._statuses(gazu, client, requests)
        except TrackerError:
            raise
        except ValueError as exc:
            raise TrackerError(_clean(str(exc), password)) from None
        except gazu.exception.AuthFailedException:
            raise TrackerError(f"Kitsu refused the login of {self.cfg.user}") from None
        except Exception as exc:  # noqa: BLE001
            raise TrackerError(_clean(_describe(exc, self.cfg), password)) from None

    def _statuses(self, gazu, client, requests: list[StatusRequest]) -> list[TrackerStatus | None]:
        known = {s["id"]: s for s in gazu.task.all_task_statuses(client=client)}
        types = {t["name"]: t for t in gazu.task.all_task_types(client=client)}
        asked: dict[str, list[int]] = {}  # task id -> indexes of the requests about it
        listings: set[tuple[str, str]] = set()  # (project id, task type name) to list the tasks of
        for i, request in enumerate(requests):
            refs = request.get("refs") or {}
            if refs.get("task") and refs.get("project"):
                asked.setdefault(refs["task"], []).append(i)
                listings.add((refs["project"], self.cfg.task_type_for(request.get("pipeline") or "")))
        tasks = {}
        for project_id, type_name in sorted(listings):
            if type_name in types:
                for task in gazu.task.all_tasks_for_project(project_id, types[type_name], client=client):
                    if task["id"] in asked:
                        tasks[task["id"]] = task
        found: list[TrackerStatus | None] = [None] * len(requests)
        for task_id, indexes in asked.items():
            task = tasks.get(task_id)
            if task is None:  # deleted on Kitsu (or moved to a type the config no longer names)
                self._comments.pop(task_id, None)
                continue
            stamp = (task.get("task_status_id"), task.get("last_comment_date"), task.get("updated_at"))
            seen = self._comments.get(task_id)
            if seen is None or seen[0] != stamp:
                seen = self._comments[task_id] = (stamp, gazu.task.all_comments_for_task(task, client=client))
            url = gazu.task.get_task_url(task, client=client)
            versions = {requests[i]["version"]: i for i in indexes}
            for version, (status_id, at) in _version_statuses(task, seen[1], versions, requests).items():
                status = known.get(status_id)
                if status is not None:
                    found[versions[version]] = TrackerStatus(
                        status=status["short_name"], name=status["name"], color=status["color"],
                        approved=bool(status.get("is_done")) or status["short_name"] == self.cfg.approved_status,
                        at=at, url=url)
        return found

    def _may_create(self, what: str, project: str) -> None:
        if not self.cfg.create_missing:
            raise TrackerError(f"Kitsu project {project!r} has no {what} (tracker.create_missing is off)",
                               retryable=False)

    @staticmethod
    def _update_range(gazu, client, shot: dict, frame_in: int, frame_out: int) -> None:
        data = dict(shot.get("data") or {})
        nb = frame_out - frame_in + 1
        if shot.get("nb_frames") == nb and str(data.get("frame_in")) == str(frame_in) \
                and str(data.get("frame_out")) == str(frame_out):
            return
        data.update(frame_in=frame_in, frame_out=frame_out)
        gazu.shot.update_shot({"id": shot["id"], "nb_frames": nb, "data": data}, client=client)


_MARKER = re.compile(r"\[quickart:[^\]]*?:v(\d+):")


def _version_statuses(task: dict, comments: list[dict], versions: dict[int, int],
                      requests: list[StatusRequest]) -> dict[int, tuple[str, datetime | None]]:
    """version -> (task status id, when it was set) for the versions of one task (see the module's docstring).
    `comments` as Kitsu lists them, newest first: its order is kept (the times it shows are whole seconds,
    so two comments of one second are told apart by their place only)."""
    ordered = list(reversed(comments))
    own = {(requests[i].get("refs") or {}).get("comment"): v for v, i in versions.items()}
    latest: dict[int, dict] = {}
    newest_posted = None  # the newest version whose own comment came before the comment at hand
    for comment in ordered:
        if comment["id"] in own:
            newest_posted = own[comment["id"]]
        named = _MARKER.search(comment.get("text") or "")
        version = int(named.group(1)) if named and int(named.group(1)) in versions else newest_posted
        if version is not None:
            latest[version] = comment  # oldest first: the last one kept is the newest
    out = {v: (c["task_status_id"], _when(c.get("created_at"))) for v, c in latest.items()}
    if newest_posted is not None and task.get("task_status_id") != ordered[-1].get("task_status_id"):
        # the task's status was set without a comment (an edit of the task itself): the newest version's
        out[newest_posted] = (task["task_status_id"], _when(task.get("updated_at")))
    return out


def _when(text: str | None) -> datetime | None:
    """Kitsu's times are UTC, as ISO text without a zone."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.rstrip("Z")).replace(tzinfo=None)
    except ValueError:
        return None


def _with_timeout(request, timeout: float, method, url, **kwargs):
    kwargs.setdefault("timeout", timeout)
    return request(method, url, **kwargs)


def _comment(event: TrackerEvent, marker: str) -> str:
    where = f"{event['show']}/{event['seq']}/{event['shot']}"
    if event.get("event") == "review":
        review = event.get("review") or {}
        verdict = {"approved": "approved", "needs_work": "needs work"}.get(review.get("state"), "note")
        head = f"QuickArt review of v{event['version']:03d} of {where}: {verdict}, by {review.get('author') or '?'}"
        return "\n\n".join(filter(None, [head, review.get("text"), f"[{marker}]"]))
    if event.get("event", "published") != "published":
        head = f"QuickArt job {event.get('job_id')} of {where} failed: {event.get('error') or '?'}"
    else:
        head = (f"QuickArt v{event['version']:03d} of {where}: frames {event['frame_in']}-{event['frame_out']} "
                f"at {event.get('fps', 24):g} fps, job {event.get('job_id')}, pipeline {event.get('pipeline')}")
    parts = [head]
    if event.get("summary"):
        parts.append(event["summary"])
    if event.get("version_path"):
        parts.append(f"Folder: {event['version_path']}")
    parts.append(f"[{marker}]")
    return "\n\n".join(parts)


def _describe(exc: Exception, cfg) -> str:
    """One line for a failed request (requests' messages are long: the first line, the error's type)."""
    import requests
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if isinstance(exc, requests.exceptions.Timeout):
        return f"Kitsu at {cfg.url} did not answer within {cfg.timeout_seconds:g} s"
    if isinstance(exc, requests.exceptions.ConnectionError):
        for known in ("Connection refused", "Connection reset", "Name or service not known",
                      "Temporary failure in name resolution", "Network is unreachable", "Remote end closed"):
            if known in text:
                return f"cannot reach Kitsu at {cfg.url}: {known.lower()}"
        return f"cannot reach Kitsu at {cfg.url}: {text[:200]}"
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def _clean(text: str, password: str) -> str:
    return text.replace(password, "***") if password else text
