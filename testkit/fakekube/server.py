"""HTTP/1.1 transport: the listening socket, connections, response bodies, resets and cuts."""

import select
import socket
import struct
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .status import ApiError, go_json

IDLE_TIMEOUT = 120.0  # seconds an idle keep-alive connection (or a stuck write) may last
CLIENT_CHECK = 0.5  # how often a waiting stream looks whether its client went away


class Aborted(Exception):
    """The connection was reset (a fault, a cut, cut_streams or stop); unwind quietly."""


class Body:
    """Writes one response: a Status, a fixed-length body or a chunked stream, honouring a cut."""

    def __init__(self, handler, request, journal, cut_after=None):
        self.handler, self.request, self.journal = handler, request, journal
        self.budget = cut_after  # body bytes still allowed before a cut resets the connection
        self.streaming = False

    def _head(self, code, content_type, headers):
        h = self.handler
        self.request.status = code
        self.journal.record(self.request)
        h.send_response(code)
        h.send_header("Audit-Id", str(uuid.uuid4()))
        h.send_header("Cache-Control", "no-cache, private")
        h.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            h.send_header(key, value)

    def error(self, err: ApiError):
        self.fixed(err.code, "application/json", go_json(err.body()), err.headers)

    def json(self, obj, sort_keys=False):
        self.fixed(200, "application/json", go_json(obj, sort_keys))

    def fixed(self, code, content_type, data: bytes, headers=None):
        self._head(code, content_type, headers)
        self.handler.send_header("Content-Length", str(len(data)))
        self.handler.end_headers()
        self._write(data)
        if self.budget is not None:  # a cut resets the connection even when the body ran out first
            self.handler.reset()

    def start_stream(self, content_type):
        self._head(200, content_type, {"Transfer-Encoding": "chunked"})
        self.handler.end_headers()
        self.handler.wfile.flush()
        self.streaming = True
        if self.budget == 0:
            self.handler.reset()

    def chunk(self, data: bytes):
        if data:
            self._write(data)

    def raw(self, framed: bytes):
        """Bytes already framed as chunks (a follower's backlog)."""
        if framed:
            self.handler.wfile.write(framed)

    def end_stream(self):
        if self.budget is not None:  # a cut resets the connection even when the body ran out first
            self.handler.reset()
        self.handler.wfile.write(b"0\r\n\r\n")

    def _write(self, data):
        cut = self.budget is not None and len(data) >= self.budget
        if cut:
            data = data[: self.budget]
        if self.budget is not None:
            self.budget -= len(data)
        if data:
            frame = b"%x\r\n%s\r\n" % (len(data), data) if self.streaming else data
            self.handler.wfile.write(frame)
        if cut:
            self.handler.reset()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT
    server_version = "fakekube"

    def setup(self):
        super().setup()
        self.server.transport.opened(self)

    def handle(self):
        try:
            super().handle()
        except (OSError, ValueError, Aborted):
            pass  # client went away, or we reset the connection on purpose

    def finish(self):
        try:
            super().finish()
        except (OSError, ValueError):
            pass
        self.server.transport.closed(self)

    def do_GET(self):
        self.server.transport.app.serve(self)

    do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = do_GET

    def send_response(self, code, message=None):
        self.send_response_only(code, message)
        self.send_header("Date", self.date_time_string())

    def log_message(self, format, *args):
        pass

    def client_gone(self) -> bool:
        """True when the client closed or reset its end (it sends nothing while it waits for us)."""
        try:
            poller = select.poll()  # not select.select: descriptors may be above FD_SETSIZE
            poller.register(self.connection, select.POLLIN)
            return bool(poller.poll(0)) and self.connection.recv(1, socket.MSG_PEEK) == b""
        except (OSError, ValueError):
            return True

    def abort_socket(self):
        """From another thread: reset this connection and wake its thread, whatever it is blocked in."""
        self.server.transport.abort(self.connection)

    def reset(self):
        """Abort the connection with a TCP RST (SO_LINGER 0) instead of a clean close."""
        self.close_connection = True
        self.server.transport.mark_reset(self.connection)
        raise Aborted()


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = (
        1024  # hundreds of streams may connect at once (socketserver's default is 5)
    )

    def process_request(self, request, client_address):
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            daemon=True,
            name="fakekube-conn",
        )
        self.transport.threads.add(thread)
        thread.start()

    def process_request_thread(self, request, client_address):
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.transport.threads.discard(threading.current_thread())

    def shutdown_request(self, request):
        if self.transport.was_reset(request):
            self.close_request(request)  # no FIN first: the close sends the RST
        else:
            super().shutdown_request(request)

    def handle_error(self, request, client_address):
        pass


class Transport:
    """The listening socket and every open connection; stop() aborts them all."""

    def __init__(self, app, port=0):
        self.app = app
        self.port = port
        self.httpd = None
        self.thread = None
        self.threads = set()
        self._lock = threading.Lock()
        self._handlers = set()
        self._reset = set()
        self.accepted = 0  # connections accepted since creation (keep-alive reuse keeps it low)

    def start(self):
        self.httpd = _HTTPServer(("127.0.0.1", self.port), Handler)
        self.httpd.transport = self
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(
            target=self.httpd.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
            name="fakekube-listener",
        )
        self.thread.start()

    def stop(self, join_timeout=5.0):
        if self.httpd is None:
            return
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()
        self.httpd = None
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            self.abort(handler.connection)
        self.app.abort_streams()
        deadline = time.monotonic() + join_timeout
        for thread in list(self.threads):
            thread.join(max(0.0, deadline - time.monotonic()))

    def abort(self, sock):
        self.mark_reset(sock)
        try:
            sock.shutdown(socket.SHUT_RDWR)  # wakes a handler blocked reading or writing
        except OSError:
            pass

    def opened(self, handler):
        with self._lock:
            self._handlers.add(handler)
            self.accepted += 1

    def closed(self, handler):
        with self._lock:
            self._handlers.discard(handler)

    def mark_reset(self, sock):
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        with self._lock:
            self._reset.add(sock)

    def was_reset(self, sock) -> bool:
        with self._lock:
            if sock in self._reset:
                self._reset.discard(sock)
                return True
            return False

    @property
    def running(self) -> bool:
        return self.httpd is not None
