/* .npy files: bit-exact round trips for every rank, the header layout NumPy expects,
 * headers written by hand in the forms NumPy produces (versions 1.0, 2.0, 3.0, other key
 * orders and quotes), hostile headers that must be rejected without crashing, and, when
 * /usr/bin/python3 has NumPy, files exchanged with NumPy itself in both directions. */
#define _POSIX_C_SOURCE 200809L
#include "test_util.h"

#include <stdint.h>
#include <string.h>
#include <unistd.h>

static char dir[64];

static const char *in_dir(const char *name) {
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    snprintf(buf[k], sizeof buf[k], "%s/%s", dir, name);
    return buf[k];
}

static void spit(const char *path, const void *buf, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f) return;
    fwrite(buf, 1, n, f);
    fclose(f);
}

/* A .npy byte string: magic, version, header length (2 bytes for 1.0, 4 otherwise), the
 * header text as given, then n floats 0.5*i - 1 in little-endian order. */
static size_t make_npy(unsigned char *out, int major, const char *header, int n) {
    size_t k = 0, hl = strlen(header);
    memcpy(out, "\x93NUMPY", 6);
    out[6] = (unsigned char)major;
    out[7] = 0;
    k = 8;
    int width = major == 1 ? 2 : 4;
    for (int i = 0; i < width; i++) out[k++] = (unsigned char)(hl >> (8 * i));
    memcpy(out + k, header, hl);
    k += hl;
    for (int i = 0; i < n; i++) {
        float v = 0.5f * (float)i - 1.0f;
        uint32_t u;
        memcpy(&u, &v, 4);
        for (int b = 0; b < 4; b++) out[k++] = (unsigned char)(u >> (8 * b));
    }
    return k;
}

static void test_round_trips(void) {
    dg_shape shapes[] = {dg_shape0(), dg_shape1(5), dg_shape2(2, 3), dg_shape3(1, 4, 2),
                         dg_shape4(2, 1, 3, 2)};
    for (int s = 0; s < 5; s++) {
        int64_t n = dg_shape_numel(shapes[s]);
        float *data = malloc((size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i++) data[i] = test_uniform(-10, 10);
        data[0] = s == 1 ? -0.0f : (s == 2 ? NAN : (s == 3 ? 1e-42f : data[0]));
        const char *p = in_dir("rt.npy");
        CHECK_OK(dg_npy_write(p, data, shapes[s]));
        float *back = NULL;
        dg_shape shape;
        CHECK_OK(dg_npy_read(p, &back, &shape));
        CHECK(dg_shape_equal(shape, shapes[s]));
        CHECK(back && memcmp(back, data, (size_t)n * sizeof(float)) == 0);
        /* The layout NumPy writes: version 1.0, data aligned to 64 bytes, the header
         * ending in a newline, the shape as a Python tuple. */
        FILE *f = fopen(p, "rb");
        unsigned char head[256];
        size_t got = fread(head, 1, sizeof head, f);
        fclose(f);
        CHECK(got >= 10 && head[6] == 1 && head[7] == 0);
        size_t hl = (size_t)head[8] | (size_t)head[9] << 8;
        CHECK((10 + hl) % 64 == 0 && 10 + hl <= got && head[10 + hl - 1] == '\n');
        static const char *tuples[] = {"(),", "(5,),", "(2, 3),", "(1, 4, 2),", "(2, 1, 3, 2),"};
        head[10 + hl - 1] = 0;
        CHECK_MSG(strstr((char *)head + 10, tuples[s]) != NULL, "header %s lacks %s",
                  (char *)head + 10, tuples[s]);
        free(back);
        free(data);
    }

    /* Node-level save and load. */
    dg_graph *g = dg_graph_new(3);
    dg_node *w = dg_param(g, "w", dg_shape2(3, 2)), *v = dg_param(g, "v", dg_shape2(3, 2));
    dg_node *wrong = dg_param(g, "u", dg_shape2(2, 3));
    for (int i = 0; i < 6; i++) dg_node_data(w)[i] = test_uniform(-1, 1);
    CHECK_OK(dg_npy_save(w, in_dir("w.npy")));
    CHECK_OK(dg_npy_load(v, in_dir("w.npy")));
    CHECK(memcmp(dg_node_data(w), dg_node_data(v), 6 * sizeof(float)) == 0);
    CHECK(dg_npy_load(wrong, in_dir("w.npy")) == DG_ERR_SHAPE);
    CHECK_MSG(strstr(dg_graph_error(g), "[3,2]") && strstr(dg_graph_error(g), "[2,3]"), "%s",
              dg_graph_error(g));
    CHECK(dg_node_data(wrong)[0] == 0.0f);
    CHECK(dg_npy_save(w, in_dir("no/such/dir.npy")) == DG_ERR_IO);
    CHECK(dg_npy_load(v, in_dir("missing.npy")) == DG_ERR_IO);
    CHECK(dg_npy_save(NULL, in_dir("x.npy")) == DG_ERR_NULL);
    float *d = (float *)1;
    dg_shape sh;
    CHECK(dg_npy_read(NULL, &d, &sh) == DG_ERR_NULL && d == NULL);
    dg_graph_free(g);
}

/* Headers as NumPy and other writers produce them, which must all be accepted. */
static void test_accepted_headers(void) {
    static const struct {
        int major;
        const char *header;
        dg_shape shape;
    } ok[] = {
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }     \n", {2, {2, 3}}},
        {1, "{\"shape\":(6,),\"fortran_order\":False,\"descr\":\"<f4\"}\n", {1, {6}}},
        {1, "{'descr':'<f4','fortran_order':False,'shape':()}", {0, {1}}},
        {1,
         "{ 'fortran_order' : False , 'descr' : '<f4' , 'shape' : ( 1 , 2 , 3 , ) }\n",
         {3, {1, 2, 3}}},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3L, 2L), }\n", {2, {3, 2}}},
        {2,
         "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 1, 1, 3), }\n",
         {4, {2, 1, 1, 3}}},
        {3, "{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }\n", {1, {4}}},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        unsigned char buf[512];
        int n = (int)dg_shape_numel(ok[i].shape);
        size_t len = make_npy(buf, ok[i].major, ok[i].header, n);
        float *data = NULL;
        dg_shape shape;
        dg_status s = dg_npy_read_mem(buf, len, &data, &shape);
        CHECK_MSG(s == DG_OK, "header %zu: %s", i, dg_last_error());
        if (s != DG_OK) continue;
        CHECK_MSG(dg_shape_equal(shape, ok[i].shape), "header %zu: wrong shape", i);
        for (int k = 0; k < n; k++) CHECK(data[k] == 0.5f * (float)k - 1.0f);
        free(data);
    }
}

static void test_hostile_headers(void) {
    static const struct {
        int major;
        const char *header;
        int n; /* floats appended */
        dg_status want;
        const char *sub;
    } bad[] = {
        {1, "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }\n", 2, DG_ERR_UNSUPPORTED,
         "'>f4'"},
        {1, "{'descr': '<f8', 'fortran_order': False, 'shape': (1,), }\n", 2, DG_ERR_UNSUPPORTED,
         "'<f8'"},
        {1, "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }\n", 2, DG_ERR_UNSUPPORTED,
         "Fortran"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 1, 1, 2), }\n", 2,
         DG_ERR_UNSUPPORTED, "5 dimensions"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (0,), }\n", 0, DG_ERR_UNSUPPORTED,
         "zero-size"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3,), }\n", 2, DG_ERR_FORMAT,
         "truncated"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }\n", 2, DG_ERR_FORMAT,
         "trailing"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }\n", 1,
         DG_ERR_FORMAT, "dimension 0 of 'shape' is 99999999999999999999, more than 2^40"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 1099511627777), }\n", 1,
         DG_ERR_FORMAT, "dimension 1 of 'shape' is 1099511627777, more than 2^40"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1099511627776, 1099511627776), }",
         1, DG_ERR_FORMAT, "too large"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }\n", 1, DG_ERR_FORMAT,
         "dimension 0 of 'shape' is negative (-2)"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, -1099511627777), }\n", 1,
         DG_ERR_FORMAT, "dimension 2 of 'shape' is negative (-1099511627777)"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, -), }\n", 1, DG_ERR_FORMAT,
         "'shape' is not a tuple of integers"},
        {1, "{'descr': '<f4', 'fortran_order': False, }\n", 1, DG_ERR_FORMAT, "lacks"},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,), 'extra': 1}\n", 1,
         DG_ERR_FORMAT, "unexpected"},
        {1, "{'descr': '<f4', 'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n", 1,
         DG_ERR_FORMAT, "repeated"},
        {1, "{'descr': '<f4, 'fortran_order': False, 'shape': (1,)}\n", 1, DG_ERR_FORMAT, ""},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)", 1, DG_ERR_FORMAT, ""},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)} junk", 1, DG_ERR_FORMAT,
         "after the header"},
        {1, "{'descr': '<f4', 'fortran_order': Nope, 'shape': (1,)}\n", 1, DG_ERR_FORMAT,
         "True or False"},
        {1, "{'descr': '\\x3cf4', 'fortran_order': False, 'shape': (1,)}\n", 1, DG_ERR_FORMAT, ""},
        {1, "['descr', '<f4']\n", 1, DG_ERR_FORMAT, "not a dict"},
        {1, "", 0, DG_ERR_FORMAT, ""},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': ((1,),)}\n", 1, DG_ERR_FORMAT, ""},
        {1, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,,)}\n", 1, DG_ERR_FORMAT, ""},
        {4, "{'descr': '<f4', 'fortran_order': False, 'shape': (1,)}\n", 1, DG_ERR_FORMAT,
         "version 4"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unsigned char buf[512];
        size_t len = make_npy(buf, bad[i].major, bad[i].header, bad[i].n);
        float *data = (float *)buf;
        dg_shape shape;
        dg_status s = dg_npy_read_mem(buf, len, &data, &shape);
        CHECK_MSG(s == bad[i].want, "hostile %zu: %s, expected %s (%s)", i, dg_status_name(s),
                  dg_status_name(bad[i].want), dg_last_error());
        CHECK_MSG(strstr(dg_last_error(), bad[i].sub) != NULL, "hostile %zu: '%s' lacks '%s'", i,
                  dg_last_error(), bad[i].sub);
        CHECK(data == NULL);
    }
    /* A header length pointing past the end, and every prefix of a valid file. */
    unsigned char buf[512];
    size_t len =
        make_npy(buf, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }\n", 4);
    for (size_t cut = 0; cut < len; cut++) {
        float *data = NULL;
        dg_shape shape;
        CHECK_MSG(dg_npy_read_mem(buf, cut, &data, &shape) == DG_ERR_FORMAT, "cut at %zu", cut);
        CHECK(data == NULL);
    }
    buf[8] = 0xff;
    buf[9] = 0xff;
    float *data = NULL;
    dg_shape shape;
    CHECK(dg_npy_read_mem(buf, len, &data, &shape) == DG_ERR_FORMAT);
    CHECK(strstr(dg_last_error(), "truncated") != NULL);
    CHECK(dg_npy_read_mem("\x93NUMPX\x01\x00", 8, &data, &shape) == DG_ERR_FORMAT);
    spit(in_dir("empty.npy"), "", 0);
    CHECK(dg_npy_read(in_dir("empty.npy"), &data, &shape) == DG_ERR_FORMAT);
}

/* NumPy writes arrays whose values it computes from a formula; we read and check them
 * against the same formula computed here, then NumPy checks files we wrote. */
static void test_numpy_interop(void) {
    if (system("/usr/bin/python3 -c 'import numpy' >/dev/null 2>&1") != 0) {
        printf("SKIP: /usr/bin/python3 with numpy not available; NumPy interop not tested\n");
        return;
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "import numpy as np\n"
             "a = (np.arange(24, dtype=np.float32).reshape(2, 3, 4) * np.float32(0.25) - "
             "np.float32(2)).astype('<f4')\n"
             "np.save('%s', a)\n"
             "np.save('%s', np.float32(3.5))\n"
             "np.save('%s', np.arange(7, dtype='<f4'))\n"
             "with open('%s', 'wb') as f: np.lib.format.write_array(f, a, version=(2, 0))\n"
             "with open('%s', 'wb') as f: np.lib.format.write_array(f, a, version=(3, 0))\n"
             "np.save('%s', np.asfortranarray(a))\n"
             "np.save('%s', a.astype(np.float64))\n"
             "\"",
             in_dir("np3.npy"), in_dir("np0.npy"), in_dir("np1.npy"), in_dir("np_v2.npy"),
             in_dir("np_v3.npy"), in_dir("np_f.npy"), in_dir("np_f8.npy"));
    CHECK(system(cmd) == 0);
    const char *threes[] = {"np3.npy", "np_v2.npy", "np_v3.npy"};
    for (int k = 0; k < 3; k++) {
        float *data = NULL;
        dg_shape shape;
        dg_status s = dg_npy_read(in_dir(threes[k]), &data, &shape);
        CHECK_MSG(s == DG_OK, "%s: %s", threes[k], dg_last_error());
        if (s != DG_OK) continue;
        CHECK(dg_shape_equal(shape, dg_shape3(2, 3, 4)));
        for (int i = 0; i < 24; i++) CHECK(data[i] == (float)i * 0.25f - 2.0f);
        free(data);
    }
    float *data = NULL;
    dg_shape shape;
    CHECK_OK(dg_npy_read(in_dir("np0.npy"), &data, &shape));
    CHECK(shape.ndim == 0 && data && data[0] == 3.5f);
    free(data);
    CHECK_OK(dg_npy_read(in_dir("np1.npy"), &data, &shape));
    CHECK(dg_shape_equal(shape, dg_shape1(7)) && data && data[6] == 6.0f);
    free(data);
    /* A 3-D Fortran-order array is really stored in Fortran order: refused. */
    CHECK(dg_npy_read(in_dir("np_f.npy"), &data, &shape) == DG_ERR_UNSUPPORTED);
    CHECK(dg_npy_read(in_dir("np_f8.npy"), &data, &shape) == DG_ERR_UNSUPPORTED);

    /* Our files, read by NumPy and compared with its own computation of the values. */
    float vals[12];
    for (int i = 0; i < 12; i++) vals[i] = (float)i / 3.0f - 1.0f;
    CHECK_OK(dg_npy_write(in_dir("ours.npy"), vals, dg_shape2(3, 4)));
    float one = -7.25f;
    CHECK_OK(dg_npy_write(in_dir("ours0.npy"), &one, dg_shape0()));
    snprintf(cmd, sizeof cmd,
             "/usr/bin/python3 -c \"\n"
             "import numpy as np, sys\n"
             "a = np.load('%s')\n"
             "want = np.arange(12, dtype=np.float32).reshape(3, 4) / np.float32(3) - "
             "np.float32(1)\n"
             "b = np.load('%s')\n"
             "ok = a.dtype == np.dtype('<f4') and a.shape == (3, 4) and a.flags.c_contiguous "
             "and np.array_equal(a, want) and b.shape == () and b == np.float32(-7.25)\n"
             "sys.exit(0 if ok else 1)\n"
             "\"",
             in_dir("ours.npy"), in_dir("ours0.npy"));
    CHECK_MSG(system(cmd) == 0, "NumPy rejected or misread our .npy files");
    printf("numpy interop: checked both directions\n");
}

int main(void) {
    strcpy(dir, "/tmp/dg_npy_XXXXXX");
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_round_trips();
    test_accepted_headers();
    test_hostile_headers();
    test_numpy_interop();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
    return test_summary("test_io_npy");
}
