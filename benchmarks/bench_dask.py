"""Batch throughput on a Dask cluster against the local process pool, same images, same cores.

Run: ``pytest benchmarks/bench_dask.py --benchmark-enable -s`` (needs the dask extra; ``-s``
shows the summary lines). The cluster is a real ``dask scheduler`` and WORKERS ``dask worker``
processes (one thread each) on loopback, started once per module like a cluster that is
already running; the local pool has WORKERS processes and starts in every round (as
``vision-qc inspect`` does). Every round writes ``results.jsonl`` (fsync per record), the NG
overlays and the report thumbnails into a fresh folder; on the cluster a round also includes
setting the recipe up on the workers. Cases: the local pool, the cluster with shared storage
(workers read the images and write the outputs), and the cluster with the image bytes sent
from the client and the outputs sent back. images/s = images per round / median round time.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest

from vision_qc.shell.batch import run_batch
from vision_qc.shell.records import JsonlWriter, load_records

import distributed  # noqa: F401  (the dask extra: scripts/setup.sh installs it for the tests)

from vision_qc.shell.dask_batch import run_dask_batch

from conftest import THROUGHPUT_IMAGES as N_IMAGES
from conftest import THROUGHPUT_WORKERS as WORKERS
from conftest import report_rate

_results: dict = {}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    """A client of `dask scheduler` + WORKERS `dask worker --nthreads 1` on loopback."""
    folder = tmp_path_factory.mktemp("cluster")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    address = f"tcp://127.0.0.1:{port}"
    dask = [sys.executable, "-m", "dask"]
    procs = []

    def start(args):
        with open(folder / f"{len(procs)}.log", "w") as log:
            procs.append(subprocess.Popen(dask + args, cwd=folder, stdout=log,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL))

    start(["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"])
    for i in range(WORKERS):
        start(["worker", address, "--host", "127.0.0.1", "--nthreads", "1", "--no-dashboard",
               "--death-timeout", "30", "--local-directory", str(folder / f"w{i}")])
    try:
        c = distributed.Client(address, timeout=60, set_as_default=False)
        try:
            c.wait_for_workers(WORKERS, timeout=60)
            yield c
        finally:
            c.close()
    finally:
        for group in (procs[1:], procs[:1]):       # workers, then the scheduler
            for p in group:
                p.terminate()
            for p in group:
                try:
                    p.wait(15)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


def _fresh_out():
    return (tempfile.mkdtemp(prefix="bench_dask_"),), {}


def _check_and_clean(outs, files):
    recs = load_records(os.path.join(outs[-1], "results.jsonl")).records
    for o in outs:
        shutil.rmtree(o, ignore_errors=True)
    assert sorted(r["file"] for r in recs) == files
    assert [(r["file"], r["error"]) for r in recs if r["verdict"] == "ERROR"] == []
    return recs


def _report(kind: str, size, benchmark):
    report_rate(benchmark, _results, tag="bench_dask", size=size, kind=kind, n_images=N_IMAGES,
                workers=WORKERS, baseline="local pool", baseline_words="the local pool")


def test_local_pool(benchmark, image_set):
    size, files, recipe = image_set
    outs = []

    def run(out):
        outs.append(out)
        with JsonlWriter(os.path.join(out, "results.jsonl")) as writer:
            run_batch(files, recipe, out_dir=out, on_record=writer.write, workers=WORKERS)

    benchmark.pedantic(run, setup=_fresh_out, rounds=5, iterations=1, warmup_rounds=1)
    _check_and_clean(outs, files)
    benchmark.group = f"dask vs pool {size[0]}x{size[1]}"
    _report("local pool", size, benchmark)


@pytest.mark.parametrize("send_bytes", [False, True], ids=["shared", "send-bytes"])
def test_dask_cluster(benchmark, image_set, client, send_bytes):
    size, files, recipe = image_set
    outs = []

    def run(out):
        outs.append(out)
        with JsonlWriter(os.path.join(out, "results.jsonl")) as writer:
            run_dask_batch(files, recipe, client=client, out_dir=out, on_record=writer.write,
                           send_bytes=send_bytes)

    benchmark.pedantic(run, setup=_fresh_out, rounds=5, iterations=1, warmup_rounds=1)
    _check_and_clean(outs, files)
    benchmark.group = f"dask vs pool {size[0]}x{size[1]}"
    _report("dask " + ("send-bytes" if send_bytes else "shared storage"), size, benchmark)


def test_interleaved_pool_vs_cluster(image_set, client):
    """The same comparison in alternating rounds (pool, cluster shared, cluster send-bytes,
    pool, ...): on a shared machine the load drifts between tests; alternating keeps the
    ratios fair. Prints the medians; not a pytest-benchmark timing."""
    import statistics
    import time

    size, files, recipe = image_set
    cases = {
        "local pool": lambda out, w: run_batch(files, recipe, out_dir=out, on_record=w,
                                               workers=WORKERS),
        "dask shared storage": lambda out, w: run_dask_batch(
            files, recipe, client=client, out_dir=out, on_record=w),
        "dask send-bytes": lambda out, w: run_dask_batch(
            files, recipe, client=client, out_dir=out, on_record=w, send_bytes=True),
    }
    times: dict = {k: [] for k in cases}
    for _ in range(5):
        for kind, run in cases.items():
            out = tempfile.mkdtemp(prefix="bench_dask_")
            try:
                t0 = time.perf_counter()
                with JsonlWriter(os.path.join(out, "results.jsonl")) as writer:
                    run(out, writer.write)
                times[kind].append(time.perf_counter() - t0)
                _check_and_clean([out], files)
            finally:
                shutil.rmtree(out, ignore_errors=True)
    rates = {k: N_IMAGES / statistics.median(v) for k, v in times.items()}
    pool = rates["local pool"]
    print(f"\n[bench_dask {size[0]}x{size[1]}, {WORKERS} workers, interleaved] " + ", ".join(
        f"{k} {r:.1f} images/s ({100 * r / pool:.0f}%)" for k, r in rates.items()))
