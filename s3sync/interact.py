"""The terminal side of porcelain: prompts, progress bars and the plan table."""

from __future__ import annotations

from typing import TextIO

from libsync.diff import CONFLICT, DELETE_LOCAL, DELETE_REMOTE, DOWNLOAD, UPLOAD, Action

from .render import human_size


def describe(a: Action) -> str:
    if a.kind == CONFLICT:
        return f"CONFLICT: {a.conflict}"
    if a.kind == UPLOAD:
        return "new here, to push" if a.remote_sha is None else "modified here, to push"
    if a.kind == DOWNLOAD:
        fresh = a.base is None or a.base.deleted
        return "new on remote, to pull" if fresh else "modified on remote, to pull"
    if a.kind == DELETE_REMOTE:
        return "deleted here, to push"
    if a.kind == DELETE_LOCAL:
        return "deleted on remote, to pull"
    return "same change on both sides"


def plan_table(actions) -> str:
    # Imported here: tabulate (and the importlib.metadata it loads) would
    # cost every run ~45 ms of start-up, and only a plan to confirm needs it.
    from tabulate import tabulate

    rows = []
    for a in actions:
        rec = a.remote if a.remote is not None else a.base
        size = human_size(rec.size) if a.kind in (DOWNLOAD, CONFLICT) and rec else ""
        if a.kind == UPLOAD and a.local is not None:
            size = ""
        who = f"{a.remote.author}" if a.remote is not None else ""
        when = a.remote.time if a.remote is not None else ""
        rows.append((a.path, describe(a), size, who, when))
    return tabulate(rows, headers=("path", "change", "size", "remote by", "remote at"))


class Prompter:
    """Asks on the terminal; every question defaults to no."""

    def __init__(self, stdin: TextIO, err: TextIO):
        self.stdin, self.err = stdin, err

    def ask(self, question: str) -> str:
        self.err.write(question)
        self.err.flush()
        line = self.stdin.readline()
        return line.strip().lower()

    def confirm(self, what: str, actions: tuple[Action, ...]) -> bool:
        if what == "proceed":
            self.err.write(plan_table(actions) + "\n")
            n = len(actions)
            return self.ask(f"Proceed with {n} change{'s' * (n != 1)}? [y/N] ") in ("y", "yes")
        remote = sum(1 for a in actions if a.kind == DELETE_REMOTE)
        local = len(actions) - remote
        for a in actions:
            where = "on the remote" if a.kind == DELETE_REMOTE else "here"
            self.err.write(f"  delete {a.path} ({where})\n")
        n = len(actions)
        answer = self.ask(f"Delete {n} file{'s' * (n != 1)} ({remote} on the remote, "
                          f"{local} here)? Deleted versions stay in the remote trash. [y/N] ")
        return answer in ("y", "yes")

    def choose(self, a: Action) -> str:
        self.err.write(f"CONFLICT {a.path}: {a.conflict}\n")
        answers = {"l": "local", "r": "remote", "b": "keep-both", "s": "skip"}
        while True:
            answer = self.ask("  keep [l]ocal, take [r]emote, keep [b]oth, or [s]kip? ")
            if answer[:1] in answers:
                return answers[answer[:1]]
            if answer == "":
                return "skip"


class Bars:
    """tqdm bars on stderr for phases longer than a second; off when not a terminal."""

    def __init__(self, err: TextIO, enabled: bool):
        self.err, self.enabled, self.bar = err, enabled, None

    def start(self, what, total, unit="B"):
        if not self.enabled:
            return lambda n: None
        from tqdm import tqdm
        self.bar = tqdm(total=total, desc=what, unit=unit, unit_scale=True,
                        unit_divisor=1024, file=self.err, delay=1.0, leave=False)
        return self.bar.update

    def stop(self):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
