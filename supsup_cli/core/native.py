"""Small loops that torch has no single operation for, in C: compiled on first use with the
machine's C compiler, cached, and loaded with ctypes. Without a compiler (or with SUPSUP_NATIVE=0)
`kernels()` is None and the engine uses its torch formulation of the same arithmetic.

- `supsup_packed_dot`: a lookup per mask byte in tables of 256 partial sums (the superposition's
  gradient over thousands of bit-packed masks: scenario NNs' decisions, One-Shot on a few inputs);
  `supsup_packed_dot_direct`, each mask's bits read one by one, for a few masks (Binary's rounds).
  Byte positions are taken in blocks whose tables stay in the cache while every mask reads them;
  each mask's sum runs in a fixed order, whatever the threads, so results never depend on them.
- `supsup_unpack_signed`: packed masks straight into W * M where the weights are all +c or -c
  (the GEMMs of One-Shot and Binary on many inputs read them), the same floats as torch's table.
- `supsup_square_avg` and `supsup_update`: RMSprop's step on a threshold mask's scores, with the
  straight-through gradient and the next step's masked weights, in two passes instead of eight.
  Their arithmetic is torch's operation for operation (addcmul's fused multiply-add included) and the
  square root stays torch's, so the scores are bit for bit those of the eager operations.

Only the source, the compiler's flags and this machine decide what is built: nothing comes from an
archive. The library lives in ~/.cache/supsup/native (or $SUPSUP_DATA/native), named by a hash of
all three, and is written under a temporary name and renamed into place.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from pathlib import Path

SOURCE = r"""
#include <stdint.h>
#include <string.h>
#include <math.h>

#define BLOCK 256 /* byte positions whose tables (256 KiB) every mask reads in turn */

void supsup_packed_dot(int64_t masks, int64_t width, const uint8_t *packed, const float *table, float *out,
                       int threads) {
  for (int64_t k = 0; k < masks; k++) out[k] = 0.0f;
  #pragma omp parallel num_threads(threads)
  for (int64_t start = 0; start < width; start += BLOCK) {
    const int64_t stop = start + BLOCK < width ? start + BLOCK : width;
    /* static: each mask stays with one thread in every block, so no barrier is needed */
    #pragma omp for schedule(static) nowait
    for (int64_t k = 0; k < masks; k++) {
      const uint8_t *row = packed + k * width;
      float a = 0.0f, b = 0.0f, c = 0.0f, d = 0.0f;
      int64_t j = start;
      for (; j + 4 <= stop; j += 4) {
        a += table[(j + 0) * 256 + row[j + 0]];
        b += table[(j + 1) * 256 + row[j + 1]];
        c += table[(j + 2) * 256 + row[j + 2]];
        d += table[(j + 3) * 256 + row[j + 3]];
      }
      for (; j < stop; j++) a += table[j * 256 + row[j]];
      out[k] += (a + b) + (c + d);
    }
  }
}

/* out[k] = sum_j sum_b bit b of packed[k, j] * values[8j + b]: for a few masks, where tables of
   256 sums per byte would cost more than reading each mask's bits. One running sum per bit position,
   added in a fixed order. */
void supsup_packed_dot_direct(int64_t masks, int64_t width, const uint8_t *packed, const float *values, float *out,
                              int threads) {
  #pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t k = 0; k < masks; k++) {
    const uint8_t *row = packed + k * width;
    float sums[8] = {0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t j = 0; j < width; j++) {
      const unsigned byte = row[j];
      const float *v = values + 8 * j;
      for (int b = 0; b < 8; b++) sums[b] += (float)((byte >> b) & 1u) * v[b];
    }
    out[k] = ((sums[0] + sums[1]) + (sums[2] + sums[3])) + ((sums[4] + sums[5]) + (sums[6] + sums[7]));
  }
}

/* W * M for weights that are all +c or -c (signs: their packed sign bits, 1 = +c), one mask per
   row of n floats: a kept weight is +-c, a dropped one a zero with the weight's sign, exactly what
   0/1 times +-c gives in float. */
static inline uint32_t signed_bit(unsigned byte, unsigned sign, int b, uint32_t magnitude) {
  return (((byte >> b) & 1u) ? magnitude : 0u) | (((sign >> b) & 1u) ? 0u : 0x80000000u);
}

void supsup_unpack_signed(int64_t masks, int64_t width, int64_t n, const uint8_t *packed, const uint8_t *signs,
                          float magnitude, float *out, int threads) {
  uint32_t c;
  memcpy(&c, &magnitude, sizeof c);
  const int64_t full = n / 8;
  #pragma omp parallel for num_threads(threads) schedule(static)
  for (int64_t k = 0; k < masks; k++) {
    const uint8_t *row = packed + k * width;
    uint32_t *o = (uint32_t *)(out + k * n);
    for (int64_t j = 0; j < full; j++) {
      const unsigned byte = row[j], sign = signs[j];
      for (int b = 0; b < 8; b++) o[8 * j + b] = signed_bit(byte, sign, b, c);
    }
    for (int64_t i = 8 * full; i < n; i++) o[i] = signed_bit(row[full], signs[full], (int)(i - 8 * full), c);
  }
}

void supsup_square_avg(int64_t n, const float *weight, float *grad, float *square_avg, float alpha,
                       float one_minus_alpha, int threads) {
  #pragma omp parallel for simd num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float g = grad[i] * weight[i];
    grad[i] = g;
    square_avg[i] = fmaf(one_minus_alpha * g, g, square_avg[i] * alpha);
  }
}

void supsup_update(int64_t n, float *scores, const float *weight, const float *grad, const float *root,
                   float *masked, float eps, float minus_lr, int threads) {
  #pragma omp parallel for simd num_threads(threads) schedule(static)
  for (int64_t i = 0; i < n; i++) {
    const float s = scores[i] + (minus_lr * grad[i]) / (root[i] + eps);
    scores[i] = s;
    masked[i] = (s >= 0.0f ? 1.0f : 0.0f) * weight[i];
  }
}
"""

# No contraction beyond the fmaf written out, so that the arithmetic is the source's.
FLAGS = ("-O3", "-march=native", "-ffp-contract=off", "-fno-math-errno", "-shared", "-fPIC")
OPENMP = ("-fopenmp",)

_P, _F, _I64, _INT = ctypes.c_void_p, ctypes.c_float, ctypes.c_int64, ctypes.c_int
_SIGNATURES = {
    "supsup_packed_dot": [_I64, _I64, _P, _P, _P, _INT],
    "supsup_packed_dot_direct": [_I64, _I64, _P, _P, _P, _INT],
    "supsup_unpack_signed": [_I64, _I64, _I64, _P, _P, _F, _P, _INT],
    "supsup_square_avg": [_I64, _P, _P, _P, _F, _F, _INT],
    "supsup_update": [_I64, _P, _P, _P, _P, _P, _F, _F, _INT],
}


@functools.cache
def kernels() -> ctypes.CDLL | None:
    """The compiled kernels, or None (no compiler, a failed build, or SUPSUP_NATIVE=0)."""
    if os.environ.get("SUPSUP_NATIVE", "1") == "0":
        return None
    compiler = os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if compiler is None:
        return None
    try:
        library = _built(compiler)
        if library is None:
            return None
        lib = ctypes.CDLL(str(library))
    except (OSError, subprocess.SubprocessError):
        return None
    for name, arguments in _SIGNATURES.items():
        function = getattr(lib, name)
        function.argtypes, function.restype = arguments, None
    return lib


def _built(compiler: str) -> Path | None:
    """The cached library for this source, compiler and machine, built first if needed."""
    key = hashlib.sha256("\0".join([SOURCE, " ".join(FLAGS), compiler, platform.machine(), _cpu_flags()])
                         .encode()).hexdigest()[:16]
    folder = _cache_root() / "native"
    library = folder / f"kernels-{key}.so"
    if library.exists():
        return library
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder, prefix=".build-") as scratch:
        source = Path(scratch) / "kernels.c"
        source.write_text(SOURCE)
        built = Path(scratch) / "kernels.so"
        for extra in (OPENMP, ()):  # without OpenMP (say, Apple's clang): one thread
            done = subprocess.run([compiler, *FLAGS, *extra, str(source), "-o", str(built)], capture_output=True,
                                  timeout=120)
            if done.returncode == 0:
                os.replace(built, library)
                return library
    return None


def _cache_root() -> Path:
    return Path(os.environ["SUPSUP_DATA"]) if os.environ.get("SUPSUP_DATA") else Path.home() / ".cache" / "supsup"


def _cpu_flags() -> str:
    """What -march=native builds for: a library built on another CPU is not reused."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(("flags", "Features")):
                return line
    except OSError:
        pass
    return platform.processor()
