#!/usr/bin/env bash
# Benchmark: a logical backup of a >= 1 GB PostgreSQL database by `lifeboat backup`, beside
# the shell pipe it replaces, `pg_dump -Fc -Z0 | zstd -3 > file`, on the same database in
# the same run.
#
# It starts a throwaway PostgreSQL 15 on a free loopback port, fills it with pgbench at
# scale 50 plus a table of random bytes, then measures both with /usr/bin/time (wall time,
# peak RSS: of the largest single process, pg_dump and zstd for the pipe, Lifeboat itself
# for the backup) and prints the figures and the ratio. Targets: Lifeboat's wall time at
# most 1.0x the pipe's (medians); its peak RSS below 150 MiB.
#
#   Benchmarks/pg-logical-backup.sh [--scale N] [--random-mb N] [--runs N] [--baseline BIN] [--keep]
#
# --runs N repeats the measurements N times, interleaved (pipe, lifeboat, pipe, lifeboat,
# ...) so that the noise of a shared machine hits both alike, and prints every run, the
# per-run ratios and the medians. --baseline BIN also backs up the same database with
# another lifeboat binary (an earlier build, to compare a change), in the same rotation.
# After the last run, `lifeboat verify` checks the backup and `zstd -t` / GNU tar read the
# artifact back.
#
# Needs: PostgreSQL 15 server and client programs (postgresql-15, contrib for pgcrypto),
# GNU time (Debian package `time`), zstd, GNU tar, and a release build (made here).
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
command -v zstd >/dev/null || { echo "zstd not found (apt-get install zstd)" >&2; exit 1; }

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

measure() {  # measure NAME COMMAND... → prints "wall_seconds peak_rss_kib cpu_seconds"
    local name=$1 wall rss user system; shift
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f "%e %M %U %S" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" \
        || { echo "$name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
    read -r wall rss user system < "$work/$name.time"
    echo "$wall $rss $(python3 -c "print(f'{$user + $system:.2f}')")"
}

# Each measurement appends "name wall_seconds peak_rss_kib cpu_seconds" to results (CPU:
# user + system of the command and the children it waited for, so pg_dump in both; never
# the PostgreSQL server).
results="$work/results"
: > "$results"
run_pipe() {
    rm -f "$work/pipe.dump.zst"
    local figures
    figures=$(measure pipe bash -o pipefail -c \
        "'$pgbin/pg_dump' -h 127.0.0.1 -p $port -U postgres --format=custom --compress=0 bench | zstd -q -3 > '$work/pipe.dump.zst'")
    echo "pipe $figures" >> "$results"
    stat -c %s "$work/pipe.dump.zst" > "$work/pipe.size"
    rm -f "$work/pipe.dump.zst"
    echo "  pipe      $figures"
}
run_lifeboat() {  # run_lifeboat NAME BINARY REPOSITORY
    local name=$1 binary=$2 repository=$3 figures
    rm -rf "$repository"
    sed -i "s|path: .*|path: $repository }|" "$work/config/lifeboat.yaml"
    figures=$(measure "$name" env LOG_LEVEL=warn "$binary" backup bench --config "$work/config" --json)
    echo "$name $figures" >> "$results"
    du -sb "$repository" | cut -f1 > "$work/$name.size"
    printf '  %-9s %s\n' "$name" "$figures"
}

for ((run = 1; run <= runs; run++)); do
    echo "== run $run of $runs (wall seconds, peak RSS KiB, CPU seconds)"
    run_pipe
    if [[ -n $baseline ]]; then run_lifeboat baseline "$baseline" "$work/repository-baseline"; fi
    run_lifeboat lifeboat "$lifeboat" "$work/repository"
done

echo "== checking the last backup"
env LOG_LEVEL=warn "$lifeboat" verify bench latest --config "$work/config" >/dev/null \
    || { echo "lifeboat verify failed" >&2; exit 1; }
artifact=$(find "$work/repository" -name '*.tar.zst' -path '*/data/*' | head -1)
zstd -q -t "$artifact" || { echo "zstd -t failed on $artifact" >&2; exit 1; }
entries=$(zstd -q -dc "$artifact" | tar -tf - | wc -l) || { echo "GNU tar could not read $artifact" >&2; exit 1; }
echo "lifeboat verify: ok; zstd -t: ok; GNU tar lists $entries entries of $(basename "$artifact")"

python3 - "$db_bytes" "$results" "$work" <<'PY'
import statistics, sys, os
db = int(sys.argv[1]); work = sys.argv[3]
mib = 1024 * 1024
runs = {}
for line in open(sys.argv[2]):
    name, wall, rss, cpu = line.split()
    runs.setdefault(name, []).append((float(wall), int(rss) / 1024, float(cpu)))
def size(name):
    path = os.path.join(work, name + ".size")
    return int(open(path).read()) / mib if os.path.exists(path) else None
labels = {"pipe": "pg_dump -Fc -Z0 | zstd -3", "baseline": "lifeboat backup (baseline)", "lifeboat": "lifeboat backup"}
print()
print(f"database: {db / mib:.0f} MiB; {len(runs['lifeboat'])} run(s), interleaved; every run's wall seconds, then the median")
print(f"{'':28}{'runs (wall s)':>34}{'median s':>10}{'range s':>12}{'CPU s':>8}{'peak RSS MiB':>14}{'MiB/s':>8}{'output MiB':>12}")
median = {}
for name in ["pipe", "baseline", "lifeboat"]:
    if name not in runs: continue
    walls = [w for w, _, _ in runs[name]]
    median[name] = statistics.median(walls)
    rss = max(r for _, r, _ in runs[name])
    cpu = statistics.median(c for _, _, c in runs[name])
    out = size(name)
    print(f"{labels[name]:28}{' '.join(f'{w:.1f}' for w in walls):>34}{median[name]:10.1f}"
          f"{f'{min(walls):.1f}-{max(walls):.1f}':>12}{cpu:8.1f}{rss:14.1f}{db / mib / median[name]:8.1f}"
          + (f"{out:12.1f}" if out is not None else ""))
print()
def compare(name):
    ratios = [a[0] / b[0] for a, b in zip(runs[name], runs["pipe"])]
    return ratios, median[name] / median["pipe"]
ratios, ratio = compare("lifeboat")
print(f"lifeboat / pipe per run: {' '.join(f'{r:.2f}' for r in ratios)} (median {statistics.median(ratios):.2f}, range {min(ratios):.2f}-{max(ratios):.2f})")
print(f"wall time ratio lifeboat / pipe (medians): {ratio:.2f} (target <= 1.00) {'PASS' if ratio <= 1.0 else 'FAIL'}")
lbr = max(r for _, r, _ in runs["lifeboat"])
print(f"lifeboat peak RSS: {lbr:.1f} MiB (target < 150) {'PASS' if lbr < 150 else 'FAIL'}")
if "baseline" in median:
    ratios, ratio = compare("baseline")
    print(f"baseline / pipe per run: {' '.join(f'{r:.2f}' for r in ratios)}; medians {ratio:.2f}")
    per = [a[0] / b[0] for a, b in zip(runs["lifeboat"], runs["baseline"])]
    print(f"lifeboat / baseline per run: {' '.join(f'{r:.2f}' for r in per)}; medians {median['lifeboat'] / median['baseline']:.2f}")
PY
