"""The PostgreSQL archive's schema (contract §7.2, docs/archive.md) on a real
PostgreSQL 15: created and migrated by `ship --init`, idempotent, printed
by `ship --print-schema` exactly as docs/archive.md shows it, append-only
whoever asks (the owner too), roles that may do what they need and no
more, and libpq's conventions for the connection (no password on argv)."""

import re

import psycopg2
import pytest

from conftest import ROOT
from shipkit import Archive, GROUPS, archive, pg, tool  # noqa: F401


def test_init_is_versioned_and_idempotent(pg, archive):  # noqa: F811
    assert archive.sql("SELECT version FROM credit_audit.schema_version "
                       "ORDER BY 1") == [(1,), (2,)]
    r = tool("ship", "--init", "--archive", archive.conninfo("credit_admin"))
    assert r.returncode == 0, r.stderr
    assert "nothing to do" in r.stdout
    assert archive.sql("SELECT count(*) FROM credit_audit.schema_version") \
        == [(2,)]
    # this month's and next month's partitions exist
    parts = [p for (p,) in archive.sql(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON "
        "c.oid = i.inhrelid WHERE i.inhparent = "
        "'credit_audit.entries'::regclass ORDER BY 1")]
    assert len(parts) == 2 and all(re.fullmatch(r"entries_\d{4}_\d{2}", p)
                                   for p in parts)
    # every audit schema field is a column
    cols = {c for (c,) in archive.sql(
        "SELECT column_name FROM information_schema.columns WHERE "
        "table_schema = 'credit_audit' AND table_name = 'entries'")}
    for c in ("v", "event", "ts", "gw", "rid", "bank", "enterprise",
              "consent", "reason", "checks", "heads", "revoked_by", "chain",
              "seq", "prev", "hash", "raw", "ord", "stream", "stream_id"):
        assert c in cols, c


def test_init_refuses_a_newer_schema(pg, archive):  # noqa: F811
    archive.sql("INSERT INTO credit_audit.schema_version VALUES "
                "(99, now(), 'from the future')")
    r = tool("ship", "--init", "--archive", archive.conninfo("credit_admin"))
    assert r.returncode == 2 and "newer" in r.stderr
    r = tool("findings", "--archive", archive.conninfo("reader"),
             pgenv=pg)
    assert r.returncode == 2 and "upgrade the tools" in r.stderr


def test_print_schema_is_what_init_runs_and_what_the_doc_shows(pg):  # noqa
    r = tool("ship", "--print-schema")
    assert r.returncode == 0
    # the printed script creates the same schema on an empty database
    pg.psql('CREATE DATABASE "printed"', dbname="postgres")
    pg.psql(r.stdout, dbname="printed")
    a = Archive(pg)
    q = ("SELECT table_name, column_name, data_type FROM "
         "information_schema.columns WHERE table_schema = 'credit_audit' "
         "ORDER BY 1, 2")
    assert pg.psql(q, dbname="printed") == a.sql(q)
    # docs/archive.md holds the same text between its markers
    doc = (ROOT / "docs" / "archive.md").read_text()
    m = re.search(r"<!-- ship --print-schema -->\n```sql\n(.*?)```", doc,
                  re.S)
    assert m, "docs/archive.md lost its schema block"
    assert m.group(1) == r.stdout, \
        "docs/archive.md's DDL differs from `ship --print-schema`: paste it"


def test_password_on_the_command_line_is_refused(pg, archive):  # noqa: F811
    for ci in (archive.conninfo("shipper") + " password=x",
               f"postgresql://shipper:x@127.0.0.1:{pg.port}/{archive.db}"):
        for cmd in (["ship", "--init"], ["findings"],
                    ["archive", "--month", "2026-11", "--out", "/tmp/x",
                     "--pubkey", "/dev/null"]):
            r = tool(*cmd, "--archive", ci)
            assert r.returncode == 2, (cmd, r.stderr)
            assert "holds a password" in r.stderr and "PGPASSFILE" \
                in r.stderr
    # the password file works, over TCP too (scram-sha-256)
    r = tool("findings", "--archive", archive.conninfo("reader", tcp=True),
             pgenv=pg)
    assert r.returncode == 0, r.stderr
    # and without it the connection fails, naming the error
    r = tool("findings", "--archive", archive.conninfo("reader", tcp=True),
             env={"PGPASSFILE": "/nonexistent"})
    assert r.returncode == 2 and "password" in r.stderr


def _insert_entry(a, user="credit_admin", ord_=0):
    a.sql("INSERT INTO credit_audit.entries (ord, entry_time, stream, "
          "stream_id, raw) VALUES (%s, now(), 's', %s, '\\x00')",
          (ord_, f"1-{ord_}"), user=user)


def _refused(a, q, user, want):
    with pytest.raises(psycopg2.Error) as e:
        a.sql(q, user=user)
    assert want in str(e.value), str(e.value)


def test_entries_are_append_only_even_for_the_owner(pg, archive):  # noqa
    _insert_entry(archive)
    part = archive.sql("SELECT tableoid::regclass::text FROM "
                       "credit_audit.entries")[0][0]
    for q in ("UPDATE credit_audit.entries SET bank = 'X'",
              "DELETE FROM credit_audit.entries",
              "TRUNCATE credit_audit.entries",
              f"TRUNCATE {part}",
              f"UPDATE {part} SET bank = 'X'",
              f"DELETE FROM {part}"):
        _refused(archive, q, "credit_admin", "append-only")
    assert archive.count() == 1
    # the shipper may insert and read, not change; the reader only read
    _insert_entry(archive, "shipper", 1)
    assert archive.sql("SELECT count(*) FROM credit_audit.entries",
                       user="reader") == [(2,)]
    for q in ("UPDATE credit_audit.entries SET bank = 'X'",
              "DELETE FROM credit_audit.entries",
              "TRUNCATE credit_audit.entries"):
        _refused(archive, q, "shipper", "permission denied")
    _refused(archive, "INSERT INTO credit_audit.entries (ord, entry_time, "
             "stream, stream_id, raw) VALUES (9, now(), 's', '9-9', '')",
             "reader", "permission denied")
    _refused(archive, "INSERT INTO credit_audit.findings (stream, stream_id,"
             " ord, chain, kind, detail, shipper) VALUES ('s','1-0',0,'',"
             "'modified','x','y')", "reader", "permission denied")
    # no role of the archive may create a table of its own in the schema
    _refused(archive, "CREATE TABLE credit_audit.x (a int)", "shipper",
             "permission denied")
    # a new month's partition comes only through ensure_month, guarded too
    archive.sql("SELECT credit_audit.ensure_month('2031-05-17')",
                user="shipper")
    _refused(archive, "TRUNCATE credit_audit.entries_2031_05",
             "credit_admin", "append-only")
    _refused(archive, "SELECT credit_audit.ensure_month(now())", "reader",
             "permission denied")


def _finding(a):
    a.sql("INSERT INTO credit_audit.findings (stream, stream_id, ord, chain,"
          " kind, detail, shipper) VALUES ('s', '1-0', 0, 'c', 'modified', "
          "'x', 'y')", user="shipper")
    return a.sql("SELECT max(id) FROM credit_audit.findings")[0][0]


def test_findings_change_only_by_acknowledgement(pg, archive):  # noqa: F811
    fid = _finding(archive)
    for q in (f"UPDATE credit_audit.findings SET kind = 'deleted' "
              f"WHERE id = {fid}",
              f"UPDATE credit_audit.findings SET detail = 'nothing', "
              f"acknowledged_by = 'me' WHERE id = {fid}",
              f"DELETE FROM credit_audit.findings WHERE id = {fid}",
              "TRUNCATE credit_audit.findings"):
        _refused(archive, q, "credit_admin", "finding")
    # the shipper records, it does not acknowledge; nor does the reader
    for who in ("shipper", "reader"):
        _refused(archive, "UPDATE credit_audit.findings SET acknowledged_by "
                 f"= 'me' WHERE id = {fid}", who, "permission denied")
    # an acknowledgement says who; the database says when and as whom
    _refused(archive, "UPDATE credit_audit.findings SET note = 'x' "
             f"WHERE id = {fid}", "operator", "says who")
    archive.sql("UPDATE credit_audit.findings SET acknowledged_by = 'alice',"
                f" note = 'seen' WHERE id = {fid}", user="operator")
    at, by, role = archive.sql(
        "SELECT acknowledged_at, acknowledged_by, acknowledged_role FROM "
        f"credit_audit.findings WHERE id = {fid}")[0]
    assert at is not None and by == "alice" and role == "operator"
    # once, for good
    _refused(archive, "UPDATE credit_audit.findings SET acknowledged_by = "
             f"'bob' WHERE id = {fid}", "operator", "was acknowledged")


def test_roles_are_the_documented_ones(pg, archive):  # noqa: F811
    have = {r for (r,) in archive.sql(
        "SELECT rolname FROM pg_roles WHERE rolname LIKE 'credit_audit_%'")}
    assert have == set(GROUPS.values())
    assert all(not l for (l,) in archive.sql(
        "SELECT rolcanlogin FROM pg_roles WHERE rolname LIKE "
        "'credit_audit_%'"))
