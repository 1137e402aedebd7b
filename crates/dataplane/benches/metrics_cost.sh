#!/usr/bin/env bash
# What the dataplane's metrics cost the packet path: the pipeline benchmark built twice from this tree, normal
# (per-packet and per-flow counters, one metrics snapshot per timed round) and with the `uncounted` feature (no
# counters, no snapshot), run alternately in one go (counted/uncounted, then uncounted/counted, ...) so that load
# on the machine hits both alike. Prints, per scenario, the median over the runs of each run's median Mpps
# (wall clock and per CPU-second) and the difference.
#
# Usage: crates/dataplane/benches/metrics_cost.sh [PAIRS (default 5)] [SCENARIO FILTER]
set -euo pipefail
pairs=${1:-5}
filter=${2:-}
cd "$(dirname "$0")/../../.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Builds the bench (extra cargo flags in $@) and prints the path of its executable.
build() {
    cargo bench -p ironnet-dataplane --bench pipeline --no-run --message-format=json "$@" |
        python3 -c 'import json, sys
exes = [m["executable"] for m in map(json.loads, sys.stdin)
        if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["name"] == "pipeline"]
print(exes[-1])'
}
cp "$(build)" "$work/counted"
cp "$(build --features uncounted)" "$work/uncounted"

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "load before: $(uptime)"
for i in $(seq "$pairs"); do
    if ((i % 2)); then order="counted uncounted"; else order="uncounted counted"; fi
    for variant in $order; do
        "$work/$variant" --bench $filter | sed "s/^/$variant\t/" >>"$work/results"
    done
done
echo "load after: $(uptime)"

python3 - "$work/results" "$pairs" <<'PY'
import re, statistics, sys
rows = {}
pattern = re.compile(r"^(counted|uncounted)\t(.+?)\s+([\d.]+) Mpps wall,\s+([\d.]+) Mpps per CPU-second")
for line in open(sys.argv[1]):
    m = pattern.match(line)
    if m:
        variant, name, wall, cpu = m.group(1), m.group(2).strip(), float(m.group(3)), float(m.group(4))
        rows.setdefault(name, {}).setdefault(variant, []).append((wall, cpu))
print(f"\nmedian of {sys.argv[2]} runs per build (each run: the median of its rounds)")
print("| scenario | uncounted, wall | counted, wall | change | uncounted, per CPU-s | counted, per CPU-s | change |")
print("|---|---|---|---|---|---|---|")
for name, v in rows.items():
    u, c = v.get("uncounted", []), v.get("counted", [])
    if not u or not c:
        continue
    uw, cw = statistics.median(r[0] for r in u), statistics.median(r[0] for r in c)
    uc, cc = statistics.median(r[1] for r in u), statistics.median(r[1] for r in c)
    print(f"| {name} | {uw:.2f} | {cw:.2f} | {100 * (cw / uw - 1):+.1f} % | {uc:.2f} | {cc:.2f} | {100 * (cc / uc - 1):+.1f} % |")
PY
