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

cdef extern from "ae_image.h":
    ctypedef struct ae_plan:
        Py_ssize_t h, w, nh, nw, th, tw, maxcy, maxc
        int nchw
        const int32_t *ys
        const int32_t *yc
        const float *yw
        const int32_t *xs
        const float *xw
        const float *xw4
        float lane_mean[3]
        float lane_inv[3]
        int lane_chan[3]
    int ae_area_resize_normalize(const ae_plan *p, const uint8_t *src, Py_ssize_t rs, float *out) nogil
    void ae_prefetch(const uint8_t *row, Py_ssize_t stride, Py_ssize_t n, Py_ssize_t len) nogil
    void ae_vsum(const uint8_t *row, Py_ssize_t stride, const float *w, Py_ssize_t n, Py_ssize_t len,
                 float *buf) nogil
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
    once (each has its own row buffer; the GIL is released). The work is
    ``ae_area_resize_normalize`` in ``ae_image.h``.
    """

    cdef ae_plan plan
    cdef void *mem

    def __cinit__(self, Py_ssize_t h, Py_ssize_t w, const int32_t[::1] ystart, const int32_t[::1] ycount,
                  const float[:, ::1] yw, const int32_t[::1] xstart, const int32_t[::1] xcount,
                  const float[:, ::1] xw, const float[::1] mean, const float[::1] inv, bint swap, bint nchw,
                  Py_ssize_t th, Py_ssize_t tw):
        cdef Py_ssize_t i, k, t, c, nh = ystart.shape[0], nw = xstart.shape[0]
        cdef Py_ssize_t maxcy = yw.shape[1], maxc = xw.shape[1]
        cdef int32_t *ys
        cdef int32_t *yc
        cdef int32_t *xs
        cdef float *fyw
        cdef float *fxw
        cdef float *xw4
        self.mem = NULL
        if not (0 < nh <= th and 0 < nw <= tw and nh <= h and nw <= w):
            raise ValueError(f"cannot shrink {w}x{h} to {nw}x{nh} inside {tw}x{th}")
        if ycount.shape[0] != nh or yw.shape[0] != nh or xcount.shape[0] != nw or xw.shape[0] != nw \
                or mean.shape[0] != 3 or inv.shape[0] != 3 or maxc < 1 or maxcy < 1:
            raise ValueError("inconsistent area tables")
        for i in range(nh):
            if ycount[i] < 1 or ycount[i] > maxcy or ystart[i] < 0 or ystart[i] + ycount[i] > h:
                raise ValueError(f"area table row {i} reads outside the {h} source rows")
        for i in range(nw):
            if xcount[i] < 1 or xcount[i] > maxc or xstart[i] < 0 or xstart[i] + xcount[i] > w:
                raise ValueError(f"area table column {i} reads outside the {w} source columns")
        # int32 ys, yc, xs | float yw | float xw | 16-byte aligned float xw4 (four lanes a tap)
        self.mem = malloc((2 * nh + nw) * sizeof(int32_t) + (nh * maxcy + 5 * nw * maxc + 4) * sizeof(float) + 16)
        if self.mem == NULL:
            raise MemoryError()
        ys = <int32_t *> self.mem
        yc = ys + nh
        xs = yc + nh
        fyw = <float *> (xs + nw)
        fxw = fyw + nh * maxcy
        xw4 = <float *> ((<size_t> (fxw + nw * maxc) + 15) & ~(<size_t> 15))
        for i in range(nh):
            ys[i], yc[i] = ystart[i], ycount[i]
            for k in range(maxcy):
                fyw[i * maxcy + k] = yw[i, k]
        for i in range(nw):
            xs[i] = xstart[i]
            for k in range(maxc):
                fxw[i * maxc + k] = xw[i, k]
                for t in range(4):
                    xw4[(i * maxc + k) * 4 + t] = xw[i, k]
        self.plan.h, self.plan.w, self.plan.nh, self.plan.nw, self.plan.th, self.plan.tw = h, w, nh, nw, th, tw
        self.plan.maxcy, self.plan.maxc, self.plan.nchw = maxcy, maxc, nchw
        self.plan.ys, self.plan.yc, self.plan.yw, self.plan.xs, self.plan.xw, self.plan.xw4 = ys, yc, fyw, xs, fxw, xw4
        for k in range(3):  # source lane k -> output channel c
            c = 2 - k if swap else k
            self.plan.lane_chan[k] = <int> c
            self.plan.lane_mean[k] = mean[c]
            self.plan.lane_inv[k] = inv[c]

    def __dealloc__(self):
        free(self.mem)

    def __call__(self, const uint8_t[:, :, :] src, float[:, :, :, ::1] out):
        """Fill ``out`` ((1, 3, th, tw) NCHW or (1, th, tw, 3) NHWC) from ``src`` ((h, w, >= 3) uint8,
        each row's pixels contiguous)."""
        cdef const ae_plan *p = &self.plan
        cdef int rc
        if src.shape[0] != p.h or src.shape[1] != p.w or src.shape[2] < 3 or src.strides[1] != 3 \
                or src.strides[2] != 1:
            raise ValueError(f"expected a ({p.h}, {p.w}, 3) uint8 image with contiguous pixels, "
                             f"got shape ({src.shape[0]}, {src.shape[1]}, {src.shape[2]}) "
                             f"strides ({src.strides[0]}, {src.strides[1]}, {src.strides[2]})")
        if out.shape[0] != 1 or (p.nchw and (out.shape[1] != 3 or out.shape[2] != p.th or out.shape[3] != p.tw)) \
                or (not p.nchw and (out.shape[1] != p.th or out.shape[2] != p.tw or out.shape[3] != 3)):
            raise ValueError(f"output tensor shape ({out.shape[0]}, {out.shape[1]}, {out.shape[2]}, {out.shape[3]}) "
                             f"does not match {p.tw}x{p.th}")
        with nogil:
            rc = ae_area_resize_normalize(p, &src[0, 0, 0], src.strides[0], &out[0, 0, 0, 0])
        if rc != 0:
            raise MemoryError()
