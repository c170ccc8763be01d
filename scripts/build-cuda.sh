#!/usr/bin/env bash
# Builds the `zoo` binary with `--features cuda` on a machine with no GPU and no CUDA toolkit.
#
#   scripts/build-cuda.sh [--target-dir DIR] [--compute-cap CC] [--check] [--ptxas 'CC ...']
#
# What it does, in order:
#   1. A virtual environment `.venv-cuda/` at the repository root (ignored by git) with NVIDIA's
#      CUDA 13.0 wheels from PyPI: nvcc (with ptxas, fatbinary, nvlink, cicc, the crt headers),
#      the runtime headers and libcudart, cuBLAS, cuRAND, NVRTC and CCCL. They all unpack into
#      one toolkit-shaped tree, `.venv-cuda/lib/python3.*/site-packages/nvidia/cu13/`.
#   2. `.venv-cuda/cuda-link/lib/`: what the linker needs and the wheels lack. The unversioned
#      names (`libcublas.so` -> `libcublas.so.13`, ...) and a stub `libcuda.so.1`: the driver
#      library is in no wheel, so a tiny C library exporting the driver API's symbols (every `cu*`
#      function cuda.h declares) is built with gcc under the soname `libcuda.so.1`. Its functions
#      only return CUDA_ERROR_STUB_LIBRARY (34); it is never shipped or loaded: at run time the
#      binary loads the machine's real `libcuda.so.1` (the NVIDIA driver's).
#   3. `cargo build --release --locked -p zoo --features cuda` with nvcc on PATH, CUDA_HOME
#      pointing at the link directory (cudarc's build script adds `$CUDA_HOME/lib` to the link
#      search path and reads the CUDA version from `nvcc --version`) and CUDA_COMPUTE_CAP set
#      (candle-kernels' build asks nvidia-smi otherwise, and there is no GPU here).
#   4. Prints the binary, its NEEDED libraries (readelf -d) and the PTX target and ISA version of
#      candle's kernels, checks with ptxas that the PTX assembles for sm_80, sm_89 and sm_90,
#      and writes zoo.gz beside the binary (about 16 MB of 60) for carrying it to a GPU machine.
#
# Options:
#   --target-dir DIR   cargo's target directory (default: target/cuda, so the binary is
#                      target/cuda/release/zoo). Not target/ itself: a CUDA `zoo` silently
#                      replacing the CPU one in target/release would confuse, and switching
#                      candle's features back and forth in one target directory rebuilds it
#                      each time. `--target-dir target` gives target/release/zoo if wanted.
#   --compute-cap CC   the compute capability candle's kernels are compiled for (default 80, or
#                      $CUDA_COMPUTE_CAP). See "Compute capability" below.
#   --check            `cargo check` instead of a build (type-checks the CUDA code paths; still
#                      runs candle-kernels' build script, so nvcc compiles the kernels).
#   --ptxas 'CC ...'   after the build, assemble candle's PTX with ptxas for each of these compute
#                      capabilities, as the driver will at load time (default '80 89 90'; '' skips).
#
# CUDA version: 13.0, pinned. The GPU machines this is meant for run NVIDIA driver 580 (CUDA 13.0)
# and PyTorch 2.11.0+cu130, whose pip CUDA libraries are exactly these: nvidia-cuda-runtime
# 13.0.96, nvidia-cublas 13.1.0.3, nvidia-curand 10.4.0.35, nvidia-cuda-nvrtc 13.0.88. Building
# against the same libraries gives the same sonames (libcublas.so.13, libcurand.so.10, ...) and
# no symbol newer than what that machine has. nvcc matters more: candle's kernels ship as PTX text
# that the driver compiles when they are loaded, and a driver only JIT-compiles PTX ISA versions
# up to its own CUDA version. nvcc 13.0 writes `.version 9.0` (PTX ISA 9.0, CUDA 13.0's); a newer
# nvcc (13.5 is the newest wheel) writes a newer ISA that driver 580 refuses
# (CUDA_ERROR_UNSUPPORTED_PTX_VERSION). nvidia-cuda-nvcc depends on nvidia-nvvm (cicc, which writes
# the PTX) and nvidia-cuda-crt without pinning them, so pip would take the newest (13.5) of those:
# they are pinned here too. Mind this when changing any pin.
#
# Compute capability: candle-kernels 0.11.1 compiles its kernels twice over (build.rs, with the
# cudaforge crate): (a) affine, binary, cast, conv, fill, indexing, quantized, reduce, sort,
# ternary, unary to PTX with `-gencode=arch=compute_CC,code=sm_CC --ptx`, embedded as text and
# JIT-compiled by the driver for the GPU it finds: PTX for sm_80 runs on every GPU of compute
# capability 8.0 and above (A100 8.0, A10/RTX 30xx 8.6, L4/L40/RTX 40xx 8.9, H100/H200 9.0, and
# later). Only the fp8 (F8E4M3) variants need `__CUDA_ARCH__ >= 890` and are left out of sm_80
# PTX; the zoo computes in f32 and never uses them. (b) The MoE/GGUF kernels (libmoe.a, linked
# statically, needs libcudart) to SASS for sm_CC only (`code=sm_CC`, no PTX): with 80 they run on
# 8.x GPUs only; the zoo never calls them. So the default, 80, covers 8.0, 8.9 and 9.0 with one
# build. cudaforge appends the 'a' suffix for 90 and above (CC=90 gives sm_90a, which runs on 9.0
# GPUs only, nothing else); below 80, candle's bf16 kernels are left out.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
SELF=$ROOT/scripts/$(basename "$0")

die() { echo "build-cuda: error: $*" >&2; exit 1; }
say() { echo "build-cuda: $*"; }

TARGET_DIR=target/cuda
CC_CAP=${CUDA_COMPUTE_CAP:-80}
MODE=build
PTXAS_CAPS="80 89 90"
while [ $# -gt 0 ]; do
  case "$1" in
    --target-dir) [ $# -ge 2 ] || die "--target-dir needs a directory"; TARGET_DIR=$2; shift 2 ;;
    --compute-cap) [ $# -ge 2 ] || die "--compute-cap needs a value (e.g. 80)"; CC_CAP=$2; shift 2 ;;
    --check) MODE=check; shift ;;
    --ptxas) [ $# -ge 2 ] || die "--ptxas needs a list, e.g. '80 89 90' (or '' for none)"; PTXAS_CAPS=$2; shift 2 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$SELF" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument '$1' (see --help)" ;;
  esac
done
case "$CC_CAP" in [0-9][0-9]|[0-9][0-9][0-9]|[0-9][0-9]a|[0-9][0-9][0-9]a) ;; *) die "--compute-cap '$CC_CAP': expected e.g. 80, 89, 90 or 90a" ;; esac
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac

# The pins (see "CUDA version" above). nvidia-cuda-cccl: CCCL headers (cub, thrust, libcu++) that
# nvcc's profile puts on the include path; the runtime wheel brings cuda.h, cuda_runtime.h, ...
PINS=(
  nvidia-cuda-nvcc==13.0.88
  nvidia-nvvm==13.0.88
  nvidia-cuda-crt==13.0.88
  nvidia-cuda-runtime==13.0.96
  nvidia-cuda-cccl==13.0.85
  nvidia-cublas==13.1.0.3
  nvidia-curand==10.4.0.35
  nvidia-cuda-nvrtc==13.0.88
)
CUDA_RELEASE=13.0
# The libraries cudarc (driver, cublas, cublasLt, curand, nvrtc) and candle-kernels (cudart) link.
LINK_LIBS=(cudart cublas cublasLt curand nvrtc)

command -v cargo >/dev/null 2>&1 || die "cargo not found: install Rust (https://rustup.rs) first"
for tool in gcc g++ readelf; do
  command -v "$tool" >/dev/null 2>&1 || die "$tool not found (Debian: apt-get install build-essential binutils); nvcc needs gcc/g++ as its host compiler"
done

# 1. The virtual environment with the CUDA wheels.
VENV=$ROOT/.venv-cuda
if [ ! -x "$VENV/bin/python" ]; then
  if ! python3 -c 'import venv, ensurepip' >/dev/null 2>&1; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
      say "installing python3-venv (apt-get)"
      apt-get update -qq && apt-get install -y -qq python3 python3-venv python3-pip >/dev/null
    else
      die "python3 with venv and ensurepip is needed (Debian: apt-get install python3-venv)"
    fi
  fi
  say "creating $VENV"
  python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
fi
say "installing the CUDA $CUDA_RELEASE wheels into .venv-cuda (about 1.2 GB; nothing to do when present)"
"$VENV/bin/python" -m pip install -q --no-cache-dir --disable-pip-version-check "${PINS[@]}" \
  || die "pip could not install ${PINS[*]} (is PyPI reachable?)"

CU=$("$VENV/bin/python" - <<'EOF'
import glob, os, sys
hits = [p for p in glob.glob(os.path.join(sys.prefix, "lib", "python3*", "site-packages", "nvidia", "cu13"))]
print(hits[0] if hits else "")
EOF
)
[ -n "$CU" ] && [ -x "$CU/bin/nvcc" ] || die "nvcc not found under .venv-cuda's site-packages/nvidia/cu13/bin (did the wheels' layout change?)"
NVCC_VERSION=$("$CU/bin/nvcc" --version | sed -n 's/.*release \([0-9.]*\),.*/\1/p')
[ "$NVCC_VERSION" = "$CUDA_RELEASE" ] || die "nvcc reports CUDA '$NVCC_VERSION', expected $CUDA_RELEASE (a stale .venv-cuda? remove it and rerun)"
[ -f "$CU/include/cuda.h" ] || die "cuda.h not found in $CU/include (nvidia-cuda-runtime's headers)"

# 2. The link directory: unversioned names, the versioned sonames and the libcuda stub.
LINK=$VENV/cuda-link
mkdir -p "$LINK/lib"
for name in "${LINK_LIBS[@]}"; do
  lib=$(ls "$CU/lib/lib$name.so."[0-9]* 2>/dev/null | head -n 1 || true)
  [ -n "$lib" ] || die "lib$name.so.* not found in $CU/lib"
  soname=$(readelf -d "$lib" | sed -n 's/.*Library soname: \[\(.*\)\]/\1/p')
  [ -n "$soname" ] || die "$lib has no SONAME"
  ln -sfn "$lib" "$LINK/lib/$soname"
  ln -sfn "$lib" "$LINK/lib/lib$name.so"
done
STUB=$LINK/lib/libcuda.so.1
if [ ! -f "$STUB" ] || [ "$CU/include/cuda.h" -nt "$STUB" ] || [ "$SELF" -nt "$STUB" ]; then
  say "building the link-time stub $STUB from cuda.h's cu* functions"
  src=$LINK/libcuda-stub.c
  {
    echo "/* Link-time stub of the CUDA driver API (libcuda.so.1), generated by scripts/build-cuda.sh"
    echo "   from cuda.h. Never loaded: the NVIDIA driver's libcuda.so.1 replaces it at run time."
    echo "   Every function returns CUDA_ERROR_STUB_LIBRARY (34). */"
    # The names cuda.h declares, with and without the internal macro that exposes the legacy
    # (pre-_v2) entry points, and as written in the file: a superset of what cudarc can call.
    {
      gcc -E -P -D__CUDA_API_VERSION_INTERNAL -I"$CU/include" "$CU/include/cuda.h"
      gcc -E -P -I"$CU/include" "$CU/include/cuda.h"
      cat "$CU/include/cuda.h"
    } | grep -oE '\bcu[A-Z][A-Za-z0-9_]*[[:space:]]*\(' | tr -d ' \t(' | sort -u \
      | sed 's/.*/int &(void) { return 34; }/'
  } >"$src"
  n=$(grep -c 'return 34' "$src")
  [ "$n" -gt 300 ] || die "only $n cu* functions found in cuda.h: cannot build the libcuda stub"
  gcc -shared -fPIC -O0 -Wl,-soname,libcuda.so.1 -o "$STUB.tmp" "$src" || die "gcc could not build the libcuda stub"
  mv "$STUB.tmp" "$STUB"
  say "stub exports $n functions"
fi
ln -sfn libcuda.so.1 "$LINK/lib/libcuda.so"

# 3. The build.
export PATH="$CU/bin:$PATH"            # nvcc, for cudarc's version check and candle-kernels
export CUDA_HOME="$LINK"               # cudarc: link search path $CUDA_HOME/lib
unset CUDA_PATH CUDA_ROOT CUDA_TOOLKIT_ROOT_DIR CUDNN_LIB NVCC CUDARC_CUDA_VERSION  # nvcc decides
export CUDA_COMPUTE_CAP="$CC_CAP"
export CARGO_TARGET_DIR="$TARGET_DIR"
say "cargo $MODE --release --locked -p zoo --features cuda (CUDA $NVCC_VERSION, compute capability $CC_CAP, target dir $TARGET_DIR)"
start=$(date +%s)
cargo "$MODE" --release --locked -p zoo --features cuda || die "cargo $MODE --features cuda failed (output above)"
say "cargo $MODE took $(( $(date +%s) - start )) s"

# 4. What came out.
ptx_dir=$(ls -dt "$TARGET_DIR"/release/build/candle-kernels-*/out 2>/dev/null | head -n 1 || true)
if [ -n "$ptx_dir" ] && ls "$ptx_dir"/*.ptx >/dev/null 2>&1; then
  say "candle's PTX ($ptx_dir):"
  for f in "$ptx_dir"/*.ptx; do
    printf '  %-14s %s, %s\n' "$(basename "$f")" "$(grep -m1 '^\.version' "$f")" "$(grep -m1 '^\.target' "$f")"
  done
  # What the driver will do with them on each GPU, done here by ptxas (CUDA 13.0's, the same
  # compiler generation as driver 580's JIT): every module must assemble for every compute
  # capability named (about a minute for three).
  if [ -n "$PTXAS_CAPS" ]; then
    for cap in $PTXAS_CAPS; do
      for f in "$ptx_dir"/*.ptx; do
        "$CU/bin/ptxas" -arch="sm_$cap" -O3 "$f" -o "$LINK/ptxas-check.cubin" 2>"$LINK/ptxas-check.err" \
          || die "ptxas -arch=sm_$cap $(basename "$f") failed: $(head -n 3 "$LINK/ptxas-check.err")"
      done
    done
    rm -f "$LINK/ptxas-check.cubin" "$LINK/ptxas-check.err"
    say "ptxas: all $(ls "$ptx_dir"/*.ptx | wc -l) PTX modules assemble for sm_${PTXAS_CAPS// /, sm_}"
  fi
fi
if [ "$MODE" = build ]; then
  BIN=$TARGET_DIR/release/zoo
  [ -x "$BIN" ] || die "$BIN was not produced"
  say "NEEDED libraries of $BIN (readelf -d):"
  readelf -d "$BIN" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/  \1/p'
  if readelf -d "$BIN" | grep -E 'R(UN)?PATH' >/dev/null; then
    say "warning: the binary carries an RPATH/RUNPATH:"; readelf -d "$BIN" | grep -E 'R(UN)?PATH'
  fi
  # To carry to a GPU machine: a third of the size (most of the binary is candle's MoE/GGUF machine
  # code, which compresses well); scripts/gpu-check.sh --bin takes it as it is.
  if [ ! "$BIN.gz" -nt "$BIN" ]; then
    gzip -9 -c "$BIN" >"$BIN.gz.tmp" && mv "$BIN.gz.tmp" "$BIN.gz" || die "gzip of $BIN failed"
  fi
  say "built $BIN ($(( $(stat -c %s "$BIN") / 1048576 )) MiB; gzipped for carrying: $BIN.gz, $(( $(stat -c %s "$BIN.gz") / 1048576 )) MiB)"
  say "run it where the NVIDIA driver and the CUDA 13 libraries are (scripts/gpu-check.sh finds PyTorch's)"
fi
