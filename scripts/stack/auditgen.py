"""Audit entries written the way a gateway worker writes them
(docs/audit-format.md: hash chains, v2 checkpoints listing each other's
heads, Ed25519 signatures), without a gateway: for loads a real gateway
cannot produce quickly on a shared 2-core box (`make bench-archive`'s
million entries) and for the archive's tests that need many entries.

    w = AuditWriter(priv, gw="gw-gen", lanes=2)
    w.request(enterprise=..., bank=...)   # a decision and its outcome
    w.checkpoint()                        # every chain that moved
    w.xadd(redis_client, stream)          # what was written, in order
"""

import base64
import hashlib
import os
import struct
import time

ZERO = "0" * 64


def entry_hash(fields):
    h = hashlib.sha256()
    for name, value in fields:
        if name == b"hash":
            continue
        h.update(struct.pack(">I", len(name)) + name)
        h.update(struct.pack(">I", len(value)) + value)
    return h.hexdigest()


def b(v):
    return v if isinstance(v, bytes) else str(v).encode()


class Chain:
    def __init__(self, cid):
        self.id = cid
        self.seq = 0
        self.head = ZERO
        self.listed = 0         # chain 0: the seq it last listed of a lane

    def seal(self, fields):
        self.seq += 1
        fields = [(b(k), b(v)) for k, v in fields]
        fields += [(b"chain", b(self.id)), (b"seq", b(self.seq)),
                   (b"prev", b(self.head))]
        self.head = entry_hash(fields)
        fields.append((b"hash", self.head.encode()))
        return fields


class AuditWriter:
    def __init__(self, priv, gw="gw-gen", pid=None, start_ms=None, lanes=2,
                 policy="gen-1 " + "a" * 64):
        self.priv = priv
        self.gw = gw
        pid = pid or os.getpid()
        start_ms = start_ms or int(time.time() * 1000)
        self.writer = f"{gw}/{pid}/{start_ms}"
        self.chains = [Chain(f"{self.writer}/{i}") for i in range(lanes + 1)]
        self.policy = policy
        self.out = []           # [[(name, value)]] in stream order
        self.n = 0
        self.ts = None          # fixed ts, or None: the clock

    def now(self):
        return self.ts if self.ts is not None else int(time.time() * 1000)

    def _head(self, event):
        return [("v", 2), ("event", event), ("ts", self.now()),
                ("gw", self.gw)]

    def decision(self, lane=1, enterprise="91350100M000100Y43",
                 bank="BANK001", decision="allow", reason="", rid=None):
        self.n += 1
        rid = rid or f"gen-{self.n:x}"
        f = self._head("decision") + [
            ("rid", rid), ("bank", bank), ("cert", "ab" * 32),
            ("ip", "10.0.0.7"), ("method", "GET"),
            ("path", f"/api/v1/enterprises/{enterprise}/tax"),
            ("category", "tax"), ("enterprise", enterprise),
            ("purpose", "loan_application"), ("consent", f"jti-{self.n}"),
            ("mode", "query"), ("detail", "masked"), ("decision", decision),
            ("reason", reason), ("policy", self.policy)]
        chain = self.chains[lane if decision == "allow" else 0]
        self.out.append(chain.seal(f))
        return rid

    def outcome(self, rid, status=200):
        f = self._head("outcome") + [
            ("rid", rid), ("status", status), ("bytes", 1024),
            ("disclosed", "annual[].revenue,credit_rating"),
            ("masked", "legal_rep"), ("withheld", 3), ("upstream_ms", 4)]
        self.out.append(self.chains[0].seal(f))

    def request(self, lane=None, **kw):
        lane = lane or 1 + self.n % (len(self.chains) - 1)
        rid = self.decision(lane=lane, **kw)
        self.outcome(rid)
        return rid

    def _sign(self, chain, covers, head, heads):
        if heads is None:
            msg = f"credit-auth checkpoint v1\n{chain.id}\n{covers}\n{head}\n"
        else:
            msg = (f"credit-auth checkpoint v2\n{chain.id}\n{covers}\n"
                   f"{head}\n{heads}")
        sig = self.priv.sign(msg.encode())
        return base64.urlsafe_b64encode(sig).rstrip(b"=")

    def _checkpoint(self, chain, heads):
        f = self._head("checkpoint") + [
            ("covers", chain.seq), ("head", chain.head)]
        if heads is not None:
            f.append(("heads", heads))
        f.append(("sig", self._sign(chain, chain.seq, chain.head, heads)))
        self.out.append(chain.seal(f))

    def checkpoint(self):
        """As the gateway: each lane that moved checkpoints, listing
        chain 0's last checkpoint; chain 0 lists the lanes that moved."""
        c0 = self.chains[0]
        moved = [c for c in self.chains[1:] if c.seq > c.listed]
        last0 = getattr(self, "_last0", None)
        for lane in moved:
            heads = "" if last0 is None else f"0 {last0[0]} {last0[1]}\n"
            self._checkpoint(lane, heads)
        heads = "".join(f"{c.id.rsplit('/', 1)[1]} {c.seq} {c.head}\n"
                        for c in moved)
        for c in moved:
            c.listed = c.seq
        self._checkpoint(c0, heads)
        self._last0 = (c0.seq, c0.head)

    def take(self):
        out, self.out = self.out, []
        return out

    def xadd(self, client, stream, pipeline=1000):
        """XADDs what was written since the last take, in order (a client
        without decode_responses); returns the ids."""
        ids = []
        pending = self.take()
        for i in range(0, len(pending), pipeline):
            p = client.pipeline(transaction=False)
            for fields in pending[i:i + pipeline]:
                args = []
                for k, v in fields:
                    args += [k, v]
                p.execute_command("XADD", stream, "*", *args)
            ids += p.execute()
        return ids
