"""The S3 adapter: the only module that imports `boto3`.

It reads one object of an S3-compatible store (AWS S3, MinIO, Ceph, ...) as Argo's S3 artifact driver
addresses it: a host name and port (`endpoint`, none for AWS), TLS unless `insecure`, a region, and
path-style addressing for anything but AWS unless the repository says otherwise. Every botocore error
leaves as `ArtifactUnreadable`, in words a person can act on.
"""

from dataclasses import dataclass

import boto3
import botocore.exceptions
from botocore import UNSIGNED
from botocore.config import Config

from .errors import ArtifactUnreadable

READ_PIECE = 1 << 20
# S3 error codes that mean the credentials are wrong (not the object): the operator fixes the Secret.
_REFUSED = {
    "InvalidAccessKeyId": "the access key is not known to the store",
    "SignatureDoesNotMatch": "the secret key does not match the access key",
    "AccessDenied": "the credentials may not read this object",
    "ExpiredToken": "the session token has expired",
    "InvalidToken": "the session token is not valid",
}


@dataclass(frozen=True)
class S3Location:
    """One object and how to reach it; credentials None: the SDK's own chain (`useSDKCreds`), or an
    anonymous read when `anonymous`."""

    bucket: str
    key: str
    endpoint: str = ""  # host[:port]; "" is AWS (s3.amazonaws.com)
    region: str = ""
    insecure: bool = False
    addressing_style: str = ""  # "", "path" or "virtual-hosted" (Argo's S3Bucket.addressingStyle)
    access_key: str | None = None
    secret_key: str | None = None
    session_token: str | None = None
    anonymous: bool = False

    @property
    def url(self) -> str:
        """`s3://bucket/key` (no endpoint, no credentials): how messages name the object."""
        return f"s3://{self.bucket}/{self.key}"

    @property
    def endpoint_url(self) -> str | None:
        if not self.endpoint:
            return None
        return ("http://" if self.insecure else "https://") + self.endpoint


class S3Reader:
    """Reads objects; `timeout` (seconds) bounds connecting and each read."""

    def __init__(self, timeout: float = 10.0):
        self.timeout = timeout

    def read(self, location: S3Location, max_bytes: int) -> bytes:
        """The object's bytes, at most `max_bytes` (a larger object is refused, not read whole)."""
        try:
            answer = self._client(location).get_object(Bucket=location.bucket, Key=location.key)
            size = answer.get("ContentLength") or 0
            if size > max_bytes:
                answer["Body"].close()
                raise _too_large(location, max_bytes)
            data = answer["Body"].read(max_bytes + 1)
        except botocore.exceptions.ClientError as error:
            raise _refused(location, error) from None
        except botocore.exceptions.BotoCoreError as error:
            raise ArtifactUnreadable(
                f"the artifact store at {location.endpoint or 'AWS S3'} cannot be reached to read"
                f" {location.url}: {type(error).__name__}: {error}"
            ) from None
        if len(data) > max_bytes:
            raise _too_large(location, max_bytes)
        return data

    def _client(self, location: S3Location):
        style = {"path": "path", "virtual-hosted": "virtual"}.get(location.addressing_style)
        if style is None:  # auto, as Argo's minio client: virtual-hosted on AWS, path elsewhere
            style = "path" if location.endpoint else "virtual"
        config = Config(
            connect_timeout=self.timeout,
            read_timeout=self.timeout,
            retries={"max_attempts": 2, "mode": "standard"},
            s3={"addressing_style": style},
            signature_version=UNSIGNED if location.anonymous else None,
        )
        return boto3.session.Session().client(
            "s3",
            endpoint_url=location.endpoint_url,
            region_name=location.region or "us-east-1",
            aws_access_key_id=location.access_key,
            aws_secret_access_key=location.secret_key,
            aws_session_token=location.session_token,
            config=config,
        )


def _too_large(location: S3Location, max_bytes: int) -> ArtifactUnreadable:
    return ArtifactUnreadable(
        f"{location.url} is larger than {max_bytes / 2**20:g} MB (TASKLOGS_MAX_ARTIFACT_MB)"
    )


def _refused(location: S3Location, error: botocore.exceptions.ClientError) -> ArtifactUnreadable:
    details = error.response.get("Error") or {}
    code = str(details.get("Code") or "")
    status = (error.response.get("ResponseMetadata") or {}).get("HTTPStatusCode")
    where = location.url
    if code in ("NoSuchKey", "404") and status == 404 and code != "NoSuchBucket":
        return ArtifactUnreadable(f"{where} does not exist (NoSuchKey): the artifact is gone")
    if code == "NoSuchBucket":
        return ArtifactUnreadable(
            f"the bucket {location.bucket!r} does not exist (NoSuchBucket) at"
            f" {location.endpoint or 'AWS S3'}: check the artifact repository's bucket"
        )
    if code in _REFUSED or status == 403:
        why = _REFUSED.get(code, "access denied")
        return ArtifactUnreadable(
            f"the artifact store refused to read {where} ({code or status}: {why}): check the"
            " repository's accessKeySecret and secretKeySecret"
        )
    return ArtifactUnreadable(
        f"the artifact store answered {status} {code} to reading {where}:"
        f" {details.get('Message', '')}"
    )
