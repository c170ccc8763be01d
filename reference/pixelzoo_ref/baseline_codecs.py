"""Classical lossless codecs on the zoo's test images, for the compression tables: libwebp (through
Pillow) and Pillow's PNG, one file per image, in bits per dimension (file bytes × 8 / c·h·w).

    cd reference && PYTHONPATH=. python -m pixelzoo_ref.baseline_codecs --data-dir ../../shared/data
    python -m pixelzoo_ref.baseline_codecs --dataset cifar10 --limit 1000 --json

`zoo bench-compress` measures the `image` crate's PNG and lossless WebP encoders beside the model's
files; this measures the reference encoders the published tables use (libwebp `-lossless -q 100
-m 6 -exact`, PNG at zlib level 9 with Pillow's optimiser), so that the zoo's figures stand beside
both. Binary MNIST images are coded as 8-bit grey 0/255, as the zoo's PNG export writes them.
A measurement, not a test.
"""
import argparse
import io
import json

import numpy as np
from PIL import Image, features

from . import data as D


def image_of(x):
    """(c, h, w) uint8 (0/1 for binary data) → a PIL image: grey 'L' or 'RGB'; binary as 0/255."""
    if x.shape[0] == 1:
        grey = x[0] * 255 if x.max() <= 1 else x[0]
        return Image.fromarray(grey.astype(np.uint8), mode="L")
    return Image.fromarray(np.ascontiguousarray(x.transpose(1, 2, 0)).astype(np.uint8), mode="RGB")


def webp_bytes(img):
    """libwebp lossless at its strongest: quality 100 (most effort on the entropy code), method 6,
    exact (keep the colours of transparent pixels; there are none, but it keeps the coding lossless
    whatever the mode)."""
    buf = io.BytesIO()
    img.save(buf, format="WEBP", lossless=True, quality=100, method=6, exact=True)
    return buf.getvalue()


def png_bytes(img):
    """PNG at zlib level 9 with Pillow's optimiser (it tries the filter strategies)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG", optimize=True, compress_level=9)
    return buf.getvalue()


def decode(blob, mode):
    """The pixels of a coded file in `mode` (WebP has no grey mode: a grey image comes back RGB)."""
    return np.asarray(Image.open(io.BytesIO(blob)).convert(mode))


def measure(images, codecs=("png", "webp")):
    """bits/dim of each codec over `images` (n, c, h, w), each file decoded and checked exact."""
    encode = {"png": png_bytes, "webp": webp_bytes}
    dims = int(np.prod(images.shape[1:]))
    out = {}
    for name in codecs:
        total = 0
        for x in images:
            img = image_of(x)
            blob = encode[name](img)
            if not np.array_equal(decode(blob, img.mode), np.asarray(img)):
                raise RuntimeError(f"{name} did not decode to the image it coded: not lossless")
            total += len(blob)
        out[name] = total * 8 / (dims * len(images))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", default="../../shared/data")
    p.add_argument("--dataset", action="append", choices=["mnist-binarized", "cifar10"],
                   help="data set (repeatable; default both)")
    p.add_argument("--limit", type=int, default=1000, help="first N test images (default 1000)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    if not features.check("webp"):
        raise SystemExit("this Pillow has no WebP support; install a Pillow wheel built with libwebp")
    rows = []
    for dataset in args.dataset or ["mnist-binarized", "cifar10"]:
        x = D.load(dataset, args.data_dir, "test")[: args.limit]
        row = {"dataset": dataset, "images": len(x), "libwebp": features.version("webp"),
               "pillow": Image.__version__, **measure(x)}
        rows.append(row)
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['dataset']}: {r['images']} images, PNG {r['png']:.3f}, WebP {r['webp']:.3f} bits/dim "
                  f"(Pillow {r['pillow']}, libwebp {r['libwebp']})")


if __name__ == "__main__":
    main()
