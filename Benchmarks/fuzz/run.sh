#!/bin/sh
# libFuzzer targets over the self-contained parsers of LifeboatCore (XML, RESP), compiled
# from the sources with `swiftc -sanitize=fuzzer,address` (the toolchain's libFuzzer).
# Usage: Benchmarks/fuzz/run.sh xml|resp [libFuzzer options, e.g. -max_total_time=60]
set -eu
target=${1:?usage: run.sh xml|resp [libFuzzer options]}
shift
root=$(cd "$(dirname "$0")/../.." && pwd)
core="$root/Sources/LifeboatCore"
out="$root/.build/fuzz"
mkdir -p "$out/corpus-$target"
case "$target" in
    xml) sources="$core/XMLElement.swift" ;;
    resp) sources="$core/Redis/RESP.swift $core/Redis/RDBCheck.swift $core/Redis/CRC64.swift $core/LifeboatError.swift" ;;
    *) echo "unknown target '$target' (xml, resp)" >&2; exit 2 ;;
esac
# shellcheck disable=SC2086
swiftc -O -sanitize=fuzzer,address -parse-as-library -module-name FuzzTarget $sources "$root/Benchmarks/fuzz/$target.swift" \
    -o "$out/fuzz-$target"
exec "$out/fuzz-$target" "$out/corpus-$target" "$@"
