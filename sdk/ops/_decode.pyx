# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True, initializedcheck=False
"""Compiled BlazeFace post-processing: raw outputs to faces in source pixels in one call.

``blazeface_faces`` does what :func:`anyedge.decoders.blazeface.decode`, then
:func:`anyedge.ops.nms.weighted_nms`, then :meth:`anyedge.ops.image.Letterbox.boxes_to_source`
and the detector's validity filter do with some forty numpy calls, in one pass without
temporaries. A frame without a face costs one scan of the logits. Every float32 step is the
numpy path's, in numpy's order: the sigmoid's ``exp`` is libm's in float64 rounded to float32
(as the numpy path and the C library compute it), the blended coordinates add up member after
member and the weights pairwise, as ``w.sum()`` does. The faces are bit-identical to the numpy
path's and to ``targets/apps/c/anyedge_post.c``'s.
"""

from cpython.buffer cimport PyBUF_C_CONTIGUOUS, PyBUF_FORMAT, PyObject_GetBuffer, PyBuffer_Release
from libc.math cimport exp, fabsf
from libc.stdlib cimport free, malloc, qsort

import numpy as np


cdef struct Cand:
    int index
    float score


cdef int _by_score(const void *a, const void *b) noexcept nogil:
    # best score first; equal scores keep anchor order (numpy's stable argsort of -score)
    cdef const Cand *x = <const Cand *> a
    cdef const Cand *y = <const Cand *> b
    if x.score > y.score:
        return -1
    if x.score < y.score:
        return 1
    return (x.index > y.index) - (x.index < y.index)


cdef inline float _sigmoid(float x) noexcept nogil:
    # float64 exp rounded to float32, as the numpy path and the C library take it (a float32
    # expf need not be correctly rounded, so one libm's may differ from another's)
    cdef float e
    x = 100.0 if x > 100.0 else (-100.0 if x < -100.0 else x)
    e = <float> exp(<double> -fabsf(x))
    if x >= 0:
        return <float> 1.0 / (<float> 1.0 + e)
    return e / (<float> 1.0 + e)


cdef float _pairwise_sum(const float *a, Py_ssize_t n) noexcept nogil:
    # numpy's float32 sum of a contiguous array: eight accumulators per block of up to 128,
    # halves above that (anyedge_post.c's pairwise_sum)
    cdef float r[8]
    cdef float res = 0
    cdef Py_ssize_t i, j, n2
    if n < 8:
        for i in range(n):
            res += a[i]
        return res
    if n <= 128:
        for j in range(8):
            r[j] = a[j]
        i = 8
        while i < n - (n % 8):
            for j in range(8):
                r[j] += a[i + j]
            i += 8
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]))
        while i < n:
            res += a[i]
            i += 1
        return res
    n2 = n // 2
    n2 -= n2 % 8
    return _pairwise_sum(a, n2) + _pairwise_sum(a + n2, n - n2)


cdef inline void _blend(float *ob, float s, const float *b, const float *k, Py_ssize_t kk) noexcept nogil:
    # one member's share of a blended face: its box and keypoints times its score
    cdef Py_ssize_t q
    for q in range(4):
        ob[q] += s * b[q]
    for q in range(2 * kk):
        ob[5 + q] += s * k[q]


cdef inline float _area(const float *b) noexcept nogil:
    cdef float w = b[2] - b[0], h = b[3] - b[1]
    return (w if w > 0 else <float> 0) * (h if h > 0 else <float> 0)


cdef inline float _iou(const float *a, const float *b) noexcept nogil:
    cdef float l = a[0] if a[0] > b[0] else b[0]
    cdef float t = a[1] if a[1] > b[1] else b[1]
    cdef float r = a[2] if a[2] < b[2] else b[2]
    cdef float d = a[3] if a[3] < b[3] else b[3]
    cdef float w = r - l, h = d - t, inter, union
    w = w if w > 0 else <float> 0
    h = h if h > 0 else <float> 0
    inter = w * h
    union = _area(a) + _area(b) - inter
    if union > 0:
        return inter / (union if union > <float> 1e-12 else <float> 1e-12)
    return 0


cdef const float *_floats(object obj, Py_buffer *view, Py_ssize_t *n, str name) except NULL:
    PyObject_GetBuffer(obj, view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT)
    fmt = view.format if view.format != NULL else b"B"
    if view.itemsize != 4 or fmt not in (b"f", b"<f", b"=f"):
        PyBuffer_Release(view)
        raise ValueError(f"blazeface: output {name!r} must be float32, got format {fmt.decode()!r}")
    n[0] = view.len // 4
    return <const float *> view.buf


def blazeface_faces(object regressors, object classificators, const float[:, ::1] centres, float cut,
                    float score_threshold, float iou_threshold, Py_ssize_t max_det, Py_ssize_t keypoints,
                    float scale_x, float scale_y, float pad_x, float pad_y, float src_w, float src_h):
    """Faces from BlazeFace's raw outputs, best first, in source pixels; ``None`` for none.

    Args:
        regressors: float32, C-contiguous, ``(..., anchors, width)`` with width >= 4 + 2 * keypoints:
            box centre offset, size, then keypoint offsets, in input pixels.
        classificators: float32, one logit per anchor.
        centres: ``(anchors, 2)`` anchor centres in input pixels.
        cut: logits below it are skipped without a sigmoid (see ``decoders.blazeface._logit_cut``).
        score_threshold, iou_threshold: as in :func:`anyedge.ops.nms.weighted_nms`.
        max_det: keep at most this many faces; 0 keeps all.
        keypoints: keypoints per face.
        scale_x, scale_y, pad_x, pad_y, src_w, src_h: the letterbox (``input = source * scale + pad``).

    Returns:
        ``None`` when no anchor reaches the threshold, else ``(boxes (n, 4), scores (n,),
        keypoints (n, k, 2))`` float32: boxes clipped to the image, empty boxes dropped.
    """
    cdef Py_buffer rv, cv
    cdef Py_ssize_t nr, nc, na = centres.shape[0], width, i, j, m = 0, kept = 0, c, q, kk = keypoints
    cdef const float *reg
    cdef const float *logit
    cdef Cand *cand = NULL
    cdef float *box = NULL
    cdef float *kps = NULL
    cdef float *out = NULL
    cdef char *alive = NULL
    cdef float *weights = NULL
    cdef float wsum
    cdef Py_ssize_t nw
    cdef float s, head_iou
    cdef const float *r
    cdef float *ob
    cdef Py_ssize_t per = 4 + 1 + 2 * kk  # one face out: box, score, keypoints
    reg = _floats(regressors, &rv, &nr, "regressors")
    try:
        logit = _floats(classificators, &cv, &nc, "classificators")
    except BaseException:
        PyBuffer_Release(&rv)
        raise
    try:
        if nc != na or na == 0 or nr % na:
            raise ValueError(f"blazeface: {nc} scores and {nr} regressor values for {na} anchors")
        width = nr // na
        if width < 4 + 2 * kk or centres.shape[1] != 2:
            raise ValueError(f"blazeface: {width} regressor values per anchor, {kk} keypoints need {4 + 2 * kk}")
        with nogil:
            for i in range(na):
                if logit[i] >= cut:
                    m += 1
        if m == 0:
            return None
        cand = <Cand *> malloc(m * sizeof(Cand))
        box = <float *> malloc(m * 4 * sizeof(float))
        kps = <float *> malloc((m * 2 * kk + 1) * sizeof(float))
        out = <float *> malloc(m * per * sizeof(float))
        alive = <char *> malloc(m)
        weights = <float *> malloc(m * sizeof(float))
        if cand == NULL or box == NULL or kps == NULL or out == NULL or alive == NULL or weights == NULL:
            raise MemoryError()
        with nogil:
            m = 0
            for i in range(na):
                if logit[i] >= cut:
                    s = _sigmoid(logit[i])
                    if s >= score_threshold:
                        cand[m].index = <int> i
                        cand[m].score = s
                        m += 1
            if m:
                qsort(cand, m, sizeof(Cand), _by_score)
                for j in range(m):  # decode, in score order
                    i = cand[j].index
                    r = reg + i * width
                    box[4 * j] = (centres[i, 0] + r[0]) - r[2] / <float> 2
                    box[4 * j + 1] = (centres[i, 1] + r[1]) - r[3] / <float> 2
                    box[4 * j + 2] = (centres[i, 0] + r[0]) + r[2] / <float> 2
                    box[4 * j + 3] = (centres[i, 1] + r[1]) + r[3] / <float> 2
                    for q in range(kk):
                        kps[(j * kk + q) * 2] = r[4 + 2 * q] + centres[i, 0]
                        kps[(j * kk + q) * 2 + 1] = r[5 + 2 * q] + centres[i, 1]
                    alive[j] = 1
                # weighted suppression: the best remaining face and every face overlapping it
                # by more than the threshold blend, weighted by score; the head always leaves
                for j in range(m):
                    if not alive[j]:
                        continue
                    ob = out + kept * per
                    head_iou = _iou(box + 4 * j, box + 4 * j)
                    nw = 0
                    for q in range(per):
                        ob[q] = 0
                    for c in range(j, m):
                        if not alive[c] or (c != j and not _iou(box + 4 * j, box + 4 * c) > iou_threshold) \
                                or (c == j and not head_iou > iou_threshold):
                            continue
                        _blend(ob, cand[c].score, box + 4 * c, kps + c * 2 * kk, kk)
                        weights[nw] = cand[c].score
                        nw += 1
                        if c != j:
                            alive[c] = 0
                    alive[j] = 0
                    if nw == 0:  # a degenerate head overlaps nothing, not even itself: it stands alone
                        _blend(ob, cand[j].score, box + 4 * j, kps + j * 2 * kk, kk)
                        weights[nw] = cand[j].score
                        nw += 1
                    wsum = _pairwise_sum(weights, nw)
                    for q in range(4):
                        ob[q] = ob[q] / wsum
                    for q in range(2 * kk):
                        ob[5 + q] = ob[5 + q] / wsum
                    ob[4] = cand[j].score
                    kept += 1
                    if max_det > 0 and kept >= max_det:
                        break
        if m == 0:
            return None
        boxes = np.empty((kept, 4), np.float32)
        scores = np.empty(kept, np.float32)
        points = np.empty((kept, kk, 2), np.float32)
        return _to_source(out, kept, kk, per, boxes, scores, points, scale_x, scale_y, pad_x, pad_y, src_w, src_h)
    finally:
        free(cand)
        free(box)
        free(kps)
        free(out)
        free(alive)
        free(weights)
        PyBuffer_Release(&cv)
        PyBuffer_Release(&rv)


cdef object _to_source(const float *faces, Py_ssize_t n, Py_ssize_t kk, Py_ssize_t per, object boxes_obj,
                       object scores_obj, object points_obj, float sx, float sy, float px, float py, float w,
                       float h):
    cdef float[:, ::1] boxes = boxes_obj
    cdef float[::1] scores = scores_obj
    cdef float[:, :, ::1] points = points_obj
    cdef Py_ssize_t i, q, t = 0
    cdef float b[4]
    cdef const float *f
    with nogil:
        for i in range(n):
            f = faces + i * per
            b[0] = (f[0] - px) / sx
            b[1] = (f[1] - py) / sy
            b[2] = (f[2] - px) / sx
            b[3] = (f[3] - py) / sy
            for q in range(4):
                b[q] = b[q] if b[q] > 0 else <float> 0
            b[0] = b[0] if b[0] < w else w
            b[2] = b[2] if b[2] < w else w
            b[1] = b[1] if b[1] < h else h
            b[3] = b[3] if b[3] < h else h
            if not (b[2] > b[0] and b[3] > b[1]):
                continue  # nothing of it inside the image
            for q in range(4):
                boxes[t, q] = b[q]
            scores[t] = f[4] if f[4] < 1 else <float> 1
            for q in range(kk):
                points[t, q, 0] = (f[5 + 2 * q] - px) / sx
                points[t, q, 1] = (f[6 + 2 * q] - py) / sy
            t += 1
    if t < n:
        return boxes_obj[:t], scores_obj[:t], points_obj[:t]
    return boxes_obj, scores_obj, points_obj
