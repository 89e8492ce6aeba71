"""The engine's shape, from the code itself (issue 22): lib/ is components
in one declared order, and nothing calls up; no two files of lib/ call
each other round a cycle, nor two files of one tool; outside a component
only its public header is included.  The calls are read from the symbols
of the built objects (`nm`), so a call hidden behind a macro or an inline
function counts too.

`python3 tests/integration/test_layers.py` prints the component graph, the
file cycles and the largest files and functions (the closing note's
numbers), from the same data.
"""

import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(os.environ.get("CREDIT_AUTH_ROOT")
            or Path(__file__).resolve().parents[2])
BUILD = ROOT / "build"
LIB = ROOT / "lib"
GLUE = ROOT / "ngx_credit_auth_module"
TOOLS = ROOT / "tools"
GLUE_OBJS = BUILD / "nginx-src" / "objs" / "addon" / "ngx_credit_auth_module"

# The components of lib/, lowest first: a file calls functions of its own
# component and of lower ones only.  A new folder of lib/ goes here.
COMPONENTS = ["core", "merkle", "json", "redis", "jws", "policy", "audit",
              "verify"]

# The one header of each component that anything outside it includes.
PUBLIC = {
    "core": "core/core.h",
    "merkle": "merkle/merkle.h",
    "json": "json/json.h",
    "redis": "redis/redis.h",
    "jws": "jws/jws.h",
    "policy": "policy/policy.h",
    "audit": "audit/audit.h",
    "verify": "verify/verify.h",
}

# Helpers that every file of a tool shares (Makefile: TOOL_COMMON).
TOOL_COMMON = {"common", "csvout"}


# --- reading the objects ----------------------------------------------------

def _nm(obj):
    out = subprocess.run(["nm", str(obj)], capture_output=True, text=True,
                         check=True).stdout
    defined, undefined = {}, set()
    for line in out.splitlines():
        p = line.split()
        if len(p) == 3 and p[1] in "TDBRCG":
            defined[p[2]] = p[1]
        elif len(p) == 2 and p[0] == "U":
            undefined.add(p[1])
    return defined, undefined


def _fresh(obj, src):
    assert obj.exists() and obj.stat().st_mtime >= src.stat().st_mtime, \
        f"{obj} is missing or older than {src}: make build first"


def lib_objects():
    """{"audit/auditwriter": object path} for every lib/ source."""
    objs = {}
    for src in sorted(LIB.glob("*/*.c")):
        name = str(src.relative_to(LIB))[:-2]
        obj = BUILD / "lib" / (name + ".o")
        _fresh(obj, src)
        objs[name] = obj
    return objs


def glue_objects():
    objs = {}
    for src in sorted(GLUE.glob("*.c")):
        obj = GLUE_OBJS / (src.stem + ".o")
        _fresh(obj, src)
        objs["glue/" + src.stem.replace("ngx_http_credit_auth_", "")] = obj
    return objs


def _pq_cflags():
    r = subprocess.run(["pkg-config", "--cflags", "libpq"],
                       capture_output=True, text=True)
    return r.stdout.split() if r.returncode == 0 else \
        ["-I/usr/include/postgresql"]


def tool_objects(outdir):
    """The tools are linked straight from their sources (Makefile): compile
    each to an object here, without optimisation (only the symbols
    matter)."""
    flags = ["-c", "-O0", "-std=gnu11", "-I" + str(LIB), "-I" + str(TOOLS)] \
        + _pq_cflags()

    def one(src):
        obj = Path(outdir) / (src.stem + ".o")
        subprocess.run(["cc", *flags, str(src), "-o", str(obj)], check=True,
                       capture_output=True)
        return "tools/" + src.stem, obj

    with concurrent.futures.ThreadPoolExecutor(2) as ex:
        return dict(ex.map(one, sorted(TOOLS.glob("*.c"))))


def tool_of(name):
    """Which program a tools/ file is linked into (Makefile: credit-NAME
    links tools/NAME_*.c), None for the shared helpers."""
    stem = name.split("/", 1)[1]
    if stem in TOOL_COMMON:
        return None
    if stem.startswith("credit-"):
        return stem[len("credit-"):]
    return stem.split("_", 1)[0]


def call_graph(objs):
    """{caller file: {callee file: {symbols}}} over objs.  In lib/ data
    counts as well as code (the schema table is a dependency); in the glue
    and the tools only functions do (the module's variable and a tool's
    `tool_name` are the wiring, not calls).  Tool files are linked per
    program, so a tool file calls only files of its own program and the
    shared helpers."""
    defs, undef = defaultdict(list), {}
    for name, obj in objs.items():
        defined, undefined = _nm(obj)
        code_only = not name.startswith(tuple(c + "/" for c in COMPONENTS))
        for sym, kind in defined.items():
            if not code_only or kind == "T":
                defs[sym].append(name)
        undef[name] = undefined
    graph = defaultdict(lambda: defaultdict(set))
    for name, syms in undef.items():
        for sym in syms:
            for d in defs.get(sym, ()):
                if d == name:
                    continue
                if name.startswith("tools/") and d.startswith("tools/") \
                        and tool_of(d) not in (None, tool_of(name)):
                    continue
                graph[name][d].add(sym)
    return graph


# --- the checks (pure: the self-tests feed them made-up graphs) -------------

def component(name):
    head = name.split("/", 1)[0]
    return head if head in COMPONENTS else None


def upward(graph):
    """Calls from a lib file to a higher component, or from lib/ to the
    glue or a tool."""
    bad = []
    for a, callees in graph.items():
        ca = component(a)
        if ca is None:
            continue
        for b, syms in callees.items():
            cb = component(b)
            if cb is None or COMPONENTS.index(cb) > COMPONENTS.index(ca):
                bad.append(f"{a} ({ca}) calls {b} ({cb or b.split('/')[0]}):"
                           f" {', '.join(sorted(syms))}")
    return sorted(bad)


def cycles(graph, nodes=None):
    """The strongly connected sets of more than one file (Tarjan)."""
    nodes = sorted(set(graph) | {b for c in graph.values() for b in c}
                   if nodes is None else nodes)
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, {}):
            if w not in nodes:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            scc = []
            while True:
                w = stack.pop()
                on.discard(w)
                scc.append(w)
                if w == v:
                    break
            if len(scc) > 1:
                out.append(sorted(scc))

    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))
    for v in nodes:
        if v not in index:
            visit(v)
    return sorted(out)


def describe(graph, scc):
    def syms(a, b):
        names = sorted(graph[a][b])
        more = f" (+{len(names) - 3})" if len(names) > 3 else ""
        return ", ".join(names[:3]) + more
    return [f"{a} -> {b}: {syms(a, b)}"
            for a in scc for b in sorted(graph.get(a, {})) if b in scc]


def _show(found, graph):
    return "\n" + "\n".join(
        "cycle " + " <-> ".join(c) + "\n    " + "\n    ".join(
            describe(graph, c)) for c in found)


def component_graph(graph):
    edges = defaultdict(set)
    for a, callees in graph.items():
        for b in callees:
            ca, cb = component(a), component(b)
            if ca and cb and ca != cb:
                edges[ca].add(cb)
    return edges


# --- includes ---------------------------------------------------------------

INCLUDE = re.compile(r'^\s*#\s*include\s*[<"]([\w.]+)/([\w.]+\.h)[>"]', re.M)


def include_faults(files):
    """Outside a component, only its public header; in lib/, only of its
    own or a lower component; a *_testing.h never outside tests/."""
    bad = []
    for path in files:
        rel = str(path.relative_to(ROOT))
        own = component(rel[len("lib/"):]) if rel.startswith("lib/") else None
        for comp, header in INCLUDE.findall(path.read_text()):
            if comp not in COMPONENTS or comp == own:
                continue
            name = f"{comp}/{header}"
            if name != PUBLIC[comp]:
                bad.append(f"{rel} includes {name}, not {PUBLIC[comp]}")
            if own and COMPONENTS.index(comp) > COMPONENTS.index(own):
                bad.append(f"{rel} ({own}) includes {name}: a higher "
                           f"component")
        for m in re.findall(r'#\s*include\s*[<"]([\w./]*_testing\.h)[>"]',
                            path.read_text()):
            if own is None or not m.split("/")[-1].startswith(own):
                bad.append(f"{rel} includes {m}: for the unit tests only")
    return sorted(bad)


def _sources():
    return sorted(list(LIB.glob("*/*.[ch]")) + list(LIB.glob("*.h"))
                  + list(GLUE.glob("*.[ch]")) + list(TOOLS.glob("*.[ch]")))


# --- the tests --------------------------------------------------------------

@pytest.fixture(scope="module")
def graph():
    with tempfile.TemporaryDirectory() as tmp:
        objs = {**lib_objects(), **glue_objects(), **tool_objects(tmp)}
        return call_graph(objs)


def test_components_are_declared():
    on_disk = sorted(p.name for p in LIB.iterdir() if p.is_dir())
    assert on_disk == sorted(COMPONENTS), \
        "a lib/ folder is a component: give it its place in COMPONENTS"
    for comp, header in PUBLIC.items():
        assert (LIB / header).is_file(), header


def test_nothing_in_lib_calls_up(graph):
    # the scan sees what it must see, so that an empty result means something
    assert "core/util" in graph["policy/policy"]
    assert "audit/audit" in graph["verify/auditverify"]
    assert any(b.startswith("policy/") for b in graph["glue/decide"])
    bad = upward(graph)
    assert bad == [], "\n" + "\n".join(bad)


def test_no_file_cycle_in_lib(graph):
    """No two files of lib/ call each other round a circle: within a
    component too, calls flow one way (the Redis session's parts return
    what they decided to session.c instead of calling up into it)."""
    assert "redis/sessionio" in graph["redis/session"]
    lib = [n for n in graph if component(n)] + \
        [b for c in graph.values() for b in c if component(b)]
    found = cycles(graph, set(lib))
    assert found == [], _show(found, graph)


def test_no_file_cycle_in_a_tool(graph):
    """A tool's files call down from its main file (credit-NAME.c) to its
    commands and their helpers, never round in a circle."""
    assert "tools/audit_stream" in graph["tools/credit-audit"]
    tools = {n for n in graph if n.startswith("tools/")} | \
        {b for c in graph.values() for b in c if b.startswith("tools/")}
    found = cycles(graph, tools)
    assert found == [], _show(found, graph)


def test_only_public_headers_cross_a_component():
    bad = include_faults(_sources())
    assert bad == [], "\n" + "\n".join(bad)


def test_the_checks_catch_an_upward_call_and_a_cycle():
    g = {"core/util": {"policy/policy": {"ca_policy_load"}},
         "jws/keys": {"jws/jwk": {"ca_jwk_to_pkey"}},
         "jws/jwk": {"jws/keys": {"ca_alg_name"}},
         "audit/audit": {"glue/access": {"ngx_http_credit_auth_x"}}}
    assert upward(g) == [
        "audit/audit (audit) calls glue/access (glue): "
        "ngx_http_credit_auth_x",
        "core/util (core) calls policy/policy (policy): ca_policy_load"]
    assert cycles(g) == [["jws/jwk", "jws/keys"]]
    assert describe(g, ["jws/jwk", "jws/keys"]) == [
        "jws/jwk -> jws/keys: ca_alg_name",
        "jws/keys -> jws/jwk: ca_jwk_to_pkey"]


def test_the_include_check_catches_a_private_header(tmp_path, monkeypatch):
    lib = tmp_path / "lib"
    (lib / "jws").mkdir(parents=True)
    bad = lib / "jws" / "x.c"
    bad.write_text('#include "policy/treat.h"\n#include "core/util.h"\n'
                   '#include "audit/audit_testing.h"\n')
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert include_faults([bad]) == [
        "lib/jws/x.c (jws) includes audit/audit_testing.h: a higher "
        "component",
        "lib/jws/x.c (jws) includes policy/treat.h: a higher component",
        "lib/jws/x.c includes audit/audit_testing.h, not audit/audit.h",
        "lib/jws/x.c includes audit/audit_testing.h: for the unit tests "
        "only",
        "lib/jws/x.c includes core/util.h, not core/core.h",
        "lib/jws/x.c includes policy/treat.h, not policy/policy.h"]


# --- docs/hacking.md's map -------------------------------------------------

def _map_section(text, title):
    m = re.search(rf"^### {re.escape(title)}\b.*$", text, re.M)
    assert m, f"docs/hacking.md has no '### {title}' in its map"
    end = re.compile(r"^##", re.M).search(text, m.end())
    return text[m.end():end.start() if end else len(text)]


def map_faults(text):
    """Each component's section lists its .c files (and may list a
    header-only part), the glue's and the tools' sections theirs; nothing
    listed is gone."""
    bad = []
    sections = [(c, LIB / c, "") for c in COMPONENTS] + \
        [("glue", GLUE, "ngx_http_credit_auth_"), ("tools", TOOLS, "")]
    for title, folder, prefix in sections:
        named = set(re.findall(r"`([\w.-]+\.[ch])`",
                               _map_section(text, title)))
        on_disk = {p.name[len(prefix):] for p in folder.glob("*.c")}
        for name in sorted(on_disk - named):
            bad.append(f"{title}: {name} is not on the map")
        for name in sorted(named):
            if not (folder / (prefix + name)).exists():
                bad.append(f"{title}: {name} is on the map, not on disk")
    return bad


def test_the_map_names_every_file():
    text = (ROOT / "docs" / "hacking.md").read_text()
    bad = map_faults(text)
    assert bad == [], "\n" + "\n".join(bad)
    assert "docs/hacking.md" in (ROOT / "README.md").read_text()


def test_the_map_check_catches_a_missing_and_a_stale_file():
    text = (ROOT / "docs" / "hacking.md").read_text()
    before = set(map_faults(text))
    text = text.replace("| `auditqueue.c` |", "| `auditq.c` |")
    assert sorted(set(map_faults(text)) - before) == [
        "audit: auditq.c is on the map, not on disk",
        "audit: auditqueue.c is not on the map"]


# --- the closing note's numbers ---------------------------------------------

def _functions(path):
    """(lines, name) of each function defined at column 0."""
    out, start, name = [], None, None
    lines = path.read_text().splitlines()
    for i, line in enumerate(lines):
        if line.startswith("{") and start is None:
            for back in range(i - 1, max(i - 6, -1), -1):
                m = re.match(r"^(?:[\w*]+[ *]+)*?(\w+)\(", lines[back])
                if m:
                    name = m.group(1)
                    break
            start = i
        elif line.startswith("}") and start is not None:
            out.append((i - start + 1, name))
            start = None
    return out


def report():
    with tempfile.TemporaryDirectory() as tmp:
        g = call_graph({**lib_objects(), **glue_objects(),
                        **tool_objects(tmp)})
    print("component graph (a -> the lower components it calls):")
    cg = component_graph(g)
    for comp in reversed(COMPONENTS):
        print(f"  {comp:7s} -> {', '.join(sorted(cg.get(comp, ()), key=COMPONENTS.index)) or '-'}")
    glue = {component(b) for a, c in g.items() if a.startswith("glue/")
            for b in c if component(b)}
    tools = {component(b) for a, c in g.items() if a.startswith("tools/")
             for b in c if component(b)}
    print(f"  glue    -> {', '.join(sorted(glue, key=COMPONENTS.index))}")
    print(f"  tools   -> {', '.join(sorted(tools, key=COMPONENTS.index))}")
    nodes = {n for n in g} | {b for c in g.values() for b in c}
    found = cycles(g, {n for n in nodes if not n.startswith("glue/")})
    print(f"file cycles in lib/ and tools/: {len(found)}")
    for c in found:
        print("  " + " <-> ".join(c))
    files = sorted(_sources_c(), key=lambda p: -len(p.read_text().splitlines()))
    print("largest files:")
    for p in files[:8]:
        print(f"  {len(p.read_text().splitlines()):5d} {p.relative_to(ROOT)}")
    funcs = sorted(((n, f"{p.relative_to(ROOT)} {name}")
                    for p in _sources_c() for n, name in _functions(p)),
                   reverse=True)
    print(f"functions: {len(funcs)}, over 80 lines: "
          f"{sum(1 for n, _ in funcs if n > 80)}; largest:")
    for n, what in funcs[:8]:
        print(f"  {n:5d} {what}")


def _sources_c():
    return sorted(list(LIB.glob("*/*.c")) + list(GLUE.glob("*.c"))
                  + list(TOOLS.glob("*.c")))


if __name__ == "__main__":
    report()
