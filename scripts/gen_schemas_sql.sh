#!/bin/sh
# gen_schemas_sql.sh FILE... -- print one INSERT into agentorch._schemas per
# JSON Schema file, named after the file (FixedWorkflow.schema.json ->
# FixedWorkflow). Used by the Makefile to build the install script.
set -eu
echo
echo "-- Generated from schemas/ by scripts/gen_schemas_sql.sh; edit the .schema.json files."
for f in "$@"; do
    name=$(basename "$f" .schema.json)
    if grep -q '\$ao_schema\$' "$f"; then
        echo "gen_schemas_sql.sh: $f contains the quote tag \$ao_schema\$" >&2
        exit 1
    fi
    printf "INSERT INTO agentorch._schemas (name, schema) VALUES ('%s', \$ao_schema\$" "$name"
    cat "$f"
    printf "\$ao_schema\$);\n"
done
