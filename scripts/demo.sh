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
cleanup() {
    if [ "${AO_KEEP:-0}" = 1 ]; then
        echo "cluster kept: psql -h $DIR -p $PORT -U postgres   (stop: pg_ctl -D $DIR/data stop as postgres)"
    else
        ao_cluster_stop "$DIR"; rm -rf "$DIR"
    fi
}
trap cleanup EXIT
ao_log "starting a throwaway cluster on 127.0.0.1:$PORT"
ao_cluster_start "$DIR" "$PORT"

PSQL=("$PG_BIN/psql" -X -q -v ON_ERROR_STOP=1 -d postgres)
"${PSQL[@]}" -c "CREATE EXTENSION agentorch"
"${PSQL[@]}" -f "$AO_REPO/samples/tools.sql" >/dev/null

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
