"""A real S3 API server for the tests: moto in server mode (`moto_server`) in a process of its own.

It checks credentials (`INITIAL_NO_AUTH_ACTION_COUNT`: the first three requests, which create the IAM
user, its policy and its access key, are let through; every later request is signed and checked), so a
wrong access key or secret key is refused as AWS refuses it (403 InvalidAccessKeyId,
SignatureDoesNotMatch).
"""

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass

import boto3

from testkit.processes import free_port

REGION = "us-east-1"
_SETUP_REQUESTS = 3  # create_user, put_user_policy, create_access_key


@dataclass
class S3Server:
    """A running moto server: `endpoint` is host:port (as Argo's S3 repositories name it)."""

    process: subprocess.Popen
    endpoint: str
    access_key: str = ""
    secret_key: str = ""

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def client(self, access_key: str | None = None, secret_key: str | None = None):
        return boto3.client(
            "s3",
            endpoint_url=self.url,
            region_name=REGION,
            aws_access_key_id=access_key or self.access_key,
            aws_secret_access_key=secret_key or self.secret_key,
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_s3_server(timeout: float = 30.0) -> S3Server:
    """Start moto_server on a free port with one IAM user allowed everything on S3."""
    port = free_port()
    env = dict(os.environ, INITIAL_NO_AUTH_ACTION_COUNT=str(_SETUP_REQUESTS))
    moto = os.path.join(os.path.dirname(sys.executable), "moto_server")
    process = subprocess.Popen(
        [moto, "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = S3Server(process, f"127.0.0.1:{port}")
    try:
        _wait_up(server, timeout)
        _create_user(server)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_up(server: S3Server, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"moto_server exited with {server.process.returncode}")
        try:
            # moto's own API (not S3: it does not count as an action to authenticate)
            with urllib.request.urlopen(f"{server.url}/moto-api/", timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"moto_server did not answer in {timeout}s")


def _create_user(server: S3Server) -> None:
    iam = boto3.client(
        "iam",
        endpoint_url=server.url,
        region_name=REGION,
        aws_access_key_id="AKIASETUPSETUPSETUP0",
        aws_secret_access_key="setup",
    )
    iam.create_user(UserName="argo")
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
    }
    iam.put_user_policy(UserName="argo", PolicyName="s3", PolicyDocument=json.dumps(policy))
    key = iam.create_access_key(UserName="argo")["AccessKey"]
    server.access_key, server.secret_key = key["AccessKeyId"], key["SecretAccessKey"]
