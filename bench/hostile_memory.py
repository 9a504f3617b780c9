"""Peak memory of `recommender index` over generated corpora: ordinary records against records at every limit.

    .venv/bin/python bench/hostile_memory.py [--profile tfidf] [--code DIR] [KIND ...]

KIND: normal (40 short records), worst (40 records with every field at its limit), worst+hostile (the same
plus a 40 MB line, 100,000 nested brackets and a 5,000-digit number), title1M (a 1,000,000-character title).
Each job runs as the only child of a small wrapper that reports its peak RSS (getrusage RUSAGE_CHILDREN);
--code runs another checkout of the package (to compare with an older version). Cache and state are off.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
WRAPPER = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(rc)")


def article(article_id: str, **fields: object) -> bytes:
    base = {"id": article_id, "title": f"Donau {article_id}", "body": f"Die Donau in Passau, Teil {article_id}.",
            "published_at": "2026-03-01T08:00:00+01:00", "lang": "de", **fields}
    return (json.dumps(base, ensure_ascii=False) + "\n").encode()


WORST = dict(title="T" * 1_000, teaser="V " * 2_500, body="Donau. " * (200_000 // 7), tags=["t" * 100] * 100,
             author="A" * 500, section="S" * 100, url="https://x.test/" + "u" * 2_000)
HOSTILE = [b'{"id": "g", "body": "' + b"x" * 40_000_000 + b'"}\n', b"[" * 100_000 + b"]" * 100_000 + b"\n",
           b'{"id": "n", "n": ' + b"9" * 5_000 + b"}\n"]
CORPORA = {
    "normal": lambda: [article(f"ok-{i}") for i in range(40)],
    "worst": lambda: [article(f"w{i}", **WORST) for i in range(40)],
    "worst+hostile": lambda: [article(f"w{i}", **WORST) for i in range(40)] + HOSTILE,
    "title1M": lambda: [article(f"ok-{i}") for i in range(39)] + [article("t", title="Donau " * 166_667)],
}


def measure(code: Path, profile: str, kind: str, tmp: Path) -> str:
    """One job over one generated corpus: exit status, peak RSS, seconds and its last line on stderr."""
    path = tmp / f"{kind}.jsonl"
    path.write_bytes(b"".join(CORPORA[kind]()))
    job = [sys.executable, "-m", "recommender", "index", str(path), "--index", str(tmp / f"index-{kind}"),
           "--quiet", "--skip-invalid", "--profile", profile]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", WRAPPER, *job], capture_output=True, text=True, cwd=code,
                          env={**os.environ, "PYTHONPATH": str(code), "RECOMMENDER_CACHE_DIR": "",
                               "RECOMMENDER_STATE_DIR": ""})
    lines = done.stderr.strip().splitlines()
    return (f"{profile} {kind}: exit {done.returncode}, peak {int(done.stdout.split()[-1]) / 1024:.0f} MiB, "
            f"{time.perf_counter() - start:.1f} s, {len(lines)} line(s) on stderr{': ' + lines[-1][:120] if lines else ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kinds", nargs="*", help=f"any of {', '.join(CORPORA)} (default: all)")
    parser.add_argument("--profile", default="tfidf")
    parser.add_argument("--code", type=Path, default=REPO, help="checkout whose package is run (default: this one)")
    args = parser.parse_args()
    if set(args.kinds) - set(CORPORA):
        parser.error(f"unknown corpus kind(s): {', '.join(sorted(set(args.kinds) - set(CORPORA)))}")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.kinds or list(CORPORA):
            print(measure(args.code.resolve(), args.profile, kind, Path(tmp)), flush=True)


if __name__ == "__main__":
    main()
