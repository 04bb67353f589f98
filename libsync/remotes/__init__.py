"""Open a remote by its URL: ``s3://bucket/prefix``, ``file:///path`` or a path."""

from __future__ import annotations

from .base import ObjectInfo, Remote

KINDS = {
    "s3": "s3://bucket/prefix: Amazon S3, or with endpoint_url any S3-compatible "
          "store (MinIO, Ceph, Cloudflare R2, SeaweedFS), path-style addressing",
    "file": "file:///path or a plain path: a folder, e.g. on a network share",
}


def open_remote(url: str, *, create: bool = False, endpoint_url: str | None = None,
                profile: str | None = None, region: str | None = None,
                sse: str | None = None, sse_kms_key_id: str | None = None,
                jobs: int = 8) -> Remote:
    """The remote for ``url``; ``create`` makes a missing folder remote."""
    if url.startswith("s3://"):
        from .s3 import S3Remote  # botocore loads only for S3 remotes
        return S3Remote(url, endpoint_url=endpoint_url, profile=profile,
                        region=region, sse=sse, sse_kms_key_id=sse_kms_key_id,
                        jobs=jobs)
    from .local import LocalRemote
    return LocalRemote(url, create=create)


__all__ = ["KINDS", "ObjectInfo", "Remote", "open_remote"]
