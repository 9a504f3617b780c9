"""Property-based fuzzing of the HTTP API from its own /openapi.json (schemathesis, in-process over WSGI).

For every operation, valid (positive) and schema-violating (negative) requests, sent without a token, with a
wrong one and with the right one: no 5xx, every status documented for the operation, every error a JSON
{"error", "message"} object, every answer matching its documented schema.
"""
from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

import pytest
from conftest import record, write_jsonl

from recommender.config import load_settings
from recommender.jobs.index_job import build_index
from recommender.serve.app import create_app

TOKEN = "fuzz-token-0f9a7c"
AUTHS = {"no token": None, "wrong token": "not-the-token", "token": TOKEN}


@dataclass
class FuzzReport:
    """How many cases were sent per operation, and the ones that failed a check."""

    cases: Counter = field(default_factory=Counter)
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{sum(self.cases.values())} cases over {len(self.cases)} operations; statuses "
                f"{dict(sorted(self.statuses.items()))}; {len(self.failures)} failures")


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """A small tfidf index served with a token; writes unlimited so the fuzzer reaches every handler."""
    tmp = tmp_path_factory.mktemp("fuzz")
    corpus = write_jsonl(tmp / "c.jsonl", [record(f"a{i}", title=f"Donau {i}", body=f"Text {i} über die Donau und Passau.")
                                           for i in range(5)])
    settings = load_settings(environ={}, profile="tfidf", index_dir=str(tmp / "index"), cache_dir="",
                             state_dir=str(tmp / "state"), max_request_bytes=20_000, write_rate_limit="",
                             api_token=TOKEN)
    build_index([corpus], settings.index_dir, settings)
    return create_app(settings)


def error_shape(response) -> str | None:
    """Why an error answer is not the documented JSON error object, or None when it is."""
    if response.status_code < 400:
        return None
    try:
        data = response.json()
    except ValueError:
        return f"{response.status_code} answer is not JSON"
    if not (isinstance(data, dict) and isinstance(data.get("error"), str) and isinstance(data.get("message"), str)):
        return f"{response.status_code} answer is not {{error, message}}: {data!r:.200}"
    return None


def fuzz(app, max_examples: int) -> FuzzReport:
    """Run every operation of the app's /openapi.json, positive and negative, under every AUTHS header."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    checks = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    report = FuzzReport()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for auth_name, token in AUTHS.items():

                @settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                          suppress_health_check=list(HealthCheck))
                @given(case=operation.as_strategy(generation_mode=mode))
                def run(case):
                    report.cases[operation.label] += 1
                    # The generated case may carry a made-up Authorization header: ours replaces it.
                    headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
                    if token:
                        headers["Authorization"] = f"Bearer {token}"
                    case.headers = headers
                    response = case.call()
                    report.statuses[response.status_code] += 1
                    problem = error_shape(response)
                    try:
                        case.validate_response(response, checks=checks, headers=headers)
                    except BaseException as exc:  # schemathesis raises a group of failures: keep them all
                        problem = f"{problem or ''} {exc}".strip()
                    if problem:
                        report.failures.append(f"{operation.label} [{mode.value}, {auth_name}]: {problem[:600]}")

                try:
                    run()
                except Unsatisfiable:
                    pass  # no parameters to break: an operation without input has no negative cases
    return report


def test_fuzz_every_operation_with_and_without_a_token(app):
    report = fuzz(app, max_examples=25)
    print(report)
    assert report.failures == [], "\n".join(report.failures[:20])
    spec = app.test_client().get("/openapi.json").get_json()
    described = {f"{m.upper()} {path}" for path, ops in spec["paths"].items() for m in ops} - {"GET /openapi.json"}
    assert set(report.cases) == described and sum(report.cases.values()) > 1500  # every operation but the spec
    assert {200, 400, 401, 403, 404, 422} <= set(report.statuses)  # the fuzzer reached the handlers' checks
    # A valid article PUT gets past every check: 201 for a new id, or 409 when the fuzzer had taken that id
    # down before (a DELETE of the same generated id; which of the two comes first varies between runs).
    assert {201, 409} & set(report.statuses)


@pytest.mark.slow
def test_fuzz_long_run(app):
    report = fuzz(app, max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")))
    print(report)
    assert report.failures == [], "\n".join(report.failures[:20])
