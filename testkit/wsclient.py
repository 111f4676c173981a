"""A WebSocket test client over websocket-client: JSON frames in, close code out."""
import json

import websocket


class TailClient:
    def __init__(self, url: str, timeout: float = 10, **options):
        self.ws = websocket.create_connection(url, timeout=timeout, **options)
        self.close_code = None
        self.close_reason = ""

    def frame(self) -> dict | None:
        """The next JSON frame, or None once the server closed (close_code then says how)."""
        opcode, data = self.ws.recv_data(control_frame=True)
        while opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
            opcode, data = self.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            self.close_reason = data[2:].decode("utf-8", "replace")
            return None
        return json.loads(data)

    def frames_until(self, predicate, limit: int = 1000) -> list[dict]:
        """Frames up to and including the first that satisfies `predicate` (or the close)."""
        frames = []
        for _ in range(limit):
            frame = self.frame()
            if frame is None:
                return frames
            frames.append(frame)
            if predicate(frame):
                return frames
        raise AssertionError(f"no matching frame in {limit}")

    def rest(self) -> list[dict]:
        """Every frame until the server closes."""
        return self.frames_until(lambda frame: False)

    def close(self) -> None:
        try:
            self.ws.close()
        except Exception:  # noqa: BLE001
            pass


def log_text(frames: list[dict], pod: str, base: str = "") -> str:
    """Rebuild one pod's log from a snapshot and appends, checking offsets are contiguous."""
    text = base
    for frame in frames:
        entries = frame.get("logs", []) if frame["type"] == "snapshot" else [frame] if frame["type"] == "append" else []
        for entry in entries:
            if entry["pod"] != pod:
                continue
            piece = entry.get("logs", entry.get("data", ""))
            assert entry["offset"] == len(text), f"offset {entry['offset']} != {len(text)}: gap or duplicate"
            text += piece
    return text
