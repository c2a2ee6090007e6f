#!/usr/bin/env bash
# scripts/test.sh -- the test command: every suite, one closing line.
#
# Installs missing Debian packages (when root), builds and installs the
# extension with assertions (-DUSE_ASSERT_CHECKING), then runs: the layering
# check of src/ (check_layers.sh), the format check (check_format.sh), unit
# tests of the core (plain and under AddressSanitizer +
# UndefinedBehaviorSanitizer, the JSON-Schema-Test-Suite among them),
# pg_regress, pg_isolation_regress, TAP (prove), the mock LLM server's wire
# tests, the graph renderings and, last, the Debian package (scripts/test_deb.sh:
# builds postgresql-15-agentorch, installs it into the system's PostgreSQL,
# runs the README's quick start on it, then removes it and puts back the
# files it replaced; with AO_PG_ROOT set it only builds and checks the
# package). Servers are throwaway clusters run as the postgres OS user.
# Ends with "N passed, N failed"; exits non-zero on any failure.
# Usage: scripts/test.sh [suite...]   (layers format unit regress isolation tap mock graphs deb)
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SUITES=${*:-layers format unit regress isolation tap mock graphs deb}
TOTAL_PASS=0
TOTAL_FAIL=0
SUMMARY=()
START=$(date +%s)

# record SUITE PASSED FAILED
record() {
    TOTAL_PASS=$((TOTAL_PASS + $2)); TOTAL_FAIL=$((TOTAL_FAIL + $3))
    SUMMARY+=("$(printf '%-10s %5d passed, %d failed' "$1" "$2" "$3")")
}

# count_tap FILE: "passed failed" from TAP lines (a missing plan counts as a failure).
count_tap() {
    local p f
    p=$(grep -cE '^ok ' "$1"); f=$(grep -cE '^not ok ' "$1")
    grep -qE '^1\.\.[0-9]+' "$1" || f=$((f + 1))
    echo "$p $f"
}

ao_install_deps || exit 1
case " $SUITES " in *" mock "*|*" graphs "*) ao_install_node || true ;; esac
# the suites run against an assertion-enabled build (USE_ASSERT_CHECKING)
AO_CFLAGS="${AO_CFLAGS:--Werror} -DUSE_ASSERT_CHECKING" ao_build_install \
    || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }

WORK=$(mktemp -d /tmp/agentorch-test.XXXXXX)
chmod 755 "$WORK"
# Test inputs are copied where the postgres user can read and write them.
mkdir -p "$WORK/src"
cp -r "$AO_REPO/sql" "$AO_REPO/expected" "$AO_REPO/test" "$AO_REPO/samples" "$AO_REPO/README.md" "$WORK/src/"
chown -R postgres: "$WORK"

suite_layers() {
    ao_log "layers (no upward #include, PostgreSQL-free core, no include cycle)"
    local out="$WORK/layers.tap" p f
    bash "$AO_REPO/scripts/check_layers.sh" >"$out" 2>&1; local rc=$?
    read -r p f < <(count_tap "$out"); [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    [ "$f" -gt 0 ] && grep -v '^ok' "$out" | head -40
    record layers "$p" "$f"
}

suite_format() {
    ao_log "format (tabs, no trailing whitespace, file headers, line length)"
    local out="$WORK/format.tap" p f
    bash "$AO_REPO/scripts/check_format.sh" >"$out" 2>&1; local rc=$?
    read -r p f < <(count_tap "$out"); [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    [ "$f" -gt 0 ] && grep -v '^ok' "$out" | head -40
    record format "$p" "$f"
}

suite_unit() {
    ao_log "unit tests (plain and sanitized)"
    make -s -C "$AO_REPO/test/unit" >/dev/null && make -s -C "$AO_REPO/test/unit" SANITIZE=1 >/dev/null \
        || { record unit 0 1; return; }
    local p=0 f=0 t out c
    for t in "$AO_REPO"/build/unit/test_* "$AO_REPO"/build/unit-asan/test_*; do
        out="$WORK/unit-$(basename "$(dirname "$t")")-$(basename "$t").tap"
        "$t" >"$out" 2>&1; local rc=$?
        read -r cp cf < <(count_tap "$out")
        [ $rc -ne 0 ] && [ "$cf" -eq 0 ] && cf=1
        p=$((p + cp)); f=$((f + cf))
        [ "$cf" -gt 0 ] && { echo "--- $t"; grep -E '^not ok|^#' "$out" | head -40; tail -5 "$out"; }
        grep -E '^# draft7 suite' "$out" | sed 's/^# /    /'
    done
    record unit $p $f
}

# parse_pg_regress LOG: "passed failed" from pg_regress output.
parse_pg_regress() {
    local p f
    p=$(grep -cE '\.\.\. ok|\.\.\. ok \(' "$1")
    f=$(grep -cE '\.\.\. FAILED|\.\.\. failed' "$1")
    echo "$p $f"
}

suite_regress() {
    ao_log "pg_regress"
    local tests log
    tests=$(grep -vE '^\s*(#|$)' "$WORK/src/test/regress_schedule" | tr '\n' ' ')
    log="$WORK/regress.log"
    ao_as_pg "$PGXS_DIR/src/test/regress/pg_regress" \
        --temp-instance="$WORK/regress-instance" --temp-config="$WORK/src/test/agentorch-test.conf" \
        --inputdir="$WORK/src" --outputdir="$WORK/regress" --bindir="$PG_BIN" \
        --dbname=contrib_regression $tests >"$log" 2>&1
    local rc=$?
    cat "$log" | grep -E '^(test| |#|=)' | sed 's/^/    /' | head -80
    read -r p f < <(parse_pg_regress "$log")
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    [ -f "$WORK/regress/regression.diffs" ] && head -200 "$WORK/regress/regression.diffs"
    record regress "$p" "$f"
}

suite_isolation() {
    ao_log "pg_isolation_regress"
    local specs log
    specs=$(cd "$WORK/src/test/isolation/specs" && ls *.spec 2>/dev/null | sed 's/\.spec$//' | tr '\n' ' ')
    [ -z "$specs" ] && { record isolation 0 1; echo "no isolation specs"; return; }
    log="$WORK/isolation.log"
    ao_as_pg "$PGXS_DIR/src/test/isolation/pg_isolation_regress" \
        --temp-instance="$WORK/isolation-instance" --temp-config="$WORK/src/test/agentorch-isolation.conf" \
        --inputdir="$WORK/src/test/isolation" --outputdir="$WORK/isolation" --bindir="$PG_BIN" \
        --load-extension=agentorch --dbname=isolation_regression $specs >"$log" 2>&1
    local rc=$?
    grep -E '^(test| |#)' "$log" | sed 's/^/    /' | head -40
    read -r p f < <(parse_pg_regress "$log")
    [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    [ -f "$WORK/isolation/regression.diffs" ] && head -200 "$WORK/isolation/regression.diffs"
    record isolation "$p" "$f"
}

suite_tap() {
    ao_log "TAP (prove)"
    local log="$WORK/tap.log"
    (cd "$WORK/src/test" && ao_as_pg env PATH="$PG_BIN:$PATH" \
        PG_REGRESS="$PGXS_DIR/src/test/regress/pg_regress" \
        AO_SAMPLES="$WORK/src/samples" \
        prove -I "$PGXS_DIR/src/test/perl" -I t t/*.pl) >"$log" 2>&1
    local rc=$?
    sed 's/^/    /' "$log" | tail -30
    local total failed
    total=$(sed -nE 's/^Files=[0-9]+, Tests=([0-9]+),.*/\1/p' "$log" | tail -1)
    failed=$(sed -nE 's/.*Failed ([0-9]+)\/[0-9]+ subtests.*/\1/p' "$log" | awk '{s+=$1} END {print s+0}')
    total=${total:-0}; failed=${failed:-0}
    [ $rc -ne 0 ] && [ "$failed" -eq 0 ] && failed=1
    if [ $rc -ne 0 ]; then
        for f in "$WORK"/src/test/tmp_check/log/*.log; do [ -f "$f" ] && { echo "--- $f"; tail -30 "$f"; }; done
    fi
    record tap $((total - (failed > total ? total : failed))) "$failed"
}

suite_mock() {
    ao_log "mock LLM server wire tests"
    local p=0 f=0 out
    if [ -f "$AO_REPO/test/mock_llm/test_mock_raw.py" ]; then
        out="$WORK/mock-raw.tap"
        python3 "$AO_REPO/test/mock_llm/test_mock_raw.py" >"$out" 2>&1; local rc=$?
        read -r cp cf < <(count_tap "$out"); [ $rc -ne 0 ] && [ "$cf" -eq 0 ] && cf=1
        p=$((p + cp)); f=$((f + cf)); [ "$cf" -gt 0 ] && grep -E '^not ok|^#' "$out" | head -20
    fi
    if [ -f "$AO_REPO/test/mock_llm/run_sdk_test.sh" ]; then
        out="$WORK/mock-sdk.tap"
        bash "$AO_REPO/test/mock_llm/run_sdk_test.sh" >"$out" 2>&1; local rc=$?
        read -r cp cf < <(count_tap "$out"); [ $rc -ne 0 ] && [ "$cf" -eq 0 ] && cf=1
        p=$((p + cp)); f=$((f + cf)); [ "$cf" -gt 0 ] && tail -30 "$out"
    fi
    record mock $p $f
}

suite_graphs() {
    ao_log "graph rendering (Graphviz dot and the Mermaid parser)"
    local out="$WORK/graphs.tap"
    bash "$AO_REPO/test/graph_render/run.sh" >"$out" 2>&1; local rc=$?
    read -r p f < <(count_tap "$out"); [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    [ "$f" -gt 0 ] && tail -30 "$out"
    record graphs "$p" "$f"
}

# Last in the default list: it installs the package over the files installed above.
suite_deb() {
    ao_log "Debian package (build, apt-get install, the README's quick start)"
    local out="$WORK/deb.tap" p f
    bash "$AO_REPO/scripts/test_deb.sh" >"$out" 2>&1; local rc=$?
    read -r p f < <(count_tap "$out"); [ $rc -ne 0 ] && [ "$f" -eq 0 ] && f=1
    grep -E '^(ok|not ok)' "$out" | sed 's/^/    /'
    [ "$f" -gt 0 ] && grep -E '^#' "$out" | head -60
    record deb "$p" "$f"
}

for s in $SUITES; do "suite_$s"; done

echo
echo "Summary ($(( $(date +%s) - START ))s):"
for line in "${SUMMARY[@]}"; do echo "  $line"; done
echo "$TOTAL_PASS passed, $TOTAL_FAIL failed"
[ "$TOTAL_FAIL" -eq 0 ]
