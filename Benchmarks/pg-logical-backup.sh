#!/usr/bin/env bash
# Benchmark: a logical backup of a >= 1 GB PostgreSQL database by `lifeboat backup`, beside
# `pg_dump --format=custom` of the same database, in one run.
#
# It starts a throwaway PostgreSQL 15 on a free loopback port, fills it with pgbench at
# scale 50 plus a table of random bytes, then measures both with /usr/bin/time (wall time,
# peak RSS) and prints the figures and the ratios. Targets: Lifeboat's peak RSS below
# 150 MiB; its wall time at most 1.2x pg_dump's.
#
#   Benchmarks/pg-logical-backup.sh [--scale N] [--random-mb N] [--runs N] [--baseline BIN] [--keep]
#
# --runs N runs every measurement N times (these machines are noisy) and prints each run and
# the median. --baseline BIN also backs up the same database with another lifeboat binary (an
# earlier build, to show a change does not make backups slower), alternating with this one.
#
# Needs: PostgreSQL 15 server and client programs (postgresql-15, contrib for pgcrypto),
# GNU time (Debian package `time`), and a release build (made here).
set -euo pipefail
cd "$(dirname "$0")/.."

scale=50
random_mb=300
keep=0
runs=1
baseline=""
while (($#)); do
    case "$1" in
        --scale) scale=$2; shift 2 ;;
        --random-mb) random_mb=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --baseline) baseline=$(realpath "$2"); shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

[[ -x /usr/bin/time ]] || { echo "GNU time not found (apt-get install time)" >&2; exit 1; }

echo "== building lifeboat (release)"
swift build -c release --product lifeboat >/dev/null
lifeboat=$(swift build -c release --show-bin-path)/lifeboat

work=$(mktemp -d /tmp/lifeboat-bench-XXXXXX)
source Benchmarks/throwaway-postgres.sh
start_postgres

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
  postgres: { mode: logical, conninfo: "host=127.0.0.1 port=$port user=postgres dbname=postgres", databases: [bench], globals: false }
YAML

measure() {  # measure NAME COMMAND... → prints "wall_seconds peak_rss_kib"
    local name=$1; shift
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" \
        || { echo "$name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
    cat "$work/$name.time"
}

# Each measurement appends "name wall_seconds peak_rss_kib" to results.
results="$work/results"
: > "$results"
run_lifeboat() {  # run_lifeboat NAME BINARY REPOSITORY
    local name=$1 binary=$2 repository=$3
    rm -rf "$repository"
    sed -i "s|path: .*|path: $repository }|" "$work/config/lifeboat.yaml"
    echo "$name $(measure "$name" env LOG_LEVEL=warn "$binary" backup bench --config "$work/config" --json)" >> "$results"
    du -sb "$repository" | cut -f1 > "$work/$name.size"
}

for ((run = 1; run <= runs; run++)); do
    echo "== run $run of $runs"
    echo "pg_dump $(measure pg_dump "$pgbin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres --format=custom -f "$work/bench.dump" bench)" >> "$results"
    stat -c %s "$work/bench.dump" > "$work/pg_dump.size"
    echo "pg_dump_z0 $(measure pg_dump_z0 "$pgbin/pg_dump" -h 127.0.0.1 -p "$port" -U postgres --format=custom --compress=0 -f "$work/bench-z0.dump" bench)" >> "$results"
    rm -f "$work/bench.dump" "$work/bench-z0.dump"
    if [[ -n $baseline ]]; then run_lifeboat baseline "$baseline" "$work/repository-baseline"; fi
    run_lifeboat lifeboat "$lifeboat" "$work/repository"
    echo "verify $(measure verify env LOG_LEVEL=warn "$lifeboat" verify bench latest --config "$work/config")" >> "$results"
done

python3 - "$db_bytes" "$results" "$work" <<'PY'
import statistics, sys, os
db = int(sys.argv[1]); work = sys.argv[3]
mib = 1024 * 1024
runs = {}
for line in open(sys.argv[2]):
    name, wall, rss = line.split()
    runs.setdefault(name, []).append((float(wall), int(rss) / 1024))
def size(name):
    path = os.path.join(work, name + ".size")
    return int(open(path).read()) / mib if os.path.exists(path) else None
labels = {"pg_dump": "pg_dump --format=custom", "pg_dump_z0": "pg_dump -Fc --compress=0",
          "baseline": "lifeboat backup (baseline)", "lifeboat": "lifeboat backup", "verify": "lifeboat verify"}
print()
print(f"database: {db / mib:.0f} MiB; {len(runs['lifeboat'])} run(s); every run's wall seconds, then the median")
print(f"{'':30}{'runs (wall s)':>28}{'median s':>10}{'peak RSS MiB':>14}{'MiB/s':>8}{'output MiB':>12}")
median = {}
for name in ["pg_dump", "pg_dump_z0", "baseline", "lifeboat", "verify"]:
    if name not in runs: continue
    walls = [w for w, _ in runs[name]]
    median[name] = statistics.median(walls)
    rss = max(r for _, r in runs[name])
    out = size(name)
    print(f"{labels[name]:30}{' '.join(f'{w:.1f}' for w in walls):>28}{median[name]:10.1f}{rss:14.1f}{db / mib / median[name]:8.1f}"
          + (f"{out:12.1f}" if out is not None and name != "verify" else ""))
print()
ratio = median["lifeboat"] / median["pg_dump"]
print(f"wall time ratio lifeboat/pg_dump (medians): {ratio:.2f} (target <= 1.20) {'PASS' if ratio <= 1.2 else 'FAIL'}")
lbr = max(r for _, r in runs["lifeboat"])
print(f"lifeboat peak RSS: {lbr:.1f} MiB (target < 150) {'PASS' if lbr < 150 else 'FAIL'}")
if "baseline" in median:
    ratios = [a / b for (a, _), (b, _) in zip(runs["lifeboat"], runs["baseline"])]
    print(f"lifeboat / baseline per run: {' '.join(f'{r:.2f}' for r in ratios)}; medians {median['lifeboat'] / median['baseline']:.2f}")
PY
