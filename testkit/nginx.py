"""Debian's nginx in front of a server, as deployed: `deploy/nginx.conf` with its placeholders filled in,
run unprivileged-style (`nginx -p DIR -c DIR/nginx.conf`, `daemon off`), with its pid, logs and temp
paths in DIR, on a free port."""

import os
import pwd
import re
import signal
import subprocess

from testkit import ROOT
from testkit.processes import free_port, wait_healthy

NGINX = "/usr/sbin/nginx"
SITE = os.path.join(ROOT, "deploy", "nginx.conf")
PLACEHOLDER = re.compile(r"\$\{([A-Z_]+)\}")

MAIN = """daemon off;
worker_processes 1;
{user}pid {dir}/nginx.pid;
error_log {dir}/error.log info;

events {{
    worker_connections 4096;
}}

http {{
    access_log {dir}/access.log;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    include {dir}/tasklogs.conf;
}}
"""


def fill(template: str, values: dict[str, str]) -> str:
    """`${NAME}` replaced by values[NAME], as `envsubst '$NAME ...'` does; nginx's own `$vars` stay."""
    missing = set(PLACEHOLDER.findall(template)) - set(values)
    if missing:
        raise KeyError(f"no value for {', '.join(sorted(missing))}")
    return PLACEHOLDER.sub(lambda match: values[match.group(1)], template)


class Nginx:
    """`deploy/nginx.conf` proxying to 127.0.0.1:`upstream_port`, everything of it under `directory`."""

    def __init__(self, upstream_port: int, directory: str, read_timeout: str = "60s"):
        self.port = free_port()
        self.directory = directory
        values = {
            "TASKLOGS_UPSTREAM": f"127.0.0.1:{upstream_port}",
            "NGINX_LISTEN": f"127.0.0.1:{self.port}",
            "PROXY_READ_TIMEOUT": read_timeout,
        }
        with open(SITE) as site, open(os.path.join(directory, "tasklogs.conf"), "w") as out:
            out.write(fill(site.read(), values))
        config = os.path.join(directory, "nginx.conf")
        with open(config, "w") as out:
            out.write(MAIN.format(dir=directory, user=_same_user()))
        self.stderr = open(os.path.join(directory, "stderr.log"), "wb")
        self.process = subprocess.Popen(
            [NGINX, "-p", directory, "-c", config], stdout=subprocess.DEVNULL, stderr=self.stderr
        )
        try:
            wait_healthy(self.process, self.port, 30, "nginx", lambda: f": {self.errors()}")
        except Exception:
            self.stop()
            raise

    def url(self, path: str, scheme: str = "http") -> str:
        return f"{scheme}://127.0.0.1:{self.port}{path}"

    def errors(self) -> str:
        """nginx's error log (and what it wrote to stderr before it opened that)."""
        text = ""
        for name in ("stderr.log", "error.log"):
            path = os.path.join(self.directory, name)
            if os.path.exists(path):
                with open(path, "rb") as log:
                    text += log.read().decode("utf-8", "replace")
        return text

    def stop(self) -> None:
        """Fast shutdown (SIGTERM closes every connection at once)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.stderr.close()


def _same_user() -> str:
    """Run as root, nginx's workers would switch to www-data, which cannot enter the test's 0700 temp
    directory: keep them as the master's user. Unprivileged, nginx needs (and wants) no `user`."""
    if os.geteuid() != 0:
        return ""
    return f"user {pwd.getpwuid(os.geteuid()).pw_name};\n"
