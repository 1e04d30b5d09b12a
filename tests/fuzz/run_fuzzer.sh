#!/usr/bin/env bash
# run_fuzzer.sh BINARY TARGET SECONDS: runs one libFuzzer binary for SECONDS
# on a scratch copy of tests/fuzz/corpus/TARGET (new inputs do not pollute
# the checked-in seeds), keeping any crashing input in
# tests/fuzz/crashers/TARGET/. Exits non-zero when the binary is missing or
# the run found a crash (or leak, timeout, OOM). Used by scripts/fuzz and the
# ctest entries fuzz.<target>. Prints libFuzzer's final stats lines.
set -euo pipefail
bin=$1 target=$2 seconds=$3
here=$(cd -- "$(dirname -- "${BASH_SOURCE[0]}")" && pwd)
if [[ ! -x $bin ]]; then
  echo "fuzzer $bin not built: run scripts/fuzz --build-only (or scripts/test)" >&2
  exit 1
fi
crashers=$here/crashers/$target
mkdir -p "$crashers"
scratch=$(mktemp -d "${TMPDIR:-/tmp}/weft-fuzz-$target.XXXXXX")
trap 'rm -rf -- "$scratch"' EXIT
log=$scratch/fuzz.log
status=0
# -print_final_stats: executions and coverage for the report. Leak checking
# stays on (ASan's default). -timeout: one input may not take 10 s.
"$bin" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
  -artifact_prefix="$crashers/" "$scratch" "$here/corpus/$target" >"$log" 2>&1 || status=$?
grep -E '^(#[0-9]+[[:space:]]+DONE|stat::|Done [0-9]+ runs)' "$log" || tail -n 5 "$log"
if ((status != 0)); then
  echo "$target: fuzzer exited $status; crashing input(s) in $crashers:" >&2
  ls -1 "$crashers" >&2 || true
  grep -E -A30 '^==[0-9]+==ERROR|runtime error|fuzz invariant failed|deadly signal' "$log" \
    | head -n 60 >&2 || true
  exit 1
fi
echo "$target: no crash in ${seconds}s"
