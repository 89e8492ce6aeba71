"""`report --archive` counts in PostgreSQL (docs/archive.md "Reading the
archive", tools/audit_archgroup.c): the archived entries whose typed
columns are the whole entry are grouped by the fields the report reads
and sent as groups; the others come one by one from their verbatim copy.
The report must be exactly the one read row by row
(CREDIT_AUDIT_ROWS=1) and the one Redis alone gives over a stream that
holds every entry: refusals, several policies in order of first
appearance, verifications whose outcomes are joined by rid (one across
the Redis/archive boundary and the month's end), revocations, and entries
a column cannot hold (a field twice, invalid UTF-8, a non-canonical
number, an unknown field, a ts of 19 digits)."""

import json
import time
import uuid

from conftest import E1, E2, S
from shipkit import Shipper, archive, pg, tool  # noqa: F401
from test_archive_read import Trail as ReadTrail, month_start

E3 = S.make_uscc("91350100M00010099")
DAY = 86400 * 1000


class Trail(ReadTrail):
    """test_archive_read's stream and mirror; odd entries sealed by
    hand."""

    def __init__(self, redis, tmp):
        super().__init__(redis, tmp)
        self.stream = "credit:audit:group-" + uuid.uuid4().hex[:8]
        self.mirror = self.stream + ":mirror"
        self.w = S.AuditWriter(self.priv, gw="gw-group", lanes=2)

    def seal(self, lane, fields):
        self.w.out.append(self.w.chains[lane].seal(fields))

    def verification(self, ts, rid, ent, bank, cat, outcome_ts,
                     matched=(2, 1, 0)):
        """An allowed verification (mode verify, three checks) and its
        outcome with the checks' answers at outcome_ts (None: later)."""
        self.w.ts = ts
        self.seal(1, self.w._head("decision") + [
            ("rid", rid), ("bank", bank), ("category", cat),
            ("enterprise", ent), ("purpose", "loan_application"),
            ("mode", "verify"), ("decision", "allow"),
            ("checks", "revenue,rating,legal_rep"), ("policy", "pol-v 1")])
        if outcome_ts is not None:
            self.answer(outcome_ts, rid, matched)

    def answer(self, ts, rid, matched=(2, 1, 0)):
        self.w.ts = ts
        self.seal(0, self.w._head("outcome") + [
            ("rid", rid), ("status", 200), ("matched", matched[0]),
            ("unmatched", matched[1]), ("absent", matched[2])])

    def month(self, ts):
        """Requests, refusals under two policies, a withdrawal."""
        w = self.w
        w.ts = ts
        for i in range(30):
            w.policy = ("pol-b 2", "pol-a 1")[i % 7 == 0]
            ent, bank = (E1, E2, E3)[i % 3], f"BANK00{1 + i % 2}"
            if i % 5 == 4:
                w.decision(enterprise=ent, bank=bank, decision="deny",
                           reason=("token_expired", "consent_revoked")[i % 2])
            else:
                w.request(enterprise=ent, bank=bank)
            w.ts += 1000
        self.seal(0, w._head("revocation") + [
            ("enterprise", E2), ("consent", "jti-9"), ("by", "enterprise")])
        for k in range(3):
            self.verification(w.ts + k, f"v-{ts}-{k}", E1, "BANK002",
                              ("tax", "court")[k % 2], w.ts + 100 + k)

    def odd(self, ts):
        """Entries the typed columns cannot hold whole."""
        h = self.w._head
        self.w.ts = ts
        self.seal(1, h("decision") + [
            ("rid", "odd-1"), ("bank", "BANK001"), ("bank", "BANK002"),
            ("category", "tax"), ("enterprise", E1), ("decision", "allow"),
            ("mode", "query"), ("policy", "pol-a 1")])
        self.seal(1, h("decision") + [
            ("rid", "odd-2"), ("bank", b"BANK\xff01"), ("category", "tax"),
            ("enterprise", E3), ("decision", "deny"),
            ("reason", "token_expired"), ("policy", "pol-c 3")])
        self.seal(0, h("outcome") + [
            ("rid", "odd-1"), ("status", "0200"), ("matched", "007")])
        self.seal(1, h("decision") + [
            ("rid", "odd-3"), ("bank", "BANK002"), ("category", "court"),
            ("enterprise", E2), ("decision", "report"), ("mode", "query"),
            ("zzz", "unknown field")])
        self.seal(1, [("v", 2), ("event", "decision"),
                      ("ts", "9" * 19), ("gw", "gw-group"),
                      ("rid", "odd-4"), ("bank", "BANK001"),
                      ("decision", "allow")])


def report(t, month, archive=None, stream=None, rows=False, keys=False):
    argv = ["report", "--month", month, "--json", "--redis", t.redis_addr,
            "--tz", "UTC", "--stream", stream or t.stream]
    if archive is not None:
        argv += ["--archive", archive.conninfo("reader")]
    if keys:
        argv += ["--pubkey", t.pub]
    env = {"CREDIT_AUDIT_READ_STATS": "1"}
    if rows:
        env["CREDIT_AUDIT_ROWS"] = "1"
    r = tool(*argv, pgenv=archive.pg if archive else None, env=env)
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)
    m.pop("generated", None)
    m.pop("stream", None)
    m.get("meta", {}).pop("generated", None)
    return m, r.stderr


def test_report_counted_in_sql_is_the_report_row_by_row(tmp_path, archive):
    redis = S.Redis(tmp_path / "redis").start()
    try:
        t = Trail(redis, tmp_path)
        s = Shipper(archive, t, tmp_path, user="shipper")
        m2, month2 = month_start(2)
        m1, month1 = month_start(1)
        m0, month0 = month_start(0)
        now = int(time.time() * 1000)
        t.month(m2 + 3 * DAY)
        t.odd(m2 + 4 * DAY)
        t.month(m1 + 2 * DAY)
        t.odd(m1 + 3 * DAY)
        # a verification at the month's end: its outcome comes after the
        # month turned, and stays in Redis when the decision is archived
        t.verification(m0 - 2000, "v-straddle", E3, "BANK001", "tax", None)
        t.flush()
        r = s.once("--keep", "0")
        # the odd entries are sealed and verify: nothing is a finding
        assert r.returncode == 0, r.stderr + r.stdout
        t.answer(m0 + 500, "v-straddle", (1, 1, 1))
        t.month(min(m0 + DAY, now - 60000))
        t.flush()

        for month in (month2, month1, month0):
            grouped, stats = report(t, month, archive)
            rows, stats_rows = report(t, month, archive, rows=True)
            alone, _ = report(t, month, stream=t.mirror)
            assert grouped == rows == alone, month
            assert grouped["decisions"] > 20, grouped
            if month != month0:
                # fewer rows than entries: the archive counted groups
                n = stats.split("archive in ")[1].split()[0]
                e = stats.split("read ")[1].split()[0]
                assert 0 < int(n) < int(e), stats
                assert stats_rows.split("read ")[1].split()[0] == e
        # what the month's report has in it, so that equality means
        # something: two refusal reasons, the verifications' answers (the
        # straddling one joined across the boundary), policies in order
        m, _ = report(t, month0, archive)
        text = json.dumps(m)
        for want in ("token_expired", "consent_revoked", "pol-b 2",
                     "pol-a 1", "pol-v 1", "court"):
            assert want in text, want
        one, _ = report(t, month2, archive)
        assert "pol-c 3" in json.dumps(one)
        # with keys the whole trail is read row by row and verified
        keyed, stats = report(t, month1, archive, keys=True)
        assert keyed["decisions"] == report(t, month1, archive)[0][
            "decisions"]
        assert keyed["integrity"]["intact"] is True, keyed["integrity"]
    finally:
        redis.stop()
