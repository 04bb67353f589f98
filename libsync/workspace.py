"""The workspace: ``s3sync.json`` (see ``config``), its data folder, its
state and its remote."""

from __future__ import annotations

import getpass
import os
import subprocess
from dataclasses import dataclass

from .config import Config, data_dir_of, parse_config, read_config
from .errors import ConfigError
from .paths import CONFIG_FILE, find_root
from .remotes import Remote, open_remote
from .state import State

__all__ = ["CONFIG_FILE", "Config", "Workspace", "find_root", "parse_config"]


@dataclass(frozen=True)
class Workspace:
    root: str
    config: Config

    @classmethod
    def find(cls, start: str = ".") -> "Workspace":
        return cls(*read_config(start))

    @property
    def data_dir(self) -> str:
        return data_dir_of(self.root, self.config)

    @property
    def remote_url(self) -> str:
        url = self.config.remote
        if "://" in url:
            return url
        return os.path.join(self.root, url)  # a plain path is relative to the workspace

    def open_state(self, *, lock: bool = True) -> State:
        if not os.path.isdir(self.data_dir):
            raise ConfigError(f"data folder {self.data_dir} does not exist")
        state = State(self.data_dir)
        if lock:
            try:
                state.lock()
            except BaseException:
                state.close()
                raise
        return state

    def open_remote(self, *, create: bool = False, jobs: int = 8) -> Remote:
        c = self.config
        return open_remote(self.remote_url, create=create, endpoint_url=c.endpoint_url,
                           profile=c.profile, region=c.region, sse=c.sse,
                           sse_kms_key_id=c.sse_kms_key_id, jobs=jobs)

    def author(self, env=os.environ) -> str:
        """Who is pushing: config ``user``, S3SYNC_USER, git's user.name, login."""
        if self.config.user:
            return self.config.user
        if env.get("S3SYNC_USER"):
            return env["S3SYNC_USER"]
        try:
            name = subprocess.run(["git", "config", "user.name"], cwd=self.root,
                                  capture_output=True, text=True, timeout=5).stdout.strip()
            if name:
                return name
        except (OSError, subprocess.SubprocessError):
            pass
        try:
            return getpass.getuser()
        except (KeyError, OSError):
            return "unknown"
