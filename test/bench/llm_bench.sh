#!/usr/bin/env bash
# test/bench/llm_bench.sh -- the LLM benchmark. Prints figures; it is not a
# pass/fail test (no timed assertions). See test/bench/README.md.
#
# Builds the extension into a private installation under a temporary
# directory (the server's global installation is not touched), starts a
# throwaway cluster with agentorch preloaded and durable commits (fsync on,
# synchronous_commit on), starts the bundled mock LLM server
# (test/mock_llm) on 127.0.0.1, and measures in one run:
#   0. the mock alone: 1000 concurrent streams over one libcurl multi handle
#   1. 1000 concurrent simple runs started in one statement, 500 ms latency,
#      50 tokens each (the mock's default pacing: deltas back to back), read
#      by a LISTEN client (agentorch_run_<id> + agentorch.stream()): wall
#      time, runs/s, executors, tokens/s, notifications and chunk rows per
#      run -- against the Python mock, and against a minimal C server
#      (llm_bench serve) that replays the same bytes, to tell agentorch's
#      limit from the mock's
#   2. a batch of no-op sql-tool workflow runs alone and while 1000 streams
#      paced at 10 ms/token are being written (step commits vs. tokens)
#   3. time to first token at a LISTEN client vs. a direct curl request
#   4. the targets, each met or not met
# The cluster and the servers are stopped on exit. About two minutes.
#
# Environment:
#   AO_BENCH_NO_BUILD=1   use the server's installed extension as is
#   AO_BENCH_SRC=DIR      build this source tree instead of the repository's
#                         (e.g. a scratch copy with a change to measure)
#   AO_BENCH_KEEP=1       keep the cluster and the servers running at the end
#   AO_BENCH_TTFT_ONLY=1  section 3 alone (about a minute): for working on
#                         the first-token path
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
source "$BENCH_DIR/../../scripts/lib.sh"

# sizes (bounded: the whole run stays under three minutes)
N_STREAMS=${AO_BENCH_N_STREAMS:-1000}      # concurrent simple runs
STREAM_LATENCY_MS=500                      # time to first byte of the bulk runs
PACED_DELAY_MS=${AO_BENCH_PACED_DELAY_MS:-10}   # ms between tokens, paced streams (section 2)
N_TOKENS=50                                # tokens per reply (words w1 .. w50)
N_NOOP=${AO_BENCH_N_NOOP:-200}             # no-op runs of bench_fan10 (10 sql steps each)
N_TTFT=${AO_BENCH_N_TTFT:-100}             # sequential runs timed to the first token
N_CURL=${AO_BENCH_N_CURL:-100}             # direct curl requests
TTFT_LATENCY_MS=50                         # mock latency of the TTFT runs
TTFT_DELAY_MS=2                            # ms between their tokens (the first one stands alone)
REPEAT=${AO_BENCH_REPEAT:-2}               # each bulk phase of section 1, repeated (noisy)

# targets (from the issue)
TARGET_WALL_S=1.5           # 1000 concurrent simple runs, start -> last finished
TARGET_WORKERS=2            # ... on at most 2 executor processes
TARGET_TTFT_MS=2            # median time-to-first-token overhead over a direct request

ao_install_deps libpq-dev

DIR=$(mktemp -d /tmp/agentorch-llm-bench.XXXXXX)
chmod 755 "$DIR"
SERVER_PIDS=()
cleanup() {
    set +e
    if [ "${AO_BENCH_KEEP:-0}" = 1 ]; then
        echo "kept: psql -h $DIR -p ${PORT:-?} -U postgres; servers (pids ${SERVER_PIDS[*]:-}): see $DIR/*.log"
        echo "stop: kill ${SERVER_PIDS[*]:-}; $PG_BIN/pg_ctl -D $DIR/data stop (as postgres); rm -rf $DIR"
        return
    fi
    local p
    for p in "${SERVER_PIDS[@]}"; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
    ao_cluster_stop "$DIR"
    rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- build
# A private installation: PostgreSQL finds $libdir and its share directory
# relative to the postgres binary, so copies of postgres/initdb/pg_ctl under
# $DIR/inst/usr/lib/postgresql/15/bin use $DIR/inst/usr/lib/postgresql/15/lib
# (the freshly built agentorch.so, links to everything else) and
# $DIR/inst/usr/share/postgresql/15. Other sessions' `make install`s cannot
# swap the library under this benchmark, and it swaps nothing under them.
SRC=${AO_BENCH_SRC:-$AO_REPO}
SRC_DESC="$SRC"
if [ "${AO_BENCH_NO_BUILD:-0}" != 1 ]; then
    ao_log "building agentorch from $SRC into a private installation"
    mkdir -p "$DIR/build"
    if git -C "$SRC" rev-parse --git-dir >/dev/null 2>&1; then
        (cd "$SRC" && git ls-files -z --cached --others --exclude-standard -- . ':!test' |
            xargs -0 -r sh -c 'for f; do [ -f "$f" ] && printf "%s\0" "$f"; done' sh |
            tar --null -T - -cf -) | tar -C "$DIR/build" -xf -
        SRC_DESC="$SRC, commit $(git -C "$SRC" rev-parse --short HEAD)$(git -C "$SRC" diff --quiet HEAD -- src sql 2>/dev/null || echo ' with local changes to src/ or sql/')"
    else
        tar -C "$SRC" --exclude=./test --exclude='*.o' --exclude='*.bc' --exclude='*.so' -cf - . | tar -C "$DIR/build" -xf -
    fi
    make -C "$DIR/build" -s -j"$(nproc)" PG_CONFIG="$PG_CONFIG" >/dev/null
    INST=$DIR/inst
    BINDIR=$("$PG_CONFIG" --bindir); LIBDIR=$("$PG_CONFIG" --pkglibdir); SHAREDIR=$("$PG_CONFIG" --sharedir)
    mkdir -p "$INST$BINDIR" "$INST$LIBDIR" "$INST$SHAREDIR/extension"
    make -C "$DIR/build" -s PG_CONFIG="$PG_CONFIG" install DESTDIR="$INST" >/dev/null
    cp "$BINDIR/postgres" "$BINDIR/initdb" "$BINDIR/pg_ctl" "$INST$BINDIR/"
    for f in "$BINDIR"/*; do [ -e "$INST$BINDIR/${f##*/}" ] || ln -s "$f" "$INST$BINDIR/"; done
    for f in "$LIBDIR"/*; do [ -e "$INST$LIBDIR/${f##*/}" ] || ln -s "$f" "$INST$LIBDIR/"; done
    for f in "$SHAREDIR"/*; do [ "${f##*/}" = extension ] || ln -s "$f" "$INST$SHAREDIR/"; done
    for f in "$SHAREDIR"/extension/*; do [ -e "$INST$SHAREDIR/extension/${f##*/}" ] || ln -s "$f" "$INST$SHAREDIR/extension/"; done
    PG_BIN=$INST$BINDIR
else
    SRC_DESC="the server's installed extension ($("$PG_CONFIG" --pkglibdir)/agentorch.so)"
fi

# the timing client and replay server (libpq, libcurl)
gcc -O2 -Wall -o "$DIR/llm_bench" "$BENCH_DIR/llm_bench.c" \
    -I"$("$PG_CONFIG" --includedir)" -L"$("$PG_CONFIG" --libdir)" -lpq -lcurl

# ---------------------------------------------------------------- servers
# replies of exactly 50 tokens: "w1", " w2" .. " w50" are one token (delta) each
WORDS=$(seq -f 'w%g' 1 "$N_TOKENS" | paste -sd' ')
cat >"$DIR/script.json" <<JSON
{"include_builtin": false, "rules": [
  {"name": "bench_stream", "match": {"contains": "bench-stream"}, "latency_ms": $STREAM_LATENCY_MS,
   "reply": {"text": "$WORDS"}},
  {"name": "bench_ttft", "match": {"contains": "bench-ttft"}, "latency_ms": $TTFT_LATENCY_MS,
   "token_delay_ms": $TTFT_DELAY_MS, "reply": {"text": "$WORDS"}}
]}
JSON
# The stock mock leaves Nagle's algorithm on (http.server's default): on a
# kept-alive connection -- an executor's -- each small write after the first
# waits for the client's delayed ACK, ~40 ms. Real HTTP servers set
# TCP_NODELAY; the TTFT phase uses the same mock with it set (nothing else
# changed), and section 3 shows the stock mock's figure for comparison.
cat >"$DIR/nodelay.py" <<'PY'
import runpy, socketserver, sys
socketserver.StreamRequestHandler.disable_nagle_algorithm = True
path = sys.argv[1]
sys.argv = [path] + sys.argv[2:]
runpy.run_path(path, run_name="__main__")
PY
# start_server NAME CMD...: run it in the background, wait for its banner, set NAME_PORT and NAME_PID
start_server() {
    local name=$1 port; shift
    "$@" >"$DIR/$name.log" 2>&1 &
    SERVER_PIDS+=($!)
    printf -v "${name}_PID" '%s' "$!"
    for _ in $(seq 100); do grep -q '^listening on' "$DIR/$name.log" && break; sleep 0.1; done
    port=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$DIR/$name.log")
    [ -n "$port" ] || { cat "$DIR/$name.log"; echo "$name did not start" >&2; exit 1; }
    printf -v "${name}_PORT" '%s' "$port"
}
MOCK_PY=$AO_REPO/test/mock_llm/mock_llm.py
start_server MOCK python3 "$MOCK_PY" --host 127.0.0.1 --port 0 --script "$DIR/script.json" --record 20
start_server MOCKND python3 "$DIR/nodelay.py" "$MOCK_PY" --host 127.0.0.1 --port 0 --script "$DIR/script.json" --record 20
start_server REPLAY "$DIR/llm_bench" - serve "$STREAM_LATENCY_MS" "$N_TOKENS" 0
start_server PACED "$DIR/llm_bench" - serve "$STREAM_LATENCY_MS" "$N_TOKENS" "$PACED_DELAY_MS"
MOCK_URL=http://127.0.0.1:$MOCK_PORT/v1/chat/completions
MOCKND_URL=http://127.0.0.1:$MOCKND_PORT/v1/chat/completions
REPLAY_URL=http://127.0.0.1:$REPLAY_PORT/v1/chat/completions

# ---------------------------------------------------------------- cluster
PORT=$(ao_free_port)
ao_log "starting a throwaway cluster on 127.0.0.1:$PORT (fsync on, synchronous_commit on)"
ao_cluster_start "$DIR" "$PORT" "fsync = on" "synchronous_commit = on" "restart_after_crash = on"
psql_private() { "$PG_BIN/psql" "$@"; }
PSQL=(psql_private -X -q -v ON_ERROR_STOP=1 -d postgres)
CONNINFO="host=$DIR port=$PORT user=postgres dbname=postgres"
CLIENT=("$DIR/llm_bench" "$CONNINFO")
q() { "${PSQL[@]}" -At -F' ' -c "$1"; }

"${PSQL[@]}" -c "CREATE EXTENSION agentorch"
"${PSQL[@]}" -f "$BENCH_DIR/setup.sql" >/dev/null
for m in "mock $MOCK_PORT" "mock_nodelay $MOCKND_PORT" "replay $REPLAY_PORT" "replay_paced $PACED_PORT"; do
    set -- $m
    q "SELECT agentorch.register_model('$1', 'openai', '{\"base_url\": \"http://127.0.0.1:$2/v1\", \"model\": \"mock-bench\"}')" >/dev/null
done
executors_up() {
    local n
    for _ in $(seq 100); do
        n=$(q "SELECT value FROM agentorch.metrics() WHERE name = 'executors'" 2>/dev/null || echo 0)
        [ "${n%.*}" -ge 1 ] 2>/dev/null && return 0
        sleep 0.1
    done
}
# use_model NAME: the model of llm steps that name none, on a restarted cluster.
# An executor keeps up to 512 idle keep-alive connections to the server it
# talked to last; opening 512 to another one on top of them exceeds the
# server processes' 1024 open files (EMFILE: "Couldn't connect", five of
# them open the model's circuit breaker for 30 s). So every switch of LLM
# server starts from fresh executors (restart + warm-up).
use_model() {
    "${PSQL[@]}" -c "ALTER SYSTEM SET agentorch.default_model = '$1'" >/dev/null
    if [ "${2:-}" != norestart ]; then
        ao_as_pg "$PG_BIN/pg_ctl" -D "$DIR/data" -l "$DIR/server.log" -m fast -w -t 60 restart >/dev/null
    else
        "${PSQL[@]}" -c "SELECT pg_reload_conf()" >/dev/null
    fi
    executors_up
}
use_model mock norestart

res() {
    local v
    v=$(printf '%s\n' "$1" | grep '^RESULT' | tr ' ' '\n' | sed -n "s/^$2=//p" | tail -1)
    echo "${v:-0}"
}
show() { printf '%s\n' "$1" | grep -v '^RESULT' || true; }
vacuum() { "${PSQL[@]}" -c "VACUUM ANALYZE agentorch.runs, agentorch.steps, agentorch.events, agentorch.chunks, agentorch.checkpoints"; }
calc() { awk "BEGIN { printf \"%.${2:-2}f\", $1 }"; }
verdict() { awk "BEGIN { exit !($1) }" && echo "met" || echo "not met"; }
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else print v[int((NR + 1) / 2)] }'; }
p95() { sort -g | awk '{ v[NR] = $1 } END { k = int(0.95 * NR + 0.999999); if (k < 1) k = 1; print (NR ? v[k] : 0) }'; }
list() { local IFS=','; echo "$*"; }
minof() { printf '%s\n' "$@" | sort -g | head -1; }
maxof() { printf '%s\n' "$@" | sort -g | tail -1; }
tick_ms() { awk -v t="$(getconf CLK_TCK)" '{ print ($14 + $15) * 1000 / t }' "/proc/$1/stat" 2>/dev/null || echo 0; }
# CPU ms of the cluster's processes (the postmaster's children) since cluster_cpu_mark
declare -A CPU0
cluster_cpu_mark() {
    CPU0=()
    local pm p
    pm=$(head -1 "$DIR/data/postmaster.pid")
    for p in $(ps -o pid= --ppid "$pm"); do CPU0[$p]=$(tick_ms "$p"); done
}
cluster_cpu_since() {
    local pm p total=0 c
    pm=$(head -1 "$DIR/data/postmaster.pid")
    for p in $(ps -o pid= --ppid "$pm"); do
        c=$(tick_ms "$p"); total=$(calc "$total + $c - ${CPU0[$p]:-0}" 0)
    done
    echo "$total"
}
CRASHES=0
# a crashed server process? print it, wait for the restart, cancel what is open
crash_check() {
    local n
    n=$(grep -c 'terminated by signal' "$DIR/server.log" || true)
    [ "$n" -gt "$CRASHES" ] || return 0
    echo "   !! A SERVER PROCESS CRASHED during this phase (server log):"
    grep -E 'terminated by signal|Failed process was running' "$DIR/server.log" | tail -n $(( (n - CRASHES) * 2 )) | sed 's/^/   !!   /'
    CRASHES=$n
    for _ in $(seq 150); do "$PG_BIN/pg_isready" -q -h "$DIR" -p "$PORT" && break; sleep 0.2; done
    executors_up
    q "SELECT count(agentorch.cancel(id, 'bench cleanup after a crash')) FROM agentorch.runs
        WHERE status IN ('pending', 'running', 'waiting')" >/dev/null || true
    return 1
}
body_of() {  # body_of PORT RULE FILE: the last request body a mock recorded for a rule
    curl -s "http://127.0.0.1:$1/requests" | python3 -c '
import json, sys
reqs = [r for r in json.load(sys.stdin)["requests"] if r.get("rule") == sys.argv[1]]
json.dump(reqs[-1]["body"], open(sys.argv[2], "w"))' "$2" "$3"
}

echo
echo "agentorch LLM benchmark -- $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "extension: $SRC_DESC"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg) at start"
q "SELECT 'server: PostgreSQL ' || current_setting('server_version') ||
    ', fsync=' || current_setting('fsync') || ', synchronous_commit=' || current_setting('synchronous_commit') ||
    ', agentorch.max_workers=' || current_setting('agentorch.max_workers') ||
    ', max_requests=' || current_setting('agentorch.max_requests') ||
    ', flush_interval=' || current_setting('agentorch.flush_interval') ||
    ', chunk_buffer_size=' || current_setting('agentorch.chunk_buffer_size') ||
    ', executors running: ' || (SELECT value FROM agentorch.metrics() WHERE name = 'executors')"
echo "library: $(q "SELECT setting FROM pg_config WHERE name = 'PKGLIBDIR'")/agentorch.so"
echo "LLM servers (127.0.0.1): test/mock_llm/mock_llm.py (Python $(python3 -c 'import sys; print(sys.version.split()[0])'),"
echo "  ThreadingHTTPServer) as is on :$MOCK_PORT and with TCP_NODELAY on :$MOCKND_PORT; llm_bench serve (C, epoll)"
echo "  on :$REPLAY_PORT (deltas back to back) and :$PACED_PORT (${PACED_DELAY_MS} ms/token). Replies: $N_TOKENS tokens; bulk"
echo "  runs ${STREAM_LATENCY_MS} ms latency, deltas back to back (the mock's default pacing); TTFT runs ${TTFT_LATENCY_MS} ms, ${TTFT_DELAY_MS} ms/token"

# Warm-up (at the start and after every restart): executors start "careful"
# (crash-loop protection) and caches are cold; no-op runs and a few LLM runs
# get them past that. The mock records the request body agentorch sends:
# the body of the direct measurements.
warmup() {
    out=$(timeout 60 "${CLIENT[@]}" noop bench_single 300 50) || true
    out=$(timeout 60 "${CLIENT[@]}" stream 50 "{\"prompt\": \"$1\"}" 30 - 0) || true
    crash_check || true
}
warmup "bench-stream: fifty words please"
body_of "$MOCK_PORT" bench_stream "$DIR/body_stream.json"

MOCK_WALLS=(); MOCK_CPUS=()
mock_alone() {
    local c0 c1 out
    c0=$(tick_ms "$MOCK_PID")
    out=$(timeout 60 "$DIR/llm_bench" - mockload "$MOCK_URL" "$DIR/body_stream.json" "$N_STREAMS" 30) || true
    c1=$(tick_ms "$MOCK_PID")
    show "$out"
    echo "  mock CPU: $(calc "$c1 - $c0" 0) ms for $N_STREAMS streams ($(calc "($c1 - $c0) / $N_STREAMS" 2) ms per stream)"
    MOCK_WALLS+=("$(res "$out" mock_wall_s)")
    MOCK_CPUS+=("$(calc "$c1 - $c0" 0)")
}

TTFT_ONLY=${AO_BENCH_TTFT_ONLY:-0}
BULK_CRASHED=0
PY_WALL=(); PY_RPS=(); PY_WORKERS=(); PY_TPS=(); PY_NPR=(); PY_RPR=(); PY_EXEC=()
C_WALL=(); C_RPS=(); C_WORKERS=(); C_TPS=(); C_NPR=(); C_RPR=(); C_EXEC=()
if [ "$TTFT_ONLY" != 1 ]; then
echo
echo "== 0. the Python mock alone: $N_STREAMS concurrent streams (agentorch's request body, one libcurl multi handle)"
mock_alone
out=$(timeout 60 "$DIR/llm_bench" - mockload "$REPLAY_URL" "$DIR/body_stream.json" "$N_STREAMS" 30) || true
echo "  for comparison, llm_bench serve (C): all done after $(res "$out" mock_wall_s) s, end of stream median" \
     "$(calc "$(res "$out" mock_done_median_ms)" 0) ms, p95 $(calc "$(res "$out" mock_done_p95_ms)" 0) ms"
REPLAY_ALONE=$(res "$out" mock_wall_s)

# span (ms) of a no-op batch from its events, once it finished (bounded wait)
noop_span() {
    local lo=$1 hi=$2
    for _ in $(seq 100); do
        [ "$(q "SELECT count(*) FROM agentorch.runs WHERE id BETWEEN $lo AND $hi AND status IN ('pending','running')")" = 0 ] && break
        sleep 0.1
    done
    q "SELECT round(extract(epoch FROM max(at) FILTER (WHERE kind = 'run_succeeded') - min(at) FILTER (WHERE kind = 'run_started')) * 1000)
         FROM agentorch.events WHERE run_id BETWEEN $lo AND $hi"
}

# bulk PROMPT NOOP_RUNS SERVER_PID: one bulk phase; NOOP_RUNS runs of bench_fan10 are
# started when the first token row is read. Sets BULK_OUT (client) and ROWS_OUT (server side).
bulk() {
    local prompt=$1 noop=$2 spid=$3 out lo hi m0 m1 pgcpu
    BULK_OUT=; ROWS_OUT=
    vacuum
    m0=$(tick_ms "$spid"); cluster_cpu_mark
    out=$(timeout 90 "${CLIENT[@]}" stream "$N_STREAMS" "{\"prompt\": \"$prompt\"}" 60 bench_fan10 "$noop") || true
    m1=$(tick_ms "$spid"); pgcpu=$(cluster_cpu_since)
    show "$out"
    if ! crash_check; then
        BULK_CRASHED=1
        return 0
    fi
    lo=$(res "$out" lo); hi=$(res "$out" hi)
    echo "  CPU: all postgres processes $pgcpu ms, LLM server $(calc "$m1 - $m0" 0) ms"
    q "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status <> 'succeeded'),
              (SELECT sum(completion_tokens) FROM agentorch.steps WHERE run_id BETWEEN $lo AND $hi)
         FROM agentorch.runs WHERE id BETWEEN $lo AND $hi" | {
        read -r ok bad toks
        echo "  server: $ok runs succeeded, $bad not; completion tokens recorded on the steps: $toks"
    }
    # chunk rows and the transactions that wrote them (xmin): a flush writes token rows
    # only; a settle writes the last tokens, the step's and the run's status and the final chunk
    ROWS_OUT=$(q "WITH per_run AS (
           SELECT run_id, count(*) FILTER (WHERE kind = 'token') AS tok, count(*) FILTER (WHERE kind = 'status') AS st,
                  count(*) AS total, count(DISTINCT xmin::text) AS txns
             FROM agentorch.chunks WHERE run_id BETWEEN $lo AND $hi GROUP BY run_id),
       tok_tx AS (SELECT xmin::text AS x, count(*) AS n FROM agentorch.chunks
                   WHERE run_id BETWEEN $lo AND $hi AND kind = 'token' GROUP BY 1),
       fin_tx AS (SELECT DISTINCT xmin::text AS x FROM agentorch.chunks WHERE run_id BETWEEN $lo AND $hi AND kind = 'final')
       SELECT 'RESULT rows_per_run=' || round(avg(total), 1) || ' token_rows_per_run=' || round(avg(tok), 1) ||
              ' token_rows_max=' || max(tok) || ' status_per_run=' || round(avg(st), 1) ||
              ' txns_per_run=' || round(avg(txns), 1) ||
              ' flushes=' || (SELECT count(*) FROM tok_tx WHERE x NOT IN (SELECT x FROM fin_tx)) ||
              ' rows_per_flush=' || COALESCE((SELECT round(avg(n), 1) FROM tok_tx WHERE x NOT IN (SELECT x FROM fin_tx)), 0) ||
              ' settles=' || (SELECT count(*) FROM fin_tx) ||
              ' runs_per_settle=' || round(count(*)::numeric / GREATEST((SELECT count(*) FROM fin_tx), 1), 1)
         FROM per_run")
    echo "  chunk rows per run: $(res "$ROWS_OUT" rows_per_run) ($(res "$ROWS_OUT" token_rows_per_run) token rows, max" \
         "$(res "$ROWS_OUT" token_rows_max); $(res "$ROWS_OUT" status_per_run) status; 1 final), written by" \
         "$(res "$ROWS_OUT" txns_per_run) transactions per run"
    echo "  transactions: $(res "$ROWS_OUT" flushes) flushes (token rows only, $(res "$ROWS_OUT" rows_per_flush) rows each)," \
         "$(res "$ROWS_OUT" settles) settles ($(res "$ROWS_OUT" runs_per_settle) runs finished each)"
    q "WITH e AS (SELECT min(at) FILTER (WHERE kind = 'run_started') AS t0,
                         max(at) FILTER (WHERE kind = 'run_started') AS s1,
                         min(at) FILTER (WHERE kind = 'step_started') AS c0,
                         max(at) FILTER (WHERE kind = 'step_started') AS c1,
                         min(at) FILTER (WHERE kind = 'run_succeeded') AS f0,
                         max(at) FILTER (WHERE kind = 'run_succeeded') AS f1
                    FROM agentorch.events WHERE run_id BETWEEN $lo AND $hi),
            c AS (SELECT min(at) AS k0, max(at) AS k1 FROM agentorch.chunks WHERE run_id BETWEEN $lo AND $hi AND kind = 'token')
       SELECT round(extract(epoch FROM s1 - t0) * 1000), round(extract(epoch FROM c0 - t0) * 1000),
              round(extract(epoch FROM c1 - t0) * 1000), round(extract(epoch FROM k0 - t0) * 1000),
              round(extract(epoch FROM k1 - t0) * 1000), round(extract(epoch FROM f0 - t0) * 1000),
              round(extract(epoch FROM f1 - t0) * 1000)
         FROM e, c" | {
        read -r s1 c0 c1 k0 k1 f0 f1
        echo "  timeline, ms after the first run_started event (event/chunk clock_timestamp()s): runs inserted by $s1;"
        echo "    steps claimed (requests go out) $c0 .. $c1; token rows inserted $k0 .. $k1; runs finished $f0 .. $f1"
    }
    if [ "$noop" -gt 0 ]; then
        NOOP_BUSY_SPAN=$(noop_span "$(res "$out" noop_lo)" "$(res "$out" noop_hi)")
        echo "  the no-op batch meanwhile: $((N_NOOP * 10)) steps in $NOOP_BUSY_SPAN ms" \
             "(its first run_started -> last run_succeeded): $(calc "$N_NOOP * 10 * 1000 / $NOOP_BUSY_SPAN" 0) steps/s"
    fi
    BULK_OUT=$out
}
# collect LABEL: append the figures of the last bulk phase to the arrays LABEL_*
collect() {
    local l=$1 w
    [ -n "$BULK_OUT" ] && [ "$(res "$BULK_OUT" finals)" = "$N_STREAMS" ] || return 0
    w=$(res "$BULK_OUT" wall_s)
    eval "${l}_WALL+=($w)"
    eval "${l}_RPS+=($(calc "$N_STREAMS / $w" 0))"
    eval "${l}_WORKERS+=($(res "$BULK_OUT" workers_first_token))"
    eval "${l}_TPS+=($(calc "$(res "$BULK_OUT" words) / $w" 0))"
    eval "${l}_NPR+=($(calc "$(res "$BULK_OUT" notifies) / $N_STREAMS" 1))"
    eval "${l}_RPR+=($(res "$ROWS_OUT" rows_per_run))"
    eval "${l}_EXEC+=($(res "$BULK_OUT" exec_cpu_ms))"
}

echo
echo "== 1. $N_STREAMS concurrent simple runs, started in one statement, read by one LISTEN client"
echo "   (SELECT agentorch.start('{\"prompt\": ...}', 'simple') FROM generate_series(1, $N_STREAMS); the client LISTENs on all"
echo "    $N_STREAMS private channels (agentorch.channel(id)) right after the start, catches up from the rows, and"
echo "    reads new rows with agentorch.stream(run, after_seq) on each wake-up; clock: just before the start ->"
echo "    last final chunk read; executors = distinct steps.worker while the steps run)"
for i in $(seq 1 "$REPEAT"); do
    echo " -- against the Python mock, run $i of $REPEAT"
    bulk "bench-stream: fifty words please" 0 "$MOCK_PID"; collect PY
done
use_model replay
warmup "bench-stream: fifty words please"
for i in $(seq 1 "$REPEAT"); do
    echo " -- against llm_bench serve (C), same bytes, run $i of $REPEAT"
    bulk "bench-stream: fifty words please" 0 "$REPLAY_PID"; collect C
done

echo
echo "== 2. step commits while tokens stream: $N_NOOP runs of bench_fan10 (10 no-op sql steps each), alone and while"
echo "   $N_STREAMS streams paced at ${PACED_DELAY_MS} ms/token (llm_bench serve) are written (started when the first token is read)"
use_model replay_paced
warmup "bench-paced: fifty words please"
vacuum
out=$(timeout 60 "${CLIENT[@]}" noop bench_fan10 "$N_NOOP" 30) || true
NOOP_ALONE_SPAN=$(noop_span "$(res "$out" noop_lo)" "$(res "$out" noop_hi)")
echo "  alone: $((N_NOOP * 10)) steps in $NOOP_ALONE_SPAN ms (first run_started -> last run_succeeded):" \
     "$(calc "$N_NOOP * 10 * 1000 / $NOOP_ALONE_SPAN" 0) steps/s"
echo " -- $N_STREAMS paced streams alone"
bulk "bench-paced: fifty words please" 0 "$PACED_PID"
PACED_OUT=$BULK_OUT; PACED_ROWS=$ROWS_OUT
echo " -- $N_STREAMS paced streams and the no-op batch"
NOOP_BUSY_SPAN=0
bulk "bench-paced: fifty words please" "$N_NOOP" "$PACED_PID"
fi

echo
echo "== 3. time to first token: $N_TTFT sequential simple runs (${TTFT_LATENCY_MS} ms latency) vs. $N_CURL direct curl requests"
echo "   (the mock with TCP_NODELAY; LISTEN on the run's private channel once it exists; timed from just before"
echo "    SELECT agentorch.start(...) (autocommit) until the first token row is read with agentorch.stream() after"
echo "    its notification; the next run starts after the final chunk was read)"
use_model mock_nodelay
warmup "bench-ttft: fifty words please"
vacuum
# the bulk phases' dirty pages written now, not by a checkpoint during the timed runs
"${PSQL[@]}" -c "CHECKPOINT" >/dev/null
out=$(timeout 90 "${CLIENT[@]}" ttft "$N_TTFT" '{"prompt": "bench-ttft: fifty words please"}' "$TTFT_LATENCY_MS") || true
show "$out"; crash_check || true
TTFT_MED=$(res "$out" tok_median_ms); TTFT_P95=$(res "$out" tok_p95_ms)
TTFT_NOTE_MED=$(res "$out" tok_notify_median_ms); TTFT_RET_MED=$(res "$out" ret_median_ms)
TTFT_SEG3=$(res "$out" seg3_ms)
HANDOFF_MED=$(res "$out" handoff_median_ms)
HANDOFF_IDLE_MED=$(res "$out" handoff_idle_median_ms)
body_of "$MOCKND_PORT" bench_ttft "$DIR/body_ttft.json"
: >"$DIR/curl.txt"
for _ in $(seq "$N_CURL"); do
    timeout 10 curl -s -o /dev/null -H 'Content-Type: application/json' -H 'Accept: text/event-stream' \
        --data-binary @"$DIR/body_ttft.json" -w '%{time_connect} %{time_starttransfer}\n' "$MOCKND_URL" >>"$DIR/curl.txt" || true
done
CURL_MED=$(awk '{ print $2 * 1000 }' "$DIR/curl.txt" | median)
CURL_P95=$(awk '{ print $2 * 1000 }' "$DIR/curl.txt" | p95)
CURL_CONN=$(awk '{ print $1 * 1000 }' "$DIR/curl.txt" | median)
printf '  %-50s n=%d  median %.2f ms  p95 %.2f ms  (connect: median %.2f ms)\n' "curl time_starttransfer (same body, new connection)" \
    "$(wc -l <"$DIR/curl.txt")" "$CURL_MED" "$CURL_P95" "$CURL_CONN"
out=$(timeout 30 "$DIR/llm_bench" - direct "$MOCKND_URL" "$DIR/body_ttft.json" 30 reuse) || true
DIRECT_REUSE=$(res "$out" direct_ttft_median_ms)
echo "  libcurl, one kept-alive connection (as an executor): first content delta median $(calc "$DIRECT_REUSE") ms"
out=$(timeout 30 "$DIR/llm_bench" - direct "$MOCK_URL" "$DIR/body_ttft.json" 20 reuse) || true
echo "  the stock mock (Nagle on), kept-alive connection: first byte $(calc "$(res "$out" direct_ttfb_median_ms)") ms," \
     "first content delta $(calc "$(res "$out" direct_ttft_median_ms)") ms (medians)"
echo "  (so step_started -> 1st token row, $(calc "$TTFT_SEG3") ms above, is $(calc "$TTFT_SEG3 - $DIRECT_REUSE") ms more than the"
echo "   server's own time to first delta on a kept-alive connection)"
TTFT_OVER=$(calc "$TTFT_MED - $CURL_MED")
TTFT_OVER_P95=$(calc "$TTFT_P95 - $CURL_P95")

if [ "$TTFT_ONLY" != 1 ]; then
echo
echo "== 0'. the Python mock alone again (it is the noisiest part)"
mock_alone
fi

# ---------------------------------------------------------------- summary
echo
echo "== summary (durable commits: fsync on, synchronous_commit on; $N_STREAMS runs of $N_TOKENS tokens, ${STREAM_LATENCY_MS} ms latency)"
row() { printf '  %-66s %s\n' "$1" "$2"; }
[ "$TTFT_ONLY" = 1 ] || for l in PY C; do
    eval "n=\${#${l}_WALL[@]}"
    [ "$l" = PY ] && name="against the Python mock" || name="against llm_bench serve (C)"
    if [ "$n" -eq 0 ]; then row "$name:" "NO COMPLETE MEASUREMENT (see above)"; continue; fi
    eval "row \"\$name: wall s\" \"\$(list \"\${${l}_WALL[@]}\")\""
    eval "row \"  runs/s\" \"\$(list \"\${${l}_RPS[@]}\")\""
    eval "row \"  executor processes holding the steps\" \"\$(list \"\${${l}_WORKERS[@]}\")\""
    eval "row \"  executor CPU ms (both executors)\" \"\$(list \"\${${l}_EXEC[@]}\")\""
    eval "row \"  tokens (words) per second delivered to the LISTEN client\" \"\$(list \"\${${l}_TPS[@]}\")\""
    eval "row \"  notifications per run at the client / chunk rows per run\" \"\$(list \"\${${l}_NPR[@]}\") / \$(list \"\${${l}_RPR[@]}\")\""
done
if [ "$TTFT_ONLY" != 1 ]; then
row "the Python mock alone: wall s (its CPU ms)" "$(list "${MOCK_WALLS[@]}") ($(list "${MOCK_CPUS[@]}"))"
row "llm_bench serve alone: wall s" "$REPLAY_ALONE"
fi
if [ -n "${PACED_OUT:-}" ]; then
    row "paced ${PACED_DELAY_MS} ms/token (C server): wall s, runs/s, tokens/s" \
        "$(res "$PACED_OUT" wall_s), $(calc "$N_STREAMS / $(res "$PACED_OUT" wall_s)" 0), $(calc "$(res "$PACED_OUT" words) / $(res "$PACED_OUT" wall_s)" 0)"
    row "  notifications / chunk rows / token rows per run" \
        "$(calc "$(res "$PACED_OUT" notifies) / $N_STREAMS" 1) / $(res "$PACED_ROWS" rows_per_run) / $(res "$PACED_ROWS" token_rows_per_run)"
fi
if [ "${NOOP_BUSY_SPAN:-0}" != 0 ] && [ -n "${NOOP_ALONE_SPAN:-}" ]; then
    row "no-op steps/s: alone / during $N_STREAMS paced streams" \
        "$(calc "$N_NOOP * 10 * 1000 / $NOOP_ALONE_SPAN" 0) / $(calc "$N_NOOP * 10 * 1000 / $NOOP_BUSY_SPAN" 0) ($(calc "100 * $NOOP_ALONE_SPAN / $NOOP_BUSY_SPAN" 0) % of alone)"
fi
row "TTFT at a LISTEN client, median / p95 ms" "$(calc "$TTFT_MED") / $(calc "$TTFT_P95") (its notification: $(calc "$TTFT_NOTE_MED"))"
row "direct: curl time_starttransfer median / p95; kept-alive libcurl" "$(calc "$CURL_MED") / $(calc "$CURL_P95"); $(calc "$DIRECT_REUSE")"

# wall_cols BEST N: the measured, target and verdict columns of a wall-time line
wall_cols() {
    if [ "$2" -eq 0 ]; then printf '%10s   %-10s %s' "n/a" "<= $TARGET_WALL_S s" "not measured"
    else printf '%10s   %-10s %s' "$1 s" "<= $TARGET_WALL_S s" "$(verdict "$1 <= $TARGET_WALL_S")"; fi
}
PY_BEST=0; C_BEST=0
[ ${#PY_WALL[@]} -gt 0 ] && PY_BEST=$(minof "${PY_WALL[@]}")
[ ${#C_WALL[@]} -gt 0 ] && C_BEST=$(minof "${C_WALL[@]}")
WMAX=$(maxof 0 "${PY_WORKERS[@]}" "${C_WORKERS[@]}")
echo
printf '  %-58s %10s   %-10s %s\n' "figure" "measured" "target" "verdict"
if [ "$TTFT_ONLY" != 1 ]; then
MOCK_BEST=$(minof "${MOCK_WALLS[@]}")
printf '  %-58s %s\n' "$N_STREAMS concurrent runs, Python mock: wall (best of ${#PY_WALL[@]})" "$(wall_cols "$PY_BEST" ${#PY_WALL[@]})"
printf '  %-58s %10s   %-10s %s\n' "  the Python mock alone, no database (best of ${#MOCK_WALLS[@]})" "$MOCK_BEST s" "" \
    "$(awk "BEGIN { exit !($MOCK_BEST > $TARGET_WALL_S) }" && echo "(the mock alone is over the target)" || true)"
printf '  %-58s %s\n' "$N_STREAMS concurrent runs, C server: wall (best of ${#C_WALL[@]})" "$(wall_cols "$C_BEST" ${#C_WALL[@]})"
printf '  %-58s %10s   %-10s %s\n' "executor processes doing the work (most seen)" "$WMAX" "<= $TARGET_WORKERS" \
    "$([ "$WMAX" = 0 ] && echo "not measured" || verdict "$WMAX <= $TARGET_WORKERS")"
fi
printf '  %-58s %10s   %-10s %s\n' "TTFT overhead vs curl time_starttransfer, median" "$TTFT_OVER ms" "<= $TARGET_TTFT_MS ms" \
    "$(verdict "$TTFT_OVER <= $TARGET_TTFT_MS")"
printf '  %-58s %10s\n' "  ... p95 vs p95" "$TTFT_OVER_P95 ms"
printf '  %-58s %10s\n' "  ... vs the first delta on a kept-alive libcurl connection" "$(calc "$TTFT_MED - $DIRECT_REUSE") ms"
printf '  %-58s %10s\n' "  ... floor: 2 hand-offs, each after ${TTFT_LATENCY_MS} ms idle (as on the path)" "$(calc "2 * $HANDOFF_IDLE_MED") ms"
printf '  %-58s %10s\n' "  ... the same floor, back to back" "$(calc "2 * $HANDOFF_MED") ms"
[ "$BULK_CRASHED" = 1 ] && echo "  !! a server process crashed in a bulk phase; its figures are missing (see above)"
echo
echo "  context: the Python mock and the database share $(nproc) cores; at $N_STREAMS streams the mock needs about as"
echo "  much CPU as agentorch, so its wall time is the floor of the first line. The C server costs a few ms of CPU."
echo "  No peer engine has been measured on this LLM workload on this machine; engine_bench.sh has the no-op"
echo "  step figures and peers."
echo "  load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews figures)"
