"""The archive's shipper on the gateway's status page and in Prometheus
(issue 20; docs/archive.md *Monitoring*): the Redis session reads the hash
`<stream>:shipper` that `credit-audit ship` writes, with Redis's TIME,
once a second, and the page says `absent` (no shipper has reported), `ok`
with its lag and the age of its report, `lagging` (over 300 s behind),
`stale` (no report for 60 s: the shipper is down) or `unknown` (the hash
holds no report).  With the real shipper for `ok`; the stale and lagging
states are made by writing the hash as a shipper down for a minute, or far
behind, would have left it (the hash is the input, waiting a minute would
test the clock)."""

import re
import subprocess

import requests

from conftest import S
from shipkit import (Shipper, archive, gw, pg, stop_shippers,  # noqa: F401
                     lag_key)


def status(gw, fmt=None):
    cert = gw.env.certs["BANK001"]
    r = requests.get(gw.gw.url("/credit-auth/status"),
                     params={"format": fmt} if fmt else None,
                     cert=(cert.cert, cert.key),
                     verify=gw.env.pki.server_ca_path, timeout=10)
    assert r.status_code == 200, r.text
    return r


def shipper(gw):
    return status(gw).json()["redis"]["shipper"]


def metrics(gw):
    """{"name{labels}": value} of the shipper's families, and the text."""
    text = status(gw, "prometheus").text
    return {m[0]: float(m[1]) for m in re.findall(
        r"^(credit_auth_shipper_\S+) (\S+)$", text, re.M)}, text


def redis_ms(gw):
    sec, usec = gw.raw.time()
    return sec * 1000 + usec // 1000


def state_soon(gw, want, timeout=5):
    got = {}

    def check():
        got.update(shipper(gw))
        return got["state"] == want
    assert S.wait_for(check, timeout), got
    return got


def test_shipper_on_the_status_page(gw, archive, tmp_path):
    gw.traffic(3)
    # before any shipper: absent, said without alarm
    sh = state_soon(gw, "absent")
    assert sh["note"] == "no shipper has reported", sh
    assert sh["lag_s"] is None and sh["report_age_s"] is None, sh
    m, _ = metrics(gw)
    assert m['credit_auth_shipper_state{state="absent"}'] == 1, m
    assert m["credit_auth_shipper_up"] == 0, m
    assert m["credit_auth_shipper_lag_seconds"] == -1, m
    assert m["credit_auth_shipper_report_age_seconds"] == -1, m

    # the real shipper, under traffic: ok, a small lag, a fresh report
    s = Shipper(archive, gw, tmp_path).start()
    gw.start_traffic(pause=0.05)
    try:
        sh = state_soon(gw, "ok", timeout=20)
        assert S.wait_for(lambda: shipper(gw)["archived_id"] != "", 10)
        sh = shipper(gw)
        assert sh["state"] == "ok" and sh["note"] == "", sh
        assert 0 <= sh["lag_s"] < 30, sh
        assert 0 <= sh["report_age_s"] < 10, sh
        assert sh["archived_id"] == lag_key(gw)["archived_id"] or \
            sh["archived_id"] <= lag_key(gw)["archived_id"], sh
        m, text = metrics(gw)
        assert m['credit_auth_shipper_state{state="ok"}'] == 1, m
        assert m["credit_auth_shipper_up"] == 1, m
        assert 0 <= m["credit_auth_shipper_lag_seconds"] < 30, m
        assert 0 <= m["credit_auth_shipper_report_age_seconds"] < 10, m
        p = subprocess.run(["promtool", "check", "metrics"], input=text,
                           capture_output=True, text=True, timeout=30)
        assert p.returncode == 0 and not p.stdout.strip() \
            and not p.stderr.strip(), (p.stdout, p.stderr)
    finally:
        gw.stop_traffic()
    s.stop()

    # the shipper down for a minute: its last report left as it was
    key = gw.stream + ":shipper"
    log_at = gw.gw.log_size()
    gw.raw.hset(key, "updated_ms", redis_ms(gw) - 61000)
    sh = state_soon(gw, "stale")
    assert sh["report_age_s"] > 60, sh
    assert "the shipper is not running" in sh["note"], sh
    m, _ = metrics(gw)
    assert m['credit_auth_shipper_state{state="stale"}'] == 1, m
    assert m["credit_auth_shipper_up"] == 0, m
    assert m["credit_auth_shipper_report_age_seconds"] > 60, m
    assert S.wait_for(lambda: "archive's shipper has not reported for" in
                      gw.gw.read_error_log(log_at), 3)

    # far behind (over 300 s), reporting
    gw.raw.hset(key, mapping={"lag_ms": 301000,
                              "updated_ms": redis_ms(gw)})
    sh = state_soon(gw, "lagging")
    assert sh["lag_s"] == 301.0 and "301 s behind" in sh["note"], sh
    m, _ = metrics(gw)
    assert m['credit_auth_shipper_state{state="lagging"}'] == 1, m
    assert m["credit_auth_shipper_up"] == 1, m
    assert m["credit_auth_shipper_lag_seconds"] == 301, m
    assert "archive's shipper is 301 s behind" in \
        gw.gw.read_error_log(log_at)

    # not a report: unknown, with why; no number made up
    gw.raw.hset(key, "lag_ms", "soon")
    sh = state_soon(gw, "unknown")
    assert sh["note"] == "lag_ms is not a number: soon", sh
    assert sh["lag_s"] is None, sh
    m, _ = metrics(gw)
    assert m["credit_auth_shipper_lag_seconds"] == -1, m
    assert m["credit_auth_shipper_up"] == 0, m

    # and gone: absent again
    gw.raw.delete(key)
    state_soon(gw, "absent")
