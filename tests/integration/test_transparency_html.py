"""The access statement as a page (contract §7.3): one file, no script, no
network, Chinese first with English; rendered by headless Chromium, whose
DOM carries the statement's figures; a screenshot to look at."""

import json
import re
import struct

from conftest import E1, RECORDS, S
from shipkit import archive, gw, pg, stop_shippers  # noqa: F401
from test_audit_cli import CHROMIUM, chromium      # the same browser run
from tlogkit import logkey, shipped  # noqa: F401


def test_statement_page_in_chromium(shipped, tmp_path):
    assert CHROMIUM, "chromium not installed (make deps installs it)"
    policy = str(shipped.env.st.policy_path)
    doc = json.loads(shipped.statement("--policy", policy))
    html = shipped.statement("--policy", policy, fmt="html")
    page = tmp_path / "statement.html"
    page.write_text(html)
    # one file: no script, nothing fetched, a policy that forbids both
    assert "<script" not in html.lower()
    assert not re.search(r'(src|href)\s*=', html)
    assert "default-src 'none'" in html
    # no field value of the record the bank got
    rec = json.dumps(RECORDS[(E1, "tax")], ensure_ascii=False)
    for v in re.findall(r'"([^"]{6,})"', rec):
        if not S.uscc_valid(v) and v not in ("tax_paid",):
            assert f">{v}<" not in html, v
    p = chromium("--dump-dom", page.as_uri(), tmp=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    dom = p.stdout.decode()
    n = len(doc["requests"])
    allowed = doc["totals"]["by_decision"].get("allow", 0)
    assert re.search(r'id="total-requests"[^>]*>%d<' % n, dom)
    assert re.search(r'id="total-allowed"[^>]*>%d<' % allowed, dom)
    assert re.search(r'id="total-refused"[^>]*>%d<' % (n - allowed), dom)
    assert dom.count('<tr class="request') == n
    assert dom.count('class="request deny"') == n - allowed
    for code, count in doc["totals"]["by_bank"].items():
        assert re.search(r'<tr data-code="%s">.*?<td class="n">%d</td>'
                         % (code, count), dom)
    assert f'id="enterprise">{E1}<' in dom
    # Chinese first, English beside it; names from the banks file, reason
    # labels in Chinese with the code
    i = dom.index("查询记录对账单")
    assert i < dom.index("Access statement")
    for zh, en in (("查询次数", "Requests"), ("放行", "Allowed"),
                   ("拒绝", "Refused"), ("披露字段", "Fields disclosed")):
        assert zh in dom and en in dom
    assert "First Test Bank of Fujian" in dom
    assert "raw_not_allowed" in dom and "purpose_not_allowed" in dom
    shot = tmp_path / "statement.png"
    p = chromium(f"--screenshot={shot}", page.as_uri(), tmp=tmp_path)
    assert p.returncode == 0, p.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20000
    assert struct.unpack(">II", data[16:24]) == (1000, 2400)
    # printable: the print stylesheet is there, and Chromium prints it
    pdf = tmp_path / "statement.pdf"
    p = chromium(f"--print-to-pdf={pdf}", "--no-pdf-header-footer",
                 page.as_uri(), tmp=tmp_path)
    assert p.returncode == 0 and pdf.read_bytes()[:5] == b"%PDF-"
