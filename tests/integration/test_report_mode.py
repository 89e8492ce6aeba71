"""Report mode (`credit_auth report;`, contract §6): decide and audit
everything, block nothing.  A request that would be refused gets the
upstream's unfiltered answer; its decision entry says decision=report with
the would-be reason, and the status endpoint counts it under
report_reasons."""

import tempfile
import time
from pathlib import Path

import pytest
import requests

from conftest import E1, PURPOSE, S

TAX = f"/api/v1/enterprises/{E1}/tax"


@pytest.fixture(scope="module")
def rgw(env):
    d = S.workdir(Path(tempfile.mkdtemp(prefix="report-", dir=env.st.dir)))
    gw = env.st.make_gateway(d, mode="report")
    gw.start()
    yield gw
    gw.stop()
    problems = gw.log_problems()
    assert not problems, "report gateway log:\n" + "\n".join(problems)


def upstream_bytes(env):
    return (Path(env.st.platform_root) / "api" / "v1" / "enterprises" / E1
            / "tax").read_bytes()


def get(env, gw, token="DEFAULT", purpose=PURPOSE, headers=None):
    c = env.certs["BANK001"]
    h = {}
    if token == "DEFAULT":
        token = env.token()
    if token is not None:
        h["Authorization"] = f"Bearer {token}"
    if purpose is not None:
        h["X-Credit-Purpose"] = purpose
    h.update(headers or {})
    return requests.get(gw.url(TAX), headers=h, cert=(c.cert, c.key),
                        verify=env.pki.server_ca_path, timeout=10)


def status(gw):
    r = requests.get(gw.url("/credit-auth/status", plain=True), timeout=5)
    assert r.status_code == 200, r.text
    return r.json()


WOULD_BE_REFUSED = {
    "token_missing": dict(token=None),
    "purpose_not_allowed": dict(purpose="credit_assessment"),
    "purpose_missing": dict(purpose=None),
    "token_malformed": dict(token="not.a.token"),
}


@pytest.mark.parametrize("reason", sorted(WOULD_BE_REFUSED))
def test_would_be_refusal_is_reported_not_blocked(env, rgw, reason):
    before = status(rgw)
    r = get(env, rgw, **WOULD_BE_REFUSED[reason])
    assert r.status_code == 200, r.text[:300]
    # the upstream's answer, unfiltered
    assert r.content == upstream_bytes(env)
    assert "internal_notes" in r.text
    assert r.headers.get("X-Request-Id")
    e = env.decision(r)
    assert e["decision"] == "report", e
    assert e["reason"] == reason, e
    time.sleep(0.05)
    after = status(rgw)
    assert after["report_reasons"][reason] == \
        before["report_reasons"][reason] + 1, (before["report_reasons"],
                                                after["report_reasons"])
    assert after["decisions"]["report"] == before["decisions"]["report"] + 1
    assert after["decisions"]["deny"] == before["decisions"]["deny"]
    assert after["reasons"].get(reason, 0) == \
        before["reasons"].get(reason, 0), "counted as a real refusal"


def test_ok_request_in_report_mode(env, rgw):
    before = status(rgw)
    r = get(env, rgw)
    assert r.status_code == 200, r.text[:300]
    e = env.decision(r)
    assert e["decision"] == "report", e
    assert e.get("reason", None) == "", e
    assert e["bank"] == "BANK001" and e["purpose"] == PURPOSE, e
    after = status(rgw)
    assert after["decisions"]["report"] == before["decisions"]["report"] + 1
    assert after["report_reasons"] == before["report_reasons"]


def test_report_mode_counts_in_prometheus(env, rgw):
    get(env, rgw, token=None)
    r = requests.get(rgw.url("/credit-auth/status?format=prometheus",
                             plain=True), timeout=5)
    assert r.status_code == 200
    line = [ln for ln in r.text.splitlines()
            if ln.startswith("credit_auth_report_refusals_total")
            and 'reason="token_missing"' in ln]
    assert line and int(line[0].split()[-1]) >= 1, r.text[:2000]


def test_enforcing_gateway_still_refuses(env):
    """The same request on the session's enforcing gateway is a 401: the
    report location does not change the 'on' one."""
    r = get(env, env.gw, token=None)
    assert r.status_code == 401
    assert "internal_notes" not in r.text
