"""`vision-qc inspect --dask`: a real `dask scheduler` and `dask worker` processes on loopback
give the same records as the local run; a worker killed with kill -9 mid-batch costs no record
and doubles none; resume; send-bytes mode; an unreachable scheduler and a missing Dask are
clear exit-2 errors. Images: `vision-qc generate` at 1280x1024, one shared recipe."""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest

from full_disk import filling_after
from vision_qc.cli import main
from vision_qc.shell import dask_batch, inspect_cmd
from vision_qc.shell.batch import BatchAbort
from vision_qc.shell.records import JsonlWriter, artifact_stem, load_records

N_IMAGES = 12
DASK = [sys.executable, "-m", "dask"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Cluster:
    """A `dask scheduler` and `dask worker` processes (no nanny: killing a worker's process
    kills the worker), on loopback, each with its own folder (their working directory, so
    relative paths do not resolve there)."""

    def __init__(self, folder, n_workers: int = 2):
        self.folder = folder
        os.makedirs(folder, exist_ok=True)
        port = _free_port()
        self.address = f"tcp://127.0.0.1:{port}"
        self.procs: list[subprocess.Popen] = []
        self.workers: dict[str, subprocess.Popen] = {}      # worker name -> process
        self.scheduler = self._start("scheduler", ["scheduler", "--host", "127.0.0.1",
                                                   "--port", str(port), "--no-dashboard"])
        for i in range(n_workers):
            name = f"w{i}"
            os.makedirs(folder / name, exist_ok=True)
            self.workers[name] = self._start(name, [
                "worker", self.address, "--name", name, "--host", "127.0.0.1",
                "--nthreads", "1", "--no-nanny", "--no-dashboard", "--death-timeout", "30",
                "--local-directory", str(folder / name)], cwd=folder / name)

    def _start(self, name, args, cwd=None) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "w") as log:
            p = subprocess.Popen(DASK + args, cwd=cwd or self.folder, stdout=log,
                                 stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def wait_ready(self, timeout_s: float = 60.0):
        from distributed import Client

        client = Client(self.address, timeout=timeout_s, set_as_default=False)
        client.wait_for_workers(len(self.workers), timeout=timeout_s)
        return client

    def stop(self) -> None:
        # workers first: a worker told to stop while its scheduler goes away can hang in close
        workers = [p for p in self.procs if p is not self.scheduler]
        for group in (workers, [self.scheduler]):
            for p in group:
                if p.poll() is None:
                    p.terminate()
            for p in group:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(5)


@contextlib.contextmanager
def running_cluster(folder, n_workers=2):
    import distributed  # noqa: F401  (the dask extra; scripts/setup.sh installs it for the tests)
    cluster = Cluster(folder, n_workers)
    try:
        cluster.client = cluster.wait_ready()
        try:
            yield cluster
        finally:
            cluster.client.close()
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with running_cluster(tmp_path_factory.mktemp("cluster")) as c:
        yield c


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """(folder, recipe file, sorted image paths): 12 generated 1280x1024 scenes."""
    folder = tmp_path_factory.mktemp("dask_images") / "imgs"
    assert main(["generate", str(folder), "--n", str(N_IMAGES), "--size", "1280x1024",
                 "--seed", "1"]) == 0
    paths = sorted(str(p) for p in folder.glob("*.png"))
    assert len(paths) == N_IMAGES
    return str(folder), str(folder / "recipe.yaml"), paths


def _comparable(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in ("timing_ms",)}


def _records(out) -> dict:
    return {r["file"]: _comparable(r) for r in load_records(os.path.join(out, "results.jsonl"))
            .records}


def _raw_lines(out) -> list[dict]:
    with open(os.path.join(out, "results.jsonl"), encoding="ascii") as f:
        return [json.loads(line) for line in f if line.strip()]


@pytest.fixture(scope="module")
def local_run(images, tmp_path_factory):
    """The reference: the same images in this process (--workers 1)."""
    folder, recipe, _ = images
    out = str(tmp_path_factory.mktemp("local") / "out")
    rc = main(["inspect", folder, "--recipe", recipe, "--out", out, "--workers", "1", "-q"])
    assert rc in (0, 1)
    return rc, out, _records(out)


def _artifacts(out) -> set[tuple[str, str]]:
    """(folder, name) of the per-file outputs, each name's input hash checked against the
    records (the report finds them by it) and then dropped: ``ws_0003_<hash>.jpg`` -> the
    same for a relative and an absolute input path."""
    stems = {artifact_stem(r["file"]) for r in _raw_lines(out)}
    found = set()
    for sub in ("overlays", "report_data"):
        for name in os.listdir(os.path.join(out, sub)):
            stem, ext = os.path.splitext(name)
            assert stem in stems, name
            found.add((sub, stem.rsplit("_", 1)[0] + ext))
    return found


def test_cluster_run_matches_the_local_run(images, cluster, local_run, tmp_path, monkeypatch):
    folder, recipe, _ = images
    rc_local, out_local, want = local_run
    # relative inputs and --out: the workers, elsewhere, get absolute paths
    monkeypatch.chdir(os.path.dirname(folder))
    out = str(tmp_path / "out")
    rc = main(["inspect", os.path.basename(folder), "--recipe", recipe, "--out", out,
               "--dask", cluster.address, "-q"])
    assert rc == rc_local
    got = {os.path.join(os.path.dirname(folder), f): r for f, r in _records(out).items()}
    for r in got.values():
        r["file"] = os.path.join(os.path.dirname(folder), r["file"])
    assert got == want
    assert len(_raw_lines(out)) == N_IMAGES
    # overlays and report data written by the workers, under the same names
    assert _artifacts(out) == _artifacts(out_local)
    assert os.path.isfile(os.path.join(out, "report.html"))
    with open(os.path.join(out, "results.csv")) as f:
        assert len(f.read().splitlines()) == N_IMAGES + 1
    with open(os.path.join(out, "run.json")) as f:
        assert json.load(f)["sessions"][-1]["dask"] == cluster.address
    # the run's recipe plugin is gone from the workers afterwards
    plugins = cluster.client.run(lambda dask_worker: sorted(dask_worker.plugins))
    assert not any(n.startswith("vision-qc") for names in plugins.values() for n in names)


def test_send_bytes_writes_the_outputs_here(images, cluster, local_run, tmp_path):
    folder, recipe, _ = images
    rc_local, out_local, want = local_run
    out = str(tmp_path / "out")
    rc = main(["inspect", folder, "--recipe", recipe, "--out", out, "--dask", cluster.address,
               "--dask-send-bytes", "-q"])
    assert rc == rc_local
    assert _records(out) == want
    assert _artifacts(out) == _artifacts(out_local)
    for name in os.listdir(os.path.join(out, "overlays")):
        with open(os.path.join(out, "overlays", name), "rb") as f:
            assert f.read(2) == b"\xff\xd8"              # whole JPEGs, written here


def test_resume_on_the_cluster(images, cluster, local_run, tmp_path, capsys):
    folder, recipe, _ = images
    _, _, want = local_run
    out = str(tmp_path / "out")
    main(["inspect", folder, "--recipe", recipe, "--out", out, "--dask", cluster.address, "-q"])
    jsonl = os.path.join(out, "results.jsonl")
    with open(jsonl, "rb") as f:
        lines = f.read().splitlines(keepends=True)
    with open(jsonl, "wb") as f:               # a killed run: 5 records and a torn sixth
        f.write(b"".join(lines[:5]) + lines[5][:40])
    rc = main(["inspect", folder, "--recipe", recipe, "--out", out, "--dask", cluster.address,
               "--resume"])
    assert rc in (0, 1)
    err = capsys.readouterr().err
    assert "half-written last line" in err and "5 of 12 inputs already recorded" in err
    assert _records(out) == want
    assert len(_raw_lines(out)) == N_IMAGES


def test_worker_killed_mid_batch_loses_and_doubles_nothing(images, local_run, tmp_path,
                                                           monkeypatch):
    folder, recipe, _ = images
    _, _, want = local_run
    killed = []
    with running_cluster(tmp_path / "cluster") as cl:
        spy = cl.client

        class KillingWriter(JsonlWriter):
            """After the first record: kill -9 the worker with the most tasks in hand."""

            def write(self, record):
                super().write(record)
                if killed:
                    return
                processing = spy.processing()
                addr, keys = max(processing.items(), key=lambda kv: len(kv[1]))
                name = spy.scheduler_info()["workers"][addr]["name"]
                proc = cl.workers[name]
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(10)
                killed.append((name, len(keys)))

        monkeypatch.setattr(inspect_cmd, "JsonlWriter", KillingWriter)
        out = str(tmp_path / "out")
        rc = main(["inspect", folder, "--recipe", recipe, "--out", out, "--dask", cl.address,
                   "-q"])
        assert rc in (0, 1)
        assert len(killed) == 1 and killed[0][1] >= 1, killed   # it had work in hand
        assert len(spy.nthreads()) == 1
    lines = _raw_lines(out)
    assert len(lines) == N_IMAGES
    assert sorted(r["file"] for r in lines) == sorted(want)
    assert _records(out) == want


def test_scheduler_lost_mid_batch_then_resume(images, cluster, local_run, tmp_path,
                                               monkeypatch, capsys):
    folder, recipe, _ = images
    _, _, want = local_run
    out = str(tmp_path / "out")
    with running_cluster(tmp_path / "doomed", n_workers=1) as doomed:

        class KillingWriter(JsonlWriter):
            """After the first record: kill -9 the scheduler."""

            def write(self, record):
                super().write(record)
                if doomed.scheduler.poll() is None:
                    os.kill(doomed.scheduler.pid, signal.SIGKILL)
                    doomed.scheduler.wait(10)

        monkeypatch.setattr(inspect_cmd, "JsonlWriter", KillingWriter)
        rc = main(["inspect", folder, "--recipe", recipe, "--out", out, "--dask", doomed.address,
                   "-q"])
        assert rc == 2
        err = capsys.readouterr().err
        assert f"lost the connection to the Dask scheduler at {doomed.address}" in err
        assert "--resume" in err
        for name, proc in doomed.workers.items():      # its scheduler gone: no need to wait
            proc.kill()
    assert 1 <= len(_raw_lines(out)) < N_IMAGES
    monkeypatch.setattr(inspect_cmd, "JsonlWriter", JsonlWriter)
    rc = main(["inspect", folder, "--recipe", recipe, "--out", out, "--dask", cluster.address,
               "--resume", "-q"])
    assert rc in (0, 1)
    assert _records(out) == want
    assert len(_raw_lines(out)) == N_IMAGES


def test_local_cluster(images, local_run, tmp_path):
    import distributed  # noqa: F401  (the dask extra; scripts/setup.sh installs it for the tests)
    _, recipe, paths = images
    _, _, want = local_run
    out = str(tmp_path / "out")
    rc = main(["inspect", *paths[:4], "--recipe", recipe, "--out", out, "--dask", "local:2", "-q"])
    assert rc in (0, 1)
    assert _records(out) == {f: want[f] for f in paths[:4]}


def test_unreachable_scheduler_is_exit_2_before_any_work(images, tmp_path, monkeypatch,
                                                         capsys):
    import distributed  # noqa: F401  (the dask extra; scripts/setup.sh installs it for the tests)
    folder, recipe, _ = images
    monkeypatch.setattr(dask_batch, "CONNECT_TIMEOUT_S", 1.0)
    address = f"tcp://127.0.0.1:{_free_port()}"          # nothing listens there
    out = tmp_path / "out"
    t0 = time.monotonic()
    rc = main(["inspect", folder, "--recipe", recipe, "--out", str(out), "--dask", address])
    assert rc == 2
    assert time.monotonic() - t0 < 20
    err = capsys.readouterr().err
    assert f"cannot reach the Dask scheduler at {address}" in err
    assert "dask scheduler" in err and "dask worker" in err and "local:N" in err
    assert not out.exists()


def test_without_dask_says_how_to_install(images, tmp_path, monkeypatch, capsys):
    folder, recipe, _ = images
    monkeypatch.setitem(sys.modules, "distributed", None)      # import distributed fails
    rc = main(["inspect", folder, "--recipe", recipe, "--out", str(tmp_path / "out"),
               "--dask", "tcp://127.0.0.1:8786"])
    assert rc == 2
    err = capsys.readouterr().err
    assert "pip install 'vision-qc[dask]'" in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args, words", [
    (["--dask-send-bytes"], "only applies with --dask"),
    (["--dask", "local:0"], "N, the number of worker processes"),
    (["--dask", "local:x"], "N, the number of worker processes"),
    (["--dask", "local:1", "--workers", "2"], "with --dask the cluster's workers"),
])
def test_dask_usage_errors(images, tmp_path, args, words, capsys):
    folder, recipe, _ = images
    rc = main(["inspect", folder, "--recipe", recipe, "--out", str(tmp_path / "out"), *args])
    assert rc == 2
    assert words in capsys.readouterr().err


def test_workers_that_do_not_see_the_output_folder_are_refused(images, cluster, tmp_path,
                                                               monkeypatch):
    _, _, paths = images
    out = tmp_path / "out"
    os.makedirs(out / "overlays")
    os.makedirs(out / "report_data")
    dask_batch.check_shared_storage(cluster.client, paths, str(out))     # one machine: seen
    assert os.listdir(out) == ["overlays", "report_data"] or sorted(os.listdir(out)) == [
        "overlays", "report_data"]                                       # probe file removed
    # the probe file written here does not appear there: the workers have another folder
    monkeypatch.setattr(dask_batch, "write_atomic", lambda path, data: None)
    with pytest.raises(BatchAbort, match=r"do not see the inputs or the output folder") as e:
        dask_batch.check_shared_storage(cluster.client, paths, str(out))
    assert "probe file" in str(e.value) and "--dask-send-bytes" in str(e.value)


@pytest.mark.parametrize("text, want", [
    ("tcp://10.0.0.5:8786", ("tcp://10.0.0.5:8786", None)),
    ("  sched:8786 ", ("sched:8786", None)),
    ("local:3", (None, 3)),
    ("local", (None, max(os.cpu_count() or 1, 1))),
])
def test_parse_target(text, want):
    assert dask_batch.parse_target(text) == want


def test_outputs_that_cannot_be_written_here_stop_the_run_keeping_the_records(
        images, cluster, local_run, tmp_path, monkeypatch, capsys):
    """--dask-send-bytes: the workers send each file's outputs here, and the disk fills up
    on the third file's: exit 2, the records of the files whose outputs are written stay,
    the message says how many and that --resume finishes; --resume then records the rest."""
    folder, recipe, _ = images
    _, _, want = local_run
    out = str(tmp_path / "out")
    real = dask_batch.write_atomic
    disk_fills, stems = filling_after(real, 2)
    monkeypatch.setattr(dask_batch, "write_atomic", disk_fills)
    rc = main(["inspect", folder, "--recipe", recipe, "--out", out, "--dask", cluster.address,
               "--dask-send-bytes", "-q"])
    err = capsys.readouterr().err
    assert rc == 2
    assert "No space left on device" in err and "--resume" in err
    recs = _raw_lines(out)
    # the two files whose outputs were written, each once; not the third
    assert sorted(artifact_stem(r["file"]) for r in recs) == sorted(stems[:2])
    assert f"2 of {N_IMAGES} inputs are recorded" in err
    monkeypatch.setattr(dask_batch, "write_atomic", real)
    rc = main(["inspect", folder, "--recipe", recipe, "--out", out, "--dask", cluster.address,
               "--dask-send-bytes", "--resume", "-q"])
    assert rc in (0, 1)
    assert _records(out) == want
    assert len(_raw_lines(out)) == N_IMAGES
