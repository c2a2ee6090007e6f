#!/usr/bin/env bash
# test/graph_render/run.sh -- generate workflow graphs and prove they render.
#
# Usage: run.sh [OUTDIR]
#
# Builds gen_graphs (gen_graphs.c + every src/core/*.c and src/core/llm/*.c, like the unit
# tests) into build/graph_render, writes the Mermaid and dot graphs of
# samples/workflows/*.yaml and of gen_graphs' built-in workflows into
# OUTDIR (default: a temporary directory, removed afterwards), then runs
# render_check.sh on it. Works from any directory; prints TAP; exits
# non-zero on any failure. CC (default cc) picks the compiler.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
BUILD=$ROOT/build/graph_render
PKGS="json-c yaml-0.1 libpcre2-8"

fail() {
    echo "1..1"
    echo "not ok 1 - $1"
    exit 1
}

mkdir -p "$BUILD" || fail "cannot create $BUILD"
# shellcheck disable=SC2086
${CC:-cc} -std=gnu99 -O1 -g -Wall -Wextra -Wdeclaration-after-statement -Werror \
    -I"$ROOT/src/core" -I"$ROOT/src/core/llm" $(pkg-config --cflags $PKGS) \
    -o "$BUILD/gen_graphs" "$HERE/gen_graphs.c" "$ROOT"/src/core/*.c "$ROOT"/src/core/llm/*.c \
    $(pkg-config --libs $PKGS) >"$BUILD/gen_graphs.log" 2>&1 ||
    { sed 's/^/# /' "$BUILD/gen_graphs.log"; fail "gen_graphs builds"; }

if [ $# -ge 1 ]; then
    OUT=$1
    mkdir -p "$OUT" || fail "cannot create $OUT"
else
    OUT=$(mktemp -d "${TMPDIR:-/tmp}/agentorch-graphs.XXXXXX") || fail "cannot create a temporary directory"
    trap 'rm -rf "$OUT"' EXIT
fi

"$BUILD/gen_graphs" "$OUT" "$ROOT"/samples/workflows/*.yaml >"$BUILD/generated.log" 2>&1 ||
    { sed 's/^/# /' "$BUILD/generated.log"; fail "gen_graphs writes the graphs"; }
echo "# generated $(wc -l <"$BUILD/generated.log") graph files in $OUT"

"$HERE/render_check.sh" "$OUT"
