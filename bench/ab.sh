# Shared by the A/B cost benchmarks (bench/metrics-cost.sh, bench/tls-cost.sh), sourced: one
# `cairn bench produce` run printed as a row, and the medians of two kinds of run compared.
# Needs $bin (the binaries), $dir (scratch), $window, $secs and $size (record bytes).

ab_header() { # $1 = title
  echo "$1"
  printf '%-10s %12s %9s %9s %7s\n' run records/s p50_ms p99_ms errors
}

ab_run() { # $1 = label, rest = cairn's global flags (brokers, TLS)
  local label="$1"; shift
  "$bin/cairn" "$@" bench produce --window "$window" --record-size "$size" --duration "$secs" --warmup 3 \
    --json-out "$dir/run.json" >/dev/null 2>>"$dir/bench.log"
  python3 - "$label" "$dir/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[2]))
print(f"{sys.argv[1]:<10} {r['records_per_s']:>12.0f} {r['p50_ms']:>9.2f} {r['p99_ms']:>9.2f} {r['errors']:>7}")
PY
}

ab_compare() { # $1 = the rows printed by ab_run, $2 = label A, $3 = label B
  python3 - "$1" "$2" "$3" <<'PY'
import statistics, sys
rows = [l.split() for l in open(sys.argv[1]) if l.strip()]
a, b = sys.argv[2], sys.argv[3]
def med(label, i): return statistics.median(float(r[i]) for r in rows if r[0] == label)
x, y = med(a, 1), med(b, 1)
print(f"median records/s: {a} {x:.0f}, {b} {y:.0f} ({(y - x) / x * 100:+.1f}%)")
print(f"median p50 ms: {a} {med(a, 2):.2f}, {b} {med(b, 2):.2f}; p99 ms: {a} {med(a, 3):.2f}, {b} {med(b, 3):.2f}")
PY
}
