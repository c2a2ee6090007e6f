# scripts/lib.sh -- shared by scripts/demo.sh and scripts/test.sh (sourced).
#
# Installs what is missing (Debian 12, apt-get when root), builds and
# installs the extension, and manages throwaway clusters run as the
# `postgres` OS user (initdb refuses root) on a free loopback port.

AO_REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PG_MAJOR=15
# AO_PG_ROOT: a relocated copy of the server (default /, Debian's packages);
# parallel work trees use one each so their installs do not collide.
AO_PG_ROOT=${AO_PG_ROOT:-}
PG_BIN=$AO_PG_ROOT/usr/lib/postgresql/$PG_MAJOR/bin
PG_CONFIG=$PG_BIN/pg_config
PGXS_DIR=$AO_PG_ROOT/usr/lib/postgresql/$PG_MAJOR/lib/pgxs
AO_PACKAGES="postgresql-$PG_MAJOR postgresql-server-dev-$PG_MAJOR libcurl4-openssl-dev libssl-dev libjson-c-dev
 libyaml-dev libpcre2-dev pkg-config gcc make libc6-dev libipc-run-perl json-schema-test-suite
 python3 graphviz curl ca-certificates"

ao_log() { printf '==> %s\n' "$*" >&2; }

# Install the Debian packages that are missing (needs root and apt-get).
ao_install_deps() {
    local missing=() p
    for p in $AO_PACKAGES "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -ne 0 ]; then
        ao_log "missing packages: ${missing[*]} (run as root, or install them)"; return 1
    fi
    ao_log "installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Node.js and npm for the wire and graph tests, unless some node is installed already
# (a NodeSource nodejs package ships npm itself; Debian's needs the npm package).
ao_install_node() {
    command -v node >/dev/null && command -v npm >/dev/null && return 0
    [ "$(id -u)" -eq 0 ] || { ao_log "node/npm missing (run as root, or install them)"; return 1; }
    ao_log "installing nodejs npm"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
}

# Build and install the extension into the server's directories.
ao_build_install() {
    ao_log "building agentorch"
    make -C "$AO_REPO" -s PG_CONFIG="$PG_CONFIG" AO_CFLAGS="${AO_CFLAGS:--Werror}" >/dev/null
    make -C "$AO_REPO" -s PG_CONFIG="$PG_CONFIG" install >/dev/null
}

# Print a free TCP port on 127.0.0.1 (from 54320 upwards).
ao_free_port() {
    local p
    for p in $(seq 54320 54420); do
        if ! (exec 3<>/dev/tcp/127.0.0.1/$p) 2>/dev/null; then echo "$p"; return 0; fi
    done
    return 1
}

# Run a command as the postgres OS user (or as is, when not root).
ao_as_pg() {
    if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

# ao_cluster_start DIR PORT [extra conf lines...]: initdb + start a cluster
# with agentorch preloaded; sets PGHOST/PGPORT/PGUSER for the caller.
ao_cluster_start() {
    local dir=$1 port=$2; shift 2
    mkdir -p "$dir"; chown postgres: "$dir" 2>/dev/null || true
    ao_as_pg "$PG_BIN/initdb" -D "$dir/data" -A trust -U postgres --no-sync >/dev/null
    {
        echo "port = $port"
        echo "listen_addresses = '127.0.0.1'"
        echo "unix_socket_directories = '$dir'"
        echo "shared_preload_libraries = 'agentorch'"
        echo "fsync = off"
        for l in "$@"; do echo "$l"; done
    } | ao_as_pg tee -a "$dir/data/postgresql.conf" >/dev/null
    ao_as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 start >/dev/null
    export PGHOST=$dir PGPORT=$port PGUSER=postgres
}

# ao_cluster_stop DIR: stop the cluster if it runs (safe to call twice).
ao_cluster_stop() {
    local dir=$1
    [ -f "$dir/data/postmaster.pid" ] || return 0
    ao_as_pg "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
}
