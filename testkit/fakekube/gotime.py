"""Times as Kubernetes writes and reads them, in integer nanoseconds since the epoch.

parse_rfc3339 follows Go's time.Parse(time.RFC3339, s) (src/time/format.go) closely enough to
accept what it accepts and to word its errors the same way, since the apiserver hands that
error text back verbatim in a 400 for a bad sinceTime.
"""

import datetime as dt
import time

LAYOUT = "2006-01-02T15:04:05Z07:00"
NS = 1_000_000_000


class GoTimeError(ValueError):
    pass


def format_nano(ns: int) -> str:
    """RFC3339 with exactly nine fraction digits (kubelet's RFC3339NanoFixed), UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // NS)) + f".{ns % NS:09d}Z"


def format_seconds(ns: int) -> str:
    """metav1.Time as serialized: RFC3339, whole seconds, UTC."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ns // NS))


def to_nanos(ts) -> int:
    """A datetime (naive means UTC), an RFC3339 string or int nanoseconds, as nanoseconds."""
    if isinstance(ts, int):
        return ts
    if isinstance(ts, str):
        return parse_rfc3339(ts)
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=dt.UTC)
    delta = ts - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86400 + delta.seconds) * NS + delta.microseconds * 1000


def _quote(raw: bytes) -> str:
    """time.quote: ASCII as is (with \\" and \\\\ escaped), anything else as \\xNN per byte."""
    out = []
    for b in raw:
        if b < 0x20 or b >= 0x80:
            out.append(f"\\x{b:02x}")
        else:
            out.append(("\\" if b in b'"\\' else "") + chr(b))
    return '"' + "".join(out) + '"'


def _error(avalue, value_elem=b"", layout_elem="", message=""):
    if message:
        return GoTimeError(f"parsing time {_quote(avalue)}{message}")
    return GoTimeError(
        f"parsing time {_quote(avalue)} as {_quote(LAYOUT.encode())}: "
        f"cannot parse {_quote(value_elem)} as {_quote(layout_elem.encode())}"
    )


def _digit(s: bytes, i: int) -> bool:
    return len(s) > i and 0x30 <= s[i] <= 0x39


def _getnum(s: bytes, fixed: bool):
    if not _digit(s, 0):
        return None, s
    if not _digit(s, 1):
        return (None, s) if fixed else (s[0] - 48, s[1:])
    return (s[0] - 48) * 10 + s[1] - 48, s[2:]


def _year(s):
    if len(s) < 4 or not all(_digit(s, i) for i in range(4)):
        return None, s, ""
    return int(s[:4]), s[4:], ""


def _ranged(fixed, high, what):
    def parse(s):
        n, rest = _getnum(s, fixed)
        return n, rest, (what if n is not None and high is not None and not 0 <= n < high else "")

    return parse


def _month(s):
    n, rest = _getnum(s, True)
    return n, rest, ("month" if n is not None and not 1 <= n <= 12 else "")


def _second(s):
    n, rest, range_err = _ranged(True, 60, "second")(s)
    if n is None or range_err or len(rest) < 2 or rest[0] not in b".," or not _digit(rest, 1):
        return (n, 0), rest, range_err
    end = 2
    while _digit(rest, end):
        end += 1
    digits = rest[1 : min(end, 10)]
    return (n, int(digits) * 10 ** (9 - len(digits))), rest[end:], ""


def _zone(s):
    if s[:1] == b"Z":
        return 0, s[1:], ""
    if len(s) < 6 or s[3:4] != b":":
        return None, s, ""
    hours, _ = _getnum(s[1:3], True)
    minutes, _ = _getnum(s[4:6], True)
    if hours is None or minutes is None:
        return None, s, ""
    range_err = (
        "time zone offset hour" if hours > 24 else "time zone offset minute" if minutes > 60 else ""
    )
    if not range_err and s[:1] not in (b"+", b"-"):
        return None, s, ""
    offset = (hours * 60 + minutes) * 60
    return (-offset if s[:1] == b"-" else offset), s[6:], range_err


_STEPS = (
    ("", "2006", _year),
    ("-", "01", _month),
    ("-", "02", _ranged(True, None, "")),
    ("T", "15", _ranged(False, 24, "hour")),
    (":", "04", _ranged(True, 60, "minute")),
    (":", "05", _second),
    ("", "Z07:00", _zone),
)


def _days_in(month, year):
    if month == 2:
        return 29 if year % 4 == 0 and (year % 100 != 0 or year % 400 == 0) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _days_from_civil(y, m, d):
    """Days since 1970-01-01 of a proleptic Gregorian date (works for year 0 too)."""
    y -= m <= 2
    era = y // 400
    yoe = y - era * 400
    doy = (153 * (m + (-3 if m > 2 else 9)) + 2) // 5 + d - 1
    return era * 146097 + yoe * 365 + yoe // 4 - yoe // 100 + doy - 719468


def parse_rfc3339(text: str) -> int:
    """Nanoseconds since the epoch; raises GoTimeError worded like Go's time.Parse."""
    avalue = value = text.encode("utf-8", "surrogateescape")
    got = []
    for prefix, std, parse in _STEPS:
        if not value.startswith(prefix.encode()):
            rest = value[len(_common_prefix(value, prefix.encode())) :]
            raise _error(avalue, rest, prefix)
        hold = value = value[len(prefix) :]
        number, value, range_err = parse(value)
        if range_err:
            raise _error(avalue, message=f": {range_err} out of range")
        if number is None:
            raise _error(avalue, hold, std)
        got.append(number)
    if value:
        raise _error(avalue, message=f": extra text: {_quote(value)}")
    year, month, day, hour, minute, (second, nanos), offset = got
    if not 1 <= day <= _days_in(month, year):
        raise _error(avalue, message=": day out of range")
    seconds = (
        _days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second - offset
    )
    return seconds * NS + nanos


def _common_prefix(value: bytes, prefix: bytes) -> bytes:
    n = 0
    while n < len(prefix) and n < len(value) and value[n] == prefix[n]:
        n += 1
    return value[:n]
