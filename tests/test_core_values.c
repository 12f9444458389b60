/* Known-value tests: every op's forward result on tiny inputs whose answers can be worked
 * out by hand (or with plain C math in the test itself), including output shapes,
 * broadcasting, keep-dims reductions and matmul transposition flags. */
#include "test_util.h"

#include <string.h>

static dg_node *konst(dg_graph *g, dg_shape s, const float *data) {
    return dg_const(g, NULL, s, data, 0.0f);
}

/* Runs `y` and compares its shape and values with the expected ones. */
static void expect(const char *what, dg_graph *g, dg_node *y, dg_shape shape, const float *want,
                   double tol) {
    CHECK_MSG(y != NULL, "%s: node not created: %s", what, dg_graph_error(g));
    if (!y) return;
    char s1[64], s2[64];
    CHECK_MSG(dg_shape_equal(dg_node_shape(y), shape), "%s: shape %s, expected %s", what,
              dg_shape_str(dg_node_shape(y), s1, sizeof s1), dg_shape_str(shape, s2, sizeof s2));
    dg_status s = dg_run(g, y);
    CHECK_MSG(s == DG_OK, "%s: run: %s", what, dg_graph_error(g));
    int64_t n = dg_shape_numel(shape);
    if (s != DG_OK || n != dg_node_numel(y)) return;
    float got[64];
    CHECK_OK(dg_read(y, got, 64));
    for (int64_t i = 0; i < n; i++)
        CHECK_MSG(fabs((double)got[i] - want[i]) <= tol * (1.0 + fabs(want[i])),
                  "%s[%lld]: got %.9g, expected %.9g", what, (long long)i, (double)got[i],
                  (double)want[i]);
}

static void test_softmax(void) {
    dg_graph *g = dg_graph_new(1);
    const float x[3] = {1, 2, 3};
    dg_node *xn = konst(g, dg_shape1(3), x);
    double z = exp(1.0) + exp(2.0) + exp(3.0);
    float sm[3], lsm[3];
    for (int i = 0; i < 3; i++) {
        sm[i] = (float)(exp(x[i]) / z);
        lsm[i] = (float)(x[i] - log(z));
    }
    expect("softmax [1,2,3]", g, dg_softmax(g, xn), dg_shape1(3), sm, 1e-6);
    expect("log_softmax [1,2,3]", g, dg_log_softmax(g, xn), dg_shape1(3), lsm, 1e-6);

    /* rows are independent: row 2 is row 1 shifted by 100 (same softmax), row 3 uniform */
    const float rows[9] = {1, 2, 3, 101, 102, 103, 5, 5, 5};
    float want[9] = {sm[0], sm[1], sm[2], sm[0], sm[1], sm[2], 1.0f / 3, 1.0f / 3, 1.0f / 3};
    expect("softmax rows", g, dg_softmax(g, konst(g, dg_shape2(3, 3), rows)), dg_shape2(3, 3), want,
           1e-6);
    dg_graph_free(g);
}

static void test_matmul(void) {
    dg_graph *g = dg_graph_new(1);
    /* A = [1 2 3; 4 5 6], B = [7 8; 9 10; 11 12]: A B = [58 64; 139 154] */
    const float a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {7, 8, 9, 10, 11, 12};
    const float at[6] = {1, 4, 2, 5, 3, 6}, bt[6] = {7, 9, 11, 8, 10, 12};
    const float ab[4] = {58, 64, 139, 154};
    dg_node *A = konst(g, dg_shape2(2, 3), a), *B = konst(g, dg_shape2(3, 2), b);
    dg_node *At = konst(g, dg_shape2(3, 2), at), *Bt = konst(g, dg_shape2(2, 3), bt);
    expect("matmul A B", g, dg_matmul(g, A, B), dg_shape2(2, 2), ab, 0);
    expect("matmul_t(A^T stored) trans_a", g, dg_matmul_t(g, At, B, 1, 0), dg_shape2(2, 2), ab, 0);
    expect("matmul_t(B^T stored) trans_b", g, dg_matmul_t(g, A, Bt, 0, 1), dg_shape2(2, 2), ab, 0);
    expect("matmul_t both", g, dg_matmul_t(g, At, Bt, 1, 1), dg_shape2(2, 2), ab, 0);
    /* B A = [7+32 14+40 21+48; 9+40 18+50 27+60; 11+48 22+60 33+72] */
    const float ba[9] = {39, 54, 69, 49, 68, 87, 59, 82, 105};
    expect("matmul B A", g, dg_matmul(g, B, A), dg_shape2(3, 3), ba, 0);
    /* A^T A with the same node twice: [17 22 27; 22 29 36; 27 36 45] */
    const float ata[9] = {17, 22, 27, 22, 29, 36, 27, 36, 45};
    expect("matmul A^T A", g, dg_matmul_t(g, A, A, 1, 0), dg_shape2(3, 3), ata, 0);
    /* a [1,3] row times a [3,1] column is a 1x1 dot product: 1*7 + 2*9 + 3*11 = 58 */
    const float col[3] = {7, 9, 11}, dot[1] = {58};
    expect("matmul row x col", g,
           dg_matmul(g, konst(g, dg_shape2(1, 3), a), konst(g, dg_shape2(3, 1), col)),
           dg_shape2(1, 1), dot, 0);
    dg_graph_free(g);
}

static void test_broadcast(void) {
    dg_graph *g = dg_graph_new(1);
    const float m[6] = {1, 2, 3, 4, 5, 6}, v[3] = {10, 20, 30}, c[2] = {1, 2}, r[3] = {3, 4, 5};
    dg_node *M = konst(g, dg_shape2(2, 3), m), *V = konst(g, dg_shape1(3), v);
    const float add[6] = {11, 22, 33, 14, 25, 36};
    expect("[2,3]+[3]", g, dg_add(g, M, V), dg_shape2(2, 3), add, 0);
    expect("[3]+[2,3]", g, dg_add(g, V, M), dg_shape2(2, 3), add, 0);
    const float sub[6] = {9, 18, 27, 6, 15, 24};
    expect("[3]-[2,3]", g, dg_sub(g, V, M), dg_shape2(2, 3), sub, 0);
    const float outer[6] = {3, 4, 5, 6, 8, 10};
    expect("[2,1]*[1,3]", g, dg_mul(g, konst(g, dg_shape2(2, 1), c), konst(g, dg_shape2(1, 3), r)),
           dg_shape2(2, 3), outer, 0);
    const float divs[6] = {10, 10, 10, 2.5f, 4, 5};
    expect("[3]/[2,3]", g, dg_div(g, V, M), dg_shape2(2, 3), divs, 1e-7);
    const float half[6] = {0.5f, 1, 1.5f, 2, 2.5f, 3};
    expect("[2,3]*scalar", g, dg_mul(g, M, dg_scalar(g, 0.5f)), dg_shape2(2, 3), half, 0);
    /* [2,1,3] + [2,1] -> [2,2,3]: y[i,j,k] = p[i,k] + q[j] */
    const float p[6] = {1, 2, 3, 4, 5, 6}, q[2] = {100, 200};
    float want[12];
    for (int i = 0; i < 2; i++)
        for (int j = 0; j < 2; j++)
            for (int k = 0; k < 3; k++) want[(i * 2 + j) * 3 + k] = p[i * 3 + k] + q[j];
    expect("[2,1,3]+[2,1]", g,
           dg_add(g, konst(g, dg_shape3(2, 1, 3), p), konst(g, dg_shape2(2, 1), q)),
           dg_shape3(2, 2, 3), want, 0);
    /* 4-D: [2,1,2,1] * [1,3,1,2] -> [2,3,2,2]: y[a,b,c,d] = u[a,c] * w[b,d] */
    const float u[4] = {1, 2, 3, 4}, w[6] = {1, -1, 2, -2, 3, -3};
    float want4[24];
    for (int a = 0; a < 2; a++)
        for (int b2 = 0; b2 < 3; b2++)
            for (int c2 = 0; c2 < 2; c2++)
                for (int d = 0; d < 2; d++)
                    want4[((a * 3 + b2) * 2 + c2) * 2 + d] = u[a * 2 + c2] * w[b2 * 2 + d];
    expect("4-D broadcast mul", g,
           dg_mul(g, konst(g, dg_shape4(2, 1, 2, 1), u), konst(g, dg_shape4(1, 3, 1, 2), w)),
           dg_shape4(2, 3, 2, 2), want4, 0);
    /* broadcast_to and its reverse sum_to */
    const float rep[6] = {10, 20, 30, 10, 20, 30};
    expect("broadcast_to [3]->[2,3]", g, dg_broadcast_to(g, V, dg_shape2(2, 3)), dg_shape2(2, 3),
           rep, 0);
    const float cols[3] = {5, 7, 9}, rows[2] = {6, 15};
    expect("sum_to [2,3]->[3]", g, dg_sum_to(g, M, dg_shape1(3)), dg_shape1(3), cols, 0);
    expect("sum_to [2,3]->[2,1]", g, dg_sum_to(g, M, dg_shape2(2, 1)), dg_shape2(2, 1), rows, 0);
    dg_graph_free(g);
}

static void test_reductions(void) {
    dg_graph *g = dg_graph_new(1);
    /* M = [1 2 3; 4 5 6] */
    const float m[6] = {1, 2, 3, 4, 5, 6};
    dg_node *M = konst(g, dg_shape2(2, 3), m);
    const float total[1] = {21}, avg[1] = {3.5f};
    expect("sum", g, dg_sum(g, M), dg_shape0(), total, 0);
    expect("mean", g, dg_mean(g, M), dg_shape0(), avg, 1e-7);
    const float s0[3] = {5, 7, 9}, s1[2] = {6, 15}, m0[3] = {2.5f, 3.5f, 4.5f}, m1[2] = {2, 5};
    expect("sum axis 0", g, dg_sum_axis(g, M, 0, 0), dg_shape1(3), s0, 0);
    expect("sum axis 0 keep", g, dg_sum_axis(g, M, 0, 1), dg_shape2(1, 3), s0, 0);
    expect("sum axis 1", g, dg_sum_axis(g, M, 1, 0), dg_shape1(2), s1, 0);
    expect("sum axis -1 keep", g, dg_sum_axis(g, M, -1, 1), dg_shape2(2, 1), s1, 0);
    expect("mean axis 0", g, dg_mean_axis(g, M, 0, 0), dg_shape1(3), m0, 1e-7);
    expect("mean axis 1 keep", g, dg_mean_axis(g, M, 1, 1), dg_shape2(2, 1), m1, 1e-7);
    expect("mean axis -2", g, dg_mean_axis(g, M, -2, 0), dg_shape1(3), m0, 1e-7);
    /* 3-D [2,2,2] with values 0..7: middle axis sums x[i,0,k] + x[i,1,k] */
    float t[8];
    for (int i = 0; i < 8; i++) t[i] = (float)i;
    dg_node *T = konst(g, dg_shape3(2, 2, 2), t);
    const float mid[4] = {0 + 2, 1 + 3, 4 + 6, 5 + 7};
    expect("sum axis 1 of 3-D", g, dg_sum_axis(g, T, 1, 0), dg_shape2(2, 2), mid, 0);
    expect("sum axis 1 of 3-D keep", g, dg_sum_axis(g, T, 1, 1), dg_shape3(2, 1, 2), mid, 0);
    const float first[4] = {0 + 4, 1 + 5, 2 + 6, 3 + 7};
    expect("sum axis 0 of 3-D", g, dg_sum_axis(g, T, 0, 0), dg_shape2(2, 2), first, 0);
    /* a scalar's sum is itself; a long vector sums exactly (integers below 2^24) */
    const float seven[1] = {7};
    expect("sum of scalar", g, dg_sum(g, dg_scalar(g, 7)), dg_shape0(), seven, 0);
    dg_node *ones = dg_const(g, NULL, dg_shape1(100000), NULL, 1.0f);
    const float lots[1] = {100000};
    expect("sum of 1e5 ones", g, dg_sum(g, ones), dg_shape0(), lots, 0);
    dg_graph_free(g);
}

static void test_shape_ops(void) {
    dg_graph *g = dg_graph_new(1);
    const float m[6] = {1, 2, 3, 4, 5, 6};
    dg_node *M = konst(g, dg_shape2(2, 3), m);
    expect("reshape [2,3]->[3,2]", g, dg_reshape(g, M, dg_shape2(3, 2)), dg_shape2(3, 2), m, 0);
    expect("reshape ->[6]", g, dg_reshape(g, M, dg_shape1(6)), dg_shape1(6), m, 0);
    expect("reshape ->[1,2,1,3]", g, dg_reshape(g, M, dg_shape4(1, 2, 1, 3)), dg_shape4(1, 2, 1, 3),
           m, 0);
    const float mt[6] = {1, 4, 2, 5, 3, 6};
    expect("transpose [2,3]", g, dg_transpose(g, M), dg_shape2(3, 2), mt, 0);
    expect("transpose twice", g, dg_transpose(g, dg_transpose(g, M)), dg_shape2(2, 3), m, 0);
    /* batched: [2,2,3] -> [2,3,2], each 2x3 matrix transposed */
    float b[12], bt[12];
    for (int i = 0; i < 12; i++) b[i] = (float)(i + 1);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 2; i++)
            for (int j = 0; j < 3; j++) bt[k * 6 + j * 2 + i] = b[k * 6 + i * 3 + j];
    expect("transpose [2,2,3]", g, dg_transpose(g, konst(g, dg_shape3(2, 2, 3), b)),
           dg_shape3(2, 3, 2), bt, 0);
    dg_graph_free(g);
}

typedef dg_node *(*unary_fn)(dg_graph *, dg_node *);
static dg_node *scale_m2(dg_graph *g, dg_node *x) { return dg_scale(g, x, -2.0f); }
static dg_node *shift_3(dg_graph *g, dg_node *x) { return dg_shift(g, x, 3.0f); }
static dg_node *pow_3(dg_graph *g, dg_node *x) { return dg_pow(g, x, 3.0f); }
static dg_node *pow_half(dg_graph *g, dg_node *x) { return dg_pow(g, x, 0.5f); }
static dg_node *leaky_01(dg_graph *g, dg_node *x) { return dg_leaky_relu(g, x, 0.1f); }
static dg_node *step_02(dg_graph *g, dg_node *x) { return dg_step(g, x, 0.2f); }

static void test_unary(void) {
    const float x[5] = {-2, -0.5f, 0, 0.5f, 2}, pos[5] = {0.25f, 0.5f, 1, 2, 4};
    struct {
        const char *name;
        unary_fn f;
        const float *in;
        double (*ref)(double);
    } cases[] = {
        {"exp", dg_exp, x, exp},    {"log", dg_log, pos, log}, {"sqrt", dg_sqrt, pos, sqrt},
        {"tanh", dg_tanh, x, tanh}, {"abs", dg_abs, x, fabs},
    };
    dg_graph *g = dg_graph_new(1);
    dg_node *X = konst(g, dg_shape1(5), x), *P = konst(g, dg_shape1(5), pos);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        float want[5];
        for (int i = 0; i < 5; i++) want[i] = (float)cases[c].ref(cases[c].in[i]);
        expect(cases[c].name, g, cases[c].f(g, cases[c].in == x ? X : P), dg_shape1(5), want, 1e-6);
    }
    /* hand-written tables */
    struct {
        const char *name;
        unary_fn f;
        dg_node *in;
        float want[5];
    } t[] = {
        {"neg", dg_neg, X, {2, 0.5f, 0, -0.5f, -2}},
        {"scale -2", scale_m2, X, {4, 1, 0, -1, -4}},
        {"shift 3", shift_3, X, {1, 2.5f, 3, 3.5f, 5}},
        {"pow 3", pow_3, X, {-8, -0.125f, 0, 0.125f, 8}},
        {"pow 0.5", pow_half, P, {0.5f, 0.70710678f, 1, 1.41421356f, 2}},
        {"relu", dg_relu, X, {0, 0, 0, 0.5f, 2}},
        {"leaky_relu 0.1", leaky_01, X, {-0.2f, -0.05f, 0, 0.5f, 2}},
        {"step 0.2", step_02, X, {0.2f, 0.2f, 0.2f, 1, 1}},
        {"sign", dg_sign, X, {-1, -1, 0, 1, 1}},
    };
    for (size_t c = 0; c < sizeof t / sizeof t[0]; c++)
        expect(t[c].name, g, t[c].f(g, t[c].in), dg_shape1(5), t[c].want, 1e-6);
    /* sigmoid(0) = 1/2, sigmoid(-x) = 1 - sigmoid(x), sigmoid(2) = 1 / (1 + e^-2) */
    float sg[5];
    for (int i = 0; i < 5; i++) sg[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
    CHECK_NEAR(sg[2], 0.5, 0);
    expect("sigmoid", g, dg_sigmoid(g, X), dg_shape1(5), sg, 1e-6);
    /* one_hot of labels [2,0,1] with 3 classes is a permutation matrix */
    const float lab[3] = {2, 0, 1}, oh[9] = {0, 0, 1, 1, 0, 0, 0, 1, 0};
    expect("one_hot", g, dg_one_hot(g, konst(g, dg_shape1(3), lab), 3), dg_shape2(3, 3), oh, 0);
    dg_graph_free(g);
}

static void test_losses(void) {
    dg_graph *g = dg_graph_new(1);
    /* mse([1,2,3], [1,0,5]) = (0 + 4 + 4) / 3; mae = (0 + 2 + 2) / 3 */
    const float p[3] = {1, 2, 3}, t[3] = {1, 0, 5};
    dg_node *P = konst(g, dg_shape1(3), p), *T = konst(g, dg_shape1(3), t);
    const float mse[1] = {8.0f / 3}, mae[1] = {4.0f / 3};
    expect("mse", g, dg_mse_loss(g, P, T), dg_shape0(), mse, 1e-6);
    expect("mae", g, dg_mae_loss(g, P, T), dg_shape0(), mae, 1e-6);

    /* BCE from the textbook formula -y log s - (1-y) log(1-s), s = sigmoid(z) */
    const float z[4] = {0, 2, -1, 0.5f}, y[4] = {1, 0, 1, 0.25f};
    double acc = 0;
    for (int i = 0; i < 4; i++) {
        double s = 1.0 / (1.0 + exp(-(double)z[i]));
        acc += -y[i] * log(s) - (1 - y[i]) * log(1 - s);
    }
    const float bce[1] = {(float)(acc / 4)};
    expect("bce_logits", g,
           dg_bce_logits_loss(g, konst(g, dg_shape2(2, 2), z), konst(g, dg_shape2(2, 2), y)),
           dg_shape0(), bce, 1e-6);
    /* bce at z = 0 is log 2 whatever the target */
    const float zero[2] = {0, 0}, tt[2] = {0, 1}, ln2[1] = {(float)log(2.0)};
    expect("bce at 0", g,
           dg_bce_logits_loss(g, konst(g, dg_shape1(2), zero), konst(g, dg_shape1(2), tt)),
           dg_shape0(), ln2, 1e-6);

    /* cross-entropy: rows [1,2,3] label 2 and [1,1,1] label 0:
     *   row 1: log(e + e^2 + e^3) - 3,  row 2: log(3 e) - 1 = log 3 */
    const float logits[6] = {1, 2, 3, 1, 1, 1}, labels[2] = {2, 0};
    double r1 = log(exp(1.0) + exp(2.0) + exp(3.0)) - 3, r2 = log(3.0);
    const float ce[1] = {(float)((r1 + r2) / 2)};
    expect(
        "cross_entropy", g,
        dg_cross_entropy_loss(g, konst(g, dg_shape2(2, 3), logits), konst(g, dg_shape1(2), labels)),
        dg_shape0(), ce, 1e-6);
    /* a confident correct prediction costs almost nothing */
    const float sure[2] = {20, 0}, lab0[1] = {0}, tiny[1] = {(float)log1p(exp(-20.0))};
    expect("cross_entropy confident", g,
           dg_cross_entropy_loss(g, konst(g, dg_shape2(1, 2), sure), konst(g, dg_shape1(1), lab0)),
           dg_shape0(), tiny, 1e-5);
    dg_graph_free(g);
}

/* Inputs fed after building give the values fed, and dg_value reads scalars. */
static void test_inputs_and_value(void) {
    dg_graph *g = dg_graph_new(1);
    dg_node *x = dg_input(g, "x", dg_shape1(3)), *w = dg_param(g, "w", dg_shape1(3));
    const float xv[3] = {1, 2, 3}, wv[3] = {0.5f, -1, 2};
    CHECK_OK(dg_feed(x, xv, 3));
    memcpy(dg_node_data(w), wv, sizeof wv); /* parameters are initialised in place */
    dg_node *dot = dg_sum(g, dg_mul(g, x, w));
    CHECK_OK(dg_run(g, dot));
    CHECK_NEAR(dg_value(dot), 0.5 - 2 + 6, 0);
    CHECK(isnan(dg_value(x))); /* not a scalar */
    CHECK(isnan(dg_value(NULL)));
    dg_graph_free(g);
}

int main(void) {
    test_softmax();
    test_matmul();
    test_broadcast();
    test_reductions();
    test_shape_ops();
    test_unary();
    test_losses();
    test_inputs_and_value();
    return test_summary("test_core_values");
}
