#!/usr/bin/env bash
# test/graph_render/render_check.sh -- prove that graph files render.
#
# Usage: render_check.sh GRAPH_DIR
#
# Every *.dot file in GRAPH_DIR is rendered with Graphviz (dot -Tsvg); every
# *.mmd file is parsed by the official mermaid package running headless in
# node (mermaid.parse under a jsdom window, see mermaid_parse.mjs; no
# browser, so not mermaid-cli). Prints TAP: "1..N", then "ok N - FILE
# renders" or "not ok N - FILE renders" with "# " lines saying why. Exits
# non-zero when any file fails, or when GRAPH_DIR holds no graph at all.
#
# The npm packages (versions pinned in package.json and package-lock.json)
# are installed with "npm ci" into $AO_NPM_DIR (default
# build/graph_render/npm in the repository), outside the source tree, and
# only again when package-lock.json changes. Needs node >= 18 and npm
# (Debian: apt-get install -y nodejs npm) and graphviz.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
NPM_DIR=${AO_NPM_DIR:-$ROOT/build/graph_render/npm}

if [ $# -ne 1 ] || [ ! -d "$1" ]; then
    echo "usage: render_check.sh GRAPH_DIR" >&2
    exit 2
fi
GRAPH_DIR=$(cd "$1" && pwd)

# The graphs, in name order.
mapfile -d '' FILES < <(find "$GRAPH_DIR" -maxdepth 1 -type f \( -name '*.mmd' -o -name '*.dot' \) -print0 | sort -z)
MMD=()
for f in "${FILES[@]}"; do
    case $f in *.mmd) MMD+=("$f") ;; esac
done
if [ ${#FILES[@]} -eq 0 ]; then
    echo "1..0"
    echo "# no *.mmd or *.dot file in $GRAPH_DIR"
    exit 1
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/render-check.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

# Mermaid: install the pinned packages, then parse every file in one node run.
declare -A MERMAID_RESULT=()
MERMAID_SETUP_ERROR=
if [ ${#MMD[@]} -gt 0 ]; then
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
        MERMAID_SETUP_ERROR="node and npm are needed (Debian: apt-get install -y nodejs npm)"
    else
        mkdir -p "$NPM_DIR"
        if ! cmp -s "$HERE/package-lock.json" "$NPM_DIR/package-lock.json" ||
            [ ! -d "$NPM_DIR/node_modules/mermaid" ] || [ ! -d "$NPM_DIR/node_modules/jsdom" ]; then
            cp "$HERE/package.json" "$HERE/package-lock.json" "$NPM_DIR/"
            if ! (cd "$NPM_DIR" && npm ci --no-audit --no-fund --loglevel=error) >"$WORK/npm.log" 2>&1; then
                MERMAID_SETUP_ERROR="npm ci failed: $(tail -5 "$WORK/npm.log" | tr '\n' ' ')"
                rm -f "$NPM_DIR/package-lock.json"    # retry next time
            fi
        fi
        # ESM resolves "mermaid" from the script's own directory upwards.
        cp "$HERE/mermaid_parse.mjs" "$NPM_DIR/"
    fi
    if [ -z "$MERMAID_SETUP_ERROR" ]; then
        node "$NPM_DIR/mermaid_parse.mjs" "${MMD[@]}" >"$WORK/mermaid.out" 2>"$WORK/mermaid.err"
        while IFS= read -r line; do
            case $line in
                "ok "*) MERMAID_RESULT["${line#ok }"]=ok ;;
                "fail "*)
                    rest=${line#fail }
                    for f in "${MMD[@]}"; do
                        if [ "${rest#"$f: "}" != "$rest" ]; then
                            MERMAID_RESULT["$f"]=${rest#"$f: "}
                        fi
                    done
                    ;;
            esac
        done <"$WORK/mermaid.out"
        if [ ! -s "$WORK/mermaid.out" ]; then
            MERMAID_SETUP_ERROR="mermaid_parse.mjs failed: $(head -5 "$WORK/mermaid.err" | tr '\n' ' ')"
        fi
    fi
fi

echo "1..${#FILES[@]}"
n=0
failed=0
for f in "${FILES[@]}"; do
    n=$((n + 1))
    name=${f#"$GRAPH_DIR"/}
    why=
    case $f in
        *.dot)
            if ! command -v dot >/dev/null; then
                why="graphviz (dot) is not installed"
            elif ! dot -Tsvg -o "$WORK/out.svg" "$f" 2>"$WORK/dot.err"; then
                why="dot failed: $(head -5 "$WORK/dot.err" | tr '\n' ' ')"
            elif grep -qiE 'error|syntax' "$WORK/dot.err"; then
                why="dot complained: $(head -5 "$WORK/dot.err" | tr '\n' ' ')"
            elif ! grep -q '<svg' "$WORK/out.svg"; then
                why="dot produced no SVG"
            fi
            ;;
        *.mmd)
            if [ -n "$MERMAID_SETUP_ERROR" ]; then
                why=$MERMAID_SETUP_ERROR
            elif [ -z "${MERMAID_RESULT[$f]+set}" ]; then
                why="no result from the mermaid parser"
            elif [ "${MERMAID_RESULT[$f]}" != ok ]; then
                why="mermaid: ${MERMAID_RESULT[$f]}"
            fi
            ;;
    esac
    if [ -z "$why" ]; then
        echo "ok $n - $name renders"
        if [ "${f##*.}" = dot ] && [ -s "$WORK/dot.err" ]; then
            sed 's/^/# dot: /' "$WORK/dot.err" | head -5
        fi
    else
        failed=$((failed + 1))
        echo "not ok $n - $name renders"
        echo "# $why"
    fi
done
[ "$failed" -eq 0 ]
