"""Redis and Sentinel processes of our own, on free loopback ports."""

import os
import signal
import subprocess

from .proc import REDIS_SERVER, free_port, subdir, tail, wait_for


class Redis:
    def __init__(self, directory, port=None, password=None, users=(),
                 appendfsync="always", extra=(), appendonly="yes"):
        """users: (name, password) pairs of ACL users with every right
        (the tools' --user).  appendonly "yes" with appendfsync "always" is
        what the gateway's default durability=aof requires (contract §7.1);
        extra: more redis.conf lines."""
        self.dir = subdir(directory, "redis")
        self.port = port or free_port()
        self.password = password
        self.users = list(users)
        self.appendfsync = appendfsync
        self.appendonly = appendonly
        self.extra = list(extra)
        self.proc = None
        self.conf = self.dir / "redis.conf"
        self.log = self.dir / "redis.log"

    def render(self):
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self.dir}",
            f"appendonly {self.appendonly}",
            f"appendfsync {self.appendfsync}",
            'save ""',
            "daemonize no",
            "protected-mode yes",
            f"logfile {self.log}",
            f"pidfile {self.dir}/redis.pid",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        for name, pw in self.users:
            lines.append(f"user {name} on >{pw} ~* &* +@all")
        lines += self.extra
        return "\n".join(lines) + "\n"

    def start(self, timeout=10):
        self.conf.write_text(self.render())
        self.proc = subprocess.Popen([REDIS_SERVER, str(self.conf)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        if not wait_for(self.ping, timeout):
            self.stop()
            raise RuntimeError("redis did not start:\n" + tail(self.log))
        return self

    def client(self, **kw):
        import redis
        args = dict(host="127.0.0.1", port=self.port, password=self.password,
                    decode_responses=True, socket_timeout=5)
        args.update(kw)
        return redis.Redis(**args)

    def ping(self):
        if self.proc is not None and self.proc.poll() is not None:
            return False
        try:
            return self.client(socket_connect_timeout=0.5).ping()
        except Exception:
            return False

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def directive_value(self):
        v = self.address
        if self.password:
            v += f" password={self.password}"
        return v

    def stop(self, timeout=10):
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGCONT)
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    # fault injection
    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc = None

    def pause(self):
        os.kill(self.proc.pid, signal.SIGSTOP)

    def resume(self):
        os.kill(self.proc.pid, signal.SIGCONT)

    def restart(self):
        self.stop()
        return self.start()


class Sentinel(Redis):
    """`redis-server --sentinel` watching `master` (a Redis) as `name`, with
    short timeouts for tests: down after 500 ms."""

    def __init__(self, directory, master, name="credit", quorum=2,
                 down_after_ms=500, failover_timeout_ms=2000):
        super().__init__(directory)
        self.master, self.name, self.quorum = master, name, quorum
        self.down_after_ms = down_after_ms
        self.failover_timeout_ms = failover_timeout_ms

    def render(self):
        m = self.name
        return "\n".join([
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self.dir}",
            "daemonize no",
            f"logfile {self.log}",
            f"sentinel monitor {m} 127.0.0.1 {self.master.port} "
            f"{self.quorum}",
            f"sentinel down-after-milliseconds {m} {self.down_after_ms}",
            f"sentinel failover-timeout {m} {self.failover_timeout_ms}",
            f"sentinel parallel-syncs {m} 1",
        ]) + "\n"

    def start(self, timeout=10):
        self.conf.write_text(self.render())
        self.proc = subprocess.Popen([REDIS_SERVER, str(self.conf),
                                      "--sentinel"],
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        if not wait_for(self.ping, timeout):
            self.stop()
            raise RuntimeError("sentinel did not start:\n" + tail(self.log))
        return self

    def primary(self):
        """(host, port) the Sentinel names now, or None."""
        try:
            r = self.client(socket_connect_timeout=0.5).execute_command(
                "SENTINEL", "get-master-addr-by-name", self.name)
            return (r[0], int(r[1])) if r else None
        except Exception:
            return None
