"""The Debian packages as an operator installs them (`make package-test`).

Installs build/deb/*.deb with apt on this machine, checks what the packages
put where, runs `nginx -t` on the README's example under the packaged
module (a private main configuration: the system's nginx is never started
or reloaded, its configuration never read), and purges them, leaving the
machine as it was.
"""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("CREDIT_AUTH_ROOT",
                           Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(ROOT / "scripts"))
import stack as S  # noqa: E402

DEB_DIR = ROOT / "build" / "deb"
PACKAGES = ["libnginx-mod-http-credit-auth", "credit-auth-tools"]
SO = Path("/usr/lib/nginx/modules/ngx_http_credit_auth_module.so")
AVAILABLE = Path("/usr/share/nginx/modules-available/mod-http-credit-auth.conf")
ENABLED = Path("/etc/nginx/modules-enabled/50-mod-http-credit-auth.conf")
SPOOL = Path("/var/lib/credit-auth/spool")
APT = ["apt-get", "-y", "-q", "-o", "DPkg::Lock::Timeout=600"]


def installed(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg],
                       capture_output=True, text=True)
    return r.returncode == 0 and "ok installed" in r.stdout


def system_nginx_running():
    try:
        pid = int(Path("/run/nginx.pid").read_text())
        os.kill(pid, 0)
        return True
    except (OSError, ValueError):
        return False


def run(argv, **kw):
    r = subprocess.run(argv, capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"),
                       **kw)
    assert r.returncode == 0, f"{argv}: {r.stdout[-2000:]}{r.stderr[-2000:]}"
    return r


def readme_example():
    text = (ROOT / "README.md").read_text()
    m = re.search(r"<!-- example: conf\.d/credit-auth\.conf[^>]*-->\s*"
                  r"```nginx\n(.*?)```", text, re.S)
    assert m, "README: the conf.d/credit-auth.conf example is missing"
    return m.group(1)


@pytest.fixture(scope="module")
def debs():
    if os.geteuid() != 0:
        pytest.skip("installing packages needs root")
    found = {p: sorted(DEB_DIR.glob(f"{p}_*.deb")) for p in PACKAGES}
    assert all(found.values()), f"no .deb in {DEB_DIR}: run make deb"
    for p in PACKAGES:
        if installed(p):
            pytest.skip(f"{p} is installed here already; not touching it")
    if system_nginx_running():
        pytest.skip("the system's nginx runs: installing a module would "
                    "reload it")
    before = {
        "var_lib": Path("/var/lib/credit-auth").exists(),
        "enabled": sorted(os.listdir("/etc/nginx/modules-enabled")),
    }
    run(APT + ["install", "--no-install-recommends",
               *[str(v[-1]) for v in found.values()]])
    try:
        yield found
    finally:
        run(APT + ["purge", *PACKAGES])
        assert not any(installed(p) for p in PACKAGES)
        assert not SO.exists() and not AVAILABLE.exists()
        assert sorted(os.listdir("/etc/nginx/modules-enabled")) \
            == before["enabled"]
        assert Path("/var/lib/credit-auth").exists() == before["var_lib"]


def test_files_in_place(debs):
    assert SO.is_file()
    assert AVAILABLE.read_text().strip() == \
        "load_module modules/ngx_http_credit_auth_module.so;"
    assert ENABLED.is_symlink() and ENABLED.resolve() == AVAILABLE
    st = SPOOL.stat()
    import pwd
    assert pwd.getpwuid(st.st_uid).pw_name == "www-data"
    assert st.st_mode & 0o777 == 0o750
    for tool in ("credit-consent", "credit-policy", "credit-audit"):
        assert shutil.which(tool) == f"/usr/bin/{tool}"
        run([tool, "--help"])
        assert run(["man", "-w", tool]).stdout.strip().endswith(
            f"/man1/{tool}.1.gz")
    out = run(["credit-policy", "check",
               "/usr/share/credit-auth/platform-policy.json"]).stdout
    assert ": ok (" in out


UNIT = Path("/lib/systemd/system/credit-audit-ship.service")


def test_shipper_unit_installed_not_enabled(debs):
    """credit-audit-ship.service: in credit-auth-tools, hardened, its
    secrets from a file systemd reads, not enabled or started at install
    (it needs /etc/credit-auth/ship.env first)."""
    text = UNIT.read_text()
    for line in ("NoNewPrivileges=yes", "ProtectSystem=strict",
                 "PrivateTmp=yes", "DynamicUser=yes",
                 "EnvironmentFile=/etc/credit-auth/ship.env",
                 "ExecStart=/usr/bin/credit-audit ship --archive "
                 "${CREDIT_AUDIT_ARCHIVE}"):
        assert line in text, line
    assert "password" not in text.split("ExecStart=", 1)[1].split("\n\n")[0]
    assert not Path("/etc/systemd/system/multi-user.target.wants/"
                    "credit-audit-ship.service").exists()
    assert Path("/usr/share/doc/credit-auth-tools/examples/ship.env").is_file()
    assert Path("/usr/share/doc/credit-auth-tools/archive.md.gz").is_file()
    r = subprocess.run(["systemd-analyze", "verify", str(UNIT)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "credit-audit-ship" not in r.stderr, \
        r.stderr
    # the tool runs against libpq as installed (libpq5 from shlibs)
    r = run(["credit-audit", "ship", "--print-schema"])
    assert "CREATE TABLE credit_audit.entries" in r.stdout
    deps = run(["dpkg-query", "-W", "-f=${Depends}", "credit-auth-tools"])
    assert "libpq5" in deps.stdout


@pytest.fixture
def conf_dir(tmp_path):
    """/etc/credit-auth's files for the README example, in a temp dir."""
    etc = tmp_path / "etc"
    etc.mkdir()
    pki = S.PKI(tmp_path)
    bank = pki.make_bank_cert("minjiang_rcb")
    shutil.copy("/usr/share/credit-auth/platform-policy.json",
                etc / "policy.json")
    _, jwk = S.make_enterprise_key(S.DEMO_USCC, "ES256")
    S.write_jwks(etc / "enterprise-keys.jwks", [jwk])
    S.write_banks(etc / "banks.json",
                  [S.bank_entry("minjiang_rcb", "Demo bank", [bank])])
    S.make_audit_key(etc)
    S.make_hash_key(etc)
    shutil.copy(pki.server_cert, etc / "server.crt")
    shutil.copy(pki.server_key, etc / "server.key")
    shutil.copy(pki.bank_ca_path, etc / "bank-ca.pem")
    site = tmp_path / "credit-auth.conf"
    site.write_text(readme_example().replace("/etc/credit-auth/", f"{etc}/"))
    return tmp_path, site


def nginx_t(tmp, load):
    """nginx -t on a main configuration shaped like Debian's nginx.conf,
    but private: its own pid, logs, and our site file."""
    conf = tmp / "nginx.conf"
    conf.write_text(f"""user www-data;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log;
{load}
events {{ }}
http {{
    access_log {tmp}/access.log;
    include {tmp}/credit-auth.conf;
}}
""")
    r = subprocess.run(["/usr/sbin/nginx", "-t", "-c", str(conf),
                        "-e", str(tmp / "startup.log")],
                       capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def test_readme_example_packaged(debs, conf_dir):
    tmp, _ = conf_dir
    rc, out = nginx_t(tmp, "include /etc/nginx/modules-enabled/*.conf;")
    assert rc == 0, out
    assert "test is successful" in out


def test_readme_example_source_install_load_module(debs, conf_dir):
    """A source install loads the module itself (README)."""
    tmp, _ = conf_dir
    rc, out = nginx_t(tmp,
                      "load_module modules/ngx_http_credit_auth_module.so;")
    assert rc == 0, out


def test_loading_twice_is_refused(debs, conf_dir):
    """Why the README says: no load_module line when the package is
    installed."""
    tmp, _ = conf_dir
    rc, out = nginx_t(tmp, "include /etc/nginx/modules-enabled/*.conf;\n"
                           "load_module modules/ngx_http_credit_auth_module.so;")
    assert rc != 0 and "already loaded" in out, out


def test_example_is_checked_not_empty(debs, conf_dir):
    """The example really configures the module: break a file it names and
    nginx -t must fail naming it."""
    tmp, site = conf_dir
    (tmp / "etc" / "policy.json").write_text("{")
    rc, out = nginx_t(tmp, "include /etc/nginx/modules-enabled/*.conf;")
    assert rc != 0 and "policy.json" in out, out


def test_packaged_module_passes_integration_tests(debs):
    """The packaged .so (built by dh-sequence-nginx, not by our Makefile)
    in a real gateway: the foundation and token suites against it."""
    r = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
         "test_foundation.py", "test_tokens.py"],
        cwd=ROOT / "tests" / "integration", capture_output=True, text=True,
        timeout=600, env=dict(os.environ, CREDIT_AUTH_ROOT=str(ROOT),
                              CREDIT_AUTH_MODULE=str(SO)))
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-2000:]
    assert " passed" in r.stdout and "failed" not in r.stdout
