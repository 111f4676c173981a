"""Big and odd logs: a 1 MiB single line, 100 MB in total, NUL and invalid UTF-8 — stored and served."""

import hashlib
import json

from testkit import scenarios


def expected_text(raw: bytes) -> str:
    return raw.decode("utf-8", "replace").replace("\x00", "\ufffd")


def test_one_mebibyte_line_round_trips(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    line = (
        "\u00e9" * (1 << 19)
    ).encode() + b"\x00\xff end\n"  # 1 MiB of two-byte characters, then odd bytes
    kube.write_log(wf.pod(), "main", line)
    scenarios.finish(kube, wf)
    body = client.get(f"/api/v1/tasks/{task_id}/logs").get_json()
    assert body["logs"][0]["logs"] == expected_text(line)
    body = client.get(f"/api/v1/tasks/{task_id}/logs").get_json()
    assert (body["source"], body["logs"][0]["logs"]) == ("database", expected_text(line))


def test_hundred_megabytes_stored_and_streamed(client, kube, task_id):
    wf = scenarios.workflow(kube, task_id)
    block = b"".join(b"%08d " % n + b"0123456789abcdef" * 62 + b"\n" for n in range(1024))  # ~1 MB
    digest = hashlib.sha256()
    for index in range(100):
        data = block.replace(b"00000000 ", b"%08d\x00" % index, 1)
        kube.write_log(wf.pod(), "main", data)
        digest.update(expected_text(data).encode())
    scenarios.finish(kube, wf)
    for attempt in ("kubernetes", "database"):
        response = client.get(f"/api/v1/tasks/{task_id}/logs?format=text")
        served, size, largest = hashlib.sha256(), 0, 0
        for piece in response.response:
            piece = piece if isinstance(piece, bytes) else piece.encode()
            served.update(piece)
            size += len(piece)
            largest = max(largest, len(piece))
        response.close()
        assert served.hexdigest() == digest.hexdigest(), (
            f"text served after the {attempt} read differs"
        )
        assert size > 100_000_000 and largest <= 4 << 20, "served in bounded pieces"
    head = client.get(f"/api/v1/tasks/{task_id}/logs")
    first = next(iter(head.response))
    head.close()
    head_fields = json.loads((first.decode() if isinstance(first, bytes) else first) + "]}")
    assert (head_fields["source"], head_fields["complete"]) == ("database", True)
