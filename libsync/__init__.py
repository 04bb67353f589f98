"""libsync: the plumbing of s3sync.

Small primitives with plain data in and out: ``scan`` a data folder,
``fetch`` the remote manifest, ``reconcile`` the two against a base into a
plan, ``upload``/``download``/``tombstone`` files and ``commit`` a
generation. Nothing here prints or parses command lines; progress is
reported through callbacks and failures as ``libsync.errors`` exceptions.
"""

__version__ = "0.1.0"
