"""The archive's Merkle tree log and signed checkpoints (contract §7.3) with a
real gateway, Redis and PostgreSQL 15: every node the shipper stores is
what an independent RFC 9162 implementation computes from the archived
`raw` bytes, in the batch's own transaction; checkpoints are C2SP notes
signed with the log key, all kept, the latest published atomically;
append-only; and the options refuse what they cannot do."""

import psycopg2
import pytest

from shipkit import (Shipper, archive, gw, pg, stop_shippers,  # noqa: F401
                     tool)
from tlogkit import LOG_NAME, leaf_hash, logkey, mth, node_hash, \
    open_checkpoint  # noqa: F401


def stored_nodes(archive):
    """{(level, index): hash} from credit_audit.merkle."""
    out = {}
    for level, first, hashes in archive.sql(
            "SELECT level, first, hashes FROM credit_audit.merkle"):
        hashes = bytes(hashes)
        assert 0 < len(hashes) <= 64 * 32 and len(hashes) % 32 == 0
        assert first // 64 == (first + len(hashes) // 32 - 1) // 64, \
            "a row spans a multiple of 64"
        for i in range(len(hashes) // 32):
            assert (level, first + i) not in out, "a node stored twice"
            out[(level, first + i)] = hashes[32 * i:32 * i + 32]
    return out


def expected_nodes(leaves):
    """Every complete subtree of the tree of these leaf hashes."""
    out, level, row = {}, 0, list(leaves)
    while row:
        for i, h in enumerate(row):
            out[(level, i)] = h
        row = [node_hash(row[i], row[i + 1])
               for i in range(0, len(row) - 1, 2)]
        level += 1
    return out


def archived_leaves(archive):
    return [leaf_hash(bytes(r)) for (r,) in archive.sql(
        "SELECT raw FROM credit_audit.entries ORDER BY ord")]


def test_every_node_is_rfc9162_of_the_raw_bytes(gw, archive, tmp_path,
                                                logkey):
    gw.traffic(9)
    gw.wait_signed()
    pub = tmp_path / "checkpoint.txt"
    s = Shipper(archive, gw, tmp_path)
    r = s.once("--keep", "0", "--batch", "3", *logkey.args(),
               "--publish", str(pub))
    assert r.returncode == 0, r.stderr
    leaves = archived_leaves(archive)
    assert len(leaves) > 20
    assert stored_nodes(archive) == expected_nodes(leaves)
    # signed when due (the first batch: none before it) and at the end of
    # --once, over everything shipped; each one's root is the tree of the
    # entries it counts
    cps = archive.sql("SELECT size, root, origin, note FROM "
                      "credit_audit.checkpoints ORDER BY size")
    assert cps[-1][0] == len(leaves)
    for size, root, origin, note in cps:
        assert (bytes(root), origin) == (mth(leaves[:size]), LOG_NAME)
        assert open_checkpoint(note, LOG_NAME, logkey.pub) == (
            LOG_NAME, size, mth(leaves[:size]))
    assert pub.read_text() == cps[-1][3]
    assert not (tmp_path / "checkpoint.txt.tmp").exists()

    # more traffic, shipped in other batch sizes: the tree grows across
    # batches and runs, a new checkpoint, the old one kept
    gw.traffic(5)
    gw.wait_signed()
    r = s.once("--keep", "0", "--batch", "64", *logkey.args(),
               "--publish", str(pub))
    assert r.returncode == 0, r.stderr
    leaves2 = archived_leaves(archive)
    assert leaves2[:len(leaves)] == leaves
    assert stored_nodes(archive) == expected_nodes(leaves2)
    cps2 = archive.sql("SELECT size, root FROM credit_audit.checkpoints "
                       "ORDER BY size")
    assert [(n, bytes(h)) for n, h in cps2] == [
        (n, mth(leaves2[:n])) for n, _, _, _ in cps] + [
        (len(leaves2), mth(leaves2))]
    assert open_checkpoint(pub.read_text(), LOG_NAME, logkey.pub)[1] == \
        len(leaves2)
    # nothing new: no new checkpoint
    r = s.once("--keep", "0", *logkey.args())
    assert r.returncode == 0, r.stderr
    assert archive.sql("SELECT count(*) FROM credit_audit.checkpoints") \
        == [(len(cps2),)]


def test_the_log_is_built_unsigned_without_a_key(gw, archive, tmp_path):
    gw.traffic(3)
    gw.wait_signed()
    s = Shipper(archive, gw, tmp_path)
    r = s.once("--keep", "0")
    assert r.returncode == 0, r.stderr
    assert "not signed" in r.stderr
    leaves = archived_leaves(archive)
    assert stored_nodes(archive) == expected_nodes(leaves)
    assert archive.sql("SELECT count(*) FROM credit_audit.checkpoints") \
        == [(0,)]


def test_an_archive_from_before_the_log_gets_its_leaves(gw, archive,
                                                        tmp_path, logkey):
    """An archive shipped before migration 2 (its nodes absent): the
    shipper adds them from raw, once, then goes on."""
    gw.traffic(4)
    gw.wait_signed()
    s = Shipper(archive, gw, tmp_path)
    assert s.once("--keep", "0").returncode == 0
    before = archived_leaves(archive)
    archive.sql("ALTER TABLE credit_audit.merkle DISABLE TRIGGER "
                "no_truncate; TRUNCATE credit_audit.merkle; ALTER TABLE "
                "credit_audit.merkle ENABLE TRIGGER no_truncate")
    gw.traffic(2)
    gw.wait_signed()
    r = s.once("--keep", "0", *logkey.args())
    assert r.returncode == 0, r.stderr
    assert "adding the rest from raw" in r.stderr
    leaves = archived_leaves(archive)
    assert leaves[:len(before)] == before
    assert stored_nodes(archive) == expected_nodes(leaves)
    for size, root in archive.sql("SELECT size, root FROM "
                                  "credit_audit.checkpoints"):
        assert bytes(root) == mth(leaves[:size])
    assert archive.sql("SELECT max(size) FROM credit_audit.checkpoints") \
        == [(len(leaves),)]


def test_log_and_checkpoints_are_append_only(gw, archive, tmp_path,
                                             logkey):
    gw.traffic(2)
    gw.wait_signed()
    s = Shipper(archive, gw, tmp_path)
    assert s.once("--keep", "0", *logkey.args()).returncode == 0
    for user in ("credit_admin", "shipper"):
        for q in ("UPDATE credit_audit.merkle SET hashes = hashes",
                  "DELETE FROM credit_audit.merkle",
                  "TRUNCATE credit_audit.merkle",
                  "UPDATE credit_audit.checkpoints SET note = ''",
                  "DELETE FROM credit_audit.checkpoints",
                  "TRUNCATE credit_audit.checkpoints"):
            with pytest.raises(psycopg2.Error) as e:
                archive.sql(q, user=user)
            assert ("append-only" in str(e.value)
                    or "permission denied" in str(e.value)), (user, q)
    # the reader reads, and writes nothing
    assert archive.sql("SELECT count(*) FROM credit_audit.checkpoints",
                       user="reader") == [(1,)]
    with pytest.raises(psycopg2.Error):
        archive.sql("INSERT INTO credit_audit.checkpoints VALUES "
                    "(999, '\\x00', 'x', 'y', now())", user="reader")


def test_log_options_refuse_what_they_cannot_do(gw, archive, tmp_path,
                                                logkey):
    s = Shipper(archive, gw, tmp_path)
    r = s.once("--publish", str(tmp_path / "p"))
    assert r.returncode == 2 and "--publish needs --log-key" in r.stderr
    r = s.once("--log-key", logkey.pem)
    assert r.returncode == 2 and "--log-name" in r.stderr
    for bad in ("has space", "a+b", ""):
        r = s.once("--log-key", logkey.pem, "--log-name", bad)
        assert r.returncode == 2 and "--log-name" in r.stderr, bad
    r = s.once("--log-key", logkey.pub_pem, "--log-name", "x")
    assert r.returncode == 2 and "not an Ed25519 private key" in r.stderr
    r = s.once("--log-key", str(tmp_path / "nope"), "--log-name", "x")
    assert r.returncode == 2 and "No such file" in r.stderr
    for bad in ("2m", "soon"):
        r = s.once(*logkey.args(), "--checkpoint-every", bad)
        assert r.returncode == 2 and "--checkpoint-every" in r.stderr
    # a log keeps its name
    gw.traffic(1)
    gw.wait_signed()
    assert s.once("--keep", "0", *logkey.args()).returncode == 0
    gw.traffic(1)
    gw.wait_signed()
    r = s.once("--keep", "0", "--log-key", logkey.pem, "--log-name",
               "another/log")
    assert r.returncode == 2 and "named " + LOG_NAME in r.stderr


def test_a_running_shipper_signs_at_least_every_interval(gw, archive,
                                                         tmp_path, logkey):
    pub = tmp_path / "published"
    s = Shipper(archive, gw, tmp_path).start(
        "--keep", "0", *logkey.args(), "--checkpoint-every", "1s",
        "--publish", str(pub))
    gw.start_traffic(pause=0.05)
    import time
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and archive.sql(
            "SELECT count(*) FROM credit_audit.checkpoints")[0][0] < 3:
        time.sleep(0.3)
    gw.stop_traffic()
    made = archive.sql("SELECT size, made_at FROM credit_audit.checkpoints "
                       "ORDER BY size")
    assert len(made) >= 3, s.logtext()
    gaps = [(b[1] - a[1]).total_seconds() for a, b in zip(made, made[1:])]
    assert all(0.8 <= g for g in gaps), gaps      # not more often
    # every checkpoint's root is the tree of the entries it counts
    leaves = archived_leaves(archive)
    for size, _ in made:
        note = archive.sql("SELECT note FROM credit_audit.checkpoints WHERE "
                           "size = %s", (size,))[0][0]
        assert open_checkpoint(note, LOG_NAME, logkey.pub)[2] == \
            mth(leaves[:size])
    # after the traffic stops, the tail is signed within the interval
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        n = archive.sql("SELECT next_ord FROM credit_audit.log")[0][0]
        last = archive.sql("SELECT max(size) FROM credit_audit.checkpoints"
                           )[0][0]
        if n == last and open_checkpoint(pub.read_text(), LOG_NAME,
                                         logkey.pub)[1] == n:
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"tail not signed: {n} entries, last checkpoint {last}")
    time.sleep(1)       # a round after the last one: the metrics file
    assert s.metric("credit_audit_ship_checkpoints_total") == archive.sql(
        "SELECT count(*) FROM credit_audit.checkpoints")[0][0]
    s.stop()
