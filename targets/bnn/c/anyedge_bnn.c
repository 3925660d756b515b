/* anyedge_bnn: see anyedge_bnn.h. Mirrors anyedge.targets.bnn._kernels bit for bit. */
#include "anyedge_bnn.h"

#include <string.h>

#if defined(__GNUC__) || defined(__clang__)
#define AEBNN_POP32(x) __builtin_popcount((unsigned int)(x))
#else
static int AEBNN_POP32(uint32_t x) {
    x = x - ((x >> 1) & 0x55555555u);
    x = (x & 0x33333333u) + ((x >> 2) & 0x33333333u);
    return (int)((((x + (x >> 4)) & 0x0F0F0F0Fu) * 0x01010101u) >> 24);
}
#endif

static int32_t xor_popcount(const uint32_t *a, const uint32_t *b, uint32_t n) {
    int32_t c = 0;
    uint32_t i;
    for (i = 0; i < n; ++i) c += AEBNN_POP32(a[i] ^ b[i]);
    return c;
}

static uint32_t words_for(uint32_t bits) { return (bits + 31u) / 32u; }

static uint32_t out_len(const aebnn_layer *l) { return (l->in_len - l->kernel + 1u) / l->pool; }

int aebnn_quantize(const aebnn_model *m, const float *x, int8_t *q) {
    uint32_t t, c;
    if (!m || !x || !q) return AEBNN_ERR_ARG;
    for (t = 0; t < m->window; ++t) {
        for (c = 0; c < m->channels; ++c) {
            float v = x[t * m->channels + c];
            if (v != v || v - v != 0.0f) return AEBNN_ERR_NONFINITE; /* NaN or +-inf */
            v = (v - m->offset[c]) * m->inv_scale[c];
            if (v > 127.0f) v = 127.0f;
            else if (v < -127.0f) v = -127.0f;
            v = (v >= 0.0f) ? v + 0.5f : v - 0.5f;
            q[t * m->channels + c] = (int8_t)(int)v;
        }
    }
    return AEBNN_OK;
}

static void conv_q8(const aebnn_layer *l, const int8_t *q, uint32_t *out) {
    uint32_t to, f, p, j;
    const uint32_t olen = out_len(l), ow = words_for(l->out_ch), span = l->kernel * l->in_ch;
    memset(out, 0, (size_t)olen * ow * sizeof(uint32_t));
    for (to = 0; to < olen; ++to) {
        for (f = 0; f < l->out_ch; ++f) {
            const uint32_t *w = l->weights + (size_t)f * l->words_per_row;
            uint32_t bit = 0;
            for (p = 0; p < l->pool; ++p) {
                const int8_t *src = q + (size_t)(to * l->pool + p) * l->in_ch;
                int32_t acc = 0;
                for (j = 0; j < span; ++j) {
                    if ((w[j >> 5] >> (j & 31u)) & 1u) acc += src[j];
                    else acc -= src[j];
                }
                bit |= (uint32_t)(acc >= l->thresholds[f]) ^ l->flip[f];
            }
            out[to * ow + (f >> 5)] |= bit << (f & 31u);
        }
    }
}

static void conv_bin(const aebnn_layer *l, const uint32_t *x, uint32_t *out) {
    uint32_t to, f, p;
    const uint32_t olen = out_len(l), ow = words_for(l->out_ch), iw = words_for(l->in_ch);
    const int32_t n_bits = (int32_t)(l->kernel * l->in_ch);
    memset(out, 0, (size_t)olen * ow * sizeof(uint32_t));
    for (to = 0; to < olen; ++to) {
        for (f = 0; f < l->out_ch; ++f) {
            const uint32_t *w = l->weights + (size_t)f * l->words_per_row;
            uint32_t bit = 0;
            for (p = 0; p < l->pool; ++p) {
                const uint32_t *src = x + (size_t)(to * l->pool + p) * iw;
                int32_t acc = n_bits - 2 * xor_popcount(src, w, l->words_per_row);
                bit |= (uint32_t)(acc >= l->thresholds[f]) ^ l->flip[f];
            }
            out[to * ow + (f >> 5)] |= bit << (f & 31u);
        }
    }
}

static void out_bin(const aebnn_layer *l, const uint32_t *x, int32_t *scores) {
    uint32_t c;
    const int32_t n_bits = (int32_t)(l->kernel * l->in_ch);
    for (c = 0; c < l->out_ch; ++c) {
        const uint32_t *w = l->weights + (size_t)c * l->words_per_row;
        scores[c] = (n_bits - 2 * xor_popcount(x, w, l->words_per_row)) * (int32_t)l->mult + l->thresholds[c];
    }
}

int aebnn_run_quantized(const aebnn_model *m, const int8_t *q, int32_t *scores,
                        uint32_t *arena, size_t arena_words) {
    uint32_t i;
    uint32_t *bufs[2];
    const uint32_t *cur = 0;
    if (!m || !q || !scores || !arena || !m->layers || m->n_layers < 2) return AEBNN_ERR_ARG;
    if (arena_words < 2u * (size_t)m->scratch_words) return AEBNN_ERR_ARENA;
    bufs[0] = arena;
    bufs[1] = arena + m->scratch_words;
    for (i = 0; i < m->n_layers; ++i) {
        const aebnn_layer *l = &m->layers[i];
        if (l->kernel == 0 || l->pool == 0 || l->kernel > l->in_len) return AEBNN_ERR_ARG;
        if (l->kind == AEBNN_OUT_BIN) {
            if (i != m->n_layers - 1 || !cur) return AEBNN_ERR_ARG;
            out_bin(l, cur, scores);
            return AEBNN_OK;
        }
        if ((size_t)out_len(l) * words_for(l->out_ch) > m->scratch_words) return AEBNN_ERR_ARG;
        if (l->kind == AEBNN_CONV_Q8 && i == 0) conv_q8(l, q, bufs[i & 1u]);
        else if (l->kind == AEBNN_CONV_BIN && i > 0) conv_bin(l, cur, bufs[i & 1u]);
        else return AEBNN_ERR_ARG;
        cur = bufs[i & 1u];
    }
    return AEBNN_ERR_ARG; /* no OUT_BIN layer */
}

int aebnn_run(const aebnn_model *m, const float *x, int32_t *scores, uint32_t *arena,
              size_t arena_words) {
    size_t qwords;
    int rc;
    if (!m || !x || !scores || !arena) return AEBNN_ERR_ARG;
    qwords = ((size_t)m->window * m->channels + 3u) / 4u;
    if (arena_words < qwords + 2u * (size_t)m->scratch_words) return AEBNN_ERR_ARENA;
    rc = aebnn_quantize(m, x, (int8_t *)(arena + 2u * m->scratch_words));
    if (rc != AEBNN_OK) return rc;
    return aebnn_run_quantized(m, (const int8_t *)(arena + 2u * m->scratch_words), scores, arena,
                               2u * (size_t)m->scratch_words);
}

uint32_t aebnn_argmax(const int32_t *scores, uint32_t n) {
    uint32_t i, best = 0;
    for (i = 1; i < n; ++i)
        if (scores[i] > scores[best]) best = i;
    return best;
}
