#!/bin/sh
# Wire-format proof for mock_llm.py with the official OpenAI and Anthropic
# Node SDKs (versions pinned in sdk_test/package-lock.json).  Prints TAP on
# stdout; exit status is non-zero on failure.  Works from any directory.
#
# Needs python3, node >= 18 and npm; when node/npm are missing and we are
# root on a Debian-like system they are installed with apt-get (Debian 12
# ships node 18).  Needs the npm registry (npm ci).
set -eu

HERE=$(CDPATH= cd -- "$(dirname -- "$0")" && pwd)

say() { echo "run_sdk_test.sh: $*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "node/npm missing; installing with apt-get"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq >&2
        apt-get install -y -qq nodejs npm >&2
    else
        say "node and npm are required (as root: apt-get install -y nodejs npm)"
        exit 2
    fi
fi

major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 18 ]; then
    say "node >= 18 required, found $(node --version)"
    exit 2
fi
if ! command -v "${PYTHON:-python3}" >/dev/null 2>&1; then
    say "python3 is required to run the mock"
    exit 2
fi

cd "$HERE/sdk_test"
# npm chatter goes to stderr so stdout stays pure TAP
npm ci --no-audit --no-fund >&2
exec node wire_test.mjs
