"""The final save's merge on SQLite (`repository._merge_in_python`), by the same rule as PostgreSQL's
statement: a live log's small pages become pages that end where lines end, bounded, and a line longer
than half a page is cut. The PostgreSQL side is in tests/integration/test_repository.py."""

from tasklogs.identity import LogId
from tasklogs.pages import PAGE_CHARS
from tasklogs.store import repository
from testkit.names import ref
from tests.integration.test_repository import appended_in_pieces, merged_pages_end_with_lines


def merged(services, wf, text: str, piece: int, long_lines: list[range]) -> None:
    with services.units() as uow:
        (log_id,) = uow.record_phases(
            ref(wf), "Succeeded", [(LogId("n", "p", "main"), "x")]
        ).values()
        appended_in_pieces(uow.session, log_id, text, piece)
        repository.merge_pages(uow.session, ref(wf))
        merged_pages_end_with_lines(uow.session, log_id, text, long_lines)


def test_small_pages_are_merged_at_line_ends(services, wf):
    text = "".join(f"line {n:05d} " + "x" * (n % 150) + "\n" for n in range(1, 5000))
    merged(services, wf, text, 997, [])


def test_a_line_longer_than_half_a_page_is_cut_and_the_pages_stay_bounded(services, wf):
    head = "".join(f"short {n}\n" for n in range(3000))
    giant = "progress " + "=" * (3 * PAGE_CHARS) + "\n"
    text = head + giant + "after\n" * 2000
    merged(services, wf, text, 1000, [range(len(head), len(head) + len(giant))])
