"""Ports, directories, waiting, processes and ASan: what every other part of the stack uses."""

import base64
import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


ROOT = Path(os.environ.get("CREDIT_AUTH_ROOT")
            or Path(__file__).resolve().parents[2])


NGINX = os.environ.get("CREDIT_AUTH_NGINX", "/usr/sbin/nginx")


REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


def module_path():
    return Path(os.environ.get("CREDIT_AUTH_MODULE")
                or ROOT / "build" / "ngx_http_credit_auth_module.so")


def asan_enabled():
    return os.environ.get("CREDIT_AUTH_ASAN", "") not in ("", "0")


_given_ports = set()


def free_port():
    """A loopback TCP port that is free now and not handed out before by
    this process (so two services started in a row never collide)."""
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given_ports:
            _given_ports.add(port)
            return port
    raise RuntimeError("no free port")


def port_open(port, host="127.0.0.1", timeout=0.2):
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def workdir(path=None, fresh=False, prefix="credit-auth-"):
    """A working directory for a stack.  nginx workers run as `nobody` when
    we are root, so directories are world-readable (test material only)."""
    if path is None:
        path = Path(tempfile.mkdtemp(prefix=prefix))
    path = Path(path)
    if fresh and path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, 0o755)
    return path


def subdir(parent, name, mode=0o755):
    p = Path(parent) / name
    p.mkdir(parents=True, exist_ok=True)
    os.chmod(p, mode)
    return p


def write_json(path, obj, mode=0o644):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False, indent=2) + "\n")
    os.chmod(path, mode)
    return path


def tail(path, lines=40):
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def wait_for(pred, timeout=5.0, interval=0.05):
    """pred's first truthy value within timeout, else its last value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(interval)
    return pred()


def asan_env(directory):
    env = {}
    if asan_enabled():
        lib = subprocess.run(["gcc", "-print-file-name=libasan.so"],
                             capture_output=True, text=True).stdout.strip()
        env["LD_PRELOAD"] = lib
        asan_dir = subdir(directory, "asan", 0o777)
        env["ASAN_OPTIONS"] = ("detect_leaks=0:abort_on_error=1:"
                               f"log_path={asan_dir}/asan")
    return env


def asan_reports(directory):
    """[(path, text)] of ASan logs written under directory/asan."""
    d = Path(directory) / "asan"
    if not d.is_dir():
        return []
    return [(str(p), p.read_text(errors="replace"))
            for p in sorted(d.glob("asan*"))]


def _children(pid):
    kids = []
    for p in Path("/proc").iterdir():
        if not p.name.isdigit():
            continue
        try:
            stat = (p / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[1]) == pid:
            kids.append(int(p.name))
    return kids
