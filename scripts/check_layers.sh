#!/usr/bin/env bash
# scripts/check_layers.sh -- the layering rule of src/, checked from the
# #include lines (run by scripts/test.sh as the "layers" suite, so CI fails
# on a violation).
#
# Every folder of src/ is a layer (src/README.md draws them). A file may
# include the headers of its own layer and of the layers below it, never
# one of a layer above it. src/core/ (with src/core/llm/) is
# PostgreSQL-free: it includes no PostgreSQL header at all. Headers of
# src/ include each other without a cycle.
#
# Prints one line per violation (file:line: message) and, last, TAP-like
# totals "ok N"/"not ok N"; exits non-zero on any violation.
# Usage: scripts/check_layers.sh [SRC_DIR]   (default: the repository's src)
set -uo pipefail
SRC=${1:-"$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/src"}

exec python3 - "$SRC" <<'EOF'
import os, re, sys

src = sys.argv[1]
# Top to bottom. A layer may include headers of itself and of later entries.
ORDER = ["init", "worker", "api", "coordinator", "selector", "orchestration", "runner",
         "state", "stream", "policy", "io", "shmem", "common", "settings", "core"]
RANK = {name: i for i, name in enumerate(ORDER)}
# PostgreSQL headers: the ones core/ must never include.
PG_HEADER = re.compile(r'^(postgres|postgres_fe|c|fmgr|funcapi|miscadmin|pgstat|pg_config|'
                       r'pg_config_manual|executor/spi|windowapi)\.h$|^(access|bootstrap|catalog|commands|'
                       r'common|executor|lib|libpq|mb|nodes|optimizer|parser|port|postmaster|'
                       r'replication|rewrite|storage|tcop|tsearch|utils|jit|partitioning|'
                       r'statistics|snowball)/')
INCLUDE = re.compile(r'^\s*#\s*include\s*([<"])([^>"]+)[>"]')


def layer_of(rel):
    """The layer of a path relative to src/, or None (programs, docs)."""
    parts = rel.split("/")
    if len(parts) == 1:
        base = parts[0]
        if base.startswith("init."):
            return "init"
        if base.startswith("guc."):
            return "settings"
        return None
    if parts[0] == "bin":
        return None
    return parts[0]


files = []
for root, dirs, names in os.walk(src):
    for n in sorted(names):
        if n.endswith((".c", ".h")):
            files.append(os.path.relpath(os.path.join(root, n), src))
files.sort()

errors = []
headers = {}
for rel in files:
    lay = layer_of(rel)
    if lay is None:
        continue
    if lay not in RANK:
        errors.append(f"src/{rel}:1: folder '{lay}' is not a known layer (add it to ORDER in scripts/check_layers.sh and to src/README.md)")
        continue
    if rel.endswith(".h"):
        base = os.path.basename(rel)
        if base in headers:
            errors.append(f"src/{rel}:1: header name '{base}' also used by src/{headers[base]} (names must be unique: includes use the name only)")
        headers[base] = rel

checked = 0
edges = {}
for rel in files:
    lay = layer_of(rel)
    if lay is None or lay not in RANK:
        continue
    with open(os.path.join(src, rel), encoding="utf-8", errors="replace") as fh:
        for lineno, line in enumerate(fh, 1):
            m = INCLUDE.match(line)
            if not m:
                continue
            checked += 1
            name = m.group(2)
            where = f"src/{rel}:{lineno}"
            if lay == "core" and PG_HEADER.search(name):
                errors.append(f"{where}: core/ is PostgreSQL-free but includes PostgreSQL header \"{name}\"")
                continue
            if m.group(1) != '"':
                continue
            target = headers.get(name) if "/" not in name else None
            if target is None:
                continue
            tlay = layer_of(target)
            if rel.endswith(".h"):
                edges.setdefault(rel, []).append((target, where))
            if RANK[tlay] < RANK[lay]:
                errors.append(f"{where}: layer '{lay}' includes \"{name}\" of the higher layer '{tlay}' "
                              f"(order, top to bottom: {' > '.join(ORDER)})")

# include cycles among src/ headers
state = {}
def visit(h, path):
    state[h] = 1
    for t, where in edges.get(h, []):
        if state.get(t) == 1:
            cyc = path[path.index(t):] + [t] if t in path else [h, t]
            errors.append(f"{where}: include cycle: {' -> '.join('src/' + c for c in cyc)}")
        elif state.get(t) is None:
            visit(t, path + [t])
    state[h] = 2
for h in sorted(edges):
    if state.get(h) is None:
        visit(h, [h])

for e in errors:
    print(e)
print(f"# {len(files)} files, {checked} #include lines checked, {len(errors)} violations")
print(f"1..1")
print(("ok" if not errors else "not ok") + " 1 - layers: no upward include, no PostgreSQL header in core/, no include cycle")
sys.exit(1 if errors else 0)
EOF
