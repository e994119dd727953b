#!/usr/bin/env bash
# The full crash sweep (issue 11): every operation of the crash harness (`CrashHarness` in
# Tests/LifeboatIntegrationTests/CrashHarness.swift) — files backup, prune, files restore, a
# scheduled run, an S3 mirror run, wal-push, a PostgreSQL base backup, a base backup's
# restore --delta and a drill, each on a local and an S3 (moto) repository — killed with SIGKILL at 12 points chosen by store operation count
# and 8 chosen by time (`swift test` runs 2 + 1 of each), each kill followed by the recovery
# checks. Prints each case's count and the total of kill points that were tried, all of which
# must have recovered (the exit status is swift test's).
#
#   Benchmarks/crash-sweep.sh          (LIFEBOAT_CRASH_ONLY="s3 mirror,prune" to sweep only those)
#
# Needs what the integration tests need (scripts/test installs it): PostgreSQL server
# programs, python3 with moto; root or the postgres user for the PostgreSQL cases.
set -euo pipefail
cd "$(dirname "$0")/.."

log=$(mktemp /tmp/lifeboat-crash-sweep-XXXXXX.log)
start=$(date +%s)
set +e
LIFEBOAT_CRASH_SWEEP=full swift test --filter CrashHarness 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e
end=$(date +%s)

echo
echo "crash sweep: per case"
grep '^crash sweep: .* kill points (' "$log" | sed 's/^crash sweep: /  /; s/; [0-9]* kill points so far.*//' || true
total=$(grep -o 'crash sweep: .*: [0-9]* kill points (' "$log" | sed 's/.*: \([0-9]*\) kill points (/\1/' | awk '{ s += $1 } END { print s + 0 }')
echo "crash sweep: $total kill points tried in $((end - start)) s; swift test exit status $status (log: $log)"
exit "$status"
