#!/usr/bin/env bash
# Benchmark: upload and download a 1 GiB artifact to a local S3 server (moto, started here on
# loopback with signature checking on) through Lifeboat's S3 client, beside the aws CLI and
# boto3 (s3transfer) doing the same transfers against the same server, in one run.
# Prints wall time, throughput, CPU time and peak RSS for each, and the ratios.
# Targets: Lifeboat at least as fast as the best reference; its peak RSS below 200 MiB.
#
#   Benchmarks/s3-transfer.sh [--mib N] [--runs N] [--upload-only] [--baseline BIN]
#
# --runs N repeats the transfers N times on the same server, interleaved: each run measures
# every tool once, the order rotating from one run to the next, so that the noise of a shared
# machine (and the state of the server) hits them alike. Every run is printed with the load
# average before it, then the medians and the per-run ratios.
# --upload-only skips the downloads (moto serves ranged reads at ~12 MiB/s to every client,
# so they take minutes and say little).
# --baseline BIN also runs another s3-transfer-bench binary (an earlier build, to compare a
# change) in the same rotation.
#
# Lifeboat's and boto3's times are the transfer's own, measured inside the process (no
# start-up, no client set-up; for Lifeboat not the digest it takes of the file first); the
# aws CLI's is its process's wall time, Python start-up included (~0.6 s here), which is why
# boto3 (the same s3transfer code) is the reference that counts. CPU: user + system; for
# Lifeboat that of the upload alone (getrusage), for the others their whole process.
#
# Needs: python3 with moto[server] and boto3, the aws CLI (pip install awscli), GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

mib=1024
runs=1
upload_only=0
baseline=""
while (($#)); do
    case "$1" in
        --mib) mib=$2; shift 2 ;;
        --runs) runs=$2; shift 2 ;;
        --upload-only) upload_only=1; shift ;;
        --baseline) baseline=$(realpath "$2"); shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ -x /usr/bin/time ]] || { echo "GNU time not found (apt-get install time)" >&2; exit 1; }
command -v aws >/dev/null || { echo "the aws CLI is not installed (pip install awscli)" >&2; exit 1; }

echo "== building s3-transfer-bench (release)"
swift build -c release --product s3-transfer-bench >/dev/null
bench=$(swift build -c release --show-bin-path)/s3-transfer-bench

work=$(mktemp -d /tmp/lifeboat-s3bench-XXXXXX)
mkfifo "$work/server-stdin"
python3 Tests/Fixtures/s3_server.py --bucket bench < "$work/server-stdin" > "$work/server.json" 2> "$work/server.log" &
server_pid=$!
exec 4> "$work/server-stdin"   # keep the server's stdin open until we are done
cleanup() { exec 4>&-; wait "$server_pid" 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
for _ in $(seq 100); do [[ -s $work/server.json ]] && break; sleep 0.1; done
read -r endpoint key secret < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["endpoint"], d["access_key_id"], d["secret_access_key"])' "$work/server.json")
export AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=us-east-1
unset AWS_CA_BUNDLE  # a plain-HTTP endpoint; botocore would try to load it anyway
echo "== S3 server (moto) at $endpoint"

echo "== writing ${mib} MiB of random bytes"
head -c $((mib * 1024 * 1024)) /dev/urandom > "$work/artifact.bin"

# The first upload to a fresh server is slower (the server's heap grows, its code warms up):
# one untimed upload first, so that it slows none of the measured ones.
echo "== warming the server up (one untimed upload)"
aws --endpoint-url "$endpoint" s3 cp --only-show-errors "$work/artifact.bin" s3://bench/warm-up/artifact.bin

cat > "$work/boto3_transfer.py" <<'PY'
import sys, time, boto3
endpoint, direction, path = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint)
start = time.monotonic()  # the transfer's own time, as Lifeboat's: no start-up, no client set-up
if direction == "up":
    s3.upload_file(path, "bench", "boto3/artifact.bin")
else:
    s3.download_file("bench", "boto3/artifact.bin", path)
print(f"{time.monotonic() - start:.3f}")
PY

measure() {  # measure NAME COMMAND... → prints "wall_seconds peak_rss_kib cpu_seconds"
    local name=$1 wall rss user system; shift
    /usr/bin/time -f "%e %M %U %S" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" \
        || { echo "$name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
    read -r wall rss user system < "$work/$name.time"
    echo "$wall $rss $(python3 -c "print(f'{$user + $system:.2f}')")"
}

# Each measurement appends "run tool direction seconds peak_rss_kib cpu_seconds load" to results.
results="$work/results"
: > "$results"
run_lifeboat() {  # run_lifeboat RUN NAME BINARY LOAD
    local run=$1 name=$2 binary=$3 load=$4 wall rss cpu up down upcpu downcpu
    local environment=()
    ((upload_only)) && environment=(BENCH_UPLOAD_ONLY=1)
    read -r wall rss cpu < <(measure "$name" env "${environment[@]}" "$binary" "$endpoint" bench "$name/artifact.bin" "$work/artifact.bin")
    read -r up down upcpu downcpu < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["upload_seconds"], d.get("download_seconds", 0), d.get("upload_cpu_seconds", 0), d.get("download_cpu_seconds", 0))' "$work/$name.out")
    echo "$run $name up $up $rss $upcpu $load" >> "$results"
    ((upload_only)) || echo "$run $name down $down $rss $downcpu $load" >> "$results"
    printf '  %-9s up %6.2f s (CPU %5.2f s)%s  peak RSS %6.1f MiB  process %s s\n' "$name" "$up" "$upcpu" \
        "$( ((upload_only)) || printf '  down %6.2f s' "$down")" "$(python3 -c "print($rss / 1024)")" "$wall"
}
run_aws() {  # run_aws RUN LOAD
    local run=$1 load=$2 wall rss cpu
    read -r wall rss cpu < <(measure aws-up aws --endpoint-url "$endpoint" s3 cp --only-show-errors "$work/artifact.bin" s3://bench/aws/artifact.bin)
    echo "$run aws up $wall $rss $cpu $load" >> "$results"
    printf '  %-9s up %6.2f s (CPU %5.2f s)  peak RSS %6.1f MiB\n' aws "$wall" "$cpu" "$(python3 -c "print($rss / 1024)")"
    ((upload_only)) && return
    read -r wall rss cpu < <(measure aws-down aws --endpoint-url "$endpoint" s3 cp --only-show-errors s3://bench/aws/artifact.bin "$work/aws-download.bin")
    cmp -s "$work/artifact.bin" "$work/aws-download.bin" || { echo "aws download differs" >&2; exit 1; }
    rm -f "$work/aws-download.bin"
    echo "$run aws down $wall $rss $cpu $load" >> "$results"
    printf '  %-9s down %6.2f s  peak RSS %6.1f MiB\n' aws "$wall" "$(python3 -c "print($rss / 1024)")"
}
run_boto3() {  # run_boto3 RUN LOAD
    local run=$1 load=$2 wall rss cpu
    read -r wall rss cpu < <(measure boto3-up python3 "$work/boto3_transfer.py" "$endpoint" up "$work/artifact.bin")
    local own; own=$(cat "$work/boto3-up.out")
    echo "$run boto3 up $own $rss $cpu $load" >> "$results"
    printf '  %-9s up %6.2f s (CPU %5.2f s)  peak RSS %6.1f MiB  process %s s\n' boto3 "$own" "$cpu" "$(python3 -c "print($rss / 1024)")" "$wall"
    ((upload_only)) && return
    read -r wall rss cpu < <(measure boto3-down python3 "$work/boto3_transfer.py" "$endpoint" down "$work/boto3-download.bin")
    rm -f "$work/boto3-download.bin"
    own=$(cat "$work/boto3-down.out")
    echo "$run boto3 down $own $rss $cpu $load" >> "$results"
    printf '  %-9s down %6.2f s  peak RSS %6.1f MiB  process %s s\n' boto3 "$own" "$(python3 -c "print($rss / 1024)")" "$wall"
}

tools=(lifeboat aws boto3)
[[ -n $baseline ]] && tools=(lifeboat baseline aws boto3)
for ((run = 1; run <= runs; run++)); do
    load=$(cut -d' ' -f1 /proc/loadavg)
    echo "== run $run of $runs (load average $load: $(uptime | sed 's/.*load average: //'))"
    for ((i = 0; i < ${#tools[@]}; i++)); do
        tool=${tools[$(((i + run - 1) % ${#tools[@]}))]}
        load=$(cut -d' ' -f1 /proc/loadavg)
        case $tool in
            lifeboat) run_lifeboat "$run" lifeboat "$bench" "$load" ;;
            baseline) run_lifeboat "$run" baseline "$baseline" "$load" ;;
            aws) run_aws "$run" "$load" ;;
            boto3) run_boto3 "$run" "$load" ;;
        esac
    done
done
echo "== load average at the end: $(uptime | sed 's/.*load average: //')"

python3 - "$mib" "$results" <<'PY'
import statistics, sys
mib = int(sys.argv[1])
rows = [line.split() for line in open(sys.argv[2])]
data = {}  # (tool, direction) -> [(run, seconds, rss MiB, cpu, load)]
for run, tool, direction, seconds, rss, cpu, load in rows:
    data.setdefault((tool, direction), []).append((int(run), float(seconds), int(rss) / 1024, float(cpu), float(load)))
labels = {"lifeboat": "lifeboat S3Store", "baseline": "lifeboat (baseline)", "aws": "aws s3 cp", "boto3": "boto3 upload/download"}
tools = [t for t in labels if (t, "up") in data]
print()
runs = len(data[("lifeboat", "up")])
print(f"object: {mib} MiB, moto on loopback; {runs} run(s), interleaved; seconds of every run, then the median")
print(f"{'':24}{'direction':>10}{'runs (s)':>40}{'median s':>10}{'MiB/s':>8}{'CPU s':>8}{'peak RSS MiB':>14}")
for tool in tools:
    for direction in ["up", "down"]:
        if (tool, direction) not in data: continue
        entries = data[(tool, direction)]
        seconds = [s for _, s, _, _, _ in entries]
        m = statistics.median(seconds)
        cpu = statistics.median(c for _, _, _, c, _ in entries)
        rss = max(r for _, _, r, _, _ in entries)
        print(f"{labels[tool]:24}{direction:>10}{' '.join(f'{s:.2f}' for s in seconds):>40}{m:10.2f}{mib / m:8.1f}{cpu:8.2f}{rss:14.1f}")
print()
def best(direction, run):
    return min(s for tool in ("aws", "boto3") for r, s, _, _, _ in data[(tool, direction)] if r == run)
for name in [t for t in ("lifeboat", "baseline") if t in tools]:
    for direction in ["up", "down"]:
        if (name, direction) not in data: continue
        ratios = [s / best(direction, r) for r, s, _, _, _ in data[(name, direction)]]
        loads = [l for _, _, _, _, l in data[(name, direction)]]
        passed = sum(1 for x in ratios if x <= 1.0)
        label = "upload" if direction == "up" else "download"
        print(f"{name} {label} / best reference, per run: {' '.join(f'{x:.2f}' for x in ratios)} "
              f"(median {statistics.median(ratios):.2f}; load {' '.join(f'{l:.2f}' for l in loads)}); "
              f"<= 1.00 in {passed} of {len(ratios)} ({'PASS' if passed == len(ratios) else 'FAIL'})")
        # Each run's best reference is the faster of two noisy timings, so the per-run ratio is
        # biased against a tool timed once; the medians compare like with like.
        medians = {tool: statistics.median(s for _, s, _, _, _ in data[(tool, direction)]) for tool in ("aws", "boto3")}
        reference = min(medians, key=medians.get)
        ours = statistics.median(s for _, s, _, _, _ in data[(name, direction)])
        print(f"{name} {label} median / best reference's median ({reference}): {ours:.2f} / {medians[reference]:.2f} s = "
              f"{ours / medians[reference]:.2f} ({'PASS' if ours <= medians[reference] else 'FAIL'})")
    rss = max(r for _, _, r, _, _ in data[(name, "up")])
    print(f"{name} peak RSS: {rss:.1f} MiB ({'PASS' if rss < 200 else 'FAIL'}: target < 200)")
if "baseline" in tools:
    per = [a[1] / b[1] for a, b in zip(data[("lifeboat", "up")], data[("baseline", "up")])]
    print(f"lifeboat / baseline upload per run: {' '.join(f'{x:.2f}' for x in per)} (median {statistics.median(per):.2f})")
PY
