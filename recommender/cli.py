"""The `recommender` command line: index, related, serve, evaluate, backup-state, publish-copy, profiles, settings."""
from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from contextlib import contextmanager
from typing import Any, Iterator, Sequence

from .config import ConfigError, Settings, load_settings, setting_docs
from .db import backup_state
from .embed.cluster import ClusterAddressError, ClusterError
from .embed.encoders import EncoderUnavailable
from .engine import Recommender, UnknownArticle, UnknownPlacement, signal_encoder
from .index.copying import copy_published
from .index.snapshot import IndexProblem
from .ingest.corpus import CorpusError
from .ingest.profiles import BASELINES, PROFILES, UnknownProfile, get_profile
from .jobs import joblog
from .jobs.index_job import Guards, PublishRefused, build_index
from .payloads import related_json
from .progress import event
from .rank.evaluate import DatasetError, evaluate, load_dataset, union_profile
from .rank.placements import PlacementError, options_from, placements_from
from .rank.ranking import Filters

# Errors a user can cause and fix; they get one line, not a traceback. OSError covers unreadable corpus
# files, a full disk or a read-only index directory.
EXPECTED_ERRORS = (ClusterError, ConfigError, CorpusError, DatasetError, EncoderUnavailable, IndexProblem,
                   UnknownArticle, OSError)


class UsageError(ValueError):
    """A command-line value that argparse cannot check by itself."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="recommender",
        description="Related-content engine for news sites: index articles, ask for related stories, serve them.",
    )
    parser.add_argument("--config", help="TOML settings file (also RECOMMENDER_CONFIG)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    index = commands.add_parser("index", help="build and publish an index of a corpus")
    index.add_argument("corpus", nargs="+", help="JSON Lines files or folders of .json/.jsonl files")
    index.add_argument("--index", dest="index_dir", help="index directory (setting index_dir)")
    index.add_argument("--profile", help=f"ranking profile: {', '.join(PROFILES)}")
    index.add_argument("--skip-invalid", action="store_true", help="skip invalid records instead of failing")
    index.add_argument("--allow-shrink", action="store_true",
                       help="publish even if more than max_delete_share of the index is deleted or more than "
                            "max_skip_share of the records are skipped")
    index.add_argument("--profile-change", action="store_true",
                       help="publish even though the published index was built with another profile")
    index.add_argument("--rebuild", action="store_true",
                       help="build the neighbour graphs and candidate lists anew instead of updating the published "
                            "ones (see incremental_max_share)")
    index.add_argument("--cluster", metavar="tcp://HOST:PORT",
                       help="embed on the workers of this Dask scheduler (setting cluster)")
    index.add_argument("--quiet", action="store_true", help="only errors and the final summary")
    index.add_argument("--log-json", action="store_true",
                       help="one JSON object per line on stderr (start, progress, stage_done, summary, error)")

    related = commands.add_parser("related", help="related stories of an indexed article")
    related.add_argument("id", help="article id")
    related.add_argument("--index", dest="index_dir", help="index directory (setting index_dir)")
    related.add_argument("--profile", help="ranking profile the index was built with")
    related.add_argument("-k", type=int, help="number of stories (default: the placement's, else setting default_k)")
    related.add_argument("--placement", help="named placement whose ranking options apply (`recommender settings`)")
    related.add_argument("--min-relatedness", type=float, help="leave out stories below this relatedness (0..1)")
    related.add_argument("--fallback", choices=("none", "recent_same_section", "recent"),
                         help="fill a short list with the newest stories")
    related.add_argument("--only-before", action="store_true", default=None,
                         help="only stories published before the article (background)")
    related.add_argument("--prefer-lang", help="stories in this language first, the others after them")
    related.add_argument("--max-per-story", type=int, help="at most this many pieces of one story")
    _filter_arguments(related)
    related.add_argument("--json", action="store_true", help="print JSON instead of a table")

    serve = commands.add_parser("serve", help="serve the related-links API over HTTP")
    serve.add_argument("--index", dest="index_dir", help="index directory (setting index_dir)")
    serve.add_argument("--profile", help="ranking profile the index was built with")
    serve.add_argument("--host", help="address to listen on (setting host)")
    serve.add_argument("--port", type=int, help="port (setting port)")
    serve.add_argument("--workers", type=int, help="worker processes (setting workers)")

    backup = commands.add_parser("backup-state", help="copy the editors' state files (online, consistent)")
    backup.add_argument("destination", help="folder to write editorial.sqlite and live.sqlite into")

    copy = commands.add_parser("publish-copy", help="publish the snapshot an index serves in another index "
                                                    "directory (a replica's disk): copied, verified, switched atomically")
    copy.add_argument("source", help="index directory (or snapshot) whose served snapshot is copied")
    copy.add_argument("destination", help="index directory the replica serves")

    evaluate = commands.add_parser("evaluate", help="measure ranking quality on a labelled dataset folder")
    evaluate.add_argument("dataset", help="folder with articles.jsonl and optionally pairs.tsv")
    evaluate.add_argument("--profile", help="profile to evaluate (default: setting profile)")
    evaluate.add_argument("--baselines", default=",".join(BASELINES),
                          help="comma-separated profiles to report beside it ('' for none)")
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bar")

    commands.add_parser("profiles", help="list the ranking profiles")
    commands.add_parser("settings", help="list every setting with its default and meaning")
    return parser


def _filter_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--lang", action="append", default=[], help="only articles in this language (repeatable)")
    parser.add_argument("--section", action="append", default=[], help="only this section (repeatable)")
    parser.add_argument("--max-age-days", type=float, help="only articles at most this many days old")
    parser.add_argument("--exclude", action="append", default=[], help="never suggest this id (repeatable)")


def _settings(args: argparse.Namespace) -> Settings:
    return load_settings(
        args.config,
        index_dir=getattr(args, "index_dir", None),
        profile=getattr(args, "profile", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        workers=getattr(args, "workers", None),
        cluster=getattr(args, "cluster", None),
    )


# A run the shrink guard or the profile check refused: nothing is wrong with the job, the export may be.
EXIT_REFUSED = 3


def cmd_index(args: argparse.Namespace) -> int:
    mode = args.log_mode
    settings = _settings(args)
    get_profile(settings.profile)
    event("start", f"indexing {', '.join(args.corpus)} into {settings.index_dir} with profile "
                 f"'{settings.profile}'" + (f" on the cluster {settings.cluster}" if settings.cluster else ""),
                 corpus=args.corpus, index_dir=settings.index_dir, profile=settings.profile,
                 cluster=settings.cluster or None)
    try:
        with _sigterm_interrupts():
            guards = Guards(args.allow_shrink, args.profile_change, args.rebuild)
            summary = build_index(args.corpus, settings.index_dir, settings, args.skip_invalid,
                                  joblog.progress_for(mode), guards)
    except PublishRefused as exc:
        return _report_failure(args, f"error: refusing to publish: {exc}", EXIT_REFUSED)
    for problem in summary.skipped:
        event("skipped", f"skipped {problem}", logging.WARNING, problem=str(problem))
    if summary.skipped:
        event("skipped", f"skipped {len(summary.skipped)} invalid record(s)", logging.WARNING,
                     count=len(summary.skipped))
    stages = ", ".join(f"{name} {seconds:.1f}s" for name, seconds in summary.seconds.items())
    changes = ", ".join(f"{count} {what.replace('_', ' ')}" for what, count in summary.changes.items())
    done = (f"indexed {summary.articles} articles ({summary.articles_per_second:.1f} articles/s; {stages}) "
            f"with profile '{settings.profile}' into {summary.snapshot}")
    if mode == "json":
        event("summary", done, articles=summary.articles, **summary.changes,
                     skipped_invalid=len(summary.skipped), seconds={k: round(v, 3) for k, v in summary.seconds.items()},
                     articles_per_second=round(summary.articles_per_second, 2), profile=settings.profile,
                     snapshot=str(summary.snapshot), files_read=len(summary.files), files=summary.files)
    else:
        print(f"{changes} (against the published index); read {len(summary.files)} file(s)")
        print(done)
    return 0


@contextmanager
def _sigterm_interrupts() -> Iterator[None]:
    """SIGTERM (what timeout(1), systemd and Airflow send) stops the job like Ctrl-C: the unfinished snapshot
    is removed, the published one is untouched, and the exit status is 130."""
    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, interrupt)
    except ValueError:  # not the main thread (an embedding application): leave its signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _filters(args: argparse.Namespace) -> Filters:
    if args.max_age_days is not None and args.max_age_days <= 0:
        raise UsageError("--max-age-days must be positive")
    return Filters(tuple(l.lower() for l in args.lang), tuple(args.section), args.max_age_days, tuple(args.exclude))


def cmd_related(args: argparse.Namespace) -> int:
    settings = _settings(args)
    if args.k is not None and not 1 <= args.k <= settings.max_k:
        raise UsageError(f"-k must be between 1 and {settings.max_k}")
    engine = Recommender.open(settings)
    values = {"min_relatedness": args.min_relatedness, "fallback": args.fallback, "only_before": args.only_before,
              "prefer_lang": args.prefer_lang, "max_per_story": args.max_per_story}
    try:
        request = options_from({name: v for name, v in values.items() if v is not None}, settings.max_k)
        related = engine.related(args.id, args.k, _filters(args), args.placement, request)
    except (PlacementError, UnknownPlacement) as exc:
        raise UsageError(str(exc)) from None
    if args.json:
        print(json.dumps(related_json(engine, args.id, related), ensure_ascii=False, indent=2))
        return 0
    source = engine.snapshot.articles[engine.snapshot.row_of[args.id]]
    print(f"{source['id']}: {source['title']}")
    if not related.suggestions:
        print("  (no related stories pass the filters)")
    for rank_number, suggestion in enumerate(related.suggestions, start=1):
        meta = engine.snapshot.articles[suggestion.row]
        print(f"{rank_number:>3}. {suggestion.score:.3f}  {suggestion.relation:<13} {meta['id']}  [{meta['lang']}, "
              f"{meta['section']}, {meta['published_at'][:10]}]  {meta['title']}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    # Imported here: the web stack (gunicorn, Flask, prometheus_client) loads only for the command that serves.
    from .serve.gunicorn_worker import exit_without_teardown
    from .serve.server import serve

    settings = _settings(args)
    try:
        serve(settings, announce=lambda line: print(line, flush=True))
    except SystemExit as stop:  # gunicorn's master ends with sys.exit once its workers are gone
        exit_without_teardown(stop.code)
    return 0


def cmd_backup_state(args: argparse.Namespace) -> int:
    """Copy state_dir's SQLite files with SQLite's online backup API, safe while servers write."""
    settings = _settings(args)
    if settings.state_url:
        raise UsageError("the state is in PostgreSQL (setting state_url): back it up with pg_dump")
    if not settings.state_dir:
        raise UsageError("the setting state_dir is empty: there is no state to back up")
    written = backup_state(settings.state_dir, args.destination)
    if not written:
        raise UsageError(f"no state files in {settings.state_dir}")
    print("\n".join(f"backed up {path}" for path in written))
    return 0


def cmd_publish_copy(args: argparse.Namespace) -> int:
    """Publish the snapshot source serves in the index directory destination (copied, verified, switched)."""
    target = copy_published(args.source, args.destination, keep=_settings(args).keep_snapshots)
    print(f"published {target.name} in {args.destination}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    settings = _settings(args)
    profile = get_profile(settings.profile)
    baselines = [get_profile(name) for name in args.baselines.split(",") if name.strip()]
    dataset = load_dataset(args.dataset)
    encoder = signal_encoder(settings, union_profile([profile, *baselines]))
    report = evaluate(dataset, profile, baselines, encoder, joblog.bar_progress(disable=args.quiet))
    if args.json:
        print(json.dumps(report, ensure_ascii=False, indent=2))
    else:
        print(format_report(report))
    return 0


def format_report(report: dict[str, Any]) -> str:
    """A readable table of an evaluation report: one row per profile."""
    rows = [(report["config"]["profile"]["name"], report)] + list(report["baselines"].items())
    columns: list[tuple[str, tuple[str, ...]]] = []
    for name, value in report.get("pairs", {}).items():
        columns.append((f"pearson {name}", ("pairs", name, "pearson")))
    for label, metrics in report.get("labels", {}).items():
        for metric in metrics:
            if metric != "n":
                columns.append((f"{label} {metric}", ("labels", label, metric)))
    widths = [max(len(title), 6) + 2 for title, _ in columns]
    lines = [f"dataset {report['config']['dataset']} ({report['config']['articles']} articles)"]
    lines.append(f"{'profile':<10}" + "".join(f"{title:>{w}}" for (title, _), w in zip(columns, widths)))
    for name, result in rows:
        cells = []
        for (_, path), width in zip(columns, widths):
            value: Any = result
            for key in path:
                value = value.get(key, {}) if isinstance(value, dict) else {}
            cells.append(f"{value:>{width}.4f}" if isinstance(value, float) else f"{'-':>{width}}")
        lines.append(f"{name:<10}" + "".join(cells))
    if report.get("diversity"):
        lines.append(f"diversity of the {rows[0][0]} profile's lists of 5 (same-cluster precision, mean similarity "
                     "inside a list):")
        lines += [f"  {variant:<18} {metrics['precision@5']:.4f}  {metrics['mean_pairwise_similarity']:.4f}"
                  for variant, metrics in report["diversity"].items()]
    return "\n".join(lines)


def cmd_profiles(args: argparse.Namespace) -> int:
    for profile in PROFILES.values():
        weights = ", ".join(f"{s.name} {s.weight:g}" for s in profile.signals if s.weight)
        print(f"{profile.name:<8} {weights:<36} {profile.description}")
    return 0


def cmd_settings(args: argparse.Namespace) -> int:
    for name, default, help_text in setting_docs():
        shown = default if default in ("(set)", "(not set)") else repr(default)  # a secret, already redacted
        print(f"{name:<28} {shown:<14} {help_text}")
    _print_placements(load_settings())
    return 0


def _print_placements(settings: Settings) -> None:
    """The placements a request may name: the built-in ones and those of the configuration in use."""
    try:
        placements = placements_from(settings.placements, settings.max_k)
    except PlacementError as exc:
        raise ConfigError(f"setting 'placements': {exc}") from None
    print("\nplacements (a request's placement=NAME; options left out come from the settings above):")
    for name, options in sorted(placements.items()):
        origin = "configured" if name in settings.placements else "built in"
        print(f"  {name:<20} {json.dumps(options.to_json())}  ({origin})")


COMMANDS = {"index": cmd_index, "related": cmd_related, "serve": cmd_serve, "evaluate": cmd_evaluate,
            "backup-state": cmd_backup_state, "publish-copy": cmd_publish_copy, "profiles": cmd_profiles,
            "settings": cmd_settings}


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (0 success, 1 failure, 2 bad usage, 3 publishing refused,
    130 interrupted)."""
    parser = _parser()
    args = parser.parse_args(argv)
    args.log_mode = joblog.choose_mode(getattr(args, "quiet", False), getattr(args, "log_json", False))
    with joblog.configured(args.log_mode):
        try:
            return COMMANDS[args.command](args)
        except (UsageError, ConfigError, UnknownProfile, ClusterAddressError) as exc:
            parser.exit(_report_failure(args, f"error: {exc}", 2))
        except EXPECTED_ERRORS as exc:
            return _report_failure(args, f"error: {exc}", 1)
        except KeyboardInterrupt:
            return _report_failure(args, "interrupted" + ("; the published index is unchanged"
                                                          if args.command == "index" else ""), 130)
    return 0


def _report_failure(args: argparse.Namespace, message: str, status: int) -> int:
    """One line on stderr (a JSON `error` event under --log-json, where usage errors also get one)."""
    if getattr(args, "log_json", False):
        event("error", message.removeprefix("error: "), logging.ERROR, exit_code=status)
    else:
        print(f"recommender: {message}", file=sys.stderr)
    return status


if __name__ == "__main__":
    sys.exit(main())
