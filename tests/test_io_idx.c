/* IDX / MNIST loading: small IDX files built here (raw and gzip, on disk and in memory),
 * every kind of bad file (magic, type, dimensions, counts, truncation at every length,
 * trailing bytes, corrupt compression, huge announced sizes), the MNIST file-name
 * variants, and the official t10k set when DG_MNIST_DIR points at it. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#define CHECK_HAS(msg, sub)                                                                        \
    CHECK_MSG(strstr((msg), (sub)) != NULL, "message '%s' lacks '%s'", msg, sub)

static char dir[64];

/* 1 if `path` occurs exactly once in `msg` (zlib's own messages start with the path too,
 * which the loader's message already names). */
static int names_once(const char *msg, const char *path) {
    const char *first = strstr(msg, path);
    return first && !strstr(first + strlen(path), path);
}

static const char *in_dir(const char *name) {
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void put_be32(unsigned char *p, uint32_t v) {
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Count images of rows x cols; pixel j of image i is (7 i + 3 j) mod 256, label i is
 * (3 i + 1) mod 10. Returns the file length. */
static size_t make_images(unsigned char *out, uint32_t count, uint32_t rows, uint32_t cols) {
    put_be32(out, 0x00000803);
    put_be32(out + 4, count);
    put_be32(out + 8, rows);
    put_be32(out + 12, cols);
    size_t k = 16;
    for (uint32_t i = 0; i < count; i++)
        for (uint32_t j = 0; j < rows * cols; j++)
            out[k++] = (unsigned char)((7 * i + 3 * j) % 256);
    return k;
}

static size_t make_labels(unsigned char *out, uint32_t count) {
    put_be32(out, 0x00000801);
    put_be32(out + 4, count);
    for (uint32_t i = 0; i < count; i++) out[8 + i] = (unsigned char)((3 * i + 1) % 10);
    return 8 + count;
}

static void spit(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    if (n) fwrite(buf, 1, n, f);
    fclose(f);
}

/* Writes a gzip file with zlib's own writer (independent of the loader's reading code). */
static void spit_gz(const char *path, const void *buf, size_t n) {
    gzFile f = gzopen(path, "wb");
    if (!f) return;
    if (n) gzwrite(f, buf, (unsigned)n);
    gzclose(f);
}

static size_t slurp(const char *path, unsigned char *buf, size_t cap) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    size_t n = fread(buf, 1, cap, f);
    fclose(f);
    return n;
}

static void check_dataset(const dg_dataset *d, uint32_t count, uint32_t rows, uint32_t cols,
                          int line) {
    CHECK_MSG(d->count == count && d->rows == rows && d->cols == cols,
              "line %d: %lld x %lld x %lld", line, (long long)d->count, (long long)d->rows,
              (long long)d->cols);
    if (d->count != count || !d->images || !d->labels) return;
    int bad = 0;
    for (uint32_t i = 0; i < count; i++) {
        for (uint32_t j = 0; j < rows * cols; j++)
            bad +=
                d->images[(size_t)i * rows * cols + j] != (float)((7 * i + 3 * j) % 256) / 255.0f;
        bad += d->labels[i] != (float)((3 * i + 1) % 10);
    }
    CHECK_MSG(bad == 0, "line %d: %d wrong values", line, bad);
    CHECK(d->classes == 10); /* labels 1, 4, 7, 0, 3, 6, 9 */
}

static unsigned char img[16 + 7 * 5 * 4 + 64], lbl[8 + 7 + 64];
static size_t img_n, lbl_n;

static void test_good_files(void) {
    img_n = make_images(img, 7, 5, 4);
    lbl_n = make_labels(lbl, 7);
    dg_dataset d;
    /* Raw, gzip, and one of each: told apart by content, so names may lie. */
    spit(in_dir("i.raw"), img, img_n);
    spit(in_dir("l.raw"), lbl, lbl_n);
    spit_gz(in_dir("i.raw.gz.not"), img, img_n);
    spit_gz(in_dir("l.gz"), lbl, lbl_n);
    CHECK_OK(dg_idx_load(in_dir("i.raw"), in_dir("l.raw"), &d));
    check_dataset(&d, 7, 5, 4, __LINE__);
    dg_dataset_free(&d);
    CHECK(d.images == NULL && d.count == 0);
    CHECK_OK(dg_idx_load(in_dir("i.raw.gz.not"), in_dir("l.gz"), &d));
    check_dataset(&d, 7, 5, 4, __LINE__);
    dg_dataset_free(&d);
    CHECK_OK(dg_idx_load(in_dir("i.raw"), in_dir("l.gz"), &d));
    check_dataset(&d, 7, 5, 4, __LINE__);
    dg_dataset_free(&d);

    /* The same bytes from memory, raw and gzip'd (the gzip bytes as zlib wrote them). */
    unsigned char gzi[1024], gzl[512];
    size_t gzi_n = slurp(in_dir("i.raw.gz.not"), gzi, sizeof gzi);
    size_t gzl_n = slurp(in_dir("l.gz"), gzl, sizeof gzl);
    CHECK(gzi_n > 18 && gzi[0] == 0x1f && gzl_n > 18);
    CHECK_OK(dg_idx_load_mem(img, img_n, lbl, lbl_n, &d));
    check_dataset(&d, 7, 5, 4, __LINE__);
    dg_dataset_free(&d);
    CHECK_OK(dg_idx_load_mem(gzi, gzi_n, gzl, gzl_n, &d));
    check_dataset(&d, 7, 5, 4, __LINE__);
    dg_dataset_free(&d);

    /* Two concatenated gzip members read as one stream, as gunzip does. */
    unsigned char two[2048];
    size_t half = img_n / 2;
    spit_gz(in_dir("a.gz"), img, half);
    spit_gz(in_dir("b.gz"), img + half, img_n - half);
    size_t na = slurp(in_dir("a.gz"), two, sizeof two);
    size_t nb = slurp(in_dir("b.gz"), two + na, sizeof two - na);
    CHECK_OK(dg_idx_load_mem(two, na + nb, lbl, lbl_n, &d));
    check_dataset(&d, 7, 5, 4, __LINE__);
    dg_dataset_free(&d);
    spit(in_dir("two.gz"), two, na + nb);
    CHECK_OK(dg_idx_load(in_dir("two.gz"), in_dir("l.raw"), &d));
    check_dataset(&d, 7, 5, 4, __LINE__);
    dg_dataset_free(&d);
}

/* Loads (images, labels) from memory and from files written raw and gzip'd; all four must
 * fail with `want` and a message containing `sub`, and leave the dataset zeroed. */
static void expect_bad(const unsigned char *im, size_t imn, const unsigned char *lb, size_t lbn,
                       dg_status want, const char *sub, int line) {
    for (int form = 0; form < 3; form++) {
        dg_dataset d;
        memset(&d, 0xab, sizeof d);
        dg_status s;
        if (form == 0) {
            s = dg_idx_load_mem(im, imn, lb, lbn, &d);
        } else {
            if (form == 1) {
                spit(in_dir("bi"), im, imn);
                spit(in_dir("bl"), lb, lbn);
            } else {
                spit_gz(in_dir("bi"), im, imn);
                spit_gz(in_dir("bl"), lb, lbn);
            }
            s = dg_idx_load(in_dir("bi"), in_dir("bl"), &d);
        }
        CHECK_MSG(s == want, "line %d form %d: %s, expected %s (%s)", line, form, dg_status_name(s),
                  dg_status_name(want), dg_last_error());
        CHECK_MSG(strstr(dg_last_error(), sub) != NULL, "line %d form %d: '%s' lacks '%s'", line,
                  form, dg_last_error(), sub);
        CHECK(d.images == NULL && d.labels == NULL && d.count == 0);
    }
}

static void test_bad_files(void) {
    unsigned char b[sizeof img + 8];
    /* Swapped files, a foreign file, another data type. */
    expect_bad(lbl, lbl_n, img, img_n, DG_ERR_FORMAT, "this is a label file", __LINE__);
    memcpy(b, img, img_n);
    memcpy(b, "GIF8", 4);
    expect_bad(b, img_n, lbl, lbl_n, DG_ERR_FORMAT, "not an IDX file", __LINE__);
    memcpy(b, img, img_n);
    b[2] = 0x0d; /* float data */
    expect_bad(b, img_n, lbl, lbl_n, DG_ERR_FORMAT, "0x00000d03", __LINE__);
    memcpy(b, lbl, lbl_n);
    b[3] = 2;
    expect_bad(img, img_n, b, lbl_n, DG_ERR_FORMAT, "expected 0x00000801", __LINE__);
    /* A zero dimension. */
    memcpy(b, img, img_n);
    put_be32(b + 8, 0);
    expect_bad(b, img_n, lbl, lbl_n, DG_ERR_FORMAT, "dimension 1 is zero", __LINE__);
    /* Counts differ. */
    unsigned char l6[32];
    size_t l6n = make_labels(l6, 6);
    expect_bad(img, img_n, l6, l6n, DG_ERR_FORMAT, "holds 7 images", __LINE__);
    /* One byte too many in each file. */
    memcpy(b, img, img_n);
    b[img_n] = 0;
    expect_bad(b, img_n + 1, lbl, lbl_n, DG_ERR_FORMAT, "longer than its header", __LINE__);
    memcpy(b, lbl, lbl_n);
    b[lbl_n] = 0;
    expect_bad(img, img_n, b, lbl_n + 1, DG_ERR_FORMAT, "longer than its header", __LINE__);
    /* Absurd counts in a tiny file fail as truncated, without a giant allocation. */
    memcpy(b, img, img_n);
    put_be32(b + 4, 0xffffffffu);
    put_be32(b + 8, 0xffffffffu);
    put_be32(b + 12, 0xffffffffu);
    expect_bad(b, img_n, lbl, lbl_n, DG_ERR_FORMAT, "more than 2^40", __LINE__);
    memcpy(b, img, img_n);
    put_be32(b + 4, 1000000);
    memcpy(l6, lbl, lbl_n);
    put_be32(l6 + 4, 1000000);
    expect_bad(b, img_n, l6, lbl_n, DG_ERR_FORMAT, "truncated", __LINE__);

    /* Every proper prefix of each file. */
    for (size_t cut = 0; cut < img_n; cut++)
        expect_bad(img, cut, lbl, lbl_n, DG_ERR_FORMAT, cut < 16 ? "" : "truncated", __LINE__);
    for (size_t cut = 0; cut < lbl_n; cut++)
        expect_bad(img, img_n, lbl, cut, DG_ERR_FORMAT, "", __LINE__);

    /* Corrupt gzip: a cut compressed stream, and a damaged CRC trailer. */
    unsigned char gz[1024];
    size_t gzn = slurp(in_dir("i.raw.gz.not"), gz, sizeof gz);
    for (size_t cut = 2; cut + 1 < gzn; cut += 3) {
        dg_dataset d;
        dg_status s = dg_idx_load_mem(gz, cut, lbl, lbl_n, &d);
        CHECK_MSG(s == DG_ERR_FORMAT, "gzip cut at %zu: %s", cut, dg_status_name(s));
        spit(in_dir("cut.gz"), gz, cut);
        s = dg_idx_load(in_dir("cut.gz"), in_dir("l.raw"), &d);
        CHECK_MSG(s == DG_ERR_FORMAT, "gzip file cut at %zu: %s (%s)", cut, dg_status_name(s),
                  dg_last_error());
        CHECK_MSG(names_once(dg_last_error(), in_dir("cut.gz")), "%s", dg_last_error());
    }
    gz[gzn - 6] ^= 0x40; /* inside the CRC-32 of the trailer */
    dg_dataset d;
    CHECK(dg_idx_load_mem(gz, gzn, lbl, lbl_n, &d) == DG_ERR_FORMAT);
    CHECK_HAS(dg_last_error(), "gzip");
    spit(in_dir("crc.gz"), gz, gzn);
    CHECK(dg_idx_load(in_dir("crc.gz"), in_dir("l.raw"), &d) == DG_ERR_FORMAT);
    CHECK_HAS(dg_last_error(), "gzip");
    CHECK_MSG(names_once(dg_last_error(), in_dir("crc.gz")), "%s", dg_last_error());

    /* Files that cannot be read. */
    CHECK(dg_idx_load(in_dir("nothing"), in_dir("l.raw"), &d) == DG_ERR_IO);
    CHECK_HAS(dg_last_error(), "nothing");
    CHECK(dg_idx_load(in_dir("i.raw"), in_dir("nothing"), &d) == DG_ERR_IO);
    CHECK(dg_idx_load(dir, in_dir("l.raw"), &d) != DG_OK);
    CHECK(dg_idx_load(NULL, in_dir("l.raw"), &d) == DG_ERR_NULL);
    CHECK(dg_idx_load_mem(NULL, 5, lbl, lbl_n, &d) == DG_ERR_NULL);
}

static void test_mnist_names(void) {
    char sub[300];
    snprintf(sub, sizeof sub, "%s/m", dir);
    CHECK(mkdir(sub, 0700) == 0);
    char sub_slash[310];
    snprintf(sub_slash, sizeof sub_slash, "%s/", sub);
    dg_dataset d;
    CHECK(dg_mnist_load(sub, "train", &d) == DG_ERR_IO);
    CHECK_HAS(dg_last_error(), "train-images-idx3-ubyte.gz");
    /* Each naming form in turn; the directory may end in '/'. */
    const char *images[] = {"m/train-images-idx3-ubyte.gz", "m/train-images-idx3-ubyte",
                            "m/train-images.idx3-ubyte"};
    const char *labels[] = {"m/train-labels-idx1-ubyte.gz", "m/train-labels-idx1-ubyte",
                            "m/train-labels.idx1-ubyte"};
    for (int k = 0; k < 3; k++) {
        if (k == 0) {
            spit_gz(in_dir(images[k]), img, img_n);
            spit_gz(in_dir(labels[k]), lbl, lbl_n);
        } else {
            spit(in_dir(images[k]), img, img_n);
            spit(in_dir(labels[k]), lbl, lbl_n);
        }
        CHECK_MSG(dg_mnist_load(k == 1 ? sub_slash : sub, "train", &d) == DG_OK, "form %d: %s", k,
                  dg_last_error());
        check_dataset(&d, 7, 5, 4, __LINE__);
        dg_dataset_free(&d);
        remove(in_dir(images[k]));
        remove(in_dir(labels[k]));
    }
    /* A label outside 0..9 is fine for IDX but not for MNIST. */
    unsigned char l[64];
    size_t ln = make_labels(l, 7);
    l[8 + 3] = 10;
    spit(in_dir("m/t10k-images-idx3-ubyte"), img, img_n);
    spit(in_dir("m/t10k-labels-idx1-ubyte"), l, ln);
    CHECK(dg_idx_load(in_dir("m/t10k-images-idx3-ubyte"), in_dir("m/t10k-labels-idx1-ubyte"), &d) ==
          DG_OK);
    CHECK(d.classes == 11);
    dg_dataset_free(&d);
    CHECK(dg_mnist_load(sub, "t10k", &d) == DG_ERR_FORMAT);
    CHECK_HAS(dg_last_error(), "label 10 of item 3");
    CHECK(d.images == NULL);
}

/* The official MNIST test set, found only through DG_MNIST_DIR. */
static void test_official_t10k(void) {
    const char *mdir = getenv("DG_MNIST_DIR");
    if (!mdir || !*mdir) {
        printf("SKIP: DG_MNIST_DIR is not set; the official t10k files were not checked\n");
        return;
    }
    dg_dataset d;
    dg_status s = dg_mnist_load(mdir, "t10k", &d);
    if (s == DG_ERR_IO) {
        printf("SKIP: no t10k files in DG_MNIST_DIR=%s (%s)\n", mdir, dg_last_error());
        return;
    }
    CHECK_MSG(s == DG_OK, "%s", dg_last_error());
    if (s != DG_OK) return;
    CHECK(d.count == 10000 && d.rows == 28 && d.cols == 28 && d.classes == 10);
    CHECK(d.labels[0] == 7.0f); /* the well-known first test digit */
    int64_t per_class[10] = {0};
    float lo = 1, hi = 0;
    for (int64_t i = 0; i < d.count; i++) per_class[(int)d.labels[i]]++;
    for (int64_t i = 0; i < d.count * 28 * 28; i++) {
        lo = d.images[i] < lo ? d.images[i] : lo;
        hi = d.images[i] > hi ? d.images[i] : hi;
    }
    CHECK(lo == 0.0f && hi == 1.0f);
    /* The published class counts of the test set: 980 zeros ... 1009 nines. */
    static const int64_t want[10] = {980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009};
    for (int k = 0; k < 10; k++)
        CHECK_MSG(per_class[k] == want[k], "class %d: %lld", k, (long long)per_class[k]);
    printf("t10k: %lld images %lldx%lld, first label %g\n", (long long)d.count, (long long)d.rows,
           (long long)d.cols, d.labels[0]);
    dg_dataset_free(&d);
}

int main(void) {
    strcpy(dir, "/tmp/dg_idx_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_good_files();
    test_bad_files();
    test_mnist_names();
    test_official_t10k();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    dg_dataset_free(NULL);
    return test_summary("test_io_idx");
}
