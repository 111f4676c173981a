"""Every setting of the service: read from the environment once, validated at start-up, frozen.

`SETTINGS` is the single table of knobs: each row names its variable, the group and field it fills in
`Settings`, its default and its meaning; the README's configuration table is generated from it. Rows
marked `advanced` are timing internals, documented apart: the defaults are what the figures were
measured with.
"""

import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any


class ConfigError(ValueError):
    """A setting has a value the service cannot run with; the message names the variable."""


def _dns_label(value: str) -> str:
    name = value.strip()
    if not re.fullmatch(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?", name):
        raise ValueError("must be a lowercase DNS label (a Kubernetes namespace or container name)")
    return name


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


def _name_list(value: str) -> tuple[str, ...]:
    return tuple(_dns_label(part) for part in value.split(",") if part.strip())


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


def _proxy_fix(value: str) -> dict[str, int]:
    """`x_for=1,x_proto=1,x_host=1` (werkzeug ProxyFix arguments) or a bare number of proxies."""
    if not value.strip():
        return {}
    if value.strip().isdigit():
        hops = int(value)
        return {"x_for": hops, "x_proto": hops, "x_host": hops, "x_port": hops, "x_prefix": hops}
    counts = {}
    for part in value.split(","):
        key, _, number = part.partition("=")
        key = key.strip()
        if key not in ("x_for", "x_proto", "x_host", "x_port", "x_prefix"):
            raise ValueError(f"unknown ProxyFix argument {key!r}")
        counts[key] = _non_negative_int(number)
    return counts


def database_url(value: str) -> str:
    """Normalise a PostgreSQL URL to psycopg2 (SQLAlchemy 2.1 maps bare postgresql:// to psycopg 3)."""
    url = value.strip()
    if not url:
        return ""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix) :]
    if not re.match(r"^[a-z][a-z0-9+]*://", url):
        raise ValueError("must be a URL such as postgresql://user:password@host:5432/dbname")
    return url


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = ""
    pool_size: int = 10
    pool_timeout: float = 5.0
    auto_migrate: bool = True


@dataclass(frozen=True)
class ClusterSettings:
    namespace: str = "argo"
    container: str = "main"
    more_containers: tuple[str, ...] = ()
    connect_timeout: float = 3.0
    read_timeout: float = 10.0
    stream_idle_timeout: float = 60.0

    @property
    def containers(self) -> tuple[str, ...]:
        """Every container captured: `container` first, then `more_containers`."""
        return (self.container,) + tuple(
            name for name in self.more_containers if name != self.container
        )


@dataclass(frozen=True)
class AccessSettings:
    api_token: str = ""
    user_header: str = ""
    allowed_origins: tuple[str, ...] = ()
    proxy_fix: Mapping[str, int] = field(default_factory=dict)  # werkzeug ProxyFix arguments


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


@dataclass(frozen=True)
class Settings:
    """Everything the service is configured with, in groups."""

    database: DatabaseSettings = DatabaseSettings()
    cluster: ClusterSettings = ClusterSettings()
    access: AccessSettings = AccessSettings()
    tails: TailSettings = TailSettings()
    capture: CaptureSettings = CaptureSettings()


@dataclass(frozen=True)
class Setting:
    env: str
    group: str
    field: str
    default: str
    parse: Callable[[str], Any]
    help: str
    advanced: bool = False


SETTINGS = (
    Setting(
        "DATABASE_URL",
        "database",
        "url",
        "",
        database_url,
        "Database URL. `postgresql://` URLs use psycopg2. Unset: an SQLite file in `instance/` "
        "(quick local runs only).",
    ),
    Setting(
        "TASKLOGS_NAMESPACE",
        "cluster",
        "namespace",
        "argo",
        _dns_label,
        "Namespace of the Argo Workflows and their pods.",
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
        "TASKLOGS_API_TOKEN",
        "access",
        "api_token",
        "",
        _text,
        "When set, every API request needs `Authorization: Bearer <token>` (WebSockets may pass "
        "`?access_token=<token>` instead, since browsers cannot set headers there).",
    ),
    Setting(
        "TASKLOGS_AUTH_USER_HEADER",
        "access",
        "user_header",
        "",
        _header_name,
        "When set (e.g. `X-Forwarded-User`), requests carrying this header from the authenticating proxy "
        "are let in; without a token configured, requests without it are refused.",
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
        "TASKLOGS_PROXY_FIX",
        "access",
        "proxy_fix",
        "",
        _proxy_fix,
        "Trust forwarded headers from this many proxies (`1`) or per header (`x_for=1,x_proto=1`).",
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
    # Timing internals: the defaults are what the benchmarks were measured with.
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
    groups: dict[str, dict[str, Any]] = {group.name: {} for group in fields(Settings)}
    for setting in SETTINGS:
        raw = overrides.get(setting.env, environ.get(setting.env, setting.default))
        try:
            groups[setting.group][setting.field] = (
                setting.parse(raw) if isinstance(raw, str) else raw
            )
        except ValueError as error:
            raise ConfigError(f"{setting.env}={raw!r}: {error}") from None
    return Settings(
        database=DatabaseSettings(**groups["database"]),
        cluster=ClusterSettings(**groups["cluster"]),
        access=AccessSettings(**groups["access"]),
        tails=TailSettings(**groups["tails"]),
        capture=CaptureSettings(**groups["capture"]),
    )


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


if __name__ == "__main__":
    print(markdown_table())
    print("\nAdvanced (timing internals):\n")
    print(markdown_table(advanced=True))
