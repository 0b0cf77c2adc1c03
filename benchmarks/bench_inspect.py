"""Per-frame inspection time, whole frame and per stage, against the budget.

Run: ``pytest benchmarks/bench_inspect.py --benchmark-enable``. Correctness is checked
outside the timed calls; the whole-frame median is compared with the budget
(:mod:`vision_qc.budget`) only when ``--budget-check`` is given (CI runs without it: shared
machines are noisy).
"""


from vision_qc.budget import FRAME_BUDGET_MS
from vision_qc.engine.edges import find_edges
from vision_qc.engine.judge import judge, station_status
from vision_qc.engine.sampling import sample_profiles, sample_stations
from vision_qc.benchmark import naive_profile_ms
from vision_qc.inspector import SMOOTH_STATIONS, to_gray


def test_inspect_whole_frame(benchmark, case, cv_threads, request):
    insp = case.inspector
    res = insp.inspect(case.frame)
    assert res.verdict == case.truth["verdict"]
    benchmark.extra_info.update(stations=len(insp), size=list(case.size_wh), budget_ms=FRAME_BUDGET_MS)
    benchmark(insp.inspect, case.frame)
    if request.config.getoption("--budget-check") and benchmark.stats is not None:
        median_ms = benchmark.stats.stats.median * 1e3
        assert median_ms <= FRAME_BUDGET_MS, f"median {median_ms:.2f} ms over the {FRAME_BUDGET_MS} ms budget"


def test_stage_sample(benchmark, case):
    """Sampling as the inspector does it: one compiled pass from the stations."""
    insp = case.inspector
    gray = to_gray(case.frame)
    prof = benchmark(sample_stations, gray, insp.sampler)
    assert prof.shape == (len(insp.maps.t_px), len(insp))


def test_stage_sample_remap(benchmark, case):
    """The same bytes by one cv2.remap of the maps built at init (what the inspector did
    before the compiled sampler): the comparison for test_stage_sample."""
    insp = case.inspector
    gray = to_gray(case.frame)
    prof = benchmark(sample_profiles, gray, insp.maps)
    assert (prof == sample_stations(gray, insp.sampler)).all()


def test_stage_edges(benchmark, case):
    insp = case.inspector
    r = insp.recipe
    prof = sample_stations(to_gray(case.frame), insp.sampler)
    edges = benchmark(find_edges, prof, step_px=insp.maps.step_px, bright=r.polarity == "bright",
                      width_px=r.width_mm / r.mm_per_px, smooth_stations=SMOOTH_STATIONS, closed=r.closed)
    assert edges.found.mean() > 0.9


def test_stage_judge(benchmark, case):
    insp = case.inspector
    res = insp.inspect(case.frame)
    r = insp.recipe

    def run():
        status = station_status(res.present, res.width_mm, res.offset_mm, width_min_mm=r.width_min_mm,
                                width_max_mm=r.width_max_mm, max_offset_mm=r.max_offset_mm)
        return judge(status, arc_mm=insp.arc_mm, length_mm=insp.length_mm, closed=r.closed,
                     width_mm=res.width_mm, offset_mm=res.offset_mm, present=res.present,
                     xy_px=insp.stations.xy, width_min_mm=r.width_min_mm, width_max_mm=r.width_max_mm,
                     max_offset_mm=r.max_offset_mm, min_defect_mm=r.min_defect_mm)

    defects = benchmark(run)
    assert len(defects) == len(res.defects)


def test_naive_profile_line_loop(benchmark, case):
    """What a user would write by hand: one skimage.measure.profile_line per station, on a
    sample of stations (vision-qc bench scales it to the whole path)."""
    ms = benchmark.pedantic(naive_profile_ms, args=(case,), kwargs={"sample_stations": 100},
                            rounds=1, iterations=1)
    assert ms > 0
