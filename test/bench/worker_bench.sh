#!/usr/bin/env bash
# test/bench/worker_bench.sh -- external workers beside executors. Prints
# figures; it is not a pass/fail test (no timed assertions) and not part of
# the test suite. See test/bench/README.md.
#
# Builds and installs the extension and agentorch-worker (into AO_PG_ROOT's
# server copy, like scripts/test.sh; AO_BENCH_NO_BUILD=1 uses what is
# installed), starts a throwaway cluster (synchronous_commit on) and the
# bundled mock LLM server on 127.0.0.1, and measures the same load twice:
#   executors: agentorch.network_steps = executors, the two executors
#              (agentorch.max_workers = 2) stream the replies;
#   workers:   agentorch.network_steps = workers, two agentorch-worker
#              processes (--concurrency 600 each) stream them.
# The load: N (default 1000) simple runs started in one statement, each an
# llm step whose reply starts after 500 ms and streams 50 tokens. The clock
# runs from the start statement until the last run is seen finished.
#
# Environment: AO_PG_ROOT (a server copy, default /), AO_BENCH_NO_BUILD=1,
# AO_BENCH_N (runs, default 1000), AO_BENCH_LATENCY_MS (default 500).
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_DIR/../../scripts/lib.sh"

N=${AO_BENCH_N:-1000}
LATENCY_MS=${AO_BENCH_LATENCY_MS:-500}

if [ "${AO_BENCH_NO_BUILD:-0}" != 1 ]; then
    ao_build_install
fi
WORKER_BIN=$PG_BIN/agentorch-worker
[ -x "$WORKER_BIN" ] || { ao_log "$WORKER_BIN is missing (make install)"; exit 1; }

DIR=$(mktemp -d /tmp/agentorch-worker-bench.XXXXXX)
chmod 755 "$DIR"
PIDS=()
cleanup() {
    set +e
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    ao_cluster_stop "$DIR"
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

WORDS=$(seq -f 'w%g' 1 50 | paste -sd' ')
cat >"$DIR/script.json" <<JSON
{"include_builtin": false, "rules": [
  {"name": "bench", "latency_ms": $LATENCY_MS, "reply": {"text": "$WORDS"}}
]}
JSON
python3 "$AO_REPO/test/mock_llm/mock_llm.py" --port 0 --script "$DIR/script.json" >"$DIR/mock.out" 2>"$DIR/mock.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q 'listening on' "$DIR/mock.out" && break; sleep 0.1; done
MOCK_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$DIR/mock.out")
[ -n "$MOCK_PORT" ] || { ao_log "the mock did not start"; exit 1; }

PORT=$(ao_free_port)
ao_cluster_start "$DIR" "$PORT" "fsync = on" "synchronous_commit = on" "max_connections = 100" \
    "agentorch.max_workers = 2" "agentorch.network_steps = 'executors'"
psql() { ao_as_pg "$PG_BIN/psql" -h "$DIR" -p "$PORT" -U postgres -d postgres -XAtq -v ON_ERROR_STOP=1 "$@"; }
psql -c "CREATE EXTENSION agentorch" \
     -c "SELECT agentorch.register_model('bench', 'openai', '{\"base_url\": \"http://127.0.0.1:$MOCK_PORT/v1\", \"model\": \"m\"}')"

# measure LABEL: N runs in one statement, until the last has finished; prints a line.
measure() {
    local label=$1 t0 t1 first
    first=$(psql -c "SELECT COALESCE(max(id), 0) + 1 FROM agentorch.runs")
    t0=$(date +%s.%N)
    psql -c "SELECT count(agentorch.start(jsonb_build_object('prompt', 'bench ' || g), 'simple', NULL, '{\"model\": \"bench\"}'))
             FROM generate_series(1, $N) g" >/dev/null
    while [ "$(psql -c "SELECT count(*) FROM agentorch.runs WHERE id >= $first AND status IN ('pending', 'running', 'waiting')")" != 0 ]; do
        sleep 0.05
    done
    t1=$(date +%s.%N)
    local ok tokens
    ok=$(psql -c "SELECT count(*) FROM agentorch.runs WHERE id >= $first AND status = 'succeeded'")
    tokens=$(psql -c "SELECT count(*) FROM agentorch.chunks WHERE run_id >= $first AND kind = 'token'")
    awk -v l="$label" -v a="$t0" -v b="$t1" -v n="$N" -v ok="$ok" -v tk="$tokens" 'BEGIN {
        w = b - a; printf "%-32s %4d runs, %4d succeeded, %6.2f s wall, %7.1f runs/s, %6d token chunks\n", l, n, ok, w, n / w, tk }'
}

ao_log "load: $N concurrent simple runs, ${LATENCY_MS} ms to the first byte, 50 tokens each"
measure "two executors"

psql -c "ALTER SYSTEM SET agentorch.network_steps = 'workers'" -c "SELECT pg_reload_conf()" >/dev/null
psql -c "CREATE ROLE bench_worker LOGIN" -c "DO \$\$ DECLARE f regprocedure; BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_proc p WHERE p.pronamespace = 'agentorch'::regnamespace
              AND p.proname IN ('_worker_register', '_worker_claim', '_worker_heartbeat', '_worker_flush',
                                '_worker_settle', '_worker_call_tools', '_worker_fallback', '_worker_exit')
    LOOP EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO bench_worker', f); END LOOP; END \$\$"
# the workers are plain clients: started as this user (so cleanup can stop them)
for w in 1 2; do
    "$WORKER_BIN" "host=$DIR port=$PORT dbname=postgres user=bench_worker" --name "bench$w" \
        --concurrency 600 2>"$DIR/worker$w.log" &
    PIDS+=($!)
done
while [ "$(psql -c "SELECT count(*) FROM agentorch.workers WHERE name LIKE 'bench_'")" != 2 ]; do sleep 0.1; done
measure "two agentorch-worker processes"
