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
same vertical sums (four source rows per pass over the summed row), the same horizontal taps
per lane (four-lane vectors where the compiler has them, so each pixel's three channels are
one multiply-add per tap), the same rounding to a grey level, then ``(v - mean[c]) * inv[c]``
on the vector: the float32 operations the numpy path does. The tensor equals
``normalize(area_resize(...))`` bit for bit; the uint8 canvas and the second pass are gone.
"""

from libc.stdint cimport int32_t, uint8_t
from libc.stdlib cimport free, malloc

cdef extern from *:
    """
    #include <float.h>
    #include <math.h>
    #include <stddef.h>
    #include <stdint.h>
    #include <string.h>

    /* Round to the nearest integer, ties to even: lrintf in the default rounding mode. Where
       float arithmetic is plain IEEE single (FLT_EVAL_METHOD 0: SSE, NEON, RISC-V), adding and
       removing 1.5 * 2^23 does it exactly for |a| < 2^22 without a libm call (strict IEEE
       arithmetic, as this file is built, never folds the two away). */
    #if defined(FLT_EVAL_METHOD) && FLT_EVAL_METHOD == 0
    #define AE_MAGIC_ROUND 1
    #endif

    static inline long ae_round(float a) {
    #ifdef AE_MAGIC_ROUND
        if (a > -4194304.0f && a < 4194304.0f)
            return (long) ((a + 12582912.0f) - 12582912.0f);
    #endif
        return lrintf(a);
    }

    static inline int ae_u8(float a) {
        long v = ae_round(a);
        return v < 0 ? 0 : (v > 255 ? 255 : (int) v);
    }

    #if (defined(__GNUC__) || defined(__clang__)) && defined(AE_MAGIC_ROUND)
    typedef float ae_v4f __attribute__((vector_size(16)));
    #define AE_HAVE_V4F 1
    #endif

    /* Ask for the rows the next output row sums while this one is computed: a camera frame is
       fresh from memory, and fetching 4-5 rows at a time as the loads meet them leaves the
       kernel waiting. A hint only: no effect on results. */
    static void ae_prefetch(const uint8_t *row, ptrdiff_t stride, ptrdiff_t n, ptrdiff_t len) {
    #if defined(__GNUC__) || defined(__clang__)
        ptrdiff_t k, t;
        for (k = 0; k < n; k++)
            for (t = 0; t < len; t += 64)
                __builtin_prefetch(row + k * stride + t);
    #else
        (void) row; (void) stride; (void) n; (void) len;
    #endif
    }

    /* buf[t] = w[0] * r[0][t] + w[1] * r[1][t] + ... over n source rows `stride` bytes apart,
       added left to right (the same float operations as one row at a time), four rows per
       pass over buf so most of the sum stays in registers. */
    static void ae_vsum(const uint8_t *row, ptrdiff_t stride, const float *w, ptrdiff_t n, ptrdiff_t len,
                        float *restrict buf) {
        ptrdiff_t k = 0, t;
        while (k < n) {
            ptrdiff_t m = n - k < 4 ? n - k : 4;
            const uint8_t *restrict a = row + k * stride;
            const uint8_t *restrict b = a + stride;
            const uint8_t *restrict c = b + stride;
            const uint8_t *restrict d = c + stride;
            float wa = w[k], wb = m > 1 ? w[k + 1] : 0.0f, wc = m > 2 ? w[k + 2] : 0.0f,
                  wd = m > 3 ? w[k + 3] : 0.0f;
            if (k == 0) {
                switch (m) {
                case 1: for (t = 0; t < len; t++) buf[t] = wa * (float) a[t]; break;
                case 2: for (t = 0; t < len; t++) buf[t] = wa * (float) a[t] + wb * (float) b[t]; break;
                case 3: for (t = 0; t < len; t++)
                            buf[t] = (wa * (float) a[t] + wb * (float) b[t]) + wc * (float) c[t];
                        break;
                default: for (t = 0; t < len; t++)
                            buf[t] = ((wa * (float) a[t] + wb * (float) b[t]) + wc * (float) c[t]) + wd * (float) d[t];
                }
            } else {
                switch (m) {
                case 1: for (t = 0; t < len; t++) buf[t] = buf[t] + wa * (float) a[t]; break;
                case 2: for (t = 0; t < len; t++) buf[t] = (buf[t] + wa * (float) a[t]) + wb * (float) b[t]; break;
                case 3: for (t = 0; t < len; t++)
                            buf[t] = ((buf[t] + wa * (float) a[t]) + wb * (float) b[t]) + wc * (float) c[t];
                        break;
                default: for (t = 0; t < len; t++)
                            buf[t] = (((buf[t] + wa * (float) a[t]) + wb * (float) b[t]) + wc * (float) c[t])
                                     + wd * (float) d[t];
                }
            }
            k += m;
        }
    }

    /* One output row: the horizontal taps over `buf` (one summed source row, 3 floats a pixel,
       then >= 3 * maxc + 1 zero floats), rounded to a grey level r, then (r - mean[s]) * inv[s]
       into out[s][j * step] for lane s (the caller orders mean / inv / out for a channel swap).
       That is exactly the float32 table lookup lut[c][r] of the numpy path: the same two
       operations on the same values. `xw4` holds each tap weight in all four lanes. Taps past a
       pixel's own count weigh +0 and add +0 to a non-negative sum: the same results as stopping
       early. The sum of non-negative weights summing to one stays within [0, 255]. */
    static void ae_row(const float *buf, const int32_t *xs, const float *xw, const float *xw4, ptrdiff_t maxc,
                       ptrdiff_t nw, const float mean[3], const float inv[3], float *const out[3],
                       ptrdiff_t step) {
        ptrdiff_t j, k;
    #ifdef AE_HAVE_V4F
        const ae_v4f magic = {12582912.0f, 12582912.0f, 12582912.0f, 12582912.0f};
        const ae_v4f m4 = {mean[0], mean[1], mean[2], 0.0f}, i4 = {inv[0], inv[1], inv[2], 0.0f};
        float *o0 = out[0], *o1 = out[1], *o2 = out[2];
        (void) xw;
        for (j = 0; j < nw; j++) {
            const float *w = xw4 + j * maxc * 4;
            const float *p = buf + (ptrdiff_t) xs[j] * 3;
            ae_v4f acc = {0.0f, 0.0f, 0.0f, 0.0f};
            float r[4];
            for (k = 0; k < maxc; k++) {
                ae_v4f x, wk;
                memcpy(&x, p + 3 * k, sizeof x);
                memcpy(&wk, w + 4 * k, sizeof wk);
                acc = acc + wk * x;
            }
            acc = ((acc + magic) - magic - m4) * i4;
            memcpy(r, &acc, sizeof r);
            o0[j * step] = r[0];
            o1[j * step] = r[1];
            o2[j * step] = r[2];
        }
    #else
        (void) xw4;
        for (j = 0; j < nw; j++) {
            const float *w = xw + j * maxc;
            const float *p = buf + (ptrdiff_t) xs[j] * 3;
            float a[3] = {0.0f, 0.0f, 0.0f};
            int s;
            for (k = 0; k < maxc; k++) {
                a[0] = a[0] + w[k] * p[3 * k];
                a[1] = a[1] + w[k] * p[3 * k + 1];
                a[2] = a[2] + w[k] * p[3 * k + 2];
            }
            for (s = 0; s < 3; s++)
                out[s][j * step] = ((float) ae_u8(a[s]) - mean[s]) * inv[s];
        }
    #endif
    }
    """
    void ae_prefetch(const uint8_t *row, Py_ssize_t stride, Py_ssize_t n, Py_ssize_t len) nogil
    void ae_vsum(const uint8_t *row, Py_ssize_t stride, const float *w, Py_ssize_t n, Py_ssize_t len,
                 float *buf) nogil
    void ae_row(const float *buf, const int32_t *xs, const float *xw, const float *xw4, Py_ssize_t maxc,
                Py_ssize_t nw, const float mean[3], const float inv[3], float *const out[3], Py_ssize_t step) nogil
    int ae_u8(float a) nogil


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
    cdef Py_ssize_t i, j, k, x0
    cdef float wk, a0, a1, a2
    cdef const float *p
    cdef float *buf = <float *> malloc(w3 * sizeof(float))
    if buf == NULL:
        raise MemoryError()
    try:
        with nogil:
            for i in range(nh):
                if i + 1 < nh:
                    ae_prefetch(&src[ystart[i + 1], 0, 0], src.strides[0], ycount[i + 1], w3)
                ae_vsum(&src[ystart[i], 0, 0], src.strides[0], &yw[i, 0], ycount[i], w3, buf)
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
                    dst[i, j, 0] = <uint8_t> ae_u8(a0)
                    dst[i, j, 1] = <uint8_t> ae_u8(a1)
                    dst[i, j, 2] = <uint8_t> ae_u8(a2)
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


cdef class AreaResizeNormalize:
    """Area-downscale one frame size into the top-left of a float32 input tensor and normalise
    it on the way, prepared once per (frame size, tensor size, layout, channel order).

    ``out[.., c]`` = ``(round(area sum of lane c') - mean[c]) * inv[c]`` in float32 (``c' = 2 - c``
    when ``swap``), NHWC or NCHW; the rest of the tensor (letterbox padding) becomes
    ``(0 - mean[c]) * inv[c]``. The tables are :func:`anyedge.ops.image.area_tables`' (rows
    zero-padded to the widest, every row summing to one); they are checked and copied here,
    so a call only checks the two arrays it is given. Calls may run from several threads at
    once (each has its own row buffer; the GIL is released).
    """

    cdef Py_ssize_t h, w, nh, nw, th, tw, maxcy, maxc
    cdef bint nchw
    cdef int32_t *ys
    cdef int32_t *yc
    cdef int32_t *xs
    cdef float *yw
    cdef float *xw
    cdef float *xw4
    cdef float lane_mean[3]
    cdef float lane_inv[3]
    cdef int lane_chan[3]
    cdef void *mem

    def __cinit__(self, Py_ssize_t h, Py_ssize_t w, const int32_t[::1] ystart, const int32_t[::1] ycount,
                  const float[:, ::1] yw, const int32_t[::1] xstart, const int32_t[::1] xcount,
                  const float[:, ::1] xw, const float[::1] mean, const float[::1] inv, bint swap, bint nchw,
                  Py_ssize_t th, Py_ssize_t tw):
        cdef Py_ssize_t i, k, t, c
        self.mem = NULL
        self.h, self.w, self.nh, self.nw, self.th, self.tw = h, w, ystart.shape[0], xstart.shape[0], th, tw
        self.maxcy, self.maxc, self.nchw = yw.shape[1], xw.shape[1], nchw
        if not (0 < self.nh <= th and 0 < self.nw <= tw and self.nh <= h and self.nw <= w):
            raise ValueError(f"cannot shrink {w}x{h} to {self.nw}x{self.nh} inside {tw}x{th}")
        if ycount.shape[0] != self.nh or yw.shape[0] != self.nh or xcount.shape[0] != self.nw \
                or xw.shape[0] != self.nw or mean.shape[0] != 3 or inv.shape[0] != 3 or self.maxc < 1:
            raise ValueError("inconsistent area tables")
        for i in range(self.nh):
            if ycount[i] < 1 or ycount[i] > self.maxcy or ystart[i] < 0 or ystart[i] + ycount[i] > h:
                raise ValueError(f"area table row {i} reads outside the {h} source rows")
        for i in range(self.nw):
            if xcount[i] < 1 or xcount[i] > self.maxc or xstart[i] < 0 or xstart[i] + xcount[i] > w:
                raise ValueError(f"area table column {i} reads outside the {w} source columns")
        # int32 ys, yc, xs | float yw | float xw | 16-byte aligned float xw4 (four lanes a tap)
        cdef size_t ints = 2 * self.nh + self.nw
        cdef size_t floats = self.nh * self.maxcy + self.nw * self.maxc + self.nw * self.maxc * 4 + 4
        self.mem = malloc(ints * sizeof(int32_t) + floats * sizeof(float) + 16)
        if self.mem == NULL:
            raise MemoryError()
        self.ys = <int32_t *> self.mem
        self.yc = self.ys + self.nh
        self.xs = self.yc + self.nh
        self.yw = <float *> (self.xs + self.nw)
        self.xw = self.yw + self.nh * self.maxcy
        self.xw4 = <float *> ((<size_t> (self.xw + self.nw * self.maxc) + 15) & ~(<size_t> 15))
        for i in range(self.nh):
            self.ys[i], self.yc[i] = ystart[i], ycount[i]
            for k in range(self.maxcy):
                self.yw[i * self.maxcy + k] = yw[i, k]
        for i in range(self.nw):
            self.xs[i] = xstart[i]
            for k in range(self.maxc):
                self.xw[i * self.maxc + k] = xw[i, k]
                for t in range(4):
                    self.xw4[(i * self.maxc + k) * 4 + t] = xw[i, k]
        for k in range(3):  # source lane k -> output channel c
            c = 2 - k if swap else k
            self.lane_chan[k] = c
            self.lane_mean[k] = mean[c]
            self.lane_inv[k] = inv[c]

    def __dealloc__(self):
        free(self.mem)

    def __call__(self, const uint8_t[:, :, :] src, float[:, :, :, ::1] out):
        """Fill ``out`` ((1, 3, th, tw) NCHW or (1, th, tw, 3) NHWC) from ``src`` ((h, w, >= 3) uint8,
        each row's pixels contiguous)."""
        cdef Py_ssize_t w3 = self.w * 3, slack = 3 * self.maxc + 4
        cdef Py_ssize_t i, t, s, j, step = 1 if self.nchw else 3
        cdef Py_ssize_t rs = src.strides[0]
        cdef float *outs[3]
        cdef float pad
        if src.shape[0] != self.h or src.shape[1] != self.w or src.shape[2] < 3 or src.strides[1] != 3 \
                or src.strides[2] != 1:
            raise ValueError(f"expected a ({self.h}, {self.w}, 3) uint8 image with contiguous pixels, "
                             f"got shape ({src.shape[0]}, {src.shape[1]}, {src.shape[2]}) "
                             f"strides ({src.strides[0]}, {src.strides[1]}, {src.strides[2]})")
        if out.shape[0] != 1 or (self.nchw and (out.shape[1] != 3 or out.shape[2] != self.th or out.shape[3] != self.tw)) \
                or (not self.nchw and (out.shape[1] != self.th or out.shape[2] != self.tw or out.shape[3] != 3)):
            raise ValueError(f"output tensor shape ({out.shape[0]}, {out.shape[1]}, {out.shape[2]}, {out.shape[3]}) "
                             f"does not match {self.tw}x{self.th}")
        cdef float *buf = <float *> malloc((w3 + slack) * sizeof(float))
        if buf == NULL:
            raise MemoryError()
        cdef const uint8_t *base = &src[0, 0, 0]
        cdef float *o = &out[0, 0, 0, 0]
        with nogil:
            for t in range(w3, w3 + slack):
                buf[t] = 0
            for i in range(self.th):
                for s in range(3):
                    outs[s] = o + (self.lane_chan[s] * self.th * self.tw + i * self.tw if self.nchw
                                   else (i * self.tw) * 3 + self.lane_chan[s])
                j = 0
                if i < self.nh:
                    if i + 1 < self.nh:
                        ae_prefetch(base + self.ys[i + 1] * rs, rs, self.yc[i + 1], w3)
                    ae_vsum(base + self.ys[i] * rs, rs, self.yw + i * self.maxcy, self.yc[i], w3, buf)
                    ae_row(buf, self.xs, self.xw, self.xw4, self.maxc, self.nw, self.lane_mean, self.lane_inv,
                           outs, step)
                    j = self.nw
                for s in range(3):
                    pad = <float> 0 - self.lane_mean[s]  # not -mean: 0 - 0 is +0, as in numpy
                    pad = pad * self.lane_inv[s]
                    for t in range(j, self.tw):
                        outs[s][t * step] = pad
        free(buf)
