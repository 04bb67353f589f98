"""One small error hierarchy for the whole library.

Each class is a kind of failure a user can act on; the porcelain maps the
kinds to exit codes in one place (``s3sync/cli.py``), so code here never
chooses an exit status. Messages are one line, naming what went wrong.
"""


class SyncError(Exception):
    """Anything s3sync can explain to the user."""


class UsageError(SyncError):
    """A command was asked for something that makes no sense: a bad value."""


class PathspecError(UsageError):
    """A path on the command line is outside the data folder, ignored, or
    names no file that this workspace, its base or the remote knows."""


class ConfigError(SyncError):
    """``s3sync.json`` is missing, malformed, or names something impossible."""


class UnsafePathError(SyncError):
    """A path would escape the data folder or touch s3sync's own state."""


class FormatError(SyncError):
    """Stored data is of an unknown format version, truncated or corrupt."""


class UnknownFormatError(FormatError):
    """Stored data of a format version this s3sync does not read."""


class IntegrityError(SyncError):
    """Bytes did not match the checksum they were promised to have."""


class LocalChangedError(SyncError):
    """A local file changed after the plan that touches it was made."""


class LocalFileError(SyncError):
    """A local file could not be read or written: disk full, permissions."""


class LockedError(SyncError):
    """Another s3sync process holds the workspace."""


class AbortedError(SyncError):
    """The run stopped before changing anything: a limit or a declined prompt."""


class RemoteError(SyncError):
    """The remote could not do what was asked."""


class RemoteNotFoundError(RemoteError):
    """The bucket (or folder) behind the remote does not exist."""


class AccessDeniedError(RemoteError):
    """No credentials, or the credentials may not do this."""


class NetworkError(RemoteError):
    """The remote could not be reached, or the connection broke."""


class NotFoundError(RemoteError):
    """An object that should exist does not."""


class PreconditionFailed(RemoteError):
    """A conditional write or read lost: someone else changed the object."""


class CommitRaceError(PreconditionFailed):
    """Another push committed the generation this one wanted."""


class RemoteHistoryError(RemoteError):
    """The remote's journal is not the one this workspace read: it was reset."""


class UnsupportedRemoteError(RemoteError):
    """The server ignores the conditional writes s3sync relies on."""
