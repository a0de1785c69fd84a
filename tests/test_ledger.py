import dataclasses
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from cmat import paths
from cmat.catalog import ModelService
from cmat.catalog.edit import add_model
from cmat.cli import cli
from cmat.ingest import scan
from cmat.ledger import Ledger, LedgerError, ledger_error, store
from cmat.ledger.schema import (
    MIGRATIONS,
    OPTIONAL_TEXT,
    SCHEMA_VERSION,
    migrate,
    pack_rows,
    request_rows,
)
from cmat.ledger.store import (
    BULK_CACHE_KIB,
    DEFAULT_CACHE_KIB,
    MAX_ATTACHED_PACKED,
    bulk_cache_kib,
)
from cmat.maintenance import rebuild, reprice
from cmat.pricing import price_records
from cmat.transcripts.session import read_session
from tests.helpers import (
    child_env,
    need,
    query_plans,
    request_indexes,
    wait_for_indexes_built,
)
from tests.transcript_factory import TranscriptBuilder, write_session


def test_migrations_from_an_empty_database(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        assert ledger.query("PRAGMA user_version") == [(SCHEMA_VERSION,)]
        tables = {name for (name,) in ledger.query(
            "SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"requests", "files", "sessions"} <= tables


@pytest.mark.parametrize("start", range(1, SCHEMA_VERSION))
def test_migrations_from_every_older_schema_keep_the_data(tmp_path, start):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    for version in range(start):
        MIGRATIONS[version](db)
    db.execute(f"PRAGMA user_version = {start}")
    db.execute("INSERT INTO requests (message_id, ts, model, agent, is_sidechain, input_tokens,"
               " output_tokens, cache_creation_tokens, cache_creation_1h_tokens,"
               " cache_read_tokens, web_search_requests) VALUES"
               " ('msg_old', 1, 'claude-opus-4-6', 'main', 0, 1, 2, 3, 0, 4, 0)")
    db.close()
    with Ledger(path) as ledger:
        assert ledger.query("PRAGMA user_version") == [(SCHEMA_VERSION,)]
        assert ledger.query("SELECT message_id FROM requests") == [("msg_old",)]


def test_task_columns_of_older_ledgers_become_session_attributions(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:6]:
        migration(db)
    db.execute("PRAGMA user_version = 6")
    for index, (session, task) in enumerate([("s1", "t1"), ("s1", "t1"), ("s2", None)]):
        db.execute("INSERT INTO requests (message_id, session_id, ts, model, agent,"
                   " is_sidechain, task_id, enhancement, input_tokens, output_tokens,"
                   " cache_creation_tokens, cache_creation_1h_tokens, cache_read_tokens,"
                   " web_search_requests, cost_usd) VALUES"
                   " (?, ?, 1, 'm', 'main', 0, ?, 'e1', 1, 2, 0, 0, 0, 0, 0.5)",
                   (f"msg_{index}", session, task))
    db.close()
    with Ledger(path) as ledger:
        assert ledger.query("SELECT session_id, task_id, enhancement FROM sessions") == [
            ("s1", "t1", "e1")]
        assert ledger.task_spend("t1") == pytest.approx(1.0)
        columns = {row[1] for row in ledger.query("PRAGMA table_info(requests)")}
        assert "task_id" not in columns


def _insert_request(db, message_id: str, seq: int) -> None:
    db.execute("INSERT INTO requests (message_id, ts, model, agent, is_sidechain, input_tokens,"
               " output_tokens, cache_creation_tokens, cache_creation_1h_tokens,"
               " cache_read_tokens, web_search_requests, seq) VALUES"
               " (?, 1e9, 'claude-opus-4-6', 'main', 0, 1, 2, 3, 0, 4, 0, ?)",
               (message_id, seq))


def test_changes_are_paged_in_the_order_of_the_index_by_version(tmp_path):
    """What a sync reads comes by version, then in the table's own order, page after page,
    each row once; SQLite walks the index for it, with no sort of the changed rows."""
    with Ledger(tmp_path / "l.db") as ledger:
        with ledger.transaction():
            # Ids against the order they are written in: by id, each row would be a jump.
            for number, seq in enumerate([2, 1, 2, 1, 3, 2, 1]):
                _insert_request(ledger.db, f"msg_{9 - number}", seq)
        def read_all_pages():
            pages, after = [], None
            while rows := ledger.changed_requests(1, 3, after, 2):
                pages.append([(row[0], row[-2]) for row in rows])
                after = rows[-1][-2], rows[-1][-1]
            return pages

        pages, plans = query_plans(ledger, read_all_pages)
        assert pages == [[("msg_8", 1), ("msg_6", 1)], [("msg_3", 1), ("msg_9", 2)],
                         [("msg_7", 2), ("msg_4", 2)]]
        for plan in plans:
            assert "USING INDEX requests_seq" in plan and "TEMP B-TREE" not in plan, plan


def test_the_index_by_version_is_made_anew_even_when_a_bulk_load_left_it_to_build(tmp_path):
    """A ledger whose bulk load was killed lists the indexes still to build: the index by
    version is built by the migration, and not again, in its old form, by the repair."""
    path = tmp_path / "old.db"
    db = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:13]:  # up to the migration that remakes the index
        migration(db)
    db.execute("PRAGMA user_version = 13")
    sql = db.execute("SELECT sql FROM sqlite_master WHERE name = 'requests_seq'").fetchone()[0]
    db.execute("DROP INDEX requests_seq")
    db.execute("INSERT INTO dropped_indexes VALUES ('requests_seq', ?)", (sql,))
    db.close()
    with Ledger(path) as ledger:
        assert ledger.query("SELECT name FROM dropped_indexes") == []
        (sql,), = ledger.query("SELECT sql FROM sqlite_master WHERE name = 'requests_seq'")
        assert sql.strip() == "CREATE INDEX requests_seq ON requests (seq)"
        assert ledger.restore_indexes() is False


def test_file_states_are_read_from_their_index_not_the_rows_with_the_marks(tmp_path):
    """Each scan reads every known file's state; the marks (head and tail bytes) make up most
    of a row of `files`, and are not read for it."""
    with Ledger(tmp_path / "l.db") as ledger:
        _, (plan,) = query_plans(ledger, ledger.file_states)
        assert "COVERING INDEX files_state" in plan, plan


def test_a_newer_schema_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "new.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="newer cmat"):
        _ = Ledger(tmp_path / "new.db").db


def test_migrate_is_a_no_op_when_current(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        assert migrate(ledger.db) == SCHEMA_VERSION


def test_a_corrupt_ledger_says_how_to_get_out(tmp_path):
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="cmat ledger rebuild"):
        _ = Ledger(path).db


def _store(ledger, records, models, packed=False):
    costs = price_records(records, models.get_by_pattern)
    if packed:  # as a worker process hands rows over
        with ledger.attached_packed([pack_rows([request_rows(records, costs, "test")])]):
            with ledger.transaction():
                ledger.insert_packed()
        return
    with ledger.transaction():
        ledger.add_requests(records, costs, catalog_version="test")


def _copy(tmp_path, name, message_id, output, sidechain=False):
    builder = TranscriptBuilder()
    builder.response(output=output, blocks=1, message_id=message_id, sidechain=sidechain)
    return read_session(write_session(tmp_path / name, builder)).records


def test_a_new_ledger_has_large_pages_and_an_older_one_keeps_its_own(tmp_path, project,
                                                                     monkeypatch):
    models = ModelService(project)
    with Ledger(tmp_path / "new.db") as ledger:
        _store(ledger, _copy(tmp_path, "a", "msg_new", 10), models, packed=True)
        assert ledger.query("PRAGMA page_size") == [(store.PAGE_BYTES,)]
    assert store.PAGE_BYTES > 4096
    monkeypatch.setattr(store, "PAGE_BYTES", 4096)  # as a ledger made before
    with Ledger(tmp_path / "old.db") as ledger:
        _store(ledger, _copy(tmp_path, "b", "msg_old", 10), models)
    monkeypatch.undo()
    with Ledger(tmp_path / "old.db") as ledger:
        _store(ledger, _copy(tmp_path, "c", "msg_later", 20), models, packed=True)
        assert ledger.query("PRAGMA page_size") == [(4096,)]
        assert ledger.query("SELECT message_id, output_tokens FROM requests ORDER BY 1") == [
            ("msg_later", 20), ("msg_old", 10)]


@pytest.mark.parametrize("packed", [False, True])
def test_the_better_copy_of_a_request_wins_whoever_stores_it(tmp_path, project, packed):
    models = ModelService(project)
    builder = TranscriptBuilder()
    request = builder.response(output=100, blocks=3)
    final = read_session(write_session(tmp_path, builder)).records
    with Ledger(tmp_path / "l.db") as ledger:
        _store(ledger, final, models)
        with ledger.transaction():
            ledger.attribute(builder.session_id, project_dir=None, transcript_path=None,
                             task_id="task_1", enhancement=None, agent=None, recorded_by="t")
        _store(ledger, _copy(tmp_path, "p", request.message_id, 5), models, packed)
        _store(ledger, _copy(tmp_path, "r", request.message_id, 40, sidechain=True), models,
               packed)  # a side question's replay
        assert ledger.query("SELECT output_tokens, is_sidechain FROM requests") == [(100, 0)]
        _store(ledger, _copy(tmp_path, "l", request.message_id, 300), models, packed)
        assert ledger.query("SELECT output_tokens FROM requests") == [(300,)]
        assert ledger.task_spend("task_1") == pytest.approx(
            ledger.query("SELECT cost_usd FROM requests")[0][0])


@pytest.mark.parametrize("packed", [False, True])
def test_text_a_request_lacks_is_stored_as_null_on_both_roads(tmp_path, project, packed):
    """Rows carry '' for optional text (binding None is slow); the ledger holds NULL, as
    before, whichever road the rows take."""
    models = ModelService(project)
    record = _copy(tmp_path, "a", "msg_lacking", 10)[0]
    record = dataclasses.replace(record, request_id=None, cwd="", agent_id=None, speed=None,
                                 inference_geo="")
    with Ledger(tmp_path / "l.db") as ledger:
        _store(ledger, [record], models, packed)
        stored = ledger.query(f"SELECT {', '.join(sorted(OPTIONAL_TEXT))} FROM requests")[0]
    held = dict(zip(sorted(OPTIONAL_TEXT), stored))
    assert {name: held[name] for name in ("request_id", "project", "agent_id", "speed",
                                          "inference_geo", "source")} == dict.fromkeys(
        ("request_id", "project", "agent_id", "speed", "inference_geo", "source"))
    assert held["session_id"] == record.session_id and held["catalog_version"] == "test"
    assert held["machine"] and held["user_name"]


def test_several_packed_batches_store_in_one_commit_as_one_at_a_time(tmp_path, project):
    """A scan holds workers' packed rows and stores several in one commit: each of them,
    in the order they came, the better copy winning across them as within one."""
    models = ModelService(project)
    builder = TranscriptBuilder()
    request = builder.response(output=100, blocks=3)
    other = builder.response(output=7, blocks=1)
    final = read_session(write_session(tmp_path, builder)).records
    batches = [final, _copy(tmp_path, "p", request.message_id, 5),
               _copy(tmp_path, "l", request.message_id, 300),
               _copy(tmp_path, "q", other.message_id, 7, sidechain=True)]
    packed = [pack_rows([request_rows(records, price_records(records, models.get_by_pattern),
                                      "test")]) for records in batches]
    with Ledger(tmp_path / "l.db") as ledger:
        with ledger.attached_packed(packed), ledger.transaction():
            ledger.insert_packed()
        assert sorted(ledger.query("SELECT message_id, output_tokens, is_sidechain"
                                   " FROM requests")) == sorted(
            [(request.message_id, 300, 0), (other.message_id, 7, 0)])
        assert ledger.query("SELECT name FROM pragma_database_list"
                            " WHERE name LIKE 'packed%'") == []  # detached again
        with pytest.raises(ValueError, match="at most"):
            with ledger.attached_packed(packed * MAX_ATTACHED_PACKED):
                pass
        assert ledger.query("SELECT name FROM pragma_database_list"
                            " WHERE name LIKE 'packed%'") == []


@pytest.mark.parametrize("then", ["write", "close"])
def test_a_bulk_load_leaves_its_indexes_to_a_process_of_its_own(tmp_path, project,
                                                                 monkeypatch, then):
    """The load returns without building its indexes: this process reads on, and at its
    next write (a report's cache: written before the build holds the ledger) or close, a
    detached process is started with the ledger's path to build them. A larger page cache
    is the load's alone."""
    import cmat.detached

    builder = TranscriptBuilder()
    for _ in range(5):
        builder.response()
    records = read_session(write_session(tmp_path, builder)).records
    ledger = Ledger(tmp_path / "l.db")
    wanted = request_indexes(ledger)
    started = []
    monkeypatch.setattr(cmat.detached, "start_detached",
                        lambda command, cwd=None: started.append(command))
    cache = ledger.query("PRAGMA cache_size")
    with ledger.bulk_load(bulk_cache_kib(10**10)):
        assert ledger.query("PRAGMA cache_size") == [(-BULK_CACHE_KIB,)] != cache
        _store(ledger, records, ModelService(project))
    assert ledger.query("PRAGMA cache_size") == cache
    assert ledger.query("SELECT count(*) FROM requests") == [(5,)]
    assert request_indexes(ledger) == [] and wanted and started == []
    if then == "write":
        ledger.cache_report(b"report", ledger.version(), b"body")
        assert ledger.cached_report(b"report") == b"body"
    else:
        ledger.close()
    assert started == [["cmat.ledger.indexes", str(tmp_path / "l.db")]]
    subprocess.run([sys.executable, "-P", "-m", *started[0]], env=child_env(), check=True)
    assert request_indexes(ledger) == wanted
    assert ledger.query("SELECT count(*) FROM dropped_indexes") == [(0,)]
    ledger.close()
    assert len(started) == 1


def test_a_bulk_loads_page_cache_grows_with_it_within_bounds():
    """Room for the id index of what is loaded: SQLite's default for a small load, up to a
    bound for a large one (memory stays flat however large the history)."""
    sizes = [bulk_cache_kib(gb * 10**9) for gb in (0.1, 0.3, 1.2, 2.4, 4.8, 10, 100)]
    assert sizes == sorted(sizes) and sizes[0] == DEFAULT_CACHE_KIB
    assert sizes[-1] == BULK_CACHE_KIB and DEFAULT_CACHE_KIB < sizes[2] < sizes[4]


def test_a_first_scan_ends_while_its_indexes_are_built_behind_it(tmp_path, monkeypatch):
    """For real: the scan returns, the detached process builds the indexes a moment later."""
    import cmat.ingest

    history_dir = tmp_path / "claude"
    builder = TranscriptBuilder(session_id="s-first")
    for _ in range(3):
        builder.response()
    write_session(history_dir / "projects" / "-p", builder)
    ledger = Ledger(tmp_path / "first.db")
    wanted = request_indexes(ledger)
    monkeypatch.setattr(cmat.ingest, "BULK_LOAD_BYTES", 1)
    assert scan(ledger, ModelService(), [history_dir / "projects"]).new_requests == 3
    ledger.close()
    with Ledger(tmp_path / "first.db") as again:
        wait_for_indexes_built(again.path)
        assert request_indexes(again) == wanted


def test_an_index_build_that_fails_is_logged_and_done_by_the_next_import(
        tmp_path, monkeypatch):
    import cmat.detached
    from cmat.ledger import indexes

    ledger = Ledger(tmp_path / "l.db")
    wanted = request_indexes(ledger)
    monkeypatch.setattr(cmat.detached, "start_detached", lambda command, cwd=None: None)
    with ledger.bulk_load():
        pass
    ledger.close()
    restore = Ledger.restore_indexes

    def failing(self):
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(Ledger, "restore_indexes", failing)
    assert indexes.main([str(tmp_path / "l.db")]) == 1
    logged = paths.hook_log_file().read_text()
    assert "index-build" in logged and "disk is full" in logged and "next scan" in logged
    monkeypatch.setattr(Ledger, "restore_indexes", restore)
    with Ledger(tmp_path / "l.db") as again:
        assert request_indexes(again) == []
        assert again.restore_indexes() is True
        assert request_indexes(again) == wanted


def test_an_index_build_for_a_ledger_deleted_since_makes_none(tmp_path):
    from cmat.ledger import indexes

    assert indexes.main([str(tmp_path / "gone" / "l.db")]) == 0
    assert not (tmp_path / "gone").exists()


def test_a_report_is_not_cached_while_another_process_writes(tmp_path):
    """A report never waits to be cached: with the ledger busy it is answered uncached (the
    holder lets go three seconds later; a cache write that waited would then succeed)."""
    import threading

    ledger = Ledger(tmp_path / "l.db")
    version = ledger.version()  # the ledger made, its schema too
    holder = sqlite3.connect(tmp_path / "l.db", isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN IMMEDIATE")
    threading.Timer(3, lambda: holder.execute("COMMIT")).start()
    ledger.cache_report(b"q", version, b"body")
    time.sleep(3.5)
    assert ledger.cached_report(b"q") is None
    ledger.cache_report(b"q", version, b"body")
    assert ledger.cached_report(b"q") == b"body"
    holder.close()
    ledger.close()


def test_reprice_uses_the_stored_tokens_only(tmp_path, project, monkeypatch):
    builder = TranscriptBuilder()
    builder.response(model="claude-nova-9", input=1000, output=1000)
    transcript = write_session(tmp_path, builder)
    records = read_session(transcript).records
    with Ledger(tmp_path / "l.db") as ledger:
        _store(ledger, records, ModelService(project))
        assert ledger.query("SELECT cost_usd FROM requests") == [(None,)]
        add_model("claude-nova-9", name="Nova", pattern=None, input_price=2,
                  output_price=8)
        transcript.unlink()  # no transcript needed
        assert reprice(ledger, ModelService(project)) == (1, 0, 1, 1)
        assert ledger.query("SELECT cost_usd FROM requests")[0][0] == pytest.approx(0.01)


def test_reprice_changes_only_what_it_prices_differently(tmp_path, project):
    """A request whose cost and catalog stay the same is not written: its version (`seq`)
    stays, so a sync has nothing of it to send again."""
    builder = TranscriptBuilder()
    builder.response(model="claude-opus-4-6", input=1000, output=1000)
    builder.response(model="claude-nova-9", input=1000, output=1000)
    records = read_session(write_session(tmp_path, builder)).records
    with Ledger(tmp_path / "l.db") as ledger:
        _store(ledger, records, ModelService(project))  # catalog "test"
        assert reprice(ledger, ModelService(project)) == (2, 1, 2, 0)  # a new catalog: costs kept
        seqs = ledger.query("SELECT message_id, seq FROM requests ORDER BY message_id")
        assert reprice(ledger, ModelService(project)) == (2, 1, 0, 0)
        assert ledger.query("SELECT message_id, seq FROM requests ORDER BY message_id") == seqs
        add_model("claude-nova-9", name="Nova", pattern=None, input_price=2, output_price=8)
        assert reprice(ledger, ModelService(project)) == (2, 0, 2, 1)  # a new catalog: Nova priced


def test_a_reprice_of_most_requests_builds_the_indexes_after(tmp_path, project, monkeypatch):
    """Changing most of a large ledger, reprice drops its indexes and builds them after, as a
    first import does: the costs are the same as row by row, and the indexes come back."""
    import cmat.maintenance

    builder = TranscriptBuilder()
    for output in range(1, 41):
        builder.response(model="claude-opus-4-6", input=1000, output=output)
    records = read_session(write_session(tmp_path, builder)).records
    costs = {}
    for bulk_from in (10**9, 10):
        monkeypatch.setattr(cmat.maintenance, "BULK_REPRICE_ROWS", bulk_from)
        path = tmp_path / f"{bulk_from}.db"
        with Ledger(path) as ledger:
            _store(ledger, records, ModelService(project))
            indexes = request_indexes(ledger)
            assert reprice(ledger, ModelService(project)) == (40, 0, 40, 0)
            # Dropped for the reprice, the indexes are built once the ledger is closed.
            assert request_indexes(ledger) == ([] if bulk_from == 10 else indexes)
            costs[bulk_from] = ledger.query("SELECT message_id, cost_usd, catalog_version FROM"
                                            " requests ORDER BY message_id")
        wait_for_indexes_built(path)
        with Ledger(path) as ledger:
            assert request_indexes(ledger) == indexes
    assert costs[10] == costs[10**9]


# --- rebuild never destroys the only copy -------------------------------------------------------

def _history_with(tmp_path, session_id, outputs):
    builder = TranscriptBuilder(session_id=session_id)
    for output in outputs:
        builder.response(model="claude-opus-4-6", output=output, blocks=1)
    return write_session(tmp_path / "claude" / "projects" / "-p", builder)


def _rebuild(path, roots, project):
    return rebuild(path, ModelService(project), roots)


def _outputs(path):
    with Ledger(path) as ledger:
        return ledger.query("SELECT count(*), sum(output_tokens) FROM requests")[0]


def test_rebuild_keeps_requests_whose_transcripts_are_gone_and_the_old_file(tmp_path, project):
    kept = _history_with(tmp_path, "kept", [10, 20])
    gone = _history_with(tmp_path, "gone", [300])
    path = tmp_path / "ledger.db"
    roots = [tmp_path / "claude" / "projects"]
    with Ledger(path) as ledger:
        scan(ledger, ModelService(project), roots)
    gone.unlink()
    result = _rebuild(path, roots, project)
    assert (result["requests"], result["salvaged_requests"]) == (2, 1)
    assert _outputs(path) == (3, 330)
    assert result["previous_state"] == "readable"
    assert ".previous-" in result["damaged_copy"] and _outputs(Path(result["damaged_copy"])) == (
        3, 330)
    assert kept.exists()


def test_a_damaged_ledger_is_kept_and_what_it_still_holds_is_salvaged(tmp_path, project):
    path = tmp_path / "ledger.db"
    with Ledger(path) as ledger, ledger.transaction():
        ledger.db.executemany(
            "INSERT INTO requests (message_id, ts, model, agent, is_sidechain, input_tokens,"
            " output_tokens, cache_creation_tokens, cache_creation_1h_tokens, cache_read_tokens,"
            " web_search_requests, cost_usd) VALUES (?, 0, 'm', 'main', 0, 1, 1, 0, 0, 0, 0, 1)",
            [(f"msg_{i:08d}" + "x" * 200,) for i in range(30_000)])
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    data = bytearray(path.read_bytes())
    middle = len(data) // 2 // 4096 * 4096
    data[middle:middle + 4096 * 8] = b"\xff" * (4096 * 8)  # eight pages of the table gone
    path.write_bytes(bytes(data))
    result = _rebuild(path, [], project)
    assert result["previous_state"] == "damaged" and ".damaged-" in result["damaged_copy"]
    assert Path(result["damaged_copy"]).read_bytes() == bytes(data)
    assert 20_000 < result["salvaged_requests"] < 30_000 and result["unreadable_chunks"] >= 1


def test_a_zero_byte_ledger_is_reported_not_replaced(tmp_path, project):
    path = tmp_path / "ledger.db"
    path.write_bytes(b"")
    os.utime(path, (time.time() - 60, time.time() - 60))
    with pytest.raises(LedgerError, match="empty \\(0 bytes\\)"):
        _ = Ledger(path).db
    assert path.read_bytes() == b""
    result = _rebuild(path, [], project)
    assert result["previous_state"] == "empty"
    assert Path(result["damaged_copy"]).read_bytes() == b""


def test_rebuild_reads_the_path_folders_it_is_given(tmp_path, project, monkeypatch):

    _history_with(tmp_path / "elsewhere", "x", [7])
    monkeypatch.setenv("CMAT_LEDGER", str(tmp_path / "l.db"))
    result = CliRunner().invoke(cli, ["ledger", "rebuild", "--json", "--path",
                                      str(tmp_path / "elsewhere" / "claude")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["requests"] == 1


# --- SQLite failures: one line and exit 8 ------------------------------------------------------

def _mount_namespace_works() -> bool:
    if not shutil.which("unshare"):
        return False
    probe = subprocess.run(["unshare", "-m", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture
def mounts():
    need(_mount_namespace_works(), "needs a mount namespace (unshare -m, as root)")


def _cmat_in_namespace(mount: str, *args, **env):
    """Run cmat after `mount` (shell words) in a mount namespace of its own."""

    command = f"{mount} && exec {shlex.quote(os.sys.executable)} -m cmat " + " ".join(
        shlex.quote(str(a)) for a in args)
    return subprocess.run(["unshare", "-m", "bash", "-c", command], capture_output=True,
                          text=True, env=child_env(**env), timeout=120)


def test_a_read_only_ledger_still_serves_reports_and_says_why_it_cannot_scan(tmp_path, project,
                                                                           mounts):
    folder = tmp_path / "ro"
    folder.mkdir()
    history = _history_with(tmp_path, "s", [10, 20]).parent.parent
    env = {"CMAT_LEDGER": folder / "ledger.db", "CLAUDE_CONFIG_DIR": history.parent}
    read_only = f"mount --bind -o ro {folder} {folder}"
    assert _cmat_in_namespace("true", "scan", **env).returncode == 0
    report = _cmat_in_namespace(read_only, "report", "daily", "--no-scan", "--json", **env)
    assert report.returncode == 0, report.stderr
    assert json.loads(report.stdout)["total"]["tokens"]["output"] == 30
    _history_with(tmp_path, "t", [5])  # something new to import
    scanned = _cmat_in_namespace(read_only, "report", "daily", **env)
    assert scanned.returncode == 8
    assert scanned.stderr.count("\n") == 1 and "cannot be written" in scanned.stderr
    assert "--no-scan" in scanned.stderr


def test_a_full_disk_is_one_line_and_exit_8_and_loses_nothing(tmp_path, project, mounts):
    folder = tmp_path / "small"
    folder.mkdir()
    outputs = list(range(1, 4001))
    history = _history_with(tmp_path, "big", outputs).parent.parent
    env = {"CMAT_LEDGER": folder / "ledger.db", "CLAUDE_CONFIG_DIR": history.parent}
    tiny = f"mount -t tmpfs -o size=300k tmpfs {folder}"
    result = _cmat_in_namespace(tiny, "scan", **env)
    assert result.returncode == 8, result.stdout + result.stderr
    assert result.stderr.count("\n") == 1 and "no room left on the disk" in result.stderr
    # Outside the namespace the disk has room: the same scan imports everything.
    assert _cmat_in_namespace("true", "scan", **env).returncode == 0
    assert _outputs(folder / "ledger.db") == (4000, sum(outputs))


def test_a_locked_ledger_says_to_try_again():
    error = ledger_error(sqlite3.OperationalError("database is locked"), Path("/x/l.db"))
    assert error.exit_code == 8 and "try again" in str(error)


def test_the_request_table_is_what_the_one_column_definition_says(tmp_path):
    from cmat.ledger.schema import COLUMN_TYPES, NOT_NULL, REQUEST_COLUMNS

    with Ledger(tmp_path / "l.db") as ledger:
        table = {row[1]: (row[2], bool(row[3])) for row in ledger.query(
            "PRAGMA table_info(requests)")}
    assert list(COLUMN_TYPES) == list(REQUEST_COLUMNS)
    assert {c: table[c] for c in REQUEST_COLUMNS} == {
        c: (COLUMN_TYPES[c], c in NOT_NULL) for c in REQUEST_COLUMNS}
    assert set(table) == {*REQUEST_COLUMNS, "seq"}


def test_an_impossible_timestamp_is_refused_and_an_old_one_set_aside(project, tmp_path):
    """Year 9999 (through a transcript, CostTracker, or a ledger an older cmat wrote) broke
    every later report: it is a bad value, skipped or refused where it comes in."""
    import sqlite3

    from cmat import CostTracker
    from cmat.errors import UsageError
    from tests.helpers import cli_run

    tracker = CostTracker(project)
    for when in (datetime(9999, 12, 31, tzinfo=UTC), 253402300799.0, 1e20, "soon"):
        with pytest.raises(UsageError, match="between 2000 and 2100"):
            tracker.record(model="claude-opus-4-6", input_tokens=1, when=when)
    builder = TranscriptBuilder(session_id="future")
    builder.now = "9999-12-31T23:59:59.000Z"
    builder.response(output=10)
    builder.now = "2026-03-01T10:00:00.000Z"
    builder.response(output=20)
    path = write_session(tmp_path / "t", builder)
    cli_run("scan", "-q", "--path", path.parent)
    for args in (("report", "daily"), ("report", "monthly"), ("report", "session"),
                 ("report", "weekly"), ("blocks",)):
        cli_run(*args, "--no-scan")
    with Ledger() as ledger:
        assert ledger.query("SELECT count(*) FROM requests") == [(1,)]
        ledger.db.execute("DROP TABLE set_aside_requests")
        ledger.db.execute("PRAGMA user_version = 11")
        ledger.db.execute("UPDATE requests SET ts = 253402300799")  # as an older cmat stored it
        ledger.db.commit()
    cli_run("report", "daily", "--no-scan")  # migrated: set aside, never lost
    with sqlite3.connect(paths.ledger_file()) as db:
        assert db.execute("SELECT count(*) FROM set_aside_requests").fetchone() == (1,)
        assert db.execute("SELECT count(*) FROM requests").fetchone() == (0,)


def test_many_openers_of_a_new_ledger_at_once_all_wait_their_turn(tmp_path):
    """Hooks of several sessions, or a dashboard's requests, on a machine where the ledger
    does not exist yet: SQLite refuses the switch to WAL at once to all but one, and each
    must wait for it as for any write, not fail."""
    import threading

    failures = []
    for attempt in range(20):
        path = tmp_path / f"ledger-{attempt}.db"
        start = threading.Barrier(40)

        def open_it(path=path, start=start):
            start.wait()
            try:
                with Ledger(path) as ledger:
                    ledger.alerts()
            except Exception as exc:  # noqa: BLE001 - any failure is what this looks for
                failures.append(exc)

        threads = [threading.Thread(target=open_it) for _ in range(40)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
