"""Shared benchmark inputs, built once per session from :mod:`vision_qc.benchmark` (the same
cases ``vision-qc bench`` times)."""

import cv2
import pytest

from vision_qc.benchmark import frame_case, image_set_pngs

SIZES_WH = [(2048, 1536), (2448, 2048)]


@pytest.fixture(scope="session", params=SIZES_WH, ids=lambda s: f"{s[0]}x{s[1]}")
def case(request):
    return frame_case(request.param)


@pytest.fixture(params=[1, 0], ids=["1thread", "cvthreads"])
def cv_threads(request):
    """One OpenCV thread (the budget's case) or OpenCV's default."""
    before = cv2.getNumThreads()
    cv2.setNumThreads(request.param if request.param else -1)
    yield request.param
    cv2.setNumThreads(before)


def pytest_addoption(parser):
    parser.addoption("--budget-check", action="store_true",
                     help="fail when the whole-frame median exceeds vision_qc.budget.FRAME_BUDGET_MS")


def write_image_set(folder, size_wh, *, n_images: int, n_unique: int = 4):
    """``n_images`` PNG files of one recipe in ``folder`` (half of the scenes NG), made from
    ``n_unique`` rendered scenes copied round (decoding costs the same); returns the paths and
    the recipe. Batch and Dask throughput (and ``vision-qc bench``) use the same images:
    :func:`vision_qc.benchmark.image_set_pngs`."""
    pngs, recipe = image_set_pngs(size_wh, n_unique=n_unique)
    files = []
    for i in range(n_images):
        path = str(folder / f"part_{i:03d}.png")
        with open(path, "wb") as f:
            f.write(pngs[i % n_unique])
        files.append(path)
    return files, recipe


# batch and Dask throughput: the same image set, the same number of processes
THROUGHPUT_WORKERS = 2
THROUGHPUT_IMAGES = 32
# bench_batch's steady state: runs of this many images beside runs of THROUGHPUT_IMAGES
THROUGHPUT_STEADY_IMAGES = 128
THROUGHPUT_UNIQUE = 4   # scenes rendered; copied to THROUGHPUT_IMAGES files (decoding costs the same)
THROUGHPUT_SIZES_WH = [(1280, 1024), (2448, 2048)]


@pytest.fixture(scope="module", params=THROUGHPUT_SIZES_WH, ids=lambda s: f"{s[0]}x{s[1]}")
def image_set(request, tmp_path_factory):
    """(size, files, recipe): THROUGHPUT_IMAGES PNG files of one recipe (half of the scenes NG)
    in a folder of the requesting module's own."""
    size = request.param
    folder = tmp_path_factory.mktemp(f"{request.module.__name__}_{size[0]}x{size[1]}")
    files, recipe = write_image_set(folder, size, n_images=THROUGHPUT_IMAGES,
                                    n_unique=THROUGHPUT_UNIQUE)
    return size, files, recipe


def report_rate(benchmark, results: dict, *, tag: str, size, kind: str, n_images: int,
                workers: int, baseline: str, baseline_words: str) -> None:
    """Images per second of a throughput benchmark (from its median round), kept in
    ``results`` and printed beside the ``baseline`` case's rate when that one has run."""
    if benchmark.stats is None:          # --benchmark-disable: nothing measured
        return
    rate = n_images / benchmark.stats.stats.median      # the median resists a busy neighbour
    benchmark.extra_info.update(images=n_images, workers=workers, images_per_s=round(rate, 2))
    results[(size, kind)] = rate
    base = results.get((size, baseline))
    line = f"\n[{tag} {size[0]}x{size[1]}, {workers} workers] {kind}: {rate:.1f} images/s"
    if base and kind != baseline:
        line += f" ({100 * rate / base:.0f}% of {baseline_words})"
    print(line)
