#!/usr/bin/env bash
# Runs every Go fuzz target in the repository (func FuzzXxx in a _test.go file) for a bounded time each.
# `go test` already runs each target's seed corpus; this explores beyond it. Part of test/all.sh.
#
#   bash test/fuzz.sh                 # every target, 10s each
#   FUZZTIME=5m bash test/fuzz.sh     # longer, e.g. before a release
#   bash test/fuzz.sh ./registry/...  # only the targets under some directories
#
# A failure prints the input and writes it to testdata/fuzz/<Target>/ in the target's package: commit that
# file with the fix, and it stays in the seed corpus that every `go test` runs.
set -euo pipefail
cd "$(dirname "$0")/.."

fuzztime="${FUZZTIME:-10s}"
roots=("$@")
[ ${#roots[@]} -gt 0 ] || roots=(.)

# fuzz_one runs one target. Go 1.26's fuzzing coordinator can end a run that found nothing with "context
# deadline exceeded" when -fuzztime expires while a worker is busy (golang/go#75804, fixed in Go 1.27). A
# finding always writes its input ("Failing input written to"); a run that failed with that message and
# wrote nothing is run once more, and fails the script only if it fails again.
fuzz_one() {
  local dir="$1" name="$2" log try
  log="$(mktemp)"
  for try in 1 2; do
    if go test -run '^$' -fuzz "^${name}\$" -fuzztime "$fuzztime" "$dir" 2>&1 | tee "$log"; [ "${PIPESTATUS[0]}" -eq 0 ]; then
      rm -f "$log"
      return 0
    fi
    if [ "$try" = 1 ] && grep -q 'context deadline exceeded' "$log" && ! grep -q 'Failing input written to' "$log"; then
      echo "fuzz.sh: $name ended with the fuzzing coordinator's deadline race (golang/go#75804), nothing found; running it again" >&2
      continue
    fi
    break
  done
  rm -f "$log"
  return 1
}

targets=0
failed=()
while IFS= read -r file; do
  dir="./$(dirname "$file")"
  in_roots=false
  for root in "${roots[@]}"; do
    root="${root%/...}"
    root="${root#./}"
    root="${root%/}"
    [ "$root" = "." ] && root=""
    prefix="./${root}${root:+/}"
    case "$dir/" in "$prefix"*) in_roots=true ;; esac
  done
  $in_roots || continue
  for name in $(sed -n 's/^func \(Fuzz[A-Za-z0-9_]*\)(.*/\1/p' "$file"); do
    targets=$((targets + 1))
    printf '\n== %s %s (%s)\n' "$dir" "$name" "$fuzztime"
    if ! fuzz_one "$dir" "$name"; then
      failed+=("$dir $name")
    fi
  done
done < <(git ls-files --cached --others --exclude-standard -- '*_test.go' | grep -v '^vendor/' | sort)

printf '\n%d fuzz targets, %s each\n' "$targets" "$fuzztime"
if [ ${#failed[@]} -gt 0 ]; then
  printf 'failed: %s\n' "${failed[@]}" >&2
  exit 1
fi
[ "$targets" -gt 0 ] || { echo "no fuzz targets found" >&2; exit 1; }
