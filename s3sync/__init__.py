"""s3sync: keep a team's data folder in step through Amazon S3, git-style."""

__version__ = "0.1.0"
