"""A short path for the one request a transfer makes per small file.

botocore spends about 3 ms of CPU on every request (event hooks, parameter
validation, serialisation, response parsing), which made a push of many
small files CPU-bound at about 250 objects/s on two cores. This lane signs
a whole-object PUT or GET, or a part, itself (AWS Signature Version 4, with
the body's sha256 that the scan already knows, or a part's payload left
unsigned under its CRC32 checksum) and sends it on the client's own
connection pool, so proxies, TLS verification and timeouts stay those of
the client.

Only the success path and a failed condition are handled here: any other
answer, or a network error before one, is answered by sending the same
request through the client (which retries and explains errors), and an answer the
lane did not expect switches the lane off for the rest of the run. The
lane emits botocore's ``before-send`` event like the client does, so
whatever watches the wire still sees every request.
"""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import NamedTuple
from urllib.parse import quote, urlsplit

from botocore.awsrequest import AWSRequest
from urllib3.exceptions import HTTPError

from ..errors import NetworkError

_ALGORITHM = "AWS4-HMAC-SHA256"
# A redirect (the bucket is in another region), a malformed or refused
# request or signature: answers the client handles better, every time.
_NOT_FOR_THE_LANE = frozenset((301, 302, 307, 400, 401, 403))
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# A body's hash left out of the signature: its checksum header guards it.
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"


def _chunks(raw, key: str, size: int) -> Iterator[bytes]:
    """A body's chunks; a connection that breaks is a NetworkError, as it is
    through the client."""
    try:
        yield from raw.stream(size, decode_content=False)
    except (HTTPError, OSError) as exc:
        raise NetworkError(f"{key}: the connection broke mid-transfer ({exc})") from exc


def _query(params: dict[str, str]) -> str:
    """SigV4's canonical query string, which is also sent as is."""
    return "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                    for k, v in sorted(params.items()))


class _Seen(Exception):
    """Stops the client's set-up request before it is signed and sent."""


class Answer(NamedTuple):
    """What the lane got back: ``etag`` (with ``size`` and ``chunks`` for a
    read), or ``failed_condition``, or neither: then the caller sends the
    request through the client instead."""

    etag: str | None = None
    failed_condition: bool = False
    size: int = 0
    chunks: Iterator[bytes] | None = None
    close: Callable[[], None] | None = None


class Lane:
    def __init__(self, base_url: str, region: str, credentials, http_session, events,
                 user_agent: str):
        parts = urlsplit(base_url)
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.host = parts.netloc
        self.base_path = parts.path.rstrip("/")  # "/bucket" (path style) or ""
        self.region = region
        self.credentials = credentials
        self.http = http_session
        self.events = events
        self.user_agent = user_agent
        self.enabled = True
        self._keys: dict[tuple[str, str], bytes] = {}
        self._lock = threading.Lock()

    @classmethod
    def for_client(cls, client, bucket: str, credentials) -> Lane | None:
        """A lane to the same place the client would send a PutObject, or None.

        The URL and signing region are botocore's own: a PutObject of an
        unused key goes through the client's pipeline up to its signing and
        is stopped there, so addressing style, custom endpoints, partitions
        and a learned bucket region all agree with the client's.
        """
        marker = f"s3sync-lane-{uuid.uuid4().hex}"
        seen: dict = {}

        def stop(request, region_name=None, signature_version=None, **_):
            if urlsplit(request.url).path.endswith("/" + marker):
                seen.update(url=request.url, region=region_name, version=signature_version)
                raise _Seen

        events = client.meta.events
        events.register_first("before-sign.s3.PutObject", stop, unique_id=marker)
        try:
            client.put_object(Bucket=bucket, Key=marker, Body=b"")
        except _Seen:
            pass
        except Exception:  # noqa: BLE001 - no lane is always a correct answer
            return None
        finally:
            events.unregister("before-sign.s3.PutObject", unique_id=marker)
        http = getattr(getattr(client, "_endpoint", None), "http_session", None)
        if (not seen or seen["version"] not in ("s3v4", "v4") or not seen["region"]
                or http is None or credentials is None):
            return None
        parts = urlsplit(seen["url"])
        base = f"{parts.scheme}://{parts.netloc}{parts.path[:-len(marker) - 1]}"
        agent = f"s3sync {client.meta.config.user_agent or ''}".strip()
        return cls(base, seen["region"], credentials, http, events, agent)

    def put(self, key: str, body: bytes, sha256_hex: str, headers: dict[str, str],
            part: tuple[str, int] | None = None) -> Answer:
        """PUT ``body`` at ``key`` with ``headers`` (lower-case names, already
        in their final form: conditions, checksum, metadata, encryption), or
        as the part (upload id, number) of a multipart upload."""
        if part is None:
            reply = self._send("PUT", "PutObject", key, body, sha256_hex, headers)
        else:
            reply = self._send("PUT", "UploadPart", key, body, sha256_hex, headers,
                               params={"partNumber": str(part[1]), "uploadId": part[0]})
        if reply is None:
            return Answer()
        if reply.status_code == 200 and reply.headers.get("ETag"):
            return Answer(etag=reply.headers["ETag"])
        return self._refused(reply.status_code)

    def get(self, key: str, headers: dict[str, str], chunk: int) -> Answer:
        """GET ``key``: on success, its chunks as they arrive."""
        reply = self._send("GET", "GetObject", key, b"", _EMPTY_SHA256, headers, stream=True)
        if reply is None:
            return Answer()
        raw = reply.raw
        status = reply.status_code
        if status == 200 and reply.headers.get("ETag") and "Content-Length" in reply.headers:
            return Answer(etag=reply.headers["ETag"], size=int(reply.headers["Content-Length"]),
                          chunks=_chunks(raw, key, chunk), close=raw.close)
        raw.close()
        return self._refused(status)

    def _send(self, method, operation, key, body, payload_hash, headers, stream=False,
              params=None):
        if not self.enabled:
            return None
        path = self.base_path + "/" + quote(key, safe="/~")
        query = _query(params or {})
        signed = self.sign(method, path, dict(headers), payload_hash, query=query)
        url = self.origin + path + ("?" + query if query else "")
        request = AWSRequest(method, url, data=body, headers=signed).prepare()
        request.stream_output = stream
        try:
            replies = self.events.emit(f"before-send.s3.{operation}", request=request)
            reply = next((r[1] for r in replies if r[1] is not None), None)
            return reply if reply is not None else self.http.send(request)
        except Exception:  # noqa: BLE001 - the client's retries will say what is wrong
            return None

    def _refused(self, status: int) -> Answer:
        if status in (409, 412):  # the condition failed, or a concurrent conditional write
            return Answer(failed_condition=True)
        if status in _NOT_FOR_THE_LANE:
            self.enabled = False  # the client knows better for the rest of the run
        return Answer()

    def sign(self, method: str, path: str, headers: dict[str, str], payload_hash: str,
             stamp: str | None = None, query: str = "") -> dict[str, str]:
        """``headers`` plus Host, the date, the payload hash and Authorization.

        ``query`` is the canonical query string (see ``_query``)."""
        creds = self.credentials.get_frozen_credentials()
        stamp = stamp or time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        day = stamp[:8]
        headers["host"] = self.host
        headers["x-amz-date"] = stamp
        headers["x-amz-content-sha256"] = payload_hash
        if creds.token:
            headers["x-amz-security-token"] = creds.token
        names = sorted(headers)
        canonical = "\n".join([
            method, path, query,
            *(f"{n}:{' '.join(str(headers[n]).split())}" for n in names),
            "", ";".join(names), payload_hash])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = "\n".join([_ALGORITHM, stamp, scope,
                             hashlib.sha256(canonical.encode()).hexdigest()])
        signature = hmac.new(self._key(creds.secret_key, day), to_sign.encode(),
                             hashlib.sha256).hexdigest()
        headers["authorization"] = (f"{_ALGORITHM} Credential={creds.access_key}/{scope}, "
                                    f"SignedHeaders={';'.join(names)}, Signature={signature}")
        headers["user-agent"] = self.user_agent
        return headers

    def _key(self, secret: str, day: str) -> bytes:
        with self._lock:
            key = self._keys.get((secret, day))
            if key is None:
                key = ("AWS4" + secret).encode()
                for part in (day, self.region, "s3", "aws4_request"):
                    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
                self._keys = {(secret, day): key}
            return key
