"""docs/contract.md kept honest against the code (issue 22): every reason
code with its status, every directive with its context, every command of
every tool has its line; the page names no directive the code lacks; and
what it marks "(v3, being built)" is really not built yet, so the mark
goes when the work lands.  Pure Python: reads sources, runs --help."""

import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("CREDIT_AUTH_ROOT")
            or Path(__file__).resolve().parents[2])
DOC = ROOT / "docs" / "contract.md"
GLUE = ROOT / "ngx_credit_auth_module"
BIN = ROOT / "build" / "bin"
MARK = "(v3, being built)"
TOOLS = ("credit-consent", "credit-policy", "credit-audit")


# --- the page ----------------------------------------------------------------

def _doc():
    return DOC.read_text()


def _section(text, number):
    """The body of "## N. ..." or "### N.M ...", up to the next heading
    of the same or a higher level."""
    level = "##" if "." not in number else "###"
    m = re.search(rf"^{level} {re.escape(number)}\.? .*$", text, re.M)
    assert m, f"docs/contract.md has no section §{number}"
    stop = r"^#{2}\s" if level == "##" else r"^#{2,3}\s"
    end = re.compile(stop, re.M).search(text, m.end())
    return text[m.end():end.start() if end else len(text)]


def _subsection(text, title):
    m = re.search(rf"^### {re.escape(title)}\b.*$", text, re.M)
    assert m, f"no subsection '### {title}'"
    end = re.compile(r"^#{2,3}\s", re.M).search(text, m.end())
    return text[m.end():end.start() if end else len(text)]


def _rows(text):
    """Table rows as lists of cells (the header and rule rows included)."""
    return [[c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            for line in text.splitlines() if line.lstrip().startswith("|")]


def _blocks(text):
    """(block, marked): a paragraph, a list item or a table row, the unit
    a mark applies to.  The closing "Being built (v3)" list is marked as a
    whole."""
    tail = re.search(r"^## Being built", text, re.M)
    tail_start = tail.start() if tail else len(text)
    for m in re.finditer(r"(?:^[^\n]*\S[^\n]*(?:\n|$))+", text, re.M):
        blocks = []
        for line in m.group(0).splitlines():
            if not blocks or re.match(r"\s*(\||[-*] )", line):
                blocks.append(line)
            else:
                blocks[-1] += "\n" + line
        for b in blocks:
            yield b, MARK in b or m.start() >= tail_start


def _first_cell_word(row):
    m = re.match(r"`([^`\s;]+)", row[0]) if row else None
    return m.group(1) if m else None


# --- the code ----------------------------------------------------------------

def _reasons():
    """{name: status} from lib/core/reason.c's table."""
    text = (ROOT / "lib" / "core" / "reason.c").read_text()
    found = dict(re.findall(r'\{"([a-z_]+)",\s*(\d{3}),', text))
    assert len(found) > 25
    return {k: int(v) for k, v in found.items()}


_CONTEXT = {"NGX_HTTP_MAIN_CONF": "http", "NGX_HTTP_SRV_CONF": "server",
            "NGX_HTTP_LOC_CONF": "location"}


def _directives():
    """{name: "http, server, location"} from the module's command table."""
    text = (GLUE / "ngx_http_credit_auth_module.c").read_text()
    table = text.split("ngx_http_credit_auth_commands[]", 1)[1]
    table = table.split("ngx_null_command", 1)[0]
    found = {}
    for name, flags in re.findall(r'ngx_string\("([a-z_]+)"\),\s*([A-Z_|0-9]+)',
                                  table):
        found[name] = ", ".join(c for f, c in _CONTEXT.items()
                                if f in flags.split("|"))
    assert len(found) > 15 and all(found.values())
    return found


def _variables():
    text = (GLUE / "ngx_http_credit_auth_variables.c").read_text()
    return set(re.findall(r'ngx_string\("(credit_auth_[a-z_]+)"\)', text))


def _metric_families():
    text = (GLUE / "ngx_http_credit_auth_status.c").read_text()
    return set(re.findall(r'"(credit_auth_[a-z_]+)', text))


def _help(*argv):
    r = subprocess.run([str(BIN / argv[0]), *argv[1:], "--help"],
                       capture_output=True, text=True, timeout=30)
    return r.stdout + r.stderr


def _commands(tool):
    """The commands a tool's --help lists (as test_build_hygiene reads
    them), and for a command with subcommands ("key add"), those too."""
    main = _help(tool)
    cmds = (set(re.findall(r"^  ([a-z]+)\s{2,}\S", main, re.M))
            | set(re.findall(rf"{tool} ([a-z]+)\b", main)))
    assert cmds, f"{tool} --help lists no command"
    out = set(cmds)
    for cmd in cmds:
        subs = set(re.findall(rf"{tool} {cmd} ([a-z]+)\b", _help(tool, cmd)))
        out |= {f"{cmd} {s}" for s in subs}
    return out


# --- §1-§9 as the code comments cite them -------------------------------------

@pytest.mark.parametrize("number", ["1", "2", "2.1", "3", "4", "5", "6", "7",
                                    "7.1", "7.2", "7.3", "8", "9"])
def test_sections_numbered_as_cited(number):
    assert _section(_doc(), number).strip()


# --- §4: reason codes ----------------------------------------------------------

def test_every_reason_code_has_its_row_and_status():
    rows = {r[0].strip("`"): r[1] for r in _rows(_section(_doc(), "4"))
            if len(r) >= 3 and r[0].startswith("`")}
    missing = [f"{name} ({status})" for name, status in _reasons().items()
               if rows.get(name) != str(status)]
    assert missing == [], \
        "docs/contract.md §4 needs a row '| `reason` | status | when |' for these"


def test_reason_rows_name_only_real_codes():
    reasons = _reasons()
    rows = [r[0].strip("`") for r in _rows(_section(_doc(), "4"))
            if len(r) >= 3 and r[0].startswith("`")]
    assert rows and [r for r in rows if r not in reasons] == []


# --- §8: directives -----------------------------------------------------------

def _directive_rows():
    return [(r, _first_cell_word(r)) for r in _rows(_section(_doc(), "8"))
            if _first_cell_word(r) and _first_cell_word(r).startswith("credit_auth")]


def test_every_directive_has_its_row_and_context():
    rows = {word: r for r, word in _directive_rows()}
    wrong = []
    for name, context in _directives().items():
        if name not in rows:
            wrong.append(f"{name}: no row")
        elif rows[name][1] != context:
            wrong.append(f"{name}: context '{rows[name][1]}', code '{context}'")
    assert wrong == []


def test_v3_directive_marks_are_not_stale():
    """A directive marked as being built that the code now has: take the
    mark off (and document it as built)."""
    directives = _directives()
    stale = [word for r, word in _directive_rows()
             if MARK in " ".join(r) and word in directives]
    assert stale == []


NAME = re.compile(r"(?<![\w$-])credit_auth(?:_[a-z0-9]+)*(?![\w-])")
VARIABLE = re.compile(r"\$(credit_auth_[a-z0-9_]+)")


def test_page_names_no_directive_the_code_lacks():
    """Every credit_auth_* the page names is a directive of the command
    table (or a Prometheus family of the status page), every
    $credit_auth_* a variable the module adds — unless its paragraph or
    table row is marked as being built."""
    known = set(_directives()) | _metric_families()
    variables = _variables()
    unknown = []
    for block, marked in _blocks(_doc()):
        if marked:
            continue
        unknown += [n for n in NAME.findall(block) if n not in known]
        unknown += ["$" + v for v in VARIABLE.findall(block)
                    if v not in variables]
    assert sorted(set(unknown)) == []


def test_the_name_check_catches_a_made_up_directive():
    block = "Set `credit_auth_frobnicate on;` and log `$credit_auth_bogus`."
    assert NAME.findall(block) == ["credit_auth_frobnicate"]
    assert VARIABLE.findall(block) == ["credit_auth_bogus"]
    assert "credit_auth_frobnicate" not in _directives()
    assert "credit_auth_bogus" not in _variables()
    # neither the module's name nor a variable counts as a directive
    assert NAME.findall("`ngx_http_credit_auth_module` `$credit_auth_bank`") \
        == []


# --- §9: commands --------------------------------------------------------------

def _tool_rows(tool):
    """{command: row} of the tool's table in §9; "key add" for a row
    whose first cell starts `key add ...`."""
    rows = {}
    for r in _rows(_subsection(_section(_doc(), "9"), tool)):
        m = re.match(r"`([a-z]+)(?: ([a-z]+))?", r[0]) if r else None
        if m:
            rows.setdefault(m.group(1), r)
            if m.group(2):
                rows.setdefault(f"{m.group(1)} {m.group(2)}", r)
    return rows


@pytest.mark.parametrize("tool", TOOLS)
def test_every_command_has_its_row(tool):
    rows = _tool_rows(tool)
    missing = sorted(c for c in _commands(tool) if c not in rows)
    assert missing == [], f"docs/contract.md §9 {tool}: no row for these"


@pytest.mark.parametrize("tool", TOOLS)
def test_unbuilt_commands_are_marked_and_marks_not_stale(tool):
    """A row for a command --help does not list must say it is being
    built; a row that says so for a command --help lists is stale."""
    built = {c.split()[0] for c in _commands(tool)}
    wrong = []
    for r in _rows(_subsection(_section(_doc(), "9"), tool)):
        m = re.match(r"`([a-z]+)", r[0]) if r else None
        if not m:
            continue
        marked = MARK in " ".join(r)
        if m.group(1) in built and marked:
            wrong.append(f"{m.group(1)}: built, still marked")
        if m.group(1) not in built and not marked:
            wrong.append(f"{m.group(1)}: not built, not marked")
    assert wrong == []
