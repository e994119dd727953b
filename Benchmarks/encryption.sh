#!/usr/bin/env bash
# Benchmark: backup throughput with repository encryption on, beside the same backup with it
# off. Target: with encryption, at least 0.9x the throughput without (median wall times).
#
# It makes one files tree (half random bytes, half compressible text; 1 GiB by default), then
# backs it up with `lifeboat backup` into two local repositories — one plain, one with
# `encryption: { key_file: … }` — N runs each, interleaved (plain, encrypted, plain, …) so
# that the noise of a shared machine hits both alike. Each run writes into a fresh repository.
# It prints every run's wall seconds, the medians, throughputs and the ratio, then restores
# the last encrypted backup and compares it with the tree.
#
#   Benchmarks/encryption.sh [--runs N] [--size-mib N] [--keep]
#
# Needs: GNU time (Debian package `time`), a release build (made here).
set -euo pipefail
cd "$(dirname "$0")/.."

runs=3
size_mib=1024
keep=0
while (($#)); do
    case "$1" in
        --runs) runs=$2; shift 2 ;;
        --size-mib) size_mib=$2; shift 2 ;;
        --keep) keep=1; shift ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
[[ -x /usr/bin/time ]] || { echo "GNU time not found (apt-get install time)" >&2; exit 1; }

echo "== building lifeboat (release)"
swift build -c release --product lifeboat >/dev/null
lifeboat=$(swift build -c release --show-bin-path)/lifeboat

work=$(mktemp -d /tmp/lifeboat-bench-encryption-XXXXXX)
cleanup() { if ((keep)); then echo "kept $work"; else rm -rf "$work"; fi; }
trap cleanup EXIT

echo "== making a ${size_mib} MiB tree (half random, half compressible) in $work/src"
mkdir -p "$work/src/random" "$work/src/text"
half=$((size_mib / 2)); files=$(( half / 64 > 0 ? half / 64 : 1 ))
for ((i = 0; i < files; i++)); do
    head -c $((64 << 20)) /dev/urandom > "$work/src/random/$i.bin"
done
python3 - "$work/src/text" "$half" <<'PY'
import os, random, sys
directory, mib = sys.argv[1], int(sys.argv[2])
words = [w.strip() for w in open("/usr/share/dict/words")] if os.path.exists("/usr/share/dict/words") else \
    ["backup", "restore", "lifeboat", "chunk", "cipher", "repository", "manifest", "policy", "verify", "archive"]
rng = random.Random(42)
n = max(1, mib // 8)
for i in range(n):
    with open(os.path.join(directory, f"{i}.txt"), "w") as f:
        written = 0
        while written < 8 << 20:
            line = " ".join(rng.choice(words) for _ in range(12)) + "\n"
            f.write(line)
            written += len(line)
PY
du -sm "$work/src" | awk '{print "tree: " $1 " MiB"}'

head -c 32 /dev/urandom | base64 > "$work/bench.key"
chmod 600 "$work/bench.key"
mkdir -p "$work/plain/policies" "$work/encrypted/policies"
echo 'policy: tree
source: { files: { path: '"$work/src"' } }' | tee "$work/plain/policies/tree.yaml" > "$work/encrypted/policies/tree.yaml"

run_one() {  # run_one plain|encrypted N
    local mode=$1 n=$2 conf="$work/$1"
    rm -rf "$work/repo-$mode"
    if [[ $mode == encrypted ]]; then
        printf 'repositories:\n  r: { path: %s, encryption: { key_file: %s } }\ndefault_repository: r\n' "$work/repo-$mode" "$work/bench.key" > "$conf/lifeboat.yaml"
    else
        printf 'repositories:\n  r: { path: %s }\ndefault_repository: r\n' "$work/repo-$mode" > "$conf/lifeboat.yaml"
    fi
    sync
    /usr/bin/time -f "%e %M" -o "$work/$mode.$n.time" "$lifeboat" backup tree --config "$conf" > /dev/null 2> "$work/$mode.$n.err" \
        || { cat "$work/$mode.$n.err" >&2; exit 1; }
    echo "$mode run $n: $(cut -d' ' -f1 "$work/$mode.$n.time") s"
}

echo "== $runs run(s) each, interleaved"
for ((n = 1; n <= runs; n++)); do
    run_one plain "$n"
    run_one encrypted "$n"
done

echo "== restoring the last encrypted backup and comparing"
"$lifeboat" restore tree latest --to "$work/restored" --config "$work/encrypted" > /dev/null
diff -r "$work/src" "$work/restored" && echo "restored tree identical"

python3 - "$work" "$runs" "$size_mib" <<'PY'
import statistics, sys
work, runs, mib = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
def times(mode):
    return [float(open(f"{work}/{mode}.{n}.time").read().split()[0]) for n in range(1, runs + 1)]
plain, encrypted = times("plain"), times("encrypted")
mp, me = statistics.median(plain), statistics.median(encrypted)
print(f"{'':12}{'runs (wall s)':>40}{'median s':>10}{'MiB/s':>8}")
for name, t, m in (("plain", plain, mp), ("encrypted", encrypted, me)):
    print(f"{name:12}{' '.join(f'{x:.2f}' for x in t):>40}{m:>10.2f}{mib / m:>8.1f}")
ratio = mp / me
print(f"throughput with encryption / without: {ratio:.3f} (target >= 0.9) — {'met' if ratio >= 0.9 else 'NOT met'}")
PY
