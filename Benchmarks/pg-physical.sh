#!/usr/bin/env bash
# Benchmark: the physical side of Lifeboat (issue 7) on ONE throwaway PostgreSQL 15 cluster of
# ~1.1 GB (pgbench scale 50 plus a table of random bytes), in one run:
#
#   1. base backup: `lifeboat backup` (physical, `checkpoint: fast`, local repository) beside
#      `pg_basebackup -Ft --compress=client-zstd --checkpoint=fast` and `pgbackrest backup`
#      (full, zst level 3, process-max=2, start-fast=y), interleaved; wall time, peak RSS and
#      CPU seconds (user + system) of each. Targets: Lifeboat <= 1.0x pg_basebackup and
#      <= 0.8x pgBackRest (medians), peak RSS < 200 MiB.
#   2. restore of the files into an empty directory: `lifeboat restore bench latest --to DIR
#      --target immediate` (recovery not started) beside `pgbackrest restore --type=immediate`
#      and beside extracting pg_basebackup's tar files (`tar --zstd -xf`, then `sync -f`, since
#      both tools sync what they write), interleaved, caches dropped before each run. Target:
#      Lifeboat <= 1.0x pgBackRest.
#   3. the `.ready` backlog under load: `pgbench -c 4 -T 60` with archive_command = `lifeboat
#      wal-push`, then the same with `pgbackrest archive-push`; the number of
#      pg_wal/archive_status/*.ready files is sampled every 0.2 s: peak, count when pgbench
#      ends, and the seconds until the backlog is gone.
#   4. wal-push latency per segment: Benchmarks/wal-push.sh (its own cluster), run at the end
#      unless --no-wal-push.
#
# During 1 and 2 the server's archive_command pushes every WAL file with both tools:
#   lifeboat --config C wal-push bench %p && pgbackrest --stanza=bench archive-push %p
# so that each backup waits for its own WAL to be archived, as the tool requires.
# The load itself is archived with /bin/true (no backup needs that WAL).
#
#   Benchmarks/pg-physical.sh [--scale N] [--random-mb N] [--runs N] [--load-seconds N]
#                             [--no-wal-push] [--wal-push-segments N] [--keep]
#
# Needs: root (the server and every tool run as the `postgres` user), PostgreSQL 15 server and
# client programs (postgresql-15, contrib for pgcrypto), pgbackrest (Debian package), GNU time,
# GNU tar with zstd, python3, and a release build with the Swift runtime linked statically
# (made here, in .build/static, as for wal-push.sh: PostgreSQL runs wal-push once per segment).
set -euo pipefail
cd "$(dirname "$0")/.."

scale=50
random_mb=300
keep=0
runs=3
load_seconds=60
wal_push=1
wal_push_segments=60
while (($#)); do
    case "$1" in
        --scale) scale=$2; shift 2 ;;
        --random-mb) random_mb=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --load-seconds) load_seconds=$2; shift 2 ;;
        --no-wal-push) wal_push=0; shift ;;
        --wal-push-segments) wal_push_segments=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

[[ -x /usr/bin/time ]] || { echo "GNU time not found (apt-get install time)" >&2; exit 1; }
command -v pgbackrest >/dev/null || { echo "pgbackrest not found (apt-get install pgbackrest)" >&2; exit 1; }
echo "== $(date -u '+%F %T UTC'); load: $(uptime)"

echo "== building lifeboat (release, Swift runtime linked statically)"
swift build -c release --static-swift-stdlib --product lifeboat --scratch-path .build/static >/dev/null
lifeboat=$(swift build -c release --static-swift-stdlib --scratch-path .build/static --show-bin-path)/lifeboat

work=$(mktemp -d /tmp/lifeboat-pgphys-XXXXXX)
chmod 755 "$work"
source Benchmarks/throwaway-postgres.sh
sampler=""
trap 'if [[ -n $sampler ]]; then kill "$sampler" 2>/dev/null || true; fi; cleanup' EXIT
# archive_command is set with ALTER SYSTEM (a -c on the command line would override it).
start_postgres "-c archive_mode=on"
status_dir="$work/data/pg_wal/archive_status"
psql_ -c "alter system set archive_command = '/bin/true'"
psql_ -c "select pg_reload_conf()" >/dev/null

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

# Lifeboat: a physical policy, local repository (both owned by postgres, which runs wal-push).
mkdir -p "$work/config/policies" "$work/repository"
cat > "$work/config/lifeboat.yaml" <<YAML
repositories:
  bench: { path: $work/repository }
default_repository: bench
YAML
cat > "$work/config/policies/bench.yaml" <<YAML
policy: bench
source:
  postgres: { conninfo: "host=127.0.0.1 port=$port user=postgres dbname=postgres", checkpoint: fast }
compression: { algorithm: zstd, level: 3 }
YAML

# pgBackRest: a stanza for the same cluster, zst level 3, two processes, synchronous push.
cat > "$work/pgbackrest.conf" <<CONF
[global]
repo1-path=$work/pgbackrest-repository
repo1-retention-full=99
compress-type=zst
compress-level=3
process-max=2
start-fast=y
archive-async=n
lock-path=$work/pgbackrest-lock
log-path=$work/pgbackrest-log
log-level-console=warn
log-level-file=off

[bench]
pg1-path=$work/data
pg1-port=$port
pg1-socket-path=$work
pg1-user=postgres
CONF
mkdir -p "$work/pgbackrest-repository" "$work/pgbackrest-lock" "$work/pgbackrest-log"
chmod 644 "$work/pgbackrest.conf"
chown -R postgres "$work/config" "$work/repository" "$work/pgbackrest-repository" "$work/pgbackrest-lock" "$work/pgbackrest-log"
pgbr=(pgbackrest --config="$work/pgbackrest.conf" --stanza=bench)
as_pg "${pgbr[@]}" stanza-create >/dev/null

lifeboat_push="$lifeboat --config $work/config wal-push bench %p"
pgbackrest_push="pgbackrest --config=$work/pgbackrest.conf --stanza=bench archive-push %p"
set_archive_command() {  # set_archive_command COMMAND: reload, switch, wait until nothing is .ready
    psql_ -c "alter system set archive_command = '$1'"
    psql_ -c "select pg_reload_conf()" >/dev/null
    sleep 1
    psql_ -c "select pg_switch_wal()" >/dev/null
    wait_for_archive
}
ready_count() { find "$status_dir" -maxdepth 1 -name '*.ready' | wc -l; }
wait_for_archive() {
    local waited=0
    while (($(ready_count) > 0)); do
        sleep 1; waited=$((waited + 1))
        if ((waited > 900)); then echo "archiving does not drain:" >&2; tail -20 "$work/postgres.log" >&2; exit 1; fi
    done
}
echo "== archive_command: both tools"
set_archive_command "$lifeboat_push && $pgbackrest_push"

measure() {  # measure NAME COMMAND... → prints "wall_seconds peak_rss_kib cpu_seconds"
    local name=$1 wall rss user system; shift
    sync; echo 3 > /proc/sys/vm/drop_caches 2>/dev/null || true
    /usr/bin/time -f "%e %M %U %S" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" \
        || { echo "$name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
    read -r wall rss user system < "$work/$name.time"
    echo "$wall $rss $(python3 -c "print(f'{$user + $system:.2f}')")"
}
if echo 3 > /proc/sys/vm/drop_caches 2>/dev/null; then echo "page cache dropped before every run"; else echo "cannot drop the page cache (not root?)"; fi

# Each measurement appends "name wall_seconds peak_rss_kib cpu_seconds" to results. CPU: user +
# system of the command and the children it waited for, never the server's (pg_basebackup's
# and Lifeboat's files are read by the server's WAL sender; pgBackRest reads them itself).
results="$work/results"
: > "$results"
record() {  # record NAME COMMAND...
    local name=$1 figures; shift
    figures=$(measure "$name" "$@")
    echo "$name $figures" >> "$results"
    printf '  %-20s %s\n' "$name" "$figures"
}
size_of() { du -sb "$1" | cut -f1; }

for ((run = 1; run <= runs; run++)); do
    echo "== backup run $run of $runs (wall seconds, peak RSS KiB, CPU seconds) — load: $(cut -d' ' -f1-3 /proc/loadavg)"
    rm -rf "$work/repository/bench/backups"
    record backup.lifeboat runuser -u postgres -- env LOG_LEVEL=info "$lifeboat" --config "$work/config" backup bench --json
    size_of "$work/repository/bench/backups" > "$work/backup.lifeboat.size"
    rm -rf "$work/basebackup"
    record backup.pg_basebackup runuser -u postgres -- "$pgbin/pg_basebackup" -h 127.0.0.1 -p "$port" -U postgres -Ft \
        --compress=client-zstd --checkpoint=fast -D "$work/basebackup"
    size_of "$work/basebackup" > "$work/backup.pg_basebackup.size"
    ((run > 1)) || echo "  (pg_basebackup wrote: $(ls "$work/basebackup" | tr '\n' ' '))"
    record backup.pgbackrest runuser -u postgres -- "${pgbr[@]}" backup --type=full
    size_of "$(ls -d "$work"/pgbackrest-repository/backup/bench/*F | tail -1)" > "$work/backup.pgbackrest.size"
done

for ((run = 1; run <= runs; run++)); do
    echo "== restore run $run of $runs (wall seconds, peak RSS KiB, CPU seconds) — load: $(cut -d' ' -f1-3 /proc/loadavg)"
    rm -rf "$work/restored"
    record restore.lifeboat runuser -u postgres -- env LOG_LEVEL=warn "$lifeboat" --config "$work/config" restore bench latest \
        --to "$work/restored" --target immediate
    size_of "$work/restored" > "$work/restore.lifeboat.size"
    rm -rf "$work/restored"; as_pg mkdir -m 700 "$work/restored"
    record restore.pgbackrest runuser -u postgres -- "${pgbr[@]}" restore --type=immediate --pg1-path="$work/restored"
    size_of "$work/restored" > "$work/restore.pgbackrest.size"
    rm -rf "$work/restored"; as_pg mkdir -m 700 "$work/restored"
    record restore.tar runuser -u postgres -- bash -c "tar --zstd -xf '$work/basebackup/base.tar.zst' -C '$work/restored' \
        && tar -xf \$(ls '$work'/basebackup/pg_wal.tar*) -C '$work/restored/pg_wal' && sync -f '$work/restored'"
    size_of "$work/restored" > "$work/restore.tar.size"
done
rm -rf "$work/restored"

# The .ready backlog under load, one archive_command at a time.
sample_ready() {  # sample_ready FILE: the count every 0.2 s, one line each, until killed
    while true; do ready_count >> "$1"; sleep 0.2; done
}
ready_phase() {  # ready_phase NAME COMMAND
    local name=$1 started ended tps
    echo "== .ready backlog: pgbench -c 4 -T $load_seconds, archive_command = $name — load: $(cut -d' ' -f1-3 /proc/loadavg)"
    set_archive_command "$2"
    : > "$work/ready.$name"
    sample_ready "$work/ready.$name" & sampler=$!
    tps=$("$pgbin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 4 -j 2 -T "$load_seconds" bench 2>&1 \
        | sed -n 's/^tps = \([0-9.]*\).*/\1/p' | head -1)
    ready_count > "$work/ready.$name.final"
    started=$(date +%s.%N)
    psql_ -c "select pg_switch_wal()" >/dev/null
    wait_for_archive
    ended=$(date +%s.%N)
    kill "$sampler"; wait "$sampler" 2>/dev/null || true; sampler=""
    echo "$name $(sort -n "$work/ready.$name" | tail -1) $(cat "$work/ready.$name.final") \
$(python3 -c "print(f'{$ended - $started:.1f}')") $tps $(wc -l < "$work/ready.$name")" >> "$work/ready.results"
    echo "  peak $(sort -n "$work/ready.$name" | tail -1), at the end of pgbench $(cat "$work/ready.$name.final"), tps $tps"
}
: > "$work/ready.results"
ready_phase lifeboat "$lifeboat_push"
ready_phase pgbackrest "$pgbackrest_push"

python3 - "$cluster_bytes" "$results" "$work" "$runs" <<'PY'
import statistics, sys, os
db, path, work, runs = int(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
mib = 1024 * 1024
figures = {}
for line in open(path):
    name, wall, rss, cpu = line.split()
    figures.setdefault(name, []).append((float(wall), int(rss) / 1024, float(cpu)))
def size(name):
    return int(open(os.path.join(work, name + ".size")).read()) / mib
def table(title, names, labels):
    print(f"\n{title}")
    print(f"{'':44}{'runs (wall s)':>22}{'median s':>10}{'CPU s (runs)':>22}{'peak RSS MiB':>14}{'MiB':>9}")
    medians = {}
    for name in names:
        walls = [w for w, _, _ in figures[name]]
        cpus = [c for _, _, c in figures[name]]
        medians[name] = statistics.median(walls)
        rss = max(r for _, r, _ in figures[name])
        print(f"{labels[name]:44}{' '.join(f'{w:.1f}' for w in walls):>22}{medians[name]:10.1f}"
              f"{' '.join(f'{c:.1f}' for c in cpus):>22}{rss:14.1f}{size(name):9.1f}")
    return medians
def ratio(medians, a, b, target, label):
    r = medians[a] / medians[b]
    print(f"  {label}: {r:.2f} (target <= {target:.2f}) {'PASS' if r <= target else 'FAIL'}")
print(f"\ncluster: {db / mib:.0f} MiB (databases); {runs} run(s) of each, interleaved; CPU s = user + system of the client")
m = table("base backup", ["backup.lifeboat", "backup.pg_basebackup", "backup.pgbackrest"], {
    "backup.lifeboat": "lifeboat backup (physical)",
    "backup.pg_basebackup": "pg_basebackup -Ft client-zstd",
    "backup.pgbackrest": "pgbackrest backup (full, zst, process-max 2)"})
ratio(m, "backup.lifeboat", "backup.pg_basebackup", 1.0, "lifeboat / pg_basebackup (medians)")
ratio(m, "backup.lifeboat", "backup.pgbackrest", 0.8, "lifeboat / pgbackrest (medians)")
rss = max(r for _, r, _ in figures["backup.lifeboat"])
print(f"  lifeboat backup peak RSS: {rss:.1f} MiB (target < 200) {'PASS' if rss < 200 else 'FAIL'}")
m = table("restore of the files into an empty directory (MiB: the restored directory)",
          ["restore.lifeboat", "restore.pgbackrest", "restore.tar"], {
    "restore.lifeboat": "lifeboat restore --target immediate",
    "restore.pgbackrest": "pgbackrest restore --type=immediate",
    "restore.tar": "tar --zstd -xf (pg_basebackup's) + sync"})
ratio(m, "restore.lifeboat", "restore.pgbackrest", 1.0, "lifeboat / pgbackrest (medians)")
print(f"  lifeboat / tar (medians): {m['restore.lifeboat'] / m['restore.tar']:.2f}")
print("\n.ready files in pg_wal/archive_status under pgbench -c 4 (sampled every 0.2 s)")
print(f"{'archive_command':28}{'peak':>6}{'at end':>8}{'drain s':>9}{'tps':>9}{'samples':>9}")
for line in open(os.path.join(work, "ready.results")):
    name, peak, final, drain, tps, samples = line.split()
    label = {"lifeboat": "lifeboat wal-push", "pgbackrest": "pgbackrest archive-push"}[name]
    print(f"{label:28}{peak:>6}{final:>8}{drain:>9}{float(tps):9.0f}{samples:>9}")
PY

if ((wal_push)); then
    echo
    echo "== wal-push latency per segment: the figures below come from Benchmarks/wal-push.sh (a cluster of its own)"
    Benchmarks/wal-push.sh --segments "$wal_push_segments"
fi
echo "== done; load: $(uptime)"
