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
"""

from libc.stdint cimport int32_t, uint8_t
from libc.stdlib cimport free, malloc
from libc.math cimport lrintf


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
