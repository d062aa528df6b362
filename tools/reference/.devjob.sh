set -e
mkdir -p $OUT/fx
for p in tiny-a tiny-b tiny-c; do
  build/bin/static/dsv4-mkmodel --preset $p --seed 1 /tmp/$p >/dev/null
  python3 tools/reference/run_hf.py --ckpt /tmp/$p --fixture tests/fixtures/official-$p.safetensors --out $OUT/fx/hf-$p.safetensors 2>&1 | grep -v Warning
  python3 tools/reference/envelope.py --official $PWD/.refcode --ckpt /tmp/$p --tokens 32 --runs 8 --name $p --out $OUT/fx/envelope.json
done
ls -la $OUT/fx
