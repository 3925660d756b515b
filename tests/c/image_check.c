/* Runs ae_area_resize_normalize (sdk/ops/ae_image.h) on one prepared case and writes the tensor.

   usage: image_check IN OUT
   IN: nine int64 (h, w, nh, nw, th, tw, maxcy, maxc, nchw), then int32 ys[nh], int32 yc[nh],
   float32 yw[nh * maxcy], int32 xs[nw], float32 xw[nw * maxc], float32 lane_mean[3],
   float32 lane_inv[3], int32 lane_chan[3], then the h x w x 3 uint8 image; all little-endian.
   OUT: the float32 tensor (th * tw * 3 values). tests/test_image_kernels.py builds this for the
   host and, under qemu, for aarch64 and riscv64, and compares OUT with the Python kernel's. */

#include <stdio.h>
#include <stdlib.h>

#include "ae_image.h"

static int get(FILE *f, void *dst, size_t size, size_t n) {
    return fread(dst, size, n, f) == n ? 0 : -1;
}

int main(int argc, char **argv) {
    long long hdr[9];
    ae_plan p;
    FILE *f;
    int32_t *ys, *yc, *xs, chan[3];
    float *yw, *xw, *xw4, *out;
    uint8_t *img;
    ptrdiff_t i, k, t, n;
    if (argc != 3 || (f = fopen(argv[1], "rb")) == NULL) {
        fprintf(stderr, "usage: image_check IN OUT\n");
        return 2;
    }
    if (get(f, hdr, sizeof hdr[0], 9))
        return 3;
    p.h = hdr[0]; p.w = hdr[1]; p.nh = hdr[2]; p.nw = hdr[3]; p.th = hdr[4]; p.tw = hdr[5];
    p.maxcy = hdr[6]; p.maxc = hdr[7]; p.nchw = (int) hdr[8];
    ys = malloc(p.nh * sizeof *ys); yc = malloc(p.nh * sizeof *yc); xs = malloc(p.nw * sizeof *xs);
    yw = malloc(p.nh * p.maxcy * sizeof *yw); xw = malloc(p.nw * p.maxc * sizeof *xw);
    xw4 = aligned_alloc(16, ((p.nw * p.maxc * 4 * sizeof *xw4) + 15) / 16 * 16);
    img = malloc(p.h * p.w * 3); out = malloc(p.th * p.tw * 3 * sizeof *out);
    if (!ys || !yc || !xs || !yw || !xw || !xw4 || !img || !out)
        return 4;
    if (get(f, ys, 4, p.nh) || get(f, yc, 4, p.nh) || get(f, yw, 4, p.nh * p.maxcy) || get(f, xs, 4, p.nw)
        || get(f, xw, 4, p.nw * p.maxc) || get(f, p.lane_mean, 4, 3) || get(f, p.lane_inv, 4, 3)
        || get(f, chan, 4, 3) || get(f, img, 1, p.h * p.w * 3))
        return 3;
    fclose(f);
    for (k = 0; k < 3; k++)
        p.lane_chan[k] = chan[k];
    for (i = 0; i < p.nw * p.maxc; i++)
        for (t = 0; t < 4; t++)
            xw4[i * 4 + t] = xw[i];
    p.ys = ys; p.yc = yc; p.yw = yw; p.xs = xs; p.xw = xw; p.xw4 = xw4;
    if (ae_area_resize_normalize(&p, img, p.w * 3, out))
        return 4;
    n = p.th * p.tw * 3;
    if ((f = fopen(argv[2], "wb")) == NULL || fwrite(out, sizeof *out, n, f) != (size_t) n || fclose(f))
        return 5;
    return 0;
}
