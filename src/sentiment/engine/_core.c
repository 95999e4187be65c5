/* The training engine's compiled core: fastText's file scanning, line encoding, hogwild SGD
 * and prediction (supervised mode, softmax loss).
 *
 * Why C and not numba (which this code was): the training process must fit in the
 * memory fastText itself takes (issue 4). numba's runtime costs ~100 MB resident before the
 * first kernel runs (llvmlite's LLVM alone touches ~65 MB of library pages on import and on
 * its runtime's initialization), against fastText's 235 MB in all for a 2M-bucket model whose
 * weights are 80 MB. A small extension built with the package has no runtime at all.
 *
 * The Python side (`kernels.py`, `dictionary.py`) owns the arrays: it allocates them with the
 * right dtypes and sizes and this module fills or reads them through the buffer protocol,
 * so the kernels allocate no result Python must free (the Predictor owns its word table).
 * The GIL is released for all work; training and evaluation run their threads with pthreads.
 *
 * The algorithm (the fastText paper and its source describe it; this is our own code):
 * - Tokens are split on fastText's whitespace (' ', '\n', '\r', '\t', '\v', '\f', '\0'); each
 *   newline is the end-of-sentence token `</s>`. Each token gets fastText's 32-bit FNV-1a hash
 *   (bytes sign-extended before the xor, as fastText's int8_t cast does), which feeds the word
 *   n-gram buckets, and a 64-bit FNV-1a that identifies the word in our dictionary.
 * - A line's input ids are its known words' ids, then for every word token (known or not) the
 *   n-grams starting there: h = h * 116049371 + hash (64-bit unsigned), id = nwords + h % buckets.
 * - The hidden vector is the mean of the input rows of the ids; softmax over the labels from the
 *   output matrix; each output row moves by alpha = lr * (1[target] - p) times the hidden vector
 *   while the hidden gradient accumulates alpha * row (read before the row moves); the gradient,
 *   divided by the number of ids, is added to every input row of the line. The learning rate
 *   decays linearly with the tokens processed over all planned epochs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* --- buffers -------------------------------------------------------------------------------- */

typedef struct {
    Py_buffer view;
    int held;
} Buf;

static int get_buf(PyObject *obj, Buf *b, int writable, Py_ssize_t itemsize, const char *name) {
    int flags = PyBUF_C_CONTIGUOUS | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &b->view, flags) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous%s array", name,
                     writable ? " writable" : "");
        return -1;
    }
    b->held = 1;
    if (itemsize > 0 && b->view.len % itemsize != 0) {
        PyErr_Format(PyExc_ValueError, "%s: %zd bytes is not a whole number of %zd-byte items",
                     name, b->view.len, itemsize);
        return -1;
    }
    return 0;
}

static void release(Buf *bufs, int n) {
    for (int i = 0; i < n; i++) {
        if (bufs[i].held) {
            PyBuffer_Release(&bufs[i].view);
            bufs[i].held = 0;
        }
    }
}

#define COUNT(b, type) ((int64_t)((b).view.len / (Py_ssize_t)sizeof(type)))
#define DATA(b, type) ((type *)(b).view.buf)

/* --- threads -------------------------------------------------------------------------------- */

typedef void (*work_fn)(void *ctx, int t, int64_t start, int64_t end);

typedef struct {
    work_fn fn;
    void *ctx;
    int t;
    int64_t start, end;
} Job;

static void *run_job(void *arg) {
    Job *job = (Job *)arg;
    job->fn(job->ctx, job->t, job->start, job->end);
    return NULL;
}

/* Worker t runs fn on [bounds[t], bounds[t+1]); worker 0 runs on the calling thread. Returns 0,
 * or -1 if a thread could not be started (the work it would have done is then done inline). */
static int run_parallel(int threads, const int64_t *bounds, work_fn fn, void *ctx) {
    Job jobs[256];
    pthread_t ids[256];
    int started[256];
    if (threads > 256) threads = 256;
    for (int t = 0; t < threads; t++) {
        jobs[t].fn = fn;
        jobs[t].ctx = ctx;
        jobs[t].t = t;
        jobs[t].start = bounds[t];
        jobs[t].end = bounds[t + 1];
        started[t] = 0;
    }
    for (int t = 1; t < threads; t++) {
        started[t] = pthread_create(&ids[t], NULL, run_job, &jobs[t]) == 0;
    }
    run_job(&jobs[0]);
    for (int t = 1; t < threads; t++) {
        if (started[t]) {
            pthread_join(ids[t], NULL);
        } else {
            run_job(&jobs[t]);
        }
    }
    return 0;
}

static void even_bounds(int64_t n, int threads, int64_t *bounds) {
    for (int t = 0; t <= threads; t++) bounds[t] = n * t / threads;
}

/* --- scanning ------------------------------------------------------------------------------- */

static inline int is_space(uint8_t c) {
    return c == 32 || c == 10 || c == 13 || c == 9 || c == 11 || c == 12 || c == 0;
}

static inline int32_t hash32(const uint8_t *buf, int64_t start, int64_t end) {
    uint32_t h = 2166136261u;
    for (int64_t i = start; i < end; i++) {
        h ^= (uint32_t)(int32_t)(int8_t)buf[i];
        h *= 16777619u;
    }
    return (int32_t)h;
}

static inline uint64_t hash64(const uint8_t *buf, int64_t start, int64_t end) {
    uint64_t h = 14695981039346656037ull;
    for (int64_t i = start; i < end; i++) {
        h ^= (uint64_t)buf[i];
        h *= 1099511628211ull;
    }
    return h;
}

static const uint8_t EOS[] = "</s>"; /* fastText's end-of-sentence token, one per newline */

static PyObject *count_tokens(PyObject *self, PyObject *args) {
    PyObject *o_buf;
    Buf b[1] = {0};
    if (!PyArg_ParseTuple(args, "O", &o_buf)) return NULL;
    if (get_buf(o_buf, &b[0], 0, 1, "buf") < 0) {
        release(b, 1);
        return NULL;
    }
    const uint8_t *buf = DATA(b[0], uint8_t);
    int64_t n = b[0].view.len, tokens = 0, lines = 0;
    int inside = 0;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t i = 0; i < n; i++) {
        uint8_t c = buf[i];
        if (is_space(c)) {
            if (inside) {
                tokens++;
                inside = 0;
            }
            if (c == 10) {
                tokens++; /* </s> */
                lines++;
            }
        } else {
            inside = 1;
        }
    }
    if (inside) {
        tokens++;
        lines++; /* a last line without a newline */
    }
    Py_END_ALLOW_THREADS
    release(b, 1);
    return Py_BuildValue("LL", (long long)tokens, (long long)lines);
}

/* scan(buf, starts i64, lengths i32, h32 i32, h64 u64, line_of i64) -> count.
 * Token k: start offset (-1 for </s>), length, hashes, line number. The arrays hold at least
 * count_tokens(buf) items. A last line without a newline gets no </s>, as fastText's reader. */
static PyObject *scan(PyObject *self, PyObject *args) {
    PyObject *o[6];
    Buf b[6] = {0};
    if (!PyArg_ParseTuple(args, "OOOOOO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5])) return NULL;
    if (get_buf(o[0], &b[0], 0, 1, "buf") < 0 || get_buf(o[1], &b[1], 1, 8, "starts") < 0 ||
        get_buf(o[2], &b[2], 1, 4, "lengths") < 0 || get_buf(o[3], &b[3], 1, 4, "h32") < 0 ||
        get_buf(o[4], &b[4], 1, 8, "h64") < 0 || get_buf(o[5], &b[5], 1, 8, "line_of") < 0) {
        release(b, 6);
        return NULL;
    }
    const uint8_t *buf = DATA(b[0], uint8_t);
    int64_t n = b[0].view.len;
    int64_t cap = COUNT(b[1], int64_t);
    if (COUNT(b[2], int32_t) < cap || COUNT(b[3], int32_t) < cap || COUNT(b[4], uint64_t) < cap ||
        COUNT(b[5], int64_t) < cap) {
        release(b, 6);
        PyErr_SetString(PyExc_ValueError, "scan: the output arrays differ in size");
        return NULL;
    }
    int64_t *starts = DATA(b[1], int64_t), *line_of = DATA(b[5], int64_t);
    int32_t *lengths = DATA(b[2], int32_t), *h32 = DATA(b[3], int32_t);
    uint64_t *h64 = DATA(b[4], uint64_t);
    int64_t k = 0, line = 0, begin = -1;
    int overflow = 0;
    const int32_t eos32 = hash32(EOS, 0, 4);
    const uint64_t eos64 = hash64(EOS, 0, 4);
    Py_BEGIN_ALLOW_THREADS
    for (int64_t i = 0; i <= n; i++) {
        uint8_t c = i < n ? buf[i] : 10;
        if (i < n && !is_space(c)) {
            if (begin < 0) begin = i;
            continue;
        }
        if (begin >= 0) {
            if (k >= cap) {
                overflow = 1;
                break;
            }
            starts[k] = begin;
            lengths[k] = (int32_t)(i - begin);
            h32[k] = hash32(buf, begin, i);
            h64[k] = hash64(buf, begin, i);
            line_of[k] = line;
            k++;
            begin = -1;
            if (i == n) {
                line++;
                break;
            }
        }
        if (i < n && c == 10) {
            if (k >= cap) {
                overflow = 1;
                break;
            }
            starts[k] = -1;
            lengths[k] = 0;
            h32[k] = eos32;
            h64[k] = eos64;
            line_of[k] = line;
            k++;
            line++;
        }
    }
    Py_END_ALLOW_THREADS
    release(b, 6);
    if (overflow) {
        PyErr_SetString(PyExc_ValueError, "scan: more tokens than the output arrays hold");
        return NULL;
    }
    return PyLong_FromLongLong((long long)k);
}

/* --- encoding ------------------------------------------------------------------------------- */

/* fastText's word n-grams of a line (Dictionary::addWordNgrams): for each word hash, the
 * following ones up to `word_ngrams` in all, h = h * 116049371 + hash (64-bit), appended to
 * ids[k..] as nwords + h % buckets. Returns the new k. */
static int64_t add_ngrams(const int32_t *hashes, int64_t nh, int64_t word_ngrams, int64_t buckets,
                          int64_t nwords, int32_t *ids, int64_t k) {
    if (buckets <= 0) return k;
    for (int64_t a = 0; a < nh; a++) {
        uint64_t h = (uint64_t)(int64_t)hashes[a];
        int64_t last = a + word_ngrams < nh ? a + word_ngrams : nh;
        for (int64_t c = a + 1; c < last; c++) {
            h = h * 116049371ull + (uint64_t)(int64_t)hashes[c];
            ids[k++] = (int32_t)(nwords + (int64_t)(h % (uint64_t)buckets));
        }
    }
    return k;
}

/* encode(tok_id i32, tok_label u8, h32 i32, line_of i64, nwords, word_ngrams, buckets,
 *        line_ptr i64[nlines+1], ids i32[cap], label_ptr i64[nlines+1], labels i32[ntokens],
 *        ntok i32[nlines]) -> (ids written, labels written).
 * Follows fastText's Dictionary::getLine in supervised mode: known words give their id, labels
 * their label index (id - nwords), unknown words nothing; every word token's hash feeds the
 * n-grams. `cap` must be at least ntokens * max(1, word_ngrams). */
static PyObject *encode(PyObject *self, PyObject *args) {
    PyObject *o[9];
    long long nwords, word_ngrams, buckets;
    Buf b[9] = {0};
    if (!PyArg_ParseTuple(args, "OOOOLLLOOOOO", &o[0], &o[1], &o[2], &o[3], &nwords,
                          &word_ngrams, &buckets, &o[4], &o[5], &o[6], &o[7], &o[8]))
        return NULL;
    if (get_buf(o[0], &b[0], 0, 4, "tok_id") < 0 || get_buf(o[1], &b[1], 0, 1, "tok_label") < 0 ||
        get_buf(o[2], &b[2], 0, 4, "h32") < 0 || get_buf(o[3], &b[3], 0, 8, "line_of") < 0 ||
        get_buf(o[4], &b[4], 1, 8, "line_ptr") < 0 || get_buf(o[5], &b[5], 1, 4, "ids") < 0 ||
        get_buf(o[6], &b[6], 1, 8, "label_ptr") < 0 || get_buf(o[7], &b[7], 1, 4, "labels") < 0 ||
        get_buf(o[8], &b[8], 1, 4, "ntok") < 0) {
        release(b, 9);
        return NULL;
    }
    int64_t n = COUNT(b[0], int32_t);
    int64_t nlines = COUNT(b[8], int32_t);
    int64_t span = word_ngrams > 1 ? word_ngrams : 1;
    if (COUNT(b[1], uint8_t) != n || COUNT(b[2], int32_t) != n || COUNT(b[3], int64_t) != n ||
        COUNT(b[4], int64_t) != nlines + 1 || COUNT(b[6], int64_t) != nlines + 1 ||
        COUNT(b[5], int32_t) < n * span || COUNT(b[7], int32_t) < n) {
        release(b, 9);
        PyErr_SetString(PyExc_ValueError, "encode: array sizes do not match");
        return NULL;
    }
    const int32_t *tok_id = DATA(b[0], int32_t), *h32 = DATA(b[2], int32_t);
    const uint8_t *tok_label = DATA(b[1], uint8_t);
    const int64_t *line_of = DATA(b[3], int64_t);
    int64_t *line_ptr = DATA(b[4], int64_t), *label_ptr = DATA(b[6], int64_t);
    int32_t *ids = DATA(b[5], int32_t), *labels = DATA(b[7], int32_t), *ntok = DATA(b[8], int32_t);
    int32_t *hashes = (int32_t *)malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    if (hashes == NULL) {
        release(b, 9);
        return PyErr_NoMemory();
    }
    int64_t k = 0, m = 0, i = 0, line = 0;
    Py_BEGIN_ALLOW_THREADS
    line_ptr[0] = 0;
    label_ptr[0] = 0;
    while (i < n && line < nlines) {
        int64_t j = i;
        while (j < n && line_of[j] == line) j++;
        int64_t nh = 0;
        for (int64_t t = i; t < j; t++) {
            if (tok_label[t]) {
                if (tok_id[t] >= 0) labels[m++] = (int32_t)(tok_id[t] - nwords);
            } else {
                if (tok_id[t] >= 0) ids[k++] = tok_id[t];
                hashes[nh++] = h32[t];
            }
        }
        k = add_ngrams(hashes, nh, word_ngrams, buckets, nwords, ids, k);
        ntok[line] = (int32_t)(j - i);
        line++;
        line_ptr[line] = k;
        label_ptr[line] = m;
        i = j;
    }
    for (int64_t rest = line; rest < nlines; rest++) { /* trailing lines without tokens */
        ntok[rest] = 0;
        line_ptr[rest + 1] = k;
        label_ptr[rest + 1] = m;
    }
    Py_END_ALLOW_THREADS
    free(hashes);
    release(b, 9);
    return Py_BuildValue("LL", (long long)k, (long long)m);
}

/* --- the model ------------------------------------------------------------------------------ */

typedef struct {
    float *wi;
    float *wo;
    int64_t nrows, dim, nl;
    const int64_t *line_ptr;
    const int32_t *ids;
    const int64_t *label_ptr;
    const int32_t *labels;
} Model;

/* fastText scales by `1.0 / n` computed in double and stored as float (Vector::mul(real)). */
static inline float mean_scale(int64_t n) { return (float)(1.0 / (double)n); }

/* The hidden vector: the mean of the input rows of ids[0..n) (Model::computeHidden). */
static inline void hidden_of(const Model *M, const int32_t *ids, int64_t n, float *hidden) {
    const int64_t dim = M->dim;
    for (int64_t d = 0; d < dim; d++) hidden[d] = 0.0f;
    for (int64_t j = 0; j < n; j++) {
        const float *row = M->wi + (int64_t)ids[j] * dim;
        for (int64_t d = 0; d < dim; d++) hidden[d] += row[d];
    }
    float inv = mean_scale(n);
    for (int64_t d = 0; d < dim; d++) hidden[d] *= inv;
}

/* The softmax as fastText's SoftmaxLoss::computeOutput computes it: dot products and sums in
 * float, but `exp(float)` there is C's exp, computed in double and stored as float (expf
 * differed by up to 3 ulp from the fastText library on 1 review in 2,000). */
/* The logits of `hidden` into out[0..nl): dot products in float, as fastText makes them. */
static inline void logits_of(const Model *M, const float *hidden, float *out) {
    const int64_t dim = M->dim, nl = M->nl;
    for (int64_t i = 0; i < nl; i++) {
        const float *row = M->wo + i * dim;
        float s = 0.0f;
        for (int64_t d = 0; d < dim; d++) s += row[d] * hidden[d];
        out[i] = s;
    }
}

static inline void softmax_of(const Model *M, const float *hidden, float *out) {
    const int64_t nl = M->nl;
    logits_of(M, hidden, out);
    float top = out[0], z = 0.0f;
    for (int64_t i = 0; i < nl; i++) top = out[i] > top ? out[i] : top;
    for (int64_t i = 0; i < nl; i++) {
        out[i] = (float)exp((double)(out[i] - top));
        z += out[i];
    }
    for (int64_t i = 0; i < nl; i++) out[i] /= z;
}

/* Parse and check the model arrays shared by train and count (buffers 0..3 of b). */
static int get_model(PyObject **o, Buf *b, long long dim, int writable, Model *M) {
    if (get_buf(o[0], &b[0], writable, 4, "wi") < 0 ||
        get_buf(o[1], &b[1], writable, 4, "wo") < 0 ||
        get_buf(o[2], &b[2], 0, 8, "line_ptr") < 0 || get_buf(o[3], &b[3], 0, 4, "ids") < 0)
        return -1;
    if (dim < 1 || COUNT(b[0], float) % dim != 0 || COUNT(b[1], float) % dim != 0 ||
        COUNT(b[2], int64_t) < 1) {
        PyErr_SetString(PyExc_ValueError, "the weight matrices do not have `dim` columns");
        return -1;
    }
    M->wi = DATA(b[0], float);
    M->wo = DATA(b[1], float);
    M->dim = dim;
    M->nrows = COUNT(b[0], float) / dim;
    M->nl = COUNT(b[1], float) / dim;
    M->line_ptr = DATA(b[2], int64_t);
    M->ids = DATA(b[3], int32_t);
    int64_t nlines = COUNT(b[2], int64_t) - 1, nids = COUNT(b[3], int32_t);
    /* Every pointer and id is checked once here, so that the hot loops cannot go out of bounds. */
    int bad = 0;
    Py_BEGIN_ALLOW_THREADS
    if (M->line_ptr[0] < 0) bad = 1;
    for (int64_t li = 0; li < nlines && !bad; li++) {
        if (M->line_ptr[li + 1] < M->line_ptr[li]) bad = 1;
    }
    if (!bad && M->line_ptr[nlines] > nids) bad = 1;
    for (int64_t j = 0; j < nids && !bad; j++) {
        if ((uint64_t)(int64_t)M->ids[j] >= (uint64_t)M->nrows) bad = 2;
    }
    Py_END_ALLOW_THREADS
    if (bad) {
        PyErr_SetString(PyExc_ValueError, bad == 1 ? "line_ptr is not a valid list of offsets"
                                                   : "an id is outside the input matrix");
        return -1;
    }
    return 0;
}

static int get_labels(PyObject **o, Buf *b, int64_t nlines, Model *M) {
    if (get_buf(o[0], &b[0], 0, 8, "label_ptr") < 0 || get_buf(o[1], &b[1], 0, 4, "labels") < 0)
        return -1;
    if (COUNT(b[0], int64_t) != nlines + 1) {
        PyErr_SetString(PyExc_ValueError, "label_ptr and line_ptr differ in length");
        return -1;
    }
    M->label_ptr = DATA(b[0], int64_t);
    M->labels = DATA(b[1], int32_t);
    int64_t nlab = COUNT(b[1], int32_t);
    int bad = M->label_ptr[0] < 0;
    for (int64_t li = 0; li < nlines && !bad; li++) {
        if (M->label_ptr[li + 1] < M->label_ptr[li]) bad = 1;
    }
    if (!bad && M->label_ptr[nlines] > nlab) bad = 1;
    for (int64_t j = 0; j < nlab && !bad; j++) {
        if ((uint64_t)(int64_t)M->labels[j] >= (uint64_t)M->nl) bad = 1;
    }
    if (bad) {
        PyErr_SetString(PyExc_ValueError, "label_ptr/labels do not index the output matrix");
        return -1;
    }
    return 0;
}

typedef struct {
    Model M;
    const int32_t *ntok;
    double lr0, before, total;
    uint64_t seed;
    int threads;
    double loss[256];
    int64_t examples[256];
    int64_t seen[256];
    int oom;
} Train;

static void train_part(void *ctx, int t, int64_t start, int64_t end) {
    Train *T = (Train *)ctx;
    const Model *M = &T->M;
    const int64_t dim = M->dim, nl = M->nl;
    float *scratch = (float *)malloc((size_t)(2 * dim + nl) * sizeof(float));
    if (scratch == NULL) {
        T->oom = 1;
        return;
    }
    float *hidden = scratch, *grad = scratch + dim, *out = scratch + 2 * dim;
    uint64_t state = T->seed * 1000003ull + (uint64_t)t * 7919ull + 1ull;
    int64_t local = 0, examples = 0;
    double loss = 0.0;
    for (int64_t li = start; li < end; li++) {
        local += T->ntok[li];
        int64_t a = M->line_ptr[li], b = M->line_ptr[li + 1];
        int64_t la = M->label_ptr[li], lb = M->label_ptr[li + 1];
        if (b == a || lb == la) continue;
        double progress = (T->before + (double)local * T->threads) / T->total;
        if (progress > 1.0) progress = 1.0;
        float lr = (float)(T->lr0 * (1.0 - progress));
        int32_t target;
        if (lb - la == 1) {
            target = M->labels[la];
        } else { /* several labels: one at random per example, as fastText's softmax */
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            target = M->labels[la + (int64_t)(state % (uint64_t)(lb - la))];
        }
        hidden_of(M, M->ids + a, b - a, hidden);
        softmax_of(M, hidden, out);
        for (int64_t d = 0; d < dim; d++) grad[d] = 0.0f;
        for (int64_t i = 0; i < nl; i++) {
            float alpha = lr * ((i == target ? 1.0f : 0.0f) - out[i]);
            float *row = M->wo + i * dim;
            for (int64_t d = 0; d < dim; d++) {
                grad[d] += alpha * row[d];
                row[d] += alpha * hidden[d];
            }
        }
        loss -= log((double)out[target] + 1e-5);
        examples++;
        float scale = mean_scale(b - a);
        for (int64_t d = 0; d < dim; d++) grad[d] *= scale;
        for (int64_t j = a; j < b; j++) {
            float *row = M->wi + (int64_t)M->ids[j] * dim;
            for (int64_t d = 0; d < dim; d++) row[d] += grad[d];
        }
    }
    free(scratch);
    T->loss[t] = loss;
    T->examples[t] = examples;
    T->seen[t] = local;
}

/* train_lines(wi, wo, dim, line_ptr, ids, label_ptr, labels, ntok, bounds, lr0, tokens_before,
 *             tokens_total, seed) -> (loss sum, examples, tokens).
 * Hogwild: worker t trains lines [bounds[t], bounds[t+1]) on the shared matrices, no locks. */
static PyObject *train_lines(PyObject *self, PyObject *args) {
    PyObject *o[8];
    long long dim;
    unsigned long long seed;
    Train *T = (Train *)calloc(1, sizeof(Train));
    Buf b[8] = {0};
    if (T == NULL) return PyErr_NoMemory();
    if (!PyArg_ParseTuple(args, "OOLOOOOOOdddK", &o[0], &o[1], &dim, &o[2], &o[3], &o[4], &o[5],
                          &o[6], &o[7], &T->lr0, &T->before, &T->total, &seed)) {
        free(T);
        return NULL;
    }
    PyObject *result = NULL;
    if (get_model(o, b, dim, 1, &T->M) < 0) goto done;
    int64_t nlines = COUNT(b[2], int64_t) - 1;
    if (get_labels(o + 4, b + 4, nlines, &T->M) < 0) goto done;
    if (get_buf(o[6], &b[6], 0, 4, "ntok") < 0 || get_buf(o[7], &b[7], 0, 8, "bounds") < 0)
        goto done;
    const int64_t *bounds = DATA(b[7], int64_t);
    int64_t nb = COUNT(b[7], int64_t);
    if (COUNT(b[6], int32_t) != nlines || nb < 2 || nb > 257 || bounds[0] < 0 ||
        bounds[nb - 1] > nlines) {
        PyErr_SetString(PyExc_ValueError, "train_lines: ntok or bounds do not fit the lines");
        goto done;
    }
    for (int64_t t = 0; t + 1 < nb; t++) {
        if (bounds[t + 1] < bounds[t]) {
            PyErr_SetString(PyExc_ValueError, "train_lines: bounds must not decrease");
            goto done;
        }
    }
    if (!(T->total > 0)) {
        PyErr_SetString(PyExc_ValueError, "train_lines: tokens_total must be positive");
        goto done;
    }
    T->ntok = DATA(b[6], int32_t);
    T->seed = (uint64_t)seed;
    T->threads = (int)(nb - 1);
    Py_BEGIN_ALLOW_THREADS
    run_parallel(T->threads, bounds, train_part, T);
    Py_END_ALLOW_THREADS
    if (T->oom) {
        PyErr_NoMemory();
        goto done;
    }
    double loss = 0.0;
    long long examples = 0, seen = 0;
    for (int t = 0; t < T->threads; t++) {
        loss += T->loss[t];
        examples += T->examples[t];
        seen += T->seen[t];
    }
    result = Py_BuildValue("dLL", loss, examples, seen);
done:
    release(b, 8);
    free(T);
    return result;
}

typedef struct {
    Model M;
    int64_t correct[256];
    int64_t counted[256];
    int oom;
} Eval;

static void count_part(void *ctx, int t, int64_t start, int64_t end) {
    Eval *E = (Eval *)ctx;
    const Model *M = &E->M;
    float *scratch = (float *)malloc((size_t)(M->dim + M->nl) * sizeof(float));
    if (scratch == NULL) {
        E->oom = 1;
        return;
    }
    float *hidden = scratch, *out = scratch + M->dim;
    int64_t correct = 0, counted = 0;
    for (int64_t li = start; li < end; li++) {
        int64_t a = M->line_ptr[li], b = M->line_ptr[li + 1];
        int64_t la = M->label_ptr[li], lb = M->label_ptr[li + 1];
        if (b == a || lb == la) continue;
        hidden_of(M, M->ids + a, b - a, hidden);
        softmax_of(M, hidden, out);
        int64_t best = 0;
        for (int64_t i = 1; i < M->nl; i++) {
            if (out[i] > out[best]) best = i;
        }
        counted++;
        for (int64_t j = la; j < lb; j++) {
            if (M->labels[j] == best) {
                correct++;
                break;
            }
        }
    }
    free(scratch);
    E->correct[t] = correct;
    E->counted[t] = counted;
}

/* Lines per thread below which evaluation stays on one thread (starting threads costs more). */
#define MIN_LINES_PER_THREAD 512

static int eval_threads(int64_t nlines, int threads) {
    if (threads < 1) threads = 1;
    if (threads > 256) threads = 256;
    int64_t useful = nlines / MIN_LINES_PER_THREAD;
    if (useful < threads) threads = useful > 1 ? (int)useful : 1;
    return threads;
}

/* count_correct(wi, wo, dim, line_ptr, ids, label_ptr, labels, threads) -> (correct, counted):
 * fastText's `test` precision@1; lines without ids or labels are skipped, as there. */
static PyObject *count_correct(PyObject *self, PyObject *args) {
    PyObject *o[6];
    long long dim;
    int threads;
    Eval *E = (Eval *)calloc(1, sizeof(Eval));
    Buf b[6] = {0};
    if (E == NULL) return PyErr_NoMemory();
    if (!PyArg_ParseTuple(args, "OOLOOOOi", &o[0], &o[1], &dim, &o[2], &o[3], &o[4], &o[5],
                          &threads)) {
        free(E);
        return NULL;
    }
    PyObject *result = NULL;
    if (get_model(o, b, dim, 0, &E->M) < 0) goto done;
    int64_t nlines = COUNT(b[2], int64_t) - 1;
    if (get_labels(o + 4, b + 4, nlines, &E->M) < 0) goto done;
    int64_t bounds[257];
    threads = eval_threads(nlines, threads);
    even_bounds(nlines, threads, bounds);
    Py_BEGIN_ALLOW_THREADS
    run_parallel(threads, bounds, count_part, E);
    Py_END_ALLOW_THREADS
    if (E->oom) {
        PyErr_NoMemory();
        goto done;
    }
    long long correct = 0, counted = 0;
    for (int t = 0; t < threads; t++) {
        correct += E->correct[t];
        counted += E->counted[t];
    }
    result = Py_BuildValue("LL", correct, counted);
done:
    release(b, 6);
    free(E);
    return result;
}

/* --- serving: one model, many texts ------------------------------------------------------- */

/* A loaded supervised model answering fastText's `predict` for one line at a time. It holds
 * the weight matrices (any buffers: a read-only map of the .bin file shares them between
 * server processes) and an open-addressing table from each dictionary word's 64-bit FNV-1a
 * hash to its id (fastText compares the words themselves; two different words with one 64-bit
 * hash is the only way the two could disagree).
 *
 * fastText's predict for a line (Dictionary::getLine, FastText::predict, SoftmaxLoss): tokens
 * up to the end of the line, then `</s>`; known words give their id, every word token (known
 * or not, not a `__label__` token) its 32-bit hash for the n-grams; no ids, no prediction;
 * hidden = mean of the input rows (scaled by float(1.0 / n)); softmax in float; the k best
 * by log(p + 1e-5), reported as exp of that, clipped to 1 (fastText's can read 1.00001).
 * A Predictor built with log_probs=1 reports the exact log-probabilities instead (the
 * log-softmax of the same float logits, in double; no clip, no + 1e-5): what calibration reads,
 * where fastText's p + 1e-5 makes every text the model is sure of (logit gaps above
 * log(1e5) = 11.5: "terrible" 117, "ok" 33) read alike. A flag fixed at construction, not a
 * call's: predictions run in threads over one Predictor.
 * Models this does not cover (character n-grams, other losses, pruned dictionaries) are left
 * to the fastText library by the Python side. */
typedef int64_t (*normalize_fn)(const uint8_t *data, int64_t n, const uint8_t *flags,
                                int64_t nflags, const uint32_t *lower, int64_t nlower,
                                const uint8_t *opts, int64_t nopts, uint8_t *out, int64_t cap);

typedef PyObject *(*split_fn)(PyObject *text);

typedef struct {
    PyObject_HEAD
    Py_buffer wi_view, wo_view;
    int held;
    Model M;
    int64_t nwords, word_ngrams, buckets;
    int log_probs; /* report log-probabilities (see above) */
    uint64_t *tkeys;
    int32_t *tids;
    uint64_t mask;
    /* the text normalization (normalize_into in sentiment/_text.c) and its tables */
    normalize_fn normalize;
    Py_buffer norm_views[3];
    int norm_held;
    /* the sentence splitter of sentiment.answers (split_text in sentiment/_sentences.c) */
    split_fn split;
} Predictor;

static void Predictor_dealloc(Predictor *self) {
    if (self->held) {
        PyBuffer_Release(&self->wi_view);
        PyBuffer_Release(&self->wo_view);
    }
    if (self->norm_held) {
        for (int i = 0; i < 3; i++) PyBuffer_Release(&self->norm_views[i]);
    }
    free(self->tkeys);
    free(self->tids);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static int32_t lookup(const Predictor *P, uint64_t key) {
    uint64_t i = key & P->mask;
    while (P->tids[i] >= 0) {
        if (P->tkeys[i] == key) return P->tids[i];
        i = (i + 1) & P->mask;
    }
    return -1;
}

/* Predictor(wi, wo, dim, words, nwords, word_ngrams, buckets[, log_probs]): `words` is the
 * dictionary's entries in id order (words, then labels), each followed by one '\n'. */
static int Predictor_init(Predictor *self, PyObject *args, PyObject *kw) {
    PyObject *o_wi, *o_wo, *o_words;
    long long dim, nwords, word_ngrams, buckets;
    int log_probs = 0;
    if (!PyArg_ParseTuple(args, "OOLOLLL|p", &o_wi, &o_wo, &dim, &o_words, &nwords, &word_ngrams,
                          &buckets, &log_probs))
        return -1;
    if (self->held) {
        PyErr_SetString(PyExc_RuntimeError, "Predictor is already initialized");
        return -1;
    }
    Buf b[3] = {0};
    if (get_buf(o_wi, &b[0], 0, 4, "wi") < 0 || get_buf(o_wo, &b[1], 0, 4, "wo") < 0 ||
        get_buf(o_words, &b[2], 0, 1, "words") < 0) {
        release(b, 3);
        return -1;
    }
    if (dim < 1 || COUNT(b[0], float) % dim || COUNT(b[1], float) % dim || nwords < 0 ||
        buckets < 0 || word_ngrams < 1 || COUNT(b[0], float) / dim != nwords + buckets) {
        release(b, 3);
        PyErr_SetString(PyExc_ValueError,
                        "Predictor: the input matrix must have nwords + buckets rows of dim");
        return -1;
    }
    const uint8_t *w = DATA(b[2], uint8_t);
    int64_t len = b[2].view.len, entries = 0;
    for (int64_t i = 0; i < len; i++) entries += w[i] == 10;
    int64_t nl = COUNT(b[1], float) / dim;
    if (entries != nwords + nl) {
        release(b, 3);
        PyErr_Format(PyExc_ValueError,
                     "Predictor: %lld dictionary entries for %lld words + %lld labels",
                     (long long)entries, nwords, (long long)nl);
        return -1;
    }
    uint64_t size = 16;
    while (size < (uint64_t)(2 * entries + 1)) size <<= 1;
    self->tkeys = (uint64_t *)malloc(size * sizeof(uint64_t));
    self->tids = (int32_t *)malloc(size * sizeof(int32_t));
    if (self->tkeys == NULL || self->tids == NULL) {
        release(b, 3);
        PyErr_NoMemory();
        return -1;
    }
    memset(self->tids, 0xff, size * sizeof(int32_t));
    self->mask = size - 1;
    int64_t start = 0, id = 0;
    for (int64_t i = 0; i < len; i++) {
        if (w[i] != 10) continue;
        uint64_t key = hash64(w, start, i);
        if (lookup(self, key) < 0) { /* the first entry of a word wins, as fastText's find */
            uint64_t j = key & self->mask;
            while (self->tids[j] >= 0) j = (j + 1) & self->mask;
            self->tkeys[j] = key;
            self->tids[j] = (int32_t)id;
        }
        id++;
        start = i + 1;
    }
    release(b + 2, 1);
    self->wi_view = b[0].view;
    self->wo_view = b[1].view;
    self->held = 1;
    self->M.wi = DATA(b[0], float);
    self->M.wo = DATA(b[1], float);
    self->M.dim = dim;
    self->M.nrows = nwords + buckets;
    self->M.nl = nl;
    self->nwords = nwords;
    self->word_ngrams = word_ngrams;
    self->buckets = buckets;
    self->log_probs = log_probs;
    return 0;
}

static const uint8_t LABEL[] = "__label__";

/* fastText keeps its k best (log p, label) pairs in a heap ordered by `a.first > b.first`
 * (std::push_heap / pop_heap / sort_heap), so labels of equal probability come out in the
 * order that heap leaves them. These follow libstdc++'s algorithms step by step (the library
 * fastText is built with), so that even ties are ordered as fastText orders them. */
static void heap_sift_up(float *p, int32_t *id, int64_t hole, int64_t top, float vp, int32_t vi) {
    int64_t parent = (hole - 1) / 2;
    while (hole > top && p[parent] > vp) {
        p[hole] = p[parent];
        id[hole] = id[parent];
        hole = parent;
        parent = (hole - 1) / 2;
    }
    p[hole] = vp;
    id[hole] = vi;
}

static void heap_push(float *p, int32_t *id, int64_t len) { /* the new item is at len - 1 */
    heap_sift_up(p, id, len - 1, 0, p[len - 1], id[len - 1]);
}

static void heap_adjust(float *p, int32_t *id, int64_t hole, int64_t len, float vp, int32_t vi) {
    const int64_t top = hole;
    int64_t child = hole;
    while (child < (len - 1) / 2) {
        child = 2 * (child + 1);
        if (p[child] > p[child - 1]) child--;
        p[hole] = p[child];
        id[hole] = id[child];
        hole = child;
    }
    if ((len & 1) == 0 && child == (len - 2) / 2) {
        child = 2 * (child + 1);
        p[hole] = p[child - 1];
        id[hole] = id[child - 1];
        hole = child - 1;
    }
    heap_sift_up(p, id, hole, top, vp, vi);
}

static void heap_pop(float *p, int32_t *id, int64_t len) { /* the first item moves to len - 1 */
    if (len < 2) return;
    float vp = p[len - 1];
    int32_t vi = id[len - 1];
    p[len - 1] = p[0];
    id[len - 1] = id[0];
    heap_adjust(p, id, 0, len - 1, vp, vi);
}

/* One token of a line to predict: its id if it is a known word, its hash if it is a word. */
static inline void take_token(const Predictor *P, const uint8_t *tok, int64_t len, int32_t *ids,
                              int64_t *nids, int32_t *hashes, int64_t *nh) {
    int32_t wid = lookup(P, hash64(tok, 0, len));
    int is_label = wid >= 0 ? wid >= P->nwords : (len >= 9 && memcmp(tok, LABEL, 9) == 0);
    if (is_label) return;
    if (wid >= 0) ids[(*nids)++] = wid;
    hashes[(*nh)++] = hash32(tok, 0, len);
}

/* The logits of `hidden` into out[0..nl), then their log-softmax in double into lp: the
 * dot products in float as softmax_of makes them. */
static inline void log_softmax_of(const Model *M, const float *hidden, float *out, double *lp) {
    const int64_t nl = M->nl;
    logits_of(M, hidden, out);
    double top = out[0], z = 0.0;
    for (int64_t i = 0; i < nl; i++) top = out[i] > top ? out[i] : top;
    for (int64_t i = 0; i < nl; i++) z += exp((double)out[i] - top);
    const double norm = top + log(z);
    for (int64_t i = 0; i < nl; i++) lp[i] = (double)out[i] - norm;
}

/* The k best labels of one line: returns how many (0: the line gave no ids), their ids in
 * best_i and scores in best_d (probabilities, or log-probabilities for a log_probs Predictor).
 * `ids`, `hashes` hold at least (tokens + 1) * max(1, word_ngrams) and tokens + 1 items;
 * `scratch` dim + labels floats, `logp` labels doubles; best_* k + 1 items. */
static int64_t top_line(const Predictor *P, const uint8_t *buf, int64_t n, int64_t k, int32_t *ids,
                        int32_t *hashes, float *scratch, double *logp, int32_t *best_i,
                        float *best_p, double *best_d) {
    int64_t nids = 0, nh = 0, i = 0;
    while (i < n) {
        while (i < n && is_space(buf[i]) && buf[i] != 10) i++;
        if (i >= n || buf[i] == 10) break; /* fastText's line ends at a newline */
        int64_t a = i;
        while (i < n && !is_space(buf[i])) i++;
        take_token(P, buf + a, i - a, ids, &nids, hashes, &nh);
    }
    take_token(P, EOS, 4, ids, &nids, hashes, &nh);
    nids = add_ngrams(hashes, nh, P->word_ngrams, P->buckets, P->nwords, ids, nids);
    if (nids == 0) return 0;
    const Model *M = &P->M;
    float *hidden = scratch, *out = scratch + M->dim;
    hidden_of(M, ids, nids, hidden);
    if (P->log_probs) {
        log_softmax_of(M, hidden, out, logp);
    } else {
        softmax_of(M, hidden, out);
    }
    /* The k best by (float) log(p + 1e-5), as fastText's Loss::findKBest and sort_heap (by
     * the exact log-probability for a log_probs Predictor). */
    int64_t kk = k < M->nl ? k : M->nl, have = 0;
    for (int64_t i = 0; i < M->nl; i++) {
        float lp = P->log_probs ? (float)logp[i] : (float)log((double)out[i] + 1e-5);
        if (have == kk && lp < best_p[0]) continue;
        best_p[have] = lp;
        best_i[have] = (int32_t)i;
        have++;
        heap_push(best_p, best_i, have);
        if (have > kk) {
            heap_pop(best_p, best_i, have);
            have--;
        }
    }
    for (int64_t end = have; end > 1; end--) heap_pop(best_p, best_i, end); /* sort_heap */
    if (P->log_probs) {
        for (int64_t i = 0; i < have; i++) best_d[i] = logp[best_i[i]];
        return have;
    }
    for (int64_t i = 0; i < have; i++) { /* fastText's exp(log(p + 1e-5)), clipped to 1 */
        float p = expf(best_p[i]);
        best_d[i] = (double)(p > 1.0f ? 1.0f : p);
    }
    return have;
}

static PyObject *top_tuples(int64_t have, const int32_t *bi, const double *bd) {
    PyObject *labels = PyTuple_New(have), *probs = PyTuple_New(have), *result = NULL;
    if (labels != NULL && probs != NULL) {
        for (int64_t i = 0; i < have; i++) {
            PyTuple_SET_ITEM(labels, i, PyLong_FromLong(bi[i]));
            PyTuple_SET_ITEM(probs, i, PyFloat_FromDouble(bd[i]));
        }
        result = PyTuple_Pack(2, labels, probs);
    }
    Py_XDECREF(labels);
    Py_XDECREF(probs);
    return result;
}

/* The buffers top_line needs for a line of `nbytes` bytes: on the stack for most texts. */
typedef struct {
    int32_t ids_s[4096], hashes_s[2048], bi_s[64];
    float scratch_s[512], bp_s[64];
    double logp_s[64], bd_s[64];
    int32_t *ids, *hashes, *bi;
    float *scratch, *bp;
    double *logp, *bd;
    void *heap[8];
} Work;

static void work_free(Work *W) {
    for (int i = 0; i < 8; i++) free(W->heap[i]);
}

/* 0, or -1 (out of memory, W freed). Tokens <= nbytes / 2 + 2 (with `</s>`). */
static int work_init(Work *W, const Predictor *P, int64_t nbytes, int64_t k) {
    int64_t ntok = nbytes / 2 + 2, span = P->word_ngrams > 1 ? P->word_ngrams : 1;
    int64_t kk = k < P->M.nl ? k : P->M.nl, nscratch = P->M.dim + P->M.nl;
    memset(W->heap, 0, sizeof W->heap);
    W->ids = W->ids_s, W->hashes = W->hashes_s, W->bi = W->bi_s;
    W->scratch = W->scratch_s, W->bp = W->bp_s, W->logp = W->logp_s, W->bd = W->bd_s;
    if (ntok * span > 4096) W->ids = W->heap[0] = malloc((size_t)(ntok * span) * 4);
    if (ntok > 2048) W->hashes = W->heap[1] = malloc((size_t)ntok * 4);
    if (nscratch > 512) W->scratch = W->heap[2] = malloc((size_t)nscratch * 4);
    if (kk + 1 > 64) {
        W->bi = W->heap[3] = malloc((size_t)(kk + 1) * 4);
        W->bp = W->heap[4] = malloc((size_t)(kk + 1) * 4);
        W->bd = W->heap[5] = malloc((size_t)(kk + 1) * 8);
    }
    if (P->M.nl > 64) W->logp = W->heap[6] = malloc((size_t)P->M.nl * 8);
    if (W->ids && W->hashes && W->scratch && W->bi && W->bp && W->bd && W->logp) return 0;
    work_free(W);
    PyErr_NoMemory();
    return -1;
}

static int64_t top_work(const Predictor *P, const uint8_t *buf, int64_t n, int64_t k, Work *W) {
    return top_line(P, buf, n, k, W->ids, W->hashes, W->scratch, W->logp, W->bi, W->bp, W->bd);
}

static int check_top(const Predictor *self, long long k, int normalizer) {
    if (!self->held || (normalizer && !self->norm_held)) {
        PyErr_SetString(PyExc_RuntimeError, "Predictor has no model or no normalizer");
        return -1;
    }
    if (k < 1) {
        PyErr_SetString(PyExc_ValueError, "k must be at least 1");
        return -1;
    }
    return 0;
}

/* top(text: UTF-8 bytes of one line, k) -> ((label index, ...), (probability, ...)) */
static PyObject *Predictor_top(Predictor *self, PyObject *args) {
    Py_buffer text;
    long long k;
    Work W;
    if (!PyArg_ParseTuple(args, "y*L", &text, &k)) return NULL;
    if (check_top(self, k, 0) < 0 || work_init(&W, self, text.len, k) < 0) {
        PyBuffer_Release(&text);
        return NULL;
    }
    int64_t have;
    if (text.len > 4096) {
        Py_BEGIN_ALLOW_THREADS
        have = top_work(self, (const uint8_t *)text.buf, text.len, k, &W);
        Py_END_ALLOW_THREADS
    } else {
        have = top_work(self, (const uint8_t *)text.buf, text.len, k, &W);
    }
    PyBuffer_Release(&text);
    PyObject *result = top_tuples(have, W.bi, W.bd);
    work_free(&W);
    return result;
}

/* set_normalizer(normalizer, flags u8, lower u32, opts u8): the C entry of the text
 * normalization (the capsule sentiment.text_kernel.normalizer(), its name checked: the one
 * sentiment/_text.c gives it) and the tables it reads. */
static PyObject *Predictor_set_normalizer(Predictor *self, PyObject *args) {
    PyObject *capsule;
    PyObject *o[3];
    if (!PyArg_ParseTuple(args, "OOOO", &capsule, &o[0], &o[1], &o[2])) return NULL;
    if (!PyCapsule_IsValid(capsule, "sentiment._text.normalize_into")) {
        PyErr_SetString(PyExc_TypeError,
                        "set_normalizer: not the capsule sentiment._text.normalize_into "
                        "(sentiment.text_kernel.normalizer())");
        return NULL;
    }
    void *entry = PyCapsule_GetPointer(capsule, "sentiment._text.normalize_into");
    if (entry == NULL) return NULL;
    Buf b[3] = {0};
    if (get_buf(o[0], &b[0], 0, 1, "flags") < 0 || get_buf(o[1], &b[1], 0, 4, "lower") < 0 ||
        get_buf(o[2], &b[2], 0, 1, "opts") < 0) {
        release(b, 3);
        return NULL;
    }
    if (self->norm_held) {
        for (int i = 0; i < 3; i++) PyBuffer_Release(&self->norm_views[i]);
    }
    for (int i = 0; i < 3; i++) self->norm_views[i] = b[i].view;
    self->norm_held = 1;
    self->normalize = (normalize_fn)entry;
    Py_RETURN_NONE;
}

/* top_text(text: str, k) -> ((label index, ...), (probability, ...)), or None when the text
 * needs the Python path of the normalization (the kernel's FALLBACK, or a str that is not
 * valid UTF-8): normalize, then `top`, with no Python object in between. */
static PyObject *Predictor_top_text(Predictor *self, PyObject *args) {
    PyObject *text;
    long long k;
    if (!PyArg_ParseTuple(args, "UL", &text, &k) || check_top(self, k, 1) < 0) return NULL;
    Py_ssize_t n;
    const char *utf8 = PyUnicode_AsUTF8AndSize(text, &n);
    if (utf8 == NULL) { /* lone surrogates: the Python path encodes them its own way */
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    /* room for the normalized text: numbers standing alone grow a text at most 4x ("1-1"
     * is "_num_ - _num_"); were it ever longer, the kernel says so and Python does it */
    int64_t cap = 4 * (int64_t)n + 64;
    uint8_t stack_out[4096], *out = stack_out, *heap_out = NULL;
    Work W;
    if (cap > 4096 && (out = heap_out = malloc((size_t)cap)) == NULL) return PyErr_NoMemory();
    if (work_init(&W, self, cap, k) < 0) {
        free(heap_out);
        return NULL;
    }
    const Py_buffer *v = self->norm_views;
    int64_t len = self->normalize((const uint8_t *)utf8, (int64_t)n, (const uint8_t *)v[0].buf,
                                  v[0].len, (const uint32_t *)v[1].buf, v[1].len / 4,
                                  (const uint8_t *)v[2].buf, v[2].len, out, cap);
    PyObject *result =
        len < 0 ? Py_NewRef(Py_None) : top_tuples(top_work(self, out, len, k, &W), W.bi, W.bd);
    work_free(&W);
    free(heap_out);
    return result;
}

/* top_text(text, labels) for each of `texts`, its probabilities written into its row of the
 * float64 (len(texts), labels) buffer `o_out` at their label's column (the other cells
 * untouched). `k` > 0: returns a list with each text's top_text(text, k) too (None where the
 * text needs the Python path of the normalization); else the list of those rows alone. One call
 * for a batch: the four answers score each review and its sentences (25 reviews and ~70
 * sentences a request), where a Python loop of normalize + top cost ~2 us a string more than
 * the prediction itself. */
static PyObject *proba_rows(Predictor *self, PyObject *texts, PyObject *o_out, long long k) {
    if (check_top(self, 1, 1) < 0) return NULL;
    const int64_t nl = self->M.nl, n = PyList_GET_SIZE(texts);
    Buf b = {0};
    if (get_buf(o_out, &b, 1, 8, "out") < 0) return NULL;
    if (COUNT(b, double) != n * nl) {
        release(&b, 1);
        return PyErr_Format(PyExc_ValueError, "proba_texts: out has %lld cells for %lld x %lld",
                            (long long)COUNT(b, double), (long long)n, (long long)nl);
    }
    double *out = DATA(b, double);
    PyObject *result = PyList_New(0);
    uint8_t stack_norm[4096];
    Work W;
    const Py_buffer *v = self->norm_views;
    for (int64_t r = 0; result != NULL && r < n; r++) {
        PyObject *text = PyList_GET_ITEM(texts, r), *item = NULL;
        Py_ssize_t len;
        const char *utf8 = PyUnicode_Check(text) ? PyUnicode_AsUTF8AndSize(text, &len) : NULL;
        int64_t normalized = -1;
        if (utf8 == NULL) {
            if (!PyUnicode_Check(text)) {
                PyErr_SetString(PyExc_TypeError, "proba_texts: texts must be str");
                Py_CLEAR(result);
                break;
            }
            PyErr_Clear(); /* lone surrogates: the Python path encodes them its own way */
        } else {
            int64_t cap = 4 * (int64_t)len + 64; /* as top_text */
            uint8_t *norm = stack_norm, *heap_norm = NULL;
            if ((cap > 4096 && (norm = heap_norm = malloc((size_t)cap)) == NULL) ||
                work_init(&W, self, cap, nl > k ? nl : k) < 0) {
                free(heap_norm);
                if (!PyErr_Occurred()) PyErr_NoMemory();
                Py_CLEAR(result);
                break;
            }
            normalized = self->normalize((const uint8_t *)utf8, (int64_t)len,
                                         (const uint8_t *)v[0].buf, v[0].len,
                                         (const uint32_t *)v[1].buf, v[1].len / 4,
                                         (const uint8_t *)v[2].buf, v[2].len, norm, cap);
            if (normalized >= 0) {
                int64_t have = top_work(self, norm, normalized, nl, &W);
                for (int64_t j = 0; j < have; j++) out[r * nl + W.bi[j]] = W.bd[j];
                if (k > 0) { /* fastText's k best: the same run when k covers every label */
                    if (k < nl) have = top_work(self, norm, normalized, k, &W);
                    item = top_tuples(have, W.bi, W.bd);
                }
            }
            work_free(&W);
            free(heap_norm);
        }
        if (k > 0 && normalized >= 0) {
            if (item == NULL || PyList_Append(result, item) < 0) Py_CLEAR(result);
            Py_XDECREF(item);
        } else if (k > 0 || normalized < 0) {
            item = normalized < 0 && k <= 0 ? PyLong_FromLongLong(r) : Py_NewRef(Py_None);
            if (item == NULL || PyList_Append(result, item) < 0) Py_CLEAR(result);
            Py_XDECREF(item);
        }
    }
    release(&b, 1);
    return result;
}

/* proba_texts(texts: list[str], out) -> [row, ...]: see proba_rows (the rows listed need the
 * Python path of the normalization). */
static PyObject *Predictor_proba_texts(Predictor *self, PyObject *args) {
    PyObject *texts, *o_out;
    if (!PyArg_ParseTuple(args, "O!O", &PyList_Type, &texts, &o_out)) return NULL;
    return proba_rows(self, texts, o_out, 0);
}

/* set_splitter(splitter): the C entry of sentiment.answers' sentence splitter (the capsule
 * sentiment._sentences.splitter(), its name checked). */
static PyObject *Predictor_set_splitter(Predictor *self, PyObject *capsule) {
    if (!PyCapsule_IsValid(capsule, "sentiment._sentences.split_text")) {
        PyErr_SetString(PyExc_TypeError, "set_splitter: not the capsule "
                                         "sentiment._sentences.split_text (splitter())");
        return NULL;
    }
    void *entry = PyCapsule_GetPointer(capsule, "sentiment._sentences.split_text");
    if (entry == NULL) return NULL;
    self->split = (split_fn)entry;
    Py_RETURN_NONE;
}

/* How one text's sentences lean both ways (sentiment.answers' mixed measure) from this
 * Predictor's own probabilities: each sentence normalized and predicted (top_text with every
 * label), its label probabilities summed per side in label order (`where`, as in answers) and
 * divided by their total ((pos + neg) + neu: `polarity`'s floats),
 * lean = pos - neg; the measure is min(max lean, max -lean) / margin clipped to [0, 1], 0 for a
 * text of one sentence. The sentences are read in order and no further once the lean has
 * reached `margin` both ways: the measure is 1 whatever the rest say (25 reviews of
 * benchmarks/api: 34 of their 69 sentences scored). Returns 0 and the measure in *both, 1 when
 * the text needs the Python path (a sentence the kernel leaves to it), -1 on error. */
static int lean_of(Predictor *self, PyObject *text, const uint8_t *where, double margin,
                   double *row, double *both) {
    PyObject *pieces = self->split(text);
    if (pieces == NULL) return -1;
    const Py_ssize_t m = PyList_GET_SIZE(pieces);
    const int64_t nl = self->M.nl;
    const Py_buffer *v = self->norm_views;
    double hi = -INFINITY, lo = -INFINITY;
    int status = 0;
    for (Py_ssize_t s = 0; m > 1 && s < m; s++) {
        Py_ssize_t len;
        const char *utf8 = PyUnicode_AsUTF8AndSize(PyList_GET_ITEM(pieces, s), &len);
        if (utf8 == NULL) { /* lone surrogates: the Python path encodes them its own way */
            PyErr_Clear();
            status = 1;
            break;
        }
        int64_t cap = 4 * (int64_t)len + 64; /* as top_text */
        uint8_t stack_norm[4096], *norm = stack_norm, *heap_norm = NULL;
        Work W;
        if ((cap > 4096 && (norm = heap_norm = malloc((size_t)cap)) == NULL) ||
            work_init(&W, self, cap, nl) < 0) {
            free(heap_norm);
            if (!PyErr_Occurred()) PyErr_NoMemory();
            status = -1;
            break;
        }
        int64_t normalized = self->normalize(
            (const uint8_t *)utf8, (int64_t)len, (const uint8_t *)v[0].buf, v[0].len,
            (const uint32_t *)v[1].buf, v[1].len / 4, (const uint8_t *)v[2].buf, v[2].len, norm,
            cap);
        if (normalized >= 0) {
            for (int64_t j = 0; j < nl; j++) row[j] = 0.0;
            int64_t have = top_work(self, norm, normalized, nl, &W);
            for (int64_t j = 0; j < have; j++) row[W.bi[j]] = W.bd[j];
        }
        work_free(&W);
        free(heap_norm);
        if (normalized < 0) {
            status = 1;
            break;
        }
        double side[3] = {0.0, 0.0, 0.0};
        for (int64_t j = 0; j < nl; j++) side[where[j]] += row[j];
        const double total = (side[0] + side[1]) + side[2];
        const double lean = total > 0 ? side[0] / total - side[1] / total : side[0] - side[1];
        hi = lean > hi ? lean : hi;
        lo = -lean > lo ? -lean : lo;
        if (hi >= margin && lo >= margin) break; /* the measure is 1 */
    }
    if (status == 0 && m > 1) {
        const double opposed = (hi < lo ? hi : lo) / margin;
        *both = opposed < 0.0 ? 0.0 : opposed > 1.0 ? 1.0 : opposed;
    } else if (status == 0) {
        *both = 0.0;
    }
    Py_DECREF(pieces);
    return status;
}

/* answers(texts: list[str], probs, where: bytes, power, floor, margin, weights, scores) ->
 * [answer or None, ...]: sentiment.answers' four scores and answer of each text from its
 * probabilities (float64 (n, labels), in label order: this Predictor's own, as top_proba_texts
 * writes them), the same floats as its numpy functions (polarity, _neutral_side, _combined,
 * decide) in one pass with no Python object in between (25 reviews: ~25 us of numpy calls):
 * each row's label probabilities summed per side (`where`: 0 positive, 1 negative, 2 neutral) and
 * divided by their total;
 * a model with no neutral label takes the ambivalence (2 min(pos, neg))^power from its polar
 * sides; where the neutral side is above `floor`, lean_of splits it into neutral and mixed; the
 * scores (positive, negative, neutral, mixed) go to the float64 (n, 4) `scores`, the answer is
 * the side of highest weighted score (`weights`: 3 float64; the first of equal ones), mixed
 * over neutral where its score is higher. None for a text that needs the Python path (a
 * sentence the kernel leaves to it; its row of `scores` untouched): the caller answers it. */
static PyObject *Predictor_answers(Predictor *self, PyObject *args) {
    PyObject *texts, *o_probs, *o_weights, *o_scores;
    Py_buffer where;
    double power, floor_, margin;
    if (!PyArg_ParseTuple(args, "O!Oy*dddOO", &PyList_Type, &texts, &o_probs, &where, &power,
                          &floor_, &margin, &o_weights, &o_scores))
        return NULL;
    const int64_t nl = self->M.nl, n = PyList_GET_SIZE(texts);
    PyObject *result = NULL;
    Buf b[3] = {0};
    double row_s[64], *row = row_s, *row_heap = NULL;
    if (check_top(self, 1, 1) < 0) goto done;
    if (self->split == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "answers: no sentence splitter (call set_splitter)");
        goto done;
    }
    const uint8_t *sides = (const uint8_t *)where.buf;
    int neutral = 0;
    if (where.len != nl) {
        PyErr_Format(PyExc_ValueError, "answers: %lld sides for %lld labels",
                     (long long)where.len, (long long)nl);
        goto done;
    }
    for (int64_t j = 0; j < nl; j++) {
        if (sides[j] > 2) {
            PyErr_SetString(PyExc_ValueError, "answers: a side is 0, 1 or 2");
            goto done;
        }
        neutral |= sides[j] == 2;
    }
    if (!(margin > 0)) {
        PyErr_SetString(PyExc_ValueError, "answers: margin must be above 0");
        goto done;
    }
    if (get_buf(o_probs, &b[0], 0, 8, "probs") < 0 || get_buf(o_weights, &b[1], 0, 8, "weights") < 0 ||
        get_buf(o_scores, &b[2], 1, 8, "scores") < 0)
        goto done;
    if (COUNT(b[0], double) != n * nl || COUNT(b[1], double) != 3 || COUNT(b[2], double) != n * 4) {
        PyErr_Format(PyExc_ValueError,
                     "answers: probs of %lld x %lld, 3 weights and scores of %lld x 4 cells, "
                     "for %lld texts",
                     (long long)n, (long long)nl, (long long)n, (long long)n);
        goto done;
    }
    if (nl > 64 && (row = row_heap = malloc((size_t)nl * sizeof(double))) == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    const double *probs = DATA(b[0], double), *w = DATA(b[1], double);
    double *scores = DATA(b[2], double);
    PyObject *decided = PyList_New(n);
    if (decided == NULL) goto done;
    for (int64_t r = 0; r < n; r++) {
        const double *p = probs + r * nl;
        double side[3] = {0.0, 0.0, 0.0};
        for (int64_t j = 0; j < nl; j++) side[sides[j]] += p[j];
        const double total = (side[0] + side[1]) + side[2], t = total > 0 ? total : 1.0;
        const double pos = side[0] / t, neg = side[1] / t, neu = side[2] / t;
        double shared = 0.0;
        if (!neutral) {
            const double a = 2 * (neg < pos ? neg : pos); /* numpy's minimum of two floats */
            shared = power == 2.0 ? a * a : pow(a, power); /* numpy squares for ** 2.0 */
        }
        const double neutral_side = neu + shared;
        double both = 0.0;
        if (neutral_side > floor_) {
            PyObject *text = PyList_GET_ITEM(texts, r);
            if (!PyUnicode_Check(text)) {
                PyErr_SetString(PyExc_TypeError, "answers: texts must be str");
                Py_CLEAR(decided);
                goto done;
            }
            int status = lean_of(self, text, sides, margin, row, &both);
            if (status < 0) {
                Py_CLEAR(decided);
                goto done;
            }
            if (status > 0) { /* left to the Python path: None, its scores untouched */
                PyList_SET_ITEM(decided, r, Py_NewRef(Py_None));
                continue;
            }
        }
        double *out = scores + r * 4;
        out[0] = pos - shared / 2;
        out[1] = neg - shared / 2;
        out[2] = neutral_side * (1 - both);
        out[3] = neutral_side * both;
        const double weighted[3] = {out[0] * w[0], out[1] * w[1], (out[2] + out[3]) * w[2]};
        int best = 0;
        for (int i = 1; i < 3; i++) best = weighted[i] > weighted[best] ? i : best;
        if (best == 2 && out[3] > out[2]) best = 3;
        PyObject *answer = PyLong_FromLong(best);
        if (answer == NULL) {
            Py_CLEAR(decided);
            goto done;
        }
        PyList_SET_ITEM(decided, r, answer);
    }
    result = decided;
done:
    free(row_heap);
    release(b, 3);
    PyBuffer_Release(&where);
    return result;
}

/* top_proba_texts(texts: list[str], out, k) -> [(label ids, probabilities) or None, ...]:
 * see proba_rows. */
static PyObject *Predictor_top_proba_texts(Predictor *self, PyObject *args) {
    PyObject *texts, *o_out;
    long long k;
    if (!PyArg_ParseTuple(args, "O!OL", &PyList_Type, &texts, &o_out, &k)) return NULL;
    if (check_top(self, k, 1) < 0) return NULL;
    return proba_rows(self, texts, o_out, k);
}

static PyMethodDef Predictor_methods[] = {
    {"proba_texts", (PyCFunction)Predictor_proba_texts, METH_VARARGS,
     "proba_texts(texts, out) -> [row, ...]: top_text(text, labels) of each text written into "
     "its row of the float64 (len(texts), labels) buffer `out`; the rows listed need the Python "
     "path of the normalization"},
    {"top_proba_texts", (PyCFunction)Predictor_top_proba_texts, METH_VARARGS,
     "top_proba_texts(texts, out, k) -> [(label ids, probabilities) or None, ...]: "
     "proba_texts, and top_text(text, k) of each text (None: the Python path)"},
    {"answers", (PyCFunction)Predictor_answers, METH_VARARGS,
     "answers(texts, probs, where, power, floor, margin, weights, scores) -> [answer or None, "
     "...]: sentiment.answers' four scores (into `scores`) and answer of each text from its "
     "probabilities; None for a text that needs the Python path"},
    {"set_splitter", (PyCFunction)Predictor_set_splitter, METH_O,
     "set_splitter(splitter): the sentence splitter answers applies"},
    {"set_normalizer", (PyCFunction)Predictor_set_normalizer, METH_VARARGS,
     "set_normalizer(normalizer, flags, lower, opts): the normalization top_text applies"},
    {"top_text", (PyCFunction)Predictor_top_text, METH_VARARGS,
     "top_text(text, k) -> ((label index, ...), (probability, ...)), or None when the text "
     "needs the Python path of the normalization"},
    {"top", (PyCFunction)Predictor_top, METH_VARARGS,
     "top(text, k) -> ((label index, ...), (probability, ...)): fastText's predict for one "
     "line of UTF-8 (no newline), k best first"},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PredictorType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "sentiment.engine._core.Predictor",
    .tp_basicsize = sizeof(Predictor),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Predictor(wi, wo, dim, words, nwords, word_ngrams, buckets[, log_probs]): "
              "fastText's supervised predict over a model's matrices, reporting probabilities "
              "(fastText's p + 1e-5, clipped to 1) or, with log_probs, exact log-probabilities "
              "(see _core.c)",
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Predictor_init,
    .tp_dealloc = (destructor)Predictor_dealloc,
    .tp_methods = Predictor_methods,
};

static PyMethodDef methods[] = {
    {"count_tokens", count_tokens, METH_VARARGS, "count_tokens(buf) -> (tokens, lines)"},
    {"scan", scan, METH_VARARGS, "scan(buf, starts, lengths, h32, h64, line_of) -> tokens written"},
    {"encode", encode, METH_VARARGS,
     "encode(tok_id, tok_label, h32, line_of, nwords, word_ngrams, buckets, line_ptr, ids, "
     "label_ptr, labels, ntok) -> (ids written, labels written)"},
    {"train_lines", train_lines, METH_VARARGS,
     "train_lines(wi, wo, dim, line_ptr, ids, label_ptr, labels, ntok, bounds, lr0, "
     "tokens_before, tokens_total, seed) -> (loss sum, examples, tokens)"},
    {"count_correct", count_correct, METH_VARARGS,
     "count_correct(wi, wo, dim, line_ptr, ids, label_ptr, labels, threads) -> (correct, counted)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sentiment.engine._core",
    "The training engine's compiled core (see _core.c).", -1, methods,
};

PyMODINIT_FUNC PyInit__core(void) {
    if (PyType_Ready(&PredictorType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
    if (PyModule_AddObjectRef(m, "Predictor", (PyObject *)&PredictorType) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
