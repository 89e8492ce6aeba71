"""The regulator's daily work with credit-audit (issue 21, contract §9): a work
report fit to hand in (issuer, generation time, Chinese names beside the
codes, readable times, the per-purpose table, a policy table that keeps
one line a row, checked in headless Chromium), the requests as CSV for a
spreadsheet (read back with Python's csv module, with and without a byte
order mark), and `query` that refuses a USCC it could never match and
shows one line per request.

The gateway here is our own, on its own stream, with a policy that names
its categories and purposes (which the gateway accepts and ignores)."""

import copy
import csv
import datetime
import io
import json
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from conftest import E1, E2, PURPOSE, ROOT, TAX, S
from test_audit_cli import CHROMIUM, chromium
from test_audit_cli import wait_signed as wait_chains_signed
from test_audit_schema import CHECKS

TOOL = Path(os.environ.get("CREDIT_AUDIT_BIN")
            or Path(ROOT) / "build" / "bin" / "credit-audit")
ENV_E1 = f"/api/v1/enterprises/{E1}/environment"
ENV_E2 = f"/api/v1/enterprises/{E2}/environment"
TAX_E2 = f"/api/v1/enterprises/{E2}/tax"
# an issuer with what HTML must escape and CSV must quote
ISSUER = "福建省地方金融管理局 <b>监管处</b> & \"二处\", 2026"
ENTERPRISES = [{"uscc": E1, "name": "福州闽江智能装备有限公司",
                "legal_representative": "陈建华"},
               {"uscc": E2, "name": "北京海淀示例科技有限公司"}]
# Unix milliseconds of this era, as a spreadsheet would mangle them
MS = re.compile(r"(?<![\d.])1[789]\d{11}(?!\d)")
ISO8 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3})?\+08:00$")


def named_policy():
    """The test policy, its tax and environment categories and two of its
    three purposes named (post_loan_monitoring left without a name)."""
    p = copy.deepcopy(S.TEST_POLICY)
    p["purposes"] = [
        {"code": "loan_application", "name": "Loan application",
         "name_zh": "贷款申请"},
        {"code": "credit_assessment", "name_zh": "授信评估"},
        "post_loan_monitoring"]
    p["categories"]["tax"].update(name="Tax", name_zh="纳税信息")
    p["categories"]["environment"].update(name="Environment")
    return p


def tool(*args, check=None, stream=None, addr=None, env=None):
    argv = [str(TOOL), *args]
    if addr is not None:
        argv += ["--redis", addr]
    if stream is not None:
        argv += ["--stream", stream]
    p = subprocess.run(argv, capture_output=True, timeout=60,
                       env={**os.environ, **(env or {})})
    if check is not None:
        assert p.returncode == check, (argv, p.returncode, p.stdout[-3000:],
                                       p.stderr[-3000:])
    return p


class Reg:
    def __init__(self, env, gw, stream, d):
        self.env, self.gw, self.stream, self.dir = env, gw, stream, d
        self.addr = env.st.redis.directive_value()
        self.raw = env.st.redis.client(decode_responses=False)
        self.policy = S.write_json(d / "named-policy.json", named_policy())
        self.ents = S.write_json(d / "enterprises.json", ENTERPRISES)
        self.rids = {}

    def send(self, label, path=TAX, bank="BANK001", uscc=E1,
             purpose=PURPOSE, token=True, method="GET", body=None, **claims):
        h = {"X-Credit-Purpose": purpose}
        if token:
            h["Authorization"] = "Bearer " + self.env.token(
                uscc=uscc, bank=bank, **claims)
        if body is not None:
            h["Content-Type"] = "application/json"
            body = json.dumps(body).encode()
        cert = self.env.certs[bank]
        r = requests.request(method, self.gw.url(path), data=body, headers=h,
                             cert=(cert.cert, cert.key),
                             verify=self.env.pki.server_ca_path, timeout=10)
        self.rids[label] = r.headers["X-Request-Id"]
        return r

    def run(self, *args, check=None, stream=None, env=None):
        return tool(*args, check=check, addr=self.addr,
                    stream=stream or self.stream, env=env)

    def entries(self, stream=None):
        return [(i.decode(), {k.decode(): v.decode() for k, v in f.items()})
                for i, f in self.raw.xrange(stream or self.stream)]

    def names(self):
        return ["--banks", str(self.env.st.banks_path),
                "--policy", str(self.policy)]


@pytest.fixture(scope="module")
def reg(env, tmp_path_factory):
    if not TOOL.exists():
        pytest.fail(f"{TOOL} not built (make tools)", pytrace=False)
    d = tmp_path_factory.mktemp("regulator")
    stream = f"credit:audit:reg-{uuid.uuid4().hex[:8]}"
    r = Reg(env, None, stream, d)
    # a policy with names for people: the gateway starts on it and answers
    # as on the unnamed one
    r.gw = gw = env.st.make_gateway(
        stream=stream, gateway_id="gw-reg", policy=r.policy,
        http_directives={"credit_auth_audit_key":
                         f"{env.st.audit_key} interval=200ms"})
    gw.start()
    try:
        assert r.send("query").status_code == 200
        v = r.send("verify", method="POST", body={"checks": CHECKS})
        assert v.status_code == 200, v.text
        assert r.send("purpose", purpose="post_loan_monitoring",
                      purposes=["loan_application"]).status_code == 403
        assert r.send("suspended", bank="BANK009").status_code == 403
        assert r.send("bank2", path=TAX_E2, uscc=E2, bank="BANK002",
                      purpose="credit_assessment",
                      purposes=["credit_assessment"]).status_code == 200
        # allowed, then the platform has no such record
        assert r.send("missing", path=ENV_E2, uscc=E2,
                      categories=["environment"]).status_code == 404
        assert r.send("env", path=ENV_E1,
                      categories=["environment"]).status_code == 200
        assert r.send("no-token", token=False).status_code == 401

        class Stream:
            def entries(self):
                return r.entries()
        r.final = wait_chains_signed(Stream())
        yield r
    finally:
        gw.stop()


def test_gateway_checks_names_and_ignores_them(env, make_gateway):
    """nginx -t refuses a bad name with its JSON path, as credit-policy
    check does; a good one changes nothing the gateway does (the module
    fixture's gateway runs on a named policy)."""
    d = S.subdir(env.st.dir, "named-policies")
    for name, mutate, want in (
            ("purpose", lambda p: p["purposes"].__setitem__(0, {
                "code": "loan_application", "name_zh": "贷款\n申请"}),
             "$.purposes[0].name_zh: control characters"),
            ("category", lambda p: p["categories"]["tax"].update(
                name_zh=""), "$.categories.tax.name_zh: must be a non-empty "
                             "string"),
            ("member", lambda p: p["categories"]["tax"].update(
                title="Tax"), "$.categories.tax.title: unknown member")):
        pol = named_policy()
        mutate(pol)
        f = S.write_json(d / f"bad-{name}.json", pol)
        rc, out = make_gateway(policy=f).test()
        assert rc != 0 and str(f) in out and want in out, (name, out)
        p = subprocess.run([str(TOOL.parent / "credit-policy"), "check",
                            str(f)], capture_output=True, text=True)
        assert p.returncode != 0 and want in p.stderr + p.stdout, p


def decisions(reg):
    return {e["rid"]: e for _, e in reg.final if e["event"] == "decision"}


def ms_of(iso):
    return int(datetime.datetime.fromisoformat(iso).timestamp() * 1000)


# ------------------------------------------------------------------------
# 1. The report, fit to hand in

def report(reg, fmt, *extra, check=0):
    return reg.run("report", "--format", fmt, "--tz", "Asia/Shanghai",
                   "--issuer", ISSUER, "--pubkey", str(reg.env.st.audit_pub),
                   *reg.names(), *extra, check=check)


def test_report_json_names_issuer_time_and_codes(reg):
    before = int(time.time() * 1000)
    rep = json.loads(report(reg, "json").stdout)
    after = int(time.time() * 1000)
    assert rep["issuer"] == ISSUER
    assert ISO8.match(rep["generated"]), rep["generated"]
    assert before - 1000 <= ms_of(rep["generated"]) <= after + 1000
    ds = decisions(reg)
    ts = sorted(int(d["ts"]) for d in ds.values())
    assert ms_of(rep["first_decision"]) == ts[0]
    assert ms_of(rep["last_decision"]) == ts[-1]
    assert ISO8.match(rep["first_decision"])
    cats = {c["category"]: c for c in rep["categories"]}
    assert cats["tax"]["category_name"] == "纳税信息"
    # a name given only in English is the name
    assert cats["environment"]["category_name"] == "Environment"
    purposes = {p["purpose"]: p for p in rep["purposes"]}
    assert purposes["loan_application"]["purpose_name"] == "贷款申请"
    assert purposes["credit_assessment"]["purpose_name"] == "授信评估"
    assert "purpose_name" not in purposes["post_loan_monitoring"]
    for p, row in purposes.items():
        mine = [d for d in ds.values() if d["purpose"] == p]
        assert row["decisions"] == len(mine), p
        assert row["allowed"] == sum(d["decision"] == "allow" for d in mine)
        assert row["refused"] == sum(d["decision"] == "deny" for d in mine)
    assert purposes["post_loan_monitoring"]["refused"] == 1
    reasons = {r["reason"]: r for r in rep["reasons"]}
    assert reasons["purpose_not_allowed"]["reason_name"] == "用途未获授权"
    assert reasons["bank_suspended"]["reason_name"] == "银行已暂停接入"
    assert reasons["token_missing"]["reason_name"] == "未提供授权书"
    refusals = {(r["bank"], r["reason"]): r for r in rep["refusals"]}
    assert refusals[("BANK001", "purpose_not_allowed")]["bank_name"] == \
        "First Test Bank of Fujian"
    assert refusals[("BANK009", "bank_suspended")]["reason_name"] == \
        "银行已暂停接入"
    served = {b["bank"]: b for b in rep["banks_served"]}
    assert served["BANK002"]["bank_name"] == \
        "Second Test Bank (assessment only)"
    # without --policy, codes only; without --issuer, null
    rep = json.loads(reg.run("report", "--json", check=0).stdout)
    assert rep["issuer"] is None and rep["generated"]
    assert all("category_name" not in c for c in rep["categories"])
    assert {r["reason"]: r["reason_name"] for r in rep["reasons"]}[
        "bank_suspended"] == "银行已暂停接入"


def test_report_text_md_csv_name_issuer_time_and_codes(reg):
    text = report(reg, "text").stdout.decode()
    assert f"issued by                    {ISSUER}\n" in text
    assert re.search(r"generated                    \S+\+08:00\n", text)
    assert re.search(r"first decision               \S+\+08:00\n", text)
    assert re.search(r"tax +\d+  纳税信息\n", text)
    assert re.search(r"loan_application +\d+  贷款申请\n", text)
    assert re.search(r"purpose_not_allowed +1  用途未获授权\n", text)
    assert re.search(r"BANK009 +1  Suspended Test Bank\n", text)

    md = report(reg, "md").stdout.decode()
    # the issuer's markup shown as text, not run
    assert "| 发布单位 Issuer | 福建省地方金融管理局 \\<b\\>监管处\\</b\\>" in md
    assert re.search(r"\| 生成时间 Generated \| \S+\+08:00 \|", md)
    assert "## 五、各用途查询情况 Requests per purpose" in md
    loan = [d for d in decisions(reg).values()
            if d["purpose"] == "loan_application"]
    allowed = sum(d["decision"] == "allow" for d in loan)
    assert f"| 贷款申请 (loan_application) | {len(loan)} | {allowed} | " \
        f"{len(loan) - allowed} | 0 |" in md
    assert "| post_loan_monitoring | 1 | 0 | 1 | 0 |" in md
    assert "| 纳税信息 (tax) |" in md
    assert "| Suspended Test Bank (BANK009) | 银行已暂停接入 (bank_suspended) " \
        "| 1 |" in md
    # the digest short in the table, whole under it
    sha = named_sha(reg)
    assert f"| {sha[:12]}… \\[1\\] |" in md
    assert f"[1] SHA-256 {sha}\n" in md
    assert "## 九、审计链完整性" in md

    rows = list(csv.DictReader(io.StringIO(report(reg, "csv").stdout.decode(
        "utf-8"), newline="")))
    by = {(r["section"], r["item"], r["detail"]): r for r in rows}
    assert [r["item"] for r in rows if r["section"] == "issuer"] == [ISSUER]
    gen = [r for r in rows if r["section"] == "generated"][0]
    assert ISO8.match(gen["item"]) and gen["detail"] == "Asia/Shanghai"
    assert by[("category", "tax", "queries")]["item_name"] == "纳税信息"
    assert by[("purpose", "loan_application", "allowed")]["count"] == \
        str(allowed)
    assert by[("purpose", "loan_application", "allowed")]["item_name"] == \
        "贷款申请"
    r = by[("refusal", "BANK001", "purpose_not_allowed")]
    assert (r["item_name"], r["detail_name"]) == \
        ("First Test Bank of Fujian", "用途未获授权")
    # readable times: no Unix milliseconds anywhere a person reads
    for out in (text, md, report(reg, "html").stdout.decode()):
        assert not MS.search(out), MS.search(out)


def named_sha(reg):
    import hashlib
    return hashlib.sha256(Path(reg.policy).read_bytes()).hexdigest()


def test_report_refuses_what_it_cannot_print(reg, tmp_path):
    for bad in ("", "line one\nline two", "tab\there", "x" * 257,
                "\x1b[2J"):
        p = reg.run("report", "--issuer", bad, check=2)
        assert b"--issuer" in p.stderr and b"one line" in p.stderr, bad
    p = reg.run("report", "--policy", str(tmp_path / "none.json"), check=2)
    assert b"none.json" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**named_policy(), "purposes": [
        {"code": "loan_application", "name_zh": "贷款\n申请"}]}))
    p = reg.run("report", "--policy", str(bad), check=2)
    assert b"$.purposes[0].name_zh: control characters" in p.stderr
    p = reg.run("report", "--format", "md", "--excel", check=2)
    assert b"--excel is for --format csv" in p.stderr
    assert b"usage:" not in p.stderr


# The report runs no script (its Content-Security-Policy forbids one); to
# measure its layout the test renders a copy without that line and with a
# script of its own that writes row heights into the document.
MEASURE = """<script>
function h(sel) { return [...document.querySelectorAll(sel)].map(
    e => e.getBoundingClientRect().height); }
document.body.insertAdjacentHTML('beforeend', '<pre id=measure>' +
  JSON.stringify({one: h('#summary tr')[1], policies: h('#policies tr'),
                  purposes: h('#purposes tr')}) + '</pre>');
</script>"""


def measured(page, tmp):
    html = page.read_text()
    copy_ = tmp / ("measure-" + page.name)
    copy_.write_text(re.sub(r"<meta http-equiv=\"Content-Security-Policy\""
                            r"[^>]*>", "", html)
                     .replace("</body>", MEASURE + "</body>"))
    p = chromium("--dump-dom", copy_.as_uri(), tmp=tmp)
    assert p.returncode == 0, p.stderr[-2000:]
    m = re.search(r"<pre id=\"measure\">(.*?)</pre>", p.stdout.decode())
    return json.loads(m.group(1))


@pytest.mark.skipif(CHROMIUM is None,
                    reason="chromium not installed (make deps installs it)")
def test_report_html_in_chromium(reg, tmp_path):
    page = tmp_path / "report.html"
    report(reg, "html", "--out", str(page))
    html = page.read_text()
    assert "<script" not in html and "Content-Security-Policy" in html
    p = chromium("--dump-dom", page.as_uri(), tmp=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout.decode()
    # the issuer is text: its <b> is escaped, never an element
    m = re.search(r'data-figure="issuer">(.*?)</td>', dom)
    assert m and m.group(1) == ("福建省地方金融管理局 &lt;b&gt;监管处&lt;/b&gt; "
                                "&amp; \"二处\", 2026"), m
    assert re.search(r'data-figure="generated"[^>]*>\d{4}-\d\d-\d\dT[^<]*'
                     r'\+08:00<', dom)
    # names beside the codes
    assert '<td data-code="tax">纳税信息 <code class="c">tax</code></td>' in dom
    assert '<td data-code="purpose_not_allowed">用途未获授权 <code class="c">' \
        'purpose_not_allowed</code></td>' in dom
    # the per-purpose table
    purposes = re.search(r'<table id="purposes">(.*?)</table>', dom, re.S)
    assert purposes
    loan = [d for d in decisions(reg).values()
            if d["purpose"] == "loan_application"]
    assert re.search(r'<td data-code="loan_application">贷款申请 <code '
                     r'class="c">loan_application</code></td><td class="n" '
                     r'data-figure="decisions">%d</td><td class="n" '
                     r'data-figure="allowed">%d</td>'
                     % (len(loan), sum(d["decision"] == "allow"
                                       for d in loan)), purposes.group(1))
    assert '<td data-code="post_loan_monitoring">post_loan_monitoring</td>' \
        in purposes.group(1)
    # the digest: 12 hex digits in the cell, whole in its title and in the
    # footnote
    sha = named_sha(reg)
    assert f'<code title="{sha}">{sha[:12]}…</code><sup>[1]</sup>' in dom
    assert re.search(rf'<ol id="digests" class="fn">\s*<li>SHA-256 <code>'
                     rf'{sha}</code></li>', dom)
    # one line a row: the policies' rows as high as a one-line row
    got = measured(page, tmp_path)
    assert got["one"] > 0 and len(got["policies"]) == 2, got
    assert max(got["policies"]) < 1.5 * got["one"], got
    assert max(got["purposes"]) < 1.5 * got["one"], got
    shot = tmp_path / "report.png"
    p = chromium(f"--screenshot={shot}", page.as_uri(), tmp=tmp_path)
    assert p.returncode == 0 and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get("CREDIT_AUTH_KEEP"):
        shutil.copy(shot, Path(reg.env.st.dir) / "regulator-report.png")


@pytest.mark.skipif(CHROMIUM is None,
                    reason="chromium not installed (make deps installs it)")
def test_report_html_long_version_keeps_one_line(reg, tmp_path):
    """A version of 128 characters (the most a policy may have) ends in an
    ellipsis in its cell, whole in the title."""
    stream = f"{reg.stream}:long-{uuid.uuid4().hex[:6]}"
    version = "2026-12-08 " + "很长的版本说明" * 16 + "x" * 5
    sha = "ab" * 32
    try:
        for i in range(2):
            reg.raw.xadd(stream, {
                "v": "2", "event": "decision", "ts": str(1796677835667 + i),
                "rid": f"r{i}", "bank": "BANK001", "category": "tax",
                "enterprise": E1, "purpose": PURPOSE, "mode": "query",
                "detail": "masked", "decision": "allow", "reason": "",
                "policy": f"{version} {sha}"})
        page = tmp_path / "long.html"
        reg.run("report", "--format", "html", "--out", str(page),
                stream=stream, check=0)
        assert f'<td class=v title="{version}">{version}</td>' in \
            page.read_text()
        got = measured(page, tmp_path)
        assert max(got["policies"]) < 1.5 * got["one"], got
    finally:
        reg.raw.delete(stream)


# ------------------------------------------------------------------------
# 2. The requests, as CSV for a spreadsheet

def export_requests(reg, *extra, stream=None, check=0):
    return reg.run("export", "--view", "requests", "--format", "csv",
                   "--tz", "Asia/Shanghai", *reg.names(), "--enterprises",
                   str(reg.ents), *extra, stream=stream, check=check)


def read_csv(data, encoding="utf-8"):
    return list(csv.DictReader(io.StringIO(data.decode(encoding),
                                           newline="")))


def test_requests_csv_one_row_per_request(reg, tmp_path):
    out = tmp_path / "requests.csv"
    p = export_requests(reg, "--out", str(out))
    data = out.read_bytes()
    assert not data.startswith(b"\xef\xbb\xbf")
    rows = read_csv(data)
    ds = decisions(reg)
    assert f"{len(ds)} requests written".encode() in p.stderr
    # one row per decision, in stream order, each one physical line
    assert [r["rid"] for r in rows] == list(ds)
    assert data.count(b"\r\n") == len(rows) + 1
    assert b"\n" not in data.replace(b"\r\n", b"")
    by = {r["rid"]: r for r in rows}
    for r in rows:
        d = ds[r["rid"]]
        assert ISO8.match(r["time"]), r["time"]
        assert ms_of(r["time"]) == int(d["ts"])
        assert "ts" not in r
        assert not any(MS.fullmatch(v) for v in r.values()), r
        assert (r["bank"], r["enterprise"], r["decision"], r["category"]) == \
            (d["bank"], d["enterprise"], d["decision"], d["category"])
    q = by[reg.rids["query"]]
    assert (q["bank_name"], q["enterprise_name"], q["category_name"],
            q["purpose_name"], q["status"], q["reason"]) == \
        ("First Test Bank of Fujian", "福州闽江智能装备有限公司", "纳税信息",
         "贷款申请", "200", "")
    assert "annual[].tax_paid" in q["masked"] and int(q["withheld"]) > 0
    v = by[reg.rids["verify"]]
    assert (v["mode"], v["checks"], v["matched"], v["unmatched"],
            v["absent"], v["status"]) == \
        ("verify", "annual[].tax_paid ge,credit_rating eq,annual[].tax_paid "
         "eq", "1", "1", "1", "200")
    x = by[reg.rids["purpose"]]
    assert (x["decision"], x["reason"], x["reason_name"], x["status"],
            x["purpose_name"]) == \
        ("deny", "purpose_not_allowed", "用途未获授权", "403", "")
    x = by[reg.rids["missing"]]
    assert (x["decision"], x["reason"], x["reason_name"], x["status"],
            x["enterprise_name"], x["category_name"]) == \
        ("allow", "record_not_found", "平台无此记录", "404",
         "北京海淀示例科技有限公司", "Environment")
    x = by[reg.rids["no-token"]]
    assert (x["reason"], x["status"]) == ("token_missing", "401")
    x = by[reg.rids["suspended"]]
    assert (x["bank_name"], x["status"]) == ("Suspended Test Bank", "403")


def test_requests_csv_for_excel(reg, tmp_path):
    plain = export_requests(reg).stdout
    excel = export_requests(reg, "--excel").stdout
    assert excel.startswith(b"\xef\xbb\xbf") and excel.count(
        b"\xef\xbb\xbf") == 1
    assert excel[3:] == plain
    # utf-8-sig reads both; plain utf-8 would keep the mark in the header
    assert read_csv(excel, "utf-8-sig") == read_csv(plain, "utf-8-sig") \
        == read_csv(plain)
    assert list(read_csv(excel)[0])[0] == "\ufefftime"
    assert excel.endswith(b"\r\n")
    # --excel for the report's CSV too, and only for CSV
    rep = reg.run("report", "--format", "csv", "--excel", check=0).stdout
    assert rep.startswith(b"\xef\xbb\xbfsection,")
    p = reg.run("export", "--format", "jsonl", "--excel", check=2)
    assert b"--excel is for --format csv" in p.stderr


def test_requests_jsonl_has_the_same_columns(reg):
    rows = read_csv(export_requests(reg).stdout)
    lines = [json.loads(l) for l in reg.run(
        "export", "--view", "requests", "--tz", "Asia/Shanghai",
        *reg.names(), "--enterprises", str(reg.ents),
        check=0).stdout.decode().splitlines()]
    assert lines == rows


def test_requests_csv_hostile_values_one_line_each(reg):
    """A tampered or hostile trail: line breaks and formulas in values stay
    one line, shown as text."""
    stream = f"{reg.stream}:hostile-{uuid.uuid4().hex[:6]}"
    try:
        reg.raw.xadd(stream, {
            "v": "2", "event": "decision", "ts": "1796677835667",
            "rid": "r1\nr2", "bank": "=HYPERLINK(\"http://x\")",
            "category": "tax\r\nx", "enterprise": E1, "purpose": "@SUM(1)",
            "mode": "query", "detail": "masked", "decision": "deny",
            "reason": "token_missing", "policy": "+1 00"})
        reg.raw.xadd(stream, {"v": "2", "event": "outcome",
                              "ts": "1796677835668", "rid": "r1\nr2",
                              "status": "-1+1", "disclosed": "a,b\n"})
        data = export_requests(reg, stream=stream).stdout
        assert data.count(b"\r\n") == 2 and b"\n" not in \
            data.replace(b"\r\n", b"")
        (r,) = read_csv(data)
        assert r["rid"] == "r1\\nr2" and r["category"] == "tax\\r\\nx"
        assert r["bank"] == "'=HYPERLINK(\"http://x\")"
        assert r["purpose"] == "'@SUM(1)" and r["policy"] == "'+1 00"
        # a refusal has no outcome: what came under its rid is not joined
        assert r["status"] == "401" and r["disclosed"] == ""
    finally:
        reg.raw.delete(stream)


def test_requests_outcome_far_behind_is_joined(reg):
    """The outcome arrives after many other requests' entries: still
    joined, and rows keep the decisions' order."""
    stream = f"{reg.stream}:late-{uuid.uuid4().hex[:6]}"
    base = 1796677835000
    try:
        def dec(i, decision="allow"):
            reg.raw.xadd(stream, {
                "v": "2", "event": "decision", "ts": str(base + i),
                "rid": f"r{i}", "bank": "BANK001", "category": "tax",
                "enterprise": E1, "purpose": PURPOSE, "mode": "query",
                "detail": "masked", "decision": decision,
                "reason": "" if decision == "allow" else "token_missing",
                "policy": "p 00"})

        def out(i, status):
            reg.raw.xadd(stream, {"v": "2", "event": "outcome",
                                  "ts": str(base + i), "rid": f"r{i}",
                                  "status": str(status)})
        dec(0)
        for i in range(1, 1500):
            dec(i, "allow" if i % 2 else "deny")
            if i % 2:
                out(i, 200)
        out(0, 404)
        dec(1500)               # never answered (yet)
        rows = read_csv(export_requests(reg, stream=stream).stdout)
        assert [r["rid"] for r in rows] == [f"r{i}" for i in range(1501)]
        assert rows[0]["status"] == "404"
        assert rows[1]["status"] == "200" and rows[2]["status"] == "401"
        assert rows[1500]["status"] == ""
    finally:
        reg.raw.delete(stream)


def test_enterprises_file(reg, tmp_path):
    as_object = tmp_path / "ents-object.json"
    as_object.write_text(json.dumps({E1: "闽江智能"}, ensure_ascii=False))
    rows = read_csv(reg.run("export", "--view", "requests", "--format",
                            "csv", "--enterprises", str(as_object),
                            check=0).stdout)
    assert {r["enterprise_name"] for r in rows if r["enterprise"] == E1} \
        == {"闽江智能"}
    assert {r["enterprise_name"] for r in rows if r["enterprise"] == E2} \
        == {""}
    for content, want in (
            ([{"uscc": E1.lower(), "name": "x"}], b"$[0]: is in lower case"),
            ([{"uscc": E1}], b"$[0]: the name must be a string"),
            ({E1[:17]: "x"}, b"has 17 characters"),
            ("not json", b"invalid JSON"),
            (17, b"want a list")):
        f = tmp_path / "bad-ents.json"
        f.write_text(content if isinstance(content, str)
                     else json.dumps(content))
        p = reg.run("export", "--view", "requests", "--enterprises", str(f),
                    check=2)
        assert want in p.stderr, (content, p.stderr)
    # names are for the requests view only
    p = reg.run("export", "--banks", str(reg.env.st.banks_path), check=2)
    assert b"--view requests" in p.stderr
    p = reg.run("export", "--view", "request", check=2)
    assert b"bad --view request" in p.stderr


# ------------------------------------------------------------------------
# 3. query: a USCC it could never match is an error; one line per request

def test_query_refuses_a_uscc_it_cannot_match(reg):
    for bad, why in ((E1.lower(), f"is in lower case: a USCC is written in "
                                  f"upper case ({E1})"),
                     (E1[:17] + ("0" if E1[17] != "0" else "1"),
                      "check character (the 18th)"),
                     (E1[:17], "has 17 characters, a USCC has 18"),
                     (E1[:8] + "I" + E1[9:], "character 9 'I' is not used")):
        p = reg.run("query", "--enterprise", bad, check=2)
        err = p.stderr.decode()
        assert f"bad --enterprise {bad}: {why}" in err, err
        assert p.stdout == b"" and "usage:" not in err


def short_lines(p):
    lines = p.stdout.decode().splitlines()
    assert lines[0].split() == ["time", "bank", "enterprise", "category",
                                "purpose", "mode", "decision/reason",
                                "status"]
    return lines[1:]


def test_query_short_view(reg):
    ds = decisions(reg)
    lines = short_lines(reg.run("query", "--enterprise", E2, "--tz",
                                "Asia/Shanghai", check=0))
    mine = [d for d in ds.values() if d["enterprise"] == E2]
    assert len(lines) == len(mine) == 2
    bank2, missing = (l.split() for l in lines)
    assert ISO8.match(bank2[0]) and ms_of(bank2[0]) == int(mine[0]["ts"])
    assert bank2[1:] == ["BANK002", E2, "tax", "credit_assessment", "query",
                         "allow", "200"]
    assert missing[1:] == ["BANK001", E2, "environment", "loan_application",
                           "query", "allow/record_not_found", "404"]
    lines = short_lines(reg.run("query", "--enterprise", E1, check=0))
    assert len(lines) == sum(d["enterprise"] == E1 for d in ds.values())
    assert any(l.split()[6:] == ["deny/purpose_not_allowed", "403"]
               for l in lines)
    assert any(l.split()[5:] == ["verify", "allow", "200"] for l in lines)
    # the reason of an outcome finds its request
    (line,) = short_lines(reg.run("query", "--reason", "record_not_found",
                                  check=0))
    assert line.split()[2] == E2 and line.endswith("404")
    (line,) = short_lines(reg.run("query", "--bank", "BANK009", check=0))
    assert line.split()[-2:] == ["deny/bank_suspended", "403"]
    # the full dump: every entry, outcomes too, every field
    full = reg.run("query", "--enterprise", E2, "--full",
                   check=0).stdout.decode().splitlines()
    assert [re.search(r" event=(\w+)", l).group(1) for l in full] == \
        ["decision", "outcome", "decision", "outcome"]
    assert all(" hash=" in l for l in full)
    # nothing matched: said on stderr, exit 0
    p = reg.run("query", "--enterprise", E1, "--bank", "BANK002", check=0)
    assert p.stdout == b"" and b"no entry matched" in p.stderr
