/*
 * post_check: the test harness of anyedge_post, compiled against one generated model header.
 *
 *   cc -std=c99 -ffp-contract=off -DAEPOST_CHECK_HEADER='"scrfd_500m.h"' -DAEPOST_CHECK_MODEL=scrfd_500m \
 *      anyedge_post.c post_check.c -lm -o post_check
 *
 *   post_check detect FRAMES.bin SCORE IOU MAX_FACES
 *       FRAMES.bin: "AEPF", u32 frames, u32 slots; per frame: u32 src_w, u32 src_h, then per slot
 *       u32 count and count little-endian float32. Prints one line per frame:
 *       rc n resized_w resized_h, then per face the hex bits of box[4], score, keypoints[2k].
 *   post_check anchors          prints n, floats per anchor, then the hex bits of the table
 *   post_check letterbox W H    prints resized_w resized_h and the hex bits of scale_x scale_y (double)
 *   post_check normalize IMG.bin CANVAS_CHANNELS OUT.bin   IMG.bin: input_h*input_w*3 uint8 in
 *       CANVAS_CHANNELS order (0 RGB, 1 BGR); writes the float32 input tensor to OUT.bin
 *   post_check dequantize int8|uint8 SCALE ZERO    dequantizes -128..127 / 0..255, prints hex bits
 *   post_check nms CANDS.bin IOU MAX_FACES      prints rc, then the kept candidate indices
 *   post_check wnms CANDS.bin IOU MAX_FACES K   prints rc n, then per face the hex bits of box[4],
 *       score, keypoints[2K]. CANDS.bin: u32 n, then per candidate float32 box[4], score, kps[16].
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "anyedge_post.h"
#include AEPOST_CHECK_HEADER

#define CAP (1u << 15)           /* candidates: SCRFD/RetinaFace at 640x640 have 16800 anchors */
#define POOL (1u << 22)          /* floats of all output slots of one frame */

static aepost_face cand[CAP];
static uint32_t work[2 * CAP];
static aepost_face faces[CAP];
static float pool[POOL];
static float anchors[CAP * 4];

static uint32_t bits32(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}

static uint64_t bits64(double d) {
    uint64_t u;
    memcpy(&u, &d, 8);
    return u;
}

static int read_u32(FILE *f, uint32_t *v) {
    unsigned char b[4];
    if (fread(b, 1, 4, f) != 4) return 0;
    *v = (uint32_t)b[0] | ((uint32_t)b[1] << 8) | ((uint32_t)b[2] << 16) | ((uint32_t)b[3] << 24);
    return 1;
}

static int read_f32(FILE *f, float *out, size_t n) {
    size_t i;
    for (i = 0; i < n; i++) {
        uint32_t u;
        if (!read_u32(f, &u)) return 0;
        memcpy(&out[i], &u, 4);
    }
    return 1;
}

static int cmd_detect(const char *path, float score, float iou, uint32_t max_faces) {
    const aepost_model *m = &AEPOST_CHECK_MODEL;
    FILE *f = fopen(path, "rb");
    char magic[4];
    uint32_t frames, slots, fr, s, j, k = m->n_keypoints;
    if (!f) return 2;
    if (fread(magic, 1, 4, f) != 4 || memcmp(magic, "AEPF", 4) != 0 || !read_u32(f, &frames) ||
        !read_u32(f, &slots) || slots > AEPOST_MAX_SLOTS) {
        fclose(f);
        return 3;
    }
    for (fr = 0; fr < frames; fr++) {
        uint32_t w, h;
        size_t counts[AEPOST_MAX_SLOTS], n = 0, i, used = 0;
        const float *outs[AEPOST_MAX_SLOTS];
        aepost_letterbox lb;
        int rc;
        if (!read_u32(f, &w) || !read_u32(f, &h)) return 4;
        for (s = 0; s < slots; s++) {
            uint32_t c;
            if (!read_u32(f, &c) || c > POOL - used || !read_f32(f, pool + used, c)) return 4;
            counts[s] = c;
            outs[s] = pool + used;
            used += c;
        }
        rc = aepost_letterbox_params(w, h, m->input_w, m->input_h, m->resize, &lb);
        if (rc == AEPOST_OK)
            rc = aepost_detect(m, outs, counts, &lb, score, iou, max_faces, cand, work, CAP, faces, CAP, &n);
        printf("%d %lu %" PRIu32 " %" PRIu32, rc, (unsigned long)n, lb.resized_w, lb.resized_h);
        for (i = 0; i < n; i++) {
            for (j = 0; j < 4; j++) printf(" %08" PRIx32, bits32(faces[i].box[j]));
            printf(" %08" PRIx32, bits32(faces[i].score));
            for (j = 0; j < 2 * k; j++) printf(" %08" PRIx32, bits32(faces[i].keypoints[j]));
        }
        printf("\n");
    }
    fclose(f);
    return 0;
}

static int cmd_anchors(void) {
    uint32_t fpa = 0;
    long n = aepost_anchors(&AEPOST_CHECK_MODEL, anchors, sizeof anchors / sizeof anchors[0], &fpa);
    long i;
    if (n < 0) return 5;
    printf("%ld %" PRIu32, n, fpa);
    for (i = 0; i < n * (long)fpa; i++) printf(" %08" PRIx32, bits32(anchors[i]));
    printf("\n");
    return 0;
}

static int cmd_letterbox(uint32_t w, uint32_t h) {
    const aepost_model *m = &AEPOST_CHECK_MODEL;
    aepost_letterbox lb;
    int rc = aepost_letterbox_params(w, h, m->input_w, m->input_h, m->resize, &lb);
    if (rc != AEPOST_OK) return 6;
    printf("%" PRIu32 " %" PRIu32 " %016" PRIx64 " %016" PRIx64 "\n", lb.resized_w, lb.resized_h,
           bits64(lb.scale_x), bits64(lb.scale_y));
    return 0;
}

static int cmd_normalize(const char *path, uint32_t canvas_channels, const char *out_path) {
    const aepost_model *m = &AEPOST_CHECK_MODEL;
    size_t n = (size_t)m->input_w * m->input_h * 3u, i;
    static uint8_t img[POOL];
    float *t = pool;
    FILE *f = fopen(path, "rb");
    if (!f || n > sizeof img || fread(img, 1, n, f) != n) {
        if (f) fclose(f);
        return 7;
    }
    fclose(f);
    if (aepost_normalize(m, img, (size_t)m->input_w * 3u, canvas_channels, t) != AEPOST_OK) return 8;
    if (!(f = fopen(out_path, "wb"))) return 9;
    for (i = 0; i < n; i++) { /* little-endian float32, whatever the host */
        uint32_t u = bits32(t[i]);
        unsigned char b[4];
        b[0] = (unsigned char)(u & 0xffu);
        b[1] = (unsigned char)((u >> 8) & 0xffu);
        b[2] = (unsigned char)((u >> 16) & 0xffu);
        b[3] = (unsigned char)(u >> 24);
        if (fwrite(b, 1, 4, f) != 4) {
            fclose(f);
            return 9;
        }
    }
    return fclose(f) == 0 ? 0 : 9;
}

static int cmd_dequantize(const char *kind, double scale, long zero) {
    int v, lo = strcmp(kind, "int8") == 0 ? -128 : 0, hi = lo + 255;
    for (v = lo; v <= hi; v++) {
        float out;
        if (lo < 0) {
            int8_t q = (int8_t)v;
            aepost_dequantize_int8(&q, 1, scale, (int32_t)zero, &out);
        } else {
            uint8_t q = (uint8_t)v;
            aepost_dequantize_uint8(&q, 1, scale, (int32_t)zero, &out);
        }
        printf("%s%08" PRIx32, v == lo ? "" : " ", bits32(out));
    }
    printf("\n");
    return 0;
}

static long read_cands(const char *path) {
    FILE *f = fopen(path, "rb");
    uint32_t n, i;
    if (!f) return -1;
    if (!read_u32(f, &n) || n > CAP) {
        fclose(f);
        return -1;
    }
    for (i = 0; i < n; i++) {
        memset(&cand[i], 0, sizeof cand[i]);
        if (!read_f32(f, cand[i].box, 4) || !read_f32(f, &cand[i].score, 1) || !read_f32(f, cand[i].keypoints, 16)) {
            fclose(f);
            return -1;
        }
    }
    fclose(f);
    return (long)n;
}

static int cmd_nms(const char *path, float iou, uint32_t max_faces, int weighted, uint32_t k) {
    long n = read_cands(path);
    size_t kept = 0, i, j;
    int rc;
    if (n < 0) return 10;
    if (weighted) {
        rc = aepost_weighted_nms(cand, (size_t)n, k, iou, max_faces, work, faces, CAP, &kept);
        printf("%d %lu", rc, (unsigned long)kept);
        for (i = 0; i < kept; i++) {
            for (j = 0; j < 4; j++) printf(" %08" PRIx32, bits32(faces[i].box[j]));
            printf(" %08" PRIx32, bits32(faces[i].score));
            for (j = 0; j < 2 * k; j++) printf(" %08" PRIx32, bits32(faces[i].keypoints[j]));
        }
    } else {
        static uint32_t keep[CAP];
        rc = aepost_nms(cand, (size_t)n, iou, max_faces, work, keep, CAP, &kept);
        printf("%d", rc);
        for (i = 0; i < kept; i++) printf(" %" PRIu32, keep[i]);
    }
    printf("\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc >= 6 && strcmp(argv[1], "detect") == 0)
        return cmd_detect(argv[2], (float)strtod(argv[3], NULL), (float)strtod(argv[4], NULL),
                          (uint32_t)strtoul(argv[5], NULL, 10));
    if (argc >= 2 && strcmp(argv[1], "anchors") == 0) return cmd_anchors();
    if (argc >= 4 && strcmp(argv[1], "letterbox") == 0)
        return cmd_letterbox((uint32_t)strtoul(argv[2], NULL, 10), (uint32_t)strtoul(argv[3], NULL, 10));
    if (argc >= 5 && strcmp(argv[1], "normalize") == 0)
        return cmd_normalize(argv[2], (uint32_t)strtoul(argv[3], NULL, 10), argv[4]);
    if (argc >= 5 && strcmp(argv[1], "dequantize") == 0)
        return cmd_dequantize(argv[2], strtod(argv[3], NULL), strtol(argv[4], NULL, 10));
    if (argc >= 5 && strcmp(argv[1], "nms") == 0)
        return cmd_nms(argv[2], (float)strtod(argv[3], NULL), (uint32_t)strtoul(argv[4], NULL, 10), 0, 0);
    if (argc >= 6 && strcmp(argv[1], "wnms") == 0)
        return cmd_nms(argv[2], (float)strtod(argv[3], NULL), (uint32_t)strtoul(argv[4], NULL, 10), 1,
                       (uint32_t)strtoul(argv[5], NULL, 10));
    fprintf(stderr, "usage: post_check detect|anchors|letterbox|normalize|dequantize|nms|wnms ...\n");
    return 1;
}
