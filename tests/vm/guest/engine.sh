#!/bin/sh
# The engine inside the guest, on the kmod provider's memory: routed
# experts streamed into /dev/dsv4 EXPERT_STAGING regions and CSA entries in
# KV_SPILL regions give the same logits as the resident run, byte for byte.
rc=0
n=0
t() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n engine: $2"; else echo "not ok $n engine: $2"; rc=1; fi; }
dsv4-mkmodel --preset tiny-b --seed 2 /tmp/eng >/dev/null; t $? "dsv4-mkmodel tiny-b"
toks=5,9,200,31,7,7,7,1,90,91,92,93,94,95,96,97,120,3,4,5
dsv4-run --model /tmp/eng --tokens $toks --n-predict 3 --threads 2 --dump-logits /tmp/res.bin \
	>/tmp/res.txt 2>&1
t $? "resident run"
DSV4_PROVIDER=kmod dsv4-run --model /tmp/eng --tokens $toks --n-predict 3 --threads 2 \
	--experts stream --cache-experts 6 --stats --dump-logits /tmp/str.bin >/tmp/str.txt 2>&1
t $? "streamed run on kmod memory"
grep -q "memory provider kmod" /tmp/str.txt; t $? "the kmod provider was chosen"
grep -q "(kmod memory)" /tmp/str.txt; t $? "the expert cache lives in /dev/dsv4 regions"
cmp -s /tmp/res.bin /tmp/str.bin; t $? "logits bitwise equal to the resident run"
grep -E 'streamed|KV after' /tmp/str.txt | sed 's/^/# /'
rm -rf /tmp/eng /tmp/res.bin /tmp/str.bin
echo "1..$n"
exit $rc
