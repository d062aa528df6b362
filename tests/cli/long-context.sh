#!/usr/bin/env bash
# A 2^16-token context on the CPU engine (the reduced version of the
# 2^20-token benchmark, tests/bench/run-long-context.sh): it completes,
# decodes after it, and its entries and keys take exactly the bytes per
# token the format says; a context beyond the model's limit is a clear
# error.  TAP on stdout.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BUILD:-$top/build}/bin
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
rc=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; rc=1; fi; }
"$bin/dsv4-mkmodel" --config "$top/tests/bench/config-long.json" --seed 1 "$work/m" >/dev/null
t $? "the long-context test model"
out=$("$bin/dsv4-run" --model "$work/m" --random-prompt 65536 --chunk 1024 --n-predict 3 \
	--numerics exact --stats 2>&1)
t $? "65536-token prefill in chunks, then decode"
echo "$out" | grep -E 'decode:|KV after' | sed 's/^/# /'
grep -qE '^[0-9]+,[0-9]+,[0-9]+$' <<< "$out"; t $? "three tokens generated"
line=$(grep 'KV after' <<< "$out")
read -r got want < <(sed -E 's/.*entries\+keys ([0-9.]+) B\/token, the format.s ([0-9.]+).*/\1 \2/' <<< "$line")
awk -v g="$got" -v w="$want" 'BEGIN { exit !(w > 0 && g / w > 0.999 && g / w < 1.001) }'
t $? "KV bytes per token = the format's ($got vs $want)"
max=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['max_position_embeddings'])" "$work/m/config.json")
err=$("$bin/dsv4-run" --model "$work/m" --random-prompt $((max + 1)) 2>&1); s=$?
[ $s = 1 ] && grep -q "more than the model takes" <<< "$err"
t $? "a context beyond max_position_embeddings ($max) is a clear error (exit $s)"
echo "1..$n"
exit $rc
