"""The worst-case time of one public request: a draft at every bound, POST /v1/related, in process.

    PYTHONPATH=$PWD .venv/bin/python bench/worst_request.py [--profile default] [--repeat 5]

Indexes corpus/ (embeddings cached in data/cache) under the profile, then sends drafts as large as the
bounds and max_request_bytes allow (title 1,000, teaser 5,000, body at its bound or the 1 MB request limit, 100 values
in each filter list) in several shapes that stress different parts (beside a normal article, for the ratio): prose, one endless word, punctuation
only, CJK text and many capitalised names (the names regex). Prints the first request (models load) and,
per shape, the worst and median of the rest, in milliseconds.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from recommender.config import load_settings  # noqa: E402
from recommender.ingest.corpus import FIELD_LIMITS  # noqa: E402
from recommender.jobs.index_job import build_index  # noqa: E402
from recommender.serve.app import create_app  # noqa: E402


def shapes(body_chars: int) -> dict[str, dict]:
    """Drafts at the bounds, by the kind of text that could make a tokenizer or regex slow."""
    def draft(unit: str) -> dict:
        return {"title": (unit * 1_000)[:1_000], "teaser": (unit * 5_000)[:5_000],
                "body": (unit * (body_chars // len(unit) + 1))[:body_chars], "k": 50,
                "filters": {"exclude": [f"id{i}" for i in range(100)], "section": [f"s{i}" for i in range(100)]}}

    normal = {"title": "Hochwasser in Passau: Helfer füllen Sandsäcke",
              "teaser": "Die Stadt ruft den Katastrophenfall aus, Schulen bleiben geschlossen. " * 4,
              "body": "Die Donau tritt über die Ufer, der Inn steigt weiter. " * 60}
    return {"normal": normal, "prose": draft("Die Donau tritt in Passau über die Ufer. "), "one word": draft("x"),
            "punctuation": draft("?!. "), "cjk": draft("東京都の洪水。"), "names": draft("Merz Scholz Passau 2024 ")}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="default")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="worst-request-"))
    settings = load_settings(environ={}, profile=args.profile, index_dir=str(tmp / "index"),
                             cache_dir=str(REPO / "data" / "cache"), state_dir=str(tmp / "state"))
    build_index([REPO / "corpus"], settings.index_dir, settings)
    client = create_app(settings).test_client()
    # The body fills what max_request_bytes leaves (the JSON around it, and 3 bytes per CJK character).
    results = {}
    uptime = Path("/proc/loadavg").read_text().split()[0] if Path("/proc/loadavg").exists() else "?"
    for name, draft in shapes(FIELD_LIMITS["body"]).items():
        while len(json.dumps(draft, ensure_ascii=False).encode()) > settings.max_request_bytes:
            draft["body"] = draft["body"][: int(len(draft["body"]) * 0.9)]
        times = []
        for _ in range(args.repeat + 1):
            started = time.perf_counter()
            answer = client.post("/v1/related", data=json.dumps(draft, ensure_ascii=False).encode(),
                                 content_type="application/json")
            times.append((time.perf_counter() - started) * 1000)
            assert answer.status_code == 200, answer.get_json()
        results[name] = (len(draft["body"]), times[0], max(times[1:]), statistics.median(times[1:]))
    print(f"profile {args.profile}: very first request {results['normal'][1]:.0f} ms (the models load once)")
    print(f"  load average at the start: {uptime} on {len(__import__('os').sched_getaffinity(0))} cores")
    for name, (body, first, worst, median) in results.items():
        print(f"  {name:<12} body {body:>7,} chars: first {first:7.0f} ms, worst {worst:6.0f} ms, "
              f"median {median:6.0f} ms")


if __name__ == "__main__":
    main()
