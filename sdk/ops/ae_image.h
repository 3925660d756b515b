/* anyedge's image preprocessing kernels in portable C (C99 plus GCC/Clang vector extensions
   where the compiler has them): area (anti-aliased) downscaling fused with normalisation into
   a float32 input tensor. Included by sdk/ops/_resize.pyx, and by tests/c/image_check.c, which
   runs the same code for aarch64 and riscv64 under qemu to show every CPU gets the same tensor.

   Results are fixed by the float32 operations below, done in this order, with no contraction
   into fused multiply-adds (build with -ffp-contract=off). */

#ifndef ANYEDGE_AE_IMAGE_H
#define ANYEDGE_AE_IMAGE_H

#include <float.h>
#include <stdlib.h>
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

/* A prepared fused resize: the area tables of one frame size and tensor size. */
typedef struct {
    ptrdiff_t h, w;          /* source frame */
    ptrdiff_t nh, nw;        /* resized image, top-left of the tensor */
    ptrdiff_t th, tw;        /* tensor */
    ptrdiff_t maxcy, maxc;   /* widest vertical / horizontal table row */
    int nchw;                /* 1: (1, 3, th, tw); 0: (1, th, tw, 3) */
    const int32_t *ys, *yc;  /* per output row: first source row, number of rows */
    const float *yw;         /* nh x maxcy vertical weights */
    const int32_t *xs;       /* per output column: first source column */
    const float *xw;         /* nw x maxc horizontal weights, zero-padded */
    const float *xw4;        /* the same, each repeated in four lanes, 16-byte aligned */
    float lane_mean[3], lane_inv[3];  /* per source lane s: its output channel's constants */
    int lane_chan[3];        /* output channel of source lane s */
} ae_plan;

/* out = normalise(area resize(src)) plus normalised-zero padding. `src` rows are `rs` bytes
   apart, pixels 3 contiguous bytes. Returns 0, or -1 when the row buffer cannot be allocated. */
static int ae_area_resize_normalize(const ae_plan *p, const uint8_t *src, ptrdiff_t rs, float *out) {
    ptrdiff_t w3 = p->w * 3, slack = 3 * p->maxc + 4, step = p->nchw ? 1 : 3;
    ptrdiff_t i, t, j, s;
    float *outs[3];
    float *buf = (float *) malloc((size_t) (w3 + slack) * sizeof(float));
    if (buf == NULL)
        return -1;
    for (t = w3; t < w3 + slack; t++)
        buf[t] = 0.0f;
    for (i = 0; i < p->th; i++) {
        for (s = 0; s < 3; s++)
            outs[s] = out + (p->nchw ? p->lane_chan[s] * p->th * p->tw + i * p->tw : i * p->tw * 3 + p->lane_chan[s]);
        j = 0;
        if (i < p->nh) {
            if (i + 1 < p->nh)
                ae_prefetch(src + p->ys[i + 1] * rs, rs, p->yc[i + 1], w3);
            ae_vsum(src + p->ys[i] * rs, rs, p->yw + i * p->maxcy, p->yc[i], w3, buf);
            ae_row(buf, p->xs, p->xw, p->xw4, p->maxc, p->nw, p->lane_mean, p->lane_inv, outs, step);
            j = p->nw;
        }
        for (s = 0; s < 3; s++) {
            float pad = (0.0f - p->lane_mean[s]) * p->lane_inv[s];  /* 0 - 0 is +0, as in numpy */
            for (t = j; t < p->tw; t++)
                outs[s][t * step] = pad;
        }
    }
    free(buf);
    return 0;
}

#endif
