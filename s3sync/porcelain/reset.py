"""reset: remove s3sync's metadata, locally and on the remote, never a data file."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

from libsync import layout
from libsync.manifest import STATE_DIR
from libsync.scan import PERSONAL_IGNORE
from libsync.workspace import Workspace


@dataclass(frozen=True)
class ResetResult:
    local: tuple[str, ...]   # what was removed from <data>/.s3sync/
    remote: int              # how many metadata objects were removed


def reset(ws: Workspace, *, local_only: bool = False, keep_trash: bool = False) -> ResetResult:
    """Forget all sync state; the personal ignore list and every data file stay."""
    removed_remote = 0
    state = ws.open_state()  # holds the lock: no sync may run meanwhile
    try:
        if not local_only:
            with ws.open_remote() as remote:
                keys = [i.key for i in remote.list(layout.META)]
                if keep_trash:
                    keys = [k for k in keys if not k.startswith(layout.TRASH_PREFIX)]
                # The format marker goes last: a half-done reset still reads
                # as an s3sync remote, and running reset again finishes it.
                keys.sort(key=lambda k: k == layout.FORMAT_KEY)
                for key in keys:
                    remote.delete(key)
                    removed_remote += 1
    finally:
        state.close()
    folder = os.path.join(ws.data_dir, STATE_DIR)
    keep = os.path.basename(PERSONAL_IGNORE)
    removed = []
    for name in sorted(os.listdir(folder)):
        if name == keep:
            continue
        path = os.path.join(folder, name)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.unlink(path)
        removed.append(name)
    if not os.listdir(folder):
        os.rmdir(folder)
    return ResetResult(tuple(removed), removed_remote)
