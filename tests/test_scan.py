import pytest

from cmat.catalog import ModelService
from cmat.ledger import Ledger
from cmat.scan import scan
from tests.transcript_factory import TranscriptBuilder, write_session, write_subagent


@pytest.fixture
def history(tmp_path):
    return tmp_path / "claude" / "projects"


@pytest.fixture
def run(history, project, tmp_path):
    models = ModelService(project)
    ledger = Ledger(tmp_path / "ledger.db")

    def do():
        return scan(ledger, models, [history])

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
def test_large_cold_scans_use_worker_processes_and_agree(run, history, monkeypatch, packed):
    from cmat import ledger, transcripts

    monkeypatch.setattr(ledger, "CAN_PACK", packed and ledger.CAN_PACK)

    for index in range(12):
        builder = TranscriptBuilder(session_id=f"s{index}")
        for _ in range(30):
            builder.user("w" * 300)
            builder.response(output=index + 1)
        write_session(history / f"-p{index % 3}", builder)
    monkeypatch.setattr(transcripts, "PARALLEL_MIN_BYTES", 0)
    monkeypatch.setattr(transcripts, "FAST_DECODE_MIN_BYTES", 0)
    result = run()
    assert result.requests == 360
    assert totals(run.ledger) == (360, sum(30 * (i + 1) for i in range(12)))


def test_a_torn_line_in_a_file_read_in_pieces_is_read_again(run, history, monkeypatch):
    from cmat import transcripts

    builder = TranscriptBuilder(session_id="a")
    for index in range(40):
        builder.user("v" * 400)
        builder.response(output=index + 1, blocks=1)
    path = history / "-p" / "a.jsonl"
    path.parent.mkdir(parents=True)
    full = b"".join(builder.lines)
    last = builder.lines[-1]
    path.write_bytes(full[:-len(last) // 2])  # the last response's line is torn mid-way
    monkeypatch.setattr(transcripts, "MAX_SEGMENT_BYTES", len(last) // 3)  # many pieces
    run()
    assert totals(run.ledger) == (39, sum(range(1, 40)))
    path.write_bytes(full)
    run()
    assert totals(run.ledger) == (40, sum(range(1, 41)))
