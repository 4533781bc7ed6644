#!/usr/bin/env bash
# Runs a fuzz target, for CI and for long runs alike.
#   fuzz/run.sh TARGET SECONDS   fuzz for SECONDS from fuzz/corpus/TARGET (new inputs are added
#                                to it); a crash, timeout or memory blow-up fails with the input
#                                in fuzz/artifacts/TARGET/
#   fuzz/run.sh TARGET cmin      minimize fuzz/corpus/TARGET before committing it
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`). See fuzz/README.md.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh TARGET SECONDS|cmin}
what=${2:?usage: fuzz/run.sh TARGET SECONDS|cmin}

# Largest input worth trying: a little above the largest realistic file of the target.
case "$target" in
    case) max_len=8192 ;;       # cases are about 1 KB
    policy) max_len=40000 ;;    # the largest policy file is 29 KB
    fhir_bundle) max_len=32768 ;;  # PAS request Bundles are 10 to 25 KB
    *) max_len=16384 ;;
esac

# Stable toolchain: no sanitizer by default (see "Toolchain" in README.md for this choice);
# FUZZ_SANITIZER=address builds with AddressSanitizer through RUSTC_BOOTSTRAP, about 6x slower.
sanitizer=${FUZZ_SANITIZER:-none}
# 16 codegen units: the FHIR model crate builds in minutes instead of a quarter of an hour with
# cargo-fuzz's default of 1, for slightly slower runs; FUZZ_CODEGEN_UNITS=1 for long runs.
build=(--sanitizer "$sanitizer" --target-dir "target/$sanitizer" --codegen-units "${FUZZ_CODEGEN_UNITS:-16}")
# FUZZ_PROFILE=dev (CI's short runs): unoptimized, built in about a third of the time of an
# optimized build (the FHIR model crate dominates both), running 20 to 50 times slower; enough
# to replay every corpus and search a little. Long runs keep the default, optimized.
if [ "${FUZZ_PROFILE:-release}" = dev ]; then
    build=(--dev --sanitizer "$sanitizer" --target-dir "target/$sanitizer-dev")
fi
[ "$sanitizer" = none ] || export RUSTC_BOOTSTRAP=1
options=(-max_len="$max_len" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10)
[ -f "dicts/$target.dict" ] && options+=(-dict="dicts/$target.dict")
mkdir -p "corpus/$target"

if [ "$what" = cmin ]; then
    # One input per covered edge, hit counts aside: a tenth of the size of a full minimization,
    # the same coverage to start from.
    exec cargo fuzz cmin "${build[@]}" "$target" "corpus/$target" -- "${options[@]}" -use_counters=0
fi
exec cargo fuzz run "${build[@]}" "$target" "corpus/$target" -- \
    "${options[@]}" -max_total_time="$what" -print_final_stats=1
