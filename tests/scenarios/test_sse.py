"""Server-side encryption from s3sync.json is asked for on every write."""

import json

import pytest

import servers


@pytest.fixture
def remote(s3_remote):
    return s3_remote


@pytest.mark.parametrize("sse,key", [("AES256", None), ("aws:kms", "alias/team-data")])
def test_every_object_is_written_encrypted(team, remote, sse, key):
    ann = team("ann")
    config = json.loads((ann.root / "s3sync.json").read_text())
    config.update(sse=sse, sse_kms_key_id=key)
    (ann.root / "s3sync.json").write_text(json.dumps(config))
    ann.write("a.csv", "v1\n")
    ann.ok("push")
    ann.write("a.csv", "v2\n")  # the replaced version is copied to the trash
    ann.ok("push")
    s3 = servers.client(remote.server)
    bucket, prefix = remote.url[5:].split("/", 1)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
    written = [k for k in keys if not k.endswith("/.s3sync/format")
               and not k.endswith("/.s3sync/probe")]
    assert any("/.s3sync/trash/" in k for k in written)
    assert any("/.s3sync/journal/" in k for k in written)
    for k in written:
        head = s3.head_object(Bucket=bucket, Key=k)
        assert head.get("ServerSideEncryption") == sse, k
        if key:
            assert head.get("SSEKMSKeyId", "").endswith(key.split("/")[-1]) or \
                head.get("SSEKMSKeyId") == key, (k, head.get("SSEKMSKeyId"))
