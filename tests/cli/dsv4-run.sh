#!/usr/bin/env bash
# dsv4-run from outside, as users and the server's tests will drive it: bad
# arguments are a clear error and a non-zero exit; a run on a tiny model
# prints token ids and writes the documented logits file (header line, then
# rows*vocab float32), whose last row picks the first generated token; the
# chunked prefill writes the same greedy tokens.  TAP on stdout.
set -uo pipefail
top=$(cd "$(dirname "$0")/../.." && pwd)
bin=${BUILD:-$top/build}/bin
run=$bin/dsv4-run
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
n=0
rc=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n $2"; else echo "not ok $n $2"; rc=1; fi; }
expect() {	# expect STATUS PATTERN ARGS...
	local want=$1 pat=$2 out s
	shift 2
	out=$("$run" "$@" 2>&1); s=$?
	[ "$s" = "$want" ] && grep -qE -- "$pat" <<< "$out"
	t $? "dsv4-run $* -> exit $want /$pat/ (got $s: $(head -1 <<< "$out"))"
}
"$bin/dsv4-mkmodel" --preset tiny-c --seed 3 "$work/m" > /dev/null
t $? "dsv4-mkmodel tiny-c"
m=$work/m
expect 2 usage
expect 0 usage --help
expect 2 usage --model "$m"
expect 2 "comma-separated" --model "$m" --tokens 1,,2
expect 2 "comma-separated" --model "$m" --tokens 1,2,
expect 2 "comma-separated" --model "$m" --tokens -4
expect 2 "comma-separated" --model "$m" --tokens abc
expect 2 "bad option value" --model "$m" --tokens 1 --numerics fast
expect 2 "bad option value" --model "$m" --tokens 1 --threads x
expect 2 "bad option value" --model "$m" --tokens 1 --chunk 0
expect 2 "bad option value" --model "$m" --tokens 1 --n-predict -1
expect 1 "outside the vocabulary" --model "$m" --tokens 1,99999
expect 1 "No such file|config" --model "$work/none" --tokens 1
expect 1 "kernels" --model "$m" --tokens 1 --kernels avx9000
expect 1 "dsv4-run: .*(No such file|write)" --model "$m" --tokens 1 --dump-logits /nonexistent/dir/f
out=$("$run" --model "$m" --tokens 5,9,200,31,7,7,7,1 --n-predict 6 --dump-logits "$work/l.bin" \
	--numerics exact --threads 2)
t $? "greedy run: $out"
grep -qE '^[0-9]+(,[0-9]+){5}$' <<< "$out"
t $? "six token ids printed"
python3 - "$work/l.bin" "$out" <<'PY'
import array, sys
f = open(sys.argv[1], "rb")
hdr = f.readline().split()
assert hdr[:2] == [b"dsv4-logits", b"rows"] and hdr[3] == b"vocab", hdr
rows, vocab = int(hdr[2]), int(hdr[4])
a = array.array("f"); a.frombytes(f.read())
assert rows == 8 + 6 - 1 and len(a) == rows * vocab, (rows, vocab, len(a))
toks = [int(x) for x in sys.argv[2].split(",")]
for i, tk in enumerate(toks):          # row 7+i predicts token i
    row = a[(7 + i) * vocab:(8 + i) * vocab]
    assert max(range(vocab), key=row.__getitem__) == tk, (i, tk)
PY
t $? "logits file: header, size, argmax of each row = the printed tokens"
out2=$("$run" --model "$m" --tokens 5,9,200,31,7,7,7,1 --n-predict 6 --chunk 3 --numerics exact)
[ "$out2" = "$out" ]
t $? "chunked prefill gives the same tokens ($out2)"
out3=$("$run" --model "$m" --tokens 5,9,200,31,7,7,7,1 --n-predict 6 --numerics reference --kernels scalar)
t $? "reference numerics, scalar kernels: $out3"
err=$("$run" --model "$m" --tokens 5,9,200,31,7,7,7,1 --kv-main model1 --kv-index fp8 --stats 2>&1 >/dev/null)
t $? "MODEL1 main entries, FP8 keys"
grep -q "KV after 8 tokens" <<< "$err"; t $? "--stats reports the KV tiers"
expect 2 "bad option value" --model "$m" --tokens 1 --kv-main fp4
echo "1..$n"
exit $rc
