"""Into the ledger: incremental imports of transcripts, in one process or many, and what they
survive."""

import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmat.catalog import ModelService
from cmat.cli import cli
from cmat.ingest import scan
from cmat.ledger import Ledger
from cmat.transcripts.files import SourceFile
from cmat.transcripts.parallel import (
    ReadOptions,
    SegmentWork,
    _batches,
    forked_map,
    plan_segments,
    read_segments,
)
from tests.helpers import child_env, real_fixture, request_indexes
from tests.transcript_factory import (
    HOSTILE,
    TranscriptBuilder,
    reference_cost,
    usage_line,
    write_session,
    write_subagent,
)


@pytest.fixture
def history(tmp_path):
    return tmp_path / "claude" / "projects"


@pytest.fixture
def run(history, project, tmp_path):
    models = ModelService(project)
    ledger = Ledger(tmp_path / "ledger.db")

    def do(options=ReadOptions()):
        return scan(ledger, models, [history], options=options)

    do.ledger = ledger
    yield do
    ledger.close()


def totals(ledger):
    return ledger.query("SELECT count(*), coalesce(sum(output_tokens), 0) FROM requests")[0]


def test_first_scan_reads_everything_then_nothing(run, history):
    builder = TranscriptBuilder(session_id="a")
    builder.response(output=10)
    write_session(history / "-p", builder)
    first = run()
    assert (first.files_read, first.requests) == (1, 1)
    second = run()
    assert (second.files_seen, second.files_read, second.bytes_read) == (1, 0, 0)


def test_appended_bytes_only_are_read(run, history):
    builder = TranscriptBuilder(session_id="a")
    builder.response(output=10)
    path = write_session(history / "-p", builder)
    run()
    size = path.stat().st_size
    builder.response(output=20)
    builder.write(path)
    result = run()
    assert result.bytes_read == path.stat().st_size - size
    assert (result.requests, result.new_requests) == (1, 1)
    assert totals(run.ledger) == (2, 30)


def test_a_torn_line_is_read_again_once_complete(run, history):
    builder = TranscriptBuilder(session_id="a")
    builder.response(output=10, blocks=1)
    builder.response(output=20, blocks=1)
    path = history / "-p" / "a.jsonl"
    path.parent.mkdir(parents=True)
    full = b"".join(builder.lines)
    path.write_bytes(full[:-30])
    run()
    assert totals(run.ledger) == (1, 10)
    path.write_bytes(full)
    run()
    assert totals(run.ledger) == (2, 30)


def test_a_response_completed_after_a_scan_is_updated_not_duplicated(run, history):
    builder = TranscriptBuilder(session_id="a")
    builder.response(output=300, blocks=3)
    path = history / "-p" / "a.jsonl"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"".join(builder.lines[:1]))  # only the first streamed snapshot so far
    run()
    path.write_bytes(b"".join(builder.lines))
    run()
    assert totals(run.ledger) == (1, 300)


def test_truncated_and_replaced_files_are_read_again(run, history):
    first = TranscriptBuilder(session_id="a")
    first.response(output=10)
    first.response(output=20)
    path = write_session(history / "-p", first)
    run()
    shorter = TranscriptBuilder(session_id="a")
    shorter.response(output=5)
    shorter.write(path)  # smaller than before: read from the start
    assert run().files_read == 1
    replaced = TranscriptBuilder(session_id="a")
    replaced.response(output=7)
    replaced.response(output=8)
    replaced.response(output=9)
    tmp = path.with_suffix(".tmp")
    replaced.write(tmp)
    tmp.replace(path)  # a new inode, larger: read from the start, not from the old offset
    run()
    # Requests seen before are kept: the ledger never forgets what it has seen.
    assert totals(run.ledger) == (6, 10 + 20 + 5 + 7 + 8 + 9)


def test_a_deleted_file_is_forgotten_but_its_requests_kept(run, history):
    builder = TranscriptBuilder(session_id="a")
    builder.response(output=10)
    path = write_session(history / "-p", builder)
    run()
    path.unlink()
    assert run().files_gone == 1
    assert run.ledger.query("SELECT count(*) FROM files") == [(0,)]
    assert totals(run.ledger) == (1, 10)


def test_duplicates_across_files_count_once(run, history):
    original = TranscriptBuilder(session_id="a")
    copied = original.response(output=100)
    write_session(history / "-p", original)
    resumed = TranscriptBuilder(session_id="b")
    resumed.response(message_id=copied.message_id, output=100)
    resumed.response(output=1)
    write_session(history / "-p", resumed)
    replay = TranscriptBuilder(session_id="c")
    replay.replay(copied)
    write_session(history / "-q", replay)
    result = run()
    assert (result.requests, result.new_requests) == (4, 2)
    assert totals(run.ledger) == (2, 101)
    assert run.ledger.query("SELECT is_sidechain FROM requests WHERE message_id = ?",
                            (copied.message_id,)) == [(0,)]


def test_subagent_files_are_scanned_with_their_type(run, history):
    builder = TranscriptBuilder(session_id="a")
    builder.response()
    write_session(history / "-p", builder)
    write_subagent(history / "-p", "a", "x1", "Explore",
                   lambda b, a: b.response(sidechain=True, agent_id=a))
    run()
    assert sorted(run.ledger.query("SELECT agent FROM requests")) == [("Explore",), ("main",)]


@pytest.mark.parametrize("packed", [True, False])
def test_large_cold_scans_use_worker_processes_and_agree(run, history, packed):
    for index in range(12):
        builder = TranscriptBuilder(session_id=f"s{index}")
        for _ in range(30):
            builder.user("w" * 300)
            builder.response(output=index + 1)
        write_session(history / f"-p{index % 3}", builder)
    result = run(ReadOptions(workers=2, fast_decode=True, pack_rows=packed))
    assert result.requests == 360
    assert totals(run.ledger) == (360, sum(30 * (i + 1) for i in range(12)))


def test_rows_read_in_this_process_are_not_packed(history):
    """Packing (an in-memory SQLite database per batch) is how workers hand rows over; read
    in the process that stores them, rows stay as they are: packing each of a history's
    thousands of files on a single core doubled a first scan."""
    for index in range(3):
        builder = TranscriptBuilder(session_id=f"s{index}")
        builder.response(output=index + 1)
        write_session(history / "-p", builder)
    work = [(SourceFile(path), 0, path.stat().st_size) for path in history.rglob("*.jsonl")]
    packed = []
    segment_work = SegmentWork(convert=lambda records: records, pack=packed.append)
    batches = list(read_segments(plan_segments(work, 1), 1, segment_work))
    assert packed == [] and all(batch.packed is None for batch in batches)
    assert sorted(r.output_tokens for b in batches for s in b.results for r in s.records) \
        == [1, 2, 3]


def test_workers_batches_are_even_in_bytes_keep_the_order_and_shrink_at_the_end():
    # Many small files around a few large ones, as a real history has them.
    rng = random.Random(5)
    sizes = [rng.randint(2_000, 400_000) for _ in range(3_000)]
    for at in (400, 1_500, 2_900):
        sizes[at] = 90_000_000
    work = [(SourceFile(Path(f"/h/{n}.jsonl")), 0, size) for n, size in enumerate(sizes)]
    segments = plan_segments(work, 8, final=False)
    batches = _batches(segments, 2)
    assert [s for batch in batches for s in batch] == segments
    bytes_of = [sum(s.length for s in batch) for batch in batches]
    assert sum(bytes_of) == sum(sizes)
    share = sum(sizes) // 32
    largest_segment = max(s.length for s in segments)
    assert all(size < share + largest_segment for size in bytes_of)
    assert all(size >= share // 8 for size in bytes_of[:-1])
    assert max(bytes_of[-4:]) < share / 2  # no large batch left for one worker at the end


def test_a_torn_line_in_a_file_read_in_pieces_is_read_again(run, history):
    builder = TranscriptBuilder(session_id="a")
    for index in range(40):
        builder.user("v" * 400)
        builder.response(output=index + 1, blocks=1)
    path = history / "-p" / "a.jsonl"
    path.parent.mkdir(parents=True)
    full = b"".join(builder.lines)
    last = builder.lines[-1]
    path.write_bytes(full[:-len(last) // 2])  # the last response's line is torn mid-way
    pieces = ReadOptions(max_segment_bytes=len(last) // 3)  # many pieces
    run(pieces)
    assert totals(run.ledger) == (39, sum(range(1, 40)))
    path.write_bytes(full)
    run(pieces)
    assert totals(run.ledger) == (40, sum(range(1, 41)))


@pytest.mark.parametrize("name", HOSTILE)
def test_a_line_with_impossible_values_is_skipped_and_named_and_the_rest_imported(
        run, history, name):
    lines = [usage_line("m1"), usage_line("m2", **HOSTILE[name]), usage_line("m3")]
    folder = history / "-p"
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_text("".join(json.dumps(line) + "\n" for line in lines))
    result = run()
    assert (result.requests, result.skipped_lines) == (2, 1)
    assert totals(run.ledger) == (2, 10)
    ((path, offset, reason, _),) = run.ledger.skipped()
    assert path.endswith("a.jsonl") and offset == len(json.dumps(lines[0])) + 1 and reason
    assert run().files_read == 0  # and the next scan goes on from there, healthy


def _hostile_lines(rng: random.Random, good: list[bytes]) -> list[bytes]:
    """Generated lines no real request could be: each must be skipped, never billed."""
    found = []
    for index in range(300):
        kind = index % 6
        if kind == 0:  # a field of the wrong type or range
            changes = rng.choice(list(HOSTILE.values()))
            found.append(json.dumps(usage_line(f"bad{index}", **changes)).encode())
        elif kind == 1:  # a huge or negative number of any size
            value = rng.choice([2 ** rng.randint(53, 200), -rng.randint(1, 10 ** 9),
                                float(rng.choice(["1e30", "1e308", "-0.5", "3.25"]))])
            field = rng.choice(["input_tokens", "output_tokens", "cache_read_input_tokens",
                                "cache_creation_input_tokens"])
            found.append(json.dumps(usage_line(f"bad{index}", **{
                f"message.usage.{field}": value})).encode())
        elif kind == 2:  # a good line cut short
            line = rng.choice(good)
            found.append(line[:rng.randint(1, len(line) - 2)])
        elif kind == 3:  # invalid UTF-8 in a line that is not JSON either
            line = rng.choice(good)
            cut = rng.randint(1, len(line) - 2)
            found.append(line[:cut] + bytes([rng.randint(0x80, 0xff)]) * 3)
        elif kind == 4:  # nested far too deep
            found.append(b"[" * 50_000 + b'"output_tokens"')
        else:  # bytes that are nothing at all
            found.append(bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 200)))
                         .replace(b"\n", b"") + b'"output_tokens"')
    return found


def test_hundreds_of_malformed_lines_in_a_real_transcript_leave_its_total_exact(
        tmp_path, project):

    real = real_fixture("b25638d7")
    requests, cost = reference_cost(real)
    good = real.read_bytes().splitlines()
    rng = random.Random(42)
    mixed = list(good)
    for line in _hostile_lines(rng, [g for g in good if b'"output_tokens"' in g]):
        mixed.insert(rng.randint(0, len(mixed)), line)
    target = tmp_path / "claude" / "projects" / "-p" / real.name
    target.parent.mkdir(parents=True)
    target.write_bytes(b"\n".join(mixed) + b"\n")
    env = {"CLAUDE_CONFIG_DIR": str(tmp_path / "claude"), "CMAT_LEDGER": str(tmp_path / "l.db")}
    runner = CliRunner()
    scanned = runner.invoke(cli, ["scan"], env=env)
    assert scanned.exit_code == 0, scanned.output
    assert "lines skipped, see `cmat scan --explain`" in scanned.output
    report = runner.invoke(cli, ["report", "daily", "--json", "--no-scan"], env=env)
    assert report.exit_code == 0, report.output
    total = json.loads(report.output)["total"]
    assert total["requests"] == requests
    assert total["total_usd"] == pytest.approx(cost, abs=1e-9)
    explained = runner.invoke(cli, ["scan", "--explain", "--json"], env=env)
    assert explained.exit_code == 0 and len(json.loads(explained.output)) >= 100


def test_indexes_dropped_by_a_killed_bulk_load_are_built_by_the_next_scan(run, history,
                                                                           tmp_path):
    path = tmp_path / "ledger.db"
    wanted = request_indexes(run.ledger)
    run.ledger.close()
    killed = subprocess.run([sys.executable, "-c", (
        "import os, signal, sys; from pathlib import Path; from cmat.ledger import Ledger\n"
        f"ledger = Ledger(Path({str(path)!r}))\n"
        "with ledger.bulk_load():\n"
        "    os.kill(os.getpid(), signal.SIGKILL)\n")], env=child_env())
    assert killed.returncode == -9
    assert request_indexes(run.ledger) == [] and wanted
    run()
    assert request_indexes(run.ledger) == wanted


def _group_members(group: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == group:
                    found.append(int(entry))
            except OSError:
                continue
    return found


@pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux only")
def test_what_workers_apply_reaches_them_by_the_fork_not_with_every_item():
    """A reader holds the catalog, whose unpickling cost a worker 2 ms for each of a first
    scan's batches: the task is handed over once, by the fork (a closure over something no
    pickle can take shows it is never pickled), and the items come back in order."""
    class Unpicklable:
        def __reduce__(self):
            raise TypeError("pickled")

    held = Unpicklable()
    parent = os.getpid()

    def task(item):
        return item * 2, held is not None, os.getpid() != parent

    assert list(forked_map(task, list(range(12)), 2)) == [(n * 2, True, True) for n in range(12)]


@pytest.mark.skipif(sys.platform != "linux", reason="workers are forked on Linux only")
def test_workers_die_with_a_scan_killed_by_sigkill(tmp_path):
    builder = TranscriptBuilder(session_id="a")
    for _ in range(20):
        builder.response(blocks=1)
    path = write_session(tmp_path, builder)
    started = tmp_path / "started"
    script = (
        "import time; from pathlib import Path\n"
        "from cmat.transcripts.files import SourceFile\n"
        "from cmat.transcripts.parallel import SegmentWork, plan_segments, read_segments\n"
        "def slow(line, source, offset):\n"
        f"    Path({str(started)!r}).touch()\n"
        "    time.sleep(60)\n"
        f"source = SourceFile(Path({str(path)!r}))\n"
        "segments = plan_segments([(source, 0, source.path.stat().st_size)], 4)\n"
        "list(read_segments(segments, 2, SegmentWork(slow)))\n")
    parent = subprocess.Popen([sys.executable, "-c", script], env=child_env(),
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while not started.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert started.exists(), "no worker started"
        assert len(_group_members(parent.pid)) >= 3  # the scan and its workers
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 10
        while _group_members(parent.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _group_members(parent.pid) == []
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(parent.pid, signal.SIGKILL)


def test_concurrent_scans_count_each_new_request_once(history, tmp_path):
    for index in range(12):
        builder = TranscriptBuilder(session_id=f"s{index}")
        for _ in range(40):
            builder.response(blocks=1)
        write_session(history / f"-p{index}", builder)
    env = child_env(CLAUDE_CONFIG_DIR=history.parent, CMAT_LEDGER=tmp_path / "shared.db")
    scans = [subprocess.Popen([sys.executable, "-m", "cmat", "scan", "--json", "--quiet"],
                              stdout=subprocess.PIPE, env=env) for _ in range(4)]
    results = [json.loads(scan.communicate(timeout=120)[0]) for scan in scans]
    assert sum(r["new_requests"] for r in results) == 12 * 40


def test_a_transcript_rewritten_in_place_is_read_again(run, history):
    builder = TranscriptBuilder(session_id="a")
    builder.response(output=10, blocks=1)
    builder.response(output=20, blocks=1)
    path = write_session(history / "-p", builder)
    run()
    inode = path.stat().st_ino
    rewritten = TranscriptBuilder(session_id="a")
    rewritten.lines = list(builder.lines)
    rewritten.lines[1] = rewritten.lines[1].replace(b'"output_tokens":20', b'"output_tokens":99')
    rewritten.response(output=5, blocks=1)
    with open(path, "r+b") as handle:  # same inode, same first bytes, different middle
        handle.write(b"".join(rewritten.lines))
    assert path.stat().st_ino == inode
    result = run()
    assert result.bytes_read == path.stat().st_size  # from the start
    assert totals(run.ledger) == (3, 10 + 99 + 5)


def test_a_scan_with_nothing_new_loads_no_catalog(run, history, project):
    """The second report of an unchanged history reads no transcript and no other agent's
    log, so it needs no prices (and no host name for new rows): the catalog is not loaded."""

    class NoCatalog(ModelService):
        @property
        def catalog(self):
            raise AssertionError("the catalog was loaded")

    builder = TranscriptBuilder(session_id="a")
    builder.response(output=10, blocks=1)
    write_session(history / "-p", builder)
    assert run().requests == 1
    again = scan(run.ledger, NoCatalog(project), [history])
    assert again.requests == again.files_read == 0
