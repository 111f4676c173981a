"""Every setting of the service: read from the environment once, validated at start-up, frozen.

`SETTINGS` is the single table of knobs: each row names its variable, the group and field it fills in
`Settings`, its default and its meaning; the README's configuration table is generated from it. Rows
marked `advanced` are timing internals, documented apart: the defaults are what the figures were
measured with.
"""

import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import timedelta
from typing import Any

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from .redaction import HIDDEN, redact, redact_url

AUTH_MODES = ("kubernetes", "proxy", "token", "none")
LOG_FORMATS = ("text", "json")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
# Variables that were replaced: setting one stops start-up with the way forward.
REMOVED = {
    "TASKLOGS_PROXY_FIX": "replaced by TASKLOGS_TRUSTED_PROXIES (the addresses or CIDRs of the proxies "
    "whose X-Forwarded-For and X-Forwarded-Proto are believed)",
}


class ConfigError(ValueError):
    """A setting has a value the service cannot run with; the message names the variable."""


def _dns_label(value: str) -> str:
    name = value.strip()
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name):
        raise ValueError("must be a lowercase DNS label (a Kubernetes namespace or container name)")
    return name


def _configmap_key(value: str) -> tuple[str, str, str] | None:
    """`namespace/configmap/key`: a ConfigMap's key in a namespace (empty: none)."""
    if not value.strip():
        return None
    parts = value.strip().split("/")
    if len(parts) != 3 or not all(parts):
        raise ValueError("must be namespace/configmap/key")
    namespace, configmap, key = parts
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?", configmap):
        raise ValueError("the ConfigMap name must be a Kubernetes object name")
    if not re.fullmatch(r"[-._a-zA-Z0-9]{1,253}", key):
        raise ValueError("the key must be a ConfigMap key (letters, digits, '-', '_', '.')")
    return _dns_label(namespace), configmap, key


def _positive_float(value: str) -> float:
    number = float(value)
    if number <= 0:
        raise ValueError("must be greater than 0")
    return number


def _non_negative_float(value: str) -> float:
    number = float(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise ValueError("must be 0 or more")
    return number


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be 1 or more")
    return number


def _boolean(value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _text(value: str) -> str:
    return value.strip()


_AGE_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_age(value: str) -> timedelta:
    """`30d`, `12h`, `90m`, `2w` as a timedelta."""
    match = re.fullmatch(r"(\d+)([smhdw])", value.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError("use a positive number and a unit: s, m, h, d or w (e.g. 30d)")
    return timedelta(**{_AGE_UNITS[match.group(2)]: int(match.group(1))})


def _retention(value: str) -> timedelta | None:
    """An age such as `30d`, or unset: keep every log."""
    return parse_age(value) if value.strip() else None


def _name_list(value: str) -> tuple[str, ...]:
    return tuple(_dns_label(part) for part in value.split(",") if part.strip())


def _namespaces(value: str) -> tuple[str, ...]:
    """`*` (every namespace) or comma-separated namespace names."""
    if value.strip() == "*":
        return ("*",)
    return _name_list(value)


def _header_name(value: str) -> str:
    name = value.strip()
    if name and not re.fullmatch(r"[A-Za-z0-9-]+", name):
        raise ValueError("must be an HTTP header name")
    return name


def _origin_list(value: str) -> tuple[str, ...]:
    origins = tuple(part.strip().rstrip("/") for part in value.split(",") if part.strip())
    for origin in origins:
        if origin != "*" and not re.fullmatch(r"https?://[^/\s]+", origin):
            raise ValueError(f"{origin!r} is not an origin such as https://ui.example.com")
    return origins


def _auth_mode(value: str) -> str:
    mode = value.strip().lower()
    if mode and mode not in AUTH_MODES:
        raise ValueError(
            f"must be one of {', '.join(AUTH_MODES)} (or unset: loopback clients only)"
        )
    return mode


def _log_format(value: str) -> str:
    name = value.strip().lower()
    if name not in LOG_FORMATS:
        raise ValueError(f"must be one of {', '.join(LOG_FORMATS)}")
    return name


def _log_level(value: str) -> str:
    name = value.strip().upper()
    if name not in LOG_LEVELS:
        raise ValueError(f"must be one of {', '.join(LOG_LEVELS)}")
    return name


def _port(value: str) -> int:
    number = int(value)
    if not 0 <= number < 65536:
        raise ValueError("must be a port from 1 to 65535, or 0 for none")
    return number


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(value: str) -> tuple[Network, ...]:
    """`10.0.0.0/8,192.0.2.7,::1`: addresses or CIDRs."""
    networks = []
    for part in (part.strip() for part in value.split(",")):
        if part:
            try:
                networks.append(ipaddress.ip_network(part, strict=False))
            except ValueError:
                raise ValueError(
                    f"{part!r} is not an IP address or a CIDR such as 10.0.0.0/8"
                ) from None
    return tuple(networks)


URL_SCHEMES = {
    "postgres": "postgresql+psycopg2",
    "postgresql": "postgresql+psycopg2",
    "postgresql+psycopg2": "postgresql+psycopg2",
    "sqlite": "sqlite",
}


def database_url(value: str) -> str:
    """Check a database URL and normalise PostgreSQL to psycopg2 (SQLAlchemy 2.1 maps a bare
    postgresql:// to psycopg 3). The errors never quote the value: it holds the password."""
    url = value.strip()
    if not url:
        return ""
    scheme, separator, rest = url.partition("://")
    if not separator or not re.fullmatch(r"[a-z][a-z0-9+]*", scheme):
        raise ValueError("must be a URL such as postgresql://user:password@host:5432/dbname")
    if scheme not in URL_SCHEMES:
        raise ValueError(
            f"the scheme {scheme!r} is not served: use postgresql:// (or sqlite:/// for local runs)"
        )
    url = f"{URL_SCHEMES[scheme]}://{rest}"
    try:
        port = make_url(url).port
    except (ArgumentError, ValueError):
        raise ValueError(
            "cannot be read as a URL: check the port, and percent-encode @ : / # ? in the user "
            "name and password"
        ) from None
    if port is not None and not 0 < port < 65536:
        raise ValueError("the port must be between 1 and 65535")
    return url


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""
    pool_size: int = 10
    pool_timeout: float = 5.0
    auto_migrate: bool = True
    retention: timedelta | None = None  # TASKLOGS_RETENTION; None: keep every log
    partitions_ahead: int = 3
    upkeep_interval: float = 3600.0


@dataclass(frozen=True)
class ClusterSettings:
    namespace: str = "argo"
    more_namespaces: tuple[str, ...] = ()  # TASKLOGS_NAMESPACES: names, or ("*",) for all
    container: str = "main"
    more_containers: tuple[str, ...] = ()
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    stream_idle_timeout: float = 60.0
    max_workflow_mb: float = 64.0
    not_found_ttl: float = 5.0
    artifact_repository: tuple[str, str, str] | None = None  # (namespace, configmap, key)
    max_artifact_mb: float = 256.0

    @property
    def max_artifact_bytes(self) -> int:
        """Most bytes an archived log may have (inflated, when gzipped)."""
        return int(self.max_artifact_mb * 2**20)

    @property
    def max_workflow_bytes(self) -> int:
        """Most bytes of JSON a Workflow's compressed nodes may inflate to."""
        return int(self.max_workflow_mb * 2**20)

    @property
    def all_namespaces(self) -> bool:
        """Whether every namespace of the cluster is served (`TASKLOGS_NAMESPACES=*`)."""
        return "*" in self.more_namespaces

    @property
    def namespaces(self) -> tuple[str, ...]:
        """The namespaces served by name: `namespace` first, then the others listed (with `*`, any
        other namespace is served too)."""
        return (self.namespace,) + tuple(
            name for name in self.more_namespaces if name not in ("*", self.namespace)
        )

    @property
    def namespaces_text(self) -> str:
        return "*" if self.all_namespaces else ",".join(self.namespaces)

    def serves(self, namespace: str) -> bool:
        return self.all_namespaces or namespace in self.namespaces

    @property
    def containers(self) -> tuple[str, ...]:
        """Every container captured: `container` first, then `more_containers`."""
        return (self.container,) + tuple(
            name for name in self.more_containers if name != self.container
        )


@dataclass(frozen=True)
class AccessSettings:
    mode: str = ""  # one of AUTH_MODES, or "" (unset): loopback clients only
    api_token: str = ""
    user_header: str = "X-Forwarded-User"
    groups_header: str = "X-Forwarded-Groups"
    trusted_proxies: tuple[Network, ...] = ()
    cache_seconds: float = 60.0
    allowed_origins: tuple[str, ...] = ()

    @property
    def denial_seconds(self) -> float:
        """Denials are remembered for a shorter time: a grant just given is seen soon."""
        return min(5.0, self.cache_seconds / 4)


@dataclass(frozen=True)
class TailSettings:
    max_tails: int = 1000
    max_tails_per_client: int = 50
    max_message: int = 4096
    idle_timeout: float = 3600.0
    send_timeout: float = 30.0
    ping_interval: float = 25.0
    viewer_queue: int = 1000
    frame_chars: int = 1 << 20
    coalesce: float = 0.02


@dataclass(frozen=True)
class CaptureSettings:
    poll_interval: float = 1.0
    pause: float = 0.1
    linger: float = 10.0
    journal_interval: float = 0.1
    hurry_gap: float = 0.02
    max_unsaved_mb: float = 256.0
    collector_ttl: float = 4.0


@dataclass(frozen=True)
class ObservabilitySettings:
    log_level: str = "INFO"
    log_format: str = "text"  # one of LOG_FORMATS
    metrics_port: int = 8001  # the collector's /metrics; 0: none


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with, in groups."""

    database: DatabaseSettings = DatabaseSettings()
    cluster: ClusterSettings = ClusterSettings()
    access: AccessSettings = AccessSettings()
    tails: TailSettings = TailSettings()
    capture: CaptureSettings = CaptureSettings()
    observability: ObservabilitySettings = ObservabilitySettings()


@dataclass(frozen=True)
class Setting:
    env: str
    group: str
    field: str
    default: str
    parse: Callable[[str], Any]
    help: str
    advanced: bool = False
    shown: Callable[[str], str] = repr  # how a bad value appears in the error: secrets never do


def _hidden(value: str) -> str:
    return HIDDEN


def _shown_url(value: str) -> str:
    return repr(redact_url(value))


SETTINGS = (
    Setting(
        "DATABASE_URL",
        "database",
        "url",
        "",
        database_url,
        "Database URL. `postgresql://` URLs use psycopg2. Unset: an SQLite file in `instance/` "
        "(quick local runs only).",
        shown=_shown_url,
    ),
    Setting(
        "TASKLOGS_NAMESPACE",
        "cluster",
        "namespace",
        "argo",
        _dns_label,
        "The default namespace: what the routes without a namespace mean (always served).",
    ),
    Setting(
        "TASKLOGS_NAMESPACES",
        "cluster",
        "more_namespaces",
        "",
        _namespaces,
        "Every namespace served (by the API and the collector), comma-separated, or `*` for all of "
        "them (the collector then runs one cluster-wide watch); others answer 404 "
        "`namespace_not_served`. Unset: only `TASKLOGS_NAMESPACE`.",
    ),
    Setting(
        "TASKLOGS_CONTAINER",
        "cluster",
        "container",
        "main",
        _dns_label,
        "Container whose log is the task's log.",
    ),
    Setting(
        "TASKLOGS_CONTAINERS",
        "cluster",
        "more_containers",
        "",
        _name_list,
        "More containers to capture and serve beside `TASKLOGS_CONTAINER`, comma-separated "
        "(e.g. `init,wait` or a sidecar's name), each stored and served as its own log.",
    ),
    Setting(
        "TASKLOGS_KUBE_CONNECT_TIMEOUT",
        "cluster",
        "connect_timeout",
        "3",
        _positive_float,
        "Seconds to connect to the Kubernetes API.",
    ),
    Setting(
        "TASKLOGS_KUBE_READ_TIMEOUT",
        "cluster",
        "read_timeout",
        "10",
        _positive_float,
        "Seconds to wait for a Kubernetes API answer (whole-log reads, gets, lists).",
    ),
    Setting(
        "TASKLOGS_AUTH",
        "access",
        "mode",
        "",
        _auth_mode,
        "Who may read logs: `kubernetes` (the caller's bearer token, checked with a TokenReview, and "
        "RBAC `get pods/log` in the task's namespace, checked with a SubjectAccessReview), `proxy` "
        "(user and groups from an authenticating proxy in `TASKLOGS_TRUSTED_PROXIES`, then the same "
        "RBAC check), `token` (`TASKLOGS_API_TOKEN`), `none` (open). Unset: clients on loopback only "
        "(or `token` when `TASKLOGS_API_TOKEN` is set). See Access.",
    ),
    Setting(
        "TASKLOGS_MAX_WORKFLOW_MB",
        "cluster",
        "max_workflow_mb",
        "64",
        _positive_float,
        "Most megabytes a Workflow's `status.compressedNodes` may inflate to; a larger one (a gzip bomb) "
        "or a malformed status answers 502 `workflow_unreadable` for that task.",
    ),
    Setting(
        "TASKLOGS_ARTIFACT_REPOSITORY",
        "cluster",
        "artifact_repository",
        "",
        _configmap_key,
        "The workflow controller's default artifact repository, as `namespace/configmap/key` (e.g. "
        "`argo/workflow-controller-configmap/artifactRepository`): where archived logs are looked for "
        "when a workflow used that default. Unset: such logs are served with a note saying so.",
    ),
    Setting(
        "TASKLOGS_MAX_ARTIFACT_MB",
        "cluster",
        "max_artifact_mb",
        "256",
        _positive_float,
        "Most megabytes an archived log (Argo's `archiveLogs`, read when the pod is gone) may have, "
        "inflated; a larger one is served with a note and not stored.",
    ),
    Setting(
        "TASKLOGS_NOT_FOUND_TTL",
        "cluster",
        "not_found_ttl",
        "5",
        _non_negative_float,
        "Seconds a task id the cluster does not know (and the database does not hold) is answered 404 "
        "without asking the cluster again (0: ask every time).",
    ),
    Setting(
        "TASKLOGS_API_TOKEN",
        "access",
        "api_token",
        "",
        _text,
        "The static token of `TASKLOGS_AUTH=token`: every API request needs `Authorization: Bearer "
        "<token>` (WebSockets may pass `?access_token=<token>` instead, since browsers cannot set "
        "headers there).",
        shown=_hidden,
    ),
    Setting(
        "TASKLOGS_AUTH_USER_HEADER",
        "access",
        "user_header",
        "X-Forwarded-User",
        _header_name,
        "`TASKLOGS_AUTH=proxy`: the header holding the user the proxy authenticated (believed only "
        "from `TASKLOGS_TRUSTED_PROXIES`).",
    ),
    Setting(
        "TASKLOGS_AUTH_GROUPS_HEADER",
        "access",
        "groups_header",
        "X-Forwarded-Groups",
        _header_name,
        "`TASKLOGS_AUTH=proxy`: the header holding that user's groups, comma-separated.",
    ),
    Setting(
        "TASKLOGS_TRUSTED_PROXIES",
        "access",
        "trusted_proxies",
        "",
        _networks,
        "Comma-separated addresses or CIDRs of the proxies in front (`10.0.0.0/8`): only a request "
        "whose TCP peer is one of them has its `X-Forwarded-For`, `X-Forwarded-Proto` and proxy user "
        "headers believed.",
    ),
    Setting(
        "TASKLOGS_AUTH_CACHE_SECONDS",
        "access",
        "cache_seconds",
        "60",
        _non_negative_float,
        "Seconds a TokenReview or SubjectAccessReview answer is reused (denials: a quarter of it, "
        "at most 5 s; 0: ask every time). Keyed by a hash of the token, never the token.",
    ),
    Setting(
        "TASKLOGS_ALLOWED_ORIGINS",
        "access",
        "allowed_origins",
        "",
        _origin_list,
        "Comma-separated origins (`https://ui.example.com`) whose pages may open WebSockets; unset: only "
        "the service's own origin (requests without an Origin header, i.e. non-browser clients, pass).",
    ),
    Setting(
        "TASKLOGS_MAX_TAILS",
        "tails",
        "max_tails",
        "1000",
        _positive_int,
        "WebSocket tails one worker serves at once; more are refused with 503.",
    ),
    Setting(
        "TASKLOGS_MAX_TAILS_PER_CLIENT",
        "tails",
        "max_tails_per_client",
        "50",
        _positive_int,
        "WebSocket tails one client address may hold on one worker; more are refused with 429.",
    ),
    Setting(
        "TASKLOGS_WS_IDLE_TIMEOUT",
        "tails",
        "idle_timeout",
        "3600",
        _non_negative_float,
        "Seconds a tail may go without sending anything before it is closed with 1001 (0: never).",
    ),
    Setting(
        "TASKLOGS_WS_PING_INTERVAL",
        "tails",
        "ping_interval",
        "25",
        _positive_float,
        "Seconds between WebSocket pings, so proxies do not cut quiet tails.",
    ),
    Setting(
        "TASKLOGS_AUTO_MIGRATE",
        "database",
        "auto_migrate",
        "true",
        _boolean,
        "Create or upgrade the schema at start-up (under a PostgreSQL advisory lock).",
    ),
    Setting(
        "TASKLOGS_DB_POOL_SIZE",
        "database",
        "pool_size",
        "10",
        _positive_int,
        "Database connections kept per process.",
    ),
    Setting(
        "TASKLOGS_DB_POOL_TIMEOUT",
        "database",
        "pool_timeout",
        "5",
        _positive_float,
        "Seconds to wait for a free database connection before answering 503.",
    ),
    Setting(
        "TASKLOGS_LOG_LEVEL",
        "observability",
        "log_level",
        "INFO",
        _log_level,
        "Least severe log lines written: DEBUG, INFO, WARNING, ERROR or CRITICAL.",
    ),
    Setting(
        "TASKLOGS_LOG_FORMAT",
        "observability",
        "log_format",
        "text",
        _log_format,
        "`text`, or `json`: one JSON object per line (the app, gunicorn's access log, the collector), "
        "each with its `request_id` where a request is under way.",
    ),
    Setting(
        "TASKLOGS_METRICS_PORT",
        "observability",
        "metrics_port",
        "8001",
        _port,
        "The port of the collector's Prometheus `/metrics` (0: none). The web service serves "
        "`/metrics` on its own port.",
    ),
    Setting(
        "TASKLOGS_RETENTION",
        "database",
        "retention",
        "",
        _retention,
        "Keep a task's logs this long after its last update (`30d`, `12h`, `2w`), then drop them: "
        "on PostgreSQL whole day partitions at once, rows only where a partition still holds a newer "
        "task. Unset: keep everything (`flask --app wsgi prune --older-than` removes on demand).",
    ),
    Setting(
        "TASKLOGS_PARTITIONS_AHEAD",
        "database",
        "partitions_ahead",
        "3",
        _non_negative_int,
        "Days of `log_pages` partitions (PostgreSQL) created ahead of today; pages of a day without "
        "one go to the default partition until its day's is made.",
    ),
    # Timing internals: the defaults are what the benchmarks were measured with.
    Setting(
        "TASKLOGS_UPKEEP_INTERVAL",
        "database",
        "upkeep_interval",
        "3600",
        _positive_float,
        "Seconds between two rounds of upkeep in a process with an engine (the collector, a web "
        "worker with tails): partitions created ahead, and TASKLOGS_RETENTION applied.",
        True,
    ),
    Setting(
        "TASKLOGS_STREAM_IDLE_TIMEOUT",
        "cluster",
        "stream_idle_timeout",
        "60",
        _positive_float,
        "Seconds a follow stream may stay silent before it is re-opened (catches dead connections).",
        True,
    ),
    Setting(
        "TASKLOGS_POLL_INTERVAL",
        "capture",
        "poll_interval",
        "1",
        _positive_float,
        "Seconds between checks of workflow phases and of the journal, as a fallback to watches and "
        "notifications.",
        True,
    ),
    Setting(
        "TASKLOGS_TAIL_COALESCE",
        "tails",
        "coalesce",
        "0.02",
        _non_negative_float,
        "Seconds a live tail gathers new lines before sending them as one frame (0: send each read at once).",
        True,
    ),
    Setting(
        "TASKLOGS_JOURNAL_HURRY_GAP",
        "capture",
        "hurry_gap",
        "0.02",
        _non_negative_float,
        "Shortest gap (seconds) between two commits of text that viewers of other processes wait for.",
        True,
    ),
    Setting(
        "TASKLOGS_CAPTURE_PAUSE",
        "capture",
        "pause",
        "0.1",
        _non_negative_float,
        "Seconds a capture that nobody watches live (the collector's) lets new lines gather between reads: "
        "fewer wakeups per line; a watched capture never waits.",
        True,
    ),
    Setting(
        "TASKLOGS_JOURNAL_INTERVAL",
        "capture",
        "journal_interval",
        "0.1",
        _positive_float,
        "Seconds between commits of captured text to the journal (one transaction for every task).",
        True,
    ),
    Setting(
        "TASKLOGS_MAX_UNSAVED_MB",
        "capture",
        "max_unsaved_mb",
        "256",
        _positive_float,
        "Most captured text (millions of characters) one process holds in memory while the database is "
        "down; beyond it the captures pause and read on from where they stood once the database is back "
        "(the text waits in Kubernetes meanwhile).",
        True,
    ),
    Setting(
        "TASKLOGS_COLLECTOR_TTL",
        "capture",
        "collector_ttl",
        "4",
        _positive_float,
        "Seconds after its last heartbeat (one per poll interval) that a collector still counts as live: "
        "the tasks of a collector killed outright are taken over by the others after this long. More than "
        "TASKLOGS_POLL_INTERVAL.",
        True,
    ),
    Setting(
        "TASKLOGS_CAPTURE_LINGER",
        "capture",
        "linger",
        "10",
        _non_negative_float,
        "Seconds a task's capture keeps running after its last viewer left (a reconnect finds it warm).",
        True,
    ),
    Setting(
        "TASKLOGS_VIEWER_QUEUE",
        "tails",
        "viewer_queue",
        "1000",
        _positive_int,
        "Frames a WebSocket client may fall behind before it is closed with 4008 "
        "(it resumes with its cursor).",
        True,
    ),
    Setting(
        "TASKLOGS_FRAME_CHARS",
        "tails",
        "frame_chars",
        "1048576",
        _positive_int,
        "Most characters of log text in one WebSocket frame (a `lines` frame counts 48 more per line "
        "for its timestamp); a longer backlog or gap follows as several frames.",
        True,
    ),
    Setting(
        "TASKLOGS_WS_MAX_MESSAGE",
        "tails",
        "max_message",
        "4096",
        _positive_int,
        "Largest message (bytes) a client may send on a WebSocket; larger ones close it with 1009.",
        True,
    ),
    Setting(
        "TASKLOGS_WS_SEND_TIMEOUT",
        "tails",
        "send_timeout",
        "30",
        _positive_float,
        "Seconds one write to a WebSocket client may block (a client that stopped reading) before the "
        "connection is cut.",
        True,
    ),
)
SETTING_NAMES = frozenset(setting.env for setting in SETTINGS)


def load_config(
    environ: Mapping[str, str] | None = None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    """Read every setting from the environment, then `overrides` (by variable name: a string is parsed,
    any other value taken as it is); raise ConfigError naming the first bad variable."""
    environ = os.environ if environ is None else environ
    overrides = overrides or {}
    for name, why in REMOVED.items():
        if name in overrides or name in environ:
            raise ConfigError(f"{name} is no longer read: {why}")
    groups: dict[str, dict[str, Any]] = {group.name: {} for group in fields(Settings)}
    for setting in SETTINGS:
        raw = overrides.get(setting.env, environ.get(setting.env, setting.default))
        try:
            groups[setting.group][setting.field] = (
                setting.parse(raw) if isinstance(raw, str) else raw
            )
        except ValueError as error:
            raise ConfigError(redact(f"{setting.env}={setting.shown(raw)}: {error}")) from None
    return Settings(
        database=DatabaseSettings(**groups["database"]),
        cluster=ClusterSettings(**groups["cluster"]),
        access=_checked_access(AccessSettings(**groups["access"])),
        tails=TailSettings(**groups["tails"]),
        capture=_checked_capture(CaptureSettings(**groups["capture"])),
        observability=ObservabilitySettings(**groups["observability"]),
    )


def setting_value(name: str, environ: Mapping[str, str] | None = None) -> Any:
    """One setting read and checked on its own, for what must know it before the app is built (the log
    format, in wsgi.py and gunicorn.conf.py); ConfigError names the variable as `load_config` does."""
    environ = os.environ if environ is None else environ
    [setting] = [row for row in SETTINGS if row.env == name]
    raw = environ.get(name, setting.default)
    try:
        return setting.parse(raw)
    except ValueError as error:
        raise ConfigError(redact(f"{name}={setting.shown(raw)}: {error}")) from None


def _checked_capture(capture: CaptureSettings) -> CaptureSettings:
    if capture.collector_ttl <= capture.poll_interval:
        raise ConfigError(
            f"TASKLOGS_COLLECTOR_TTL={capture.collector_ttl:g} must be more than "
            f"TASKLOGS_POLL_INTERVAL={capture.poll_interval:g} (collectors beat once per poll interval)"
        )
    return capture


def _checked_access(access: AccessSettings) -> AccessSettings:
    """The combinations a mode needs; unset with a token configured means `token`."""
    if not access.mode and access.api_token:
        return replace(access, mode="token")
    if access.mode == "token" and not access.api_token:
        raise ConfigError(
            "TASKLOGS_AUTH=token needs TASKLOGS_API_TOKEN (the token callers present)"
        )
    if access.mode == "proxy" and not access.trusted_proxies:
        raise ConfigError(
            "TASKLOGS_AUTH=proxy needs TASKLOGS_TRUSTED_PROXIES (the addresses of the authenticating "
            "proxy: its user headers are believed from nowhere else)"
        )
    if access.mode in ("kubernetes", "proxy", "none") and access.api_token:
        raise ConfigError(
            f"TASKLOGS_API_TOKEN is only used with TASKLOGS_AUTH=token, not {access.mode}"
        )
    return access


def markdown_table(advanced: bool = False) -> str:
    """A README configuration table generated from SETTINGS (`python -m tasklogs.config`): the settings
    a user sets, or with `advanced` the timing internals."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [
        f"| `{s.env}` | {f'`{s.default}`' if s.default else '(unset)'} | {s.help} |"
        for s in SETTINGS
        if s.advanced == advanced
    ]
    return "\n".join(rows)


def rewrite_tables(readme: str) -> str:
    """`readme` with its two configuration tables replaced by the generated ones."""
    header = "| variable | default | meaning |"
    blocks, lines, out, index = (
        [markdown_table(), markdown_table(advanced=True)],
        readme.split("\n"),
        [],
        0,
    )
    while index < len(lines):
        if lines[index] == header and blocks:
            out.append(blocks.pop(0))
            while index < len(lines) and lines[index].startswith("|"):
                index += 1
            continue
        out.append(lines[index])
        index += 1
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    if sys.argv[1:2] == ["--write"]:  # python -m tasklogs.config --write README.md docs/...
        for path in sys.argv[2:]:
            with open(path, encoding="utf-8") as file:
                text = rewrite_tables(file.read())
            with open(path, "w", encoding="utf-8") as file:
                file.write(text)
        raise SystemExit(0)
    print(markdown_table())
    print("\nAdvanced (timing internals):\n")
    print(markdown_table(advanced=True))
