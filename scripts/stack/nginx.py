"""nginx processes: the gateway (its configuration rendered from directives), the demo platform, a plain proxy."""

import os
import re
import signal
import subprocess
from pathlib import Path

from .proc import (NGINX, ROOT, _children, asan_env, asan_reports, free_port,
    module_path, port_open, subdir, tail, wait_for, workdir)


def _tls_directives():
    return []


class Nginx:
    """One nginx master process (foreground, own prefix dir) for a rendered
    configuration.  Subclasses render the configuration."""

    name = "nginx"

    def __init__(self, directory, ports=()):
        self.dir = subdir(directory, self.name)
        subdir(self.dir, "logs")
        subdir(self.dir, "tmp")
        self.conf = self.dir / "nginx.conf"
        self.error_log = self.dir / "error.log"
        self.startup_log = self.dir / "startup.log"
        self.pid_file = self.dir / "nginx.pid"
        self.proc = None
        self.ports = list(ports)

    def temp_paths(self):
        t = self.dir / "tmp"
        return "\n".join(
            f"    {d}_temp_path {t}/{d};"
            for d in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))

    def render(self):
        raise NotImplementedError

    def write(self, text=None):
        self.conf.write_text(text if text is not None else self.render())
        return self.conf

    def env(self):
        e = dict(os.environ)
        e.update(asan_env(self.dir))
        return e

    def _argv(self, *extra):
        return [NGINX, "-p", str(self.dir) + "/", "-c", str(self.conf),
                "-e", str(self.startup_log), *extra]

    def test(self, text=None):
        """nginx -t on the configuration -> (returncode, output)."""
        self.write(text)
        r = subprocess.run(self._argv("-t"), capture_output=True, text=True,
                           env=self.env(), timeout=60)
        return r.returncode, r.stdout + r.stderr

    def start(self, text=None, timeout=15):
        self.write(text)
        self.proc = subprocess.Popen(self._argv("-g", "daemon off;"),
                                     stdout=subprocess.DEVNULL,
                                     stderr=open(self.dir / "stderr.log", "ab"),
                                     env=self.env(), start_new_session=True)
        # the master listens before it forks: a caller that reads the
        # workers' pids at once must find them there
        forks = "master_process off" not in self.conf.read_text()
        ok = wait_for(lambda: self.proc.poll() is None
                      and all(port_open(p) for p in self.ports)
                      and (not forks or self.workers()), timeout)
        if not ok:
            out = self.diagnostics()
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n{out}")
        return self

    def diagnostics(self, lines=40):
        parts = []
        for f in (self.dir / "stderr.log", self.startup_log, self.error_log):
            t = tail(f, lines)
            if t:
                parts.append(f"--- {f}\n{t}")
        for path, text in asan_reports(self.dir):
            parts.append(f"--- {path}\n{text}")
        return "\n".join(parts)

    @property
    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def workers(self):
        return _children(self.proc.pid) if self.running else []

    def reload(self, text=None, timeout=15):
        """Rewrites the configuration (if given), sends SIGHUP (what
        `nginx -s reload` does) and waits for new workers.  Returns True if
        nginx took the new configuration, False if it kept the old one."""
        old = set(self.workers())
        mark = self.error_log.stat().st_size if self.error_log.exists() else 0
        self.write(text) if text is not None else None
        os.kill(self.proc.pid, signal.SIGHUP)

        def settled():
            log = self.read_error_log(mark)
            if re.search(r"\[emerg\]", log):
                return True
            new = set(self.workers()) - old
            return bool(new) and not (set(self.workers()) & old)
        wait_for(settled, timeout)
        log = self.read_error_log(mark)
        return "[emerg]" not in log and bool(set(self.workers()) - old)

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            try:
                os.kill(self.proc.pid, signal.SIGQUIT)
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.proc.wait()
            except ProcessLookupError:
                pass
        else:
            # master gone; make sure no orphan worker of ours survives
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        self.proc = None

    def read_error_log(self, offset=0):
        try:
            with open(self.error_log, "rb") as f:
                f.seek(offset)
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def log_size(self):
        try:
            return self.error_log.stat().st_size
        except OSError:
            return 0


class Upstream(Nginx):
    """The platform: static JSON files from a root directory."""

    name = "upstream"

    def __init__(self, directory, root=None, port=None, extra_http="",
                 extra_server="", workers=1):
        self.port = port or free_port()
        super().__init__(directory, [self.port])
        self.root = Path(root) if root else ROOT / "demo" / "platform"
        self.extra_http = extra_http
        self.extra_server = extra_server
        self.workers_n = workers

    def render(self):
        return f"""worker_processes {self.workers_n};
error_log {self.error_log} info;
pid {self.pid_file};
events {{ worker_connections 1024; }}
http {{
    access_log off;
{self.temp_paths()}
    default_type application/json;
    types {{ }}
    keepalive_requests 1000000;
{self.extra_http}
    server {{
        listen 127.0.0.1:{self.port};
        root {self.root};
        location / {{ try_files $uri =404; }}
{self.extra_server}
    }}
}}
"""


class PlainProxy(Nginx):
    """A plain nginx reverse proxy (no module) in front of an upstream:
    the bench's reference."""

    name = "plainproxy"

    def __init__(self, directory, upstream_port, port=None, workers=1):
        self.port = port or free_port()
        super().__init__(directory, [self.port])
        self.upstream_port = upstream_port
        self.workers_n = workers

    def render(self):
        return f"""worker_processes {self.workers_n};
error_log {self.error_log} info;
pid {self.pid_file};
events {{ worker_connections 1024; }}
http {{
    access_log off;
{self.temp_paths()}
    upstream platform {{ server 127.0.0.1:{self.upstream_port}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{self.port};
        location /api/ {{ proxy_pass http://platform; proxy_http_version 1.1;
                         proxy_set_header Connection ""; }}
    }}
}}
"""


def _directives(pairs, overrides, indent):
    """pairs: [(name, value)]; overrides: {name: value|None|[values]}.
    None omits the directive, a list repeats it, a new name is appended."""
    out = []
    seen = set()
    overrides = dict(overrides or {})
    for name, value in pairs:
        if name in overrides:
            seen.add(name)
            value = overrides[name]
        if value is None:
            continue
        for v in (value if isinstance(value, list) else [value]):
            out.append(f"{indent}{name} {v};" if v != "" else
                       f"{indent}{name};")
    for name, value in overrides.items():
        if name in seen or value is None or name in dict(pairs):
            continue
        for v in (value if isinstance(value, list) else [value]):
            out.append(f"{indent}{name} {v};" if v != "" else
                       f"{indent}{name};")
    return "\n".join(out)


class Gateway(Nginx):
    """Debian's nginx with the credit-auth module.

    Everything in the rendered configuration can be changed:
      mode                  credit_auth on|off|report (None: omit)
      http_directives       {name: value|None|[values]} for the http block
      location_directives   ... for the TLS server's location /api/
      plain_location_directives ... for the plain listener's location /api/
      main_extra, http_extra, server_extra, plain_server_extra,
      location_extra        raw snippets
      module                path of the .so (None: no load_module)
      tls / plain           include that server block
    """

    name = "gateway"

    def __init__(self, directory, *, pki, policy, keys, banks, redis_addr,
                 upstream_port, audit_key=None, hash_key=None, module=None,
                 workers=1,
                 mode="on", gateway_id="gw-test", zone="credit_auth:16m",
                 stream="credit:audit", max_body="1m", tls=True, plain=True,
                 tls_port=None, http_port=None, http_directives=None,
                 location_directives=None, plain_location_directives=None,
                 main_extra="", http_extra="", server_extra="",
                 plain_server_extra="", location_extra="",
                 error_log_level="info"):
        self.tls_port = tls_port or free_port()
        self.http_port = http_port or free_port()
        ports = ([self.tls_port] if tls else []) + \
                ([self.http_port] if plain else [])
        super().__init__(directory, ports)
        self.pki = pki
        self.module = module_path() if module is None else module
        self.workers_n = workers
        self.policy, self.keys, self.banks = policy, keys, banks
        self.redis_addr = redis_addr
        self.upstream_port = upstream_port
        self.audit_key = audit_key
        self.hash_key = hash_key
        self.mode = mode
        self.gateway_id = gateway_id
        self.zone = zone
        self.stream = stream
        self.max_body = max_body
        self.tls, self.plain = tls, plain
        self.http_directives = http_directives or {}
        self.location_directives = location_directives or {}
        self.plain_location_directives = plain_location_directives or {}
        self.main_extra = main_extra
        self.http_extra = http_extra
        self.server_extra = server_extra
        self.plain_server_extra = plain_server_extra
        self.location_extra = location_extra
        self.error_log_level = error_log_level

    def render(self, **changes):
        """Renders with attribute changes applied to a copy."""
        if changes:
            saved = {k: getattr(self, k) for k in changes}
            for k, v in changes.items():
                setattr(self, k, v)
            try:
                return self.render()
            finally:
                for k, v in saved.items():
                    setattr(self, k, v)
        http = [
            ("access_log", "off"),
            ("credit_auth_policy", self.policy),
            ("credit_auth_keys", self.keys),
            ("credit_auth_banks", self.banks),
            ("credit_auth_redis", self.redis_addr),
            ("credit_auth_audit_stream", self.stream),
            ("credit_auth_audit_key", self.audit_key),
            ("credit_auth_hash_key", self.hash_key),
            ("credit_auth_zone", self.zone),
            ("credit_auth_gateway_id", self.gateway_id),
        ]
        loc = [
            ("credit_auth", self.mode),
            ("credit_auth_max_body", self.max_body),
            ("proxy_pass", "http://platform"),
            ("proxy_http_version", "1.1"),
            ("proxy_set_header", 'Connection ""'),
        ]
        ploc = [
            ("credit_auth", self.mode),
            ("credit_auth_client_cert", "$http_client_cert"),
            ("proxy_pass", "http://platform"),
            ("proxy_http_version", "1.1"),
            ("proxy_set_header", 'Connection ""'),
        ]
        main = []
        if self.module:
            main.append(f"load_module {self.module};")
        main += [f"worker_processes {self.workers_n};",
                 f"error_log {self.error_log} {self.error_log_level};",
                 f"pid {self.pid_file};"]
        if self.main_extra:
            main.append(self.main_extra)
        servers = []
        if self.tls:
            servers.append(f"""    server {{
        listen 127.0.0.1:{self.tls_port} ssl;
        ssl_certificate {self.pki.server_cert};
        ssl_certificate_key {self.pki.server_key};
        ssl_verify_client on;
        ssl_client_certificate {self.pki.bank_ca_path};
        location /api/ {{
{_directives(loc, self.location_directives, " " * 12)}
{self.location_extra}
        }}
        location = /credit-auth/status {{
            credit_auth_status; allow 127.0.0.1; deny all;
        }}
{self.server_extra}
    }}""")
        if self.plain:
            servers.append(f"""    server {{
        listen 127.0.0.1:{self.http_port};
        location /api/ {{
{_directives(ploc, self.plain_location_directives, " " * 12)}
        }}
        location = /credit-auth/status {{
            credit_auth_status; allow 127.0.0.1; deny all;
        }}
{self.plain_server_extra}
    }}""")
        return "\n".join(main) + f"""
events {{ worker_connections 1024; }}
http {{
{self.temp_paths()}
{_directives(http, self.http_directives, "    ")}
{self.http_extra}
    upstream platform {{ server 127.0.0.1:{self.upstream_port}; keepalive 32; }}
{chr(10).join(servers)}
}}
"""

    # convenience
    def url(self, path, plain=False):
        if plain:
            return f"http://127.0.0.1:{self.http_port}{path}"
        return f"https://127.0.0.1:{self.tls_port}{path}"

    def log_problems(self, text=None):
        """Lines that must never appear in a healthy gateway's error log."""
        text = self.read_error_log() if text is None else text
        bad = [l for l in text.splitlines()
               if "[alert]" in l or "[emerg]" in l
               or "exited on signal" in l or "AddressSanitizer" in l]
        for path, rep in asan_reports(self.dir):
            bad.append(f"{path}: {rep.splitlines()[0] if rep else ''}")
        return bad


def withdrawal_server(pki, port, path="/credit-auth/withdraw",
                      rate="10r/s", burst=20, extra="", platform_keys=None):
    """The enterprise's withdrawal endpoint (contract §3 v3) as an http-block
    snippet: its own TLS server, no client certificate (the signature
    authenticates), behind nginx's limit_req (429 when over)."""
    burst = f" burst={burst} nodelay" if burst else ""
    args = f" platform_keys={platform_keys}" if platform_keys else ""
    return f"""    limit_req_zone $binary_remote_addr zone=withdraw_{port}:1m rate={rate};
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_certificate {pki.server_cert};
        ssl_certificate_key {pki.server_key};
        location = {path} {{
            credit_auth_revocation_endpoint{args};
            limit_req zone=withdraw_{port}{burst};
            limit_req_status 429;
{extra}
        }}
    }}
"""


def nginx_t(conf, directory=None):
    """`nginx -t` on a configuration text (or path) -> (returncode, output)."""
    d = workdir(directory) if directory else workdir(prefix="credit-auth-t-")
    n = Nginx(d)
    if isinstance(conf, Path) or (isinstance(conf, str) and
                                  "\n" not in conf and os.path.exists(conf)):
        conf = Path(conf).read_text()
    return n.test(conf)
