"""The security officer's work with `credit-policy` (SPEC §9, docs/policy.md
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
# did-you-mean

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
