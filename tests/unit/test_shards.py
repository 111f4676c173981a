"""Sharing the running tasks among collectors: rendezvous hashing with bounded loads, the weights the
watch cache gives it, and the membership's heartbeat (SQLite here; PostgreSQL in the integration tests)."""

import collections
import statistics
import time

from tasklogs.collector import ClusterCache
from tasklogs.identity import TaskRef
from tasklogs.shards import SLACK, Membership, assign, ranking
from testkit.names import ref


def tasks(count: int, weight: int = 3, prefix: str = "wf") -> dict[TaskRef, int]:
    return {TaskRef("argo", f"{prefix}-{n}"): weight for n in range(count)}


def loads(owners: dict[TaskRef, str], weights: dict[TaskRef, int]) -> collections.Counter:
    load: collections.Counter = collections.Counter()
    for task, owner in owners.items():
        load[owner] += weights[task]
    return load


def test_every_task_has_one_member_and_every_member_computes_the_same():
    weights = tasks(200)
    members = ["c-1", "c-2", "c-3"]
    owners = assign(weights, members)
    assert set(owners) == set(weights)
    assert set(owners.values()) == set(members)
    assert assign(dict(reversed(list(weights.items()))), list(reversed(members))) == owners


def test_no_member_carries_more_than_its_bounded_share():
    for count, members in ((200, 3), (12, 2), (7, 3), (3, 2), (600, 5)):
        weights = tasks(count)
        names = [f"c-{n}" for n in range(members)]
        load = loads(assign(weights, names), weights)
        share = sum(weights.values()) / members
        assert max(load.values()) <= max(SLACK * share + 3, 3), (count, members, load)
        assert max(load.values()) <= 1.5 * share or count < members * 2, (count, members, load)


def test_unequal_tasks_are_weighed_by_their_containers():
    weights = {**tasks(20, 10, "big"), **tasks(100, 1, "small"), **tasks(30, 0, "done")}
    load = loads(assign(weights, ["a", "b", "c"]), weights)
    share = sum(weights.values()) / 3
    assert max(load.values()) <= 1.5 * share, load


def test_a_member_joining_takes_its_share_and_moves_little_else():
    weights = tasks(300)
    before = assign(weights, ["c-1", "c-2"])
    after = assign(weights, ["c-1", "c-2", "c-3"])
    moved = [task for task in weights if before[task] != after[task]]
    assert sum(after[task] == "c-3" for task in weights) >= 80
    between_old = [task for task in moved if after[task] != "c-3"]
    assert len(between_old) <= 30, "tasks move to the newcomer, hardly between the others"


def test_a_member_leaving_gives_its_tasks_to_the_others_and_nothing_else_moves_much():
    weights = tasks(300)
    before = assign(weights, ["c-1", "c-2", "c-3"])
    after = assign(weights, ["c-1", "c-3"])
    stayed = [t for t in weights if before[t] != "c-2"]
    moved = [t for t in stayed if before[t] != after[t]]
    assert "c-2" not in after.values()
    assert len(moved) <= 0.15 * len(stayed)


def test_the_ranking_is_spread_over_members():
    firsts = collections.Counter(ranking(task, ["a", "b", "c", "d"])[0] for task in tasks(4000))
    assert statistics.pstdev(firsts.values()) < 60  # about 1000 each


def test_no_members_and_no_tasks():
    assert assign(tasks(3), []) == {}
    assert assign({}, ["a"]) == {}


def test_the_cache_weighs_a_task_by_its_running_containers(cluster):
    pods = cluster.add_workflow("wf-a", ("x", "y", "z"))
    cluster.add_workflow("wf-b")
    cache = ClusterCache(("main", "wait"))
    cache.reset("workflows", cluster.list_workflows()[0])
    cache.reset("pods", cluster.list_workflow_pods()[0])
    before = cache.weights()
    cluster.finish_pod(pods["x"])
    cache.reset("pods", cluster.list_workflow_pods()[0])
    after = cache.weights()
    per_pod = before[ref("wf-b")]
    assert per_pod in (1, 2)  # main, and wait where the pod has one
    assert before[ref("wf-a")] == 3 * per_pod
    assert after[ref("wf-a")] == 2 * per_pod, "a finished pod has nothing left to follow"


def test_membership_beats_reads_the_live_members_and_leaves(memstore):
    first = Membership(memstore.units, "argo", ttl=30, name="c-1")
    second = Membership(memstore.units, "argo", ttl=30, name="c-2")
    elsewhere = Membership(memstore.units, "other", ttl=30, name="c-3")
    assert first.members == ("c-1",)
    assert first.beat() is False  # alone, as it started
    assert second.beat() is True and second.members == ("c-1", "c-2")
    elsewhere.beat()
    assert first.beat() is True and first.members == ("c-1", "c-2"), "another scope is not shared"
    second.leave()
    assert first.beat() is True and first.members == ("c-1",)


def test_a_silent_member_is_dropped_after_its_ttl(memstore):
    quick = Membership(memstore.units, "argo", ttl=0.01, name="c-1")
    other = Membership(memstore.units, "argo", ttl=0.01, name="c-2")
    other.beat()
    time.sleep(0.05)
    quick.beat()
    assert quick.members == ("c-1",)


def test_the_membership_keeps_its_members_while_the_database_refuses(memstore):
    first = Membership(memstore.units, "argo", ttl=30, name="c-1")
    Membership(memstore.units, "argo", ttl=30, name="c-2").beat()
    first.beat()
    memstore.down = True
    assert first.beat() is False
    assert first.members == ("c-1", "c-2")
    first.leave()  # does not raise: its heartbeat expires instead
