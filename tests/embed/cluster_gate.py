"""Dask worker preload for tests/embed/test_cluster_faults.py: holds batches at a gate so that a fault lands in the
middle of a job, and logs how many texts each batch embedded so that a test can see a rerun resume.

CLUSTER_FAULTS_GATE names a folder: the first CLUSTER_FAULTS_GATE_PASSES batches the workers start (over
all workers: each takes a `pass-<n>` ticket file) run; the others wait (leaving a `held-<pid>-<batch>`
marker) until a file `open` appears there. Every finished batch appends its size to `embedded.log`. Tasks name `recommender.embed.cluster.encode_batch` by reference, so patching the module here
changes what this worker runs and nothing else.
"""
import os
import time
from pathlib import Path

from recommender.embed import cluster

GATE = Path(os.environ["CLUSTER_FAULTS_GATE"])
PASSES = int(os.environ.get("CLUSTER_FAULTS_GATE_PASSES", "2"))
# A worker may import a preload twice: wrap the original function, never the wrapper.
_encode_batch = getattr(cluster.encode_batch, "__wrapped__", cluster.encode_batch)


def _take_pass() -> bool:
    for n in range(PASSES):
        try:
            os.close(os.open(GATE / f"pass-{n}", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            return True
        except FileExistsError:
            continue
    return False


def gated_encode_batch(recipe, number, texts):
    # Which batches a scheduler starts first is its business: the tickets count batches, not numbers.
    if number < 0:  # a test warming the worker's model up: neither gated nor counted
        return _encode_batch(recipe, number, texts)
    if not (GATE / "open").exists() and not _take_pass():
        (GATE / f"held-{os.getpid()}-{number}").touch()
        while not (GATE / "open").exists():
            time.sleep(0.05)
    result = _encode_batch(recipe, number, texts)
    with open(GATE / "embedded.log", "a", encoding="utf-8") as log:
        log.write(f"{len(texts)}\n")
    return result


gated_encode_batch.__wrapped__ = _encode_batch
cluster.encode_batch = gated_encode_batch
