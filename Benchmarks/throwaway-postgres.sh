# Sourced by the benchmarks: a throwaway PostgreSQL 15 in "$work" (which the caller made),
# run as the `postgres` OS user on a free loopback port, stopped and removed on exit (kept
# with keep=1).
#
#   start_postgres [EXTRA POSTGRES OPTIONS]   initdb into $work/data and start the server
#   psql_ ARGS…                               psql to it as postgres, quiet, stopping on errors
#   as_pg COMMAND…                            run a command as the postgres user

pgbin=/usr/lib/postgresql/15/bin
[[ -x $pgbin/initdb ]] || { echo "PostgreSQL 15 not found in $pgbin (apt-get install postgresql-15)" >&2; exit 1; }

chown postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
    as_pg "$pgbin/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
    if ((${keep:-0})); then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

start_postgres() {
    echo "== starting PostgreSQL 15 on 127.0.0.1:$port"
    as_pg "$pgbin/initdb" -U postgres --auth=trust -D "$work/data" >/dev/null
    as_pg "$pgbin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w \
        -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c max_wal_size=4GB ${1:-}" start >/dev/null
}
psql_() { "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }
