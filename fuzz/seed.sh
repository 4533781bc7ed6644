#!/usr/bin/env bash
# Adds seeds from the repository's shared examples to fuzz/corpus/TARGET, then minimizes the
# corpus (`cargo fuzz cmin`: only inputs that add coverage stay).
# Usage: fuzz/seed.sh [TARGET...]   (default: case policy)
set -euo pipefail
cd "$(dirname "$0")"
root=..
seeds=$(mktemp -d)
trap 'rm -rf "$seeds"' EXIT

seed_case() {
    local dir=$seeds/case
    mkdir -p "$dir"
    for file in "$root"/tests/cases/E*.json "$root"/tests/cases/invalid/*.json; do
        [ "$(basename "$file")" = expected.json ] || cp "$file" "$dir/$(basename "$file")"
    done
    # Generated cases: every field the generator knows, some left unknown.
    cargo run -q --manifest-path "$root/Cargo.toml" -p priorauth-cli -- \
        cases generate --count 300 --seed 7 --unknown-percent 20 |
        split -l 1 -a 3 - "$dir/generated-"
}

seed_policy() {
    local dir=$seeds/policy
    mkdir -p "$dir"
    cp "$root"/policies/*.toml "$root"/crates/priorauth-core/tests/fixtures/*.toml "$dir/"
    # Two versions of one policy in one input (see FILE_SEPARATOR in harness/policy.rs).
    local policy=$root/policies/express-scripts-blincyto.toml
    {
        sed -e 's/^version = .*/version = "2024-01-01"/' -e 's/^effective = .*/effective = "2024-01-01"/' "$policy"
        printf '\n#%%%% next file\n'
        sed -e 's/^effective = .*/effective = "2025-09-10"\nsupersedes = ["2024-01-01"]/' "$policy"
    } >"$dir/two-versions.toml"
}

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(case policy)
for target in "${targets[@]}"; do
    "seed_$target"
    mkdir -p "corpus/$target"
    cp "$seeds/$target"/* "corpus/$target/"
    ./run.sh "$target" cmin
done
