"""The request ctx by lifecycle (issue 22): ngx_http_credit_auth_ctx_t
composes one part per lifecycle (decision, hold, key wait, audit wait,
response), and each part is written only by the glue file that drives it;
the others read it or call that file's functions.  The owners are declared
once, in the comment above the ctx in ngx_http_credit_auth.h; this test
reads them from there and the assignments from the code."""

import os
import re
from pathlib import Path

ROOT = Path(os.environ.get("CREDIT_AUTH_ROOT")
            or Path(__file__).resolve().parents[2])
GLUE = ROOT / "ngx_credit_auth_module"
HEADER = GLUE / "ngx_http_credit_auth.h"
PREFIX = "ngx_http_credit_auth_"


def owners(header_text):
    """{member: owner file} from the table " *   member   …_file.c   why"
    in the comment that introduces the ctx."""
    start = header_text.index("The request's ctx:")
    comment = header_text[start:header_text.index("*/", start)]
    return dict(re.findall(r"^ \*   ([a-z_]+) +…_([a-z_]+)\.c ", comment,
                           re.M))


def composed(header_text):
    """{member: type} of the ctx's lifecycle parts (its struct members)."""
    body = header_text[:header_text.index("} ngx_http_credit_auth_ctx_t;")]
    body = body[body.rindex("typedef struct {"):]
    return dict((m, t) for t, m in re.findall(
        r"^\s+(ngx_http_credit_auth_[a-z_]+_t)\s+([a-z_]+);", body, re.M))


def code(text):
    """The C text without comments and string literals."""
    return re.sub(r'/\*.*?\*/|//[^\n]*|"(?:\\.|[^"\\\n])*"', "", text,
                  flags=re.S)


_ASSIGN = r"(?:\[[^\]\n]*\])?\s*(?:[-+*/|&^]?=(?!=)|\+\+|--)"


def writes(files, members):
    """(file, member.field) for each assignment to a lifecycle part's
    field of a ctx, however it is reached (ctx->audit.settled,
    wd->ctx.key.parked, ctx->response.body_len += n, ++wd->ctx.hold.held;
    not h->key.len, a header's)."""
    alt = "|".join(sorted(members))
    after = re.compile(r"\bctx(?:->|\.)(" + alt + r")\.([a-z_]+)" + _ASSIGN)
    before = re.compile(r"(?:\+\+|--)\s*[\w>.\-]*\bctx(?:->|\.)(" + alt
                        + r")\.([a-z_]+)")
    found = set()
    for name, text in files.items():
        c = code(text)
        for m in list(after.finditer(c)) + list(before.finditer(c)):
            found.add((name, f"{m.group(1)}.{m.group(2)}"))
    return found


def foreign(found, owner):
    return sorted(f"{f} writes {w} (owned by {owner[w.split('.')[0]]})"
                  for f, w in found if owner[w.split(".")[0]] != f)


def glue_files():
    return {p.name[len(PREFIX):-2]: p.read_text()
            for p in sorted(GLUE.glob(PREFIX + "*.c"))}


def test_every_lifecycle_part_has_an_owner():
    text = HEADER.read_text()
    owner, parts = owners(text), composed(text)
    assert set(parts) == {"decision", "hold", "key", "audit", "response"}
    assert set(owner) == set(parts), \
        "name the owner of each ctx part in the comment above the ctx"
    files = glue_files()
    assert set(owner.values()) <= set(files)


def test_each_lifecycle_is_written_by_its_owner_only():
    owner = owners(HEADER.read_text())
    found = writes(glue_files(), owner)
    # the scan sees the writes it must see, so that no foreign write
    # means something
    assert {("audit", "audit.settled"), ("filter", "response.last_sent"),
            ("keyreg", "key.fetching"), ("decide", "decision.bank"),
            ("ctx", "hold.held"), ("filter", "response.bytes_out")} <= found
    assert foreign(found, owner) == []


def test_the_ownership_check_catches_a_foreign_write():
    owner = owners(HEADER.read_text())
    found = writes({
        "access": "ctx->response.last_sent = 1;\n"
                  "wd->ctx.key.parked = 1; /* ctx->audit.waited = 1; */\n"
                  "if (ctx->audit.settled == 1) { x = ctx->hold.held; }\n",
        "rewrite": 'ctx->response.bytes_out += n; s = "ctx->hold.held = 1";',
        "withdraw": "++wd->ctx.hold.held;",
        "filter": "ctx->response.body_len = 0;",
        "headers": "h->key.len = 4;",
    }, owner)
    assert foreign(found, owner) == [
        "access writes key.parked (owned by keyreg)",
        "access writes response.last_sent (owned by filter)",
        "rewrite writes response.bytes_out (owned by filter)",
        "withdraw writes hold.held (owned by ctx)"]


def test_no_two_done_flags():
    """The audit's and the response's "done" are named for what they
    mean (settled, last_sent): no part of the ctx has a bare `done`."""
    text = HEADER.read_text()
    body = text[:text.index("} ngx_http_credit_auth_ctx_t;")]
    body = body[body.index("The request's ctx:"):]
    assert not re.search(r"^\s+unsigned\s+done:1;", body, re.M)
