#!/usr/bin/env bash
# make fuzz: builds the libFuzzer executables of Fuzz/ (one per parser of
# outside input) and runs each for FUZZ_SECONDS (default 60) from its seed
# corpus in fixtures/fuzz/<target>/. Fails on any crash, leak or timeout;
# the input that caused it is copied into fixtures/fuzz/<target>/ as
# crash-*, where the normal test suite (CorpusTests) runs it from then on.
# FUZZ_TARGETS="notes pins" limits the run to some targets.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-60}
flags=(-Xswiftc -sanitize=fuzzer,address)
swift build --package-path Fuzz "${flags[@]}"
bin=$(swift build --package-path Fuzz "${flags[@]}" --show-bin-path)
work=.build/fuzz
mkdir -p "$work"
targets=${FUZZ_TARGETS:-$(ls fixtures/fuzz)}
failed=0
printf '%-14s %12s %10s  %s\n' target executions exec/s result
for t in $targets; do
  mkdir -p "$work/corpus/$t" "$work/artifacts"
  rm -f "$work/artifacts/$t-"*
  log="$work/$t.log"
  # New inputs go to the first folder (under .build); the seeds stay as they are.
  if "$bin/fuzz-$t" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 \
       -print_final_stats=1 -artifact_prefix="$work/artifacts/$t-" "$work/corpus/$t" "fixtures/fuzz/$t" >"$log" 2>&1; then
    result=ok
  else
    result="FAILED (see $log)"
    failed=1
    for found in "$work/artifacts/$t-"*; do
      [ -e "$found" ] || continue
      cp "$found" "fixtures/fuzz/$t/$(basename "$found" | sed "s/^$t-//")"
      result="$result; input saved as fixtures/fuzz/$t/$(basename "$found" | sed "s/^$t-//")"
    done
  fi
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  printf '%-14s %12s %10s  %s\n' "$t" "${runs:-?}" "${rate:-?}" "$result"
done
exit $failed
