"""The short PUT and GET path for small files (libsync/remotes/s3lane.py).

Its signature is checked against botocore's own signer, and its requests
against the moto server and SeaweedFS (which checks signatures), watched
through the client's ``before-send`` event like any other request.
"""

import hashlib

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from conftest import make_remote
from libsync.errors import AccessDeniedError, PreconditionFailed
from libsync.remotes.s3lane import Lane

KEYS = ["plain.csv", "with space/and+plus & amp.csv", "ünïcode/ﬁle~tilde.txt",
        "odd/=;,@$!'()*[]#%.bin"]


@pytest.mark.parametrize("key", KEYS)
@pytest.mark.parametrize("token", [None, "a-session-token"])
@pytest.mark.parametrize("base", ["http://127.0.0.1:9000/bucket", "https://bucket.s3.eu-west-3.amazonaws.com"])
def test_the_signature_is_botocores(key, token, base):
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    lane = Lane(base, "eu-west-3", creds, http_session=None, events=None, user_agent="t")
    body = b"id,name\n1,ann\n"
    sha = hashlib.sha256(body).hexdigest()
    headers = {"if-match": '"0123abc"', "x-amz-meta-sha256": sha,
               "x-amz-server-side-encryption": "aws:kms"}
    from urllib.parse import quote
    path = lane.base_path + "/" + quote(key, safe="/~")
    theirs = AWSRequest("PUT", lane.origin + path, data=body,
                        headers={**headers, "X-Amz-Content-SHA256": sha})
    S3SigV4Auth(creds, "s3", "eu-west-3").add_auth(theirs)
    ours = lane.sign("PUT", path, dict(headers), sha, stamp=theirs.headers["X-Amz-Date"])
    assert ours["authorization"] == theirs.headers["Authorization"]
    assert ours.get("x-amz-security-token") == token


def test_a_part_signature_is_botocores():
    from libsync.remotes.s3lane import _query
    creds = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    lane = Lane("https://b.s3.eu-west-3.amazonaws.com", "eu-west-3", creds, http_session=None,
                events=None, user_agent="t")
    body = b"part"
    sha = hashlib.sha256(body).hexdigest()
    query = _query({"uploadId": "Ab+c/d==~x", "partNumber": "12"})
    assert query == "partNumber=12&uploadId=Ab%2Bc%2Fd%3D%3D~x"
    theirs = AWSRequest("PUT", f"{lane.origin}/k%20k?{query}", data=body,
                        headers={"X-Amz-Content-SHA256": sha})
    S3SigV4Auth(creds, "s3", "eu-west-3").add_auth(theirs)
    ours = lane.sign("PUT", "/k%20k", {}, sha, stamp=theirs.headers["X-Amz-Date"], query=query)
    assert ours["authorization"] == theirs.headers["Authorization"]


@pytest.fixture(params=["moto", "seaweedfs"])
def spec(request, monkeypatch, tmp_path):
    return make_remote(request.param, request, monkeypatch, tmp_path)


def watch(remote):
    sent = []
    remote.client.meta.events.register(
        "before-send.s3", lambda request, **_: sent.append(
            (request.method, request.headers.get("User-Agent", b""))))
    return sent


def by_lane(sent):
    return [m for m, agent in sent
            if (agent if isinstance(agent, bytes) else agent.encode()).startswith(b"s3sync")]


def test_a_small_file_goes_up_in_one_lane_request(spec, tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"a,b\n1,2\n")
    sha = hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    with spec.open() as remote:
        remote.put("warm", b"x")  # the remote's own first request, through the client
        sent = watch(remote)
        etag = remote.put_file("data/f k+é.csv", str(path), sha256=sha, if_none_match=True)
        assert by_lane(sent) == ["PUT"] and len(sent) == 1, sent
        info = remote.head("data/f k+é.csv")
        assert (info.etag, info.size, info.sha256) == (etag, 8, sha)
        assert remote.get("data/f k+é.csv") == b"a,b\n1,2\n"


def test_a_failed_condition_is_one_request_and_no_write(spec, tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"mine\n")
    sha = hashlib.sha256(b"mine\n").hexdigest()
    with spec.open() as remote:
        first = remote.put("data/f.csv", b"theirs\n")
        sent = watch(remote)
        with pytest.raises(PreconditionFailed):
            remote.put_file("data/f.csv", str(path), sha256=sha, if_none_match=True)
        with pytest.raises(PreconditionFailed):
            remote.put_file("data/f.csv", str(path), sha256=sha, if_match='"' + "0" * 32 + '"')
        assert by_lane(sent) == ["PUT", "PUT"] and len(sent) == 2, sent
        assert remote.head("data/f.csv").etag == first
        assert remote.get("data/f.csv") == b"theirs\n"
        assert remote._short_lane() is not None  # still in use


def test_a_read_is_one_lane_request_and_a_failed_condition_no_bytes(spec):
    import io
    with spec.open() as remote:
        etag = remote.put("data/r é.csv", b"x,y\n" * 1000)
        sent = watch(remote)
        sink = io.BytesIO()
        info = remote.get_into("data/r é.csv", sink, if_match=etag)
        assert sink.getvalue() == b"x,y\n" * 1000 and (info.size, info.etag) == (4000, etag)
        assert by_lane(sent) == ["GET"] and len(sent) == 1, sent
        sink = io.BytesIO()
        with pytest.raises(PreconditionFailed):
            remote.get_into("data/r é.csv", sink, if_match='"' + "0" * 32 + '"')
        assert sink.getvalue() == b"" and by_lane(sent) == ["GET", "GET"], sent


def test_a_refused_lane_steps_aside_for_the_client(spec, tmp_path, monkeypatch):
    if spec.kind != "seaweedfs":
        pytest.skip("only SeaweedFS checks signatures")
    path = tmp_path / "f.csv"
    path.write_bytes(b"x\n")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    with spec.open() as remote:
        sent = watch(remote)
        with pytest.raises(AccessDeniedError):
            remote.put_file("data/f.csv", str(path), sha256=hashlib.sha256(b"x\n").hexdigest())
        assert by_lane(sent) == ["PUT"] and sent[1:] and not by_lane(sent[1:]), sent
        assert remote._short_lane() is None  # switched off for the rest of the run


def test_parts_of_a_large_file_take_the_lane(spec, tmp_path, monkeypatch):
    from libsync.remotes import s3
    monkeypatch.setattr(s3, "MULTIPART_THRESHOLD", 6 << 20)
    monkeypatch.setattr(s3, "PART_SIZE", 5 << 20)
    data = hashlib.sha256(b"seed").digest() * (12 << 15)  # 12 MiB, 3 parts
    path = tmp_path / "big"
    path.write_bytes(data)
    with spec.open() as remote:
        remote.put("warm", b"x")
        sent = watch(remote)
        etag = remote.put_file("data/big é", str(path), sha256=hashlib.sha256(data).hexdigest())
        assert by_lane(sent) == ["PUT", "PUT", "PUT"] and len(sent) == 5, sent
        assert remote._short_lane() is not None
        assert remote.head("data/big é").etag == etag and remote.get("data/big é") == data
        if spec.kind == "seaweedfs":  # moto keeps no checksum for a multipart object
            # Each part carried its CRC32, which the server kept (a checksum
            # of the parts' checksums, "-3").
            head = remote.client.head_object(Bucket=remote.bucket,
                                              Key=remote._key("data/big é"),
                                              ChecksumMode="ENABLED")
            assert head.get("ChecksumCRC32", "").endswith("-3"), head


def test_a_part_whose_crc32_does_not_match_is_refused(spec, tmp_path):
    """The CRC32 a part carries is the server's check of its bytes, the payload
    being unsigned: SeaweedFS refuses a part that does not match it."""
    import base64
    import zlib

    from libsync.remotes.s3lane import UNSIGNED_PAYLOAD
    if spec.kind != "seaweedfs":
        pytest.skip("moto does not check part checksums")
    data = b"p" * (5 << 20)
    crc = zlib.crc32(data)
    with spec.open() as remote:
        key = remote._key("data/p")
        upload = remote.client.create_multipart_upload(
            Bucket=remote.bucket, Key=key, ChecksumAlgorithm="CRC32")["UploadId"]
        lane = remote._short_lane()
        try:
            for value, ok in ((crc ^ 1, False), (crc, True)):
                header = base64.b64encode(value.to_bytes(4, "big")).decode()
                lane.enabled = True
                answer = lane.put(key, data, UNSIGNED_PAYLOAD, {"x-amz-checksum-crc32": header},
                                  part=(upload, 1))
                assert (answer.etag is not None) == ok, (value, answer)
        finally:
            remote.client.abort_multipart_upload(Bucket=remote.bucket, Key=key, UploadId=upload)
