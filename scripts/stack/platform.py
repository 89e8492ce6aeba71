"""Hostile or hand-written platforms: a raw TCP/TLS server answering what a test tells it."""

import json
import socket
import threading
import time

from .proc import _given_ports


def tls_exchange(port, context, data, timeout=15):
    """Sends raw bytes over TLS to a loopback port and returns every byte
    answered until the server closes."""
    import ssl
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    out = b""
    with context.wrap_socket(s, server_hostname="127.0.0.1") as t:
        t.sendall(data)
        while True:
            try:
                chunk = t.recv(65536)
            except (ssl.SSLError, ConnectionResetError):
                break
            if not chunk:
                break
            out += chunk
    return out


def close_listener(sock):
    """Stops a listening socket for good: close() alone leaves it listening
    while a thread sits in accept() on it, and the next server that gets
    the port shares it (connections then go to either)."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def http_answer(status="200 OK", headers=(), body=b"",
                ctype="application/json", length=True):
    """The bytes of an HTTP/1.1 answer: status line, headers (a list of
    "Name: value" strings, sent as given), Content-Length unless
    length=False, and the body."""
    if isinstance(body, (dict, list)):
        body = json.dumps(body, ensure_ascii=False).encode()
    elif isinstance(body, str):
        body = body.encode()
    h = [f"HTTP/1.1 {status}"]
    if ctype:
        h.append(f"Content-Type: {ctype}")
    h += list(headers)
    if length:
        h.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(h) + "\r\n\r\n").encode() + body


class ThreadedServer:
    """A TCP server on a loopback port, one thread per connection (in the
    calling process); subclasses implement _serve(conn)."""

    def __init__(self, port=None):
        # no SO_REUSEADDR: a port another listener still holds (one closed
        # while its thread sat in accept()) must not be shared
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", port or 0))
        self.port = self.sock.getsockname()[1]
        _given_ports.add(self.port)
        self.lock = threading.Lock()
        self.stopping = False
        self.thread = None

    def start(self):
        self.sock.listen(64)
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()
        return self

    def stop(self):
        self.stopping = True
        close_listener(self.sock)

    def _accept(self):
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,),
                             daemon=True).start()

    def _serve(self, conn):
        raise NotImplementedError


class RawPlatform(ThreadedServer):
    """A scriptable platform for hostile-upstream tests: a TCP server on a
    free loopback port (a thread of the calling process) that answers each
    path with exactly the bytes a test gave it.

      p = RawPlatform().start()
      p.script(path, http_answer("206 Partial Content", [...], body))
      p.script(path, b"", close=True)             # closes without a word
      p.script(path, head + half, close=True)     # closes mid-answer
      p.requests    # [(method, target, [(name, value)], body)] as received

    Paths are matched without the query string; an unscripted path is a
    404.  A connection stays open (keep-alive) unless close=True.
    """

    def __init__(self, port=None):
        super().__init__(port)
        self.answers = {}
        self.requests = []

    def script(self, path, raw, close=False, delay=0.0):
        """From now on, answer path with the bytes raw (then close the
        connection if close; wait delay seconds before answering)."""
        with self.lock:
            self.answers[path] = (raw, close, delay)

    def requests_for(self, path):
        with self.lock:
            return [q for q in self.requests if q[1].split("?")[0] == path]

    @staticmethod
    def _read_request(conn, buf):
        while b"\r\n\r\n" not in buf:
            data = conn.recv(65536)
            if not data:
                return None, buf
            buf += data
        head, buf = buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        method, target = lines[0].split(" ")[:2]
        headers = []
        for ln in lines[1:]:
            k, _, v = ln.partition(":")
            headers.append((k.strip(), v.strip()))
        n = 0
        for k, v in headers:
            if k.lower() == "content-length":
                n = int(v)
        while len(buf) < n:
            data = conn.recv(65536)
            if not data:
                break
            buf += data
        return (method, target, headers, buf[:n]), buf[n:]

    def _serve(self, conn):
        buf = b""
        try:
            conn.settimeout(30)
            while True:
                req, buf = self._read_request(conn, buf)
                if req is None:
                    return
                with self.lock:
                    self.requests.append(req)
                    raw, close, delay = self.answers.get(
                        req[1].split("?")[0],
                        (http_answer("404 Not Found", body=b""), False, 0))
                if delay:
                    time.sleep(delay)
                if raw:
                    conn.sendall(raw)
                if close:
                    time.sleep(0.05)
                    conn.shutdown(socket.SHUT_RDWR)
                    return
        except OSError:
            return
        finally:
            try:
                conn.close()
            except OSError:
                pass
