#!/usr/bin/env bash
# Benchmark: a logical backup of a >= 1 GB PostgreSQL database by `lifeboat backup`, beside
# `pg_dump --format=custom` of the same database, in one run.
#
# It starts a throwaway PostgreSQL 15 on a free loopback port, fills it with pgbench at
# scale 50 plus a table of random bytes, then measures both with /usr/bin/time (wall time,
# peak RSS) and prints the figures and the ratios. Targets: Lifeboat's peak RSS below
# 150 MiB; its wall time at most 1.2x pg_dump's.
#
#   Benchmarks/pg-logical-backup.sh [--scale N] [--random-mb N] [--keep]
#
# Needs: PostgreSQL 15 server and client programs (postgresql-15, contrib for pgcrypto),
# GNU time (Debian package `time`), and a release build (made here).
set -euo pipefail
cd "$(dirname "$0")/.."

scale=50
random_mb=300
keep=0
while (($#)); do
    case "$1" in
        --scale) scale=$2; shift 2 ;;
        --random-mb) random_mb=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

pgbin=/usr/lib/postgresql/15/bin
[[ -x $pgbin/initdb ]] || { echo "PostgreSQL 15 not found in $pgbin (apt-get install postgresql-15)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "GNU time not found (apt-get install time)" >&2; exit 1; }

echo "== building lifeboat (release)"
swift build -c release --product lifeboat >/dev/null
lifeboat=$(swift build -c release --show-bin-path)/lifeboat

work=$(mktemp -d /tmp/lifeboat-bench-XXXXXX)
chown postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { runuser -u postgres -- "$@"; }
cleanup() {
    as_pg "$pgbin/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
    if ((keep)); then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "== starting PostgreSQL 15 on 127.0.0.1:$port"
as_pg "$pgbin/initdb" -U postgres --auth=trust -D "$work/data" >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w \
    -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c max_wal_size=4GB" start >/dev/null
psql_() { "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

echo "== loading: pgbench scale $scale + ${random_mb} MB of random bytes"
psql_ -c "create database bench"
"$pgbin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -q -s "$scale" bench 2>&1 | tail -1
psql_ -d bench -c "create extension pgcrypto"
psql_ -d bench -c "create table random_bytes (id int primary key, data bytea)"
rows=$((random_mb * 1024))   # 1 KiB a row
psql_ -d bench -c "insert into random_bytes select g, gen_random_bytes(1024) from generate_series(1, $rows) g"
psql_ -d bench -c "vacuum analyze"
db_bytes=$(psql_ -d bench -c "select pg_database_size('bench')")
echo "database size: $((db_bytes / 1024 / 1024)) MiB"

# Lifeboat's configuration for the run.
mkdir -p "$work/config/policies"
cat > "$work/config/lifeboat.yaml" <<YAML
repositories:
  bench: { path: $work/repository }
default_repository: bench
YAML
cat > "$work/config/policies/bench.yaml" <<YAML
policy: bench
source:
  postgres: { conninfo: "host=127.0.0.1 port=$port user=postgres dbname=postgres", databases: [bench], globals: false }
YAML

measure() {  # measure NAME COMMAND... → prints "wall_seconds peak_rss_kib"
    local name=$1; shift
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" \
        || { echo "$name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
    cat "$work/$name.time"
}

echo "== pg_dump --format=custom"
read -r pg_wall pg_rss < <(measure pg_dump "$pgbin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres --format=custom -f "$work/bench.dump" bench)
pg_size=$(stat -c %s "$work/bench.dump")

echo "== pg_dump --format=custom --compress=0 (the dump Lifeboat streams, for reference)"
read -r z0_wall z0_rss < <(measure pg_dump_z0 "$pgbin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres --format=custom --compress=0 -f "$work/bench-z0.dump" bench)
rm -f "$work/bench-z0.dump"

echo "== lifeboat backup"
read -r lb_wall lb_rss < <(measure lifeboat env LOG_LEVEL=warn "$lifeboat" backup bench --config "$work/config" --json)
lb_size=$(du -sb "$work/repository" | cut -f1)

echo "== lifeboat verify"
read -r vf_wall vf_rss < <(measure verify env LOG_LEVEL=warn "$lifeboat" verify bench latest --config "$work/config")

python3 - "$db_bytes" "$pg_wall" "$pg_rss" "$pg_size" "$lb_wall" "$lb_rss" "$lb_size" "$vf_wall" "$vf_rss" "$z0_wall" "$z0_rss" <<'PY'
import sys
db, pgw, pgr, pgs, lbw, lbr, lbs, vfw, vfr, z0w, z0r = sys.argv[1:]
z0w, z0r = float(z0w), int(z0r) / 1024
db, pgs, lbs = int(db), int(pgs), int(lbs)
pgw, lbw, vfw = float(pgw), float(lbw), float(vfw)
pgr, lbr, vfr = int(pgr) / 1024, int(lbr) / 1024, int(vfr) / 1024
mib = 1024 * 1024
print()
print(f"database: {db / mib:.0f} MiB")
print(f"{'':28}{'wall s':>9}{'peak RSS MiB':>14}{'MiB/s':>9}{'output MiB':>12}")
print(f"{'pg_dump --format=custom':28}{pgw:9.1f}{pgr:14.1f}{db / mib / pgw:9.1f}{pgs / mib:12.1f}")
print(f"{'pg_dump -Fc --compress=0':28}{z0w:9.1f}{z0r:14.1f}{db / mib / z0w:9.1f}{'':>12}")
print(f"{'lifeboat backup':28}{lbw:9.1f}{lbr:14.1f}{db / mib / lbw:9.1f}{lbs / mib:12.1f}")
print(f"{'lifeboat verify':28}{vfw:9.1f}{vfr:14.1f}{db / mib / vfw:9.1f}{'':>12}")
print()
ratio = lbw / pgw
print(f"wall time ratio lifeboat/pg_dump: {ratio:.2f} (target <= 1.20) {'PASS' if ratio <= 1.2 else 'FAIL'}")
print(f"lifeboat peak RSS: {lbr:.1f} MiB (target < 150) {'PASS' if lbr < 150 else 'FAIL'}")
PY
