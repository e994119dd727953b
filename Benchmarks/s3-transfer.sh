#!/usr/bin/env bash
# Benchmark: upload and download a 1 GiB artifact to a local S3 server (moto, started here on
# loopback with signature checking on) through Lifeboat's S3 client, beside the aws CLI and
# boto3 (s3transfer) doing the same transfers against the same server, in one run.
# Prints wall time, throughput and peak RSS for each, and the ratios.
# Targets: Lifeboat at least as fast as the reference; its peak RSS below 200 MiB.
#
#   Benchmarks/s3-transfer.sh [--mib N]
#
# Needs: python3 with moto[server] and boto3, the aws CLI (pip install awscli), GNU time.
set -euo pipefail
cd "$(dirname "$0")/.."

mib=1024
while (($#)); do
    case "$1" in
        --mib) mib=$2; shift 2 ;;
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

measure() {  # measure NAME COMMAND... → prints "wall_seconds peak_rss_kib"
    local name=$1; shift
    /usr/bin/time -f "%e %M" -o "$work/$name.time" "$@" > "$work/$name.out" 2> "$work/$name.err" \
        || { echo "$name failed:" >&2; cat "$work/$name.err" >&2; exit 1; }
    cat "$work/$name.time"
}

echo "== lifeboat S3 client: upload + download"
read -r _ lb_rss < <(measure lifeboat "$bench" "$endpoint" bench lifeboat/artifact.bin "$work/artifact.bin")
read -r lb_up lb_down < <(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["upload_seconds"], d["download_seconds"])' "$work/lifeboat.out")

echo "== aws CLI: upload, download"
read -r aws_up aws_up_rss < <(measure aws-up aws --endpoint-url "$endpoint" s3 cp --only-show-errors "$work/artifact.bin" s3://bench/aws/artifact.bin)
read -r aws_down aws_down_rss < <(measure aws-down aws --endpoint-url "$endpoint" s3 cp --only-show-errors s3://bench/aws/artifact.bin "$work/aws-download.bin")

echo "== boto3 (s3transfer): upload, download"
cat > "$work/boto3_transfer.py" <<'PY'
import sys, boto3
endpoint, direction, path = sys.argv[1:]
s3 = boto3.client("s3", endpoint_url=endpoint)
if direction == "up":
    s3.upload_file(path, "bench", "boto3/artifact.bin")
else:
    s3.download_file("bench", "boto3/artifact.bin", path)
PY
read -r b3_up b3_up_rss < <(measure boto3-up python3 "$work/boto3_transfer.py" "$endpoint" up "$work/artifact.bin")
read -r b3_down b3_down_rss < <(measure boto3-down python3 "$work/boto3_transfer.py" "$endpoint" down "$work/boto3-download.bin")
cmp -s "$work/artifact.bin" "$work/aws-download.bin" || { echo "aws download differs" >&2; exit 1; }

python3 - "$mib" "$lb_up" "$lb_down" "$lb_rss" "$aws_up" "$aws_down" "$aws_up_rss" "$aws_down_rss" \
    "$b3_up" "$b3_down" "$b3_up_rss" "$b3_down_rss" <<'PY'
import sys
mib = int(sys.argv[1])
lb_up, lb_down, lb_rss, aws_up, aws_down, aws_up_rss, aws_down_rss, b3_up, b3_down, b3_up_rss, b3_down_rss = map(float, sys.argv[2:])
print()
print(f"object: {mib} MiB, moto on loopback")
print(f"{'':24}{'upload s':>10}{'MiB/s':>8}{'download s':>12}{'MiB/s':>8}{'peak RSS MiB':>14}")
def row(name, up, down, rss):
    print(f"{name:24}{up:10.1f}{mib / up:8.1f}{down:12.1f}{mib / down:8.1f}{rss / 1024:14.1f}")
row("lifeboat S3Store", lb_up, lb_down, lb_rss)
row("aws s3 cp", aws_up, aws_down, max(aws_up_rss, aws_down_rss))
row("boto3 upload/download", b3_up, b3_down, max(b3_up_rss, b3_down_rss))
print()
best_up, best_down = min(aws_up, b3_up), min(aws_down, b3_down)
print(f"upload: lifeboat/best reference time {lb_up / best_up:.2f} ({'PASS' if lb_up <= best_up else 'FAIL'}: target <= 1.00)")
print(f"download: lifeboat/best reference time {lb_down / best_down:.2f} ({'PASS' if lb_down <= best_down else 'FAIL'}: target <= 1.00)")
print(f"lifeboat peak RSS: {lb_rss / 1024:.1f} MiB ({'PASS' if lb_rss / 1024 < 200 else 'FAIL'}: target < 200)")
PY
