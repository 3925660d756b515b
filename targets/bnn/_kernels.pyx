# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""XNOR-popcount kernels of the packed binary network (see ``anyedge.targets.bnn.format``).

Every function works on a batch of windows and writes into a caller-allocated output, so
the Python wrapper (:mod:`anyedge.targets.bnn.kernels`) owns all validation and allocation.
The arithmetic is integer-only except :func:`quantize`, whose float32 steps match the C
library and the numpy reference exactly (built with ``-ffp-contract=off``).
"""

from libc.stdint cimport int8_t, int32_t, int64_t, uint8_t, uint32_t

cdef extern from *:
    """
    #include <stdint.h>
    #include <string.h>
    #if defined(__GNUC__) || defined(__clang__)
    #  define AEBNN_POP32(x) __builtin_popcount((unsigned int)(x))
    #  define AEBNN_POP64(x) __builtin_popcountll((unsigned long long)(x))
    #  if defined(__POPCNT__)
    #    define AEBNN_POPCOUNT_KIND "hardware popcnt (__builtin_popcountll, -mpopcnt)"
    #  elif defined(__aarch64__)
    #    define AEBNN_POPCOUNT_KIND "AArch64 NEON cnt (__builtin_popcountll)"
    #  elif defined(__riscv_zbb)
    #    define AEBNN_POPCOUNT_KIND "RISC-V Zbb cpop (__builtin_popcountll, -march with zbb)"
    #  else
    #    define AEBNN_POPCOUNT_KIND "__builtin_popcountll (compiler's choice of instruction)"
    #  endif
    #else
    static int AEBNN_POP32(uint32_t x) {
        x = x - ((x >> 1) & 0x55555555u);
        x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
        return (int)((((x + (x >> 4)) & 0x0F0F0F0Fu) * 0x01010101u) >> 24);
    }
    #  define AEBNN_POP64(x) (AEBNN_POP32((uint32_t)(x)) + AEBNN_POP32((uint32_t)((x) >> 32)))
    #  define AEBNN_POPCOUNT_KIND "portable bit-twiddling popcount"
    #endif

    /* popcount(a XOR b) over n words, two words at a time through 64-bit popcounts. */
    static inline int aebnn_xor_popcount(const uint32_t *a, const uint32_t *b, Py_ssize_t n) {
        int c = 0;
        Py_ssize_t i = 0;
        for (; i + 1 < n; i += 2) {
            uint64_t x, y;
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            c += AEBNN_POP64(x ^ y);
        }
        if (i < n) c += AEBNN_POP32(a[i] ^ b[i]);
        return c;
    }
    """
    int aebnn_xor_popcount(const uint32_t *a, const uint32_t *b, Py_ssize_t n) nogil
    const char *AEBNN_POPCOUNT_KIND


def popcount_kind():
    """How this build counts bits (hardware instruction or fallback), as text."""
    return (<bytes>AEBNN_POPCOUNT_KIND).decode("ascii")


def quantize(const float[:, :, ::1] x, const float[::1] offset, const float[::1] inv_scale,
             int8_t[:, :, ::1] out):
    """int8 quantization, ``out[n, t, c] = round(clamp((x - offset[c]) * inv_scale[c], -127, 127))``."""
    cdef Py_ssize_t n, t, c
    cdef float v
    with nogil:
        for n in range(x.shape[0]):
            for t in range(x.shape[1]):
                for c in range(x.shape[2]):
                    v = (x[n, t, c] - offset[c]) * inv_scale[c]
                    if v > 127.0:
                        v = 127.0
                    elif v < -127.0:
                        v = -127.0
                    if v >= 0:
                        v = v + <float>0.5
                    else:
                        v = v - <float>0.5
                    out[n, t, c] = <int8_t>(<int>v)


def conv_q8(const int8_t[:, :, ::1] q, const int8_t[:, ::1] signs, const int32_t[::1] thr,
            const uint8_t[::1] flip, int kernel, int pool, uint32_t[:, :, ::1] out):
    """First layer: +1/-1 weights on int8 inputs, threshold, OR-pool; ``out`` is zeroed here.

    ``signs`` is the layer's packed weight rows expanded once to ``(out_ch, kernel * channels)``
    int8 +1/-1 (see :func:`expand_signs`), so the inner product vectorizes.
    """
    cdef Py_ssize_t n, to, p, f, j, t
    cdef Py_ssize_t chans = q.shape[2]
    cdef Py_ssize_t span = kernel * chans
    cdef int32_t acc
    cdef uint32_t bit
    cdef const int8_t *src
    cdef const int8_t *sg
    with nogil:
        out[:, :, :] = 0
        for n in range(q.shape[0]):
            for to in range(out.shape[1]):
                for f in range(signs.shape[0]):
                    bit = 0
                    sg = &signs[f, 0]
                    for p in range(pool):
                        t = to * pool + p
                        src = &q[n, t, 0]  # the receptive field is span contiguous int8 values
                        acc = 0
                        for j in range(span):
                            acc += src[j] * sg[j]
                        bit |= (acc >= thr[f]) ^ flip[f]
                    out[n, to, f >> 5] |= bit << (f & 31)


def expand_signs(const uint32_t[:, ::1] w, Py_ssize_t span, int8_t[:, ::1] out):
    """Packed weight rows -> ``out[f, j]`` = +1 where bit ``j`` of row ``f`` is set, else -1."""
    cdef Py_ssize_t f, j
    with nogil:
        for f in range(w.shape[0]):
            for j in range(span):
                out[f, j] = 1 if (w[f, j >> 5] >> (j & 31)) & 1u else -1


def conv_bin(const uint32_t[:, :, ::1] x, const uint32_t[:, ::1] w, const int32_t[::1] thr,
             const uint8_t[::1] flip, int kernel, int n_bits, int pool, uint32_t[:, :, ::1] out):
    """Binary layer: ``acc = n_bits - 2 * popcount(x XOR w)``, threshold, OR-pool; ``out`` is zeroed here."""
    cdef Py_ssize_t n, to, p, f, t
    cdef Py_ssize_t win = x.shape[2]
    cdef Py_ssize_t span = kernel * win
    cdef int32_t acc
    cdef uint32_t bit
    with nogil:
        out[:, :, :] = 0
        for n in range(x.shape[0]):
            for to in range(out.shape[1]):
                for f in range(w.shape[0]):
                    bit = 0
                    for p in range(pool):
                        t = to * pool + p
                        acc = n_bits - 2 * aebnn_xor_popcount(&x[n, t, 0], &w[f, 0], span)
                        bit |= (acc >= thr[f]) ^ flip[f]
                    out[n, to, f >> 5] |= bit << (f & 31)


def out_bin(const uint32_t[:, :, ::1] x, const uint32_t[:, ::1] w, const int32_t[::1] bias,
            int n_bits, int mult, int32_t[:, ::1] out):
    """Last layer: ``out[n, c] = (n_bits - 2 * popcount(x XOR w)) * mult + bias[c]`` over the whole input."""
    cdef Py_ssize_t n, c
    cdef Py_ssize_t span = x.shape[1] * x.shape[2]
    with nogil:
        for n in range(x.shape[0]):
            for c in range(w.shape[0]):
                out[n, c] = (n_bits - 2 * aebnn_xor_popcount(&x[n, 0, 0], &w[c, 0], span)) * mult + bias[c]
