#!/usr/bin/env bash
# Benchmark: the latency of `lifeboat wal-push` per 16 MiB WAL segment, beside
# `pgbackrest archive-push` on the same segments, each into a local repository of its own.
#
# It starts a throwaway PostgreSQL 15 on a free loopback port whose archive_command copies
# every completed segment aside, writes with pgbench, bulk inserts and pg_switch_wal until at least
# --segments segments are there, then pushes each of them once with each tool, alternating
# (lifeboat, pgbackrest, lifeboat, …) so that both meet the same machine noise. Both compress
# with zstd level 3 and checksum; pgbackrest runs synchronously (archive-async=n). Prints
# the median and p95 per segment of each, and the ratio of the medians (target: below 1).
#
#   Benchmarks/wal-push.sh [--segments N] [--keep]
#
# Needs: PostgreSQL 15 server programs (postgresql-15), pgbackrest (Debian package), python3,
# root (the server runs as the `postgres` user), and a release build with the Swift runtime
# linked statically (made here, in .build/static).
set -euo pipefail
cd "$(dirname "$0")/.."

segments=60
keep=0
while (($#)); do
    case "$1" in
        --segments) segments=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

command -v pgbackrest >/dev/null || { echo "pgbackrest not found (apt-get install pgbackrest)" >&2; exit 1; }

# wal-push runs once per segment, so its start-up counts: the build to install links the
# Swift runtime statically (it starts 10–25 ms sooner than a dynamically linked one).
echo "== building lifeboat (release, Swift runtime linked statically)"
swift build -c release --static-swift-stdlib --product lifeboat --scratch-path .build/static >/dev/null
lifeboat=$(swift build -c release --static-swift-stdlib --scratch-path .build/static --show-bin-path)/lifeboat

work=$(mktemp -d /tmp/lifeboat-walbench-XXXXXX)
chmod 755 "$work"
mkdir -p "$work/segments"
chown postgres "$work/segments"
source Benchmarks/throwaway-postgres.sh
echo "archiving every completed segment into $work/segments"
start_postgres "-c archive_mode=on -c archive_command='cp %p $work/segments/%f'"

echo "== writing WAL until $segments segments are archived aside"
# pgbench's own WAL (its initialisation, then transactions), with bulk inserts of text rows
# between rounds so that the segments come quickly enough.
"$pgbin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -i -q -s 10 postgres >/dev/null 2>&1
psql_ -c "create table filler (id int, v text)"
while (($(ls "$work/segments" | grep -cE '^[0-9A-F]{24}$') < segments)); do
    "$pgbin/pgbench" -h 127.0.0.1 -p "$port" -U postgres -n -c 2 -T 2 postgres >/dev/null 2>&1
    psql_ -c "insert into filler select g, md5(g::text) || md5((g * 7)::text) from generate_series(1, 200000) g"
    psql_ -c "select pg_switch_wal()" >/dev/null
    sleep 0.5
done
ls "$work/segments" | grep -E '^[0-9A-F]{24}$' | sort | head -n "$segments" > "$work/names"
echo "segments: $(wc -l < "$work/names") of $(stat -c %s "$work/segments/$(head -1 "$work/names")") bytes"

# Lifeboat: a physical policy archiving into a local repository.
mkdir -p "$work/config/policies"
cat > "$work/config/lifeboat.yaml" <<YAML
repositories:
  bench: { path: $work/lifeboat-repository }
default_repository: bench
YAML
cat > "$work/config/policies/bench.yaml" <<YAML
policy: bench
source:
  postgres: { conninfo: "host=127.0.0.1 port=$port user=postgres", wal: { push_parallel: 1 } }
compression: { algorithm: zstd, level: 3 }
YAML

# pgBackRest: a stanza for the same cluster, zstd level 3, synchronous archive-push.
cat > "$work/pgbackrest.conf" <<CONF
[global]
repo1-path=$work/pgbackrest-repository
compress-type=zst
compress-level=3
archive-async=n
lock-path=$work/pgbackrest-lock
log-path=$work/pgbackrest-log
log-level-console=warn
log-level-file=off
start-fast=y

[bench]
pg1-path=$work/data
pg1-port=$port
pg1-socket-path=$work
pg1-user=postgres
CONF
mkdir -p "$work/pgbackrest-repository" "$work/pgbackrest-lock" "$work/pgbackrest-log"
chown -R postgres "$work/pgbackrest-repository" "$work/pgbackrest-lock" "$work/pgbackrest-log" "$work/config"
chmod 644 "$work/pgbackrest.conf"
as_pg pgbackrest --config="$work/pgbackrest.conf" --stanza=bench stanza-create >/dev/null

echo "== pushing each segment with each tool, alternating (as the postgres user, in the data directory)"
python3 - "$work" "$lifeboat" <<'PY'
import os, statistics, subprocess, sys, time
work, lifeboat = sys.argv[1], sys.argv[2]
names = open(os.path.join(work, "names")).read().split()
data = os.path.join(work, "data")
env = dict(os.environ, LOG_LEVEL="warn")
def run(argv):
    start = time.perf_counter()
    done = subprocess.run(["runuser", "-u", "postgres", "--"] + argv, cwd=data, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{argv[0]} failed ({done.returncode}): {done.stderr.decode()}")
    return elapsed
# runuser alone, to show what it adds to every figure.
overhead = statistics.median(run(["/bin/true"]) for _ in range(20))
times = {"lifeboat": [], "pgbackrest": []}
# The machine is shared: the 1-minute load average before, every 10 segments, and after.
loads = [os.getloadavg()[0]]
for index, name in enumerate(names):
    if index % 10 == 9:
        loads.append(os.getloadavg()[0])
    path = os.path.join(work, "segments", name)
    times["lifeboat"].append(run([lifeboat, "--config", os.path.join(work, "config"), "wal-push", "bench", path]))
    times["pgbackrest"].append(run(["pgbackrest", f"--config={work}/pgbackrest.conf", "--stanza=bench", "archive-push", path]))
def p95(values):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
def size(directory):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(directory) for f in files)
print()
loads.append(os.getloadavg()[0])
print(f"{len(names)} segments of 16 MiB; milliseconds per segment (runuser adds {overhead * 1000:.1f} ms to each)")
print(f"load average (1 min) while pushing: {min(loads):.2f}–{max(loads):.2f} on {os.cpu_count()} CPUs")
print(f"{'':28}{'median ms':>10}{'p95 ms':>10}{'mean ms':>10}{'repository MiB':>16}")
repos = {"lifeboat": "lifeboat-repository", "pgbackrest": "pgbackrest-repository"}
labels = {"lifeboat": "lifeboat wal-push", "pgbackrest": "pgbackrest archive-push"}
for tool in ["lifeboat", "pgbackrest"]:
    values = times[tool]
    print(f"{labels[tool]:28}{statistics.median(values) * 1000:10.1f}{p95(values) * 1000:10.1f}"
          f"{statistics.mean(values) * 1000:10.1f}{size(os.path.join(work, repos[tool])) / 2**20:16.1f}")
ratio = statistics.median(times["lifeboat"]) / statistics.median(times["pgbackrest"])
print()
print(f"median ratio lifeboat/pgbackrest: {ratio:.2f} (target < 1) {'PASS' if ratio < 1 else 'FAIL'}")
PY
