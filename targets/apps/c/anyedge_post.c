/*
 * anyedge_post: see anyedge_post.h. Each function names the Python it mirrors; the float32
 * and float64 steps are kept exactly as numpy evaluates them (numpy rounds a Python float to
 * float32 before combining it with a float32 array, so such constants are cast first here).
 */
#include "anyedge_post.h"

#include <math.h>
#include <string.h>

/* ---- small helpers ------------------------------------------------------------------- */

static uint32_t ceil_div(uint32_t a, uint32_t b) { return (a + b - 1u) / b; }

/* numpy's maximum/minimum/clip for float32 (NaN propagates from the first operand). */
static float np_max(float a, float b) { return (a != a) ? a : ((a > b) ? a : b); }
static float np_min(float a, float b) { return (a != a) ? a : ((a < b) ? a : b); }
static float np_clip(float x, float lo, float hi) { return np_min(np_max(x, lo), hi); }

/* Python's round() of a double: to nearest, ties to even. */
static double round_half_even(double v) {
    double r = floor(v);
    double d = v - r;
    if (d > 0.5 || (d == 0.5 && fmod(r, 2.0) != 0.0)) r += 1.0;
    return r;
}

/* float32 exp: libm's float64 exp rounded to float32 (nearly always the correctly rounded value,
 * whichever libm; a float32 expf need not be). numpy's own SIMD float32 exp may differ from this in
 * the last bit or two. */
static float exp32(float x) { return (float)exp((double)x); }

/* decoders/blazeface._sigmoid(np.clip(logit, -100, 100)) in float32, which takes exp as exp32 does
 * (so does the SDK's compiled kernel, sdk/ops/_decode.pyx) */
static float blaze_sigmoid(float logit) {
    float x = np_clip(logit, -100.0f, 100.0f);
    float e = exp32(-fabsf(x));
    return (x >= 0.0f) ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

static int model_ok(const aepost_model *m) {
    uint32_t i;
    if (!m || m->input_w == 0 || m->input_h == 0 || m->n_keypoints > AEPOST_MAX_KEYPOINTS) return 0;
    if (m->family < AEPOST_BLAZEFACE || m->family > AEPOST_ULTRAFACE) return 0;
    if (m->family != AEPOST_ULTRAFACE && (m->n_levels == 0 || m->n_levels > AEPOST_MAX_LEVELS)) return 0;
    for (i = 0; i < m->n_levels && i < AEPOST_MAX_LEVELS; i++)
        if (m->strides[i] == 0) return 0;
    if (m->family == AEPOST_SCRFD && m->anchors_per_cell == 0) return 0;
    if (m->family == AEPOST_RETINAFACE && (m->n_sizes == 0 || m->n_sizes > AEPOST_MAX_SIZES)) return 0;
    if (m->family == AEPOST_BLAZEFACE && m->n_keypoints > 6) return 0; /* 16 floats per anchor */
    if (m->family == AEPOST_RETINAFACE && m->n_keypoints != 5) return 0;
    return 1;
}

/* ---- letterbox (ops/image.py) ------------------------------------------------------------ */

int aepost_letterbox_params(uint32_t src_w, uint32_t src_h, uint32_t dst_w, uint32_t dst_h,
                            uint32_t resize_mode, aepost_letterbox *lb) {
    double nw, nh;
    if (!lb || src_w == 0 || src_h == 0 || dst_w == 0 || dst_h == 0) return AEPOST_ERR_ARG;
    if (resize_mode == AEPOST_STRETCH) {
        nw = dst_w;
        nh = dst_h;
    } else if (resize_mode == AEPOST_LETTERBOX) {
        double sx = (double)dst_w / (double)src_w, sy = (double)dst_h / (double)src_h;
        double s = (sy < sx) ? sy : sx; /* Python min(): the first on ties, same value */
        nw = round_half_even((double)src_w * s);
        nh = round_half_even((double)src_h * s);
        nw = nw > dst_w ? dst_w : nw;
        nh = nh > dst_h ? dst_h : nh;
        nw = nw < 1.0 ? 1.0 : nw;
        nh = nh < 1.0 ? 1.0 : nh;
    } else {
        return AEPOST_ERR_ARG;
    }
    lb->resized_w = (uint32_t)nw;
    lb->resized_h = (uint32_t)nh;
    lb->scale_x = nw / (double)src_w; /* the scale actually applied, not the requested one */
    lb->scale_y = nh / (double)src_h;
    lb->pad_x = 0.0;
    lb->pad_y = 0.0;
    lb->src_w = src_w;
    lb->src_h = src_h;
    return AEPOST_OK;
}

/* Letterbox.to_source: float32 (xy - pad) / scale, the doubles rounded to float32 first. */
void aepost_to_source(const aepost_letterbox *lb, float x, float y, float *sx, float *sy) {
    *sx = (x - (float)lb->pad_x) / (float)lb->scale_x;
    *sy = (y - (float)lb->pad_y) / (float)lb->scale_y;
}

/* ---- normalisation (ops/image.to_tensor) ------------------------------------------------- */

int aepost_normalize(const aepost_model *m, const uint8_t *canvas, size_t stride, uint32_t canvas_channels,
                     float *tensor) {
    uint32_t x, y, c, w, h;
    float mean[3], inv[3];
    int swap;
    if (!model_ok(m) || !canvas || !tensor || canvas_channels > AEPOST_BGR) return AEPOST_ERR_ARG;
    w = m->input_w;
    h = m->input_h;
    if (stride < (size_t)w * 3u) return AEPOST_ERR_ARG;
    for (c = 0; c < 3; c++) {
        mean[c] = (float)m->mean[c];
        inv[c] = 1.0f / (float)m->std[c]; /* numpy: 1.0 / float32 array */
    }
    swap = canvas_channels != m->channels;
    for (y = 0; y < h; y++) {
        const uint8_t *row = canvas + (size_t)y * stride;
        for (x = 0; x < w; x++) {
            for (c = 0; c < 3; c++) {
                float v = (float)row[3u * x + (swap ? 2u - c : c)] - mean[c];
                if (inv[c] != 1.0f) v *= inv[c];
                if (m->layout == AEPOST_NCHW)
                    tensor[((size_t)c * h + y) * w + x] = v;
                else
                    tensor[((size_t)y * w + x) * 3u + c] = v;
            }
        }
    }
    return AEPOST_OK;
}

/* engines/base.dequantize_output: (y.astype(float32) - zero) * scale, Python numbers as float32 */
void aepost_dequantize_int8(const int8_t *q, size_t n, double scale, int32_t zero_point, float *out) {
    size_t i;
    const float s = (float)scale, z = (float)zero_point;
    for (i = 0; i < n; i++) out[i] = ((float)q[i] - z) * s;
}

void aepost_dequantize_uint8(const uint8_t *q, size_t n, double scale, int32_t zero_point, float *out) {
    size_t i;
    const float s = (float)scale, z = (float)zero_point;
    for (i = 0; i < n; i++) out[i] = ((float)q[i] - z) * s;
}

/* ---- anchors and slot sizes ---------------------------------------------------------------- */

/* ops/anchors.ssd_anchors: consecutive layers with one stride share a feature map. */
static uint32_t ssd_per_cell(const aepost_model *m, uint32_t layer, uint32_t *next) {
    uint32_t count = 0, last = layer;
    while (last < m->n_levels && m->strides[last] == m->strides[layer]) {
        count += 1u; /* one aspect ratio (1.0), as the decoder uses */
        if (m->interpolated_scale_aspect_ratio > 0.0) count += 1u;
        last++;
    }
    *next = last;
    return count;
}

size_t aepost_max_candidates(const aepost_model *m) {
    size_t n = 0;
    uint32_t i, next;
    if (!model_ok(m)) return 0;
    switch (m->family) {
    case AEPOST_BLAZEFACE:
        for (i = 0; i < m->n_levels; i = next) {
            uint32_t per = ssd_per_cell(m, i, &next);
            n += (size_t)ceil_div(m->input_h, m->strides[i]) * ceil_div(m->input_w, m->strides[i]) * per;
        }
        return n;
    case AEPOST_SCRFD:
    case AEPOST_YUNET:
    case AEPOST_RETINAFACE: {
        size_t per = m->family == AEPOST_SCRFD ? m->anchors_per_cell : (m->family == AEPOST_RETINAFACE ? m->n_sizes : 1u);
        for (i = 0; i < m->n_levels; i++)
            n += (size_t)ceil_div(m->input_h, m->strides[i]) * ceil_div(m->input_w, m->strides[i]) * per;
        return n;
    }
    case AEPOST_ULTRAFACE:
        return m->n_priors;
    default:
        return 0;
    }
}

uint32_t aepost_num_slots(const aepost_model *m) {
    if (!model_ok(m)) return 0;
    switch (m->family) {
    case AEPOST_BLAZEFACE: return 2u;            /* boxes (n, 16), scores (n) */
    case AEPOST_SCRFD: return 3u * m->n_levels;  /* score_s, bbox_s, kps_s per stride */
    case AEPOST_YUNET: return 4u * m->n_levels;  /* cls_s, obj_s, bbox_s, kps_s per stride */
    case AEPOST_RETINAFACE: return 3u;           /* loc, conf, iou (landmarks) */
    case AEPOST_ULTRAFACE: return 2u;            /* scores (n, 2), boxes (n, 4) */
    default: return 0;
    }
}

size_t aepost_slot_size(const aepost_model *m, uint32_t slot) {
    size_t cells, k2;
    uint32_t level, part;
    if (slot >= aepost_num_slots(m)) return 0;
    k2 = 2u * (size_t)m->n_keypoints;
    switch (m->family) {
    case AEPOST_BLAZEFACE: {
        size_t n = aepost_max_candidates(m);
        return slot == 0 ? n * 16u : n;
    }
    case AEPOST_SCRFD:
        level = slot / 3u;
        part = slot % 3u;
        cells = (size_t)ceil_div(m->input_h, m->strides[level]) * ceil_div(m->input_w, m->strides[level]) *
                m->anchors_per_cell;
        return part == 0 ? cells : (part == 1 ? cells * 4u : cells * k2);
    case AEPOST_YUNET:
        level = slot / 4u;
        part = slot % 4u;
        cells = (size_t)ceil_div(m->input_h, m->strides[level]) * ceil_div(m->input_w, m->strides[level]);
        return part <= 1 ? cells : (part == 2 ? cells * 4u : cells * k2);
    case AEPOST_RETINAFACE: {
        size_t n = aepost_max_candidates(m);
        return slot == 0 ? n * 4u : (slot == 1 ? n * 2u : n * 10u);
    }
    case AEPOST_ULTRAFACE:
        return slot == 0 ? (size_t)m->n_priors * 2u : (size_t)m->n_priors * 4u;
    default:
        return 0;
    }
}

long aepost_anchors(const aepost_model *m, float *out, size_t out_floats, uint32_t *floats_per_anchor) {
    size_t n = 0;
    uint32_t i, next, x, y, r, s;
    uint32_t fpa;
    if (!model_ok(m) || !floats_per_anchor) return AEPOST_ERR_ARG;
    fpa = m->family == AEPOST_RETINAFACE ? 4u : (m->family == AEPOST_ULTRAFACE ? 0u : 2u);
    *floats_per_anchor = fpa;
    if (aepost_max_candidates(m) * fpa > out_floats || (!out && fpa)) return AEPOST_ERR_CAPACITY;
    switch (m->family) {
    case AEPOST_BLAZEFACE:
        for (i = 0; i < m->n_levels; i = next) {
            uint32_t per = ssd_per_cell(m, i, &next);
            uint32_t fh = ceil_div(m->input_h, m->strides[i]), fw = ceil_div(m->input_w, m->strides[i]);
            for (y = 0; y < fh; y++)
                for (x = 0; x < fw; x++)
                    for (r = 0; r < per; r++) {
                        /* float64 (i + 0.5) / f, then astype(float32) */
                        out[2 * n] = (float)(((double)x + 0.5) / (double)fw);
                        out[2 * n + 1] = (float)(((double)y + 0.5) / (double)fh);
                        n++;
                    }
        }
        break;
    case AEPOST_SCRFD:
    case AEPOST_YUNET:
        for (i = 0; i < m->n_levels; i++) {
            uint32_t fh = ceil_div(m->input_h, m->strides[i]), fw = ceil_div(m->input_w, m->strides[i]);
            uint32_t per = m->family == AEPOST_SCRFD ? m->anchors_per_cell : 1u;
            float st = (float)m->strides[i];
            for (y = 0; y < fh; y++)
                for (x = 0; x < fw; x++)
                    for (r = 0; r < per; r++) {
                        out[2 * n] = ((float)x + 0.0f) * st;
                        out[2 * n + 1] = ((float)y + 0.0f) * st;
                        n++;
                    }
        }
        break;
    case AEPOST_RETINAFACE:
        for (i = 0; i < m->n_levels; i++) {
            uint32_t fh = ceil_div(m->input_h, m->strides[i]), fw = ceil_div(m->input_w, m->strides[i]);
            double step = m->strides[i], w = m->input_w, h = m->input_h;
            for (y = 0; y < fh; y++)
                for (x = 0; x < fw; x++)
                    for (s = 0; s < m->n_sizes; s++) {
                        out[4 * n] = (float)(((double)x + 0.5) * step / w);
                        out[4 * n + 1] = (float)(((double)y + 0.5) * step / h);
                        out[4 * n + 2] = (float)((double)m->min_sizes[i][s] / w);
                        out[4 * n + 3] = (float)((double)m->min_sizes[i][s] / h);
                        n++;
                    }
        }
        break;
    default:
        n = m->n_priors;
        break;
    }
    return (long)n;
}

/* ---- decoders (the modules in anyedge/decoders) ---------------------------------------- */

static int push(aepost_face *cand, size_t cap, size_t *n, const float box[4], float score, const float *kps,
                uint32_t k) {
    aepost_face *f;
    if (*n >= cap) return AEPOST_ERR_CAPACITY;
    f = &cand[(*n)++];
    memset(f, 0, sizeof *f);
    memcpy(f->box, box, sizeof f->box);
    f->score = score;
    if (k) memcpy(f->keypoints, kps, 2u * k * sizeof(float));
    return AEPOST_OK;
}

static int decode_blazeface(const aepost_model *m, const float *const *o, float thr, aepost_face *cand,
                            size_t cap, size_t *n) {
    const float *raw = o[0], *logits = o[1];
    const float fw_ = (float)m->input_w, fh_ = (float)m->input_h;
    uint32_t i, next, x, y, r, j, k = m->n_keypoints;
    size_t idx = 0;
    for (i = 0; i < m->n_levels; i = next) {
        uint32_t per = ssd_per_cell(m, i, &next);
        uint32_t fh = ceil_div(m->input_h, m->strides[i]), fw = ceil_div(m->input_w, m->strides[i]);
        for (y = 0; y < fh; y++)
            for (x = 0; x < fw; x++)
                for (r = 0; r < per; r++, idx++) {
                    float ax = (float)(((double)x + 0.5) / (double)fw);
                    float ay = (float)(((double)y + 0.5) / (double)fh);
                    float score = blaze_sigmoid(logits[idx]);
                    const float *rr = raw + 16u * idx;
                    float box[4], kps[2 * AEPOST_MAX_KEYPOINTS];
                    float cx, cy, hw, hh;
                    int rc;
                    if (!(score >= thr)) continue;
                    cx = ax * fw_ + rr[0];
                    cy = ay * fh_ + rr[1];
                    hw = rr[2] / 2.0f;
                    hh = rr[3] / 2.0f;
                    box[0] = cx - hw;
                    box[1] = cy - hh;
                    box[2] = cx + hw;
                    box[3] = cy + hh;
                    for (j = 0; j < k; j++) {
                        kps[2 * j] = rr[4 + 2 * j] + ax * fw_;
                        kps[2 * j + 1] = rr[5 + 2 * j] + ay * fh_;
                    }
                    if ((rc = push(cand, cap, n, box, score, kps, k)) != AEPOST_OK) return rc;
                }
    }
    return AEPOST_OK;
}

static int decode_scrfd(const aepost_model *m, const float *const *o, float thr, aepost_face *cand, size_t cap,
                        size_t *n) {
    uint32_t l, j, k = m->n_keypoints;
    for (l = 0; l < m->n_levels; l++) {
        const float *scores = o[3 * l], *bbox = o[3 * l + 1], *kp = o[3 * l + 2];
        uint32_t fh = ceil_div(m->input_h, m->strides[l]), fw = ceil_div(m->input_w, m->strides[l]);
        uint32_t per = m->anchors_per_cell;
        float st = (float)m->strides[l];
        size_t i, total = (size_t)fh * fw * per;
        for (i = 0; i < total; i++) {
            size_t cell = i / per;
            float cx = ((float)(uint32_t)(cell % fw) + 0.0f) * st;
            float cy = ((float)(uint32_t)(cell / fw) + 0.0f) * st;
            float box[4], kps[2 * AEPOST_MAX_KEYPOINTS];
            int rc;
            if (!(scores[i] >= thr)) continue;
            box[0] = cx - bbox[4 * i] * st;
            box[1] = cy - bbox[4 * i + 1] * st;
            box[2] = cx + bbox[4 * i + 2] * st;
            box[3] = cy + bbox[4 * i + 3] * st;
            for (j = 0; j < k; j++) {
                kps[2 * j] = kp[2 * k * i + 2 * j] * st + cx;
                kps[2 * j + 1] = kp[2 * k * i + 2 * j + 1] * st + cy;
            }
            if ((rc = push(cand, cap, n, box, scores[i], kps, k)) != AEPOST_OK) return rc;
        }
    }
    return AEPOST_OK;
}

static int decode_yunet(const aepost_model *m, const float *const *o, float thr, aepost_face *cand, size_t cap,
                        size_t *n) {
    uint32_t l, j, k = m->n_keypoints;
    for (l = 0; l < m->n_levels; l++) {
        const float *cls = o[4 * l], *obj = o[4 * l + 1], *bbox = o[4 * l + 2], *kp = o[4 * l + 3];
        uint32_t fh = ceil_div(m->input_h, m->strides[l]), fw = ceil_div(m->input_w, m->strides[l]);
        float st = (float)m->strides[l];
        size_t i, total = (size_t)fh * fw;
        for (i = 0; i < total; i++) {
            float c = np_clip(cls[i], 0.0f, 1.0f), ob = np_clip(obj[i], 0.0f, 1.0f);
            float score = sqrtf(c * ob);
            float gx, gy, cx, cy, w, h, box[4], kps[2 * AEPOST_MAX_KEYPOINTS];
            int rc;
            if (!(score >= thr)) continue;
            gx = ((float)(uint32_t)(i % fw) + 0.0f) * 1.0f;
            gy = ((float)(uint32_t)(i / fw) + 0.0f) * 1.0f;
            cx = (gx + bbox[4 * i]) * st;
            cy = (gy + bbox[4 * i + 1]) * st;
            w = exp32(bbox[4 * i + 2]) * st;
            h = exp32(bbox[4 * i + 3]) * st;
            box[0] = cx - w / 2.0f;
            box[1] = cy - h / 2.0f;
            box[2] = cx + w / 2.0f;
            box[3] = cy + h / 2.0f;
            for (j = 0; j < k; j++) {
                kps[2 * j] = (kp[2 * k * i + 2 * j] + gx) * st;
                kps[2 * j + 1] = (kp[2 * k * i + 2 * j + 1] + gy) * st;
            }
            if ((rc = push(cand, cap, n, box, score, kps, k)) != AEPOST_OK) return rc;
        }
    }
    return AEPOST_OK;
}

static int decode_retinaface(const aepost_model *m, const float *const *o, float thr, aepost_face *cand,
                             size_t cap, size_t *n) {
    const float *loc = o[0], *conf = o[1], *lm = o[2];
    const float v0 = (float)m->variance[0], v1 = (float)m->variance[1];
    const float sw = (float)m->input_w, sh = (float)m->input_h;
    const double w = m->input_w, h = m->input_h;
    uint32_t l, x, y, s, j;
    size_t i = 0;
    for (l = 0; l < m->n_levels; l++) {
        uint32_t fh = ceil_div(m->input_h, m->strides[l]), fw = ceil_div(m->input_w, m->strides[l]);
        double step = m->strides[l];
        for (y = 0; y < fh; y++)
            for (x = 0; x < fw; x++)
                for (s = 0; s < m->n_sizes; s++, i++) {
                    float score = conf[2 * i + 1];
                    float px, py, pw, ph, cx, cy, bw, bh, box[4], kps[10];
                    int rc;
                    if (!(score >= thr)) continue;
                    px = (float)(((double)x + 0.5) * step / w);
                    py = (float)(((double)y + 0.5) * step / h);
                    pw = (float)((double)m->min_sizes[l][s] / w);
                    ph = (float)((double)m->min_sizes[l][s] / h);
                    cx = px + loc[4 * i] * v0 * pw;
                    cy = py + loc[4 * i + 1] * v0 * ph;
                    bw = pw * exp32(loc[4 * i + 2] * v1);
                    bh = ph * exp32(loc[4 * i + 3] * v1);
                    box[0] = (cx - bw / 2.0f) * sw;
                    box[1] = (cy - bh / 2.0f) * sh;
                    box[2] = (cx + bw / 2.0f) * sw;
                    box[3] = (cy + bh / 2.0f) * sh;
                    for (j = 0; j < 5; j++) {
                        kps[2 * j] = (px + lm[10 * i + 2 * j] * v0 * pw) * sw;
                        kps[2 * j + 1] = (py + lm[10 * i + 2 * j + 1] * v0 * ph) * sh;
                    }
                    if ((rc = push(cand, cap, n, box, score, kps, 5)) != AEPOST_OK) return rc;
                }
    }
    return AEPOST_OK;
}

static int decode_ultraface(const aepost_model *m, const float *const *o, float thr, aepost_face *cand,
                            size_t cap, size_t *n) {
    const float *scores = o[0], *boxes = o[1];
    const float w = (float)m->input_w, h = (float)m->input_h;
    size_t i;
    for (i = 0; i < m->n_priors; i++) {
        float box[4];
        int rc;
        if (!(scores[2 * i + 1] >= thr)) continue;
        box[0] = boxes[4 * i] * w;
        box[1] = boxes[4 * i + 1] * h;
        box[2] = boxes[4 * i + 2] * w;
        box[3] = boxes[4 * i + 3] * h;
        if ((rc = push(cand, cap, n, box, scores[2 * i + 1], NULL, 0)) != AEPOST_OK) return rc;
    }
    return AEPOST_OK;
}

int aepost_decode(const aepost_model *m, const float *const *outputs, const size_t *counts,
                  float score_threshold, aepost_face *cand, size_t cand_cap, size_t *n_cand) {
    uint32_t i, slots;
    if (!model_ok(m) || !outputs || !counts || !n_cand || (!cand && cand_cap)) return AEPOST_ERR_ARG;
    *n_cand = 0;
    slots = aepost_num_slots(m);
    for (i = 0; i < slots; i++) {
        if (!outputs[i]) return AEPOST_ERR_ARG;
        if (counts[i] != aepost_slot_size(m, i)) return AEPOST_ERR_SHAPE;
    }
    switch (m->family) {
    case AEPOST_BLAZEFACE: return decode_blazeface(m, outputs, score_threshold, cand, cand_cap, n_cand);
    case AEPOST_SCRFD: return decode_scrfd(m, outputs, score_threshold, cand, cand_cap, n_cand);
    case AEPOST_YUNET: return decode_yunet(m, outputs, score_threshold, cand, cand_cap, n_cand);
    case AEPOST_RETINAFACE: return decode_retinaface(m, outputs, score_threshold, cand, cand_cap, n_cand);
    case AEPOST_ULTRAFACE: return decode_ultraface(m, outputs, score_threshold, cand, cand_cap, n_cand);
    default: return AEPOST_ERR_ARG;
    }
}

/* ---- suppression (ops/nms.py) ---------------------------------------------------------------- */

/* np.argsort(-scores, kind="stable"): best first, ties in index order. Bottom-up merge sort
 * of idx (n) using tmp (n); returns the buffer that holds the result. */
static uint32_t *sort_by_score(const aepost_face *c, uint32_t *idx, uint32_t *tmp, size_t n) {
    size_t width, i;
    uint32_t *src = idx, *dst = tmp, *t;
    for (i = 0; i < n; i++) idx[i] = (uint32_t)i;
    for (width = 1; width < n; width *= 2) {
        for (i = 0; i < n; i += 2 * width) {
            size_t lo = i, mid = i + width < n ? i + width : n, hi = i + 2 * width < n ? i + 2 * width : n;
            size_t a = lo, b = mid, k = lo;
            while (a < mid && b < hi) {
                /* -s[b] < -s[a] takes b first; otherwise a (stable) */
                if (-c[src[b]].score < -c[src[a]].score)
                    dst[k++] = src[b++];
                else
                    dst[k++] = src[a++];
            }
            while (a < mid) dst[k++] = src[a++];
            while (b < hi) dst[k++] = src[b++];
        }
        t = src;
        src = dst;
        dst = t;
    }
    return src;
}

static float area(const float *b) {
    return np_clip(b[2] - b[0], 0.0f, INFINITY) * np_clip(b[3] - b[1], 0.0f, INFINITY);
}

/* iou_matrix(a[None], b[None])[0, 0], float32, the union summed as area(a) + area(b) - inter */
static float iou(const float *a, const float *b) {
    float ltx = np_max(a[0], b[0]), lty = np_max(a[1], b[1]);
    float rbx = np_min(a[2], b[2]), rby = np_min(a[3], b[3]);
    float inter = np_clip(rbx - ltx, 0.0f, INFINITY) * np_clip(rby - lty, 0.0f, INFINITY);
    float uni = area(a) + area(b) - inter;
    return uni > 0.0f ? inter / np_max(uni, 1e-12f) : 0.0f;
}

/* Greedy NMS; the kept candidate indices end up compacted at the front of the returned
 * buffer (a part of work). */
static uint32_t *nms_core(const aepost_face *cand, size_t n, float thr, uint32_t max_faces, uint32_t *work,
                          size_t *n_keep) {
    uint32_t *order = sort_by_score(cand, work, work + n, n);
    uint32_t *alive = order == work ? work + n : work; /* 1 while a candidate is not suppressed */
    size_t i, j, kept = 0;
    for (i = 0; i < n; i++) alive[i] = 1u;
    for (i = 0; i < n; i++) {
        const float *bi;
        if (!alive[i]) continue;
        bi = cand[order[i]].box;
        order[kept++] = order[i]; /* kept <= i: only positions already visited are overwritten */
        if (max_faces && kept >= max_faces) break;
        for (j = i + 1; j < n; j++)
            if (alive[j] && !(iou(bi, cand[order[j]].box) <= thr)) alive[j] = 0u;
    }
    *n_keep = kept;
    return order;
}

int aepost_nms(const aepost_face *cand, size_t n, float iou_threshold, uint32_t max_faces, uint32_t *work,
               uint32_t *keep, size_t keep_cap, size_t *n_keep) {
    uint32_t *order;
    size_t i, kept;
    if (!n_keep || (n && (!cand || !work || !keep))) return AEPOST_ERR_ARG;
    if (n > 0xFFFFFFFFu) return AEPOST_ERR_CAPACITY;
    *n_keep = 0;
    if (n == 0) return AEPOST_OK;
    order = nms_core(cand, n, iou_threshold, max_faces, work, &kept);
    if (kept > keep_cap) return AEPOST_ERR_CAPACITY;
    for (i = 0; i < kept; i++) keep[i] = order[i];
    *n_keep = kept;
    return AEPOST_OK;
}

/* numpy's float32 sum of a contiguous array: 0 + pairwise sum (8 accumulators per block of
 * up to 128, halves above that), so the cluster weights add up exactly as w.sum() does.
 * Sums cand[idx[i]].score for i < n. */
static float pairwise_sum(const aepost_face *cand, const uint32_t *idx, size_t n) {
    if (n < 8) {
        float res = 0.0f;
        size_t i;
        for (i = 0; i < n; i++) res += cand[idx[i]].score;
        return res;
    } else if (n <= 128) {
        float r[8], res;
        size_t i, j;
        for (j = 0; j < 8; j++) r[j] = cand[idx[j]].score;
        for (i = 8; i < n - (n % 8); i += 8)
            for (j = 0; j < 8; j++) r[j] += cand[idx[i + j]].score;
        res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for (; i < n; i++) res += cand[idx[i]].score;
        return res;
    } else {
        size_t n2 = n / 2;
        n2 -= n2 % 8;
        return pairwise_sum(cand, idx, n2) + pairwise_sum(cand, idx + n2, n - n2);
    }
}

int aepost_weighted_nms(const aepost_face *cand, size_t n, uint32_t n_keypoints, float iou_threshold,
                        uint32_t max_faces, uint32_t *work, aepost_face *out, size_t out_cap, size_t *n_out) {
    uint32_t *order, *members;
    size_t left, count = 0;
    if (!n_out || n_keypoints > AEPOST_MAX_KEYPOINTS || (n && (!cand || !work || !out))) return AEPOST_ERR_ARG;
    if (n > 0xFFFFFFFFu) return AEPOST_ERR_CAPACITY;
    *n_out = 0;
    if (n == 0) return AEPOST_OK;
    order = sort_by_score(cand, work, work + n, n);
    members = order == work ? work + n : work;
    left = n;
    while (left) {
        const uint32_t head = order[0];
        float sums[4 + 2 * AEPOST_MAX_KEYPOINTS], wsum;
        size_t i, j, kept = 0, nm = 0, nv = 4u + 2u * n_keypoints;
        aepost_face *f;
        if (count >= out_cap) return AEPOST_ERR_CAPACITY;
        /* members: iou(head, c) > thr, in order; the rest (iou <= thr) stays, in order */
        for (i = 0; i < left; i++) {
            uint32_t c = order[i];
            float v = iou(cand[head].box, cand[c].box);
            if (v > iou_threshold)
                members[nm++] = c;
            else if (v <= iou_threshold && i != 0)
                order[kept++] = c; /* kept <= i. A zero-area head stays in Python's list forever
                                      (it never terminates); it is dropped here. */
        }
        if (nm == 0) members[nm++] = head;
        /* (boxes[members] * w).sum(0): row after row; then / w.sum() */
        for (j = 0; j < nv; j++) sums[j] = 0.0f;
        for (i = 0; i < nm; i++) {
            const aepost_face *c = &cand[members[i]];
            for (j = 0; j < 4; j++) sums[j] += c->box[j] * c->score;
            for (j = 0; j < 2u * n_keypoints; j++) sums[4 + j] += c->keypoints[j] * c->score;
        }
        wsum = pairwise_sum(cand, members, nm);
        f = &out[count++];
        memset(f, 0, sizeof *f);
        for (j = 0; j < 4; j++) f->box[j] = sums[j] / wsum;
        for (j = 0; j < 2u * n_keypoints; j++) f->keypoints[j] = sums[4 + j] / wsum;
        f->score = cand[head].score;
        left = kept;
        if (max_faces && count >= max_faces) break;
    }
    *n_out = count;
    return AEPOST_OK;
}

/* ---- the whole frame (tasks/face_detector.FaceDetector.decode) ----------------------------- */

int aepost_detect(const aepost_model *m, const float *const *outputs, const size_t *counts,
                  const aepost_letterbox *lb, float score_threshold, float iou_threshold, uint32_t max_faces,
                  aepost_face *cand, uint32_t *work, size_t cand_cap, aepost_face *faces, size_t faces_cap,
                  size_t *n_faces) {
    size_t n = 0, kept = 0, i, out = 0;
    uint32_t j, k;
    float W, H;
    int rc;
    if (!model_ok(m) || !lb || !n_faces || !work || !cand || (!faces && faces_cap)) return AEPOST_ERR_ARG;
    *n_faces = 0;
    k = m->n_keypoints;
    rc = aepost_decode(m, outputs, counts, score_threshold, cand, cand_cap, &n);
    if (rc != AEPOST_OK) return rc;
    if (n == 0) return AEPOST_OK;
    if (m->suppression == AEPOST_SUPPRESS_WEIGHTED) {
        rc = aepost_weighted_nms(cand, n, k, iou_threshold, max_faces, work, faces, faces_cap, &kept);
        if (rc != AEPOST_OK) return rc;
    } else {
        uint32_t *order = nms_core(cand, n, iou_threshold, max_faces, work, &kept);
        if (kept > faces_cap) return AEPOST_ERR_CAPACITY;
        for (i = 0; i < kept; i++) faces[i] = cand[order[i]];
    }
    /* boxes_to_source (clipped to the image), to_source for the keypoints, scores clipped to
     * [0, 1]; faces whose clipped box has no area are dropped. In place: out <= i. */
    W = (float)lb->src_w;
    H = (float)lb->src_h;
    for (i = 0; i < kept; i++) {
        aepost_face f;
        const aepost_face *c = &faces[i];
        memset(&f, 0, sizeof f);
        aepost_to_source(lb, c->box[0], c->box[1], &f.box[0], &f.box[1]);
        aepost_to_source(lb, c->box[2], c->box[3], &f.box[2], &f.box[3]);
        f.box[0] = np_clip(f.box[0], 0.0f, W);
        f.box[2] = np_clip(f.box[2], 0.0f, W);
        f.box[1] = np_clip(f.box[1], 0.0f, H);
        f.box[3] = np_clip(f.box[3], 0.0f, H);
        for (j = 0; j < k; j++)
            aepost_to_source(lb, c->keypoints[2 * j], c->keypoints[2 * j + 1], &f.keypoints[2 * j],
                             &f.keypoints[2 * j + 1]);
        f.score = np_clip(c->score, 0.0f, 1.0f);
        if (!(f.box[2] > f.box[0] && f.box[3] > f.box[1])) continue;
        faces[out++] = f;
    }
    *n_faces = out;
    return AEPOST_OK;
}
