#!/usr/bin/env bash
# scripts/test_deb.sh -- the Debian package, built, installed and used.
#
# Installs the build dependencies that are missing (apt-get, as root),
# builds postgresql-15-agentorch with `dpkg-buildpackage -us -uc -b` in a
# copy of the tree, checks what the package holds (library, control file,
# every sql/agentorch--*.sql, every program of the Makefile's AO_PROGRAMS,
# linked into /usr/bin), installs it with `apt-get install ./...deb`, starts
# a throwaway cluster with shared_preload_libraries = 'agentorch' and the
# bundled mock LLM server, and runs the README's quick start ("Getting
# started") in psql, asserting that its runs succeed. Prints TAP.
#
# The package installs into the system's PostgreSQL (/usr/lib/postgresql/15),
# over files a `make install` may have put there: they are saved first, and
# afterwards the package is removed and they are put back (AO_KEEP_DEB=1
# keeps the package installed). With AO_PG_ROOT set (a private server copy),
# the system is left alone: the package is built and checked, not installed.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PKG=postgresql-$PG_MAJOR-agentorch
SYS_BIN=/usr/lib/postgresql/$PG_MAJOR/bin
N=0
FAILED=0
ok() {      # ok COND-STATUS DESCRIPTION
    N=$((N + 1))
    if [ "$1" -eq 0 ]; then echo "ok $N - $2"; else echo "not ok $N - $2"; FAILED=$((FAILED + 1)); fi
}
skip() { N=$((N + 1)); echo "ok $N # SKIP $1"; }
diag() { sed 's/^/# /'; }
finish() { echo "1..$N"; [ "$FAILED" -eq 0 ]; }

ao_install_deps debhelper dpkg-dev postgresql-server-dev-all >/dev/null 2>&1
ok $? "build dependencies are installed (debhelper, dpkg-dev, postgresql-server-dev-all, the libraries)"

DIR=$(mktemp -d /tmp/agentorch-deb.XXXXXX)
chmod 755 "$DIR"
MOCK_PID=
SAVED=
# restore_system: remove the package, put back the files it replaced
# (saved before it was installed); returns non-zero if one is not back.
restore_system() {
    local f rc=0
    [ -n "$SAVED" ] || return 0
    SAVED=
    DEBIAN_FRONTEND=noninteractive apt-get remove -y -qq "$PKG" >"$DIR/remove.log" 2>&1 || rc=1
    while read -r f; do
        mkdir -p "$(dirname "$f")" && cp -a "$DIR/saved$f" "$f" && cmp -s "$DIR/saved$f" "$f" || rc=1
    done <"$DIR/saved.list"
    return $rc
}
cleanup() {
    [ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null
    ao_cluster_stop "$DIR/cluster"
    restore_system
    rm -rf "$DIR"
}
trap cleanup EXIT

# A copy of the tree without build products (debian/rules clean would
# remove an in-tree build's objects; this keeps the work tree as it is).
mkdir -p "$DIR/src/agentorch"
tar -C "$AO_REPO" --exclude=./.git --exclude=./build --exclude='./build-*' --exclude=node_modules \
    --exclude='./tmp_check*' --exclude='*.o' --exclude='*.bc' --exclude='*.so' -cf - . \
    | tar -C "$DIR/src/agentorch" -xf -
T0=$(date +%s)
(cd "$DIR/src/agentorch" && dpkg-buildpackage -us -uc -b) >"$DIR/build.log" 2>&1
rc=$?
ok $rc "dpkg-buildpackage -us -uc -b builds the package ($(( $(date +%s) - T0 ))s)"
[ $rc -ne 0 ] && tail -40 "$DIR/build.log" | diag
DEB=$(ls "$DIR"/src/${PKG}_*.deb 2>/dev/null | grep -v dbgsym | head -1)
[ -n "$DEB" ]; ok $? "it made ${DEB##*/}"
[ -z "$DEB" ] && finish && exit 1

# What the package holds: what make install installs.
dpkg-deb -c "$DEB" >"$DIR/listing"
awk '{print $6}' "$DIR/listing" | sed 's|^\./|/|' >"$DIR/contents"
has() { grep -qxF "$1" "$DIR/contents"; }
has /usr/lib/postgresql/$PG_MAJOR/lib/agentorch.so && has /usr/share/postgresql/$PG_MAJOR/extension/agentorch.control
ok $? "it holds the library and the control file"
missing=
ver=$(sed -nE "s/^default_version = '(.*)'/\1/p" "$AO_REPO/agentorch.control")
for f in $(cd "$AO_REPO/sql" && ls agentorch--*.sql) agentorch--$ver.sql; do
    has /usr/share/postgresql/$PG_MAJOR/extension/$f || missing="$missing $f"
done
[ -z "$missing" ]; ok $? "it holds every install and upgrade script (agentorch--$ver.sql among them)${missing:+; missing:$missing}"
programs=$(sed -nE 's/^AO_PROGRAMS[[:space:]]*[+:]?=[[:space:]]*//p' "$AO_REPO/Makefile" | xargs)
missing=
for p in $programs; do
    has "$SYS_BIN/$p" || missing="$missing $p"
    # (grep -q on a file: in a pipeline under pipefail, grep leaving early
    # could fail the writer with SIGPIPE and the check with it)
    grep -qE "\./usr/bin/$p -> \.\./lib/postgresql/$PG_MAJOR/bin/$p\$" "$DIR/listing" || missing="$missing /usr/bin/$p"
done
[ -n "$programs" ] && [ -z "$missing" ]
ok $? "it holds the programs ($programs) in $SYS_BIN, linked into /usr/bin${missing:+; missing:$missing}"
pkgver=$(dpkg-deb -f "$DEB" Version)
case "$pkgver" in "$ver"|"$ver"[~+-]*) true ;; *) false ;; esac
ok $? "the package version ($pkgver) is the extension's default_version ($ver)"
dpkg-deb -f "$DEB" Depends | grep -q "postgresql-$PG_MAJOR"
ok $? "it depends on postgresql-$PG_MAJOR: $(dpkg-deb -f "$DEB" Depends | cut -c1-120)"

if [ -n "$AO_PG_ROOT" ]; then
    skip "not installed: AO_PG_ROOT is set (the package would install into the system's PostgreSQL)"
    finish; exit
fi
if [ "$(id -u)" -ne 0 ]; then
    skip "not installed: apt-get needs root"
    finish; exit
fi

# Save what the package will replace, unless the package is installed already.
if ! dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'install ok installed' \
    && [ "${AO_KEEP_DEB:-0}" != 1 ]; then
    mkdir -p "$DIR/saved"
    while read -r f; do
        [ -e "$f" ] || [ -L "$f" ] || continue
        [ -d "$f" ] && [ ! -L "$f" ] && continue
        mkdir -p "$DIR/saved$(dirname "$f")" && cp -a "$f" "$DIR/saved$f" && echo "$f"
    done <"$DIR/contents" >"$DIR/saved.list"
    SAVED=1
    echo "# saved $(wc -l <"$DIR/saved.list") files the package replaces, to put them back afterwards"
fi
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$DEB" >"$DIR/apt.log" 2>&1
rc=$?
ok $rc "apt-get install ./${DEB##*/}"
[ $rc -ne 0 ] && tail -20 "$DIR/apt.log" | diag
dpkg -L "$PKG" >"$DIR/dpkg-L" 2>/dev/null
grep -qx /usr/lib/postgresql/$PG_MAJOR/lib/agentorch.so "$DIR/dpkg-L" && cmp -s <(dpkg-deb --fsys-tarfile "$DEB" | tar -xOf - ./usr/lib/postgresql/$PG_MAJOR/lib/agentorch.so) /usr/lib/postgresql/$PG_MAJOR/lib/agentorch.so
ok $? "dpkg -L $PKG lists the library, and the installed file is the package's"

# A clean cluster with the packaged extension preloaded, and the mock LLM.
PG_BIN=$SYS_BIN
PORT=$(ao_free_port)
export OPENAI_API_KEY=sk-deb-test-key   # the quick start's model names this variable
ao_cluster_start "$DIR/cluster" "$PORT" >"$DIR/cluster.log" 2>&1
ok $? "a throwaway cluster starts with shared_preload_libraries = 'agentorch'"
MOCK_PORT=$(ao_free_port)
python3 "$AO_REPO/test/mock_llm/mock_llm.py" --port "$MOCK_PORT" --script "$AO_REPO/test/mock_llm/scripts/demo.json" \
    >"$DIR/mock.log" 2>&1 </dev/null &
MOCK_PID=$!
for _ in $(seq 50); do grep -q listening "$DIR/mock.log" && break; sleep 0.1; done

# The README's quick start: its first SQL block after "## Getting started",
# as typed, with the provider's URL pointed at the mock.
awk '/^## Getting started/ {g = 1} g && /^```sql$/ {s = 1; next} s && /^```$/ {exit} s' "$AO_REPO/README.md" \
    | sed "s|https://api.openai.com/v1|http://127.0.0.1:$MOCK_PORT/v1|g" >"$DIR/quickstart.sql"
[ -s "$DIR/quickstart.sql" ]; ok $? "the README's quick start has $(wc -l <"$DIR/quickstart.sql") lines of SQL"
PSQL=("$SYS_BIN/psql" -X -v ON_ERROR_STOP=1 -d postgres)
timeout 180 "${PSQL[@]}" -f "$DIR/quickstart.sql" >"$DIR/quickstart.out" 2>&1
rc=$?
ok $rc "the quick start runs in psql without an error"
[ $rc -ne 0 ] && tail -30 "$DIR/quickstart.out" | diag
q() { "${PSQL[@]}" -At -c "$1" 2>&1; }
r=$(q "SELECT status FROM agentorch.runs WHERE workflow_name IS NULL ORDER BY id LIMIT 1")
[ "$r" = succeeded ]; ok $? "the one question run succeeded ($r)"
r=$(q "SELECT status FROM agentorch.runs WHERE workflow_name = 'triage' ORDER BY id DESC LIMIT 1")
[ "$r" = succeeded ]; ok $? "the triage run got its input and succeeded ($r)"
q "SELECT output::text FROM agentorch.runs WHERE workflow_name = 'triage' ORDER BY id DESC LIMIT 1" | grep -q approved
ok $? "with the submitted answer in its output"
run=$(q "SELECT id FROM agentorch.runs WHERE workflow_name IS NULL ORDER BY id LIMIT 1")
for p in $programs; do [ "$p" = agentorch-follow ] && follow=1; done
if [ -n "${follow:-}" ]; then
    (cd / && PATH=/usr/bin:/bin timeout 60 agentorch-follow -q -t 30 "$run" "host=$PGHOST port=$PGPORT user=postgres dbname=postgres") \
        >"$DIR/follow.out" 2>&1
    ok $? "agentorch-follow (from /usr/bin, on PATH) prints the finished run and exits 0"
fi
q "SELECT extversion FROM pg_extension WHERE extname = 'agentorch'" | grep -qx "$ver"
ok $? "the extension is at $ver"

[ -n "$MOCK_PID" ] && kill "$MOCK_PID" 2>/dev/null; MOCK_PID=
ao_cluster_stop "$DIR/cluster"
if [ -n "$SAVED" ]; then
    n=$(wc -l <"$DIR/saved.list")
    restore_system
    ok $? "the package is removed again and the $n files it replaced are back, unchanged"
    ! dpkg-query -W -f='${Status}' "$PKG" 2>/dev/null | grep -q 'install ok installed'
    ok $? "$PKG is no longer installed"
fi
finish
