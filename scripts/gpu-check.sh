#!/usr/bin/env bash
# Checks a CUDA build of `zoo` (scripts/build-cuda.sh) on a machine with an NVIDIA GPU, its driver
# and PyTorch's CUDA 13 libraries, and no Rust toolchain. Prints a table and exits non-zero if a
# check failed (a skipped check does not fail the run).
#
#   scripts/gpu-check.sh [--bin ZOO] [--data-dir DIR] [--out DIR] [--python PY] [--budget S] [--device DEV]
#
#   --bin ZOO       the CUDA binary, or it gzipped (ZOO.gz, unpacked into a scratch directory)
#                   (default $ZOO_BIN, else target/cuda/release/zoo in this repository, build-cuda.sh's
#                   default, else target/cuda/release/zoo.gz)
#   --data-dir DIR  holds mnist/ and cifar10/ for `zoo eval` (default $PIXEL_ZOO_DATA, else
#                   ../shared/data beside the repository if there); without it eval is skipped
#   --out DIR       where the log, the table and the samples go (default $OUT if set, else
#                   gpu-check-out/); at most 5 files: gpu-check.log (every command and its
#                   output), summary.txt (the table), results.json, samples.tar (the PNGs of
#                   `zoo sample`), nvidia-smi.txt
#   --python PY     the Python whose site-packages hold the nvidia/*/lib directories (PyTorch's
#                   CUDA wheels) and that runs the comparisons (default $PYTHON, else
#                   /opt/torch/.venv/bin/python3 if present, else python3). Standard library only;
#                   numpy is used when present.
#   --budget S      seconds for all the checks (default 450, so that a run fits in 8 minutes). Each
#                   group has a share (logits 120, sample 150, compress 60, eval 150, bench what is
#                   left; what a group leaves goes to the next). A command that runs past its own
#                   limit fails (timed out); one stopped at the end of its group's share, and those
#                   after it in the group, are skipped
#   --device DEV    the device under test (default cuda). `--device cpu` runs every check with
#                   the CPU on both sides: for testing this script on a machine without a GPU.
#
# Before anything it finds the CUDA libraries: LD_LIBRARY_PATH gets every nvidia/*/lib directory
# of the Python's site-packages, and `ldd` must resolve every library the binary needs; if one
# does not resolve it says which, and why that is likely (libcuda.so.1 comes with the NVIDIA
# driver, the others with PyTorch's wheels), and exits with 2.
#
# The checks (ids from `zoo list`; third-party models, whose weights need `zoo fetch`, are left out):
#   list      `zoo list`
#   logits    `zoo logits` of each model's reference images (tests/fixtures/ID.logits.safetensors,
#             written as PNGs) on the device and on the CPU: max |Δ| over max(1, max |z|) must be
#             under 1e-5, the float32 bound tests/shipped.rs holds the CPU to against the float64
#             reference; each side's distance to that reference is shown too
#   sample    `zoo sample -n 4` of each model on the device: the time, and that the PNG is written
#   compress  `zoo compress` then `zoo decompress` of the reference images on the device: the
#             decoded images are the originals
#   eval      `zoo eval --limit 1000` on the device and on the CPU: relative |ΔNLL| under 1e-5
#   bench     `zoo bench --forward-only --reps 3` on the device beside the CPU
# The first command on the device also pays for compiling candle's PTX for this GPU (the driver
# caches it in ~/.nv/ComputeCache), so its time is not a speed figure.
set -uo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

die() { echo "gpu-check: error: $*" >&2; [ -n "${LOG:-}" ] && echo "gpu-check: error: $*" >>"$LOG"; exit 2; }

BIN=${ZOO_BIN:-$ROOT/target/cuda/release/zoo}
[ -z "${ZOO_BIN:-}" ] && [ ! -e "$BIN" ] && [ -e "$BIN.gz" ] && BIN=$BIN.gz
DATA=${PIXEL_ZOO_DATA:-}
[ -z "$DATA" ] && [ -d "$ROOT/../shared/data" ] && DATA=$(cd "$ROOT/../shared/data" && pwd)
OUTDIR=${OUT:-$ROOT/gpu-check-out}
PY=${PYTHON:-}
[ -z "$PY" ] && { if [ -x /opt/torch/.venv/bin/python3 ]; then PY=/opt/torch/.venv/bin/python3; else PY=python3; fi; }
BUDGET=450
DEV=cuda
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) [ $# -ge 2 ] || die "--bin needs a path"; BIN=$2; shift 2 ;;
    --data-dir) [ $# -ge 2 ] || die "--data-dir needs a directory"; DATA=$2; shift 2 ;;
    --out) [ $# -ge 2 ] || die "--out needs a directory"; OUTDIR=$2; shift 2 ;;
    --python) [ $# -ge 2 ] || die "--python needs a path"; PY=$2; shift 2 ;;
    --budget) [ $# -ge 2 ] || die "--budget needs seconds"; BUDGET=$2; shift 2 ;;
    --device) [ $# -ge 2 ] || die "--device needs cuda or cpu"; DEV=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -uo/p' "$ROOT/scripts/gpu-check.sh" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$BUDGET" in ''|*[!0-9]*) die "--budget '$BUDGET': expected whole seconds" ;; esac
case "$DEV" in cuda|cpu) ;; *) die "--device '$DEV': expected cuda or cpu" ;; esac
START=$(date +%s)
DEADLINE=$((START + BUDGET))

WORK=$(mktemp -d "${TMPDIR:-/tmp}/gpu-check.XXXXXX") || die "mktemp failed"
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUTDIR" || die "cannot create $OUTDIR"
OUTDIR=$(cd "$OUTDIR" && pwd)
LOG=$OUTDIR/gpu-check.log
SUMMARY=$OUTDIR/summary.txt
RESULTS=$OUTDIR/results.json
rm -f "$LOG" "$SUMMARY" "$RESULTS" "$OUTDIR/samples.tar" "$OUTDIR/nvidia-smi.txt"

log() { echo "$*" >>"$LOG"; }
say() { echo "$*"; log "$*"; }
say "gpu-check: $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n), binary $BIN, device under test $DEV, budget ${BUDGET}s"

# --- The environment: the binary, Python, the CUDA libraries. -------------------------------------
[ -f "$BIN" ] || die "no binary at $BIN: build it with scripts/build-cuda.sh and carry it here, or give --bin"
case "$BIN" in
  *.gz)
    gzip -dc "$BIN" >"$WORK/zoo" || die "could not unpack $BIN"
    chmod +x "$WORK/zoo"; say "unpacked $BIN into $WORK/zoo"; BIN=$WORK/zoo ;;
esac
[ -x "$BIN" ] || die "$BIN is not executable"
command -v "$PY" >/dev/null 2>&1 || die "python '$PY' not found (give --python)"
command -v ldd >/dev/null 2>&1 || die "ldd not found"
# Every nvidia/*/lib directory in the Python's site-packages (PyTorch's CUDA wheels: nvidia/cu13/lib
# for CUDA 13, nvidia/<library>/lib for CUDA 12).
LIBDIRS=$("$PY" - <<'EOF' 2>>"$LOG"
import glob, os, site, sys
roots = list(getattr(site, "getsitepackages", lambda: [])()) + [site.getusersitepackages()] + sys.path
seen = []
for r in roots:
    for d in sorted(glob.glob(os.path.join(r, "nvidia", "*", "lib"))):
        d = os.path.realpath(d)
        if d not in seen and glob.glob(os.path.join(d, "lib*.so*")):
            seen.append(d)
print(":".join(seen))
EOF
) || die "python '$PY' failed (see $LOG)"
log "nvidia library directories from $PY: ${LIBDIRS:-none}"
export LD_LIBRARY_PATH="${LIBDIRS}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
say "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"
ldd "$BIN" >"$WORK/ldd.txt" 2>&1
log "--- ldd $BIN"; cat "$WORK/ldd.txt" >>"$LOG"
# Each library the binary needs, directly or through another one: "libX => /path (0x...)" or
# "libX => not found" (ldd, not readelf: binutils may not be installed there).
missing=0
while read -r lib arrow path _; do
  [ "$arrow" = "=>" ] || continue
  if [ "$path" = not ]; then
    missing=1
    case "$lib" in
      libcuda.so.*) why="no NVIDIA driver on this machine (libcuda.so.1 comes with the driver, not with PyTorch)" ;;
      libcudart.so.*|libcublas*.so.*|libcurand.so.*|libnvrtc.so.*)
        why="not in any nvidia/*/lib of $PY's site-packages (PyTorch's CUDA 13 wheels: nvidia-cuda-runtime, nvidia-cublas, nvidia-curand, nvidia-cuda-nvrtc); give --python or LD_LIBRARY_PATH" ;;
      *) why="not found by the dynamic loader" ;;
    esac
    say "gpu-check: error: $lib not found: $why"
    continue
  fi
  say "  $lib => $path"
  case "$lib:$path" in
    libcuda.so.*:*/stubs/*|libcuda.so.*:*cuda-link*)
      if [ "$DEV" = cuda ]; then
        missing=1; say "gpu-check: error: $lib resolves to a link-time stub ($path), not the NVIDIA driver: no driver on this machine?"
      else
        say "  (a link-time stub: fine for --device cpu, which never calls the driver)"
      fi ;;
  esac
done <"$WORK/ldd.txt"
grep -q '=>' "$WORK/ldd.txt" || { missing=1; say "gpu-check: error: ldd could not read $BIN: $(head -n 1 "$WORK/ldd.txt")"; }
[ "$missing" = 0 ] || { say "gpu-check: the libraries the binary needs are not all usable here; nothing run (log: $LOG)"; exit 2; }
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,compute_cap,memory.total --format=csv >"$OUTDIR/nvidia-smi.txt" 2>&1 || true
  say "nvidia-smi: $(tail -n +2 "$OUTDIR/nvidia-smi.txt" | head -n 1)"
else
  say "nvidia-smi: not found"
fi

# Weights from this repository's weights/, caches in the scratch directory, no network.
export PIXEL_ZOO_WEIGHTS_DIR=$ROOT/weights
export PIXEL_ZOO_CACHE=$WORK/cache
export HF_HOME=$WORK/hf HF_HUB_OFFLINE=1
export NO_COLOR=1

# --- Helpers. --------------------------------------------------------------------------------------
HELPER=$WORK/helper.py
cat >"$HELPER" <<'EOF'
"""gpu-check's helpers: safetensors (read with the standard library), PNGs, comparisons."""
import json, os, struct, sys, zlib
from array import array

try:
    import numpy as np
except ImportError:
    np = None

DTYPES = {"F32": "f", "F64": "d", "U8": "B"}

def load(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    out = {}
    for k, v in header.items():
        if k == "__metadata__":
            continue
        a, b = v["data_offsets"]
        arr = array(DTYPES[v["dtype"]])
        arr.frombytes(data[a:b])
        if sys.byteorder != "little":
            arr.byteswap()
        out[k] = (v["shape"], arr)
    return out

def png(path, w, h, c, pix):
    rows = b"".join(b"\0" + bytes(pix[y * w * c:(y + 1) * w * c]) for y in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0 if c == 1 else 2, 0, 0, 0)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b""))

def pngs(fixture, outdir):
    """The fixture's input images as PNGs (binary images as 0/255), their paths one per line."""
    shape, x = load(fixture)["input"]
    n, c, h, w = shape
    scale = 255 if max(x) <= 1 else 1
    for i in range(n):
        pix = [x[((i * c + ch) * h + y) * w + xx] * scale for y in range(h) for xx in range(w) for ch in range(c)]
        p = os.path.join(outdir, "img%d.png" % i)
        png(p, w, h, c, pix)
        print(p)

def maxabs(a, b):
    if np is not None:
        return float(np.max(np.abs(np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64))))
    return max(abs(p - q) for p, q in zip(a, b))

def maxabs1(a):
    if np is not None:
        return float(np.max(np.abs(np.asarray(a, dtype=np.float64))))
    return max(abs(p) for p in a)

def rows_of(shape, arr, m, rows):
    """arr (n, c, l, h, w) cut to (m, c, l, rows, w), flat."""
    n, c, l, h, w = shape
    out = array(arr.typecode)
    for i in range(m):
        for j in range(c * l):
            base = (i * c * l + j) * h * w
            out.extend(arr[base:base + rows * w])
    return out

def cmp_logits(dev_file, cpu_file, fixture):
    """max |Δ| / max(1, max |z|) between the device's and the CPU's logits, and each against the
    float64 reference (its first m images and rows); and that both read the same images."""
    d, c, r = load(dev_file), load(cpu_file), load(fixture)
    (ds, dl), (cs, cl) = d["logits"], c["logits"]
    res = {"shape": ds}
    if ds != cs:
        res["error"] = "shapes differ: %s vs %s" % (ds, cs)
        print(json.dumps(res)); return
    res["images_equal"] = d["images"][1] == c["images"][1] == r["input"][1]
    scale = max(1.0, maxabs1(cl))
    res["max_abs"] = maxabs(dl, cl)
    res["rel"] = res["max_abs"] / scale
    rs, rl = r["logits"]
    m, rows = rs[0], rs[3]
    rscale = max(1.0, maxabs1(rl))
    res["dev_vs_ref_rel"] = maxabs(rows_of(ds, dl, m, rows), rl) / rscale
    res["cpu_vs_ref_rel"] = maxabs(rows_of(cs, cl, m, rows), rl) / rscale
    print(json.dumps(res))

def same_images(logits_file, fixture):
    print("yes" if load(logits_file)["images"][1] == load(fixture)["input"][1] else "no")

def png_info(path):
    """'W H' of a PNG, or 'bad'."""
    try:
        with open(path, "rb") as f:
            head = f.read(24)
        if head[:8] != b"\x89PNG\r\n\x1a\n" or head[12:16] != b"IHDR":
            print("bad"); return
        print("%d %d" % struct.unpack(">II", head[16:24]))
    except OSError:
        print("bad")

def field(path, *keys):
    """A value of a JSON file (keys into nested objects; an integer indexes a list)."""
    try:
        v = json.load(open(path))
        for k in keys:
            v = v[int(k)] if isinstance(v, list) else v[k]
        print(v)
    except Exception:
        print("")

def bench(path):
    """'id forward_ms' per row of `zoo bench --json`."""
    try:
        for row in json.load(open(path)):
            print(row["id"], "%.2f" % (row["forward_s"] * 1e3))
    except Exception:
        pass

def local_models(path):
    """The ids of `zoo list --json` whose weights are here and that are not third-party."""
    for row in json.load(open(path)):
        if row.get("third_party") is None and row.get("parameters") is not None:
            print(row["id"])

def results(tsv, out):
    rows = [dict(zip(("check", "model", "device", "cpu", "result", "detail"), l.rstrip("\n").split("\t")))
            for l in open(tsv) if l.strip()]
    json.dump(rows, open(out, "w"), indent=1)

if __name__ == "__main__":
    globals()[sys.argv[1].replace("-", "_")](*sys.argv[2:])
EOF
helper() { "$PY" "$HELPER" "$@"; }

ROWS=$WORK/rows.tsv
TAB=$'\t'
: >"$ROWS"
FAILS=0
# row CHECK MODEL DEVICE CPU RESULT DETAIL
row() {
  if [ "$5" = FAIL ] && [[ "$6" == *"of the time budget"* ]]; then set -- "$1" "$2" "$3" "$4" skip "$6"; fi
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$ROWS"
  printf '%-9s %-24s %-17s %-17s %-5s %s\n' "$@" | tee -a "$LOG"
  [ "$5" = FAIL ] && FAILS=$((FAILS + 1))
  return 0
}
# Each group of checks has a share of the budget (phase SECONDS), so that one slow group cannot
# starve the others; what a group leaves unused goes to the next ones.
PHASE_END=$DEADLINE
phase() { PHASE_END=$(( $(date +%s) + $1 )); [ "$PHASE_END" -gt "$DEADLINE" ] && PHASE_END=$DEADLINE; return 0; }
left() { echo $((PHASE_END - $(date +%s))); }
# run NAME CAP CMD...: runs CMD with its output in $WORK/NAME.out (and the log), for at most CAP
# seconds or what is left of its group's share of the budget; sets SECS (wall time), RC (124: timed
# out; 125: not run, the share was spent) and CUT (1: the share, not CAP, limited it).
run() {
  local name=$1 cap=$2; shift 2
  local t=$(left)
  CUT=1
  [ "$cap" -lt "$t" ] && { t=$cap; CUT=0; }
  if [ "$t" -lt 5 ]; then RC=125; SECS=0; log "--- $name: not run, its share of the time budget is spent"; return; fi
  log "--- $name (limit ${t}s): $*"
  local t0=$(date +%s.%N)
  timeout --kill-after=5 "$t" "$@" >"$WORK/$name.out" 2>"$WORK/$name.err"
  RC=$?
  SECS=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }')
  cat "$WORK/$name.out" >>"$LOG"; grep -v '^\s*$' "$WORK/$name.err" | tail -n 40 >>"$LOG"
  log "--- $name: exit $RC, ${SECS}s"
}
# why: a short reason for a failed or skipped command.
why() {
  case "$RC" in
    124|137) if [ "$CUT" = 1 ]; then echo "stopped: its share of the time budget was spent"; else echo "timed out"; fi ;;
    125) echo "skipped: its share of the time budget was spent" ;;
    *) { grep -m1 '^error' "$WORK/$1.err" || grep -v '^\s*$' "$WORK/$1.err" | tail -n 1; } | cut -c1-160 ;;
  esac
}

printf '%-9s %-24s %-17s %-17s %-5s %s\n' check model "$DEV" cpu "" detail | tee -a "$LOG"

# --- list ------------------------------------------------------------------------------------------
run list 60 "$BIN" list
if [ "$RC" = 0 ]; then
  run listjson 60 "$BIN" list --json
  helper local-models "$WORK/listjson.out" >"$WORK/ids" 2>>"$LOG"
  row list - - - ok "$(grep -c . "$WORK/ids") local models of $(($(grep -c . "$WORK/list.out") - 1)): $(paste -sd" " "$WORK/ids")"
else
  row list - - - FAIL "$(why list)"
  say "gpu-check: zoo list failed; nothing else to check"
fi
IDS=$(cat "$WORK/ids" 2>/dev/null)

# --- logits: the device against the CPU ------------------------------------------------------------
phase 120
DEV_OK=0
for id in $IDS; do
  fx=$ROOT/tests/fixtures/$id.logits.safetensors
  if [ ! -f "$fx" ]; then row logits "$id" - - skip "no fixture $fx"; continue; fi
  mkdir -p "$WORK/img/$id"
  helper pngs "$fx" "$WORK/img/$id" >"$WORK/img/$id.list" 2>>"$LOG" || { row logits "$id" - - FAIL "could not write the images"; continue; }
  run "logits-$id-$DEV" 120 "$BIN" --device "$DEV" logits "$id" $(cat "$WORK/img/$id.list") -o "$WORK/$id.$DEV.safetensors"
  drc=$RC; dcut=$CUT; dsecs=$SECS
  [ "$drc" = 0 ] && DEV_OK=1
  run "logits-$id-cpu" 120 "$BIN" --device cpu logits "$id" $(cat "$WORK/img/$id.list") -o "$WORK/$id.cpu.safetensors"
  crc=$RC; ccut=$CUT; csecs=$SECS
  if [ "$drc" != 0 ]; then RC=$drc; CUT=$dcut; row logits "$id" "${dsecs}s" "${csecs}s" FAIL "$DEV: $(why "logits-$id-$DEV")"; continue; fi
  if [ "$crc" != 0 ]; then RC=$crc; CUT=$ccut; row logits "$id" "${dsecs}s" "${csecs}s" FAIL "cpu: $(why "logits-$id-cpu")"; continue; fi
  helper cmp-logits "$WORK/$id.$DEV.safetensors" "$WORK/$id.cpu.safetensors" "$fx" >"$WORK/cmp-$id.json" 2>>"$LOG"
  log "compare $id: $(cat "$WORK/cmp-$id.json")"
  verdict=$("$PY" -c '
import json, sys
r = json.load(open(sys.argv[1]))
if "error" in r: print("FAIL\t" + r["error"]); sys.exit()
ok = r["rel"] < 1e-5 and r["images_equal"]
print("%s\tmax|d|/scale %.1e (max|d| %.1e; < 1e-5), vs f64 ref: %s %.1e, cpu %.1e%s" % (
    "ok" if ok else "FAIL", r["rel"], r["max_abs"], sys.argv[2], r["dev_vs_ref_rel"], r["cpu_vs_ref_rel"],
    "" if r["images_equal"] else "; the images read differ"))' "$WORK/cmp-$id.json" "$DEV" 2>>"$LOG")
  [ -n "$verdict" ] || verdict="FAIL${TAB}the comparison failed (see the log)"
  row logits "$id" "${dsecs}s" "${csecs}s" "${verdict%%$TAB*}" "${verdict#*$TAB}"
done
if [ -n "$IDS" ] && [ "$DEV_OK" = 0 ]; then
  say "gpu-check: no model ran on $DEV (see $LOG); the other checks are skipped"
  IDS=""
fi

# --- sample on the device --------------------------------------------------------------------------
phase 150
mkdir -p "$WORK/samples"
for id in $IDS; do
  run "sample-$id" 60 "$BIN" --device "$DEV" sample "$id" -n 4 --seed 1 -o "$WORK/samples/$id.png"
  if [ "$RC" != 0 ]; then row sample "$id" "${SECS}s" - FAIL "$(why "sample-$id")"; continue; fi
  info=$(helper png-info "$WORK/samples/$id.png")
  if [ "$info" = bad ]; then row sample "$id" "${SECS}s" - FAIL "no PNG written"; continue; fi
  row sample "$id" "${SECS}s" - ok "4 images, samples/$id.png ${info/ /x}"
done
if ls "$WORK/samples/"*.png >/dev/null 2>&1; then
  tar -C "$WORK" -cf "$OUTDIR/samples.tar" samples 2>>"$LOG" || log "no samples.tar: tar failed or is missing"
fi

# --- compress / decompress on the device -----------------------------------------------------------
phase 60
for id in pixelcnn-mnist pixelcnn-cifar10; do
  case " $(echo $IDS) " in *" $id "*) ;; *) continue ;; esac
  [ -s "$WORK/img/$id.list" ] || continue
  run "compress-$id" 120 "$BIN" --device "$DEV" compress "$id" $(cat "$WORK/img/$id.list") -o "$WORK/$id.zpx"
  if [ "$RC" != 0 ]; then row compress "$id" "${SECS}s" - FAIL "compress: $(why "compress-$id")"; continue; fi
  enc=$SECS; size=$(wc -c <"$WORK/$id.zpx")
  run "decompress-$id" 180 "$BIN" --device "$DEV" decompress "$WORK/$id.zpx" -o "$WORK/dec-$id"
  if [ "$RC" != 0 ]; then row compress "$id" "${enc}s+${SECS}s" - FAIL "decompress: $(why "decompress-$id")"; continue; fi
  dec=$SECS
  n=$(grep -c . "$WORK/img/$id.list")
  decoded=$(for p in $(cat "$WORK/img/$id.list"); do echo "$WORK/dec-$id/$(basename "$p")"; done)
  run "reread-$id" 60 "$BIN" --device cpu logits "$id" $decoded -o "$WORK/dec-$id.safetensors"
  same=$([ "$RC" = 0 ] && helper same-images "$WORK/dec-$id.safetensors" "$ROOT/tests/fixtures/$id.logits.safetensors")
  if [ "$same" = yes ]; then
    row compress "$id" "${enc}s+${dec}s" - ok "$n images, $size bytes, decoded = originals (encode + decode)"
  else
    row compress "$id" "${enc}s+${dec}s" - FAIL "the decoded images differ from the originals (or could not be read)"
  fi
done

# --- eval --limit 1000: the device against the CPU -------------------------------------------------
phase 150
for id in $IDS; do
  ds=$("$PY" -c 'import json,sys; print(next(r["dataset"] for r in json.load(open(sys.argv[1])) if r["id"] == sys.argv[2]))' "$WORK/listjson.out" "$id" 2>/dev/null)
  sub=mnist; case "$ds" in cifar*) sub=cifar10 ;; esac
  if [ -z "$DATA" ]; then row eval "$id" - - skip "skipped: no data (give --data-dir or PIXEL_ZOO_DATA)"; continue; fi
  if [ ! -d "$DATA/$sub" ]; then row eval "$id" - - skip "skipped: no data ($DATA has no $sub/)"; continue; fi
  run "eval-$id-$DEV" 150 "$BIN" --device "$DEV" eval "$id" --data-dir "$DATA" --limit 1000 --json
  drc=$RC; dcut=$CUT; dsecs=$SECS; dn=$(helper field "$WORK/eval-$id-$DEV.out" nll_nats_per_image)
  run "eval-$id-cpu" 150 "$BIN" --device cpu eval "$id" --data-dir "$DATA" --limit 1000 --json
  crc=$RC; ccut=$CUT; csecs=$SECS; cn=$(helper field "$WORK/eval-$id-cpu.out" nll_nats_per_image)
  if [ "$drc" != 0 ] || [ -z "$dn" ]; then RC=$drc; CUT=$dcut; row eval "$id" "${dsecs}s" "${csecs}s" FAIL "$DEV: $(why "eval-$id-$DEV")"; continue; fi
  if [ "$crc" != 0 ] || [ -z "$cn" ]; then RC=$crc; CUT=$ccut; row eval "$id" "${dsecs}s" "${csecs}s" FAIL "cpu: $(why "eval-$id-cpu")"; continue; fi
  verdict=$("$PY" -c '
import sys
d, c = float(sys.argv[1]), float(sys.argv[2]); rel = abs(d - c) / max(1.0, abs(c))
print("%s\t%.4f vs %.4f nats/image, rel |d| %.1e (< 1e-5)" % ("ok" if rel < 1e-5 else "FAIL", d, c, rel))' "$dn" "$cn")
  row eval "$id" "${dsecs}s" "${csecs}s" "${verdict%%$TAB*}" "${verdict#*$TAB}"
done

# --- bench: the forward pass on the device beside the CPU ------------------------------------------
phase "$BUDGET"
if [ -n "$IDS" ]; then
  run bench-dev 60 "$BIN" --device "$DEV" bench $IDS --forward-only --reps 3 --json
  [ "$RC" = 0 ] || log "bench on $DEV: $(why bench-dev)"
  brc=$RC; bcut=$CUT
  run bench-cpu 60 "$BIN" --device cpu bench $IDS --forward-only --reps 3 --json
  [ "$RC" = 0 ] || log "bench on cpu: $(why bench-cpu)"
  helper bench "$WORK/bench-dev.out" >"$WORK/bench-dev.tsv"
  helper bench "$WORK/bench-cpu.out" >"$WORK/bench-cpu.tsv"
  for id in $IDS; do
    d=$(awk -v i="$id" '$1 == i { print $2 }' "$WORK/bench-dev.tsv")
    c=$(awk -v i="$id" '$1 == i { print $2 }' "$WORK/bench-cpu.tsv")
    if [ -z "$d" ]; then RC=$brc; CUT=$bcut; row bench "$id" - "${c:+${c}ms}" FAIL "$DEV: $(why bench-dev)"; continue; fi
    ratio=$(awk -v d="$d" -v c="$c" 'BEGIN { if (c != "" && d > 0) printf "%.1fx the CPU", c / d; else print "no CPU figure" }')
    row bench "$id" "${d}ms" "${c:+${c}ms}" ok "forward pass, batch 16, median of 3: $ratio"
  done
fi

# --- The table. ------------------------------------------------------------------------------------
helper results "$ROWS" "$RESULTS" 2>>"$LOG"
{
  echo "gpu-check $(date -u +%Y-%m-%dT%H:%M:%SZ): $BIN, device $DEV; $(tail -n +2 "$OUTDIR/nvidia-smi.txt" 2>/dev/null | head -n 1)"
  printf '%-9s %-24s %-17s %-17s %-5s %s\n' check model "$DEV" cpu "" detail
  awk -F'\t' '{ printf "%-9s %-24s %-17s %-17s %-5s %s\n", $1, $2, $3, $4, $5, $6 }' "$ROWS"
  oks=$(awk -F'\t' '$5 == "ok"' "$ROWS" | wc -l); skips=$(awk -F'\t' '$5 == "skip"' "$ROWS" | wc -l)
  echo "$oks passed, $FAILS failed, $skips skipped; $(( $(date +%s) - START ))s"
} >"$SUMMARY"
echo
cat "$SUMMARY"
log "$(tail -n 1 "$SUMMARY")"
echo "gpu-check: output in $OUTDIR ($(ls "$OUTDIR" | tr '\n' ' '))"
[ "$FAILS" = 0 ]
