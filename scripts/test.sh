#!/usr/bin/env bash
# The whole test suite, as CI runs it: the release `stead` binary (the real-process suite in
# tests/ drives it), every workspace test, then the tier-2 simulation (net/ under madsim, in
# its own target dir so the normal build is untouched) over a fixed seed range.
#   STEAD_MADSIM_SEED (first seed, default 1) and STEAD_MADSIM_SEEDS (how many, default 4).
# The real-process suite needs root, iproute2, iptables and etcd 3.4 (.ci/run installs them).
set -uo pipefail
cd "$(dirname "$0")/.."
status=0
cargo build --release --locked -p stead-net --bin stead || exit 1
cargo test --workspace --locked --no-fail-fast || status=$?
first=${STEAD_MADSIM_SEED:-1}
count=${STEAD_MADSIM_SEEDS:-4}
echo "tier-2 simulation: seeds $first..$((first + count - 1)) under madsim"
MADSIM_TEST_SEED=$first MADSIM_TEST_NUM=$count RUSTFLAGS="--cfg madsim" CARGO_TARGET_DIR=target/sim \
  cargo test --locked -p stead-net --test madsim --no-fail-fast -- --nocapture || status=$?
exit "$status"
