/* The text normalization and the prepare job's row cleaning, compiled (sentiment.text_kernel
 * is its Python face; sentiment.text documents the rules; tests/text_reference.py has them as
 * the regular expressions they are specified as, and the tests check this code against them).
 *
 * Why C: the rules run for every review prepared and every text served. They were numba
 * code; numba's runtime costs ~100 MB resident in every process that loads it (llvmlite's
 * pages and the JIT's start-up compile), which every server worker and Spark Python worker
 * paid, and a JIT compile on every fresh checkout. The engine's core had already moved to C
 * for the same reason (issue 4). The character classes are still Python's own: `flags` and
 * `lower` are tables built in Python from its regex engine and `str.lower`.
 *
 * A text is decoded to code points, then: prelude (literal \n and \r to line breaks, which end
 * a negation scope and are otherwise whitespace; literal \t and invisible characters to spaces;
 * lower case), URLs -> " _url_ ", numbers -> " _num_ ", tokens joined by single spaces as
 * UTF-8. A text needing what this code does not do (an HTML entity, a lower case that is not
 * one character, bytes that are not strict UTF-8, a CSV line that is not three plain quoted
 * fields) is reported as FALLBACK and done in Python by the same rules.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

enum { WORD = 1, DIGIT = 2, SPACE = 4, INVISIBLE = 8, SPECIAL_LOWER = 16 };
enum { KEPT = 0, FALLBACK = 1, REJECT_LABEL = 2, DROP_POLICY = 3, DROP_SHORT = 4 };
#define NCODES 0x110000

typedef struct {
    const uint8_t *flags;
    const uint32_t *lower;
    /* unescape, literal_newlines, lowercase, urls, numbers, split, title, then the token rules:
     * negation, emoticons, elongations (OPT_* below) */
    const uint8_t *opts;
} Rules;

enum { OPT_NEGATION = 7, OPT_EMOTICONS = 8, OPT_ELONGATIONS = 9 };
#define NOPTS 10

/* --- growable buffers ------------------------------------------------------------------------ */

typedef struct {
    uint32_t *p;
    int64_t cap;
} Cps;

typedef struct {
    uint8_t *p;
    int64_t cap;
} Bytes;

static int grow_cps(Cps *b, int64_t need) {
    if (need <= b->cap) return 0;
    int64_t cap = need > 2 * b->cap ? need : 2 * b->cap;
    uint32_t *p = (uint32_t *)realloc(b->p, (size_t)cap * sizeof(uint32_t));
    if (p == NULL) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

static int grow_bytes(Bytes *b, int64_t need) {
    if (need <= b->cap) return 0;
    int64_t cap = need > 2 * b->cap ? need : 2 * b->cap;
    uint8_t *p = (uint8_t *)realloc(b->p, (size_t)cap);
    if (p == NULL) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

/* --- the rules ------------------------------------------------------------------------------- */

static const uint32_t URL_TOKEN[] = {' ', '_', 'u', 'r', 'l', '_', ' '};
static const uint32_t NUM_TOKEN[] = {' ', '_', 'n', 'u', 'm', '_', ' '};
static const uint32_t LABEL_PREFIX[] = {'_', '_', 'l', 'a', 'b', 'e', 'l', '_', '_'};

static inline int is_eye(uint32_t c) { return c == ':' || c == ';' || c == '='; }
static inline int is_nose(uint32_t c) { return c == '-' || c == 'o' || c == '*' || c == '\''; }
static inline int is_mouth(uint32_t c) {
    return c == ')' || c == ']' || c == '(' || c == '[' || c == 'd' || c == 'p' || c == '/' ||
           c == '\\' || c == '|' || c == '@' || c == '3';
}
static inline int is_mouth_first(uint32_t c) {
    return c == ')' || c == ']' || c == '(' || c == '[' || c == '/' || c == '\\';
}
static inline int is_joiner(uint32_t c) { return c == '.' || c == ',' || c == ':'; }

/* Strict UTF-8 src[a:b] as code points at dst[o..]; the new end, or -1 when Python must decide.
 * In text mode the bytes came from a Python str ("surrogatepass"), so encoded surrogates are
 * characters; in CSV mode they and U+FFFD are what Python's decoding would reject. */
static int64_t decode(const uint8_t *src, int64_t a, int64_t b, int text_mode, uint32_t *dst,
                      int64_t o) {
    int64_t i = a;
    while (i < b) {
        uint32_t c = src[i];
        if (c < 0x80) {
            dst[o++] = c;
            i++;
            continue;
        }
        uint32_t lo = 0x80, hi = 0xBF, cp;
        int need;
        if (0xC2 <= c && c <= 0xDF) {
            need = 1;
            cp = c & 0x1F;
        } else if (0xE0 <= c && c <= 0xEF) {
            need = 2;
            cp = c & 0x0F;
            if (c == 0xE0) lo = 0xA0;
            else if (c == 0xED && !text_mode) hi = 0x9F;
        } else if (0xF0 <= c && c <= 0xF4) {
            need = 3;
            cp = c & 0x07;
            if (c == 0xF0) lo = 0x90;
            else if (c == 0xF4) hi = 0x8F;
        } else {
            return -1;
        }
        if (i + need >= b) return -1;
        uint32_t c1 = src[i + 1];
        if (c1 < lo || c1 > hi) return -1;
        cp = (cp << 6) | (c1 & 0x3F);
        for (int k = 2; k <= need; k++) {
            uint32_t ck = src[i + k];
            if (ck < 0x80 || ck > 0xBF) return -1;
            cp = (cp << 6) | (ck & 0x3F);
        }
        if (cp == 0xFFFD && !text_mode) return -1;
        dst[o++] = cp;
        i += need + 1;
    }
    return o;
}

/* Literal \n and \r to '\n', literal \t and invisible characters to spaces, lower case; -1
 * when the text needs Python (an `&` to unescape first, a lower case that is not one character).
 * Line breaks (`\n`, `\r`: not INVISIBLE) are kept: they end a negation scope (`tokens`), and
 * are whitespace to every other rule, so they are never output. */
static int64_t prelude(const uint32_t *src, int64_t n, const Rules *R, uint32_t *dst) {
    int unescape = R->opts[0], literal = R->opts[1], lowercase = R->opts[2];
    int64_t o = 0, i = 0;
    while (i < n) {
        uint32_t c = src[i];
        uint8_t f = R->flags[c];
        if ((unescape && c == '&') || (lowercase && (f & SPECIAL_LOWER))) return -1;
        /* Marked rare: in this form the loop runs as fast as when it had one branch turning
         * all three pairs to spaces (4,486 shared reviews, 300 passes alternated: 0.97-1.00x;
         * one `d == 't' ? ' ' : '\n'` branch, unmarked: 1.07-1.09x). */
        if (__builtin_expect(literal && c == '\\' && i + 1 < n, 0)) {
            uint32_t d = src[i + 1];
            if (d == 'n' || d == 'r') {
                dst[o++] = '\n';
                i += 2;
                continue;
            }
            if (d == 't') {
                dst[o++] = ' ';
                i += 2;
                continue;
            }
        }
        if (f & INVISIBLE) dst[o] = ' ';
        else if (lowercase) dst[o] = R->lower[c];
        else dst[o] = c;
        o++;
        i++;
    }
    return o;
}

/* Where a URL `(?:https?://|www\.)\S+` (ASCII case-insensitive) starting at src[i] ends, or -1. */
static int64_t url_end(const uint32_t *src, int64_t n, int64_t i, const Rules *R) {
    int64_t p = -1; /* end of the scheme/`www.` prefix when one starts here */
    uint32_t low = src[i] | 32;
    if (low == 'h' && i + 6 < n) {
        if ((src[i + 1] | 32) == 't' && (src[i + 2] | 32) == 't' && (src[i + 3] | 32) == 'p') {
            int64_t j = i + 4;
            if ((src[j] | 32) == 's') j++;
            if (j + 2 < n && src[j] == ':' && src[j + 1] == '/' && src[j + 2] == '/') p = j + 3;
        }
    } else if (low == 'w' && i + 4 < n) {
        if ((src[i + 1] | 32) == 'w' && (src[i + 2] | 32) == 'w' && src[i + 3] == '.') p = i + 4;
    }
    if (p < 0) return -1;
    int64_t e = p;
    while (e < n && !(R->flags[src[e]] & SPACE)) e++;
    return e > p ? e : -1;
}

/* Where a number `\d(?<![<\w]\d)\d*(?:[.,:]\d+)*\b` starting at src[i] ends, or -1. The match
 * is a chain of digit runs joined by single `.`, `,` or `:`; the regex takes the longest chain
 * whose end is a word boundary: the whole chain when a non-word character (or the end)
 * follows it, else the chain without its last run (if it has two). */
static int64_t number_end(const uint32_t *src, int64_t n, int64_t i, const Rules *R) {
    const uint8_t *F = R->flags;
    if (!(F[src[i]] & DIGIT) || (i > 0 && ((F[src[i - 1]] & WORD) || src[i - 1] == '<'))) {
        return -1;
    }
    int64_t j = i + 1;
    while (j < n && (F[src[j]] & DIGIT)) j++;
    int64_t before = -1; /* end of the chain without its last run */
    while (j + 1 < n && is_joiner(src[j]) && (F[src[j + 1]] & DIGIT)) {
        before = j;
        j += 2;
        while (j < n && (F[src[j]] & DIGIT)) j++;
    }
    return (j == n || !(F[src[j]] & WORD)) ? j : before;
}

typedef int64_t (*match_fn)(const uint32_t *src, int64_t n, int64_t i, const Rules *R);

/* src[:n] to dst with every match (from its start to `match`'s end) replaced by `token` (7
 * code points, spaces around): the new length. dst holds at least 7n. */
static int64_t replace(const uint32_t *src, int64_t n, const Rules *R, match_fn match,
                       const uint32_t *token, uint32_t *dst) {
    int64_t i = 0, o = 0;
    while (i < n) {
        int64_t end = match(src, n, i, R);
        if (end > 0) {
            for (int q = 0; q < 7; q++) dst[o++] = token[q];
            i = end;
        } else {
            dst[o++] = src[i++];
        }
    }
    return o;
}

static int all_mouth(const uint32_t *s, int64_t a, int64_t b, int first) {
    if (a >= b) return 0;
    for (int64_t k = a; k < b; k++) {
        if (!(first ? is_mouth_first(s[k]) : is_mouth(s[k]))) return 0;
    }
    return 1;
}

/* The whole chunk s[a:b] is `[:;=][-o*']?[)\](\[dp/\\|@3]+`, `<3+` or `[)\](\[/\\]+[-o*']?[:;=]` */
static int is_emoticon(const uint32_t *s, int64_t a, int64_t b) {
    if (b - a < 2) return 0;
    uint32_t first = s[a];
    if (is_eye(first)) {
        if (all_mouth(s, a + 1, b, 0)) return 1;
        return is_nose(s[a + 1]) && all_mouth(s, a + 2, b, 0);
    }
    if (first == '<') {
        for (int64_t k = a + 1; k < b; k++) {
            if (s[k] != '3') return 0;
        }
        return 1;
    }
    if (is_eye(s[b - 1])) {
        if (all_mouth(s, a, b - 1, 1)) return 1;
        if (is_nose(s[b - 2]) && all_mouth(s, a, b - 2, 1)) return 1;
    }
    return 0;
}

/* Code point c as UTF-8 (lone surrogates as their 3-byte form: "surrogatepass"). */
static inline int64_t utf8(uint32_t c, uint8_t *dst, int64_t o) {
    if (c < 0x80) {
        dst[o] = (uint8_t)c;
        return o + 1;
    }
    if (c < 0x800) {
        dst[o] = (uint8_t)(0xC0 | (c >> 6));
        dst[o + 1] = (uint8_t)(0x80 | (c & 0x3F));
        return o + 2;
    }
    if (c < 0x10000) {
        dst[o] = (uint8_t)(0xE0 | (c >> 12));
        dst[o + 1] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
        dst[o + 2] = (uint8_t)(0x80 | (c & 0x3F));
        return o + 3;
    }
    dst[o] = (uint8_t)(0xF0 | (c >> 18));
    dst[o + 1] = (uint8_t)(0x80 | ((c >> 12) & 0x3F));
    dst[o + 2] = (uint8_t)(0x80 | ((c >> 6) & 0x3F));
    dst[o + 3] = (uint8_t)(0x80 | (c & 0x3F));
    return o + 4;
}

/* --- the token rules (each off unless its Cleaning switch is on; sentiment.text has why) --- */

/* Emoji that say which side they are on (the rest stay tokens of their own). */
static int emoji_side(uint32_t c) {
    if (c == 0x263A || c == 0x2665 || c == 0x2764 || c == 0x1F44D || c == 0x1F618 ||
        c == 0x1F642 || c == 0x1F929 || c == 0x1F970 || (0x1F600 <= c && c <= 0x1F60E))
        return 1;
    if (c == 0x2639 || c == 0x1F44E || c == 0x1F494 || c == 0x1F612 || c == 0x1F641 ||
        (0x1F61E <= c && c <= 0x1F62D))
        return -1;
    return 0;
}

/* The side of a whole-chunk emoticon s[a:b] (is_emoticon): its mouth, read the way it faces. */
static int emoticon_side(const uint32_t *s, int64_t a, int64_t b) {
    if (s[a] == '<') return 1;
    if (is_eye(s[a])) {
        uint32_t m = s[b - 1];
        return (m == ')' || m == ']' || m == 'd' || m == 'p' || m == '3') ? 1 : -1;
    }
    return (s[a] == '(' || s[a] == '[') ? 1 : -1;
}

static inline int is_bang(uint32_t c) { return c == '!' || c == '?'; }

static inline int is_letter(const uint8_t *F, uint32_t c) {
    return (F[c] & WORD) && !(F[c] & DIGIT) && c != '_';
}

/* `not|no|never|cannot|.+n't` (the token's UTF-8). */
static int is_negator(const uint8_t *t, int64_t n) {
    return (n == 3 && memcmp(t, "not", 3) == 0) || (n == 2 && memcmp(t, "no", 2) == 0) ||
           (n == 5 && memcmp(t, "never", 5) == 0) || (n == 6 && memcmp(t, "cannot", 6) == 0) ||
           (n > 3 && memcmp(t + n - 3, "n't", 3) == 0);
}

static inline int64_t put(const char *s, uint8_t *dst, int64_t o) {
    size_t len = strlen(s);
    memcpy(dst + o, s, len);
    return o + (int64_t)len;
}

/* Bytes of output a code point of input can become, at most: 4 (UTF-8) + 1 (space) with no
 * token rule; with them, an emoji of a side is 10 (" _emo_pos_"); a marked word of k code
 * points at most 1 + 4 + 4k, and it follows a separator (a space: a non-word token would
 * have ended the scope), so at most 9 for its k + 1; an elongated one has k >= 3. */
static inline int64_t bytes_per_code_point(const Rules *R) {
    return (R->opts[OPT_NEGATION] || R->opts[OPT_EMOTICONS] || R->opts[OPT_ELONGATIONS]) ? 10 : 5;
}

/* Tokens (`\w+(?:'\w+)*`, whole-chunk emoticons, with `elongations` runs of `!` and `?`, any
 * other non-space character; or whitespace-separated chunks when not splitting) as UTF-8 from
 * dst[o] on, joined by single spaces; a token starting with `__label__` loses its leading
 * underscores. Then each token, in order: `emoticons` maps emoticons and emoji of a side to
 * `_emo_pos_` / `_emo_neg_`; `elongations` maps a run of `!` and `?` to `!!`, `??` or `?!`,
 * cuts a letter repeated 3+ times to 2 and puts `_elong_` after the token; `negation` prefixes
 * `not_` to each word token after a negator up to the next token that does not start with a
 * word character or the next line break (a negator, or a token already starting `not_`, is left
 * as it is). The new end.
 * dst holds at least o + bytes_per_code_point * n bytes. */
static int64_t tokens(const uint32_t *src, int64_t n, const Rules *R, uint8_t *dst, int64_t o) {
    const uint8_t *F = R->flags;
    int split = R->opts[5];
    int negation = R->opts[OPT_NEGATION];
    int emoticons = R->opts[OPT_EMOTICONS], elongations = R->opts[OPT_ELONGATIONS];
    int negating = 0;
    int64_t i = 0;
    int need_space = 0;
    while (i < n) {
        uint32_t c = src[i];
        if (F[c] & SPACE) {
            if (c == '\n' || c == '\r') negating = 0; /* a line break ends the scope */
            i++;
            continue;
        }
        int64_t j;
        if (!split) {
            j = i + 1;
            while (j < n && !(F[src[j]] & SPACE)) j++;
        } else if (F[c] & WORD) {
            j = i + 1;
            while (j < n && (F[src[j]] & WORD)) j++;
            while (j + 1 < n && src[j] == '\'' && (F[src[j + 1]] & WORD)) {
                j += 2;
                while (j < n && (F[src[j]] & WORD)) j++;
            }
        } else {
            j = i + 1;
            if (i == 0 || (F[src[i - 1]] & SPACE)) {
                int64_t m = i + 1;
                while (m < n && !(F[src[m]] & SPACE)) m++;
                if (is_emoticon(src, i, m)) j = m;
            }
            if (j == i + 1 && elongations && is_bang(c)) {
                while (j < n && is_bang(src[j])) j++;
            }
        }
        if (need_space) dst[o++] = ' ';
        int64_t k = i;
        if (c == '_' && j - i >= 9) {
            int label = 1;
            for (int q = 0; q < 9; q++) {
                if (src[i + q] != LABEL_PREFIX[q]) {
                    label = 0;
                    break;
                }
            }
            if (label) {
                while (src[k] == '_') k++;
            }
        }
        int64_t start = o;
        const char *as = NULL; /* the token's replacement, if a rule gives one */
        if (emoticons) {
            int side = 0;
            if (j - k >= 2 && is_emoticon(src, k, j)) side = emoticon_side(src, k, j);
            else if (j - k == 1) side = emoji_side(src[k]);
            if (side) as = side > 0 ? "_emo_pos_" : "_emo_neg_";
        }
        if (as == NULL && elongations && j - k >= 2 && is_bang(src[k])) {
            int bangs = 0, asks = 0;
            for (int64_t q = k; q < j; q++) {
                bangs += src[q] == '!';
                asks += src[q] == '?';
            }
            if (bangs + asks == j - k) as = asks == 0 ? "!!" : bangs == 0 ? "??" : "?!";
        }
        int elongated = 0;
        if (as != NULL) {
            o = put(as, dst, o);
        } else if (elongations) {
            uint32_t last = 0xFFFFFFFFu;
            int run = 0;
            for (; k < j; k++) {
                uint32_t d = src[k];
                run = d == last ? run + 1 : 1;
                last = d;
                if (run >= 3 && is_letter(F, d)) {
                    elongated = 1;
                    continue;
                }
                o = utf8(d, dst, o);
            }
        } else {
            for (; k < j; k++) o = utf8(src[k], dst, o);
        }
        if (negation) {
            if (!(F[c] & WORD)) {
                negating = 0;
            } else {
                int64_t len = o - start;
                int negator = is_negator(dst + start, len);
                int marked = len >= 4 && memcmp(dst + start, "not_", 4) == 0;
                if (negating && !negator && !marked) {
                    memmove(dst + start + 4, dst + start, (size_t)len);
                    memcpy(dst + start, "not_", 4);
                    o += 4;
                }
                if (negator) negating = 1;
            }
        }
        if (elongated) o = put(" _elong_", dst, o);
        need_space = 1;
        i = j;
    }
    return o;
}

typedef struct {
    Cps a, b;
} Scratch;

/* Code points cps[:n] through the prelude, URLs, numbers and tokens, as UTF-8 at out[o..].
 * The new end; -1 for FALLBACK; -2 out of memory. */
static int64_t pipeline(const uint32_t *cps, int64_t n, const Rules *R, Scratch *S, Bytes *out,
                        int64_t o) {
    if (grow_cps(&S->a, n + 8) < 0) return -2;
    n = prelude(cps, n, R, S->a.p);
    if (n < 0) return -1;
    Cps *a = &S->a, *b = &S->b, *t;
    if (grow_cps(b, 7 * n + 8) < 0) return -2;
    if (R->opts[3]) {
        n = replace(a->p, n, R, url_end, URL_TOKEN, b->p);
        t = a, a = b, b = t;
    }
    if (grow_cps(b, 7 * n + 8) < 0) return -2;
    if (R->opts[4]) {
        n = replace(a->p, n, R, number_end, NUM_TOKEN, b->p);
        t = a, a = b, b = t;
    }
    if (grow_bytes(out, o + bytes_per_code_point(R) * n + 1) < 0) return -2;
    return tokens(a->p, n, R, out->p, o);
}

/* --- Python entries -------------------------------------------------------------------------- */

typedef struct {
    Py_buffer v;
    int held;
} Buf;

static int get(PyObject *obj, Buf *b, Py_ssize_t itemsize, const char *name) {
    if (PyObject_GetBuffer(obj, &b->v, PyBUF_C_CONTIGUOUS) < 0) {
        PyErr_Format(PyExc_TypeError, "%s: expected a C-contiguous array", name);
        return -1;
    }
    b->held = 1;
    if (b->v.len % itemsize != 0) {
        PyErr_Format(PyExc_ValueError, "%s: not a whole number of %zd-byte items", name, itemsize);
        return -1;
    }
    return 0;
}

static void release(Buf *b, int n) {
    for (int i = 0; i < n; i++) {
        if (b[i].held) PyBuffer_Release(&b[i].v);
        b[i].held = 0;
    }
}

/* flags (u8), lower (u32), opts (u8, NOPTS) -> Rules, checked. */
static int get_rules(PyObject **o, Buf *b, Rules *R) {
    if (get(o[0], &b[0], 1, "flags") < 0 || get(o[1], &b[1], 4, "lower") < 0 ||
        get(o[2], &b[2], 1, "opts") < 0)
        return -1;
    if (b[0].v.len != NCODES || b[1].v.len != 4 * NCODES || b[2].v.len < NOPTS) {
        PyErr_SetString(PyExc_ValueError, "the rule tables must cover every code point");
        return -1;
    }
    R->flags = (const uint8_t *)b[0].v.buf;
    R->lower = (const uint32_t *)b[1].v.buf;
    R->opts = (const uint8_t *)b[2].v.buf;
    return 0;
}

/* One text's UTF-8 normalized into `out` (grown as needed): its length; -1 FALLBACK; -2 out
 * of memory. */
static int64_t normalize_bytes(const uint8_t *data, int64_t n, const Rules *R, Bytes *out) {
    Cps cps = {NULL, 0};
    Scratch S = {{NULL, 0}, {NULL, 0}};
    int64_t result = -2;
    if (grow_cps(&cps, n + 1) == 0) {
        int64_t m = decode(data, 0, n, 1, cps.p, 0);
        result = m < 0 ? -1 : pipeline(cps.p, m, R, &S, out, 0);
    }
    free(cps.p);
    free(S.a.p);
    free(S.b.p);
    return result;
}

/* The C entry the engine's Predictor calls (handed over in a capsule: normalizer()). */
static int64_t normalize_into(const uint8_t *data, int64_t n, const uint8_t *flags,
                              int64_t nflags, const uint32_t *lower, int64_t nlower,
                              const uint8_t *opts, int64_t nopts, uint8_t *out, int64_t cap) {
    if (nflags != NCODES || nlower != NCODES || nopts < NOPTS) return -1;
    Rules R = {flags, lower, opts};
    Bytes o = {NULL, 0};
    int64_t len = normalize_bytes(data, n, &R, &o);
    if (len > cap) len = -2;
    if (len > 0) memcpy(out, o.p, (size_t)len);
    free(o.p);
    return len;
}

/* A capsule and not an integer: the name says what the pointer is, and the engine checks it
 * (PyCapsule_GetPointer), so nothing but this entry can be called through it. The pointer is to
 * this extension's code, which CPython never unloads. */
#define NORMALIZER_CAPSULE "sentiment._text.normalize_into"

static PyObject *py_normalizer(PyObject *self, PyObject *noargs) {
    return PyCapsule_New((void *)&normalize_into, NORMALIZER_CAPSULE, NULL);
}

/* normalize_one(data, flags, lower, opts) -> normalized UTF-8 bytes, or None (FALLBACK) */
static PyObject *py_normalize_one(PyObject *self, PyObject *args) {
    PyObject *o[4];
    if (!PyArg_ParseTuple(args, "OOOO", &o[0], &o[1], &o[2], &o[3])) return NULL;
    Buf b[4] = {0};
    Rules R;
    PyObject *result = NULL;
    if (get(o[0], &b[0], 1, "data") < 0 || get_rules(o + 1, b + 1, &R) < 0) goto done;
    const uint8_t *data = (const uint8_t *)b[0].v.buf;
    int64_t n = b[0].v.len, end;
    Bytes out = {NULL, 0};
    Py_BEGIN_ALLOW_THREADS
    end = normalize_bytes(data, n, &R, &out);
    Py_END_ALLOW_THREADS
    if (end == -2) PyErr_NoMemory();
    else if (end == -1) result = Py_NewRef(Py_None);
    else result = PyBytes_FromStringAndSize((const char *)out.p, end);
    free(out.p);
done:
    release(b, 4);
    return result;
}

/* normalize_utf8(data, offsets i64, flags, lower, opts) -> (texts as UTF-8 joined by "\n",
 * one byte per text: 1 = Python must do it, its line is then empty) */
static PyObject *py_normalize_utf8(PyObject *self, PyObject *args) {
    PyObject *o[5];
    if (!PyArg_ParseTuple(args, "OOOOO", &o[0], &o[1], &o[2], &o[3], &o[4])) return NULL;
    Buf b[5] = {0};
    Rules R;
    PyObject *result = NULL;
    if (get(o[0], &b[0], 1, "data") < 0 || get(o[1], &b[1], 8, "offsets") < 0 ||
        get_rules(o + 2, b + 2, &R) < 0)
        goto done;
    const uint8_t *data = (const uint8_t *)b[0].v.buf;
    const int64_t *offsets = (const int64_t *)b[1].v.buf;
    int64_t count = b[1].v.len / 8 - 1, total = b[0].v.len;
    if (count < 0) count = 0;
    for (int64_t t = 0; t < count; t++) {
        if (offsets[t] < 0 || offsets[t] > offsets[t + 1] || offsets[t + 1] > total) {
            PyErr_SetString(PyExc_ValueError, "normalize_utf8: offsets do not fit the data");
            goto done;
        }
    }
    PyObject *flags_out = PyBytes_FromStringAndSize(NULL, count);
    if (flags_out == NULL) goto done;
    uint8_t *fallback = (uint8_t *)PyBytes_AS_STRING(flags_out);
    Cps cps = {NULL, 0};
    Scratch S = {{NULL, 0}, {NULL, 0}};
    Bytes out = {NULL, 0};
    int64_t o_end = 0;
    int oom = grow_bytes(&out, total + total / 4 + 16) < 0;
    Py_BEGIN_ALLOW_THREADS
    for (int64_t t = 0; t < count && !oom; t++) {
        int64_t a = offsets[t], bnd = offsets[t + 1];
        int64_t end = -1;
        if (grow_cps(&cps, bnd - a + 1) < 0) {
            oom = 1;
            break;
        }
        int64_t m = decode(data, a, bnd, 1, cps.p, 0);
        if (m >= 0) end = pipeline(cps.p, m, &R, &S, &out, o_end);
        if (end == -2) {
            oom = 1;
            break;
        }
        fallback[t] = end < 0;
        if (end >= 0) o_end = end;
        if (grow_bytes(&out, o_end + 1) < 0) {
            oom = 1;
            break;
        }
        if (t + 1 < count) out.p[o_end++] = '\n';
    }
    Py_END_ALLOW_THREADS
    if (oom) {
        Py_DECREF(flags_out);
        PyErr_NoMemory();
    } else {
        PyObject *texts = PyBytes_FromStringAndSize((const char *)out.p, o_end);
        if (texts != NULL) result = Py_BuildValue("(NN)", texts, flags_out);
        else Py_DECREF(flags_out);
    }
    free(cps.p);
    free(S.a.p);
    free(S.b.p);
    free(out.p);
done:
    release(b, 5);
    return result;
}

/* End of the quoted field whose opening quote is at line[a]: the index of its closing quote
 * (`""` inside is an escaped quote), or -1. Greedy, as `"([^"]*(?:""[^"]*)*)"` tries first. */
static int64_t field_end(const uint8_t *line, int64_t a, int64_t b) {
    int64_t i = a + 1;
    while (i < b) {
        if (line[i] == '"') {
            if (i + 1 < b && line[i + 1] == '"') {
                i += 2;
                continue;
            }
            return i;
        }
        i++;
    }
    return -1;
}

/* Collapse `""` to `"` in cps[a:n] in place; the new end. */
static int64_t unquote(uint32_t *cps, int64_t a, int64_t n) {
    int64_t o = a, i = a;
    while (i < n) {
        cps[o] = cps[i];
        if (cps[i] == '"' && i + 1 < n && cps[i + 1] == '"') i++;
        o++;
        i++;
    }
    return o;
}

/* clean_csv_lines(data, offsets i64, layout_of i8, split_of i8, policy i32 [layouts x 6],
 *                 flags, lower, opts, title_weight, min_tokens, seed_prefix, fraction, crc)
 * -> (status u8, code i32, texts UTF-8, text_offsets i64), as bytes.
 * policy[layout, stars]: class index, -1 dropped by policy, -2 a label outside the layout.
 * A KEPT row's code is split << 16 | class and its text the next one in texts; validation is
 * carved from train by CRC-32 of seed_prefix + text (sentiment.reviews.split_of). */
static PyObject *py_clean_csv_lines(PyObject *self, PyObject *args) {
    PyObject *o[11];
    long long title_weight, min_tokens;
    double fraction;
    if (!PyArg_ParseTuple(args, "OOOOOOOOLLOdO", &o[0], &o[1], &o[2], &o[3], &o[4], &o[5], &o[6],
                          &o[7], &title_weight, &min_tokens, &o[8], &fraction, &o[9]))
        return NULL;
    Buf b[10] = {0};
    Rules R;
    PyObject *result = NULL;
    if (get(o[0], &b[0], 1, "data") < 0 || get(o[1], &b[1], 8, "offsets") < 0 ||
        get(o[2], &b[2], 1, "layout_of") < 0 || get(o[3], &b[3], 1, "split_of") < 0 ||
        get(o[4], &b[4], 4, "policy") < 0 || get_rules(o + 5, b + 5, &R) < 0 ||
        get(o[8], &b[8], 1, "seed_prefix") < 0 || get(o[9], &b[9], 4, "crc") < 0)
        goto done;
    const uint8_t *data = (const uint8_t *)b[0].v.buf;
    const int64_t *offsets = (const int64_t *)b[1].v.buf;
    const int8_t *layout_of = (const int8_t *)b[2].v.buf, *split_of = (const int8_t *)b[3].v.buf;
    const int32_t *policy = (const int32_t *)b[4].v.buf;
    const uint8_t *seed = (const uint8_t *)b[8].v.buf;
    const uint32_t *crc = (const uint32_t *)b[9].v.buf;
    int64_t count = b[1].v.len / 8 - 1, total = b[0].v.len, layouts = b[4].v.len / (4 * 6);
    if (count < 0) count = 0;
    if (b[2].v.len < count || b[3].v.len < count || b[9].v.len != 4 * 256) {
        PyErr_SetString(PyExc_ValueError, "clean_csv_lines: arrays do not fit the lines");
        goto done;
    }
    for (int64_t r = 0; r < count; r++) {
        if (offsets[r] < 0 || offsets[r] > offsets[r + 1] || offsets[r + 1] > total ||
            layout_of[r] < 0 || layout_of[r] >= layouts) {
            PyErr_SetString(PyExc_ValueError, "clean_csv_lines: offsets or layouts out of range");
            goto done;
        }
    }
    PyObject *status_b = PyBytes_FromStringAndSize(NULL, count);
    PyObject *code_b = PyBytes_FromStringAndSize(NULL, 4 * count);
    if (status_b == NULL || code_b == NULL) {
        Py_XDECREF(status_b);
        Py_XDECREF(code_b);
        goto done;
    }
    uint8_t *status = (uint8_t *)PyBytes_AS_STRING(status_b);
    int32_t *code = (int32_t *)PyBytes_AS_STRING(code_b);
    memset(code, 0, 4 * (size_t)count);
    int64_t *text_offsets = (int64_t *)calloc((size_t)count + 1, sizeof(int64_t));
    Cps cps = {NULL, 0}, composed = {NULL, 0};
    Scratch S = {{NULL, 0}, {NULL, 0}};
    Bytes out = {NULL, 0};
    int oom = text_offsets == NULL || grow_bytes(&out, total + 16) < 0;
    int64_t kept = 0, o_end = 0;
    int64_t seed_len = b[8].v.len, weight = title_weight > 1 ? title_weight : 1;
    Py_BEGIN_ALLOW_THREADS
    uint32_t prefix_crc = 0xFFFFFFFFu;
    for (int64_t k = 0; k < seed_len; k++) prefix_crc = crc[(prefix_crc ^ seed[k]) & 0xFF] ^ (prefix_crc >> 8);
    for (int64_t r = 0; r < count && !oom; r++) {
        status[r] = FALLBACK;
        int64_t a = offsets[r], e = offsets[r + 1];
        while (e > a && (data[e - 1] == '\n' || data[e - 1] == '\r')) e--;
        /* "label","title","body": three fields, nothing around them. */
        if (e - a < 8 || data[a] != '"') continue;
        int64_t e1 = field_end(data, a, e);
        if (e1 < 0 || e1 + 2 >= e || data[e1 + 1] != ',' || data[e1 + 2] != '"') continue;
        int64_t e2 = field_end(data, e1 + 2, e);
        if (e2 < 0 || e2 + 2 >= e || data[e2 + 1] != ',' || data[e2 + 2] != '"') continue;
        int64_t e3 = field_end(data, e2 + 2, e);
        if (e3 != e - 1) continue;
        if (grow_cps(&cps, e - a + 1) < 0) {
            oom = 1;
            break;
        }
        int64_t title_end = decode(data, e1 + 3, e2, 0, cps.p, 0);
        if (title_end < 0) continue;
        int64_t body_end = decode(data, e2 + 3, e3, 0, cps.p, title_end);
        if (body_end < 0) continue;
        if (e1 - a != 2 || !('1' <= data[a + 1] && data[a + 1] <= '5')) {
            status[r] = REJECT_LABEL;
            continue;
        }
        int32_t cls = policy[layout_of[r] * 6 + (data[a + 1] - '0')];
        if (cls == -2) {
            status[r] = REJECT_LABEL;
            continue;
        }
        if (cls == -1) {
            status[r] = DROP_POLICY;
            continue;
        }
        body_end = unquote(cps.p, title_end, body_end); /* body first: it sits after the title */
        int64_t body_start = title_end;
        title_end = unquote(cps.p, 0, title_end);
        if (grow_cps(&composed, (weight + 1) * (body_end + 1) + 8) < 0) {
            oom = 1;
            break;
        }
        /* sentiment.text.compose: title copies and body joined by line breaks, which end a
         * negation scope, so an unpunctuated title's scope stays in that copy. */
        int64_t m = 0;
        if (R.opts[6] && title_end > 0) {
            for (int64_t w = 0; w < weight; w++) {
                memcpy(composed.p + m, cps.p, (size_t)title_end * sizeof(uint32_t));
                m += title_end;
                composed.p[m++] = '\n';
            }
        }
        memcpy(composed.p + m, cps.p + body_start, (size_t)(body_end - body_start) * 4);
        m += body_end - body_start;
        int64_t end = pipeline(composed.p, m, &R, &S, &out, o_end);
        if (end == -2) {
            oom = 1;
            break;
        }
        if (end < 0) continue;
        int64_t spaces = 0;
        for (int64_t k = o_end; k < end; k++) spaces += out.p[k] == ' ';
        if (end == o_end || (min_tokens > 1 && spaces + 1 < min_tokens)) {
            status[r] = DROP_SHORT;
            continue;
        }
        int32_t split = split_of[r];
        if (split == 2 && fraction > 0) {
            uint32_t h = prefix_crc;
            for (int64_t k = o_end; k < end; k++) h = crc[(h ^ out.p[k]) & 0xFF] ^ (h >> 8);
            if ((double)(h ^ 0xFFFFFFFFu) / 4294967295.0 < fraction) split = 1;
        }
        status[r] = KEPT;
        code[r] = (split << 16) | cls;
        o_end = end;
        text_offsets[++kept] = o_end;
    }
    Py_END_ALLOW_THREADS
    if (oom) {
        Py_DECREF(status_b);
        Py_DECREF(code_b);
        PyErr_NoMemory();
    } else {
        PyObject *texts = PyBytes_FromStringAndSize((const char *)out.p, o_end);
        PyObject *offs = PyBytes_FromStringAndSize((const char *)text_offsets, 8 * (kept + 1));
        if (texts != NULL && offs != NULL) {
            result = Py_BuildValue("(NNNN)", status_b, code_b, texts, offs);
        } else {
            Py_XDECREF(texts);
            Py_XDECREF(offs);
            Py_DECREF(status_b);
            Py_DECREF(code_b);
        }
    }
    free(text_offsets);
    free(cps.p);
    free(composed.p);
    free(S.a.p);
    free(S.b.p);
    free(out.p);
done:
    release(b, 10);
    return result;
}

static PyMethodDef methods[] = {
    {"normalize_one", py_normalize_one, METH_VARARGS,
     "normalize_one(data, flags, lower, opts) -> UTF-8 bytes, or None: Python must do it"},
    {"normalize_utf8", py_normalize_utf8, METH_VARARGS,
     "normalize_utf8(data, offsets, flags, lower, opts) -> (texts joined by newlines, fallback "
     "flags)"},
    {"clean_csv_lines", py_clean_csv_lines, METH_VARARGS,
     "clean_csv_lines(data, offsets, layout_of, split_of, policy, flags, lower, opts, "
     "title_weight, min_tokens, seed_prefix, fraction, crc) -> (status, code, texts, "
     "text_offsets)"},
    {"normalizer", py_normalizer, METH_NOARGS,
     "The C entry normalize_into in a capsule named " NORMALIZER_CAPSULE
     " (for sentiment.engine._core.Predictor)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "sentiment._text", "The text normalization, compiled (see _text.c).",
    -1, methods,
};

PyMODINIT_FUNC PyInit__text(void) { return PyModule_Create(&module); }
