#!/usr/bin/env bash
# What the dataplane's metrics cost the packet path: the pipeline benchmark built twice from this tree, normal
# (per-packet and per-flow counters, one metrics snapshot per timed round) and with the `uncounted` feature (no
# counters, no snapshot), run alternately in one go (counted/uncounted, then uncounted/counted, ...) so that load
# on the machine hits both alike. Prints, per scenario, the median over the runs of each run's median Mpps
# (wall clock and per CPU-second) and the difference.
#
# With --instructions, counts instead the instructions executed inside `Dataplane::process` per packet under
# callgrind (valgrind), which does not depend on the load on the machine: RUNS runs per build and scenario
# (default 3; the flow table's hash seed is random per run, so a run's count moves by a few instructions), the
# builds alternated, and prints the median, the range and the difference. Packets per scenario include the
# warm-up: 1,100,736 per established scenario and 999,680 for first packets (PIPELINE_PACKETS=100000,
# PIPELINE_NEW_FLOWS=100000).
#
# Usage: crates/dataplane/benches/metrics_cost.sh [PAIRS (default 5)] [SCENARIO FILTER]
#        crates/dataplane/benches/metrics_cost.sh --instructions [RUNS (default 3)]
set -euo pipefail
mode=time
if [[ ${1:-} == --instructions ]]; then
    mode=instructions
    shift
fi
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

if [[ $mode == instructions ]]; then
    # Instructions inside `Dataplane::process` per packet of one run of `scenario` with one build.
    instructions() {
        local variant=$1 scenario=$2 packets=1100736
        [[ $scenario == new_flows ]] && packets=999680
        PIPELINE_PACKETS=100000 PIPELINE_NEW_FLOWS=100000 valgrind --tool=callgrind \
            --callgrind-out-file="$work/callgrind.out" --toggle-collect='*Dataplane>::process' \
            "$work/$variant" --bench "$scenario" >/dev/null 2>"$work/valgrind.log"
        # awk reads to the end: exiting early would fail the pipeline (pipefail) with a broken pipe.
        callgrind_annotate "$work/callgrind.out" | awk -v n="$packets" \
            '/PROGRAM TOTALS/ && !done { gsub(",", "", $1); printf "%.1f\n", $1 / n; done = 1 }'
    }
    echo "commit $(git rev-parse --short HEAD), $(date -u '+%Y-%m-%d %H:%M UTC'), $pairs runs per build and scenario"
    echo "| scenario | uncounted (instr/packet) | counted (instr/packet) | change |"
    echo "|---|---|---|---|"
    for scenario in vm_to_vm encap decap nat lb new_flows; do
        counted=() uncounted=()
        for _ in $(seq "$pairs"); do
            counted+=("$(instructions counted "$scenario")")
            uncounted+=("$(instructions uncounted "$scenario")")
        done
        python3 - "$scenario" "${uncounted[*]}" "${counted[*]}" <<'PY'
import statistics, sys
name, u, c = sys.argv[1], [float(x) for x in sys.argv[2].split()], [float(x) for x in sys.argv[3].split()]
mu, mc = statistics.median(u), statistics.median(c)
print(f"| {name} | {mu:.0f} [{min(u):.0f}–{max(u):.0f}] | {mc:.0f} [{min(c):.0f}–{max(c):.0f}] "
      f"| {mc - mu:+.0f} ({100 * (mc / mu - 1):+.1f} %) |")
PY
    done
    exit 0
fi

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
