"""Every setting of the service: read from the environment once, validated at start-up.

`SETTINGS` is the single table of knobs; the README's configuration table is checked against it.
"""
import os
import re
from dataclasses import dataclass
from typing import Any, Callable


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
    """Normalise a PostgreSQL URL to the psycopg2 driver (SQLAlchemy 2.1 maps bare postgresql:// to psycopg 3)."""
    url = value.strip()
    if not url:
        return ""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg2://" + url[len(prefix):]
    if not re.match(r"^[a-z][a-z0-9+]*://", url):
        raise ValueError("must be a URL such as postgresql://user:password@host:5432/dbname")
    return url


@dataclass(frozen=True)
class Setting:
    env: str
    key: str
    default: str
    parse: Callable[[str], Any]
    help: str


SETTINGS = (
    Setting("DATABASE_URL", "SQLALCHEMY_DATABASE_URI", "", database_url,
            "Database URL. `postgresql://` URLs use psycopg2. Unset: an SQLite file in `instance/` "
            "(quick local runs only)."),
    Setting("TASKLOGS_NAMESPACE", "TASKLOGS_NAMESPACE", "argo", _dns_label,
            "Namespace of the Argo Workflows and their pods."),
    Setting("TASKLOGS_CONTAINER", "TASKLOGS_CONTAINER", "main", _dns_label,
            "Container whose log is the task's log."),
    Setting("TASKLOGS_CONTAINERS", "TASKLOGS_CONTAINERS", "", _name_list,
            "More containers to capture and serve beside `TASKLOGS_CONTAINER`, comma-separated "
            "(e.g. `init,wait` or a sidecar's name), each stored and served as its own log."),
    Setting("TASKLOGS_KUBE_CONNECT_TIMEOUT", "TASKLOGS_KUBE_CONNECT_TIMEOUT", "3", _positive_float,
            "Seconds to connect to the Kubernetes API."),
    Setting("TASKLOGS_KUBE_READ_TIMEOUT", "TASKLOGS_KUBE_READ_TIMEOUT", "10", _positive_float,
            "Seconds to wait for a Kubernetes API answer (whole-log reads, gets, lists)."),
    Setting("TASKLOGS_STREAM_IDLE_TIMEOUT", "TASKLOGS_STREAM_IDLE_TIMEOUT", "60", _positive_float,
            "Seconds a follow stream may stay silent before it is re-opened (catches dead connections)."),
    Setting("TASKLOGS_POLL_INTERVAL", "TASKLOGS_POLL_INTERVAL", "1", _positive_float,
            "Seconds between checks of workflow phases and of the journal, as a fallback to watches and "
            "notifications."),
    Setting("TASKLOGS_TAIL_COALESCE", "TASKLOGS_TAIL_COALESCE", "0.02", _non_negative_float,
            "Seconds a live tail gathers new lines before sending them as one frame (0: send each read at once); "
            "also the shortest gap between two commits of text that viewers of other processes wait for."),
    Setting("TASKLOGS_CAPTURE_PAUSE", "TASKLOGS_CAPTURE_PAUSE", "0.1", _non_negative_float,
            "Seconds a capture that nobody watches live (the collector's) lets new lines gather between reads: "
            "fewer wakeups per line; a watched capture never waits."),
    Setting("TASKLOGS_JOURNAL_INTERVAL", "TASKLOGS_JOURNAL_INTERVAL", "0.1", _positive_float,
            "Seconds between commits of captured text to the journal (one transaction for every task)."),
    Setting("TASKLOGS_MAX_UNSAVED_MB", "TASKLOGS_MAX_UNSAVED_MB", "256", _positive_float,
            "Most captured text (millions of characters) one process holds in memory while the database is "
            "down; beyond it the captures pause and read on from where they stood once the database is back "
            "(the text waits in Kubernetes meanwhile)."),
    Setting("TASKLOGS_CAPTURE_LINGER", "TASKLOGS_CAPTURE_LINGER", "10", _non_negative_float,
            "Seconds a task's capture keeps running after its last viewer left (a reconnect finds it warm)."),
    Setting("TASKLOGS_VIEWER_QUEUE", "TASKLOGS_VIEWER_QUEUE", "1000", _positive_int,
            "Frames a WebSocket client may fall behind before it is closed with 4008 (it resumes with its cursor)."),
    Setting("TASKLOGS_FRAME_CHARS", "TASKLOGS_FRAME_CHARS", "1048576", _positive_int,
            "Most characters of log text in one WebSocket frame; a longer backlog follows as several appends."),
    Setting("TASKLOGS_API_TOKEN", "TASKLOGS_API_TOKEN", "", _text,
            "When set, every API request needs `Authorization: Bearer <token>` (WebSockets may pass "
            "`?access_token=<token>` instead, since browsers cannot set headers there)."),
    Setting("TASKLOGS_AUTH_USER_HEADER", "TASKLOGS_AUTH_USER_HEADER", "", _header_name,
            "When set (e.g. `X-Forwarded-User`), requests carrying this header from the authenticating proxy "
            "are let in; without a token configured, requests without it are refused."),
    Setting("TASKLOGS_ALLOWED_ORIGINS", "TASKLOGS_ALLOWED_ORIGINS", "", _origin_list,
            "Comma-separated origins (`https://ui.example.com`) whose pages may open WebSockets; unset: only "
            "the service's own origin (requests without an Origin header, i.e. non-browser clients, pass)."),
    Setting("TASKLOGS_MAX_TAILS", "TASKLOGS_MAX_TAILS", "1000", _positive_int,
            "WebSocket tails one worker serves at once; more are refused with 503."),
    Setting("TASKLOGS_MAX_TAILS_PER_CLIENT", "TASKLOGS_MAX_TAILS_PER_CLIENT", "50", _positive_int,
            "WebSocket tails one client address may hold on one worker; more are refused with 429."),
    Setting("TASKLOGS_WS_MAX_MESSAGE", "TASKLOGS_WS_MAX_MESSAGE", "4096", _positive_int,
            "Largest message (bytes) a client may send on a WebSocket; larger ones close it with 1009."),
    Setting("TASKLOGS_WS_IDLE_TIMEOUT", "TASKLOGS_WS_IDLE_TIMEOUT", "3600", _non_negative_float,
            "Seconds a tail may go without sending anything before it is closed with 1001 (0: never)."),
    Setting("TASKLOGS_WS_SEND_TIMEOUT", "TASKLOGS_WS_SEND_TIMEOUT", "30", _positive_float,
            "Seconds one write to a WebSocket client may block (a client that stopped reading) before the "
            "connection is cut."),
    Setting("TASKLOGS_AUTO_MIGRATE", "TASKLOGS_AUTO_MIGRATE", "true", _boolean,
            "Create or upgrade the schema at start-up (under a PostgreSQL advisory lock)."),
    Setting("TASKLOGS_DB_POOL_SIZE", "TASKLOGS_DB_POOL_SIZE", "10", _positive_int,
            "Database connections kept per process."),
    Setting("TASKLOGS_DB_POOL_TIMEOUT", "TASKLOGS_DB_POOL_TIMEOUT", "5", _positive_float,
            "Seconds to wait for a free database connection before answering 503."),
    Setting("TASKLOGS_PROXY_FIX", "TASKLOGS_PROXY_FIX", "", _proxy_fix,
            "Trust forwarded headers from this many proxies (`1`) or per header (`x_for=1,x_proto=1`)."),
    Setting("TASKLOGS_WS_PING_INTERVAL", "TASKLOGS_WS_PING_INTERVAL", "25", _positive_float,
            "Seconds between WebSocket pings, so proxies do not cut quiet tails."),
)


def load_config(environ=None) -> dict[str, Any]:
    """Read every setting from the environment; raise ConfigError naming the first bad variable."""
    environ = os.environ if environ is None else environ
    config = {}
    for setting in SETTINGS:
        raw = environ.get(setting.env, setting.default)
        try:
            config[setting.key] = setting.parse(raw)
        except ValueError as error:
            raise ConfigError(f"{setting.env}={raw!r}: {error}") from None
    return config


def containers(config) -> tuple[str, ...]:
    """Every container captured: TASKLOGS_CONTAINER first, then TASKLOGS_CONTAINERS."""
    first = config["TASKLOGS_CONTAINER"]
    return (first,) + tuple(name for name in config["TASKLOGS_CONTAINERS"] if name != first)


def markdown_table() -> str:
    """The README's configuration table, generated from SETTINGS (`python -m tasklogs.config`)."""
    rows = ["| variable | default | meaning |", "|---|---|---|"]
    rows += [f"| `{s.env}` | {f'`{s.default}`' if s.default else '(unset)'} | {s.help} |" for s in SETTINGS]
    return "\n".join(rows)


if __name__ == "__main__":
    print(markdown_table())
