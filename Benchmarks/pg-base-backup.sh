#!/usr/bin/env bash
# Benchmark: a physical base backup of a ~1 GB PostgreSQL 15 cluster by `lifeboat backup`
# (mode: physical), beside `pg_basebackup -Ft --compress=client-zstd` of the same cluster.
#
# It starts a throwaway PostgreSQL 15 on a free loopback port with WAL archiving on, fills it
# with pgbench at scale 50 plus a table of random bytes, then measures both with
# /usr/bin/time (wall time, peak RSS), alternating, and prints every run, the medians and the
# ratio. Target: Lifeboat's wall time at most 1.0x pg_basebackup's.
#
#   Benchmarks/pg-base-backup.sh [--scale N] [--random-mb N] [--runs N] [--keep]
#
# Until `lifeboat wal-push` exists, the server archives with `cp %p <spool>/%f` and a shell
# loop stores each file in the repository's WAL archive layout (tar.zst: the file, then
# `<name>.sha256`), as wal-push will: Lifeboat's time includes waiting for that WAL, as
# pg_basebackup's (-X stream, its default) includes receiving it.
#
# Needs: PostgreSQL 15 server and client programs, contrib (pgcrypto), GNU time and GNU tar
# with zstd, and a release build (made here).
set -euo pipefail
cd "$(dirname "$0")/.."

scale=50
random_mb=300
keep=0
runs=3
while (($#)); do
    case "$1" in
        --scale) scale=$2; shift 2 ;;
        --random-mb) random_mb=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
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
mkdir -p "$work/spool"
chown -R postgres "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
as_pg() { runuser -u postgres -- "$@"; }
shipper=""
cleanup() {
    [[ -n $shipper ]] && kill "$shipper" 2>/dev/null || true
    as_pg "$pgbin/pg_ctl" -D "$work/data" -m fast stop >/dev/null 2>&1 || true
    if ((keep)); then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

echo "== starting PostgreSQL 15 on 127.0.0.1:$port"
as_pg "$pgbin/initdb" -U postgres --auth=trust -D "$work/data" >/dev/null
as_pg "$pgbin/pg_ctl" -D "$work/data" -l "$work/postgres.log" -w \
    -o "-p $port -k $work -c listen_addresses=127.0.0.1 -c fsync=off -c max_wal_size=4GB -c archive_mode=on -c archive_command='cp %p $work/spool/%f'" \
    start >/dev/null
psql_() { "$pgbin/psql" -h 127.0.0.1 -p "$port" -U postgres -v ON_ERROR_STOP=1 -qAt "$@"; }

echo "== loading: pgbench scale $scale + ${random_mb} MB of random bytes"
psql_ -c "create database bench"
"$pgbin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -q -s "$scale" bench 2>&1 | tail -1
psql_ -d bench -c "create extension pgcrypto"
psql_ -d bench -c "create table random_bytes (id int primary key, data bytea)"
rows=$((random_mb * 1024))   # 1 KiB a row
psql_ -d bench -c "insert into random_bytes select g, gen_random_bytes(1024) from generate_series(1, $rows) g"
psql_ -d bench -c "vacuum analyze"
psql_ -c "checkpoint"
cluster_bytes=$(psql_ -c "select sum(pg_database_size(datname)) from pg_database")
echo "cluster size (databases): $((cluster_bytes / 1024 / 1024)) MiB"

mkdir -p "$work/config/policies"
cat > "$work/config/lifeboat.yaml" <<YAML
repositories:
  bench: { path: $work/repository }
default_repository: bench
YAML
cat > "$work/config/policies/bench.yaml" <<YAML
policy: bench
source:
  postgres: { conninfo: "host=127.0.0.1 port=$port user=postgres dbname=postgres", checkpoint: fast }
YAML

# Stores every archived file under <repository>/bench/wal/<TTTTTTTTLLLLLLLL>/<name>.tar.zst.
ship_wal() {
    while true; do
        for path in "$work"/spool/*; do
            [[ -f $path ]] || continue
            name=$(basename "$path")
            dir="$work/repository/bench/wal/${name:0:16}"
            [[ -e $dir/$name.tar.zst ]] && continue
            mkdir -p "$dir" "$work/ship"
            cp "$path" "$work/ship/$name"
            (cd "$work/ship" && sha256sum "$name" > "$name.sha256" \
                && tar --zstd -cf "$dir/.$name.tmp" "$name" "$name.sha256" && mv "$dir/.$name.tmp" "$dir/$name.tar.zst" \
                && rm -f "$name" "$name.sha256" "$path")
        done
        sleep 0.2
    done
}
ship_wal & shipper=$!

# The load wrote ~1 GB of WAL: let it all be archived and shipped first, so that no backup
# waits behind that backlog.
echo "== waiting for the load's WAL to be archived"
psql_ -c "select pg_switch_wal()" >/dev/null
while [[ -n $(ls "$work/spool") || -n $(ls "$work/data/pg_wal/archive_status" | grep '\.ready$' || true) ]]; do sleep 1; done

measure() {  # measure NAME COMMAND... → prints "wall_seconds peak_rss_kib cpu_seconds"
    local name=$1; shift
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f "%e %M %U %S" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" \
        || { echo "$name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
    awk '{ printf "%s %s %.2f\n", $1, $2, $3 + $4 }' "$work/$name.time"
}

results="$work/results"
: > "$results"
for ((run = 1; run <= runs; run++)); do
    echo "== run $run of $runs"
    rm -rf "$work/basebackup"
    echo "pg_basebackup $(measure pg_basebackup "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -Ft \
        --compress=client-zstd --checkpoint=fast -D "$work/basebackup")" >> "$results"
    du -sb "$work/basebackup" | cut -f1 > "$work/pg_basebackup.size"
    rm -rf "$work/repository/bench/backups"
    echo "lifeboat $(measure lifeboat env LOG_LEVEL=info "$lifeboat" backup bench --config "$work/config" --json)" >> "$results"
    du -sb "$work/repository/bench/backups" | cut -f1 > "$work/lifeboat.size"
    grep -o '"artifact.seconds":"[0-9.]*"' "$work/lifeboat.err" | tr '\n' ' ' | sed 's/^/  artifact seconds: /'; echo
done

python3 - "$cluster_bytes" "$results" "$work" <<'PY'
import statistics, sys, os
db = int(sys.argv[1]); work = sys.argv[3]
mib = 1024 * 1024
runs = {}
for line in open(sys.argv[2]):
    name, wall, rss, cpu = line.split()
    runs.setdefault(name, []).append((float(wall), int(rss) / 1024, float(cpu)))
labels = {"pg_basebackup": "pg_basebackup -Ft client-zstd", "lifeboat": "lifeboat backup (physical)"}
print()
print(f"cluster: {db / mib:.0f} MiB; {len(runs['lifeboat'])} run(s); every run's wall seconds, then the median")
print(f"{'':32}{'runs (wall s)':>28}{'median s':>10}{'client CPU s':>14}{'peak RSS MiB':>14}{'output MiB':>12}")
median = {}
for name in ["pg_basebackup", "lifeboat"]:
    walls = [w for w, _, _ in runs[name]]
    median[name] = statistics.median(walls)
    cpu = statistics.median(c for _, _, c in runs[name])
    rss = max(r for _, r, _ in runs[name])
    out = int(open(os.path.join(work, name + ".size")).read()) / mib
    print(f"{labels[name]:32}{' '.join(f'{w:.1f}' for w in walls):>28}{median[name]:10.1f}{cpu:14.1f}{rss:14.1f}{out:12.1f}")
ratio = median["lifeboat"] / median["pg_basebackup"]
print(f"\nwall time ratio lifeboat/pg_basebackup (medians): {ratio:.2f} (target <= 1.00) {'PASS' if ratio <= 1.0 else 'FAIL'}")
PY
