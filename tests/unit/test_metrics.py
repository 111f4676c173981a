"""The metric helpers keep labels bounded, and the journal writer's commits move the journal metrics."""

import time

from prometheus_client import REGISTRY

from tasklogs import metrics
from tasklogs.engine.feed import Feed, StreamInfo
from tasklogs.engine.journal import JournalWriter
from tasklogs.identity import LogId
from tasklogs.logstream import Position
from testkit.metrics import Scrape
from testkit.names import ref

LOG = LogId("node", "pod", "main")


def value(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_labelled_by_rule_and_a_closed_set_of_methods():
    before = value("tasklogs_http_requests_total", route="unmatched", method="other", status="404")
    rest = value("tasklogs_http_request_duration_seconds_count", route="unmatched")
    metrics.request_done({"REQUEST_METHOD": "BREW"}, 404, 0.01, websocket=False)
    metrics.request_done({"REQUEST_METHOD": "BREW"}, 404, 0.01, websocket=True)
    assert (
        value("tasklogs_http_requests_total", route="unmatched", method="other", status="404")
        == before + 2
    )
    assert value("tasklogs_http_request_duration_seconds_count", route="unmatched") == rest + 1, (
        "a WebSocket's length is no request duration"
    )


def test_close_codes_are_the_standard_ones_ours_or_other():
    before = {
        code: value("tasklogs_tail_closes_total", code=code) for code in ("1000", "4008", "other")
    }
    for code in (1000, 4008, 4321, 3000, 999):
        metrics.tail_closed(code)
    assert value("tasklogs_tail_closes_total", code="1000") == before["1000"] + 1
    assert value("tasklogs_tail_closes_total", code="4008") == before["4008"] + 1
    assert value("tasklogs_tail_closes_total", code="other") == before["other"] + 3
    assert value("tasklogs_tail_closes_total", code="4321") == 0


def test_the_lag_is_that_of_the_oldest_line_and_the_bytes_are_utf8():
    count, total = (
        value("tasklogs_capture_lag_seconds_count"),
        value("tasklogs_capture_lag_seconds_sum"),
    )
    stored = value("tasklogs_stored_bytes_total")
    now = 1_000_000.0
    metrics.committed([int((now - 3) * 1e9), int((now - 7) * 1e9)], 12, now)
    metrics.committed([], 5, now)  # text without timestamps: bytes, no lag
    assert value("tasklogs_capture_lag_seconds_count") == count + 1
    assert abs(value("tasklogs_capture_lag_seconds_sum") - total - 7) < 1e-6
    assert value("tasklogs_stored_bytes_total") == stored + 17


def test_a_commit_moves_commit_time_lag_stored_bytes_and_unsaved_text(memstore):
    writer = JournalWriter(memstore.units)
    feed = Feed(ref("wf-metrics"), on_unsaved=writer.mark)
    feed.add_stream(StreamInfo(LOG, "Running"))
    before = {
        name: value(name)
        for name in (
            "tasklogs_journal_commit_seconds_count",
            "tasklogs_capture_lag_seconds_count",
            "tasklogs_stored_bytes_total",
            "tasklogs_unsaved_bytes",
        )
    }
    stamp = time.time_ns() - 2_000_000_000
    text = "caf\u00e9 one\ntwo\n"
    feed.append(LOG.key, text, Position("2026-01-02T03:04:05.000000000Z", 1), stamps=[stamp, stamp])
    assert value("tasklogs_unsaved_bytes") == before["tasklogs_unsaved_bytes"] + len(text)
    assert writer.flush()
    assert value("tasklogs_unsaved_bytes") == before["tasklogs_unsaved_bytes"]
    assert value("tasklogs_stored_bytes_total") == before["tasklogs_stored_bytes_total"] + len(
        text.encode()
    )
    assert value("tasklogs_journal_commit_seconds_count") == (
        before["tasklogs_journal_commit_seconds_count"] + 1
    )
    assert value("tasklogs_capture_lag_seconds_count") == (
        before["tasklogs_capture_lag_seconds_count"] + 1
    )
    assert value("tasklogs_capture_lag_seconds_bucket", le="1.0") < value(
        "tasklogs_capture_lag_seconds_bucket", le="2.5"
    ), "a line two seconds old lands in the 2.5 s bucket"


def test_a_refused_commit_is_not_timed_and_the_text_stays_counted(memstore):
    writer = JournalWriter(memstore.units)
    feed = Feed(ref("wf-metrics-down"), on_unsaved=writer.mark)
    feed.add_stream(StreamInfo(LOG, "Running"))
    commits, unsaved = (
        value("tasklogs_journal_commit_seconds_count"),
        value("tasklogs_unsaved_bytes"),
    )
    feed.append(LOG.key, "kept\n", Position("2026-01-02T03:04:05.000000000Z", 1))
    memstore.down = True
    assert not writer.flush()
    assert value("tasklogs_journal_commit_seconds_count") == commits
    assert value("tasklogs_unsaved_bytes") == unsaved + 5
    memstore.down = False
    assert writer.flush() and value("tasklogs_unsaved_bytes") == unsaved


def test_the_exposition_names_every_metric_of_the_issue():
    scrape = Scrape(metrics.exposition().decode())
    assert {
        "tasklogs_http_requests": "counter",
        "tasklogs_http_request_duration_seconds": "histogram",
        "tasklogs_tails_open": "gauge",
        "tasklogs_tail_closes": "counter",
        "tasklogs_capture_streams_open": "gauge",
        "tasklogs_capture_lag_seconds": "histogram",
        "tasklogs_journal_commit_seconds": "histogram",
        "tasklogs_kube_requests": "counter",
        "tasklogs_degraded_responses": "counter",
        "tasklogs_unsaved_bytes": "gauge",
        "tasklogs_stored_bytes": "counter",
        "tasklogs_pruned_tasks": "counter",
    }.items() <= scrape.families.items()
