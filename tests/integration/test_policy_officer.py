"""The security officer's work with `credit-policy` (contract §9, docs/policy.md
§8, docs/policy-guide.md §6), beyond test_policy_cli.py:

- `diff` reports every widening (disclosure, verification, budget, token
  rules) and exits 1, reports narrowing too (exit 0 when nothing widens),
  shows an added category whole, treatments as written;
- `check --strict` warns on the policy guide's rules (`--previous`,
  `--accept`);
- `explain --check` answers a verification of the sample as the gateway
  does (checked against the real gateway);
- `description` is accepted by nginx -t and the gateway, shown by the tools;
- a misspelt member names the one meant;
- `make run POLICY=FILE` stops with the checker's message on a bad file.
"""

import copy
import json
import re
import subprocess
import sys

import pytest
import requests

from conftest import E1, PURPOSE, RECORDS, S, problem

CLI = S.ROOT / "build" / "bin" / "credit-policy"
SHIPPED = S.ROOT / "policies" / "platform-policy.json"
TAX = f"/api/v1/enterprises/{E1}/tax"

# The shipped policy's deliberate exceptions (docs/policy-guide.md §6)
SHIPPED_ACCEPTS = [
    "personal-raw-keep:tax:legal_representative.name",
    "personal-verify:tax:legal_representative.name",
    "personal-raw-keep:utilities:account.account_holder",
    "personal-raw-keep:utilities:contact.name",
]


def run(*args, timeout=30):
    r = subprocess.run([str(CLI), *map(str, args)], capture_output=True,
                       text=True, timeout=timeout)
    return r.returncode, r.stdout, r.stderr


def policy(**changes):
    """TEST_POLICY with a new version, changed by the callables given."""
    p = copy.deepcopy(S.TEST_POLICY)
    p["version"] = "test-2026-12-01.1"
    for fn in changes.values():
        fn(p)
    return p


def tax(p):
    return p["categories"]["tax"]


@pytest.fixture
def write(conf_dir):
    def w(name, obj):
        return S.write_json(conf_dir / f"{name}.json", obj)
    return w


def diff(old, new):
    rc, out, err = run("diff", old, new, "--json")
    assert rc in (0, 1), (rc, out, err)
    return rc, json.loads(out)


def entries(d, cat, kind):
    return {(e["field"], e["old"], e["new"], e["effect"])
            for e in d["categories"].get(cat, {}).get(kind, [])}


# ------------------------------------------------------------------------
# diff: verification and token rules

def test_diff_reports_verification_widening(write):
    """The issue's change: eq on legal_representative.id_number (the guide
    forbids it), verify_budget 1000, gt/lt on tax_paid.  It used to say
    "no change in what is disclosed" and exit 0."""
    old = write("old", S.TEST_POLICY)

    def widen(p):
        tax(p)["verify"]["legal_representative.id_number"] = ["eq"]
        tax(p)["verify"]["annual[].tax_paid"] += ["gt", "lt"]
        tax(p)["verify_budget"] = 1000
    new = write("new", policy(v=widen))

    rc, d = diff(old, new)
    assert rc == 1
    assert entries(d, "tax", "verify_added") == {
        ("legal_representative.id_number", "-", "eq", "wider")}
    assert d["categories"]["tax"]["verify_added"][0]["class"] == "personal"
    assert entries(d, "tax", "verify_changed") == {
        ("annual[].tax_paid", "eq ge le", "eq gt ge lt le", "wider")}
    assert d["categories"]["tax"]["verify_budget"] == {
        "old": 3, "new": 1000, "effect": "wider"}
    assert d["wider"] == 3 and d["narrower"] == 0
    assert [w["rule"] for w in d["strict_warnings"]] == ["personal-verify"]

    rc, out, err = run("diff", old, new)
    assert rc == 1, out + err
    assert "no change" not in out
    assert re.search(r"wider +verify added +legal_representative\.id_number:"
                     r" eq \(personal\)", out), out
    assert re.search(r"wider +verify ops +annual\[\]\.tax_paid: eq ge le ->"
                     r" eq gt ge lt le", out), out
    assert re.search(r"wider +verify budget +3 -> 1000 checks per field per"
                     r" consent", out), out
    assert "new warnings of check --strict" in out
    assert "[personal-verify]" in out
    assert re.search(r"^3 wider, 0 narrower", out, re.M), out


def test_diff_narrowing_only_exits_0(write):
    old = write("old", S.TEST_POLICY)

    def narrow(p):
        tax(p)["verify"]["annual[].tax_paid"] = ["ge"]
        del tax(p)["verify"]["credit_rating"]
        tax(p)["verify_budget"] = 1
        tax(p)["fields"]["annual[].tax_paid"]["masked"] = "bucket:1000000"
        tax(p)["fields"]["legal_representative.name"]["masked"] = "mask:0,0"
        p["token"]["max_lifetime"] = 86400
        p["token"]["require_cnf"] = True
    new = write("new", policy(n=narrow))

    rc, d = diff(old, new)
    assert rc == 0, d
    assert d["wider"] == 0 and d["narrower"] == 7, d
    assert entries(d, "tax", "verify_changed") == {
        ("annual[].tax_paid", "eq ge le", "ge", "narrower")}
    assert entries(d, "tax", "verify_removed") == {
        ("credit_rating", "eq", "-", "narrower")}
    assert entries(d, "tax", "treatment_changed") == {
        ("annual[].tax_paid", "bucket:100000", "bucket:1000000",
         "narrower"),
        ("legal_representative.name", "mask:1,0", "mask:0,0", "narrower")}
    rc, out, _ = run("diff", old, new)
    assert rc == 0
    assert re.search(r"narrower +verify removed +credit_rating: eq", out)
    assert re.search(r"narrower +max_lifetime +7776000 -> 86400", out), out
    assert "0 wider, 7 narrower" in out


@pytest.mark.parametrize("rule,change,old,new,effect", [
    ("max_lifetime", lambda t: t.update(max_lifetime=31536000),
     "7776000", "31536000", "wider"),
    ("leeway", lambda t: t.update(leeway=30), "60", "30", "narrower"),
    ("algs", lambda t: t.update(algs=["ES256"]),
     "ES256 RS256 PS256 EdDSA SM2", "ES256", "narrower"),
    ("require_cnf", lambda t: t.update(require_cnf=True), "false", "true",
     "narrower"),
])
def test_diff_token_rules(write, rule, change, old, new, effect):
    """Each token rule both ways: loosening widens (exit 1), tightening
    narrows (exit 0)."""
    a = write("a", S.TEST_POLICY)
    b = write("b", policy(t=lambda p: change(p["token"])))
    for src, dst, o, n, eff in ((a, b, old, new, effect),
                                (b, a, new, old,
                                 "wider" if effect == "narrower"
                                 else "narrower")):
        rc, d = diff(src, dst)
        assert d["token"] == [{"rule": rule, "old": o, "new": n,
                               "effect": eff}], d["token"]
        assert rc == (1 if eff == "wider" else 0), (src, dst, d)
        rc, out, _ = run("diff", src, dst)
        assert re.search(rf"^token\n +{eff} +{rule} +{re.escape(o)} -> "
                         rf"{re.escape(n)}$", out, re.M), out


def test_diff_treatments_and_masking(write):
    old = write("old", S.TEST_POLICY)

    def change(p):
        f = tax(p)["fields"]
        f["annual[].tax_paid"]["masked"] = "bucket:10000"      # finer
        f["legal_representative.id_number"]["masked"] = "mask:6,6"
        f["legal_representative.name"]["masked"] = "hash"      # other kind
        f["annual[].tax_paid"]["raw"] = "bucket:100000"        # keep -> mask
        f["legal_representative.mobile"] = {"masked": "mask:3,4",
                                            "class": "personal"}
        f["credit_rating"] = "year"                            # keep -> year
    new = write("new", policy(c=change))
    rc, d = diff(old, new)
    assert rc == 1
    t = d["categories"]["tax"]
    assert {(e["field"], e["level"], e["old"], e["new"], e["effect"])
            for e in t["treatment_changed"]} == {
        ("annual[].tax_paid", "masked", "bucket:100000", "bucket:10000",
         "wider"),
        ("legal_representative.id_number", "masked", "mask:6,4", "mask:6,6",
         "wider"),
        ("legal_representative.name", "masked", "mask:1,0", "hash",
         "wider")}
    # withheld -> masked under its own heading, not "newly disclosed"
    assert {(e["field"], e["level"]) for e in t["newly_sent_masked"]} == {
        ("legal_representative.mobile", "masked"),
        ("legal_representative.mobile", "raw")}
    assert "newly_disclosed" not in t
    assert {(e["field"], e["level"], e["effect"]) for e in t["newly_masked"]
            } == {("annual[].tax_paid", "raw", "narrower"),
                  ("credit_rating", "masked", "narrower"),
                  ("credit_rating", "raw", "narrower")}
    rc, out, _ = run("diff", old, new)
    assert re.search(r"wider +newly sent masked +legal_representative\.mobile"
                     r" +masked +- -> mask:3,4", out), out


def test_diff_added_category_shown_whole(write):
    """Routes, purposes, raw setting, verify rules, budget, description;
    widths as written (bucket:0.05, not 0.050000000000000003)."""
    old = write("old", S.TEST_POLICY)

    def add(p):
        p["categories"]["social"] = {
            "description": "社保缴纳信息\nsecond line",
            "routes": ["/api/v1/enterprises/{uscc}/social"],
            "purposes": ["loan_application", "credit_assessment"],
            "raw_allowed": False,
            "fields": {"insured_employees": "keep",
                       "contribution_rate": "bucket:0.05",
                       "months[].month": "keep",
                       "months[].paid": "bucket:1e4"},
            "verify": {"insured_employees": ["ge"],
                       "months[].paid": ["ge"]},
            "verify_budget": 5,
        }
    new = write("new", policy(a=add))
    rc, d = diff(old, new)
    assert rc == 1
    s = d["categories"]["social"]
    assert s["category"] == "added"
    assert s["description"] == {"old": None,
                                "new": "社保缴纳信息\nsecond line"}
    assert s["routes"] == {"added": ["/api/v1/enterprises/{uscc}/social"],
                           "removed": []}
    assert s["purposes"]["added"] == ["loan_application",
                                      "credit_assessment"]
    assert s["raw_allowed"] is False
    assert s["verify_budget"] == {"old": None, "new": 5, "effect": "note"}
    assert entries(d, "social", "verify_added") == {
        ("insured_employees", "-", "ge", "wider"),
        ("months[].paid", "-", "ge", "wider")}
    assert ("contribution_rate", "-", "bucket:0.05", "wider") in {
        (e["field"], e["old"], e["new"], e["effect"])
        for e in s["newly_sent_masked"]}

    rc, out, _ = run("diff", old, new)
    block = out.split("category social: added\n", 1)[1]
    for want in (r"note +description +社保缴纳信息\n +second line",
                 r"wider +routes added +/api/v1/enterprises/\{uscc\}/social",
                 r"wider +purposes added +credit_assessment",
                 r" +raw detail +not allowed",
                 r" +verify budget +5 checks per field per consent",
                 r"wider +verify added +insured_employees: ge",
                 r"wider +newly disclosed +insured_employees +masked",
                 r"newly sent masked +contribution_rate +masked +- -> "
                 r"bucket:0\.05\n",
                 r"months\[\]\.paid +masked +- -> bucket:1e4\n"):
        assert re.search(want, block), (want, block)
    assert "0.0500000" not in out
    # and the removal, the other way round: all narrower, exit 0
    rc, d = diff(new, old)
    assert rc == 0 and d["categories"]["social"]["category"] == "removed"
    assert d["wider"] == 0


def test_diff_version_and_descriptions_are_notes(write):
    a = write("a", S.TEST_POLICY)
    p = copy.deepcopy(S.TEST_POLICY)
    p["description"] = "平台的披露策略"
    tax(p)["description"] = "纳税信息"
    b = write("b", p)
    rc, d = diff(a, b)
    assert rc == 0 and d["wider"] == 0 and d["notes"] == 3, d
    assert d["version_unchanged"] is True
    rc, out, _ = run("diff", a, b)
    assert "unchanged, though the files differ" in out
    assert re.search(r"note +description +平台的披露策略", out)
    assert re.search(r"category tax\n +note +description +纳税信息", out)


# ------------------------------------------------------------------------
# check --strict

STRICT_CASES = {
    "personal-verify": (
        lambda p: tax(p)["verify"].update(
            {"legal_representative.id_number": ["eq"]}),
        r'\$\.categories\.tax\.verify\["legal_representative\.id_number"\]',
        "personal-verify:tax:legal_representative.id_number"),
    "personal-raw-keep": (
        lambda p: tax(p)["fields"]["legal_representative.id_number"].update(
            raw="keep"),
        r'\$\.categories\.tax\.fields\["legal_representative\.id_number"\]'
        r'\.raw',
        "personal-raw-keep:tax:legal_representative.id_number"),
    "verify-unclassified": (
        lambda p: tax(p)["verify"].update({"registered_capital": ["ge"]}),
        r"\$\.categories\.tax\.verify\.registered_capital",
        "verify-unclassified:tax:registered_capital"),
    "verify-bisect": (
        lambda p: (p["categories"]["environment"]["fields"].update(
            {"penalties[].decision_no": "keep"}),
            p["categories"]["environment"]["verify"].update(
                {"penalties[].amount": ["ge", "le"]})),
        r'\$\.categories\.environment\.verify\["penalties\[\]\.amount"\]',
        "verify-bisect:environment:penalties[].amount"),
    "masked-eq": (
        lambda p: (p["categories"]["environment"]["fields"].update(
            {"licence_no": "mask:4,4"}),
            p["categories"]["environment"]["verify"].update(
                {"licence_no": ["eq"]})),
        r"\$\.categories\.environment\.verify\.licence_no",
        "masked-eq:environment:licence_no"),
    "verify-no-selector": (
        lambda p: (tax(p)["fields"].update({"annual[].year": "year"}),
                   tax(p)["verify"].update({"annual[].tax_paid": ["ge"]})),
        r'\$\.categories\.tax\.verify\["annual\[\]\.tax_paid"\]',
        "verify-no-selector:tax:annual[].tax_paid"),
}


def _quiet_base():
    """TEST_POLICY without its one deliberate exception (the legal
    representative's name is sent as is at the raw level)."""
    p = copy.deepcopy(S.TEST_POLICY)
    tax(p)["fields"]["legal_representative.name"]["raw"] = "mask:1,0"
    return p


def test_strict_is_quiet_on_a_policy_that_follows_the_guide(write):
    base = write("base", _quiet_base())
    rc, out, err = run("check", "--strict", base)
    assert rc == 0, out + err
    assert out.count("\n") == 1 and ": ok (" in out
    # without --strict the guide's rules are not the loader's business
    p = _quiet_base()
    STRICT_CASES["personal-verify"][0](p)
    rc, out, _ = run("check", write("plain", p))
    assert rc == 0 and "warning" not in out


@pytest.mark.parametrize("rule", sorted(STRICT_CASES))
def test_strict_warns_on_each_rule(write, rule):
    change, jpath, key = STRICT_CASES[rule]
    p = _quiet_base()
    change(p)
    f = write(f"strict-{rule}", p)
    rc, out, err = run("check", "--strict", f)
    assert rc == 1, (out, err)
    lines = out.splitlines()
    assert lines[0].startswith(f"{f}: ok (")
    warnings = [ln for ln in lines if ": warning: " in ln]
    assert len(warnings) == 1, out
    assert re.match(rf"{re.escape(str(f))}: {jpath}: warning: .+ "
                    rf"\[{re.escape(key)}\]$", warnings[0]), warnings[0]
    assert lines[-1] == f"{f}: 1 warning under --strict, 0 accepted"
    # accepted by the name the warning gives it
    rc, out, err = run("check", "--strict", "--accept", key, f)
    assert rc == 0, out + err
    assert "warning:" not in out and "0 warnings under --strict, 1 accepted" \
        in out
    # the loader and nginx are not concerned: the policy is valid
    rc, out, _ = run("check", f)
    assert rc == 0


def test_strict_previous_version_must_change(write):
    old = write("old", _quiet_base())
    p = _quiet_base()
    tax(p)["fields"]["name"] = "mask:2,0"
    same = write("same-version", p)
    rc, out, err = run("check", "--previous", old, same)
    assert rc == 1, out + err
    assert re.search(rf'^{re.escape(str(same))}: \$\.version: warning: '
                     rf'"test-2026-11-27\.1" is also the version of '
                     rf'{re.escape(str(old))}.*\[version-unchanged\]$', out,
                     re.M), out
    p["version"] = "test-2026-12-01.1"
    bumped = write("bumped", p)
    rc, out, err = run("check", "--strict", "--previous", old, bumped)
    assert rc == 0, out + err
    # the file it replaces must load
    rc, out, err = run("check", "--previous", bumped.with_name("nope.json"),
                       bumped)
    assert rc == 2 and "--previous" in err and "nope.json" in err


def test_strict_on_the_shipped_policy_names_its_exceptions():
    """The shipped policy breaks the guide's general rules exactly where
    the guide says it does on purpose (§2.3, §2.4)."""
    rc, out, _ = run("check", "--strict", SHIPPED)
    assert rc == 1
    keys = re.findall(r"\[([^\]]+)\]$", out, re.M)
    assert sorted(keys) == sorted(SHIPPED_ACCEPTS), out
    args = [a for k in SHIPPED_ACCEPTS for a in ("--accept", k)]
    rc, out, err = run("check", "--strict", *args, SHIPPED)
    assert rc == 0, out + err
    assert "4 accepted" in out


@pytest.mark.parametrize("bad", ["personal-verify", "nonsense:tax:x",
                                 "personal-verify:tax", "personal-verify::x",
                                 "version-unchanged:tax:x"])
def test_strict_accept_must_name_a_warning(bad):
    rc, out, err = run("check", "--accept", bad, SHIPPED)
    assert rc == 2 and "--accept" in err, (rc, out, err)


def test_strict_accept_that_matches_nothing_is_noted(write):
    base = write("base", _quiet_base())
    rc, out, err = run("check", "--accept", "masked-eq:tax:name", base)
    assert rc == 0
    assert "--accept masked-eq:tax:name matched no warning" in err


# ------------------------------------------------------------------------
# explain --check

@pytest.fixture
def sample(write):
    return (write("policy", S.TEST_POLICY),
            write("response", RECORDS[(E1, "tax")]))


def explain_check(pol, resp, *checks, extra=()):
    args = ["explain", "--policy", pol, "--path", TAX, "--response", resp,
            *extra]
    for c in checks:
        args += ["--check", c]
    return run(*args)


def test_explain_check_answers_like_the_gateway(sample, env):
    """match / no match / absent, for the record the real gateway reads,
    and the same answer the gateway gives a bank's POST."""
    pol, resp = sample
    checks = [("annual[year=2023].tax_paid", "ge", 100000),
              ("credit_rating", "eq", "B"),
              ("annual[year=1999].tax_paid", "le", 1)]
    written = [f"{f} {o} {json.dumps(v) if isinstance(v, str) else v}"
               for f, o, v in checks]
    rc, out, err = explain_check(pol, resp, *written,
                                 extra=["--purpose", PURPOSE, "--json"])
    assert rc == 0, out + err
    doc = json.loads(out)
    assert doc["mode"] == "verify" and doc["decision"] == "allow"
    assert [r["match"] for r in doc["results"]] == [True, False, None]
    assert [r["value"] for r in doc["results"]] == [100000, "B", 1]

    r = env.post(TAX, json={"checks": [{"field": f, "op": o, "value": v}
                                       for f, o, v in checks]})
    assert r.status_code == 200, r.text
    assert [x["match"] for x in r.json()["results"]] == \
        [x["match"] for x in doc["results"]]

    rc, out, err = explain_check(pol, resp, *written[:1],
                                 "credit_rating eq A",
                                 "annual[year=1999].tax_paid le 1")
    assert rc == 0, out + err
    assert re.search(r"^  annual\[year=2023\]\.tax_paid ge 100000 +match$",
                     out, re.M), out
    assert re.search(r'^  credit_rating eq "A" +match$', out, re.M), out
    assert re.search(r"^  annual\[year=1999\]\.tax_paid le 1 +absent", out,
                     re.M), out
    assert "mode verify" in out


@pytest.mark.parametrize("check,reason,detail", [
    ("legal_representative.id_number eq 110101199003071234",
     "request_invalid", "is not verifiable"),
    ("credit_rating ge 1", "request_invalid",
     'op "ge" is not allowed on field "credit_rating"'),
    ("annual[tax_paid=987654].tax_paid ge 1", "request_invalid",
     'the selector member "tax_paid" is not disclosed unmasked'),
    ("annual[].tax_paid ge 1", "request_invalid", "a bare [] is ambiguous"),
    ("credit_rating eq 1", "request_invalid",
     "is not of the type of the check's value"),
])
def test_explain_check_refusals_match_the_gateway(sample, env, check, reason,
                                                  detail):
    pol, resp = sample
    rc, out, err = explain_check(pol, resp, check)
    assert rc == 1, (out, err)
    assert f"refused: {reason} (400): " in out and detail in out, out
    field, op, value = check.split(" ", 2)
    r = env.post(TAX, json={"checks": [{"field": field, "op": op,
                                        "value": json.loads(value)}]})
    # the same code, so the same words (the bank's own field names in
    # them; no value of the record)
    doc = problem(r, 400, reason, record_markers=["1234567.89", "张三丰"])
    if "type of the check's value" not in detail:
        assert detail in doc["detail"], doc


def test_explain_check_mode_purpose_and_budget(sample, write):
    pol, resp = sample
    claims = write("claims-query-only", S.claims(E1, "BANK001",
                                                 modes=["query"]))
    rc, out, _ = explain_check(pol, resp, "credit_rating eq A",
                               extra=["--claims", claims, "--purpose",
                                      PURPOSE])
    assert rc == 1 and "refused: mode_not_consented" in out, out
    assert "verify mode" in out
    # the same consent may query
    rc, out, _ = run("explain", "--policy", pol, "--path", TAX, "--response",
                     resp, "--claims", claims, "--purpose", PURPOSE)
    assert rc == 0, out
    rc, out, _ = explain_check(pol, resp, "credit_rating eq A",
                               extra=["--purpose", "marketing"])
    assert rc == 1 and "refused: purpose_not_allowed" in out
    four = [f"annual[year={y}].tax_paid ge 1" for y in (2020, 2021, 2022,
                                                        2023)]
    rc, out, _ = explain_check(pol, resp, *four)
    assert rc == 1, out
    assert "refused: verification_budget_exhausted (403): 4 checks of " \
           "annual[].tax_paid in one request; a consent may make 3" in out
    rc, out, _ = explain_check(pol, resp, *four[:3])
    assert rc == 0, out


@pytest.mark.parametrize("bad", ["credit_rating", "credit_rating eq",
                                 "   "])
def test_explain_check_needs_field_op_value(sample, bad):
    pol, resp = sample
    rc, out, err = explain_check(pol, resp, bad)
    assert rc == 2 and "FIELD OP VALUE" in err, (rc, out, err)


# ------------------------------------------------------------------------
# description, did-you-mean

def test_description_is_accepted_by_the_gateway(write, make_gateway, env):
    p = copy.deepcopy(S.TEST_POLICY)
    p["description"] = "测试策略\n第二行"
    tax(p)["description"] = "纳税信息：银税互动"
    f = write("described", p)
    rc, out, err = run("check", f)
    assert rc == 0, out + err
    g = make_gateway(policy=f)
    grc, gout = g.test()
    assert grc == 0, gout
    g.start()
    bank = env.certs["BANK001"]
    r = requests.get(g.url(TAX), headers={
        "Authorization": f"Bearer {env.token()}",
        "X-Credit-Purpose": PURPOSE}, cert=(bank.cert, bank.key),
        verify=env.st.pki.server_ca_path, timeout=10)
    assert r.status_code == 200, r.text
    assert r.json() == env.get(TAX).json()
    assert "测试策略" not in r.text and "纳税信息" not in r.text

    rc, out, _ = run("explain", "--policy", f, "--path", TAX, "--response",
                     write("resp", RECORDS[(E1, "tax")]))
    assert rc == 0
    assert out.startswith("policy test-2026-11-27.1: 测试策略\n"
                          "policy test-2026-11-27.1: 第二行\n"
                          "category tax: 纳税信息：银税互动\n"), out


@pytest.mark.parametrize("where,member,path,meant", [
    ("root", "purpose", r"\$\.purpose", "purposes"),
    ("category", "purpose", r"\$\.categories\.tax\.purpose", "purposes"),
    ("category", "raw_alowed", r"\$\.categories\.tax\.raw_alowed",
     "raw_allowed"),
    ("token", "max_lifetme", r"\$\.token\.max_lifetme", "max_lifetime"),
    ("field", "clas",
     r'\$\.categories\.tax\.fields\["legal_representative\.name"\]\.clas',
     "class"),
])
def test_unknown_member_says_what_was_meant(write, make_gateway, where,
                                            member, path, meant):
    p = copy.deepcopy(S.TEST_POLICY)
    target = {"root": p, "category": tax(p), "token": p["token"],
              "field": tax(p)["fields"]["legal_representative.name"]}[where]
    target[member] = target.get(meant, "x")
    f = write(f"typo-{member}", p)
    rc, out, _ = run("check", f)
    assert rc == 1
    line = out.strip()
    assert re.fullmatch(rf"{re.escape(str(f))}: {path}: unknown member "
                        rf'\(did you mean "{meant}"\?\)', line), line
    grc, gout = make_gateway(policy=f).test()
    assert grc != 0 and line in gout, gout


# ------------------------------------------------------------------------
# make run POLICY=FILE

def test_make_run_refuses_a_policy_that_does_not_load(write):
    p = copy.deepcopy(S.TEST_POLICY)
    tax(p)["purpose"] = tax(p).pop("purposes")
    f = write("run-bad", p)
    r = subprocess.run(["make", "-s", "run", f"POLICY={f}"], cwd=S.ROOT,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode != 0, r.stdout + r.stderr
    assert (f'{f}: $.categories.tax.purpose: unknown member (did you mean '
            f'"purposes"?)') in r.stderr, r.stdout + r.stderr
    assert "the gateway would not start" in r.stderr
    assert "curl" not in r.stdout          # nothing was started


def test_demo_runs_the_given_policy(write, env):
    import tempfile
    from pathlib import Path
    p = json.loads(SHIPPED.read_text())
    p["version"] = "tried-on-the-demo.1"
    p["description"] = "a policy tried with make run POLICY=FILE"
    f = write("run-good", p)
    d = Path(tempfile.mkdtemp(prefix="demo-", dir=env.st.dir))
    r = subprocess.run([sys.executable, str(S.ROOT / "scripts" / "demo.py"),
                        "--check", "--policy", str(f), "--dir", str(d)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert re.search(rf"policy +{re.escape(str(f))} ", r.stdout), r.stdout
    assert "allowed request: 200" in r.stdout
    assert f"credit-policy explain --policy {f} " in r.stdout
