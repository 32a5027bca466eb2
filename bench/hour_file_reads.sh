#!/bin/bash
# Do hour files slow the readers, and does compaction give that back?  One demo store
# (a whole-day write stores one part.parquet per partition-day since issue #9: "days",
# the baseline), a copy converted to hour files (bench/collector_step.py:to_hour_files,
# what a collector writing minute by minute leaves: "hours") and a copy of that with
# its closed days compacted by Store.compact_closed ("compacted"), read in the same run
# by bench/rollup_queries.py: the pages' named queries (--named) and whole-table view
# scans.
#
#   flock /tmp/large.lock bench/hour_file_reads.sh [WORKDIR] [DAYS]
set -euo pipefail
cd "$(dirname "$0")/.."
work=${1:-/tmp/observatory-hour-file-reads}
days=${2:-7}
rm -rf "$work" && mkdir -p "$work"
start=$(date +%s.%N)
.venv/bin/observatory demo --store "$work/days" --days "$days" --end 2026-11-30T00:00:00 > "$work/build.log"
echo "demo build (7 regions x $days days, whole-day writes): $(echo "$(date +%s.%N) - $start" | bc) s"
cp -a "$work/days" "$work/hours"
.venv/bin/python - "$work/hours" <<'PY'
import sys
from pathlib import Path
sys.path.insert(0, "bench")
from collector_step import to_hour_files
print("converted", to_hour_files(Path(sys.argv[1])), "partitions to hour files")
PY
cp -a "$work/hours" "$work/compacted"
.venv/bin/python - "$work/compacted" <<'PY'
import sys, time
from datetime import datetime
from observatory.store import Store
store = Store(sys.argv[1])
t, cpu = time.perf_counter(), time.process_time()
with store.writer():
    done = store.compact_closed(now=datetime(2026, 12, 5))
print(f"compacted {done.compacted} partitions ({done.listed} listed) in "
      f"{time.perf_counter() - t:.1f} s, {time.process_time() - cpu:.1f} CPU-s")
PY
for layout in days hours compacted; do
  echo "Parquet files ($layout): $(find "$work/$layout/lake" -name '*.parquet' | wc -l)"
done
echo "== named queries (day files, hour files, compacted)"
.venv/bin/python bench/rollup_queries.py --named "$work/days" "$work/hours" "$work/compacted"
echo "== views over minute rows"
.venv/bin/python bench/rollup_queries.py "$work/days" "$work/hours" "$work/compacted"
