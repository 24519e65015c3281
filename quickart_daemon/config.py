"""config.yaml: loaded once into one validated, typed object; every default lives here.

Lookup order for every command: ``--config FILE``, else ``$QUICKART_CONFIG``, else
``./config.yaml``, else ``/etc/quickart/config.yaml``. Relative paths in the file are
relative to the file's own folder, so a config works wherever it is started from.
A wrong key or value is one line naming the key, and nothing starts.
"""

from __future__ import annotations

import functools
import os
import socket
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import ConfigError, quoted
from .naming import Naming
from .yamlfile import parse_yaml, read_yaml_text

SYSTEM_CONFIG = Path("/etc/quickart/config.yaml")


#: frames per second, in config.yaml and shot.yaml: finite and within what editorial takes
#: (an infinite or 1e-300 fps gives OTIO times like RationalTime(inf, inf) in the shared sequence timeline)
Fps = Annotated[float, Field(ge=1, le=1000, allow_inf_nan=False)]


class _Section(BaseModel):
    # extra="forbid": a misspelt key is an error, never silently ignored
    model_config = ConfigDict(extra="forbid", frozen=True)


class NamingConfig(_Section):
    shot_path: str = "{show}/{seq}/{shot}"
    key_file: str = "{shot}_{layer}.{frame}.png"
    key_file_single: str = "{shot}.{frame}.png"
    output_file: str = "{shot}_{layer}.{frame}.png"
    comp_file: str = "{shot}.{frame}.png"
    frame_padding: int = Field(4, ge=1, le=8)


class DropConfig(_Section):
    settle_seconds: float = Field(5.0, ge=0)
    require_marker: bool = False
    max_zip_bytes: int = Field(2 * 1024**3, gt=0)
    max_zip_files: int = Field(10_000, gt=0)


class WatchConfig(_Section):
    mode: Literal["auto", "native", "polling"] = "auto"
    poll_interval: float = Field(2.0, gt=0)
    rescan_seconds: float = Field(60.0, gt=0)


class TimingConfig(_Section):
    default: int = Field(2, ge=1, le=12)
    hold_last: int | None = Field(None, ge=1)
    start_frame: int = Field(1001, ge=0)
    fps: Fps = 24.0


class LimitsConfig(_Section):
    """Bounds checked on a shot before anything is decoded or allocated (a typo in a frame number
    must fail in one line, not fill the node's memory)."""

    max_frames_between_keys: int = Field(1000, ge=1)
    max_frames_per_shot: int = Field(20_000, ge=1)
    max_hold_last: int = Field(1000, ge=1)
    max_keys_per_drop: int = Field(5000, ge=1)
    # frame numbers end up as OTIO times and database integers: 99999999999999999999 is a typo, not a shot
    max_frame: int = Field(9_999_999, ge=1)
    # one input file, checked (stat) before it is read and copied into a job's snapshot: a PNG is about its
    # raw pixels at most, and the default max_image_pixels (1e8) of 8-bit RGBA are 400 MB
    max_file_bytes: int = Field(512 * 1024**2, ge=1)


class DatabaseConfig(_Section):
    url: str = "sqlite:///state/quickart.db"
    busy_timeout_ms: int = Field(10_000, ge=0)


class SlotsConfig(_Section):
    gpus: Literal["auto", "none"] | list[int] = "auto"
    jobs_per_gpu: int = Field(1, ge=1, le=16)
    cpu_jobs: int = Field(1, ge=1, le=64)


class RetryConfig(_Section):
    max_attempts: int = Field(3, ge=1)
    backoff_seconds: float = Field(30.0, ge=0)
    backoff_factor: float = Field(2.0, ge=1)
    max_backoff_seconds: float = Field(600.0, ge=0)
    # failures of one job on one node before that node stops claiming it (0: off, the default: on a single
    # node a blocked job would never run again; a farm sets 2 or 3)
    block_node_after: int = Field(0, ge=0)
    # finished jobs per shot whose input snapshot and stage outputs are kept (quickart/.kept/), so a
    # retry may start from a chosen stage; 0 keeps none (every retry starts from the first stage)
    keep_stage_outputs_of: int = Field(3, ge=0)


class QueueConfig(_Section):
    lease_seconds: float = Field(60.0, gt=0)
    heartbeat_seconds: float = Field(10.0, gt=0)
    poll_interval: float = Field(1.0, gt=0)


class WebConfig(_Section):
    """The studio web page (`quickart web`, or the daemon itself with serve: true)."""

    serve: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8750, ge=1, le=65535)
    token: str | None = Field(None, min_length=16)
    trust_local_user: bool = True  # the page's own user, in a browser on this machine, writes without the token
    local_users: list[str] = []  # more login names of this machine trusted the same way
    max_upload_bytes: int = Field(512 * 1024**2, gt=0)


class TrackerConfig(_Section):
    """The studio's production tracker (Kitsu built in; see quickart_daemon/trackers): every published
    version is delivered to it through the outbox. The password is never in this file: `password_file`
    (a file only the daemon's user reads) or `password_env` (an environment variable, e.g. set by systemd's
    EnvironmentFile=)."""

    kind: str = Field(min_length=1)  # a tracker installed in the entry-point group quickart.trackers
    url: str  # the tracker's API, e.g. https://kitsu.studio.example/api
    user: str | None = None
    password_file: Path | None = None
    password_env: str | None = Field(None, min_length=1)
    password: None = None  # refused with its own sentence (below); never stored
    # {show} -> the tracker's project name; a show not listed is looked up under its own name
    projects: dict[str, str] = {}
    task_type: str = "Compositing"  # the task a version is published to
    task_types: dict[str, str] = {}  # per pipeline name: another task type (e.g. {lighting-only: Lighting})
    status: str = "wfa"  # the task status a published version sets (Kitsu short name; "wfa": waiting for approval)
    approved_status: str = "done"  # the task status a version approved on the review page sets
    retake_status: str = "retake"  # ... and one marked "needs work" (a note alone leaves the status as it is)
    create_missing: bool = True  # make the sequence, the shot and the task when the tracker lacks them
    on_failure: bool = False  # also post a comment (status unchanged) when a job fails for good
    poll_seconds: float = Field(2.0, gt=0)  # how often the daemon looks for due deliveries
    retry_seconds: float = Field(30.0, ge=0)  # first wait after a failed delivery, doubled each time...
    max_retry_seconds: float = Field(3600.0, ge=0)  # ...up to this
    timeout_seconds: float = Field(60.0, gt=0)  # one request to the tracker
    # a movie of the comp (comp.mp4, made at publish when ffmpeg is installed) goes with the contact sheet
    movie: bool = True
    # let the tracker re-encode the movie (Kitsu: to its own size, seconds per clip on the server); ours is
    # already H.264 yuv420p, which browsers play as it is
    normalize_movie: bool = False
    # how often the daemon reads the versions' statuses back from the tracker (tracker_status.py); 0: never
    read_seconds: float = Field(60.0, ge=0)

    @field_validator("password", mode="before")
    @classmethod
    def _no_password(cls, value):
        if value is not None:
            raise ValueError("the password never goes in config.yaml: use password_file (a file only the "
                             "daemon's user can read) or password_env (an environment variable)")
        return value

    @field_validator("url")
    @classmethod
    def _http(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _one_password_source(self) -> "TrackerConfig":
        if self.password_file is not None and self.password_env is not None:
            raise ValueError("give password_file or password_env, not both")
        if self.user and self.password_file is None and self.password_env is None:
            raise ValueError("a user needs password_file or password_env")
        return self

    def task_type_for(self, pipeline: str) -> str:
        return self.task_types.get(pipeline, self.task_type)

    def project_for(self, show: str) -> str:
        return self.projects.get(show, show)

    def read_password(self) -> str:
        """The password from its file or variable; ValueError (one sentence, without the password) if absent."""
        if self.password_env is not None:
            value = os.environ.get(self.password_env)
            if not value:
                raise ValueError(f"tracker.password_env: the environment variable {self.password_env} is not set")
            return value
        if self.password_file is not None:
            try:
                return self.password_file.read_text().strip()
            except OSError as exc:
                raise ValueError(f"tracker.password_file: {self.password_file}: {exc.strerror}") from None
        return ""


class Config(_Section):
    root: Path = Path("studio")
    state_dir: Path = Path("state")
    node_name: str | None = None
    node_groups: list[str] = []  # groups this node belongs to (a shot or pipeline may require one)
    naming: NamingConfig = NamingConfig()
    drop: DropConfig = DropConfig()
    watch: WatchConfig = WatchConfig()
    timing: TimingConfig = TimingConfig()
    layers_order: list[str] = ["bg", "*", "fx"]
    pipeline: str = "default"
    pipelines_dir: Path = Path("pipelines")
    models_dir: Path = Path("models")
    database: DatabaseConfig = DatabaseConfig()
    slots: SlotsConfig = SlotsConfig()
    retry: RetryConfig = RetryConfig()
    queue: QueueConfig = QueueConfig()
    max_image_pixels: int = Field(100_000_000, gt=0)
    limits: LimitsConfig = LimitsConfig()
    web: WebConfig = WebConfig()
    tracker: TrackerConfig | None = None  # no tracker unless configured
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    #: the file this was loaded from (None for defaults); not a key in config.yaml
    source: Path | None = Field(None, exclude=True)

    @field_validator("layers_order")
    @classmethod
    def _one_star(cls, value: list[str]) -> list[str]:
        if value.count("*") > 1:
            raise ValueError("'*' (all other layers, alphabetical) may appear once")
        return value

    @property
    def node(self) -> str:
        return self.node_name or socket.gethostname()

    @property
    def naming_rules(self) -> Naming:
        """The naming templates, built once per naming section (the same object on every access)."""
        return _naming_rules(self.naming)


@functools.lru_cache(maxsize=16)
def _naming_rules(n: NamingConfig) -> Naming:
    # Building the templates costs ~30 us, and a page of 1,000 shots or the live feed asks once per shot.
    # Keyed by the (frozen, hashable) section rather than a functools.cached_property on Config: pydantic's
    # model_copy copies the instance dict, cache included, so a copy with another `naming` kept the old rules.
    return Naming(n.shot_path, n.key_file, n.key_file_single, n.output_file, n.comp_file, n.frame_padding)


def find_config(explicit: str | os.PathLike | None = None) -> Path | None:
    """The config file to use, by the documented lookup order; None when there is none."""
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise ConfigError(f"config file {path} does not exist")
        return path
    env = os.environ.get("QUICKART_CONFIG")
    if env:
        if not Path(env).is_file():
            raise ConfigError(f"QUICKART_CONFIG={env}: no such file")
        return Path(env)
    for candidate in (Path("config.yaml"), SYSTEM_CONFIG):
        if candidate.is_file():
            return candidate
    return None


def load_config(explicit: str | os.PathLike | None = None) -> Config:
    """Find, read and validate the config; raises ConfigError with one line naming the key."""
    path = find_config(explicit)
    if path is None:
        raise ConfigError("no config found: pass --config FILE, set QUICKART_CONFIG, or create ./config.yaml")
    return parse_config(read_yaml_text(path, ConfigError), path)


def parse_config(text: str, path: Path) -> Config:
    data = parse_yaml(text, path, ConfigError) or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings")
    data.pop("source", None)
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = "unknown setting (check the spelling against config.yaml's comments)" if err["type"] == "extra_forbidden" else err["msg"]
        # never echo a secret, nor a whole section (it may hold one)
        secret = any(word in key for word in ("password", "token", "secret"))
        got = "" if err["type"] == "extra_forbidden" or secret or isinstance(err.get("input"), dict) \
            else f" (got {quoted(err.get('input'))})"
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, "):]
        raise ConfigError(f"{path}: {key}: {msg}{got}") from None
    cfg = _resolve_paths(cfg, path.resolve().parent).model_copy(update={"source": path.resolve()})
    try:
        cfg.naming_rules  # templates are checked here so a bad one stops the daemon at start
    except Exception as exc:
        raise ConfigError(f"{path}: {exc}") from None
    return cfg


def _resolve_paths(cfg: Config, base: Path) -> Config:
    def rel(p: Path) -> Path:
        return p if p.is_absolute() else (base / p)

    url = cfg.database.url
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////") and ":memory:" not in url:
        url = "sqlite:///" + str(rel(Path(url[len("sqlite:///"):])))
    return cfg.model_copy(update={
        "root": rel(cfg.root), "state_dir": rel(cfg.state_dir), "pipelines_dir": rel(cfg.pipelines_dir),
        "models_dir": rel(cfg.models_dir), "database": cfg.database.model_copy(update={"url": url}),
        "tracker": None if cfg.tracker is None else cfg.tracker.model_copy(update={
            "password_file": None if cfg.tracker.password_file is None else rel(cfg.tracker.password_file)}),
    })
