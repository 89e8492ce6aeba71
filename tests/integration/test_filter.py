"""The response filter through the real gateway (contract §6, docs/policy.md
§5-§6): a property test over ~200 generated documents, and fixed masking
cases (Chinese names, mixed widths, resident IDs, mobiles, arrays of
objects, the raw level under a raw consent).

One extra gateway for the whole module, with this file's own policy, in
front of an upstream nginx serving a directory the tests write into.

CREDIT_AUTH_PROPERTY_SEED=<int> replays another seed;
CREDIT_AUTH_PROPERTY_N=<int> changes the number of documents (200).
"""

import hashlib
import hmac
import json
import math
import os
import random
import tempfile
from pathlib import Path

import pytest
import requests

from conftest import E1, PURPOSE, S, problem

SEED = int(os.environ.get("CREDIT_AUTH_PROPERTY_SEED", "20261127"))
N_DOCS = int(os.environ.get("CREDIT_AUTH_PROPERTY_N", "200"))

PERSONAL = {"class": "personal"}
SECRET = {"class": "trade_secret"}

PROPS_FIELDS = {
    "id": "keep",
    "title": "keep",
    "secret_note": "drop",
    "person.name": {"masked": "mask:1,0", "raw": "keep", **PERSONAL},
    "person.id_number": {"masked": "mask:6,4", "raw": "mask:6,4", **PERSONAL},
    "person.mobile": {"masked": "mask:3,4", "raw": "keep", **PERSONAL},
    "person.email": {"masked": "hash", "raw": "keep", **PERSONAL},
    "person.birth": {"masked": "year", "raw": "keep", **PERSONAL},
    "finance.revenue": {"masked": "bucket:100000", "raw": "keep", **SECRET},
    "finance.formula": {"masked": "drop", "raw": "keep", **SECRET},
    "items[].sku": "keep",
    "items[].price": {"masked": "bucket:1000", "raw": "keep", **SECRET},
    "items[].owner": {"masked": "mask:1,1", "raw": "keep", **PERSONAL},
    "meta": "keep",
    "matrix[][]": "keep",
    "nums": "keep",
}

PEOPLE_FIELDS = {
    "uscc": "keep",
    "label": "mask:1,2",
    "legal_representative.name": {"masked": "mask:1,0", "raw": "keep",
                                  **PERSONAL},
    "legal_representative.id_number": {"masked": "mask:6,4",
                                       "raw": "mask:6,4", **PERSONAL},
    "legal_representative.mobile": {"masked": "mask:3,4", "raw": "keep",
                                    **PERSONAL},
    "staff[].name": {"masked": "mask:1,0", "raw": "keep", **PERSONAL},
    "staff[].mobile": {"masked": "mask:3,4", "raw": "keep", **PERSONAL},
    "staff[].role": "keep",
    "account": {"masked": "mask:6,4", "raw": "mask:6,4", **PERSONAL},
    "revenue": {"masked": "bucket:100000", "raw": "keep", **SECRET},
    "founded": "year",
}

ALL_CATS = ["props", "people", "noraw"]


def _cat(name, fields, raw_allowed=True):
    return {"routes": [f"/api/v1/enterprises/{{uscc}}/{name}"],
            "purposes": ["loan_application", "credit_assessment"],
            "raw_allowed": raw_allowed, "fields": fields}


POLICY = {
    "version": "test-filter-1",
    "purposes": ["loan_application", "credit_assessment",
                 "post_loan_monitoring"],
    "token": {"algs": ["ES256", "RS256", "PS256", "EdDSA"],
              "max_lifetime": 7776000, "leeway": 60},
    "categories": {
        "props": _cat("props", PROPS_FIELDS),
        "people": _cat("people", PEOPLE_FIELDS),
        "noraw": _cat("noraw", PEOPLE_FIELDS, raw_allowed=False),
    },
}


def path_of(cat):
    return f"/api/v1/enterprises/{E1}/{cat}"


class FilterGW:
    def __init__(self, env, gw, up, root):
        self.env, self.gw, self.up, self.root = env, gw, up, root
        self.hash_key = Path(env.st.hash_key).read_bytes()
        self.session = requests.Session()
        self.session.verify = env.pki.server_ca_path
        c = env.certs["BANK001"]
        self.session.cert = (c.cert, c.key)
        self.tokens = {}

    def token(self, raw=False):
        if raw not in self.tokens:
            extra = {"detail": "raw"} if raw else {}
            self.tokens[raw] = self.env.token(categories=ALL_CATS, **extra)
        return self.tokens[raw]

    def put(self, cat, body):
        """Writes the upstream's answer for /<E1>/<cat> (atomically)."""
        p = Path(self.root) / "api" / "v1" / "enterprises" / E1 / cat
        p.parent.mkdir(parents=True, exist_ok=True)
        for d in (p.parent, p.parent.parent, p.parent.parent.parent,
                  Path(self.root) / "api"):
            os.chmod(d, 0o755)
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body, ensure_ascii=False)
        if isinstance(body, str):
            body = body.encode()
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_bytes(body)
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
        return body

    def get(self, cat, raw_token=False, raw_header=False, headers=None):
        h = {"Authorization": "Bearer " + self.token(raw_token),
             "X-Credit-Purpose": PURPOSE}
        if raw_header:
            h["X-Credit-Detail"] = "raw"
        h.update(headers or {})
        return self.session.get(self.gw.url(path_of(cat)), headers=h,
                                verify=self.env.pki.server_ca_path,
                                timeout=10)


@pytest.fixture(scope="module")
def fgw(env):
    d = S.workdir(Path(tempfile.mkdtemp(prefix="filter-", dir=env.st.dir)))
    pol = S.write_json(d / "policy-filter.json", POLICY)
    root = S.subdir(d, "platform")
    up = S.Upstream(d, root=root).start()
    gw = env.st.make_gateway(d / "gw", policy=pol, upstream_port=up.port)
    try:
        gw.start()
    except Exception:
        up.stop()
        raise
    f = FilterGW(env, gw, up, root)
    yield f
    f.session.close()
    gw.stop()
    up.stop()
    problems = gw.log_problems()
    assert not problems, "filter gateway log:\n" + "\n".join(problems)


# ------------------------------------------------------------------------
# A reference of docs/policy.md §5-§6 (what the bank must receive)

WITHHELD = object()


def ref_mask(s, lead, trail):
    n = len(s)
    if n == 0:
        return ""
    while lead + trail >= n and lead > 0:
        lead -= 1
    while lead + trail >= n and trail > 0:
        trail -= 1
    return s[:lead] + "*" * (n - lead - trail) + (s[n - trail:] if trail
                                                   else "")


def fmt_num(x):
    """docs/policy.md: integral -> integer text, else the shortest form
    that reads back exactly."""
    if isinstance(x, int):
        return str(x)
    x = x + 0.0
    if x == math.floor(x) and abs(x) < 9.2e18:
        return "%.0f" % x
    for prec in range(1, 18):
        t = "%.*g" % (prec, x)
        if float(t) == x:
            return t
    return repr(x)


INT64 = (-(2 ** 63), 2 ** 63 - 1)


def ref_bucket(v, width):
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return WITHHELD
    if isinstance(v, int) and float(width).is_integer():
        w = int(width)
        lo = v - (v % w)
        hi = lo + w
        if not (INT64[0] <= lo <= INT64[1] and INT64[0] <= hi <= INT64[1]):
            return WITHHELD
        return f"{lo}-{hi}"
    x = float(v)
    if not math.isfinite(x / width):
        return WITHHELD
    q = float(math.floor(x / width))
    lo = q * width
    if lo > x:
        lo = (q - 1) * width
    elif lo + width <= x:
        lo = (q + 1) * width
    hi = lo + width
    if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo
            and lo <= x < hi):
        return WITHHELD
    return f"{fmt_num(lo)}-{fmt_num(hi)}"


def ref_text(v):
    """The text a mask or hash works on (strings, numbers)."""
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        return fmt_num(v)
    return None


def ref_treat(t, v, hash_key):
    if t == "keep":
        return v
    if t == "drop":
        return WITHHELD
    if t.startswith("mask:"):
        lead, trail = (int(x) for x in t[5:].split(","))
        s = ref_text(v)
        return WITHHELD if s is None else ref_mask(s, lead, trail)
    if t == "hash":
        s = ref_text(v)
        if s is None:
            return WITHHELD
        return hmac.new(hash_key, s.encode(), hashlib.sha256).hexdigest()
    if t.startswith("bucket:"):
        return ref_bucket(v, float(t[7:]))
    if t == "year":
        if (isinstance(v, str) and len(v) >= 4 and v[:4].isascii()
                and v[:4].isdigit() and (len(v) == 4 or v[4] in "-/.T ")):
            return v[:4]
        return WITHHELD
    raise AssertionError(t)


def allow_tree(fields, raw=False):
    """{name: node}; node is ('field', treatment), ('obj', {name: node})
    or ('arr', node)."""
    root = {}
    for path, rule in fields.items():
        t = rule if isinstance(rule, str) else (
            rule.get("raw", rule["masked"]) if raw else rule["masked"])
        segs = path.split(".")
        cur = root
        for i, seg in enumerate(segs):
            name, arrs = seg.split("[]")[0], seg.count("[]")
            last = i == len(segs) - 1

            def build(k):
                if k == 0:
                    return ("field", t) if last else ("obj", {})
                return ("arr", build(k - 1))
            if name not in cur:
                cur[name] = build(arrs)
            n = cur[name]
            for _ in range(arrs):
                n = n[1]
            if not last:
                cur = n[1]
    return root


def ref_node(node, v, hash_key):
    kind = node[0]
    if kind == "field":
        return ref_treat(node[1], v, hash_key)
    if kind == "obj":
        if not isinstance(v, dict):
            return WITHHELD
        return ref_object(node[1], v, hash_key)
    if kind == "arr":
        if not isinstance(v, list):
            return WITHHELD
        out = []
        for e in v:
            r = ref_node(node[1], e, hash_key)
            if r is not WITHHELD:
                out.append(r)
        return out
    raise AssertionError(node)


def ref_object(children, v, hash_key):
    out = {}
    for k, m in v.items():
        if k in children:
            r = ref_node(children[k], m, hash_key)
            if r is not WITHHELD:
                out[k] = r
    return out


def ref_filter(fields, doc, hash_key, raw=False):
    return ref_object(allow_tree(fields, raw), doc, hash_key)


def ordered(obj):
    """Nested structure with objects as lists of pairs (order matters)."""
    if isinstance(obj, dict):
        return [(k, ordered(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        return [ordered(v) for v in obj]
    if isinstance(obj, float) and obj == 0.0:
        return 0.0
    return obj


def loads_ordered(text):
    return json.loads(text, object_pairs_hook=lambda pairs: dict(pairs))


def keys_on_allowed_paths(tree, doc, where="$"):
    """Every member of doc is on a listed path (a kept subtree allows
    anything below it)."""
    assert isinstance(doc, dict), where
    for k, v in doc.items():
        assert k in tree, f"unlisted key {k!r} at {where}"
        node = tree[k]
        _check_node(node, v, f"{where}.{k}")


def _check_node(node, v, where):
    if node[0] == "field":
        return
    if node[0] == "obj":
        keys_on_allowed_paths(node[1], v, where)
    else:
        assert isinstance(v, list), where
        for i, e in enumerate(v):
            _check_node(node[1], e, f"{where}[{i}]")


# ------------------------------------------------------------------------
# Generator

CJK = [chr(c) for c in range(0x4E00, 0x9FA5, 37)]
SURNAMES = list("张王李赵钱孙周吴郑陈林黄欧阳司马诸葛")
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧", "🇨🇳", "🧧", "❤️", "🐉"]
COMBINING = ["e\u0301", "a\u0308", "n\u0303", "\u0915\u093f", "Å"]
FULLWIDTH = [chr(c) for c in range(0xFF21, 0xFF3A)]
MISC = ["\u2028", "\u00a0", "\t", "\n", "\"", "\\", "/", "\u0001", "ß",
        "Ω", "𝄞", "\uFEFF"]
NEAR_KEYS = ["Name", "name ", "names", "person.name", "items[]", "item",
             "ID", "id_number", "meta2", "Meta", "secret", "mobile", "",
             "sku ", "owner", "price", "formula", "birth", "email",
             "revenue", "nums", "matrix", "title", "__proto__", "$ref"]

EDGE_NUMS = [1e308, -1e308, 5e-324, -5e-324, 2 ** 53 + 1, -(2 ** 53 + 1),
             -0.0, 0, 2 ** 63 - 1, -(2 ** 63), 1.7976931348623157e308,
             2.2250738585072014e-308, 0.1, 123456789012345678, 1e-7,
             9007199254740992.0, 3.141592653589793]


def rand_text(rng, lo=0, hi=12):
    parts = []
    for _ in range(rng.randint(lo, hi)):
        pool = rng.choice(["ascii", "cjk", "emoji", "comb", "full", "misc"])
        if pool == "ascii":
            parts.append(rng.choice("abcdefghijkXYZ0123456789 -_.:"))
        elif pool == "cjk":
            parts.append(rng.choice(CJK))
        elif pool == "emoji":
            parts.append(rng.choice(EMOJI))
        elif pool == "comb":
            parts.append(rng.choice(COMBINING))
        elif pool == "full":
            parts.append(rng.choice(FULLWIDTH))
        else:
            parts.append(rng.choice(MISC))
    return "".join(parts)


def rand_key(rng):
    if rng.random() < 0.4:
        return rng.choice(NEAR_KEYS)
    return "x_" + rand_text(rng, 1, 6)


def rand_scalar(rng):
    r = rng.random()
    if r < 0.3:
        return rand_text(rng)
    if r < 0.55:
        return rng.choice(EDGE_NUMS)
    if r < 0.7:
        return rng.randint(-10 ** 12, 10 ** 12)
    if r < 0.8:
        return round(rng.uniform(-1e6, 1e6), 3)
    if r < 0.9:
        return rng.choice([True, False])
    return None


def rand_value(rng, depth=0, max_depth=4):
    r = rng.random()
    if depth >= max_depth or r < 0.5:
        return rand_scalar(rng)
    if r < 0.75:
        return [rand_value(rng, depth + 1, max_depth)
                for _ in range(rng.randint(0, 4))]
    return rand_object(rng, depth + 1, max_depth)


def rand_object(rng, depth=0, max_depth=4, base=None):
    obj = dict(base or {})
    for _ in range(rng.randint(0, 4)):
        k = rand_key(rng)
        if k not in obj:
            obj[k] = rand_value(rng, depth, max_depth)
    return obj


def shuffled(rng, d):
    items = list(d.items())
    rng.shuffle(items)
    return dict(items)


class Secrets:
    """Distinctive personal values, so that 'never appears' is meaningful."""

    def __init__(self, rng):
        self.rng = rng
        self.n = 0

    def name(self):
        rng = self.rng
        s = rng.choice(SURNAMES) + "".join(rng.choice(CJK)
                                           for _ in range(rng.randint(1, 3)))
        if rng.random() < 0.2:
            s += rng.choice(EMOJI + COMBINING)
        return s

    def id_number(self):
        self.n += 1
        return "1101%02d19%02d%02d%02d%03d%s" % (
            self.rng.randint(1, 99), self.rng.randint(50, 99),
            self.rng.randint(1, 12), self.rng.randint(1, 28), self.n % 1000,
            self.rng.choice("0123456789X"))

    def mobile(self):
        return "1%d%09d" % (self.rng.choice([3, 5, 8]),
                            self.rng.randint(0, 10 ** 9 - 1))

    def email(self):
        self.n += 1
        return f"p{self.n}.{self.rng.randint(10**5, 10**6)}@例子.公司"

    def birth(self):
        sep = self.rng.choice("-/.T ")
        return "19%02d%s%02d%s%02d" % (self.rng.randint(40, 99), sep,
                                       self.rng.randint(1, 12), sep,
                                       self.rng.randint(1, 28))

    def owner(self):
        return self.name() + self.rng.choice(["先生", "女士", "ＸＹ", "ab"])


def wrong_shape(rng):
    return rng.choice([None, True, 12, "str", [], {}, [1, 2],
                       {"x": rand_text(rng, 1, 3)}])


def gen_doc(rng):
    """A document shaped around PROPS_FIELDS; returns (doc, personal raw
    values that must never appear in the masked answer)."""
    sec = Secrets(rng)
    personal = []
    doc = {}

    def maybe(p=0.8):
        return rng.random() < p

    if maybe():
        doc["id"] = rng.choice([rng.randint(0, 2 ** 53), rand_text(rng, 1)])
    if maybe():
        doc["title"] = rand_text(rng, 0, 20)
    if maybe(0.5):
        doc["secret_note"] = "SECRET-NOTE-" + rand_text(rng, 2, 6)
    if maybe(0.9):
        if maybe(0.9):
            person = rand_object(rng, 2, 3)
            for k, make in (("name", sec.name), ("id_number", sec.id_number),
                            ("mobile", sec.mobile), ("email", sec.email),
                            ("birth", sec.birth)):
                if maybe(0.85):
                    v = make()
                    if k == "mobile" and maybe(0.2):
                        v = int(v)
                    if maybe(0.1):
                        # a wrong shape hiding the value
                        person[k] = {"v": v} if maybe() else [v]
                    else:
                        person[k] = v
                    personal.append(str(v))
            doc["person"] = shuffled(rng, person)
        else:
            doc["person"] = wrong_shape(rng)
    if maybe():
        fin = rand_object(rng, 2, 3)
        fin["revenue"] = rng.choice([
            rng.randint(-10 ** 12, 10 ** 12),
            round(rng.uniform(-1e9, 1e9), 2),
            -0.0, 0, 1e308, -1e308, 5e-324, 2 ** 53 + 1, 2 ** 63 - 1,
            -(2 ** 63), "1000", None, True, [1]])
        if maybe(0.5):
            fin["formula"] = "FORMULA-" + rand_text(rng, 2, 5)
        doc["finance"] = shuffled(rng, fin)
    if maybe():
        items = []
        for _ in range(rng.randint(0, 6)):
            if maybe(0.1):
                items.append(wrong_shape(rng))
                continue
            it = rand_object(rng, 3, 4)
            if maybe():
                it["sku"] = rand_value(rng, 3, 5)
            if maybe():
                it["price"] = rng.choice([
                    rng.randint(-10 ** 6, 10 ** 9),
                    round(rng.uniform(0, 1e6), 2), -0.0, 2 ** 53 + 1,
                    1e308, "12", None])
            if maybe():
                o = sec.owner()
                it["owner"] = o
                personal.append(o)
            items.append(shuffled(rng, it))
        doc["items"] = items if maybe(0.95) else wrong_shape(rng)
    if maybe():
        doc["meta"] = rand_value(rng, 0, 5)
    if maybe():
        doc["matrix"] = [[rand_value(rng, 3, 5)
                          for _ in range(rng.randint(0, 3))]
                         if maybe(0.9) else rand_scalar(rng)
                         for _ in range(rng.randint(0, 3))]
    if maybe():
        doc["nums"] = [rng.choice(EDGE_NUMS) for _ in range(5)]
    doc = rand_object(rng, 0, 3, base=doc)
    return shuffled(rng, doc), personal


def dump(rng, doc):
    style = rng.random()
    if style < 0.4:
        return json.dumps(doc, ensure_ascii=False)
    if style < 0.7:
        return json.dumps(doc, ensure_ascii=True)       # \uXXXX, surrogates
    return json.dumps(doc, ensure_ascii=False, indent=rng.choice([1, "\t"]))


# ------------------------------------------------------------------------
# The property test

def test_property_generated_documents(fgw):
    rng = random.Random(SEED)
    tree = allow_tree(PROPS_FIELDS)
    failures = []
    for i in range(N_DOCS):
        doc, personal = gen_doc(rng)
        body = fgw.put("props", dump(rng, doc))
        # the document as the upstream wrote it (ints stay ints)
        up = json.loads(body)
        r = fgw.get("props")
        where = f"seed {SEED} doc {i}"
        try:
            assert r.status_code == 200, (r.status_code, r.text[:300])
            assert r.headers.get("X-Credit-Disclosure") == "masked"
            assert "ETag" not in r.headers and "Last-Modified" not in r.headers
            assert r.headers["Content-Type"].startswith("application/json")
            assert "chunked" not in r.headers.get("Transfer-Encoding", "")
            assert int(r.headers["Content-Length"]) == len(r.content)
            got = json.loads(r.content.decode("utf-8"))
            keys_on_allowed_paths(tree, got)
            text = r.content.decode("utf-8")
            for v in personal:
                assert v not in text, f"personal value {v!r} disclosed"
            for marker in ("SECRET-NOTE-", "FORMULA-"):
                assert marker not in text, marker
            want = ref_filter(PROPS_FIELDS, up, fgw.hash_key)
            assert ordered(got) == ordered(want), \
                f"\n got {json.dumps(got, ensure_ascii=False)[:1500]}" \
                f"\nwant {json.dumps(want, ensure_ascii=False)[:1500]}"
        except AssertionError as e:
            failures.append(f"{where}: {e}\n upstream: {body[:1500]!r}")
            if len(failures) >= 5:
                break
    assert not failures, "\n\n".join(failures)


def test_property_raw_level_keeps_what_raw_says(fgw):
    """The same generator at the raw level (raw consent + raw header):
    only id_number stays masked (mask:6,4 at both levels)."""
    rng = random.Random(SEED + 1)
    failures = []
    for i in range(25):
        doc, _ = gen_doc(rng)
        body = fgw.put("props", dump(rng, doc))
        r = fgw.get("props", raw_token=True, raw_header=True)
        try:
            assert r.status_code == 200, r.text[:300]
            assert r.headers.get("X-Credit-Disclosure") == "raw"
            got = json.loads(r.content)
            want = ref_filter(PROPS_FIELDS, json.loads(body), fgw.hash_key,
                              raw=True)
            assert ordered(got) == ordered(want), (got, want)
        except AssertionError as e:
            failures.append(f"raw doc {i}: {e}\n upstream {body[:800]!r}")
            break
    assert not failures, "\n".join(failures)


def test_hash_is_stable_and_keyed(fgw):
    email = "stable.pseudonym@例子.公司"
    fgw.put("props", {"person": {"email": email}})
    a = fgw.get("props").json()["person"]["email"]
    b = fgw.get("props").json()["person"]["email"]
    assert a == b
    assert a == hmac.new(fgw.hash_key, email.encode(),
                         hashlib.sha256).hexdigest()
    assert a != hashlib.sha256(email.encode()).hexdigest()
    # a number hashes as its decimal text, like the same string
    fgw.put("props", {"person": {"email": 12345}})
    n = fgw.get("props").json()["person"]["email"]
    fgw.put("props", {"person": {"email": "12345"}})
    s = fgw.get("props").json()["person"]["email"]
    assert n == s


# ------------------------------------------------------------------------
# Bucket edges (docs/policy.md §5)

@pytest.mark.parametrize("value,want", [
    (350000, "300000-400000"),
    (0, "0-100000"),
    (-1, "-100000-0"),
    (-0.0, "0-100000"),
    (99999.99, "0-100000"),
    (100000, "100000-200000"),
    (2 ** 53 + 1, "9007199254700000-9007199254800000"),
    (1e308, None),
    (-1e308, None),
    (5e-324, "0-100000"),
    (9223372036854775807, None),           # hi does not fit in 64 bits
    (-9223372036854775808, None),          # lo does not fit in 64 bits
    ("350000", None),
    (True, None),
])
def test_bucket_edges(fgw, value, want):
    up = fgw.put("people", {"revenue": value, "uscc": E1})
    r = fgw.get("people")
    assert r.status_code == 200, r.text
    doc = r.json()
    if want is None:
        assert "revenue" not in doc, (value, doc)
    else:
        assert doc.get("revenue") == want, (value, doc)
    assert ref_bucket(json.loads(up)["revenue"], 100000.0) == \
        (WITHHELD if want is None else want)


# ------------------------------------------------------------------------
# Masking through the gateway

PEOPLE_DOC = {
    "uscc": E1,
    "label": "ＡＢ张三abc",
    "legal_representative": {"name": "张三丰",
                             "id_number": "110101199003071234",
                             "mobile": "13800135678",
                             "home_address": "福建省福州市鼓楼区HIDDEN-ADDR"},
    "staff": [
        {"name": "欧阳娜娜", "mobile": "13912345678", "role": "CFO",
         "salary": 987654},
        {"name": "李", "mobile": 15800001111, "role": "会计"},
        "not-an-object",
        {"name": "José\u0301 Ñ", "mobile": "+86 138 0013 5678"},
        {"name": "👨‍👩‍👧王", "role": None},
        {},
    ],
    "account": "6222020200112233445",
    "revenue": 1234567.89,
    "founded": "2003-07-15",
    "internal": {"name": "INTERNAL-SECRET"},
}

PEOPLE_MASKED = {
    "uscc": E1,
    "label": "Ａ****bc",
    "legal_representative": {"name": "张**",
                             "id_number": "110101********1234",
                             "mobile": "138****5678"},
    "staff": [
        {"name": "欧***", "mobile": "139****5678", "role": "CFO"},
        {"name": "*", "mobile": "158****1111", "role": "会计"},
        {"name": "J******", "mobile": "+86**********5678"},
        {"name": "👨*****", "role": None},
        {},
    ],
    "account": "622202*********3445",
    "revenue": "1200000-1300000",
    "founded": "2003",
}

PEOPLE_RAW = {
    "uscc": E1,
    "label": "Ａ****bc",
    "legal_representative": {"name": "张三丰",
                             "id_number": "110101********1234",
                             "mobile": "13800135678"},
    "staff": [
        {"name": "欧阳娜娜", "mobile": "13912345678", "role": "CFO"},
        {"name": "李", "mobile": 15800001111, "role": "会计"},
        {"name": "José\u0301 Ñ", "mobile": "+86 138 0013 5678"},
        {"name": "👨‍👩‍👧王", "role": None},
        {},
    ],
    "account": "622202*********3445",
    "revenue": 1234567.89,
    "founded": "2003",
}


def test_reference_agrees_with_docs():
    """The reference used above reproduces docs/policy.md's examples."""
    assert ref_mask("张三", 1, 0) == "张*"
    assert ref_mask("张", 1, 0) == "*"
    assert ref_mask("abc", 6, 4) == "*bc"
    assert ref_mask("ＡＢ张三abc", 1, 2) == "Ａ****bc"
    assert ref_mask("110101199003071234", 6, 4) == "110101********1234"
    assert ref_mask("", 3, 4) == ""
    assert ref_filter(PEOPLE_FIELDS, PEOPLE_DOC, b"k") == PEOPLE_MASKED
    assert ref_filter(PEOPLE_FIELDS, PEOPLE_DOC, b"k", raw=True) == PEOPLE_RAW


def test_masked_level(fgw):
    fgw.put("people", PEOPLE_DOC)
    r = fgw.get("people")
    assert r.status_code == 200, r.text
    assert r.headers["X-Credit-Disclosure"] == "masked"
    assert r.json() == PEOPLE_MASKED
    assert list(r.json()) == list(PEOPLE_MASKED)          # member order
    for secret in ("三丰", "110101199003071234", "13800135678", "娜娜",
                   "13912345678", "15800001111", "HIDDEN-ADDR", "987654",
                   "INTERNAL-SECRET", "6222020200112233445", "1234567",
                   "not-an-object", "07-15"):
        assert secret not in r.text, secret


def test_masked_level_even_under_raw_consent(fgw):
    """Least necessary is the default even under a raw consent."""
    fgw.put("people", PEOPLE_DOC)
    r = fgw.get("people", raw_token=True)
    assert r.status_code == 200, r.text
    assert r.headers["X-Credit-Disclosure"] == "masked"
    assert r.json() == PEOPLE_MASKED


def test_raw_level_with_raw_consent(fgw):
    fgw.put("people", PEOPLE_DOC)
    r = fgw.get("people", raw_token=True, raw_header=True)
    assert r.status_code == 200, r.text
    assert r.headers["X-Credit-Disclosure"] == "raw"
    assert r.json() == PEOPLE_RAW
    # raw level still masks what the policy masks at raw
    assert "110101199003071234" not in r.text
    assert "6222020200112233445" not in r.text
    for secret in ("HIDDEN-ADDR", "987654", "INTERNAL-SECRET"):
        assert secret not in r.text
    e = fgw.env.decision(r)
    assert e["decision"] == "allow" and e["detail"] == "raw", e


def test_raw_header_without_raw_consent(fgw):
    fgw.put("people", PEOPLE_DOC)
    r = fgw.get("people", raw_header=True)
    problem(r, 403, "raw_not_allowed",
            record_markers=["三丰", "110101199003071234", "HIDDEN-ADDR"])


def test_raw_header_on_category_without_raw_allowed(fgw):
    fgw.put("noraw", PEOPLE_DOC)
    r = fgw.get("noraw", raw_token=True, raw_header=True)
    problem(r, 403, "raw_not_allowed",
            record_markers=["三丰", "110101199003071234", "HIDDEN-ADDR"])
    r = fgw.get("noraw", raw_token=True)
    assert r.status_code == 200 and r.json() == PEOPLE_MASKED


def test_bad_detail_header(fgw):
    fgw.put("people", PEOPLE_DOC)
    r = fgw.get("people", headers={"X-Credit-Detail": "RAW"})
    problem(r, 400, "request_invalid", record_markers=["三丰"])


def test_mask_length_boundaries(fgw):
    """mask:6,4 and mask:3,4 on short values: always hides something."""
    cases = [("1234567890", "12345*7890"), ("12345678901", "123456*8901"), ("12345", "*2345"),
             ("1", "*"), ("", "")]
    for value, want in cases:
        fgw.put("people", {"account": value})
        r = fgw.get("people")
        assert r.status_code == 200, r.text
        assert r.json().get("account") == want, (value, r.json())
        assert ref_mask(value, 6, 4) == want
