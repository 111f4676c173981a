"""The pure parts of the search: parsing a request, matching one page, ranking the matches."""

import pytest

from tasklogs.errors import InvalidRequest
from tasklogs.search import Match, Ranking, SearchQuery, page_matches, parse_search_query
from testkit.pagecuts import cut_every

T0 = 1_767_322_800 * 10**9


def test_parse_defaults_and_every_parameter():
    assert parse_search_query({"q": "abc"}) == SearchQuery("abc", limit=100)
    query = parse_search_query(
        {
            "q": "Disk Full",
            "ignore_case": "true",
            "namespace": "team-a",
            "since": "2026-01-02T03:00:00Z",
            "until": "2026-01-02T05:00:00.5+02:00",
            "limit": "1000",
        }
    )
    assert query == SearchQuery("Disk Full", True, "team-a", T0, T0 + 500_000_000, 1000)
    assert query.holds("the DISK FULL error") and not query.holds("disk is full")


@pytest.mark.parametrize(
    ("args", "says"),
    [
        ({}, "q must be a text of 3 to 1000 characters to look for, got nothing"),
        ({"q": "ab"}, "got 2 characters"),
        ({"q": "a\nbc"}, "line break"),
        ({"q": "abc", "limit": "0"}, "limit must be a whole number from 1 to 1000"),
        ({"q": "abc", "namespace": "-bad"}, "namespace must be a Kubernetes namespace name"),
        ({"q": "abc", "since": "2026-01-02T03:00:00Z", "until": "2026-01-02T03:00:00Z"}, "since"),
    ],
)
def test_parse_refuses_bad_input_naming_it(args, says):
    with pytest.raises(InvalidRequest, match=says.replace("(", r"\(")):
        parse_search_query(args)


def test_page_matches_marks_lines_cut_by_the_page_boundaries():
    text = "first needle line\nsecond line\nthird needle\n"
    stamps = [T0, T0 + 1, T0 + 2]
    first, second, third = cut_every(text, stamps, 20)  # as a live capture's flushes may cut it
    assert (first.text, second.text, third.text) == (
        "first needle line\nse",
        "cond line\nthird need",
        "le\n",
    )
    assert list(page_matches(7, first, SearchQuery("needle"))) == [
        Match(7, 1, T0, "first needle line", False)
    ]
    assert list(page_matches(7, second, SearchQuery("ne"))) == [
        Match(7, 2, T0 + 1, "cond line", True),
        Match(7, 3, T0 + 2, "third need", True),
    ]
    assert list(page_matches(7, third, SearchQuery("needle"))) == []  # cut: "need|le"
    assert list(page_matches(7, first, SearchQuery("needle", since=T0 + 1))) == []


def test_ranking_keeps_the_newest_once_and_knows_when_it_is_settled():
    ranking = Ranking(2)
    for ts, number in ((5, 1), (9, 2), (7, 3), (9, 2), (3, 4)):
        ranking.offer(Match(1, number, ts, "x", False))
    assert [(m.ts, m.number) for m in ranking.matches()] == [(9, 2), (7, 3)]
    assert ranking.settled(6) and not ranking.settled(7)
    assert not Ranking(3).settled(0)
