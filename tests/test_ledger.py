import sqlite3

import pytest

from cmat.catalog import ModelService
from cmat.ledger import MIGRATIONS, SCHEMA_VERSION, Ledger, LedgerError, migrate, reprice
from cmat.transcripts import read_session
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


def test_a_newer_schema_is_refused(tmp_path):
    db = sqlite3.connect(tmp_path / "new.db")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    with pytest.raises(LedgerError, match="newer cmat"):
        Ledger(tmp_path / "new.db").db


def test_migrate_is_a_no_op_when_current(tmp_path):
    with Ledger(tmp_path / "l.db") as ledger:
        assert migrate(ledger.db) == SCHEMA_VERSION


def test_a_corrupt_ledger_says_how_to_get_out(tmp_path):
    path = tmp_path / "bad.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(LedgerError, match="cmat ledger rebuild"):
        Ledger(path).db


def _store(ledger, records, models, task_id=None, packed=False):
    from cmat.ledger import pack_rows, request_rows
    from cmat.pricing import price_records

    costs = price_records(records, models.get_by_pattern)
    if packed:  # as a worker process hands rows over
        with ledger.attached_packed(pack_rows([request_rows(records, costs, "test", task_id)])):
            with ledger.transaction():
                ledger.insert_packed()
        return
    with ledger.transaction():
        ledger.record(records, costs, catalog_version="test", task_id=task_id)


@pytest.mark.parametrize("packed", [False, True])
def test_better_copies_replace_and_task_attribution_is_never_erased(tmp_path, project,
                                                                    packed):
    models = ModelService(project)
    builder = TranscriptBuilder()
    request = builder.response(output=100, blocks=3)
    path = write_session(tmp_path, builder)
    final = read_session(path).records
    with Ledger(tmp_path / "l.db") as ledger:
        _store(ledger, final, models, task_id="task_1")
        partial = TranscriptBuilder()
        partial.response(output=5, blocks=1, message_id=request.message_id)
        partial_records = read_session(write_session(tmp_path / "p", partial)).records
        _store(ledger, partial_records, models, packed=packed)  # smaller, no task: no change
        assert ledger.query("SELECT output_tokens, task_id FROM requests") == [(100, "task_1")]
        larger = TranscriptBuilder()
        larger.response(output=300, blocks=1, message_id=request.message_id)
        larger_records = read_session(write_session(tmp_path / "l", larger)).records
        _store(ledger, larger_records, models, packed=packed)  # larger: replaces, keeps task
        assert ledger.query("SELECT output_tokens, task_id FROM requests") == [(300, "task_1")]


def test_reprice_uses_the_stored_tokens_only(tmp_path, project, monkeypatch):
    builder = TranscriptBuilder()
    builder.response(model="claude-nova-9", input=1000, output=1000)
    transcript = write_session(tmp_path, builder)
    records = read_session(transcript).records
    with Ledger(tmp_path / "l.db") as ledger:
        _store(ledger, records, ModelService(project))
        assert ledger.query("SELECT cost_usd FROM requests") == [(None,)]
        from cmat.catalog import add_model

        add_model(project, "claude-nova-9", name="Nova", pattern=None, input_price=2,
                  output_price=8)
        transcript.unlink()  # no transcript needed
        assert reprice(ledger, ModelService(project)) == (1, 0)
        assert ledger.query("SELECT cost_usd FROM requests")[0][0] == pytest.approx(0.01)
