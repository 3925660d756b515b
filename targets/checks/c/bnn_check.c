/*
 * Test harness for anyedge_bnn.c: runs every window of a file through the model in
 * "aebnn_model.h" (a header from anyedge.converters.bnn.write_c_header, copied under that name)
 * and prints one line per window: the return code, a FNV-1a hash of the int8 quantized input,
 * then the int32 scores. Used by targets/checks/bnn_check.py on the host and under qemu-riscv64.
 *
 * Input file: uint32 n, window, channels (little-endian), then n * window * channels float32.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anyedge_bnn.h"
#include "aebnn_model.h"

static uint32_t arena[AEBNN_DEFAULT_ARENA_WORDS];
static float window_buf[65536];
static int8_t qbuf[65536];

static uint32_t fnv1a(const int8_t *p, size_t n) {
    uint32_t h = 2166136261u;
    size_t i;
    for (i = 0; i < n; ++i) {
        h ^= (uint8_t)p[i];
        h *= 16777619u;
    }
    return h;
}

static uint32_t read_u32(const unsigned char *b) {
    return (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
}

int main(int argc, char **argv) {
    const aebnn_model *m = &AEBNN_DEFAULT_MODEL;
    unsigned char hdr[12];
    uint32_t n, window, channels, i, c;
    size_t per;
    int32_t scores[256];
    FILE *f;
    if (argc != 2) {
        fprintf(stderr, "usage: %s WINDOWS.bin\n", argv[0]);
        return 2;
    }
    f = fopen(argv[1], "rb");
    if (!f || fread(hdr, 1, 12, f) != 12) {
        fprintf(stderr, "cannot read %s\n", argv[1]);
        return 2;
    }
    n = read_u32(hdr);
    window = read_u32(hdr + 4);
    channels = read_u32(hdr + 8);
    per = (size_t)window * channels;
    if (window != m->window || channels != m->channels || per > 65536 || m->n_classes > 256) {
        fprintf(stderr, "windows are %ux%u, the model wants %ux%u\n", window, channels, m->window, m->channels);
        return 2;
    }
    for (i = 0; i < n; ++i) {
        int rc, rq;
        if (fread(window_buf, sizeof(float), per, f) != per) {
            fprintf(stderr, "truncated at window %u\n", i);
            return 2;
        }
        memset(scores, 0, sizeof scores);
        rq = aebnn_quantize(m, window_buf, qbuf);
        rc = aebnn_run(m, window_buf, scores, arena, AEBNN_DEFAULT_ARENA_WORDS);
        printf("%d %u", rc, rq == AEBNN_OK ? fnv1a(qbuf, per) : 0u);
        for (c = 0; c < m->n_classes; ++c) printf(" %d", (int)scores[c]);
        printf(" %u\n", aebnn_argmax(scores, m->n_classes));
    }
    fclose(f);
    return 0;
}
