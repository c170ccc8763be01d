#!/usr/bin/env bash
# Regenerates the pictures the README shows, from the zoo's own commands with fixed seeds:
#   docs/samples/ID.png      64 samples of each trained model (`zoo sample ID -n 64 --seed 2016`); of a
#                            class-conditional one 8 of each class, a row each (`--class all -n 8`)
#   docs/completions/ID.png  each model completing test image 0 from its top half
#                            (`zoo complete ID --image … --keep-rows H/2 -n 4 --seed 2016`)
#   docs/upscale/ID.png      a multi-scale model upscaling test images 0-3 from their x[::2, ::2]
#                            (`zoo upscale ID --from-full … -n 4 --seed 2016`: input | 4 upscalings | original)
#   docs/upscale/ID.gif      the same for test image 0 alone, being drawn (`--gif`)
#   docs/drawing/ID.gif      16 samples being drawn (`zoo sample ID -n 16 --seed 2016 --gif …`), for
#                            the ids in $GIFS (default: multiscale-mnist pixelcnn-mnist)
#   docs/curves-*.png        the training curves, from docs/curves/*.csv (reference/pixelzoo_ref/plot_curves.py)
# Usage: scripts/pictures.sh [ID...]   (ZOO=path/to/zoo, PIXEL_ZOO_DATA=data dir; default: every trained model of the manifest;
#        ONLY=upscale: the upscaling pictures and the GIFs alone)
set -euo pipefail
cd "$(dirname "$0")/.."
ZOO=${ZOO:-target/release/zoo}
DATA=${PIXEL_ZOO_DATA:-../shared/data}
[ -x "$ZOO" ] || { echo "no zoo binary at $ZOO: cargo build --release -p zoo, or set ZOO" >&2; exit 1; }
ids=("$@")
# Default: every model the zoo trained (the manifest's entries less the third-party ones), so a new
# model needs no edit here.
if [ ${#ids[@]} -eq 0 ]; then
  mapfile -t ids < <("$ZOO" list --json | python3 -c 'import json, sys
for m in json.load(sys.stdin):
    if not m["third_party"]:
        print(m["id"])')
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
# Test images 0-3 of each data set as PNGs (greyscale MNIST: the zoo reads a value >= 128 as 1).
python3 - "$DATA" "$tmp" <<'PY'
import gzip, struct, sys, zlib
data, out = sys.argv[1], sys.argv[2]
def png(path, w, h, channels, pixels):
    rows = b"".join(b"\0" + pixels[r * w * channels:(r + 1) * w * channels] for r in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if channels == 1 else 2, 0, 0, 0)
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
mnist = gzip.open(f"{data}/mnist/t10k-images-idx3-ubyte.gz").read()
cifar = gzip.open(f"{data}/cifar10/test_batch_first1000.bin.gz").read()
for i in range(4):
    png(f"{out}/mnist-{i}.png", 28, 28, 1, mnist[16 + 784 * i:16 + 784 * (i + 1)])
    rec = cifar[3073 * i + 1:3073 * (i + 1)]
    png(f"{out}/cifar10-{i}.png", 32, 32, 3, bytes(rec[p + c * 1024] for p in range(1024) for c in range(3)))
PY
classes_of() { "$ZOO" list --json | python3 -c 'import json, sys
print(next(m["classes"] for m in json.load(sys.stdin) if m["id"] == sys.argv[1]))' "$1"; }
mkdir -p docs/samples docs/completions docs/upscale docs/drawing
for id in "${ids[@]}"; do
  case $id in *cifar10*) set=cifar10 half=16 ;; *) set=mnist half=14 ;; esac
  echo "$id"
  if [ "${ONLY:-}" != upscale ]; then
    # A class-conditional model: 8 samples of each class, a row per class.
    if [ "$(classes_of "$id")" -gt 0 ]; then
      "$ZOO" sample "$id" --class all -n 8 --seed 2016 -o "docs/samples/$id.png"
    else
      "$ZOO" sample "$id" -n 64 --seed 2016 -o "docs/samples/$id.png"
    fi
    "$ZOO" complete "$id" --image "$tmp/$set-0.png" --keep-rows $half -n 4 --seed 2016 -o "docs/completions/$id.png"
  fi
  case $id in multiscale-*)
    "$ZOO" upscale "$id" --from-full "$tmp/$set-"{0,1,2,3}.png -n 4 --seed 2016 -o "docs/upscale/$id.png"
    "$ZOO" upscale "$id" --from-full "$tmp/$set-0.png" -n 4 --seed 2016 -o "$tmp/upscale.png" --gif "docs/upscale/$id.gif"
  esac
  case " ${GIFS:-multiscale-mnist pixelcnn-mnist} " in *" $id "*)
    "$ZOO" sample "$id" -n 16 --seed 2016 -o "$tmp/samples.png" --gif "docs/drawing/$id.gif"
  esac
done
if [ -d docs/curves ] && [ -x .venv/bin/python ]; then
  (cd reference && PYTHONPATH=. ../.venv/bin/python -m pixelzoo_ref.plot_curves)
fi
