#!/usr/bin/env bash
# Benchmark: an S3 mirror policy (`source: s3`) beside `rclone sync`, on one local S3 server
# (moto, started here on loopback with signature checking on). The source bucket holds
# --small small objects (1–16 KiB) and --large-mib MiB of larger ones (20 MiB each);
# Lifeboat mirrors it into a repository in another bucket of the same server, rclone syncs it
# into a third bucket (two remotes on the same endpoint, so the bytes pass through rclone as
# they pass through Lifeboat; rclone would otherwise copy server-side).
#
# Prints, in one run: first-run time, time of a run with nothing changed (rclone: sync
# --checksum), requests made (counted at a loopback proxy, in runs of their own), peak RSS;
# then the peak RSS of a first run over --many tiny objects, to show it does not grow with
# the number of keys.
# Targets: first run <= rclone sync's time; unchanged run <= 0.5x rclone sync --checksum;
# peak RSS < 200 MiB, and not growing with the number of objects.
#
#   Benchmarks/s3-mirror.sh [--small N] [--large-mib N] [--many N]
#
# Needs: python3 with moto[server] and boto3, rclone (apt-get install rclone), GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

small=10000
large_mib=200
many=100000
while (($#)); do
    case "$1" in
        --small) small=$2; shift 2 ;;
        --large-mib) large_mib=$2; shift 2 ;;
        --many) many=$2; shift 2 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ -x /usr/bin/time ]] || { echo "GNU time not found (apt-get install time)" >&2; exit 1; }
command -v rclone >/dev/null || { echo "rclone is not installed (apt-get install rclone)" >&2; exit 1; }

echo "== building lifeboat (release)"
swift build -c release --product lifeboat >/dev/null
lifeboat=$(swift build -c release --show-bin-path)/lifeboat

work=$(mktemp -d /tmp/lifeboat-mirrorbench-XXXXXX)
mkfifo "$work/server-stdin" "$work/proxy-stdin" "$work/proxy-out"
python3 Tests/Fixtures/s3_server.py --bucket source --bucket many --bucket repo --bucket counted-repo \
    --bucket rclone --bucket rclone-counted < "$work/server-stdin" > "$work/server.json" 2> "$work/server.log" &
server_pid=$!
exec 4> "$work/server-stdin"   # keep the server's stdin open until we are done
proxy_pid=
cleanup() {
    exec 4>&- 5>&- 6<&- 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
    [[ -n $proxy_pid ]] && { kill "$proxy_pid" 2>/dev/null || true; wait "$proxy_pid" 2>/dev/null || true; }
    rm -rf "$work"
}
trap cleanup EXIT
for _ in $(seq 300); do [[ -s $work/server.json ]] && break; sleep 0.1; done
read -r endpoint key secret < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["endpoint"], d["access_key_id"], d["secret_access_key"])' "$work/server.json")
port=${endpoint##*:}
export AWS_ACCESS_KEY_ID=$key AWS_SECRET_ACCESS_KEY=$secret AWS_DEFAULT_REGION=us-east-1
unset AWS_CA_BUNDLE
echo "== S3 server (moto) at $endpoint"

# The counting proxy: commands on fd 5, answers on fd 6.
python3 Tests/Fixtures/fault_proxy.py "127.0.0.1:$port" < "$work/proxy-stdin" > "$work/proxy-out" 2> "$work/proxy.log" &
proxy_pid=$!
exec 5> "$work/proxy-stdin"
exec 6< "$work/proxy-out"
read -r proxy_ready <&6
proxy="http://127.0.0.1:$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["port"])' "$proxy_ready")"
requests_so_far() {  # requests_so_far FILE: the requests the proxy has seen, as {"requests": [[method, path, status], …]}
    echo '{"stats": true}' >&5
    head -n 1 <&6 > "$1"
}
count_since() {  # count_since FILE_BEFORE FILE_AFTER → "GET n, HEAD n, PUT n, …, total n"
    python3 - "$1" "$2" <<'PY'
import json, sys, collections
before, after = (json.load(open(path))["requests"] for path in sys.argv[1:3])
new = after[len(before):]
counts = collections.Counter()
for method, path, status in new:
    if status == "held":
        continue
    # A GET of the bucket itself (no key in the path) is a listing (rclone uses ListObjects v1).
    bucket_level = path.split("?", 1)[0].strip("/").count("/") == 0
    kind = "LIST" if method == "GET" and bucket_level and "?" in path else method
    counts[kind] += 1
print(", ".join(f"{k} {v}" for k, v in sorted(counts.items())) + f", total {sum(counts.values())}")
PY
}

echo "== filling the source: $small small objects, $large_mib MiB in 20 MiB objects; $many tiny objects in another bucket"
python3 - "$endpoint" "$small" "$large_mib" "$many" <<'PY'
import os, random, sys, concurrent.futures, boto3
endpoint, small, large_mib, many = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
s3 = boto3.client("s3", endpoint_url=endpoint, config=boto3.session.Config(max_pool_connections=32))
rng = random.Random(42)
def put(bucket, key, body):
    s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/octet-stream")
with concurrent.futures.ThreadPoolExecutor(16) as pool:
    jobs = [pool.submit(put, "source", f"small/{i // 100:04d}/{i:06d}.bin", os.urandom(rng.randint(1024, 16384))) for i in range(small)]
    jobs += [pool.submit(put, "source", f"large/{i:03d}.bin", os.urandom(20 << 20)) for i in range(large_mib // 20)]
    jobs += [pool.submit(put, "many", f"k/{i // 1000:03d}/{i:07d}", b"x") for i in range(many)]
    for job in jobs:
        job.result()
PY

config() {  # config DIR SOURCE_ENDPOINT REPOSITORY_ENDPOINT REPOSITORY_BUCKET
    mkdir -p "$1/policies"
    cat > "$1/lifeboat.yaml" <<EOF
repositories:
  bench: { s3: { endpoint: "$3", bucket: $4, prefix: lifeboat } }
default_repository: bench
state_dir: $1/state
EOF
    for policy in source many; do
        cat > "$1/policies/$policy.yaml" <<EOF
policy: $policy
source:
  s3: { endpoint: "$2", buckets: [$policy], parallel: 8 }
EOF
    done
}
config "$work/timed" "$endpoint" "$endpoint" repo
config "$work/counted" "$proxy" "$proxy" counted-repo

# Two remotes on one endpoint: rclone then streams the bytes (as Lifeboat does) instead of
# copying server-side.
rclone_remote() {  # rclone_remote NAME ENDPOINT
    local upper=${1^^}
    export "RCLONE_CONFIG_${upper}_TYPE=s3" "RCLONE_CONFIG_${upper}_PROVIDER=Other" "RCLONE_CONFIG_${upper}_ENDPOINT=$2" \
        "RCLONE_CONFIG_${upper}_ACCESS_KEY_ID=$key" "RCLONE_CONFIG_${upper}_SECRET_ACCESS_KEY=$secret" \
        "RCLONE_CONFIG_${upper}_REGION=us-east-1" "RCLONE_CONFIG_${upper}_FORCE_PATH_STYLE=true"
}
rclone_remote src "$endpoint"; rclone_remote dst "$endpoint"
rclone_remote csrc "$proxy"; rclone_remote cdst "$proxy"

measure() {  # measure NAME COMMAND... → "wall_seconds peak_rss_kib"
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" \
        || { echo "$name failed:" >&2; tail -20 "$work/$name.err" >&2; exit 1; }
    cat "$work/$name.time"
}

echo "== first runs"
read -r lb_first lb_first_rss < <(measure lb-first "$lifeboat" backup source --config "$work/timed")
read -r rc_first rc_first_rss < <(measure rc-first rclone sync --transfers 8 --checkers 8 src:source dst:rclone)
echo "== runs with nothing changed"
read -r lb_same lb_same_rss < <(measure lb-same "$lifeboat" backup source --config "$work/timed")
read -r rc_same rc_same_rss < <(measure rc-same rclone sync --checksum --transfers 8 --checkers 8 src:source dst:rclone)
read -r rc_plain rc_plain_rss < <(measure rc-plain rclone sync --transfers 8 --checkers 8 src:source dst:rclone)
echo "== $many keys: first run"
read -r lb_many lb_many_rss < <(measure lb-many "$lifeboat" backup many --config "$work/timed")

echo "== requests (through the counting proxy, runs of their own)"
requests_so_far "$work/s0"
measure lb-count-first "$lifeboat" backup source --config "$work/counted" >/dev/null
requests_so_far "$work/s1"
measure lb-count-same "$lifeboat" backup source --config "$work/counted" >/dev/null
requests_so_far "$work/s2"
measure rc-count-first rclone sync --transfers 8 --checkers 8 csrc:source cdst:rclone-counted >/dev/null
requests_so_far "$work/s3"
measure rc-count-same rclone sync --checksum --transfers 8 --checkers 8 csrc:source cdst:rclone-counted >/dev/null
requests_so_far "$work/s4"
lb_req_first=$(count_since "$work/s0" "$work/s1"); lb_req_same=$(count_since "$work/s1" "$work/s2")
rc_req_first=$(count_since "$work/s2" "$work/s3"); rc_req_same=$(count_since "$work/s3" "$work/s4")

python3 - "$small" "$large_mib" "$many" "$lb_first" "$lb_first_rss" "$rc_first" "$rc_first_rss" "$lb_same" "$lb_same_rss" \
    "$rc_same" "$rc_same_rss" "$rc_plain" "$lb_many" "$lb_many_rss" "$lb_req_first" "$lb_req_same" "$rc_req_first" "$rc_req_same" <<'PY'
import sys
a = sys.argv[1:]
small, large_mib, many = int(a[0]), int(a[1]), int(a[2])
lb_first, lb_first_rss, rc_first, rc_first_rss, lb_same, lb_same_rss, rc_same, rc_same_rss, rc_plain, lb_many, lb_many_rss = map(float, a[3:14])
lb_req_first, lb_req_same, rc_req_first, rc_req_same = a[14:18]
mib = lambda kib: kib / 1024
print()
print(f"source: {small} objects of 1-16 KiB + {large_mib} MiB in 20 MiB objects, moto on loopback (one server for everything)")
print(f"{'':36}{'wall s':>8}{'peak RSS MiB':>14}")
print(f"{'lifeboat backup, first run':36}{lb_first:8.1f}{mib(lb_first_rss):14.1f}")
print(f"{'rclone sync, first run':36}{rc_first:8.1f}{mib(rc_first_rss):14.1f}")
print(f"{'lifeboat backup, nothing changed':36}{lb_same:8.1f}{mib(lb_same_rss):14.1f}")
print(f"{'rclone sync --checksum, unchanged':36}{rc_same:8.1f}{mib(rc_same_rss):14.1f}")
print(f"{'rclone sync (size+time), unchanged':36}{rc_plain:8.1f}")
print(f"{f'lifeboat backup, {many} keys':36}{lb_many:8.1f}{mib(lb_many_rss):14.1f}")
print()
print(f"requests, lifeboat first run:      {lb_req_first}   (source and repository)")
print(f"requests, lifeboat unchanged run:  {lb_req_same}")
print(f"requests, rclone first run:        {rc_req_first}")
print(f"requests, rclone --checksum rerun: {rc_req_same}")
print()
print(f"first run: lifeboat/rclone {lb_first / rc_first:.2f} ({'PASS' if lb_first <= rc_first else 'FAIL'}: target <= 1.00)")
print(f"unchanged: lifeboat/rclone --checksum {lb_same / rc_same:.2f} ({'PASS' if lb_same <= 0.5 * rc_same else 'FAIL'}: target <= 0.50)")
peak = max(lb_first_rss, lb_same_rss, lb_many_rss) / 1024
print(f"peak RSS: {peak:.1f} MiB ({'PASS' if peak < 200 else 'FAIL'}: target < 200); {small + large_mib // 20} objects {mib(lb_first_rss):.1f} MiB, {many} keys {mib(lb_many_rss):.1f} MiB")
PY
