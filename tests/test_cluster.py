"""`mlgrade grade --scheduler`: a LocalCluster over mutual TLS (2 worker processes, loopback,
certificates of `mlgrade certificates`) grades a class of reference, mutant, broken and hostile
submissions into the same scores.csv as the local pool,
byte for byte; a Dask worker killed mid-task loses no student (regraded once, then reported
failed); a grading past --timeout is stopped; a scheduler that answers nothing is a clear error
within seconds; the local pool never imports Dask; what crosses the wire is checked."""
from __future__ import annotations

import io
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")

from mlgrade import cluster  # noqa: E402
from mlgrade.batch import grade_class  # noqa: E402
from mlgrade.certificates import write_certificates  # noqa: E402
from mlgrade.cluster import ClusterError, connect, decode_reply, folder_security, local_cluster  # noqa: E402
from mlgrade.results import is_engine_failure  # noqa: E402
from mlgrade.validate import apply_mutant, load_mutants  # noqa: E402
from test_batch import A, REF, TEMPLATE_NB, make_class, read_scores  # noqa: E402

TESTS = Path(__file__).resolve().parent
MLGRADE = [sys.executable, "-m", "mlgrade.cli"]
SLOW_IMPORT = "\nimport time\ntime.sleep({seconds})  # at import: the grading is surely under way\n"


def hostile(folder: Path, case: str) -> None:
    """The reference with kl_loss replaced by the attack of tests/hostile/<case> (defined after
    it, so the attack's kl_loss is the one graded)."""
    folder.mkdir(parents=True)
    (folder / "hw6.py").write_text(REF.read_text() + "\n\n" + (TESTS / "hostile" / case / "hw6.py").read_text())


def make_mixed_class(folder: Path) -> Path:
    """test_batch's class, one more mutant, the broken corpus and three attacks on the sandbox:
    a kill (os._exit), memory exhaustion and a fork bomb."""
    make_class(folder)
    mutant = next(m for m in load_mutants(A.mutants_dir) if m.name == "hmm_viterbi_no_backtrack")
    apply_mutant(mutant, A.reference_dir, folder / "frank")
    wrong_shape = next(m for m in load_mutants(TESTS / "broken") if m.name == "wrong_shape")
    apply_mutant(wrong_shape, A.reference_dir, folder / "grace")
    shutil.copytree(TESTS / "broken" / "syntax_py", folder / "heidi")
    for student, case in (("ivan", "os_exit_call"), ("judy", "memory_bomb"), ("mallory", "fork_bomb")):
        hostile(folder / student, case)
    return folder


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory) -> Path:
    """The certificates of `mlgrade certificates`, for the clusters of this module."""
    folder = tmp_path_factory.mktemp("certificates") / "tls"
    write_certificates(folder, days=1)
    return folder


@pytest.fixture(scope="module")
def client_tls(tls_files):
    """What `mlgrade grade --tls-*` gives connect: the CA and the client's certificate only."""
    return folder_security(tls_files, roles=("client",))


@pytest.fixture(scope="module")
def dask_cluster(tls_files):
    with local_cluster(2, security=folder_security(tls_files)) as lc:
        yield lc


@pytest.fixture
def fresh_cluster(tls_files):
    """A cluster of its own for a test that kills or restarts workers."""
    with local_cluster(2, security=folder_security(tls_files)) as lc:
        yield lc


@pytest.fixture(scope="module")
def both(tmp_path_factory, dask_cluster, client_tls):
    """The mixed class graded by the local pool (-j 2) and by the LocalCluster over TLS."""
    base = tmp_path_factory.mktemp("cluster")
    subs = make_mixed_class(base / "subs")
    pooled = grade_class(A, subs, base / "pool", jobs=2, timeout=600, progress=False)
    assert dask_cluster.scheduler_address.startswith("tls://127.0.0.1:")
    with connect(dask_cluster.scheduler_address, A, client_tls) as grader:
        notes = grader.notes
        clustered = grade_class(A, subs, base / "dask", timeout=600, progress=False, run=grader.run)
    return base, subs, pooled, clustered, notes


def test_cluster_scores_csv_is_the_local_pools_byte_for_byte(both):
    base, _, pooled, clustered, notes = both
    assert notes == []  # local_cluster regrades a task once only, as a cluster should
    assert (clustered.graded, clustered.failed, clustered.skipped, clustered.errors) == (11, 0, 0, [])
    assert (pooled.graded, pooled.failed) == (11, 0)
    assert (base / "dask" / "scores.csv").read_bytes() == (base / "pool" / "scores.csv").read_bytes()
    scores = read_scores(base / "dask" / "scores.csv")
    maximum = float(scores["alice"]["total"])
    assert maximum > 0 and float(scores["bob"]["total"]) == 0 and 0 < float(scores["frank"]["total"]) < maximum
    for attack in ("ivan", "judy", "mallory"):  # the attack costs its own kl_loss points, nothing else
        assert 0 < float(scores[attack]["total"]) < maximum, attack
    assert float(scores["judy"]["kl_loss: gradients for mu and log_sigma"]) == 0


def test_cluster_writes_each_students_results_and_log(both):
    base, subs, _, _, _ = both
    for student in sorted(read_scores(base / "pool" / "scores.csv")):
        pooled = json.loads((base / "pool" / student / "results.json").read_text())
        clustered = json.loads((base / "dask" / student / "results.json").read_text())
        for results in (pooled, clustered):
            results.pop("execution_time")
        assert clustered == pooled, student
        assert (base / "dask" / student / "grading.log").read_text().strip(), student
        assert (base / "dask" / student / ".mlgrade-hash").read_text() == \
            (base / "pool" / student / ".mlgrade-hash").read_text()
    assert "SyntaxError" in json.loads((base / "dask" / "heidi" / "results.json").read_text())["output"]
    assert "11 submissions graded" in (base / "dask" / "report.html").read_text()


def test_cli_on_the_cluster_skips_unchanged_students(both, dask_cluster, tls_files):
    base, subs, _, _, _ = both
    before = (base / "dask" / "scores.csv").read_bytes()
    run = subprocess.run([*MLGRADE, "grade", "ml-hw6", str(subs), "-o", str(base / "dask"),
                          "--scheduler", dask_cluster.scheduler_address, "--tls-ca-file", str(tls_files / "ca.pem"),
                          "--tls-cert", str(tls_files / "client.pem"), "--tls-key", str(tls_files / "client-key.pem")],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "graded 0, skipped 11 unchanged, 0 failed" in run.stdout
    assert (base / "dask" / "scores.csv").read_bytes() == before


def _graded_while_killing(tmp_path: Path, dask_cluster, security, students: dict[str, str], doomed) -> tuple:
    """Grade ``students`` (name -> hw6.py) on the cluster; kill the worker process of every
    grading that ``doomed(student, kills so far)`` names, the moment it starts."""
    subs = tmp_path / "subs"
    for student, source in students.items():
        (subs / student).mkdir(parents=True)
        (subs / student / "hw6.py").write_text(source)
    kills: list[str] = []

    def kill(event) -> None:
        _, msg = event
        student = re.fullmatch(r"mlgrade-\d{6}-[0-9a-f]{12}-(.+)", msg["key"]).group(1)
        if doomed(student, kills):
            kills.append(student)
            os.kill(msg["pid"], signal.SIGKILL)

    with distributed.Client(dask_cluster, set_as_default=False) as watcher:
        watcher.subscribe_topic(cluster.START_TOPIC, kill)
        with connect(dask_cluster.scheduler_address, A, security) as grader:
            summary = grade_class(A, subs, tmp_path / "out", timeout=600, progress=False, run=grader.run)
        watcher.unsubscribe_topic(cluster.START_TOPIC)
    return summary, kills, read_scores(tmp_path / "out" / "scores.csv")


def test_a_dask_worker_killed_mid_task_loses_no_student(tmp_path, fresh_cluster, client_tls):
    slow = REF.read_text() + SLOW_IMPORT.format(seconds=4)
    summary, kills, scores = _graded_while_killing(
        tmp_path, fresh_cluster, client_tls, {"alice": REF.read_text(), "kill_once": slow},
        lambda student, kills: student == "kill_once" and not kills)
    assert kills == ["kill_once"]
    assert (summary.graded, summary.failed, len(summary.rows)) == (2, 0, 2)
    assert scores["kill_once"]["total"] == scores["alice"]["total"] != ""  # regraded in full elsewhere
    assert (tmp_path / "out" / "kill_once" / ".mlgrade-hash").is_file()


def test_a_submission_whose_worker_dies_twice_is_reported_failed_once(tmp_path, fresh_cluster, client_tls):
    slow = REF.read_text() + SLOW_IMPORT.format(seconds=4)
    summary, kills, scores = _graded_while_killing(
        tmp_path, fresh_cluster, client_tls, {"alice": REF.read_text(), "kill_always": slow},
        lambda student, kills: student == "kill_always")
    assert kills == ["kill_always", "kill_always"]  # graded once more after the first death, not again
    assert (summary.graded, summary.failed, len(summary.rows)) == (1, 1, 2)
    assert re.fullmatch(r"the Dask worker grading this submission died \(2 times, on tls://127\.0\.0\.1:\d+\): "
                        r"not graded", summary.failures["kill_always"])
    assert (scores["kill_always"]["status"], scores["kill_always"]["total"]) == ("failed", "")
    assert float(scores["alice"]["total"]) > 0
    failed = json.loads((tmp_path / "out" / "kill_always" / "results.json").read_text())
    assert is_engine_failure(failed) and failed["tests"] == []
    assert not (tmp_path / "out" / "kill_always" / ".mlgrade-hash").exists()  # graded again next run


def test_a_grading_past_the_timeout_is_stopped_and_its_worker_restarted(tmp_path, fresh_cluster, client_tls):
    subs = tmp_path / "subs"
    (subs / "alice").mkdir(parents=True)
    shutil.copy(REF, subs / "alice" / "hw6.py")
    (subs / "slow").mkdir()
    (subs / "slow" / "hw6.py").write_text(REF.read_text() + SLOW_IMPORT.format(seconds=55))  # within load_timeout
    with connect(fresh_cluster.scheduler_address, A, client_tls) as grader:
        before = set(grader.client.scheduler_info()["workers"])
        summary = grade_class(A, subs, tmp_path / "out", timeout=40, progress=False, run=grader.run)
        grader.client.wait_for_workers(2, timeout=300)
        after = set(grader.client.scheduler_info()["workers"])
    assert len(before - after) == 1  # the worker of the stopped grading was restarted (a new address)
    assert (summary.graded, summary.failed) == (1, 1)
    assert summary.failures == {"slow": "grading took longer than 40 s and was stopped"}
    assert float(read_scores(tmp_path / "out" / "scores.csv")["alice"]["total"]) > 0


def _silent_port() -> tuple[socket.socket, int]:
    """A listening socket that accepts connections and never says a word."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    return sock, sock.getsockname()[1]


@pytest.mark.parametrize("kind", ["silent", "closed"])
def test_a_scheduler_that_answers_nothing_is_a_clear_error_within_seconds(tmp_path, kind):
    silent, port = _silent_port()
    if kind == "closed":
        silent.close()
    (tmp_path / "subs" / "bob").mkdir(parents=True)
    shutil.copy(TEMPLATE_NB, tmp_path / "subs" / "bob" / "hw6.ipynb")
    (tmp_path / "out" / "bob").mkdir(parents=True)
    (tmp_path / "out" / "bob" / "results.json").write_text('{"score": 7}')  # an earlier grading's
    start = time.monotonic()
    run = subprocess.run([*MLGRADE, "grade", "ml-hw6", str(tmp_path / "subs"), "-o", str(tmp_path / "out"),
                          "--scheduler", f"tcp://127.0.0.1:{port}"], capture_output=True, text=True, timeout=120)
    elapsed = time.monotonic() - start
    silent.close()
    assert run.returncode == 2, run.stdout + run.stderr
    said = " ".join(run.stdout.split())  # as the terminal wraps it
    assert re.fullmatch(re.escape(f"mlgrade: no Dask scheduler answered at tcp://127.0.0.1:{port} within 10 s (") +
                        r".+\)", said), said
    assert elapsed < 45  # 10 s to connect, plus the interpreter's start
    assert (tmp_path / "out" / "bob" / "results.json").read_text() == '{"score": 7}'  # nothing touched
    assert not (tmp_path / "out" / "scores.csv").exists()


def test_the_local_pool_never_imports_dask(tmp_path):
    (tmp_path / "subs" / "bob").mkdir(parents=True)
    shutil.copy(TEMPLATE_NB, tmp_path / "subs" / "bob" / "hw6.ipynb")
    code = ("import sys; from mlgrade.cli import main; rc = main(['grade', 'ml-hw6', sys.argv[1], '-j', '1', "
            "'-o', sys.argv[2]]); print(rc, sorted(m for m in sys.modules if m.split('.')[0] in "
            "('dask', 'distributed')))")
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "subs"), str(tmp_path / "out")],
                         capture_output=True, text=True, timeout=600)
    assert run.stdout.splitlines()[-1] == "0 []", run.stdout + run.stderr
    assert read_scores(tmp_path / "out" / "scores.csv")["bob"]["total"] == "0"


def test_a_worker_memory_limit_below_the_sandboxs_is_refused():
    with distributed.LocalCluster(n_workers=1, threads_per_worker=1, processes=True, memory_limit="1GiB",
                                  host="127.0.0.1", dashboard_address=":0") as small:
        sandbox = A.limits.memory_mb
        with pytest.raises(ClusterError, match=re.escape(
                f"memory limit 1024 MB is below the {sandbox + 1024} MB a grading needs (its sandbox's {sandbox} MB "
                f"and 1024 MB for the grading process): the nanny would kill the worker before the sandbox's own "
                f"limits hold; start it with --memory-limit {sandbox + 1024}MB or more (0: none)")):
            connect(small.scheduler_address, A)


# --- what crosses the wire ------------------------------------------------------------------------

GOOD = {"results": {"score": 1.0, "tests": []}, "log": "ok", "pid": 7, "peak_rss_mb": 250.5, "worker": "tcp://w:1"}


@pytest.mark.parametrize("reply, error", [
    (b'{"results": {}}', "a bytes, not JSON text"),
    (GOOD, "a dict, not JSON text"),
    ("[" * 100_000 + "]" * 100_000, "not JSON: maximum recursion depth exceeded"),
    ("{", "not JSON: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"),
    ('["results"]', "no results and log"),
    ('{"results": [], "log": ""}', "no results and log"),
    ('{"results": {}, "log": 3}', "no results and log"),
    ('{"results": {"tests": {}}, "log": ""}', "results without a list of tests"),
    (" " * (cluster.MAX_REPLY_BYTES + 1), f"{cluster.MAX_REPLY_BYTES + 1} characters, more than "
                                          f"{cluster.MAX_REPLY_BYTES}"),
])
def test_a_forged_reply_is_refused(reply, error):
    with pytest.raises(ValueError, match=re.escape(error)):
        decode_reply(reply)


def test_a_good_reply_is_what_batch_records():
    assert decode_reply(json.dumps(GOOD)) == {"results": GOOD["results"], "log": "ok", "written": False,
                                              "pid": "tcp://w:1/7", "peak_rss_mb": 250.5}


def test_submission_files_outside_the_contract_are_refused(tmp_path):
    with pytest.raises(ValueError, match=re.escape("submission file 'conftest.py' refused: not a file of the contract")):
        cluster._stage(tmp_path, {"conftest.py": b"x = 1"}, A)
    with pytest.raises(ValueError, match=re.escape("hw6.py is larger than 5 MB: not read")):
        cluster._stage(tmp_path, {"hw6.py": b"#" * ((5 << 20) + 1)}, A)
    assert list(tmp_path.iterdir()) == []


def _bundle(entries: dict, manifest: dict | None = None) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr(cluster.BUNDLE_MANIFEST, json.dumps(manifest or json.loads(
            zipfile.ZipFile(io.BytesIO(cluster.make_bundle(A))).read(cluster.BUNDLE_MANIFEST))))
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_the_bundle_is_a_course_of_one_assignment_and_the_same_bytes_each_time():
    bundle = cluster.make_bundle(A)
    assert bundle == cluster.make_bundle(A)
    names = zipfile.ZipFile(io.BytesIO(bundle)).namelist()
    assert "reference/ml-hw6/hw6.py" in names and any(n.startswith("graders/ml-hw6/test_") for n in names)
    assert {"mlgrade-course.toml", "assignments/ml-hw6/assignment.toml"} <= set(names)
    assert {n.split("/")[0] for n in names} <= {"mlgrade-course.toml", "assignments", "lib", "graders", "reference",
                                                cluster.BUNDLE_MANIFEST}
    assert not [n for n in names if n.startswith(("assignments/", "graders/", "reference/")) and "/ml-hw6/" not in n]
    assigned = cluster._assignment(bundle, "ml-hw6")
    assert (assigned.graders_dir / "conftest.py").read_bytes() == (A.graders_dir / "conftest.py").read_bytes()
    assert oct(os.stat(assigned.course.root.parent).st_mode & 0o777) == "0o700"


@pytest.mark.parametrize("name, error", [
    ("graders/../../escape.py", "the assignment bundle's entry 'graders/../../escape.py' refused: outside the "
                                "bundle's folder"),
    ("../escape.py", "the assignment bundle's entry '../escape.py' refused: outside the bundle's folder"),
])
def test_a_bundle_entry_outside_its_folder_is_refused(name, error):
    with pytest.raises(RuntimeError, match=re.escape(error)):
        cluster._assignment(_bundle({name: "x = 1\n"}), "ml-hw6")


def test_a_bundle_from_another_mlgrade_is_refused():
    forged = _bundle({"graders/ml-hw6/test_x.py": "x = 1\n"},
                     {"assignment": "ml-hw6", "mlgrade": "0.0.1", "package": "0" * 64})
    with pytest.raises(RuntimeError, match=re.escape("this worker's mlgrade 0.1.0 differs from the client's")):
        cluster._assignment(forged, "ml-hw6")
