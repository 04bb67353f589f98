"""The README's runnable snippets run as written, in order, in a fresh folder."""

import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SNIPPET = re.compile(r"<!-- runnable -->\n```(\w+)\n(.*?)```", re.S)


def snippets():
    with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
        return SNIPPET.findall(f.read())


def test_readme_has_runnable_snippets():
    assert [lang for lang, _ in snippets()] == ["sh", "python"]


def test_readme_snippets_run(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "s3sync").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m s3sync "$@"\n')
    (bin_dir / "s3sync").chmod(0o755)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, PATH=f"{bin_dir}:{os.environ['PATH']}", S3SYNC_USER="ann",
               PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    outputs = []
    for lang, code in snippets():
        argv = ["bash", "-euo", "pipefail", "-c", code] if lang == "sh" else \
            [sys.executable, "-c", code]
        done = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0, f"{lang} snippet failed:\n{code}\n{done.stdout}{done.stderr}"
        outputs.append(done.stdout)
    assert "id,name" in outputs[0]  # bob pulled what ann pushed
    assert (work / "bob" / "Data" / "customers.csv").read_text() == "id,name\n"
    assert outputs[1].splitlines()[0] == "1 []"
