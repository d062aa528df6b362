# Sourced (from the repository root) by the GPU machine's scripts
# (run-gpu-tests.sh, tests/bench/run-gpu-bench.sh, run-gpu-ab.sh): top and
# kit (build/gpu-kit), the kit's libraries on LD_LIBRARY_PATH, the tree's
# firmware unless $DSV4_FIRMWARE names one, and a scratch directory $tmp
# removed on exit.
top=$(pwd)
kit=$top/build/gpu-kit
export LD_LIBRARY_PATH=$kit/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
export DSV4_FIRMWARE=${DSV4_FIRMWARE:-$top/build/firmware/dsv4.fatbin}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
