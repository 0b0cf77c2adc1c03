"""Batch throughput (images/s) against its floor: decoding the same images alone, with the same
number of worker processes and the same pool machinery (DESIGN §7: "throughput close to what
image decoding alone allows on the same cores").

Run: ``pytest benchmarks/bench_batch.py --benchmark-enable -s`` (``-s`` shows the summary
lines). Each round starts its own pool (worker start-up is part of what a user waits for) and
writes into a fresh output folder; the workers are forked from the forkserver the warm-up
round started (it has loaded the compiled kernels once: vision_qc.shell.batch_warmup). The
batch round also writes what ``vision-qc inspect`` writes by default: ``results.jsonl`` (one
write per record, fsync'd in groups; each file's outputs fsync'd before its record), overlays
of NG parts (at most 1600 px wide: the 2448×2048 frames' at 1224×1024), the report thumbnails
and NG width profiles. The CSV tables and the HTML report, built once at the end of a run,
are not timed. Correctness is checked outside the timed calls.
images/s = images per round / median round time.

Whole runs and the steady state. A run of 32 images lasts 0.2-0.7 s on an idle machine, so
what a run costs whatever its length (starting the pool and its workers: the first file reached
a worker 25-80 ms after the start; each worker's first image; the tail when one worker has
finished and the other has not: 10-100 ms) is part of its rate, while a real batch is
thousands of images. ``test_steady_state_batch_vs_floor`` therefore also times
runs of 128 images in the same rounds and splits each kind's time into a fixed part and a part
per image (``vision_qc.benchmark.steady_state``); the steady-state rate, one over the part per
image, is the throughput of a long batch. It reports both ratios, whole run and steady state,
with the floor and the batch measured the same way (same files, same pool, same rounds); it
is the function ``vision-qc bench`` runs (``vision_qc.shell.bench.batch_throughput``). With
``--benchmark-disable`` (CI) it runs once on a few images, only to keep it working. It also
prints each kind's CPU time per image over all its processes and the floor's over the batch's
(``vision_qc.shell.bench.run_cpu_s``): on a machine shared with other work the wall-time
ratio follows how the scheduler shares the cores out (at a load of 8-10 on 2 cores the full
batch came out faster than decoding alone); the CPU ratio does not.
"""

import os
import shutil
import tempfile

import pytest

from vision_qc.shell.batch import DATA_DIR, OVERLAY_DIR, decode_file, run_batch
from vision_qc.shell.records import JsonlWriter, artifact_stem, load_records

from conftest import THROUGHPUT_IMAGES as N_IMAGES
from conftest import THROUGHPUT_SIZES_WH
from conftest import THROUGHPUT_STEADY_IMAGES as STEADY_IMAGES
from conftest import THROUGHPUT_WORKERS as WORKERS
from conftest import report_rate

_results: dict = {}


def _fresh_out():
    return (tempfile.mkdtemp(prefix="bench_batch_"),), {}


def _report(kind: str, size, benchmark):
    report_rate(benchmark, _results, tag="bench_batch", size=size, kind=kind, n_images=N_IMAGES,
                workers=WORKERS, baseline="decode", baseline_words="the decode-only floor")


def test_decode_only_floor(benchmark, image_set):
    size, files, recipe = image_set
    outs = []

    def run(out):
        outs.append(out)
        got = []
        run_batch(files, recipe, out_dir=None, on_record=got.append, workers=WORKERS,
                  task=decode_file)
        return got

    got = benchmark.pedantic(run, setup=_fresh_out, rounds=5, iterations=1, warmup_rounds=1)
    for out in outs:
        shutil.rmtree(out, ignore_errors=True)
    assert len(got) == N_IMAGES and all(r["verdict"] == "OK" for r in got)
    benchmark.group = f"batch {size[0]}x{size[1]}"
    _report("decode", size, benchmark)


def test_batch_inspect_no_outputs(benchmark, image_set):
    """Read and inspect only (records kept in memory; no overlays, thumbnails, jsonl): splits
    the gap to the floor into inspection and per-file outputs."""
    size, files, recipe = image_set
    got = []

    def run():
        got.clear()
        run_batch(files, recipe, out_dir=None, on_record=got.append, workers=WORKERS)

    benchmark.pedantic(run, rounds=5, iterations=1, warmup_rounds=1)
    assert sorted(r["file"] for r in got) == files
    benchmark.group = f"batch {size[0]}x{size[1]}"
    _report("inspect only", size, benchmark)


def test_batch_inspect(benchmark, image_set):
    size, files, recipe = image_set
    outs = []

    def run(out):
        outs.append(out)
        with JsonlWriter(os.path.join(out, "results.jsonl")) as writer:
            run_batch(files, recipe, out_dir=out, on_record=writer.write, workers=WORKERS)
        return out

    out = benchmark.pedantic(run, setup=_fresh_out, rounds=5, iterations=1, warmup_rounds=1)
    recs = load_records(os.path.join(out, "results.jsonl")).records
    written = {d: sorted(os.listdir(os.path.join(out, d))) for d in (OVERLAY_DIR, DATA_DIR)}
    for o in outs:
        shutil.rmtree(o, ignore_errors=True)
    assert sorted(r["file"] for r in recs) == files
    errors = [(r["file"], r["error"]) for r in recs if r["verdict"] == "ERROR"]
    assert errors == []
    # every output vision-qc inspect writes by default: NG overlays, thumbnails, NG profiles
    ng = sorted(artifact_stem(r["file"]) for r in recs if r["verdict"] == "NG")
    assert ng and len(ng) < len(recs)
    assert written[OVERLAY_DIR] == [f"{stem}.jpg" for stem in ng]
    assert sorted(n for n in written[DATA_DIR] if n.endswith(".npz")) == [f"{s}.npz" for s in ng]
    assert sum(n.endswith(".jpg") for n in written[DATA_DIR]) == len(recs)
    benchmark.group = f"batch {size[0]}x{size[1]}"
    _report("batch", size, benchmark)


def test_interleaved_batch_vs_floor(image_set):
    """The same comparison in alternating rounds (floor, read+inspect, batch, floor, ...): on a
    shared machine the load drifts between tests; alternating keeps the ratios fair. Prints the
    medians; not a pytest-benchmark timing."""
    import statistics
    import time

    size, files, recipe = image_set
    floor_s, inspect_s, batch_s = [], [], []
    for _ in range(4):
        t0 = time.perf_counter()
        run_batch(files, recipe, out_dir=None, on_record=lambda r: None, workers=WORKERS,
                  task=decode_file)
        floor_s.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        run_batch(files, recipe, out_dir=None, on_record=lambda r: None, workers=WORKERS)
        inspect_s.append(time.perf_counter() - t0)
        out = tempfile.mkdtemp(prefix="bench_batch_")
        try:
            t0 = time.perf_counter()
            with JsonlWriter(os.path.join(out, "results.jsonl")) as writer:
                run_batch(files, recipe, out_dir=out, on_record=writer.write, workers=WORKERS)
            batch_s.append(time.perf_counter() - t0)
        finally:
            shutil.rmtree(out, ignore_errors=True)
    floor = N_IMAGES / statistics.median(floor_s)
    inspect = N_IMAGES / statistics.median(inspect_s)
    batch = N_IMAGES / statistics.median(batch_s)
    print(f"\n[bench_batch {size[0]}x{size[1]}, {WORKERS} workers, interleaved] decode-only floor "
          f"{floor:.1f} images/s, read+inspect {inspect:.1f} ({100 * inspect / floor:.0f}%), "
          f"batch {batch:.1f} images/s ({100 * batch / floor:.0f}%)")
    assert batch > 0 and inspect > 0 and floor > 0


@pytest.mark.parametrize("size", THROUGHPUT_SIZES_WH, ids=lambda s: f"{s[0]}x{s[1]}")
def test_steady_state_batch_vs_floor(size, request):
    """Runs of N_IMAGES and STEADY_IMAGES images in alternating rounds (floor, read + inspect,
    batch at each length): the whole-run ratio at both lengths and the steady-state ratio.
    Prints the figures; not a pytest-benchmark timing."""
    from vision_qc.shell.bench import batch_throughput

    enabled = not request.config.getoption("benchmark_disable", False) or \
        request.config.getoption("benchmark_enable", False)
    n, n_steady, rounds = (N_IMAGES, STEADY_IMAGES, 4) if enabled else (4, 8, 1)
    t = batch_throughput(size, n_images=n, workers=WORKERS, rounds=rounds,
                         steady_images=n_steady)    # raises if a record is missing or wrong
    assert t["images"] == n and t["large_run"]["images"] == n_steady
    runs = ", ".join(f"run of {x['images']}: floor {x['floor_images_per_s']:.1f}, batch "
                     f"{x['batch_images_per_s']:.1f} images/s ({100 * x['batch_vs_floor']:.0f}%)"
                     for x in (t, t["large_run"]))
    if t["batch_vs_floor_steady"] is None:
        steady = "steady state not measurable (the load changed under the rounds)"
    else:
        steady = (f"steady state: floor {t['floor_steady_images_per_s']:.1f}, read+inspect "
                  f"{t['inspect_steady_images_per_s']:.1f} "
                  f"({100 * t['inspect_vs_floor_steady']:.0f}%), batch "
                  f"{t['batch_steady_images_per_s']:.1f} images/s "
                  f"({100 * t['batch_vs_floor_steady']:.0f}%); fixed per run: floor "
                  f"{t['floor_fixed_s']:.3f} s, batch {t['batch_fixed_s']:.3f} s")
    if t.get("batch_vs_floor_cpu") is not None:
        cpu = t["cpu_ms_per_image"]
        steady += (f"; CPU per image ({t['cpu_measure']}): floor {cpu['floor']:.1f} ms, "
                   f"read+inspect {cpu['inspect']:.1f} ms, batch {cpu['batch']:.1f} ms "
                   f"({100 * t['batch_vs_floor_cpu']:.0f}%)")
    print(f"\n[bench_batch {size[0]}x{size[1]}, {WORKERS} workers, {rounds} rounds] {runs}; "
          f"{steady}")
