"""An S3 bucket prefix as a remote, through botocore (boto3's core).

Credentials come only from boto3's own chain (environment, profile, SSO,
role); nothing here stores them. Uploads carry a checksum so the server
refuses torn bytes (a small file's SHA-256, which the check against the
scan computes anyway; a CRC32 for each part, a third of SHA-256's CPU on
both sides, the whole file's SHA-256 being checked here before the upload
completes), and large files go up in parts whose completion carries the
same condition a single PUT would; large objects come down as parallel
ranges. Whole-object PUTs and GETs, and the parts of large uploads, take
the short lane of ``s3lane`` when they can, since botocore's own path
costs more CPU than a small request. botocore is imported here (and by
``s3lane``) and nowhere else, so commands that never talk to S3 start fast.
"""

from __future__ import annotations

import base64
import hashlib
import os
import tempfile
import threading
import uuid
import zlib
from collections import deque
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait
from contextlib import contextmanager
from typing import BinaryIO
from urllib.parse import urlparse

import botocore.exceptions as bx
import botocore.session
from botocore.config import Config

from .. import layout
from ..errors import (
    AccessDeniedError,
    ConfigError,
    IntegrityError,
    LocalChangedError,
    LocalFileError,
    NetworkError,
    NotFoundError,
    PreconditionFailed,
    RemoteError,
    RemoteNotFoundError,
)
from ..transfer import HashingWriter
from .base import ObjectInfo, Progress, Remote, same_file
from .s3lane import UNSIGNED_PAYLOAD, Lane

# Files up to the threshold are read whole and checked before one PUT; larger
# ones go up in parts that become visible only once the whole file has been
# read and checked. Either way bytes that do not match the scan's sha256 are
# never published, even by a server that does not verify checksums.
MULTIPART_THRESHOLD = 8 << 20
PART_SIZE = 8 << 20
# Objects this large come down as parallel ranges of PART_SIZE (as aws s3 cp
# does), at most RANGES_IN_FLIGHT held in memory at once.
RANGED_THRESHOLD = 64 << 20
RANGES_IN_FLIGHT = 4
PARTS_IN_FLIGHT = 6
_CHUNK = 1 << 20


def _write(out: BinaryIO, data: bytes, progress: Progress | None) -> int:
    out.write(data)
    if progress:
        progress(len(data))
    return len(data)


def parse_url(url: str) -> tuple[str, str]:
    parsed = urlparse(url)
    if parsed.scheme != "s3" or not parsed.netloc:
        raise ConfigError(f"not an s3:// remote: {url!r}")
    prefix = parsed.path.strip("/")
    return parsed.netloc, (prefix + "/" if prefix else "")


class S3Remote(Remote):
    def __init__(self, url: str, *, endpoint_url: str | None = None,
                 profile: str | None = None, region: str | None = None,
                 sse: str | None = None, sse_kms_key_id: str | None = None,
                 jobs: int = 8, client=None):
        self.url = url
        self.bucket, self.prefix = parse_url(url)
        self.jobs = jobs
        self._sse = {}
        if sse:
            self._sse["ServerSideEncryption"] = sse
        if sse_kms_key_id:
            self._sse["SSEKMSKeyId"] = sse_kms_key_id
        if client is None:
            # botocore's session, not boto3's: the client and the credential
            # chain are the same, and the start-up is 40 ms shorter without
            # boto3's resources and s3transfer, which nothing here uses.
            session = _botocore_session()
            if profile is not None:
                session.set_config_variable("profile", profile)
            if region is not None:
                session.set_config_variable("region", region)
            config = Config(
                max_pool_connections=max(10, jobs * 2),
                retries={"mode": "standard", "max_attempts": 5},
                connect_timeout=10, read_timeout=60,
                s3={"addressing_style": "path" if endpoint_url else "auto"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            )
            with _errors(url):
                client = session.create_client("s3", endpoint_url=endpoint_url, config=config)
            self._credentials = session.get_credentials
        else:
            self._credentials = None
        self.client = client
        self._lane: Lane | None | bool = False  # False: not set up yet
        self._lane_lock = threading.Lock()
        self.copy_conditions: bool | None = None
        self._probe_lock = threading.Lock()

    def _key(self, key: str) -> str:
        return self.prefix + key

    # -- interface -----------------------------------------------------
    def get(self, key, *, if_match=None):
        kw = {"IfMatch": if_match} if if_match else {}
        with _absent_is_changed(if_match), _errors(key):
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **kw)
            return resp["Body"].read()

    def get_into(self, key, out: BinaryIO, *, if_match=None, progress: Progress | None = None,
                 size=None):
        if if_match and size is not None and size >= RANGED_THRESHOLD and self.jobs > 1:
            # All in ranges from the start: no whole-object GET to cut short
            # after its first part, which drops its connection and leaves the
            # server sending what nobody reads.
            got = self._get_ranges(key, out, if_match, 0, size, progress)
            return ObjectInfo(key, got, if_match)
        total, etag, chunks, close = self._open(key, if_match)
        ranged = total >= RANGED_THRESHOLD and self.jobs > 1
        got = 0
        with _errors(key):
            try:
                for chunk in chunks:
                    out.write(chunk)
                    got += len(chunk)
                    if progress:
                        progress(len(chunk))
                    if ranged and got >= PART_SIZE:
                        break  # the rest comes in parallel ranges
            finally:
                if got < total:
                    close()
        if ranged and got < total:
            got += self._get_ranges(key, out, etag, got, total, progress)
        if got != total:
            raise NetworkError(f"{key}: connection closed after {got} bytes")
        return ObjectInfo(key, got, etag)

    def _open(self, key, if_match):
        """(size, etag, chunks, close) of a GET, by the short lane if it can."""
        lane = self._short_lane()
        if lane is not None:
            answer = lane.get(self._key(key), {"if-match": if_match} if if_match else {},
                              _CHUNK)
            if answer.etag:
                return answer.size, answer.etag, answer.chunks, answer.close
            if answer.failed_condition:
                raise PreconditionFailed(f"{key} was changed by someone else")
        kw = {"IfMatch": if_match} if if_match else {}
        with _errors(key):
            resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key), **kw)
        body = resp["Body"]
        return resp["ContentLength"], resp["ETag"], body.iter_chunks(_CHUNK), body.close

    def _get_ranges(self, key, out, etag, start, total, progress) -> int:
        """The bytes from ``start`` on, as ranges read in parallel and written in
        order; each is conditional on the version the first answer was, so a
        replaced object fails (PreconditionFailed) rather than mixes two."""
        def fetch(first: int, last: int) -> bytes:
            with _absent_is_changed(etag), _errors(key):
                resp = self.client.get_object(Bucket=self.bucket, Key=self._key(key),
                                              IfMatch=etag, Range=f"bytes={first}-{last}")
                data = resp["Body"].read()
            if len(data) != last - first + 1:
                raise NetworkError(f"{key}: connection closed after {first + len(data)} bytes")
            return data

        workers = max(1, min(self.jobs, RANGES_IN_FLIGHT))
        written = 0
        with ThreadPoolExecutor(max_workers=workers) as pool:
            pending = deque()
            try:
                for first in range(start, total, PART_SIZE):
                    pending.append(pool.submit(fetch, first, min(first + PART_SIZE, total) - 1))
                    if len(pending) >= workers:
                        written += _write(out, pending.popleft().result(), progress)
                while pending:
                    written += _write(out, pending.popleft().result(), progress)
            finally:
                for f in pending:
                    f.cancel()
        return written

    def put(self, key, data, *, if_none_match=False, if_match=None):
        kw = _conditions(if_none_match, if_match)
        sha = base64.b64encode(hashlib.sha256(data).digest()).decode()
        with _absent_is_changed(if_match), _errors(key):
            resp = self.client.put_object(Bucket=self.bucket, Key=self._key(key),
                                          Body=data, ChecksumSHA256=sha,
                                          **kw, **self._sse)
        return resp["ETag"]

    def put_file(self, key, path, *, sha256, if_none_match=False, if_match=None,
                 progress=None):
        size = os.path.getsize(path)
        kw = _conditions(if_none_match, if_match)
        if size >= MULTIPART_THRESHOLD:
            return self._put_multipart(key, path, sha256, kw, progress)[0]
        with open(path, "rb") as f:
            data = f.read(MULTIPART_THRESHOLD + 1)  # a file that grew fails the check
        digest = hashlib.sha256(data).digest()
        if digest.hex() != sha256:
            raise LocalChangedError(f"{path} changed since it was scanned; nothing was sent")
        checksum = base64.b64encode(digest).decode()
        lane = self._short_lane()
        if lane is not None:
            headers = {"x-amz-checksum-sha256": checksum, "x-amz-meta-sha256": sha256}
            headers.update((_HEADERS[k], v) for k, v in (*kw.items(), *self._sse.items()))
            answer = lane.put(self._key(key), data, sha256, headers)
            if answer.etag:
                if progress:
                    progress(len(data))
                return answer.etag
            if answer.failed_condition:
                raise PreconditionFailed(f"{key} was changed by someone else")
        with _absent_is_changed(if_match), _errors(key):
            resp = self.client.put_object(
                Bucket=self.bucket, Key=self._key(key), Body=data,
                ChecksumSHA256=checksum, Metadata={"sha256": sha256}, **kw, **self._sse)
        if progress:
            progress(len(data))
        return resp["ETag"]

    def _short_lane(self) -> Lane | None:
        """The short path for whole-object PUTs and GETs and for parts, set up on
        first use; None once the lane stepped aside for the client."""
        if self._lane is False:
            with self._lane_lock:
                if self._lane is False:
                    creds = self._credentials() if self._credentials else None
                    self._lane = Lane.for_client(self.client, self.bucket, creds)
        lane = self._lane
        return lane if lane is not None and lane.enabled else None

    def put_new_file(self, key, path, *, size, mtime_ns, progress=None):
        if size < MULTIPART_THRESHOLD:  # read whole and hashed before the PUT anyway
            return super().put_new_file(key, path, size=size, mtime_ns=mtime_ns,
                                        progress=progress)
        return self._put_multipart(key, path, None, {"IfNoneMatch": "*"}, progress,
                                   expect=(size, mtime_ns))

    def _put_multipart(self, key, path, sha256, kw, progress, expect=None):
        """(etag, sha256) of a file sent in parts. Without ``sha256`` the object
        carries no sha256 metadata (it is not known when the upload starts) and
        the file must keep the stat ``expect`` (size, mtime) throughout."""
        meta = {"Metadata": {"sha256": sha256}} if sha256 else {}
        with _errors(key):
            upload = self.client.create_multipart_upload(
                Bucket=self.bucket, Key=self._key(key), ChecksumAlgorithm="CRC32",
                **meta, **self._sse)
        upload_id = upload["UploadId"]

        lane = self._short_lane()

        def send(number: int, data: bytes) -> dict:
            crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
            etag = None
            if lane is not None:
                etag = lane.put(self._key(key), data, UNSIGNED_PAYLOAD,
                                {"x-amz-checksum-crc32": crc},
                                part=(upload_id, number)).etag
            if etag is None:
                with _errors(key):
                    etag = self.client.upload_part(
                        Bucket=self.bucket, Key=self._key(key), UploadId=upload_id,
                        PartNumber=number, Body=data, ChecksumCRC32=crc)["ETag"]
            if progress:
                progress(len(data))
            return {"PartNumber": number, "ETag": etag, "ChecksumCRC32": crc}

        # One sequential read hashes the whole file while parts upload in
        # parallel; at most `workers` parts are in memory at once, and a slow
        # part holds only its own slot.
        workers = max(1, min(self.jobs, PARTS_IN_FLIGHT))
        whole = hashlib.sha256()
        try:
            with ThreadPoolExecutor(max_workers=workers) as pool, open(path, "rb") as f:
                before = same_file(f, *expect, path) if expect else None
                pending, parts, number = set(), [], 0
                while data := f.read(PART_SIZE):
                    number += 1
                    whole.update(data)
                    pending.add(pool.submit(send, number, data))
                    del data
                    if len(pending) >= workers:
                        done, pending = wait(pending, return_when=FIRST_COMPLETED)
                        parts.extend(d.result() for d in done)
                parts.extend(p.result() for p in pending)
                parts.sort(key=lambda p: p["PartNumber"])
                if expect:
                    same_file(f, *expect, path, before)
                    sha256 = whole.hexdigest()
            if whole.hexdigest() != sha256:
                raise LocalChangedError(f"{path} changed while it was uploaded; nothing was "
                                        "published")
            with _absent_is_changed(kw.get("IfMatch")), _errors(key):
                resp = self.client.complete_multipart_upload(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id,
                    MultipartUpload={"Parts": parts}, **kw)
            return resp["ETag"], sha256
        except BaseException:
            try:
                self.client.abort_multipart_upload(
                    Bucket=self.bucket, Key=self._key(key), UploadId=upload_id)
            except Exception:  # noqa: BLE001 - the first error is the one to report
                pass
            raise

    def head(self, key):
        try:
            with _errors(key):
                resp = self.client.head_object(Bucket=self.bucket, Key=self._key(key),
                                               ChecksumMode="ENABLED")
        except NotFoundError:
            return None
        sha = resp.get("Metadata", {}).get("sha256")
        if not sha and resp.get("ChecksumSHA256") and "-" not in resp["ChecksumSHA256"]:
            sha = base64.b64decode(resp["ChecksumSHA256"]).hex()
        return ObjectInfo(key, resp["ContentLength"], resp["ETag"], sha)

    def list(self, prefix="", *, start_after=None) -> Iterator[ObjectInfo]:
        kw = {"Bucket": self.bucket, "Prefix": self._key(prefix)}
        if start_after:
            kw["StartAfter"] = self._key(start_after)
        n = len(self.prefix)
        with _errors(prefix or self.url):
            for page in self.client.get_paginator("list_objects_v2").paginate(**kw):
                for obj in page.get("Contents", ()):
                    yield ObjectInfo(obj["Key"][n:], obj["Size"], obj["ETag"])

    def copy(self, src, dst, *, if_match=None, if_none_match=False):
        if (if_match or if_none_match) and not self._server_copies_conditionally():
            return self._copy_through(src, dst, if_match, if_none_match)
        kw = {"CopySourceIfMatch": if_match} if if_match else {}
        if if_none_match:
            kw["IfNoneMatch"] = "*"
        with _absent_is_changed(if_match):
            return self._copy_object(src, dst, **kw)

    def _copy_object(self, src, dst, **kw) -> str:
        with _errors(src):
            resp = self.client.copy_object(
                Bucket=self.bucket, Key=self._key(dst),
                CopySource={"Bucket": self.bucket, "Key": self._key(src)},
                **kw, **self._sse)
        return resp["CopyObjectResult"]["ETag"]

    def _server_copies_conditionally(self) -> bool:
        with self._probe_lock:
            if self.copy_conditions is None:
                self.copy_conditions = self.probe_copy_conditions()
        return self.copy_conditions

    def probe_copy_conditions(self) -> bool:
        """Whether CopyObject honours CopySourceIfMatch and IfNoneMatch here.

        Some servers (moto, older S3-compatible stores) copy regardless, which
        could overwrite a version kept in the trash. Six requests, made once
        per workspace and server: the answer is kept in the local state.
        """
        tag = uuid.uuid4().hex  # teammates may probe at the same moment
        a, b, c = (f"{layout.META}probe-copy-{tag}-{n}" for n in "abc")
        try:
            self.put(a, b"a")
            self.put(b, b"b")
            honoured = True
            for dst, kw in ((c, {"CopySourceIfMatch": '"' + "0" * 32 + '"'}),
                            (b, {"IfNoneMatch": "*"})):
                try:
                    self._copy_object(a, dst, **kw)
                    honoured = False
                except PreconditionFailed:
                    pass
        finally:
            for key in (a, b, c):
                self.delete(key)
        return honoured

    def _copy_through(self, src, dst, if_match, if_none_match):
        """A copy through this client, for a server that ignores copy conditions:
        GET If-Match and PUT If-None-Match are conditions every server keeps."""
        try:
            with tempfile.TemporaryDirectory(prefix="s3sync-copy-") as tmp:
                path = os.path.join(tmp, "object")
                with open(path, "wb") as out:
                    sink = HashingWriter(out)
                    with _absent_is_changed(if_match):
                        self.get_into(src, sink, if_match=if_match)
                return self.put_file(dst, path, sha256=sink.hexdigest(),
                                     if_none_match=if_none_match)
        except OSError as exc:
            raise LocalFileError(f"{src}: cannot hold a copy on its way to {dst}: "
                                 f"{exc.strerror or exc}") from exc

    def delete(self, key, *, if_match=None):
        kw = {"IfMatch": if_match} if if_match else {}
        try:
            with _errors(key):
                self.client.delete_object(Bucket=self.bucket, Key=self._key(key), **kw)
        except NotFoundError:
            pass

    def close(self):
        self.client.close()


@contextmanager
def _absent_is_changed(if_match: str | None):
    """S3 answers If-Match on a missing key with 404; to us the version is gone."""
    try:
        yield
    except NotFoundError as exc:
        if if_match:
            raise PreconditionFailed(f"{exc}: it was deleted meanwhile") from exc
        raise


_LOADER = None


def _botocore_session():
    """A fresh session (credentials, profile and region read anew) whose
    data loader is shared in this process, so S3's service model is parsed
    once rather than for every remote opened (about 150 ms each)."""
    global _LOADER
    session = botocore.session.get_session()
    if _LOADER is None:
        _LOADER = session.get_component("data_loader")
    else:
        session.register_component("data_loader", _LOADER)
    return session


# boto3's parameter names as the headers the lane sends.
_HEADERS = {"IfNoneMatch": "if-none-match", "IfMatch": "if-match",
            "ServerSideEncryption": "x-amz-server-side-encryption",
            "SSEKMSKeyId": "x-amz-server-side-encryption-aws-kms-key-id"}


def _conditions(if_none_match: bool, if_match: str | None) -> dict:
    if if_none_match:
        return {"IfNoneMatch": "*"}
    if if_match:
        return {"IfMatch": if_match}
    return {}


_DENIED = {"AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch",
           "ExpiredToken", "InvalidToken", "AllAccessDisabled", "403"}
_PRECONDITION = {"PreconditionFailed", "412", "ConditionalRequestConflict"}
_DIGEST = {"BadDigest", "InvalidDigest", "XAmzContentSHA256Mismatch",
           "XAmzContentChecksumMismatch"}


@contextmanager
def _errors(what: str):
    """Map botocore's failures onto the library's kinds, in one place."""
    try:
        yield
    except bx.ClientError as exc:
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        msg = err.get("Message") or code
        if code == "NoSuchBucket":
            name = err.get("BucketName") or ""
            raise RemoteNotFoundError(f"bucket {name} does not exist".replace("  ", " ")
                                      ) from exc
        if code in ("NoSuchKey", "NotFound", "404") or status == "404":
            raise NotFoundError(f"{what} not found") from exc
        if code in _PRECONDITION or status in ("412", "409"):
            raise PreconditionFailed(f"{what} was changed by someone else") from exc
        if code in _DENIED or status == "403":
            raise AccessDeniedError(f"access denied to {what}: {msg}") from exc
        if code in _DIGEST:
            raise IntegrityError(f"{what}: the server rejected the checksum ({code})") from exc
        if status.startswith("5") or code in ("SlowDown", "ServiceUnavailable",
                                               "InternalError", "RequestTimeout"):
            raise NetworkError(f"{what}: server error {code or status}: {msg}") from exc
        raise RemoteError(f"{what}: {code}: {msg}") from exc
    except (bx.NoCredentialsError, bx.PartialCredentialsError) as exc:
        raise AccessDeniedError(
            "no AWS credentials found (set AWS_PROFILE, run 'aws configure' "
            "or 'aws sso login')") from exc
    except (bx.SSOTokenLoadError, bx.TokenRetrievalError,
            bx.UnauthorizedSSOTokenError) as exc:
        raise AccessDeniedError(
            f"AWS SSO token is missing or expired: run 'aws sso login' ({exc})") from exc
    except bx.ProfileNotFound as exc:
        raise ConfigError(f"AWS profile {exc.kwargs.get('profile')!r} not found") from exc
    except (bx.ResponseStreamingError, bx.IncompleteReadError) as exc:
        raise NetworkError(f"{what}: the connection broke mid-transfer ({exc})") from exc
    except (bx.EndpointConnectionError, bx.ConnectionClosedError,
            bx.ReadTimeoutError, bx.ConnectTimeoutError) as exc:
        raise NetworkError(f"{what}: network error: {exc}") from exc
    except bx.NoRegionError as exc:
        raise ConfigError("no AWS region set: add \"region\" to s3sync.json "
                          "or set AWS_DEFAULT_REGION") from exc
    except bx.BotoCoreError as exc:
        raise RemoteError(f"{what}: {exc}") from exc
