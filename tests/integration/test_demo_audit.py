"""`make run` prints the regulator's credit-audit commands with the demo's
--redis, --pubkey and --banks (issue 21), and every one works as printed:
the demo is started as a person starts it, its two curl commands are run,
then each printed credit-audit line is split as a shell would and run."""

import csv
import io
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from conftest import S

TOOL = str(S.ROOT / "build" / "bin" / "credit-audit")


def read_until(proc, marker, timeout=120):
    out, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        out.append(line)
        if marker in line:
            return "".join(out)
    raise AssertionError("demo did not get ready:\n" + "".join(out)
                         + proc.stderr.read() if proc.poll() is not None
                         else "".join(out))


def test_demo_prints_audit_commands_that_work(env):
    d = Path(tempfile.mkdtemp(prefix="demo-audit-", dir=env.st.dir))
    proc = subprocess.Popen([sys.executable, str(S.ROOT / "scripts" /
                                                 "demo.py"), "--dir", str(d)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        text = read_until(proc, "Ctrl-C stops everything.")
        lines = text.splitlines()
        curls = [shlex.split(l) for l in lines if l.startswith("curl ")
                 and "X-Credit-Purpose" in l]
        assert len(curls) == 2, text
        for argv in curls:
            assert subprocess.run(argv, capture_output=True,
                                  timeout=30).returncode == 0
        audits = [shlex.split(l) for l in lines if l.startswith(TOOL + " ")]
        assert [a[1] for a in audits] == ["verify", "report", "report",
                                          "query", "export"], text
        for argv in audits:
            # the demo's own Redis, public key and banks file, as printed
            assert argv[argv.index("--redis") + 1].startswith("127.0.0.1:")
            if argv[1] in ("verify", "report"):
                assert Path(argv[argv.index("--pubkey") + 1]).is_file()
            if argv[1] in ("report", "export"):
                assert Path(argv[argv.index("--banks") + 1]).is_file()
        got = {}
        for argv in audits:
            p = subprocess.run(argv, capture_output=True, text=True,
                               timeout=60)
            assert p.returncode == 0, (argv, p.stdout, p.stderr)
            got.setdefault(argv[1], []).append((argv, p))
        verify = got["verify"][0][1].stdout
        assert "0 breaks: intact" in verify, verify
        report = got["report"][0][1].stdout
        assert "issued by" in report and "纳税信息" in report
        assert "用途未获授权" in report and "decisions                    2" \
            in report
        argv, _ = got["report"][1]
        html = Path(argv[argv.index("--out") + 1]).read_text()
        assert "<svg" in html and "贷款申请审查" in html
        query = got["query"][0][1].stdout.splitlines()
        assert query[0].split()[0] == "time" and len(query) == 3
        assert query[1].split()[-2:] == ["allow", "200"]
        assert query[2].split()[-2:] == ["deny/purpose_not_allowed", "403"]
        argv, _ = got["export"][0]
        data = Path(argv[argv.index("--out") + 1]).read_bytes()
        assert data.startswith(b"\xef\xbb\xbf")
        rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"),
                                               newline="")))
        assert [(r["decision"], r["status"], r["bank_name"] != "",
                 r["enterprise_name"], r["category_name"]) for r in rows] \
            == [("allow", "200", True, "福州闽江智能装备有限公司", "纳税信息"),
                ("deny", "403", True, "福州闽江智能装备有限公司", "纳税信息")]
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
