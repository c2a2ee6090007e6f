#!/usr/bin/env bash
# scripts/demo.sh -- the main command: a throwaway cluster with agentorch
# preloaded, the sample tools and workflows registered and validated, and
# each workflow's graph printed (Mermaid and Graphviz dot).
#
# Installs missing Debian packages (when root), builds and installs the
# extension, runs everything against a cluster in a temporary directory
# owned by the postgres OS user, and stops that cluster on exit, also on
# failure. Set AO_KEEP=1 to keep the cluster running for exploration.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

ao_install_deps
ao_build_install

DIR=$(mktemp -d /tmp/agentorch-demo.XXXXXX)
chmod 755 "$DIR"
PORT=$(ao_free_port)
MOCK_PID=
cleanup() {
    if [ "${AO_KEEP:-0}" = 1 ]; then
        # the mock stays up with the cluster: the registered model points at it
        echo
        echo "cluster kept (with the mock LLM server${MOCK_PID:+, pid $MOCK_PID}):"
        echo "  connect:  $PG_BIN/psql -h $DIR -p $PORT -U postgres postgres"
        echo "  follow:   $PG_BIN/agentorch-follow RUN_ID 'host=$DIR port=$PORT user=postgres dbname=postgres'"
        echo "  stop:     ${MOCK_PID:+kill $MOCK_PID; }runuser -u postgres -- $PG_BIN/pg_ctl -D $DIR/data stop; rm -rf $DIR"
    else
        [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
        ao_cluster_stop "$DIR"; rm -rf "$DIR"
    fi
}
trap cleanup EXIT
ao_log "starting a throwaway cluster on 127.0.0.1:$PORT"
ao_cluster_start "$DIR" "$PORT"

PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres)
"${PSQL[@]}" -c "CREATE EXTENSION agentorch"
"${PSQL[@]}" -f "$AO_REPO/samples/tools.sql" >/dev/null

# The LLM: a real provider when configured (see README), else the bundled mock.
if [ -n "${AO_LLM_PROVIDER:-}" ]; then
    ao_log "using the configured provider $AO_LLM_PROVIDER at $AO_LLM_BASE_URL (model $AO_LLM_MODEL)"
    "${PSQL[@]}" -c "SELECT agentorch.register_model('default', '$AO_LLM_PROVIDER', jsonb_build_object('base_url', '$AO_LLM_BASE_URL', 'model', '$AO_LLM_MODEL', 'api_key_env', '${AO_LLM_API_KEY_ENV:-}'))"
else
    MOCK_PORT=$(ao_free_port)
    ao_log "starting the mock LLM server on 127.0.0.1:$MOCK_PORT"
    # setsid: with AO_KEEP=1 the mock outlives this script, like the cluster
    setsid python3 "$AO_REPO/test/mock_llm/mock_llm.py" --port "$MOCK_PORT" --script "$AO_REPO/test/mock_llm/scripts/demo.json" \
        >"$DIR/mock.log" 2>&1 < /dev/null &
    MOCK_PID=$!
    for _ in $(seq 50); do grep -q listening "$DIR/mock.log" && break; sleep 0.1; done
    "${PSQL[@]}" -c "SELECT agentorch.register_model('default', 'openai', '{\"base_url\": \"http://127.0.0.1:$MOCK_PORT/v1\", \"model\": \"mock-gpt-4o-mini\", \"prices\": {\"input_per_mtok\": 0.15, \"output_per_mtok\": 0.6}}')" >/dev/null
fi
"${PSQL[@]}" -c "ALTER SYSTEM SET agentorch.default_model = 'default'" -c "SELECT pg_reload_conf()" >/dev/null

for f in "$AO_REPO"/samples/workflows/*.yaml; do
    name=$(basename "$f" .yaml)
    echo
    echo "=== workflow $name ($f)"
    "${PSQL[@]}" -v name="$name" -v doc="$(cat "$f")" <<'SQL'
\pset footer off
SELECT CASE WHEN count(*) = 0 THEN 'valid' ELSE count(*) || ' problem(s)' END AS validation
FROM agentorch.validate_workflow(agentorch.yaml_to_jsonb(:'doc'));
SELECT agentorch.register_workflow_yaml(:'name', :'doc') AS registered_version;
\pset format unaligned
\pset tuples_only on
\echo --- mermaid
SELECT agentorch.workflow_graph(:'name', 'mermaid');
\echo --- dot
SELECT agentorch.workflow_graph(:'name', 'dot');
SQL
    "${PSQL[@]}" -At -c "SELECT agentorch.workflow_graph('$name', 'dot')" | dot -Tsvg >"$DIR/$name.svg" \
        && echo "--- dot renders: $(wc -c <"$DIR/$name.svg") bytes of SVG"
done

echo
echo "=== an invalid definition is refused with every problem listed"
"${PSQL[@]}" -c "SELECT agentorch.register_workflow('broken', '{\"steps\": [{\"id\": \"a\", \"type\": \"tool\", \"tool\": \"nope\", \"depends_on\": [\"b\"]}, {\"id\": \"b\", \"type\": \"tool\", \"tool\": \"database.query\", \"depends_on\": [\"a\"]}]}')" 2>&1 || true
"${PSQL[@]}" -c "SELECT count(*) AS stored_broken FROM agentorch.workflows WHERE name = 'broken'"

# Run the samples in the background executors and print their streams live.
FOLLOW="$AO_REPO/build/agentorch-follow"
start_run() {   # start_run SQL-expression -> prints the run id (committed)
    "${PSQL[@]}" -At -c "SELECT $1"
}
follow() {      # follow RUN_ID: prints tokens and transitions as they commit
    "$FOLLOW" -t 60 "$1" "host=$PGHOST port=$PGPORT user=postgres dbname=postgres" || true
}
wait_waiting() {  # wait until the run waits for input
    "${PSQL[@]}" -At -c "SELECT status FROM agentorch.wait($1, '30s')" >/dev/null
}

echo
echo "=== run: a simple question (one llm step; tokens stream as they arrive)"
id=$(start_run "agentorch.start('{\"prompt\": \"Hello! What can agentorch do?\"}')")
follow "$id"

echo
echo "=== run: data-analysis, the design notes' workflow (database.query -> llm -> parallel chart + report)"
id=$(start_run "agentorch.run_workflow('data-analysis')")
follow "$id"

echo
echo "=== run: regional-report (loop over regions, one sql tool call per region)"
id=$(start_run "agentorch.run_workflow('regional-report')")
follow "$id"

echo
echo "=== run: planner -- the model writes a plan (streamed as json_partial), agentorch checks,"
echo "    optimizes (identical calls once, independent steps in parallel) and runs it"
id=$(start_run "agentorch.start('{\"prompt\": \"Compare the sales of the north and south regions\"}', 'planner')")
follow "$id"
"${PSQL[@]}" -c "SELECT version, reason, parent_version, jsonb_pretty(diff) AS diff FROM agentorch.plans WHERE run_id = $id ORDER BY version"

echo
echo "=== run: reactive -- re-plans while it runs: after a step, the condition replan_when sees a weak"
echo "    region, the pending step is superseded and a second plan keeps the finished outputs"
id=$(start_run "agentorch.start('{\"prompt\": \"Find the weakest region and advise\"}', 'reactive', NULL, '{\"replan_when\": [\"\$.steps.west.output[0].total < 11000\"], \"budget\": {\"max_tokens\": 100000}}')")
follow "$id"
"${PSQL[@]}" -c "SELECT version, reason, parent_version, diff->'added' AS added, diff->'removed' AS removed FROM agentorch.plans WHERE run_id = $id ORDER BY version" \
             -c "SELECT step_id, status, plan_version FROM agentorch.steps WHERE run_id = $id ORDER BY ord"

echo
echo "=== run: order-triage for a large order (branch -> user_input; we answer it)"
id=$(start_run "agentorch.run_workflow('order-triage', '{\"order_id\": 2}')")
follow "$id" & fpid=$!
wait_waiting "$id"
echo
echo "--- submitting {\"approved\": true} for step manual_review"
"${PSQL[@]}" -At -c "SELECT agentorch.submit_input($id, 'manual_review', '{\"approved\": true, \"comment\": \"checked\"}')" >/dev/null
wait $fpid

echo
echo "=== run: order-triage for a small order (branch -> auto_approve, a sql tool that updates a table)"
id=$(start_run "agentorch.run_workflow('order-triage', '{\"order_id\": 1}')")
follow "$id"
"${PSQL[@]}" -c "SELECT id, customer, amount, status FROM samples.orders ORDER BY id"

echo
echo "=== run: expense-approval (user_input with a schema: a bad answer is refused, a good one continues)"
id=$(start_run "agentorch.run_workflow('expense-approval', '{\"amount\": 120, \"employee\": \"ann\"}')")
follow "$id" & fpid=$!
wait_waiting "$id"
echo
"${PSQL[@]}" -c "SELECT agentorch.submit_input($id, 'ask_manager', '{\"approved\": \"maybe\"}')" 2>&1 | sed 's/^/    /' || true
"${PSQL[@]}" -At -c "SELECT agentorch.submit_input($id, 'ask_manager', '{\"approved\": false, \"comment\": \"over budget\"}')" >/dev/null
wait $fpid
echo
echo "--- the run's graph with each step's status"
"${PSQL[@]}" -At -c "SELECT agentorch.graph($id)"

echo
echo "=== all runs"
"${PSQL[@]}" -c "SELECT id, workflow_name, status, left(COALESCE(output::text, error::text), 70) AS result FROM agentorch.runs ORDER BY id"
