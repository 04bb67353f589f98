"""Benchmarks of s3sync side by side with aws s3 sync, rclone and s3cmd.

Usage: python bench/run.py [--quick] [--scenarios a,b] [--out bench/results/latest.json]

Builds seeded synthetic trees under /tmp, starts SeaweedFS (and moto where
a scenario names it) on 127.0.0.1 through tests/servers.py, puts a counting
proxy in front of each server, runs every scenario for s3sync and each peer
on the same server and tree, and prints a table of medians with the
s3sync/peer ratios of this run. See bench/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import harness
from harness import Aws, Backend, Place, Rclone, Runner, S3cmd, S3sync, Tool
from scenarios import BY_NAME, LARGE, SCENARIOS, SMALL, Scenario, median
from tabulate import tabulate

BIG_FULL = 1 << 30
BIG_QUICK = 256 << 20
SETUP_TIMEOUT = 4 * 3600


class Bench:
    def __init__(self, root: Path, *, quick: bool, reps: int, seed_with_rclone: bool,
                 small: int = SMALL, large: int | None = None, rev: str | None = None):
        self.root = root
        self.quick = quick
        self.reps = reps
        self.small = small
        self.large = large or (small if quick else LARGE)
        self.big_size = BIG_QUICK if quick else BIG_FULL
        self.seed_with_rclone = seed_with_rclone
        code, full = harness.REPO, None
        if rev:
            code, full = harness.export_rev(rev, root / "code")
        harness.byte_compile(code)
        self.runner = Runner(root, harness.base_env(root, code))
        self.s3sync = S3sync(self.runner, rev=full)
        self.tools: list[Tool] = [self.s3sync, Aws(), Rclone(), S3cmd(root)]
        self.records: list[dict] = []
        self.setups: list[dict] = []
        self._backends: dict[str, Backend] = {}
        self._trees: dict[int, Path] = {}
        self._places: dict[tuple[str, str, int], Place] = {}
        self._big: Path | None = None
        self.big_places: dict[str, Place] = {}
        self.scan_ws: Path | None = None
        self.errors: list[str] = []

    @property
    def big_label(self) -> str:
        return f"{self.big_size >> 20} MiB" if self.big_size < 1 << 30 else \
            f"{self.big_size >> 30} GiB"

    # -- resources, made on first use -----------------------------------------------
    def available(self) -> list[Tool]:
        return [t for t in self.tools if not t.missing]

    def backend(self, name: str) -> Backend:
        if name not in self._backends:
            log(f"starting {name}")
            self._backends[name] = harness.start_backend(name, self.root / "servers" / name)
        return self._backends[name]

    def tree(self, n: int) -> Path:
        if n not in self._trees:
            path = self.root / "trees" / f"t{n}"
            log(f"building a tree of {n:,} files of 4 KiB")
            t = time.perf_counter()
            harness.build_tree(path, n, seed=n)
            log(f"  built in {time.perf_counter() - t:.1f} s")
            self._trees[n] = path
        return self._trees[n]

    def big(self) -> Path:
        if self._big is None:
            folder = self.root / "trees" / "big"
            log(f"writing one file of {self.big_label}")
            harness.build_big(folder / "big.bin", self.big_size)
            self._big = folder
        return self._big

    def remember(self, tool: Tool, backend: Backend, n: int, place: Place) -> None:
        self._places.setdefault((tool.name, backend.name, n), place)

    def pushed(self, tool: Tool, backend: Backend, n: int) -> Place:
        """A prefix holding the n-file tree as ``tool`` pushed it (set up once)."""
        key = (tool.name, backend.name, n)
        if key in self._places:
            return self._places[key]
        tree = self.tree(n)
        prefix = f"tree{n}/{tool.name.replace(' ', '-')}"
        place = tool.push_place(self.runner, backend, tree, prefix)
        seeder = tool
        rclone = next((t for t in self.tools if t.name == "rclone" and not t.missing), None)
        if (self.seed_with_rclone and n > self.small and rclone is not None
                and tool.name in ("aws s3 sync", "s3cmd")):
            # aws s3 sync compares size and mtime with LastModified, s3cmd size
            # and MD5 with the ETag: an rclone upload leaves the same objects,
            # and is quicker than either at 100,000 files.
            seeder = rclone
        self.setup_run(f"initial push of {n:,} files", tool, seeder.push(place), backend,
                       seeder=seeder.name, items=n)
        self._places[key] = place
        return place

    def setup_run(self, what: str, tool: Tool, cmd, backend: Backend, *,
                  seeder: str | None = None, items: int | None = None) -> None:
        log(f"set-up: {what} with {seeder or tool.name} ({backend.name})")
        m = self.runner.run(cmd, proxy=backend.proxy, timeout=SETUP_TIMEOUT, check=True)
        self.setups.append({
            "what": what, "tool": tool.name, "by": seeder or tool.name,
            "server": backend.name, "wall": round(m.wall, 3), "requests": m.requests,
            "kinds": m.kinds, "maxrss_mb": round(m.maxrss_kb / 1024, 1), "items": items})
        log(f"  {m.wall:.1f} s, {m.requests} requests")

    # -- measuring ------------------------------------------------------------------
    def measure(self, sc: Scenario, tool, cmd, backend: Backend | None, *, rep: int,
                items: int | None = None, nbytes: int | None = None,
                unit: str | None = None, reference: bool | None = None) -> dict:
        name = tool if isinstance(tool, str) else tool.name
        if reference is None:
            reference = name == "s3sync"
        # The run before may have left a gigabyte to write back; flushed here,
        # untimed, it is not charged to whichever tool runs next.
        os.sync()
        load = os.getloadavg()[0]
        m = self.runner.run(cmd, proxy=backend.proxy if backend else None, timeout=3600)
        rec = {
            "scenario": sc.name, "label": self.label(sc), "tool": name, "rep": rep,
            "server": backend.name if backend else None, "reference": reference,
            "wall": round(m.wall, 4), "inner": m.inner, "returncode": m.returncode,
            "requests": m.requests, "kinds": m.kinds, "bytes_up": m.bytes_up,
            "bytes_down": m.bytes_down, "maxrss_mb": round(m.maxrss_kb / 1024, 1),
            "user": round(m.user, 3), "sys": round(m.sys, 3), "cpu": round(m.user + m.sys, 3),
            "load_before": round(load, 2),
            "items": items, "bytes": nbytes, "unit": unit, "argv": cmd.argv,
            "first_requests": m.first,
        }
        if m.returncode != 0:
            rec["error"] = m.output[-1500:]
            self.errors.append(f"{sc.name} / {name}: exit {m.returncode}\n{m.output[-800:]}")
        self.records.append(rec)
        req = "" if m.requests is None else f", {m.requests} requests"
        log(f"  {sc.name:<11} {name:<28} rep {rep}: {m.wall:7.3f} s{req}, "
            f"{m.maxrss_kb / 1024:.0f} MB" + (f"  EXIT {m.returncode}" if m.returncode else ""))
        return rec

    def label(self, sc: Scenario) -> str:
        return sc.label.format(small=f"{self.small:,}", large=f"{self.large:,}", big=self.big_label)

    def close(self) -> None:
        for backend in self._backends.values():
            try:
                backend.stop()
            except Exception:  # noqa: BLE001 - keep stopping the others
                traceback.print_exc()


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- summary ----------------------------------------------------------------------------
def summarise(records: list[dict]) -> list[dict]:
    """Medians per (scenario, tool), and ratios against the scenario's s3sync row."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        groups.setdefault((r["scenario"], r["tool"]), []).append(r)
    rows = []
    for (scenario, tool), runs in groups.items():
        ok = [r for r in runs if r["returncode"] == 0]
        first = runs[0]
        row = {"scenario": scenario, "label": first["label"], "tool": tool,
               "reference": first["reference"], "runs": len(runs), "failed": len(runs) - len(ok),
               "wall": median(r["wall"] for r in ok), "inner": median(r["inner"] for r in ok),
               "requests": median(r["requests"] for r in ok),
               "maxrss_mb": median(r["maxrss_mb"] for r in ok),
               "cpu": median(r["cpu"] for r in ok),
               "load": median(r["load_before"] for r in runs),
               "unit": first["unit"], "rate": None}
        seconds = row["inner"] or row["wall"]
        if seconds and first["unit"]:
            if first["unit"] == "MiB/s":
                row["rate"] = first["bytes"] / 2**20 / seconds
            else:
                row["rate"] = first["items"] / seconds
        rows.append(row)
    for row in rows:
        ref = next((r for r in rows if r["scenario"] == row["scenario"] and r["reference"]),
                   None)
        row["time_ratio"] = row["req_ratio"] = None
        if ref is None or ref is row or row["reference"]:
            continue
        if ref["wall"] and row["wall"]:
            row["time_ratio"] = ref["wall"] / row["wall"]
        if ref["requests"] is not None and row["requests"]:
            row["req_ratio"] = ref["requests"] / row["requests"]
    return rows


def _num(x, fmt="{:.3f}"):
    return "" if x is None else fmt.format(x)


def table(rows: list[dict], missing: list[tuple[str, str]], scenarios: list[str]) -> str:
    out = []
    for name in scenarios:
        for row in (r for r in rows if r["scenario"] == name):
            if row["failed"] == row["runs"]:
                status = f"FAILED ({row['runs']} of {row['runs']} runs)"
            elif row["failed"]:
                status = f"{row['failed']} of {row['runs']} runs failed"
            else:
                status = ""
            rate = "" if row["rate"] is None else f"{row['rate']:,.0f} {row['unit']}"
            if row["unit"] == "MiB/s" and row["rate"] is not None:
                rate = f"{row['rate']:,.1f} MiB/s"
            wall = _num(row["wall"])
            if row["inner"] is not None:
                wall += f" (in: {row['inner']:.3f})"
            out.append([row["label"], row["tool"], wall, _num(row["cpu"], "{:.2f}"),
                        "" if row["requests"] is None else f"{row['requests']:,.0f}", rate,
                        _num(row["maxrss_mb"], "{:.0f}"),
                        _num(row["time_ratio"], "{:.2f}x"),
                        _num(row["req_ratio"], "{:.3g}x"), status])
        if name in {"push", "noop", "pull", "change", "noop-large", "big-up", "big-down",
                    "noop-moto"}:
            label = next((r["label"] for r in rows if r["scenario"] == name), name)
            for tool, why in missing:
                out.append([label, tool, "", "", "", "", "", "", "", why])
    headers = ["scenario", "tool", "wall s", "cpu s", "requests", "rate", "peak MB",
               "s3sync/peer time", "s3sync/peer req", "note"]
    return tabulate(out, headers=headers, tablefmt="github", disable_numparse=True)


def _row(rows, scenario, tool):
    return next((r for r in rows if r["scenario"] == scenario and r["tool"] == tool), None)


def targets(rows: list[dict], small: int, large: int) -> list[dict]:
    """Issue 5's targets, each as measured: met, missed, or not measured."""
    out = []

    def add(target, ok, measured):
        out.append({"target": target, "met": ok, "measured": measured})

    for sc, n in (("noop", small), ("noop-large", large), ("noop-moto", small)):
        s = _row(rows, sc, "s3sync")
        if s is None or s["requests"] is None:
            continue
        where = " (moto)" if sc == "noop-moto" else ""
        add(f"no-op sync over {n:,} files{where}: exactly 1 request",
            s["requests"] == 1, f"{s['requests']:.0f} requests")
        a = _row(rows, sc, "aws s3 sync")
        if a and a["wall"]:
            ratio = s["wall"] / a["wall"]
            add(f"no-op sync over {n:,} files{where}: wall <= 0.35x aws s3 sync",
                ratio <= 0.35, f"{s['wall']:.3f} s vs {a['wall']:.3f} s = {ratio:.2f}x")
    s = _row(rows, "change", "s3sync")
    if s and s["requests"] is not None:
        add(f"1 changed file in {large:,}: at most 3 requests plus the upload",
            s["requests"] - 1 <= 3,
            f"{s['requests']:.0f} requests in all (3 + upload = 4 allowed)")
    s, a, r = (_row(rows, "push", t) for t in ("s3sync", "aws s3 sync", "rclone"))
    if s and a and s["rate"] and a["rate"]:
        add(f"initial push {small:,} x 4 KiB: >= 2x the objects/s of aws s3 sync",
            s["rate"] >= 2 * a["rate"],
            f"{s['rate']:,.0f} vs {a['rate']:,.0f} objects/s = {s['rate'] / a['rate']:.2f}x")
    if s and r and s["rate"] and r["rate"]:
        add(f"initial push {small:,} x 4 KiB: aim for rclone's rate",
            s["rate"] >= r["rate"],
            f"{s['rate']:,.0f} vs {r['rate']:,.0f} objects/s = {s['rate'] / r['rate']:.2f}x")
    for sc, verb in (("big-up", "up"), ("big-down", "down")):
        s, a = _row(rows, sc, "s3sync"), _row(rows, sc, "aws s3 sync")
        if s and a and s["rate"] and a["rate"]:
            add(f"big file {verb}: >= the MiB/s of aws s3 cp", s["rate"] >= a["rate"],
                f"{s['rate']:,.0f} vs {a['rate']:,.0f} MiB/s = {s['rate'] / a['rate']:.2f}x")
        if s and s["maxrss_mb"] is not None:
            add(f"big file {verb}: peak memory < 150 MB", s["maxrss_mb"] < 150,
                f"{s['maxrss_mb']:.0f} MB")
    s = _row(rows, "scan-warm", "s3sync scan")
    if s and s["rate"]:
        add(f"warm scan of {large:,} files: >= 300,000 files/s (CLI, start-up included)",
            s["rate"] >= 300_000, f"{s['rate']:,.0f} files/s ({s['wall']:.3f} s)")
    b = _row(rows, "scan-warm", "python scandir+stat")
    if s and s["rate"] and b and b["inner"]:
        # Issue 5 sets 300,000 against a machine whose scandir+stat limit is
        # "about 600,000": half of it, which this line asks of this machine.
        limit = large / b["inner"]
        add(f"warm scan of {large:,} files (CLI): >= 0.5x this machine's scandir+stat rate",
            s["rate"] >= 0.5 * limit,
            f"{s['rate']:,.0f} vs {limit:,.0f} files/s = {s['rate'] / limit:.2f}x "
            "(met if >= 0.5x)")
    s = _row(rows, "scan-warm", "libsync scan() in-process")
    if s and s["rate"]:
        add(f"warm scan of {large:,} files: >= 300,000 files/s (scan() alone)",
            s["rate"] >= 300_000, f"{s['rate']:,.0f} files/s ({s['inner']:.3f} s)")
    s = _row(rows, "scan-first", "libsync scan() in-process")
    b = _row(rows, "scan-first", "sha256sum (find | xargs -P2)")
    if s and b and s["inner"] and b["wall"]:
        add(f"first scan of {large:,} files: limited by sha256, not Python (vs sha256sum)",
            s["inner"] <= 1.5 * b["wall"],
            f"scan() {s['inner']:.2f} s vs sha256sum {b['wall']:.2f} s = "
            f"{s['inner'] / b['wall']:.2f}x (met if <= 1.5x)")
    s = _row(rows, "status", "s3sync")
    if s and s["maxrss_mb"] is not None:
        add(f"status over {large:,} files: peak memory < 150 MB", s["maxrss_mb"] < 150,
            f"{s['maxrss_mb']:.0f} MB")
    s = _row(rows, "start", "s3sync")
    if s and s["wall"]:
        add("s3sync --help: under 0.15 s", s["wall"] < 0.15, f"{s['wall']:.3f} s")
    return out


def targets_table(found: list[dict]) -> str:
    return tabulate([[t["target"], "met" if t["met"] else "MISSED", t["measured"]]
                     for t in found], headers=["target (issue 5)", "", "measured"],
                    tablefmt="github")


def report(doc: dict, missing: list[tuple[str, str]], errors: list[str] = ()) -> None:
    """Print the tables of a run (or of a saved JSON file)."""
    rows, names, found = doc["summary"], doc["scenarios"], doc["targets"]
    reps, crashed, setups = doc["repeat"], doc["crashed"], doc["setups"]
    records = doc["runs"]
    print(f"\ns3sync benchmarks, {doc['date']}, {doc['mode']} mode ({reps} run"
          f"{'s' * (reps != 1)} each, medians); {doc['machine']['cores']} cores "
          f"{doc['machine']['cpu']}, {doc['machine']['memory_gib']} GiB\n")
    loads = [r["load_before"] for r in records]
    if loads:
        print(f"1-minute load average before each run: {min(loads):.1f} to {max(loads):.1f} "
              f"(median {median(loads):.1f}; above 2 means other work shared the 2 cores)\n")
    print(table(rows, missing, names))
    if setups:
        print("\nSet-up runs (one each, not part of the targets):\n")
        print(tabulate([[s["what"], s["tool"], s["by"], s["server"], f"{s['wall']:.1f}",
                         s["requests"], s["maxrss_mb"]] for s in setups],
                       headers=["set-up", "for", "run by", "server", "wall s", "requests",
                                "peak MB"], tablefmt="github", disable_numparse=True))
    if found:
        print("\nTargets:\n")
        print(targets_table(found))
    for line in crashed:
        print(f"\nscenario crashed: {line}")
    for line in errors:
        print(f"\nfailed run: {line}")


# -- main ------------------------------------------------------------------------------
def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="one run each, 5,000-file trees only, a 256 MiB big file")
    ap.add_argument("--scenarios", help="comma-separated names: "
                    + ",".join(s.name for s in SCENARIOS))
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "latest.json"))
    ap.add_argument("--repeat", type=int, help="runs per measurement (default 3, 1 if --quick)")
    ap.add_argument("--no-rclone-seed", action="store_true",
                    help="let aws and s3cmd push the 100,000-file tree themselves")
    ap.add_argument("--rev", help="benchmark the s3sync of this commit (default: the "
                    "working tree as it is, edits included)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary folder")
    ap.add_argument("--show", metavar="JSON", help="print the tables of a saved run and exit")
    ap.add_argument("--small", type=int, default=SMALL, help=argparse.SUPPRESS)  # smoke tests
    ap.add_argument("--large", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--big-mib", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.show:
        doc = json.loads(Path(args.show).read_text())
        doc["summary"] = summarise(doc["runs"])
        doc["targets"] = targets(doc["summary"], doc["sizes"]["small"], doc["sizes"]["large"])
        report(doc, [(t, f"not run: {v}") for t, v in doc["tools"].items()
                     if v.startswith("not installed")])
        return 0

    if args.scenarios:
        names = [n.strip() for n in args.scenarios.split(",") if n.strip()]
        unknown = [n for n in names if n not in BY_NAME]
        if unknown:
            ap.error(f"unknown scenario(s) {', '.join(unknown)}; "
                     f"known: {', '.join(BY_NAME)}")
    else:
        names = [s.name for s in SCENARIOS if (s.quick if args.quick else s.full)]
    reps = args.repeat or (1 if args.quick else 3)

    # A plain SIGTERM would skip the clean-up below; make it an exit instead.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    root = Path(tempfile.mkdtemp(prefix="s3sync-bench-", dir="/tmp"))
    log(f"working in {root}")
    bench = Bench(root, quick=args.quick, reps=reps,
                  seed_with_rclone=not args.no_rclone_seed, small=args.small, large=args.large,
                  rev=args.rev)
    if args.big_mib:
        bench.big_size = args.big_mib << 20
    missing = [(t.name, f"not run: {t.missing}") for t in bench.tools if t.missing]
    for tool, why in missing:
        log(f"{tool}: {why}")
    started = time.time()
    crashed = []
    try:
        for name in names:
            sc = BY_NAME[name]
            log(f"scenario {name}: {bench.label(sc)}")
            try:
                sc.run(bench, sc)
            except Exception as exc:  # noqa: BLE001 - report it, run the others
                traceback.print_exc()
                crashed.append(f"{name}: {exc}")
    finally:
        bench.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)

    rows = summarise(bench.records)
    found = targets(rows, bench.small, bench.large)
    doc = {
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": " ".join(["python bench/run.py", *(argv if argv is not None
                                                      else sys.argv[1:])]),
        "mode": "quick" if args.quick else "full", "repeat": reps,
        "seconds": round(time.time() - started, 1),
        "machine": harness.machine(),
        "peak_memory_by": harness.TIME or "wait4 (floored at the bench's own RSS)",
        "tools": {t.name: t.missing or t.version for t in bench.tools},
        "scenarios": names, "sizes": {"small": bench.small, "large": bench.large,
                                      "big": bench.big_size},
        "summary": rows, "targets": found, "setups": bench.setups,
        "runs": bench.records, "crashed": crashed,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=1) + "\n")

    report(doc, missing, bench.errors)
    print(f"\nraw figures: {out}")
    return 1 if crashed else 0


if __name__ == "__main__":
    sys.exit(main())
