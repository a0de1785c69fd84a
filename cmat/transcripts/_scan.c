/* The compiled twin of cmat.transcripts.fastdecode: finds the usage lines of a chunk of a
 * transcript and reads the fields cmat needs from each, in one pass of C.
 *
 * It decides only what it is sure of. A line is answered here when it is one JSON object
 * whose every value is well formed (strings without raw control characters, numbers by the
 * JSON grammar, nesting under MAX_DEPTH) and whose fields cmat reads have the usual types
 * (strings or null; token counts whole, unsigned and below 2**53; flags true or false).
 * Anything else -- a torn line, NaN, an exponent, an escaped key, a lone surrogate in a field
 * that is read, a count of 5.0 or null, invalid UTF-8 in a field that is read -- is handed
 * back undecided, and the Python decoders, whose rules are the reference, decide it. So both
 * paths give the same records; tests/test_scan.py holds them to it on every fixture and on
 * fuzzed lines.
 *
 * scan(buffer, start, end, marker, base, best, build, penalty) reads the lines of
 * buffer[start:end] holding `marker` (start begins a line, buffer[end - 1] ends one; `base`
 * is the file offset of buffer[0]). A usage line it is sure of all the way -- its key known
 * and its timestamp of the usual shape, in range -- becomes a Candidate (decode.py),
 * (key, rank, build, data), with data (offset, *cmat.request.claude_usage's fields), kept
 * in the dict `best` as reader.Deduplicator keeps it: (rank, candidate), replaced only by a
 * higher rank; rank as cmat.request.rank with `penalty` (SIDECHAIN_PENALTY). It stops at
 * the first line left to Python and returns it, (line_start, line_end, verdict), so that
 * lines are kept in file order: verdict UNDECIDED (0), NOTICE (2), or the data tuple of a
 * usage line whose key or time Python must settle. None: read to `end`.
 */
#define _GNU_SOURCE /* memmem, memrchr */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define MAX_DEPTH 64
#define MAX_COUNT_DIGITS 16 /* 2**53 has 16 digits: the range is checked on the value */
/* cmat.request's MAX_TOKENS, EARLIEST_YEAR and LATEST_YEAR: the module exports them, and a
 * test holds them equal. */
#define MAX_COUNT ((uint64_t)1 << 53)
#define EARLIEST_YEAR 2000
#define LATEST_YEAR 2100

enum { UNDECIDED = 0, NOTICE = 2 };

typedef struct {
    const unsigned char *start; /* NULL: absent or null */
    Py_ssize_t length;
    int escaped;
} Text;

typedef struct {
    Text type, id, model, request_id, session_id, timestamp, agent_id, cwd, speed, geo;
    int has_message, has_usage, has_split, sidechain, api_error;
    uint64_t input, output, cache_total, cache_read, split_5m, split_1h, searches;
} Fields;

typedef struct {
    const unsigned char *p, *end;
} Cursor;

#define ONES 0x0101010101010101ULL
#define HIGHS 0x8080808080808080ULL
#define HAS_ZERO(v) (((v) - ONES) & ~(v) & HIGHS)  /* a zero byte in v */
#define HAS_LESS(v, n) (((v) - ONES * (n)) & ~(v) & HIGHS)  /* a byte below n (n <= 128) */

/* 1 for the bytes a string can hold as they are: not '"', not '\\', not a control byte. */
static unsigned char plain[256];

static void init_tables(void) {
    for (int c = 0; c < 256; c++)
        plain[c] = c >= 0x20 && c != '"' && c != '\\';
}

static inline void skip_space(Cursor *c) {
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\r' || *c->p == '\n'))
        c->p++;
}

static inline int hex(unsigned char ch) {
    return (ch >= '0' && ch <= '9') || ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f');
}

/* A string, the cursor on its opening quote: 0 and its span, or -1 if malformed. */
static int read_string(Cursor *c, Text *text) {
    const unsigned char *p = c->p + 1, *end = c->end;
    int escaped = 0;
    for (;;) {
        /* Eight bytes at a time while none of them ends the run (most of a line is text). */
        while (end - p >= 8) {
            uint64_t word;
            memcpy(&word, p, 8);
            if (HAS_ZERO(word ^ (ONES * '"')) | HAS_ZERO(word ^ (ONES * '\\'))
                | HAS_LESS(word, 0x20))
                break;
            p += 8;
        }
        while (p < end && plain[*p]) p++;
        if (p >= end || *p < 0x20) return -1;
        if (*p == '"') break;
        escaped = 1; /* a backslash */
        if (p + 1 >= end) return -1;
        switch (p[1]) {
        case '"': case '\\': case '/': case 'b': case 'f': case 'n': case 'r': case 't':
            p += 2;
            break;
        case 'u':
            if (p + 6 > end || !hex(p[2]) || !hex(p[3]) || !hex(p[4]) || !hex(p[5])) return -1;
            p += 6;
            break;
        default:
            return -1;
        }
    }
    if (text) {
        text->start = c->p + 1;
        text->length = p - (c->p + 1);
        text->escaped = escaped;
    }
    c->p = p + 1;
    return 0;
}

/* A number by the JSON grammar; exponents and long integer parts are left undecided (the
 * Python decoders differ on what they make of them). */
static int skip_number(Cursor *c) {
    const unsigned char *p = c->p, *end = c->end, *digits;
    if (p < end && *p == '-') p++;
    digits = p;
    if (p < end && *p == '0') p++;
    else {
        while (p < end && *p >= '0' && *p <= '9') p++;
    }
    if (p == digits || p - digits > 18) return -1;
    if (p < end && *p == '.') {
        const unsigned char *fraction = ++p;
        while (p < end && *p >= '0' && *p <= '9') p++;
        if (p == fraction) return -1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) return -1;
    c->p = p;
    return 0;
}

static int skip_literal(Cursor *c, const char *word, size_t length) {
    if ((size_t)(c->end - c->p) < length || memcmp(c->p, word, length)) return -1;
    c->p += length;
    return 0;
}

static int skip_value(Cursor *c, int depth);

/* What reads the value of an object's member, given its key: -1 if it cannot. */
typedef int (*Member)(Cursor *c, const unsigned char *key, Py_ssize_t length, Fields *f,
                      int depth);

/* An object (close '}') or array (']'), the cursor on its opening bracket. With `member`,
 * each member's value is read by it (and a key with escapes is left undecided); without,
 * every value is skipped. */
static int read_container(Cursor *c, Fields *f, int depth, unsigned char close,
                          Member member) {
    if (depth >= MAX_DEPTH) return -1;
    c->p++;
    skip_space(c);
    if (c->p < c->end && *c->p == close) {
        c->p++;
        return 0;
    }
    for (;;) {
        Text key;
        if (close == '}') {
            if (c->p >= c->end || *c->p != '"' || read_string(c, &key)) return -1;
            skip_space(c);
            if (c->p >= c->end || *c->p != ':') return -1;
            c->p++;
            skip_space(c);
        }
        if (member ? key.escaped || member(c, key.start, key.length, f, depth + 1)
                   : skip_value(c, depth + 1))
            return -1;
        skip_space(c);
        if (c->p >= c->end) return -1;
        if (*c->p == ',') {
            c->p++;
            skip_space(c);
            continue;
        }
        if (*c->p != close) return -1;
        c->p++;
        return 0;
    }
}

static int skip_value(Cursor *c, int depth) {
    if (c->p >= c->end) return -1;
    switch (*c->p) {
    case '"': return read_string(c, NULL);
    case '{': return read_container(c, NULL, depth, '}', NULL);
    case '[': return read_container(c, NULL, depth, ']', NULL);
    case 't': return skip_literal(c, "true", 4);
    case 'f': return skip_literal(c, "false", 5);
    case 'n': return skip_literal(c, "null", 4);
    default: return skip_number(c);
    }
}

/* A string or null. */
static int read_text(Cursor *c, Text *text) {
    if (c->p < c->end && *c->p == '"') return read_string(c, text);
    text->start = NULL;
    return skip_literal(c, "null", 4);
}

static int read_flag(Cursor *c, int *flag) {
    if (!skip_literal(c, "true", 4)) return *flag = 1, 0;
    if (!skip_literal(c, "false", 5)) return *flag = 0, 0;
    return -1;
}

/* A token count: digits only, below 2**53. */
static int read_count(Cursor *c, uint64_t *count) {
    const unsigned char *p = c->p, *end = c->end;
    uint64_t value = 0;
    if (p >= end || *p < '0' || *p > '9' || (*p == '0' && p + 1 < end && p[1] >= '0' && p[1] <= '9'))
        return -1;
    while (p < end && *p >= '0' && *p <= '9') {
        if (p - c->p >= MAX_COUNT_DIGITS) return -1;
        value = value * 10 + (uint64_t)(*p - '0');
        p++;
    }
    if (p < end && (*p == '.' || *p == 'e' || *p == 'E')) return -1;
    if (value >= MAX_COUNT) return -1;
    c->p = p;
    *count = value;
    return 0;
}

/* An object whose members `member` reads. */
static int read_object(Cursor *c, Fields *f, int depth, Member member) {
    if (c->p >= c->end || *c->p != '{') return -1;
    return read_container(c, f, depth, '}', member);
}

#define KEY(name) (length == sizeof(name) - 1 && !memcmp(key, name, sizeof(name) - 1))

static int split_member(Cursor *c, const unsigned char *key, Py_ssize_t length, Fields *f,
                        int depth) {
    if (KEY("ephemeral_5m_input_tokens")) return read_count(c, &f->split_5m);
    if (KEY("ephemeral_1h_input_tokens")) return read_count(c, &f->split_1h);
    return skip_value(c, depth);
}

static int server_tool_member(Cursor *c, const unsigned char *key, Py_ssize_t length,
                              Fields *f, int depth) {
    if (KEY("web_search_requests")) return read_count(c, &f->searches);
    return skip_value(c, depth);
}

/* A null where an object belongs: the object is absent (a later copy of the key replaces an
 * earlier one whole, as in every JSON decoder cmat uses). */
static int is_null(Cursor *c) {
    return !skip_literal(c, "null", 4);
}

static int usage_member(Cursor *c, const unsigned char *key, Py_ssize_t length, Fields *f,
                        int depth) {
    if (KEY("input_tokens")) return read_count(c, &f->input);
    if (KEY("output_tokens")) return read_count(c, &f->output);
    if (KEY("cache_creation_input_tokens")) return read_count(c, &f->cache_total);
    if (KEY("cache_read_input_tokens")) return read_count(c, &f->cache_read);
    if (KEY("speed")) return read_text(c, &f->speed);
    if (KEY("inference_geo")) return read_text(c, &f->geo);
    if (KEY("cache_creation")) {
        f->has_split = 0;
        f->split_5m = f->split_1h = 0;
        if (is_null(c)) return 0;
        f->has_split = 1;
        return read_object(c, f, depth, split_member);
    }
    if (KEY("server_tool_use")) {
        f->searches = 0;
        if (is_null(c)) return 0;
        return read_object(c, f, depth, server_tool_member);
    }
    return skip_value(c, depth);
}

static void reset_usage(Fields *f) {
    f->has_usage = f->has_split = 0;
    f->input = f->output = f->cache_total = f->cache_read = 0;
    f->split_5m = f->split_1h = f->searches = 0;
    f->speed.start = f->geo.start = NULL;
}

static int message_member(Cursor *c, const unsigned char *key, Py_ssize_t length, Fields *f,
                          int depth) {
    if (KEY("id")) return read_text(c, &f->id);
    if (KEY("model")) return read_text(c, &f->model);
    if (KEY("usage")) {
        reset_usage(f);
        if (is_null(c)) return 0;
        f->has_usage = 1;
        return read_object(c, f, depth, usage_member);
    }
    return skip_value(c, depth);
}

static int line_member(Cursor *c, const unsigned char *key, Py_ssize_t length, Fields *f,
                       int depth) {
    switch (length) {
    case 3:
        if (KEY("cwd")) return read_text(c, &f->cwd);
        break;
    case 4:
        if (KEY("type")) return read_text(c, &f->type);
        break;
    case 7:
        if (KEY("message")) {
            f->has_message = 0;
            f->id.start = f->model.start = NULL;
            reset_usage(f);
            if (is_null(c)) return 0;
            f->has_message = 1;
            return read_object(c, f, depth, message_member);
        }
        if (KEY("agentId")) return read_text(c, &f->agent_id);
        break;
    case 9:
        if (KEY("requestId")) return read_text(c, &f->request_id);
        if (KEY("sessionId")) return read_text(c, &f->session_id);
        if (KEY("timestamp")) return read_text(c, &f->timestamp);
        break;
    case 11:
        if (KEY("isSidechain")) return read_flag(c, &f->sidechain);
        break;
    case 17:
        if (KEY("isApiErrorMessage")) return read_flag(c, &f->api_error);
        break;
    }
    return skip_value(c, depth);
}

static int text_is(const Text *text, const char *word) {
    size_t length = strlen(word);
    return text->start && !text->escaped && (size_t)text->length == length
           && !memcmp(text->start, word, length);
}

/* The escapes cmat may meet in a field it reads (a Windows path's backslashes, say); a
 * surrogate is left undecided. `out` holds at least text->length bytes. */
static Py_ssize_t unescape(const Text *text, char *out) {
    const unsigned char *p = text->start, *end = text->start + text->length;
    char *o = out;
    while (p < end) {
        if (*p != '\\') {
            *o++ = (char)*p++;
            continue;
        }
        unsigned char e = p[1];
        p += 2;
        switch (e) {
        case '"': *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '/': *o++ = '/'; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        default: { /* 'u', its four hex digits checked by read_string */
            unsigned int code = 0;
            for (int i = 0; i < 4; i++) {
                unsigned char h = p[i];
                code = code * 16 + (h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
            }
            p += 4;
            if (code >= 0xD800 && code <= 0xDFFF) return -1;
            if (code < 0x80) *o++ = (char)code;
            else if (code < 0x800) {
                *o++ = (char)(0xC0 | (code >> 6));
                *o++ = (char)(0x80 | (code & 0x3F));
            } else {
                *o++ = (char)(0xE0 | (code >> 12));
                *o++ = (char)(0x80 | ((code >> 6) & 0x3F));
                *o++ = (char)(0x80 | (code & 0x3F));
            }
        }
        }
    }
    return o - out;
}

/* The str of a field (None when absent or null); NULL, no exception set, if undecided. */
static PyObject *text_value(const Text *text) {
    if (!text->start) Py_RETURN_NONE;
    PyObject *value;
    if (!text->escaped) {
        value = PyUnicode_DecodeUTF8((const char *)text->start, text->length, NULL);
    } else {
        char *buffer = PyMem_Malloc(text->length ? text->length : 1);
        if (!buffer) return NULL;
        Py_ssize_t length = unescape(text, buffer);
        value = length < 0 ? NULL : PyUnicode_DecodeUTF8(buffer, length, NULL);
        PyMem_Free(buffer);
    }
    if (!value) PyErr_Clear();
    return value;
}

static int digits(const unsigned char *p, int n, int *value) {
    *value = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return -1;
        *value = *value * 10 + (p[i] - '0');
    }
    return 0;
}

/* Days from 1970-01-01 to a date of the proleptic Gregorian calendar (H. Hinnant's
 * days_from_civil). */
static long long days_from_civil(int year, int month, int day) {
    year -= month <= 2;
    long long era = year / 400;
    long long year_of_era = year - era * 400;
    long long day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
    long long day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    return era * 146097 + day_of_era - 719468;
}

/* Whether a timestamp is surely one cmat.request.check_time passes: Claude Code's shape,
 * YYYY-MM-DDTHH:MM:SS[.f{1,6}]Z, a real date between 2000 and 2100. Any other (that Python
 * may still accept) is left to check_time. Its unix seconds into `seconds`, as
 * cmat.request.timestamp_seconds gives them: whole microseconds over 10^6, one rounding
 * (below 2^53 microseconds, every step is exact but the division). */
static int usual_time(const Text *text, double *seconds) {
    static const int month_days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    const unsigned char *p = text->start;
    Py_ssize_t n = text->length;
    int year, month, day, hour, minute, second, fraction = 0;
    if (!p || text->escaped || n < 20 || p[4] != '-' || p[7] != '-' || p[10] != 'T'
        || p[13] != ':' || p[16] != ':' || p[n - 1] != 'Z')
        return 0;
    if (digits(p, 4, &year) || digits(p + 5, 2, &month) || digits(p + 8, 2, &day)
        || digits(p + 11, 2, &hour) || digits(p + 14, 2, &minute)
        || digits(p + 17, 2, &second))
        return 0;
    if (n > 20 && (p[19] != '.' || n - 21 < 1 || n - 21 > 6
                   || digits(p + 20, (int)(n - 21), &fraction)))
        return 0;
    if (year < EARLIEST_YEAR || year >= LATEST_YEAR || month < 1 || month > 12 || hour > 23 || minute > 59
        || second > 59 || day < 1)
        return 0;
    int leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    if (day > month_days[month - 1] + (month == 2 && leap)) return 0;
    long long micro = n > 20 ? fraction : 0;
    for (Py_ssize_t places = n > 20 ? n - 21 : 6; places < 6; places++) micro *= 10;
    long long whole = ((days_from_civil(year, month, day) * 24 + hour) * 60 + minute) * 60
        + second;
    *seconds = (double)(whole * 1000000 + micro) / 1e6;
    return 1;
}

typedef struct {
    Py_ssize_t base;     /* file offset of the buffer's first byte */
    PyObject *best;      /* key -> (rank, candidate) */
    PyObject *build;     /* what a candidate's record is built by */
    long long penalty;   /* cmat.request.SIDECHAIN_PENALTY */
} Keeper;

/* Keep a candidate as Deduplicator.add does. 0, or -1 with an exception. */
static int keep(Keeper *k, PyObject *key, long long rank_value, PyObject *data) {
    PyObject *rank = PyLong_FromLongLong(rank_value);
    if (!rank) return -1;
    PyObject *current = PyDict_GetItemWithError(k->best, key);  /* borrowed */
    int better = 1, failed = 0;
    if (current) {
        better = PyTuple_Check(current) && PyTuple_GET_SIZE(current) == 2
            ? PyObject_RichCompareBool(rank, PyTuple_GET_ITEM(current, 0), Py_GT) : -1;
        if (better < 0) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "a kept copy is not (rank, copy)");
            failed = 1;
        }
    } else if (PyErr_Occurred()) {
        failed = 1;
    }
    if (!failed && better > 0) {
        PyObject *entry = Py_BuildValue("(O(OOOO))", rank, key, rank, k->build, data);
        failed = !entry || PyDict_SetItem(k->best, key, entry);
        Py_XDECREF(entry);
    }
    Py_DECREF(rank);
    return failed ? -1 : 0;
}

/* A line's rank, as cmat.request.rank makes it of the counts cmat.request.cache_writes gives:
 * the cache writes are the split's sum when the line gives no total. */
static long long line_rank(const Keeper *k, const Fields *f) {
    uint64_t cache = f->cache_total || !f->has_split ? f->cache_total : f->split_5m + f->split_1h;
    return (f->sidechain ? 0 : k->penalty) + (long long)(f->input + f->output + cache + f->cache_read);
}

/* 1 when a copy of the line's request ranks as high as the line already (most often an earlier
 * snapshot of the same response): keep() would drop it, so none of its values need be made.
 * 0 when not, or when its key is not plain enough to tell here (the line is then read whole);
 * -1 with an exception. */
static int outranked(const Keeper *k, const Fields *f) {
    const Text *id = f->id.start && f->id.length ? &f->id
        : f->request_id.start && f->request_id.length ? &f->request_id : NULL;
    if (!id || id->escaped) return 0;
    PyObject *key = PyUnicode_DecodeUTF8((const char *)id->start, id->length, NULL);
    if (!key) {
        PyErr_Clear(); /* not UTF-8: the line is left to Python, read whole */
        return 0;
    }
    PyObject *current = PyDict_GetItemWithError(k->best, key); /* borrowed */
    Py_DECREF(key);
    if (!current) return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_Check(current) || PyTuple_GET_SIZE(current) != 2) return 0; /* keep() says */
    PyObject *rank = PyLong_FromLongLong(line_rank(k, f));
    if (!rank) return -1;
    int better = PyObject_RichCompareBool(rank, PyTuple_GET_ITEM(current, 0), Py_GT);
    Py_DECREF(rank);
    return better < 0 ? -1 : !better;
}

/* The verdict on one line: an int, the data tuple left to Python, or a borrowed None when
 * nothing is left to do (no usage, or kept here); NULL with an exception only on running
 * out of memory. */
static PyObject *verdict(const unsigned char *start, const unsigned char *end,
                         Py_ssize_t offset, Keeper *k) {
    Fields f;
    memset(&f, 0, sizeof f);
    Cursor c = {start, end};
    skip_space(&c);
    if (read_object(&c, &f, 0, line_member)) return PyLong_FromLong(UNDECIDED);
    skip_space(&c);
    if (c.p != c.end) return PyLong_FromLong(UNDECIDED);
    if (f.type.start && f.type.escaped) return PyLong_FromLong(UNDECIDED);
    if (!text_is(&f.type, "assistant") || !f.has_message || !f.has_usage)
        return Py_None; /* nothing for Python to do */
    if (f.model.start && f.model.escaped) return PyLong_FromLong(UNDECIDED);
    if (f.api_error || text_is(&f.model, "<synthetic>")) return PyLong_FromLong(NOTICE);
    double unix_seconds = 0;
    int usual = usual_time(&f.timestamp, &unix_seconds);
    if (usual) {
        int dropped = outranked(k, &f);
        if (dropped) return dropped < 0 ? NULL : Py_None;
    }
    const Text *texts[] = {&f.id, &f.request_id, &f.session_id, &f.timestamp, &f.model,
                           &f.speed, &f.geo, &f.agent_id, &f.cwd};
    PyObject *values[9];
    int n = 0;
    for (; n < 9; n++) {
        values[n] = text_value(texts[n]);
        if (!values[n]) break;
    }
    PyObject *result = NULL;
    if (n == 9) {
        PyObject *model = values[4];
        if (model == Py_None || PyUnicode_GET_LENGTH(model) == 0) {
            model = PyUnicode_FromString("unknown");
            Py_SETREF(values[4], model);
        }
        PyObject *split = f.has_split
            ? Py_BuildValue("(KK)", (unsigned long long)f.split_5m,
                            (unsigned long long)f.split_1h)
            : (Py_INCREF(Py_None), Py_None);
        PyObject *seconds = usual ? PyFloat_FromDouble(unix_seconds)
                                  : (Py_INCREF(Py_None), Py_None);
        if (model && split && seconds)
            result = Py_BuildValue(
                "(nOOOOOKKKOKKOOOOOO)", offset, values[0], values[1], values[2], values[3],
                values[4], (unsigned long long)f.input, (unsigned long long)f.output,
                (unsigned long long)f.cache_total, split, (unsigned long long)f.cache_read,
                (unsigned long long)f.searches, values[5], values[6],
                f.sidechain ? Py_True : Py_False, values[7], values[8], seconds);
        Py_XDECREF(split);
        Py_XDECREF(seconds);
        /* The key as decode.usage_record makes it: the message id, else the request id. */
        PyObject *key = PyUnicode_Check(values[0]) && PyUnicode_GET_LENGTH(values[0])
            ? values[0]
            : PyUnicode_Check(values[1]) && PyUnicode_GET_LENGTH(values[1]) ? values[1] : NULL;
        if (result && key && usual) {
            if (keep(k, key, line_rank(k, &f), result)) Py_CLEAR(result);
            else {
                Py_DECREF(result);
                result = Py_None;
            }
        }
    } else if (!PyErr_Occurred()) {
        result = PyLong_FromLong(UNDECIDED);
    }
    for (int i = 0; i < n; i++) Py_XDECREF(values[i]);
    return result;
}

static PyObject *scan(PyObject *Py_UNUSED(module), PyObject *args) {
    Py_buffer buffer, marker;
    Py_ssize_t start, end;
    Keeper k;
    if (!PyArg_ParseTuple(args, "y*nny*nO!OL", &buffer, &start, &end, &marker, &k.base,
                          &PyDict_Type, &k.best, &k.build, &k.penalty))
        return NULL;
    PyObject *left = NULL;
    if (start < 0 || end > buffer.len || start > end || marker.len == 0) {
        PyErr_SetString(PyExc_ValueError, "start or end out of the buffer, or an empty marker");
        goto done;
    }
    const unsigned char *data = buffer.buf, *limit = data + end, *position = data + start;
    while (position < limit) {
        const unsigned char *hit = memmem(position, limit - position, marker.buf, marker.len);
        if (!hit) break;
        const unsigned char *line_start = memrchr(data, '\n', hit - data), *line_end;
        line_start = line_start ? line_start + 1 : data;
        line_end = memchr(hit, '\n', limit - hit);
        if (!line_end) line_end = limit;
        PyObject *value = verdict(line_start, line_end, k.base + (line_start - data), &k);
        if (!value) goto done;
        if (value != Py_None) {
            left = Py_BuildValue("(nnN)", (Py_ssize_t)(line_start - data),
                                 (Py_ssize_t)(line_end - data), value);
            goto done;
        }
        position = line_end + 1;
    }
    left = Py_None;
    Py_INCREF(left);
done:
    PyBuffer_Release(&buffer);
    PyBuffer_Release(&marker);
    return left;
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS,
     "scan(buffer, start, end, marker, base, best, build, penalty) -> the first line of "
     "buffer[start:end] left to Python, (line_start, line_end, verdict), or None; the usage "
     "lines before it are kept in `best`."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef definition = {
    PyModuleDef_HEAD_INIT, "_scan", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__scan(void) {
    init_tables();
    PyObject *module = PyModule_Create(&definition);
    if (module && (PyModule_AddObject(module, "MAX_TOKENS",
                                      PyLong_FromUnsignedLongLong(MAX_COUNT))
                   || PyModule_AddIntConstant(module, "EARLIEST_YEAR", EARLIEST_YEAR)
                   || PyModule_AddIntConstant(module, "LATEST_YEAR", LATEST_YEAR)))
        Py_CLEAR(module);
    return module;
}
