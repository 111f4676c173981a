"""The decision logic without a server: reviews and their cache (on the in-memory cluster), the client
address behind trusted proxies, origins, and tail slots keyed by identity."""

import ipaddress

import pytest

from tasklogs.access import origin_of
from tasklogs.errors import ClusterUnavailable, TooManyFromClient, Unauthorized
from tasklogs.proxies import client_address, is_trusted
from tasklogs.reviews import Expiring, Identity, Reviews
from tasklogs.slots import TailSlots


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def reviews(cluster, clock):
    cluster.tokens["t-alice"] = ("alice", ("devs",))
    cluster.tokens["t-bob"] = ("bob", ())
    cluster.readers.add(("devs", "argo"))
    return Reviews(cluster, seconds=60, denial_seconds=5, clock=clock)


def test_a_known_token_is_its_user_with_groups_and_one_review(reviews, cluster):
    alice = reviews.identify("t-alice")
    assert alice == Identity("alice", ("devs", "system:authenticated"), "kubernetes")
    assert reviews.identify("t-alice") == alice
    assert cluster.requests["create tokenreviews"] == 1


def test_an_unknown_token_is_refused_and_the_refusal_expires_sooner(reviews, cluster, clock):
    with pytest.raises(Unauthorized, match="TokenReview"):
        reviews.identify("t-carol")
    cluster.tokens["t-carol"] = ("carol", ())
    with pytest.raises(Unauthorized):
        reviews.identify("t-carol")
    assert cluster.requests["create tokenreviews"] == 1, "the refusal is remembered"
    clock.now += 5
    assert reviews.identify("t-carol").user == "carol"


def test_access_decisions_are_cached_per_user_groups_and_namespace(reviews, cluster, clock):
    alice, bob = reviews.identify("t-alice"), reviews.identify("t-bob")
    assert reviews.may_read(alice, "argo") and not reviews.may_read(alice, "other")
    assert not reviews.may_read(bob, "argo")
    assert reviews.may_read(alice, "argo")
    assert cluster.requests["create subjectaccessreviews"] == 3
    cluster.readers.add(("bob", "argo"))
    clock.now += 4.9
    assert not reviews.may_read(bob, "argo")
    clock.now += 0.2
    assert reviews.may_read(bob, "argo"), "denials last denial_seconds"
    cluster.readers.discard(("devs", "argo"))
    assert reviews.may_read(alice, "argo"), "grants last `seconds`"
    clock.now += 60
    assert not reviews.may_read(alice, "argo")


def test_a_failed_review_is_never_remembered_nor_a_grant(reviews, cluster):
    alice = reviews.identify("t-alice")
    cluster.failure = ClusterUnavailable("Kubernetes API unreachable")
    with pytest.raises(ClusterUnavailable):
        reviews.may_read(alice, "argo")
    cluster.failure = None
    assert reviews.may_read(alice, "argo")


def test_the_cache_keys_tokens_by_hash_and_stays_bounded(reviews, clock):
    reviews.identify("t-alice")
    assert "t-alice" not in repr(reviews._tokens._entries)
    small = Expiring(clock, size=2)
    for key in "abc":
        small.put(key, key, 10)
    assert (small.get("a"), small.get("b"), small.get("c")) == (None, "b", "c")
    small.put("d", "d", 0)
    assert small.get("d") is None, "0 seconds: not kept"


NETWORKS = (ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("127.0.0.1/32"))


@pytest.mark.parametrize(
    "forwarded_for,expected",
    [
        ("203.0.113.9", "203.0.113.9"),
        ("1.1.1.1, 2.2.2.2, 203.0.113.9", "203.0.113.9"),
        ("203.0.113.9, 10.0.0.7", "203.0.113.9"),
        ("10.0.0.8, 10.0.0.7", "10.0.0.8"),
        ("", "10.0.0.1"),
        ("garbage", "10.0.0.1"),
        ("2001:db8::1", "2001:db8::1"),
    ],
)
def test_the_client_is_the_rightmost_untrusted_hop(forwarded_for, expected):
    assert client_address(forwarded_for, "10.0.0.1", NETWORKS) == expected


def test_trust_is_by_address_or_network():
    assert is_trusted("10.200.3.4", NETWORKS) and is_trusted("127.0.0.1", NETWORKS)
    assert not is_trusted("127.0.0.2", NETWORKS) and not is_trusted("not-an-ip", NETWORKS)


@pytest.mark.parametrize(
    "origin,expected",
    [
        ("https://ui.example.com", ("https", "ui.example.com", 443)),
        ("http://UI.example.com:80/", ("http", "ui.example.com", 80)),
        ("http://127.0.0.1:8000", ("http", "127.0.0.1", 8000)),
        ("null", None),
        ("file://x", None),
        ("http://host:99999", None),
    ],
)
def test_origins_compare_by_scheme_host_and_port(origin, expected):
    assert origin_of(origin) == expected


def test_tail_slots_count_per_client_key():
    slots = TailSlots(total=10, per_client=2)
    slots.take("user:alice"), slots.take("user:alice")
    with pytest.raises(TooManyFromClient):
        slots.take("user:alice")
    slots.take("address:203.0.113.9")
    assert slots.count() == 3
