#!/usr/bin/env bash
# test/bench/engine_bench.sh -- the engine benchmark. Prints figures; it is
# not a pass/fail test (no timed assertions). See test/bench/README.md.
#
# Builds and installs the extension (scripts/lib.sh), starts a throwaway
# cluster with agentorch preloaded and durable commits (fsync on,
# synchronous_commit on, everything else default), and measures in one run:
#   1. throughput of no-op sql-tool workflows started in bulk: fan-out of 10,
#      chain of 10, single step (plus a parallel step of 10, for comparison)
#   2. end-to-end latency of one 10-step chain (start -> finished)
#   3. start -> first status notification at a LISTEN client
#   4. pgbench: the minimal durable step done one at a time (claim + complete)
#   5. the targets, each met or not met
# The cluster is stopped and removed on exit. About one minute.
#
# Environment:
#   AO_BENCH_NO_BUILD=1   use the installed extension as is (no build/install)
#   AO_BENCH_PROFILE=1    also preload pg_stat_statements (track = all) and
#                         print the statements where time went (perturbs figures)
#   AO_BENCH_KEEP=1       keep the cluster running at the end for exploration
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_DIR/../../scripts/lib.sh"

# sizes (bounded; the whole run stays well under three minutes)
N_FAN=${AO_BENCH_N_FAN:-500}          # runs of 10 independent steps
N_CHAIN=${AO_BENCH_N_CHAIN:-500}      # runs of a 10-step chain
N_SINGLE=${AO_BENCH_N_SINGLE:-3000}   # single-step runs
N_LAT=${AO_BENCH_N_LAT:-50}           # sequential 10-step chains, timed one by one
N_LISTEN=${AO_BENCH_N_LISTEN:-200}    # starts timed at a LISTEN client
N_FINISHED=${AO_BENCH_N_FINISHED:-0}  # finished runs added before a second latency phase (e.g. 1000000)
PGBENCH_SECONDS=${AO_BENCH_PGBENCH_SECONDS:-10}
PGBENCH_CLIENTS=4

# targets (from the issue)
TARGET_RATIO=2.5          # fan-out steps/s >= 2.5 x pgbench per-step steps/s
TARGET_CHAIN_MS=3         # one 10-step chain, median end to end, warm connection
TARGET_NEW_MS=5           # the same from a new connection
TARGET_FIRST_MS=2         # start -> first status chunk at a LISTEN client, median

ao_install_deps libpq-dev
if [ "${AO_BENCH_NO_BUILD:-0}" != 1 ]; then
    ao_build_install
fi

DIR=$(mktemp -d /tmp/agentorch-bench.XXXXXX)
chmod 755 "$DIR"
cleanup() {
    if [ "${AO_BENCH_KEEP:-0}" = 1 ]; then
        echo "cluster kept: psql -h $DIR -p ${PORT:-?} -U postgres   (stop: pg_ctl -D $DIR/data stop, as postgres)"
    else
        ao_cluster_stop "$DIR"
        rm -rf "$DIR"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# the timing client (libpq)
gcc -O2 -Wall -o "$DIR/ao_bench" "$BENCH_DIR/ao_bench.c" \
    -I"$("$PG_CONFIG" --includedir)" -L"$("$PG_CONFIG" --libdir)" -lpq

CONF=("fsync = on" "synchronous_commit = on")
if [ "${AO_BENCH_PROFILE:-0}" = 1 ]; then
    CONF+=("shared_preload_libraries = 'agentorch,pg_stat_statements'" "pg_stat_statements.track = all")
fi
PORT=$(ao_free_port)
ao_log "starting a throwaway cluster on 127.0.0.1:$PORT (fsync on, synchronous_commit on)"
ao_cluster_start "$DIR" "$PORT" "${CONF[@]}"

PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres)
CONNINFO="host=$DIR port=$PORT user=postgres dbname=postgres"
BENCH=(timeout 150 "$DIR/ao_bench" "$CONNINFO")

"${PSQL[@]}" -c "CREATE EXTENSION agentorch"
[ "${AO_BENCH_PROFILE:-0}" = 1 ] && "${PSQL[@]}" -c "CREATE EXTENSION pg_stat_statements"
"${PSQL[@]}" -f "$BENCH_DIR/setup.sql" >/dev/null

# executors up (bounded wait)
for _ in $(seq 1 100); do
    n=$("${PSQL[@]}" -At -c "SELECT value FROM agentorch.metrics() WHERE name = 'executors'")
    [ "${n%.*}" -ge 1 ] 2>/dev/null && break
    sleep 0.1
done

# value of key in the RESULT lines of a client's output
res() {
    local v
    v=$(printf '%s\n' "$1" | grep '^RESULT' | tr ' ' '\n' | sed -n "s/^$2=//p" | tail -1)
    echo "${v:-0}"
}
show() { printf '%s\n' "$1" | grep -v '^RESULT' || true; }
# fresh statistics and no dead rows left by the previous phase
vacuum() { "${PSQL[@]}" -c "VACUUM ANALYZE agentorch.runs, agentorch.steps, agentorch.events, agentorch.chunks, agentorch.checkpoints"; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
verdict() { awk "BEGIN { exit !($1) }" && echo "met" || echo "not met"; }

echo
echo "agentorch engine benchmark -- $(date -u '+%Y-%m-%d %H:%M UTC'), commit $(git -C "$AO_REPO" rev-parse --short HEAD 2>/dev/null || echo '?')$(git -C "$AO_REPO" diff --quiet 2>/dev/null || echo ' (with local changes)')"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
"${PSQL[@]}" -At -F' ' -c "SELECT 'server: PostgreSQL ' || current_setting('server_version') ||
    ', fsync=' || current_setting('fsync') || ', synchronous_commit=' || current_setting('synchronous_commit') ||
    ', agentorch.max_workers=' || current_setting('agentorch.max_workers') ||
    ', agentorch.batch_size=' || current_setting('agentorch.batch_size') ||
    ', executors running: ' || (SELECT value FROM agentorch.metrics() WHERE name = 'executors')"
[ "${AO_BENCH_PROFILE:-0}" = 1 ] && echo "PROFILE MODE: pg_stat_statements.track = all is on; figures are lower than without it"

# The baseline's own tables (section 4; section 2 times its step from new connections too)
"${PSQL[@]}" -v rows=400000 -f "$BENCH_DIR/pgbench_setup.sql" >/dev/null 2>&1
"${PSQL[@]}" -c "CHECKPOINT" >/dev/null

# Warm-up: executors start "careful" (their first batch_size batches commit
# an attempt record before each step, one step per batch: crash-loop
# protection); a few hundred runs get them past it and warm the caches.
out=$("${BENCH[@]}" throughput bench_single 300 1 60)
[ "${AO_BENCH_PROFILE:-0}" = 1 ] && "${PSQL[@]}" -c "SELECT pg_stat_statements_reset()" >/dev/null

echo
echo "== 1. throughput: runs started in bulk (one transaction), measured until the last one finished"
vacuum
out=$("${BENCH[@]}" throughput bench_fan10 "$N_FAN" 10 90); show "$out"
FAN_STEPS=$(res "$out" steps_per_s); FAN_RUNS=$(res "$out" runs_per_s)
FAN_CPU=$(res "$out" exec_cpu_ms_per_step); START_CPU=$(res "$out" start_cpu_ms_per_run)
FAN_WAL=$(calc "$(res "$out" wal_bytes) / ($(res "$out" succeeded) * 10 + 1)" 0)
FAN_PER_COMMIT=$(calc "$(res "$out" succeeded) * 10 / ($(res "$out" commits) + 0.0001)" 1)
vacuum
out=$("${BENCH[@]}" throughput bench_par10 "$N_FAN" 10 90); show "$out"
PAR_STEPS=$(res "$out" steps_per_s)
vacuum
out=$("${BENCH[@]}" throughput bench_chain10 "$N_CHAIN" 10 90); show "$out"
CHAIN_STEPS=$(res "$out" steps_per_s); CHAIN_RUNS=$(res "$out" runs_per_s)
CHAIN_CPU=$(res "$out" exec_cpu_ms_per_step)
vacuum
out=$("${BENCH[@]}" throughput bench_single "$N_SINGLE" 1 90); show "$out"
SINGLE_RUNS=$(res "$out" runs_per_s); SINGLE_START_MS=$(res "$out" start_ms); SINGLE_S=$(res "$out" elapsed_s)
SINGLE_CPU=$(res "$out" exec_cpu_ms_per_step); SINGLE_START_CPU=$(res "$out" start_cpu_ms_per_run)
vacuum
echo "   -- the same single-step runs started by one start_many() call:"
out=$("${BENCH[@]}" throughput many:bench_single "$N_SINGLE" 1 90); show "$out"
MANY_RUNS=$(res "$out" runs_per_s); MANY_START_MS=$(res "$out" start_ms); MANY_S=$(res "$out" elapsed_s)
MANY_START_CPU=$(res "$out" start_cpu_ms_per_run)
# what each single-step run writes: rows per table
ROWS=$("${PSQL[@]}" -At -F' ' -c "WITH r AS (SELECT id FROM agentorch.runs ORDER BY id DESC LIMIT 100)
  SELECT round((SELECT count(*) FROM agentorch.steps WHERE run_id IN (SELECT id FROM r)) / 100.0, 1),
         round((SELECT count(*) FROM agentorch.events WHERE run_id IN (SELECT id FROM r)) / 100.0, 1),
         round((SELECT count(*) FROM agentorch.chunks WHERE run_id IN (SELECT id FROM r)) / 100.0, 1),
         round((SELECT count(*) FROM agentorch.checkpoints WHERE run_id IN (SELECT id FROM r)) / 100.0, 1),
         round((SELECT count(*) FROM agentorch.audit_log WHERE run_id IN (SELECT id FROM r)) / 100.0, 1)")

echo
echo "== 2. latency: one 10-step chain, start -> finished, $N_LAT times sequentially"
echo "   (run_workflow commits on its own, then agentorch.wait; both timed -- the start must commit"
echo "    before an executor can see the run, so they cannot share one statement)"
vacuum
out=$("${BENCH[@]}" latency bench_chain10 "$N_LAT"); show "$out"
LAT_MED=$(res "$out" e2e_median_ms); LAT_P95=$(res "$out" e2e_p95_ms)
first=$(res "$out" first_id); last=$(res "$out" last_id)
# where the time of a chain goes, from the events' clock_timestamp()s
"${PSQL[@]}" -At -F' ' -v first="$first" -v last="$last" <<'SQL' | while read -r a b c; do
WITH e AS (
    SELECT run_id,
           max(at) FILTER (WHERE kind = 'run_started') AS t_start,
           min(at) FILTER (WHERE kind = 'step_succeeded') AS t_first,
           max(at) FILTER (WHERE kind = 'run_succeeded') AS t_done
      FROM agentorch.events WHERE run_id BETWEEN :first AND :last GROUP BY run_id)
SELECT round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t_first - t_start) * 1000)::numeric, 2),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t_done - t_first) * 1000 / 9)::numeric, 2),
       round(percentile_cont(0.5) WITHIN GROUP (ORDER BY extract(epoch FROM t_done - t_start) * 1000)::numeric, 2)
  FROM e WHERE t_done IS NOT NULL
SQL
    echo "   where it goes (medians, from event timestamps):"
    echo "     run_started event -> 1st step done (start's commit, wake-up, claim, step 1): $a ms"
    echo "     each further step inside the executor's transaction:                      $b ms"
    echo "     run_started event -> run_succeeded event:                                 $c ms"
    echo "     the rest (client round trips, executor commit, wait() waking): ~$(calc "$LAT_MED - $c") ms"
done
out=$("${BENCH[@]}" latency bench_single "$N_LAT")
echo "   for comparison, a single-step run: median $(res "$out" e2e_median_ms) ms, p95 $(res "$out" e2e_p95_ms) ms"
out=$("${BENCH[@]}" latency_new bench_chain10 "$N_LAT"); show "$out"
NEW_MED=$(res "$out" e2e_median_ms); NEW_P95=$(res "$out" e2e_p95_ms)
BASE_NEW=$(res "$out" base_new_median_ms); BASE_WARM=$(res "$out" base_warm_median_ms)
echo "   PostgreSQL's own cost of a new session (the baseline's step, new - warm): $(calc "$BASE_NEW - $BASE_WARM") ms"
if [ "${N_FINISHED}" -gt 0 ]; then
    echo "   -- with $N_FINISHED finished runs in the tables (each: a run, a step, 3 events, 3 chunks):"
    "${PSQL[@]}" -v n="$N_FINISHED" <<'SQL'
INSERT INTO agentorch.runs (id, orchestration, status, workflow_name, input, options, owner, started_at, finished_at, output)
SELECT -g, 'fixed', 'succeeded', 'bench_single', '{}', '{}', 10, now() - interval '1 day', now() - interval '1 day', '{}'
  FROM generate_series(1, :n) g;
INSERT INTO agentorch.steps (run_id, step_id, kind, spec, status, output, finished_at)
SELECT -g, 's1', 'tool', '{"id": "s1", "type": "tool", "tool": "bench.noop"}', 'succeeded', '[]', now() - interval '1 day'
  FROM generate_series(1, :n) g;
INSERT INTO agentorch.events (run_id, seq, kind, step_id)
SELECT -g, e, (ARRAY['run_started', 'step_succeeded', 'run_succeeded'])[e], NULL FROM generate_series(1, :n) g, generate_series(1, 3) e;
INSERT INTO agentorch.chunks (run_id, seq, step_id, attempt, kind, content)
SELECT -g, e, NULL, 0, 'status', 'x' FROM generate_series(1, :n) g, generate_series(1, 3) e;
SQL
    vacuum
    # the inserts' dirty pages are written out first, so the writes of a
    # checkpoint do not slow the commits being timed
    "${PSQL[@]}" -c "CHECKPOINT"
    out=$("${BENCH[@]}" latency bench_chain10 "$N_LAT"); show "$out"
    BIG_MED=$(res "$out" e2e_median_ms)
    "${PSQL[@]}" -c "DELETE FROM agentorch.runs WHERE id < 0"
    vacuum
fi

echo
echo "== 3. start -> first status notification at a LISTEN client, $N_LISTEN starts"
echo "   (LISTEN agentorch_events; the run_started payload carries the run id; timed from just before"
echo "    sending run_workflow('bench_single') on another connection; next start after the run finished)"
out=$("${BENCH[@]}" listen bench_single "$N_LISTEN"); show "$out"
FIRST_MED=$(res "$out" first_median_ms); FIRST_P95=$(res "$out" first_p95_ms)

echo
echo "== 4. pgbench: one durable step at a time (claim txn + completion txn with event row and NOTIFY)"
echo "   own tables (bench_step, bench_event), $PGBENCH_CLIENTS clients, ${PGBENCH_SECONDS} s; script: test/bench/pgbench_step.sql"
"${PSQL[@]}" -v rows=400000 -f "$BENCH_DIR/pgbench_setup.sql" >/dev/null 2>&1   # fresh: section 2 used some
"${PSQL[@]}" -c "CHECKPOINT" >/dev/null
pgb=$(timeout $((PGBENCH_SECONDS + 60)) "$PG_BIN/pgbench" -n -c "$PGBENCH_CLIENTS" -j "$PGBENCH_CLIENTS" \
      -T "$PGBENCH_SECONDS" -f "$BENCH_DIR/pgbench_step.sql" -h "$DIR" -p "$PORT" -U postgres postgres 2>&1) || true
printf '%s\n' "$pgb" | grep -E '^(number of (transactions actually processed|failed)|latency average|tps)' | sed 's/^/  /'
PGB_STEPS=$(printf '%s\n' "$pgb" | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | tail -1)
PGB_STEPS=${PGB_STEPS:-0}

if [ "${AO_BENCH_PROFILE:-0}" = 1 ]; then
    echo
    echo "== profile: statements by total time (all phases after warm-up; nested statements included)"
    "${PSQL[@]}" -c "SELECT round(total_exec_time::numeric) AS ms, calls,
        round((total_exec_time / calls)::numeric, 3) AS ms_per_call,
        left(regexp_replace(query, '\s+', ' ', 'g'), 90) AS query
      FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%' AND query NOT LIKE 'VACUUM%'
      ORDER BY total_exec_time DESC LIMIT 25"
fi

RATIO=$(calc "$FAN_STEPS / ($PGB_STEPS > 0 ? $PGB_STEPS : 1)")
echo
echo "== summary (durable commits: fsync on, synchronous_commit on)"
printf '  %-60s %10s\n' "fan-out of 10 (ten independent steps): steps/s" "$(calc "$FAN_STEPS" 0)"
printf '  %-60s %10s\n' "fan-out of 10 (ten independent steps): runs/s" "$(calc "$FAN_RUNS" 0)"
printf '  %-60s %10s\n' "fan-out of 10 (one parallel step, 10 children): steps/s" "$(calc "$PAR_STEPS" 0)"
printf '  %-60s %10s\n' "chain of 10: steps/s" "$(calc "$CHAIN_STEPS" 0)"
printf '  %-60s %10s\n' "chain of 10: runs/s" "$(calc "$CHAIN_RUNS" 0)"
printf '  %-60s %10s   (%s of %s s were the start statement)\n' "single-step runs: runs/s (= steps/s)" "$(calc "$SINGLE_RUNS" 0)" \
    "$(calc "$SINGLE_START_MS / 1000")" "$(calc "$SINGLE_S")"
printf '  %-60s %10s   (%s of %s s were the start statement)\n' "single-step runs by start_many(): runs/s" "$(calc "$MANY_RUNS" 0)" \
    "$(calc "$MANY_START_MS / 1000")" "$(calc "$MANY_S")"
printf '  %-60s %10s\n' "pgbench per-step, $PGBENCH_CLIENTS clients: steps/s" "$(calc "$PGB_STEPS" 0)"
echo
printf '  %-48s %10s   %-22s %s\n' "figure" "measured" "target" "verdict"
printf '  %-48s %10s   %-22s %s\n' "fan-out steps/s / pgbench per-step steps/s" "${RATIO}x" ">= ${TARGET_RATIO}x" \
    "$(verdict "$RATIO >= $TARGET_RATIO")"
printf '  %-48s %10s   %-22s %s\n' "10-step chain e2e, median (p95 $(calc "$LAT_P95") ms)" "$(calc "$LAT_MED") ms" \
    "<= $TARGET_CHAIN_MS ms" "$(verdict "$LAT_MED <= $TARGET_CHAIN_MS")"
printf '  %-48s %10s   %-22s %s\n' "start -> 1st status at LISTEN, median (p95 $(calc "$FIRST_P95") ms)" "$(calc "$FIRST_MED") ms" \
    "<= $TARGET_FIRST_MS ms" "$(verdict "$FIRST_MED <= $TARGET_FIRST_MS")"
printf '  %-48s %10s   %-22s %s\n' "10-step chain from a new connection (p95 $(calc "$NEW_P95") ms)" "$(calc "$NEW_MED") ms" \
    "<= $TARGET_NEW_MS ms" "$(verdict "$NEW_MED <= $TARGET_NEW_MS")"
printf '  %-48s %10s   %s\n' "  a new session's own cost in PostgreSQL" "$(calc "$BASE_NEW - $BASE_WARM") ms" \
    "(the baseline's step: $(calc "$BASE_NEW") ms new, $(calc "$BASE_WARM") ms warm)"
printf '  %-48s %10s   %-22s %s\n' "single-step runs by start_many(), e2e" "$(calc "$MANY_RUNS" 0)/s" \
    ">= 10000/s" "$(verdict "$MANY_RUNS >= 10000")"
if [ "${N_FINISHED}" -gt 0 ]; then
    printf '  %-48s %10s   %-22s %s\n' "10-step chain with $N_FINISHED finished runs" "$(calc "$BIG_MED") ms" \
        "flat (vs $(calc "$LAT_MED") ms)" "$(verdict "$BIG_MED <= 1.2 * $LAT_MED + 0.5")"
fi
echo
echo "  where the time goes (server CPU time read from /proc):"
printf '    executor CPU per step: fan-out %s ms, chain %s ms, single-step run %s ms (incl. finishing the run)\n' \
    "$(calc "$FAN_CPU" 3)" "$(calc "$CHAIN_CPU" 3)" "$(calc "$SINGLE_CPU" 3)"
printf '    CPU to start one run: %s ms (10-step fan-out), %s ms (single step); WAL per fan-out step: %s bytes\n' \
    "$(calc "$START_CPU" 3)" "$(calc "$SINGLE_START_CPU" 3)" "$FAN_WAL"
printf '    fan-out: %s steps per executor commit (pgbench: 0.5) -- commits are not what limits the engine\n' "$FAN_PER_COMMIT"
printf '    CPU to start one single-step run with start_many(): %s ms\n' "$(calc "$MANY_START_CPU" 3)"
read -r R_STEPS R_EVENTS R_CHUNKS R_CKPT R_AUDIT <<<"$ROWS"
printf '    rows a single-step run writes: 1 run, %s steps, %s events, %s chunks, %s checkpoints, %s audit rows\n' \
    "$R_STEPS" "$R_EVENTS" "$R_CHUNKS" "$R_CKPT" "$R_AUDIT"
echo
echo "  peers measured on this machine, for scale: DBOS Transact 2,251 steps/s on 10-step workflows"
echo "  (10.6 ms per sequential workflow); pgflow 847 steps/s (140 ms); Graphile Worker 35,076"
echo "  single jobs/s batched."
echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews figures)"
