"""Verification is not an oracle (contract §2.1, issue 8): a selector may only
test a member the category discloses unmasked, and each consent has a
budget of checks per verify field, counted in Redis in the same atomic
step as the use count; a jti that looks personal reaches the audit only as
its digest.

One gateway with this file's policy: the tax category keeps its default
budget (3), environment sets "verify_budget": 1."""

import base64
import copy
import hashlib
import json
import subprocess
import tempfile
from pathlib import Path

import pytest
import requests

from conftest import E1, PURPOSE, S, problem

TAX = f"/api/v1/enterprises/{E1}/tax"
ENV = f"/api/v1/enterprises/{E1}/environment"
ID = "11010519491231002X"

TAX_RECORD = {
    "uscc": E1, "name": "福州闽江精密机械有限公司", "credit_rating": "A",
    "annual": [{"year": 2023, "tax_paid": 1234567.89, "filing_ref": "FR-9"},
               {"year": 2022, "tax_paid": 987654}],
    "shareholders": [{"name": "张三丰", "id_number": ID, "share": 0.6},
                     {"name": "李四", "id_number": "110101199003071234",
                      "share": 0.4}],
}
ENV_RECORD = {"uscc": E1, "env_rating": "B"}
# values no refusal may carry (the bank's own selector text aside)
SECRETS = ["1234567.89", "987654", "110101199003071234", "李四"]

POLICY = copy.deepcopy(S.TEST_POLICY)
POLICY["version"] = "test-verify-oracle-1"
TAXC = POLICY["categories"]["tax"]
TAXC["fields"].update({
    "shareholders[].name": {"masked": "mask:1,0", "raw": "keep",
                            "class": "personal"},
    "shareholders[].id_number": {"masked": "mask:6,4", "raw": "keep",
                                 "class": "personal"},
    "shareholders[].share": "keep",
})
TAXC["verify"] = {"annual[].tax_paid": ["ge", "le", "eq"],
                  "credit_rating": ["eq"],
                  "shareholders[].share": ["ge"]}
assert "verify_budget" not in TAXC          # the default is under test
POLICY["categories"]["environment"]["verify_budget"] = 1


@pytest.fixture(scope="module")
def ogw(env):
    d = S.workdir(Path(tempfile.mkdtemp(prefix="oracle-", dir=env.st.dir)))
    pol = S.write_json(d / "policy-oracle.json", POLICY)
    root = S.write_platform(S.subdir(d, "platform"),
                            {(E1, "tax"): TAX_RECORD,
                             (E1, "environment"): ENV_RECORD})
    up = S.Upstream(d, root=root).start()
    gw = env.st.make_gateway(d / "gw", policy=pol, upstream_port=up.port)
    try:
        gw.start()
    except Exception:
        up.stop()
        raise
    # one allowed query first: it waits for the worker's Redis connection,
    # which a refusal straight after start-up would not (tests start with
    # refusals)
    c = env.certs["BANK001"]
    r = requests.get(gw.url(TAX), headers={
        "Authorization": "Bearer " + env.token(), "X-Credit-Purpose": PURPOSE},
        cert=(c.cert, c.key), verify=env.pki.server_ca_path, timeout=10)
    assert r.status_code == 200, r.text
    yield gw
    gw.stop()
    up.stop()
    problems = gw.log_problems()
    assert not problems, "oracle gateway log:\n" + "\n".join(problems)


def check(env, gw, checks, token=None, path=TAX):
    c = env.certs["BANK001"]
    body = {"checks": [{"field": f, "op": o, "value": v}
                       for f, o, v in checks]}
    return requests.post(
        gw.url(path), data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + (token or env.token(
                     categories=["tax", "environment"])),
                 "X-Credit-Purpose": PURPOSE,
                 "Content-Type": "application/json"},
        cert=(c.cert, c.key), verify=env.pki.server_ca_path, timeout=10)


def jti_of(tok):
    part = tok.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))["jti"]


def matches(r):
    assert r.status_code == 200, r.text
    return [x["match"] for x in r.json()["results"]]


# ------------------------------------------------------------------------
# Selectors

def test_selector_on_a_masked_member_is_refused(env, ogw):
    """The attack: confirm that a resident ID appears in a member the
    bank may only see masked."""
    r = check(env, ogw, [(f"shareholders[id_number={ID}].share", "ge", 0)])
    doc = problem(r, 400, "request_invalid", record_markers=SECRETS)
    assert "id_number" in doc["detail"] and ID not in doc["detail"], doc
    assert "results" not in r.text
    e = env.decision(r)
    assert (e["decision"], e["reason"]) == ("deny", "request_invalid"), e
    assert ID not in json.dumps(e)


def test_selector_on_a_masked_name_or_withheld_member_is_refused(env, ogw):
    for field in ("shareholders[name=张三丰].share",
                  "annual[filing_ref=FR-9].tax_paid"):
        r = check(env, ogw, [(field, "ge", 0)])
        problem(r, 400, "request_invalid", record_markers=SECRETS)


def test_selector_on_a_disclosed_member_still_works(env, ogw):
    r = check(env, ogw, [("annual[year=2023].tax_paid", "ge", 1000000),
                         ("annual[year=2022].tax_paid", "ge", 1000000)])
    assert matches(r) == [True, False]


# ------------------------------------------------------------------------
# Budget: 3 checks per verify field per consent by default

def test_budget_spent_across_requests_then_refused(env, ogw):
    tok = env.token(categories=["tax", "environment"])
    r = check(env, ogw, [("annual[year=2023].tax_paid", "ge", 1000000),
                         ("annual[year=2022].tax_paid", "le", 1000000)],
              token=tok)
    assert matches(r) == [True, True]
    # the third check of the field, whatever the selector
    r = check(env, ogw, [("annual[year=2022].tax_paid", "eq", 987654)],
              token=tok)
    assert matches(r) == [True]
    # the fourth: bisection stops here
    r = check(env, ogw, [("annual[year=2023].tax_paid", "ge", 1200000)],
              token=tok)
    problem(r, 403, "verification_budget_exhausted",
            record_markers=SECRETS)
    e = env.decision(r)
    assert (e["decision"], e["reason"]) == \
        ("deny", "verification_budget_exhausted"), e
    assert e["mode"] == "verify", e
    # another field of the same consent has its own budget
    assert matches(check(env, ogw, [("credit_rating", "eq", "A")],
                         token=tok)) == [True]
    # so does another consent
    assert matches(check(env, ogw, [
        ("annual[year=2023].tax_paid", "ge", 1200000)])) == [True]


def test_many_checks_in_one_request_count_each(env, ogw):
    """The attack: 32 `ge` checks in one request pin a bucketed value."""
    tok = env.token(categories=["tax", "environment"])
    checks = [("annual[year=2023].tax_paid", "ge", 1000000 + i * 10000)
              for i in range(32)]
    r = check(env, ogw, checks, token=tok)
    problem(r, 403, "verification_budget_exhausted",
            record_markers=SECRETS)
    # a refusal spends nothing: three checks still go through
    r = check(env, ogw, checks[:3], token=tok)
    assert matches(r) == [True, True, True]
    rc = env.redis()
    jti = jti_of(tok)
    assert rc.hget(f"credit:vbudget:{E1}:{jti}", "annual[].tax_paid") == "3"
    assert rc.ttl(f"credit:vbudget:{E1}:{jti}") > 0


def test_budget_refusal_spends_no_use(env, ogw):
    tok = env.token(categories=["tax", "environment"], max_uses=2)
    jti = jti_of(tok)
    checks = [("credit_rating", "eq", "A")] * 4
    problem(check(env, ogw, checks, token=tok), 403,
            "verification_budget_exhausted")
    assert env.redis().get(f"credit:uses:{E1}:{jti}") is None
    assert matches(check(env, ogw, checks[:3], token=tok)) == [True] * 3
    assert env.redis().get(f"credit:uses:{E1}:{jti}") == "1"


def test_revocation_and_uses_come_before_the_budget(env, ogw):
    tok = env.token(categories=["tax", "environment"], max_uses=1)
    jti = jti_of(tok)
    assert matches(check(env, ogw, [("credit_rating", "eq", "A")],
                         token=tok)) == [True]
    many = [("credit_rating", "eq", "A")] * 5
    problem(check(env, ogw, many, token=tok), 403, "consent_exhausted")
    env.redis().set(f"credit:revoked:{E1}:{jti}", "1")
    problem(check(env, ogw, many, token=tok), 403, "consent_revoked")


def test_category_budget_is_configurable(env, ogw):
    tok = env.token(categories=["tax", "environment"])
    assert matches(check(env, ogw, [("env_rating", "eq", "B")], token=tok,
                         path=ENV)) == [True]
    problem(check(env, ogw, [("env_rating", "ne", "B")], token=tok,
                  path=ENV), 403, "verification_budget_exhausted")


def test_budget_refusals_are_counted(env, ogw):
    def refusals():
        r = requests.get(ogw.url("/credit-auth/status"),
                         cert=(env.certs["BANK001"].cert,
                               env.certs["BANK001"].key),
                         verify=env.pki.server_ca_path, timeout=10)
        return r.json()["reasons"]["verification_budget_exhausted"]
    before = refusals()
    problem(check(env, ogw, [("credit_rating", "eq", "A")] * 4), 403,
            "verification_budget_exhausted")
    assert refusals() == before + 1


def test_policy_check_refuses_a_bad_budget(env, tmp_path):
    bad = copy.deepcopy(POLICY)
    bad["categories"]["tax"]["verify_budget"] = 0
    f = S.write_json(tmp_path / "bad.json", bad)
    tool = S.ROOT / "build" / "bin" / "credit-policy"
    out = subprocess.run([str(tool), "check", str(f)], capture_output=True,
                         text=True)
    assert out.returncode == 1, out
    assert "$.categories.tax.verify_budget: must be an integer from 1 to" \
        in out.stdout + out.stderr


# ------------------------------------------------------------------------
# A personal-looking jti reaches the audit only as its digest

@pytest.mark.parametrize("jti", [ID, "13812345678", "c-6222021234567890123"])
def test_personal_jti_is_hashed_in_the_audit(env, jti):
    r = env.get(token=env.token(jti=jti))
    assert r.status_code == 200, r.text
    e = env.decision(r)
    want = "sha256:" + hashlib.sha256(jti.encode()).hexdigest()
    assert e["consent"] == want, e
    for entry in env.audit_entries():
        assert jti not in json.dumps(entry, ensure_ascii=False)
    # a regulator asking by the jti finds the entry
    tool = S.ROOT / "build" / "bin" / "credit-audit"
    out = subprocess.run(
        [str(tool), "query", "--redis",
         f"127.0.0.1:{env.st.redis.port}", "--consent", jti, "--json"],
        capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out
    rids = [json.loads(ln).get("rid") for ln in out.stdout.splitlines()
            if ln.strip()]
    assert r.headers["X-Request-Id"] in rids, out.stdout


def test_plain_jti_is_written_as_is(env):
    r = env.get(token=env.token(jti="consent-2026.11_ok"))
    assert env.decision(r)["consent"] == "consent-2026.11_ok"
