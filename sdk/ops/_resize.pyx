# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled image kernels of the preprocessing: area (anti-aliased) downscaling and normalisation.

``area_resize`` computes OpenCV's ``INTER_AREA`` for non-integer downscaling factors with the
same weight tables (see :func:`anyedge.ops.image.area_tables`), but sums the source rows
first, over whole contiguous rows (vectorised by the compiler), so only the output rows need
the scalar per-pixel horizontal taps; OpenCV does those on every source row (4x the work
for 416 -> 128). Results equal OpenCV's up to float rounding order: about one value in 10^3
differs by one grey level, and none for 416 -> 128 or 192.

``normalize`` is ``(float(v) - mean[c]) * inv_std[c]`` into a float32 tensor in either layout,
with the channel order optionally reversed: the same float32 operations, in the same order,
as the numpy path of :func:`anyedge.ops.image.to_tensor` (built with ``-ffp-contract=off``).

``area_resize_normalize`` is both in one pass, straight into the float32 input tensor: the
same vertical sums, the same horizontal taps per lane (four-lane vectors where the compiler
has them, so each pixel's three channels are one multiply-add per tap), the same rounding to a
grey level, then a per-channel table of ``(float(v) - mean[c]) * inv[c]`` made by the same
float32 operations. The tensor equals ``normalize(area_resize(...))`` bit for bit; the uint8
canvas and the second pass over it are gone.
"""

from libc.stdint cimport int32_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.math cimport lrintf

cdef extern from *:
    """
    #include <float.h>
    #include <math.h>
    #include <stddef.h>
    #include <stdint.h>
    #include <string.h>

    /* Round to the nearest integer, ties to even: lrintf in the default rounding mode. Where
       float arithmetic is plain IEEE single (FLT_EVAL_METHOD 0: SSE, NEON, RISC-V), adding and
       removing 1.5 * 2^23 does it exactly for |a| < 2^22 without a libm call. */
    static inline long ae_round(float a) {
    #if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
        if (a > -4194304.0f && a < 4194304.0f) {
            volatile float m = 12582912.0f;  /* volatile: never folded away */
            float mm = m;
            return (long) ((a + mm) - mm);
        }
    #endif
        return lrintf(a);
    }

    static inline int ae_u8(float a) {
        long v = ae_round(a);
        return v < 0 ? 0 : (v > 255 ? 255 : (int) v);
    }

    #if defined(__GNUC__) || defined(__clang__)
    typedef float ae_v4f __attribute__((vector_size(16)));
    #define AE_HAVE_V4F 1
    #endif

    /* One output row: the horizontal taps over `buf` (one summed source row, 3 floats a pixel,
       then >= 3 * maxc + 1 zero floats), rounded to grey levels, mapped through lut[c] (256
       floats per channel) into out_c[j * step]. Lane s of a pixel goes to out[s] through
       lut[s]: the caller swaps pointers for a channel swap. Taps past a pixel's own count
       weigh +0 and add +0 to a non-negative sum: the same float results as stopping early. */
    static void ae_row(const float *buf, const int32_t *xs, const float *xw, ptrdiff_t maxc,
                       ptrdiff_t nw, const float *const lut[3], float *const out[3], ptrdiff_t step) {
        ptrdiff_t j, k;
        for (j = 0; j < nw; j++) {
            const float *w = xw + j * maxc;
            const float *p = buf + (ptrdiff_t) xs[j] * 3;
            float a0, a1, a2;
    #ifdef AE_HAVE_V4F
            ae_v4f acc = {0.0f, 0.0f, 0.0f, 0.0f};
            for (k = 0; k < maxc; k++) {
                ae_v4f x, wk = {w[k], w[k], w[k], w[k]};
                memcpy(&x, p + 3 * k, sizeof x);
                acc = acc + wk * x;
            }
            a0 = acc[0]; a1 = acc[1]; a2 = acc[2];
    #else
            a0 = 0.0f; a1 = 0.0f; a2 = 0.0f;
            for (k = 0; k < maxc; k++) {
                a0 = a0 + w[k] * p[3 * k];
                a1 = a1 + w[k] * p[3 * k + 1];
                a2 = a2 + w[k] * p[3 * k + 2];
            }
    #endif
            out[0][j * step] = lut[0][ae_u8(a0)];
            out[1][j * step] = lut[1][ae_u8(a1)];
            out[2][j * step] = lut[2][ae_u8(a2)];
        }
    }
    """
    void ae_row(const float *buf, const int32_t *xs, const float *xw, Py_ssize_t maxc, Py_ssize_t nw,
                const float *const lut[3], float *const out[3], Py_ssize_t step) nogil


def area_resize(const uint8_t[:, :, :] src, const int32_t[::1] ystart, const int32_t[::1] ycount,
                const float[:, ::1] yw, const int32_t[::1] xstart, const int32_t[::1] xcount,
                const float[:, ::1] xw, uint8_t[:, :, :] dst):
    """``dst[i, j, c]`` = rounded sum over the taps of ``yw[i, k] * xw[j, l] * src[ystart[i]+k, xstart[j]+l, c]``.

    The vertical taps run over whole contiguous rows; the horizontal ones per output pixel on
    the one summed row. ``src`` rows must be contiguous ``(W, 3)`` (strides ``(*, 3, 1)``);
    ``dst`` may be a view into a larger canvas. The caller checks shapes and tables.
    """
    cdef Py_ssize_t w3 = src.shape[1] * 3
    cdef Py_ssize_t nh = dst.shape[0], nw = dst.shape[1]
    cdef Py_ssize_t i, j, k, t, y0, x0
    cdef float wk, a0, a1, a2
    cdef const uint8_t *row
    cdef const float *p
    cdef long v
    cdef float *buf = <float *> malloc(w3 * sizeof(float))
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            for i in range(nh):
                y0 = ystart[i]
                row = &src[y0, 0, 0]
                wk = yw[i, 0]
                for t in range(w3):
                    buf[t] = wk * <float> row[t]
                for k in range(1, ycount[i]):
                    row = &src[y0 + k, 0, 0]
                    wk = yw[i, k]
                    for t in range(w3):
                        buf[t] = buf[t] + wk * <float> row[t]
                for j in range(nw):
                    x0 = xstart[j]
                    a0 = 0
                    a1 = 0
                    a2 = 0
                    for k in range(xcount[j]):
                        wk = xw[j, k]
                        p = &buf[(x0 + k) * 3]
                        a0 = a0 + wk * p[0]
                        a1 = a1 + wk * p[1]
                        a2 = a2 + wk * p[2]
                    v = lrintf(a0)
                    dst[i, j, 0] = <uint8_t> (0 if v < 0 else (255 if v > 255 else v))
                    v = lrintf(a1)
                    dst[i, j, 1] = <uint8_t> (0 if v < 0 else (255 if v > 255 else v))
                    v = lrintf(a2)
                    dst[i, j, 2] = <uint8_t> (0 if v < 0 else (255 if v > 255 else v))
    finally:
        free(buf)


def normalize(const uint8_t[:, :, :] img, const float[::1] mean, const float[::1] inv, bint swap, bint nchw,
              bint scale, float[:, :, :, ::1] out):
    """``out`` = ``(float(img[..., c']) - mean[c]) * inv[c]`` (``c' = 2 - c`` when ``swap``), NHWC or NCHW.

    ``scale`` False skips the multiplication (every ``inv`` is 1). ``img`` rows must be
    contiguous ``(W, 3)``.
    """
    cdef Py_ssize_t h = img.shape[0], w = img.shape[1]
    cdef Py_ssize_t y, x, c, s
    cdef float v
    with nogil:
        for y in range(h):
            for x in range(w):
                for c in range(3):
                    s = 2 - c if swap else c
                    v = <float> img[y, x, s] - mean[c]
                    if scale:
                        v = v * inv[c]
                    if nchw:
                        out[0, c, y, x] = v
                    else:
                        out[0, y, x, c] = v


def area_resize_normalize(const uint8_t[:, :, :] src, const int32_t[::1] ystart, const int32_t[::1] ycount,
                          const float[:, ::1] yw, const int32_t[::1] xstart, const float[:, ::1] xw,
                          const float[:, ::1] lut, bint swap, bint nchw, float[:, :, :, ::1] out):
    """Area-downscale ``src`` into the top-left ``(len(ystart), len(xstart))`` of ``out`` and
    normalise it on the way: ``out[.., c]`` = ``lut[c, round(area sum of lane c')]`` (``c' = 2 - c``
    when ``swap``), NHWC or NCHW; the rest of ``out`` (letterbox padding) becomes ``lut[c, 0]``.

    ``xw`` rows are zero-padded to its width (every tap past a pixel's count weighs 0), as
    :func:`anyedge.ops.image.area_tables` makes them. ``src`` rows must be contiguous
    ``(W, 3)``. The caller checks shapes and tables.
    """
    cdef Py_ssize_t w = src.shape[1], w3 = w * 3
    cdef Py_ssize_t nh = ystart.shape[0], nw = xstart.shape[0], maxc = xw.shape[1]
    cdef Py_ssize_t th, tw, i, j, k, t, y0, c, s, step
    cdef float wk
    cdef const uint8_t *row
    cdef const float *luts[3]
    cdef float *outs[3]
    cdef float pad
    if nchw:
        th, tw = out.shape[2], out.shape[3]
    else:
        th, tw = out.shape[1], out.shape[2]
    cdef Py_ssize_t slack = 3 * maxc + 4
    cdef float *buf = <float *> malloc((w3 + slack) * sizeof(float))
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            for t in range(w3, w3 + slack):
                buf[t] = 0
            for s in range(3):  # source lane s -> output channel c
                c = 2 - s if swap else s
                luts[s] = &lut[c, 0]
            for i in range(th):
                for s in range(3):
                    c = 2 - s if swap else s
                    outs[s] = &out[0, c, i, 0] if nchw else &out[0, i, 0, c]
                step = 1 if nchw else 3
                if i < nh:
                    y0 = ystart[i]
                    row = &src[y0, 0, 0]
                    wk = yw[i, 0]
                    for t in range(w3):
                        buf[t] = wk * <float> row[t]
                    for k in range(1, ycount[i]):
                        row = &src[y0 + k, 0, 0]
                        wk = yw[i, k]
                        for t in range(w3):
                            buf[t] = buf[t] + wk * <float> row[t]
                    ae_row(buf, &xstart[0], &xw[0, 0], maxc, nw, luts, outs, step)
                    j = nw
                else:
                    j = 0
                for s in range(3):
                    pad = luts[s][0]
                    for t in range(j, tw):
                        outs[s][t * step] = pad
    finally:
        free(buf)
