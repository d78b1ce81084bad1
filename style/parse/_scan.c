/*
 * style.parse._scan: the inner loop of style.parse.whatsapp.parse_whatsapp, in C.
 *
 * The pure-Python loop cuts each block of an export at its dialect's header expression
 * (`re.split`) and converts the pieces; that costs about 3 us a message, most of it
 * interpreter overhead. A `Scanner` does the same work for the common dialects and must
 * give exactly the same results, so it follows four rules:
 *
 * 1. `match_header` is a hand translation of `Dialect.header_pattern()` for dialects with
 *    the date first, no era years and no marks inside the date. Every optional part of
 *    that expression is greedy, and nothing after an optional part can start with the
 *    character it would eat, so matching forwards without backtracking finds exactly the
 *    headers `re` finds. Like `re`'s `\d`, a digit is any Unicode decimal digit.
 * 2. A header's date and clock become a datetime by the rules of `_to_datetime` and
 *    `_time_of_day`; a header-shaped line with an impossible date or time continues the
 *    previous message and is reported to `stats.note_unparsed`, as in the Python loop.
 * 3. A message is built here only when the Python loop's hot path would build it (plain
 *    text after a printable, quote-free "Name: "). Every other message goes to the Python
 *    `_MessageBuilder`, called in file order, so its memory of the chat's own names changes
 *    exactly as in the Python loop. Whether a text needs classifying is decided here only
 *    when cheap tests rule every marker out; when they cannot, Python's
 *    `needs_classifying` decides. The builder's results for short texts that repeat
 *    ("Sam: <Media omitted>") are remembered and copied; see `remember`.
 * 4. Anything this file cannot match exactly (another dialect shape, edited marker tables)
 *    makes the constructor raise `Unsupported`, and the caller runs the Python loop.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <stdint.h>
#include <string.h>
#include <structmember.h>
#include <uchar.h>

#ifndef Py_T_OBJECT_EX
#define Py_T_OBJECT_EX T_OBJECT_EX /* renamed in Python 3.12 */
#endif

#define NO_CHAR ((Py_UCS4)0xFFFFFFFF) /* what char_at reads past the end: matches nothing */
#define LRM 0x200E
#define NBSP 0x00A0
#define NNBSP 0x202F

#define MAX_SEP 15       /* longest datetime or header separator we accept ("a las" etc.) */
#define AUTHOR_WINDOW 82 /* the hot path looks for ": " in rest[:82], as `rest.find(": ", 0, 82)` */
#define BLOOM_BITS 65536 /* 8 KiB each: about 1 text in 300 gets a false "maybe" */
#define AUTHOR_CACHE 64
#define MEMO_MAX_TEXT 120 /* builder results are remembered for texts up to this long */
#define MEMO_MAX_ENTRIES 512

/* The expressions this file translates; if whatsapp.py's differ, the constructor refuses. */
static const char32_t INVISIBLE[] = U"\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                                    U"\u2066\u2067\u2068\u2069\ufeff";
static const char AMPM_PATTERN[] =
    "(?:[AaPp]\\.?[ \\u00a0\\u202f]?[Mm]\\.?|\u0635|\u0645|\u5348\u524d|\u5348\u5f8c"
    "|\uc624\uc804|\uc624\ud6c4|vorm\\.|nachm\\.|morgens|mittags|abends|nachts"
    "|in the (?:morning|afternoon|evening))";

/* `_AMPM` after its first alternative ([AaPp].?[sp]?[Mm].?, handled in code), with the
 * meaning `_MERIDIEM` gives each word. No word is a prefix of another, and none matches
 * where the first alternative does, so the first match is the one `re` takes. */
static const struct {
    const char32_t *word;
    int afternoon;
} MERIDIEM_WORDS[] = {
    {U"\u0635", 0},        {U"\u0645", 1},         {U"\u5348\u524d", 0},
    {U"\u5348\u5f8c", 1},  {U"\uc624\uc804", 0},   {U"\uc624\ud6c4", 1},
    {U"vorm.", 0},         {U"nachm.", 1},         {U"morgens", 0},
    {U"mittags", 1},       {U"abends", 1},         {U"nachts", 0},
    {U"in the morning", 0}, {U"in the afternoon", 1}, {U"in the evening", 1},
};

/* Message's fields in the order `new_message` fills them. */
static const char *const MESSAGE_FIELDS[] = {"ts",     "author", "text", "kind",
                                             "edited", "media",  "line", "notice"};
#define N_FIELDS 8

static PyObject *Unsupported;

/* The scanning helpers are forced inline into one copy of the block loop per string
 * kind (1, 2 or 4 bytes a character), so each copy reads characters without testing the
 * kind every time. */
#if defined(__GNUC__) || defined(__clang__)
#define HOT static inline __attribute__((always_inline))
#elif defined(_MSC_VER)
#define HOT static __forceinline
#else
#define HOT static inline
#endif

/* --- reading a str ------------------------------------------------------------------ */

/* obj[start:end], read in place: index i here is obj[start + i]. */
typedef struct {
    PyObject *obj; /* borrowed */
    Py_ssize_t start;
    int kind;
    const void *data;
    Py_ssize_t length;
} Text;

static int
text_part(PyObject *obj, Py_ssize_t start, Py_ssize_t end, Text *t)
{
#if PY_VERSION_HEX < 0x030C0000
    if (PyUnicode_READY(obj) < 0) {
        return -1;
    }
#endif
    t->obj = obj;
    t->start = start;
    t->kind = PyUnicode_KIND(obj);
    t->data = (const char *)PyUnicode_DATA(obj) + start * t->kind;
    t->length = end - start;
    return 0;
}

static int
text_of(PyObject *obj, Text *t)
{
    return text_part(obj, 0, PyUnicode_GET_LENGTH(obj), t);
}

/* t[a:b] as a new str. */
static PyObject *
substring(const Text *t, Py_ssize_t a, Py_ssize_t b)
{
    return PyUnicode_Substring(t->obj, t->start + a, t->start + b);
}

HOT Py_UCS4
char_at(const Text *t, Py_ssize_t i)
{
    return i < t->length ? PyUnicode_READ(t->kind, t->data, i) : NO_CHAR;
}

static inline int
is_invisible(Py_UCS4 c)
{
    for (const char32_t *m = INVISIBLE; *m; m++) {
        if (c == *m) {
            return 1;
        }
    }
    return 0;
}

HOT Py_ssize_t
skip_invisible(const Text *t, Py_ssize_t i)
{
    while (char_at(t, i) >= 0x200E && is_invisible(char_at(t, i))) {
        i++;
    }
    return i;
}

/* The value of a decimal digit, or -1: `re`'s `\d` and `int()` accept every Unicode
 * decimal digit, not just 0-9. */
static inline int
digit_value(Py_UCS4 c)
{
    if (c >= '0' && c <= '9') {
        return (int)(c - '0');
    }
    if (c < 128 || c > 0x10FFFF) {
        return -1;
    }
    return Py_UNICODE_TODECIMAL(c);
}

/* Read the run of digits at *i: its length (stopping at 5, already too many for any field
 * of a header) and its value. */
HOT int
read_digits(const Text *t, Py_ssize_t *i, int *value)
{
    Py_ssize_t j = *i;
    int count = 0, sum = 0, next;
    while (count < 5 && (next = digit_value(char_at(t, j))) >= 0) {
        sum = sum * 10 + next;
        count++;
        j++;
    }
    *i = j;
    *value = sum;
    return count;
}

/* Match a separator from the dialect, where a space stands for `[ \u00a0]` (re.escape'd
 * spaces become that class in `header_pattern`). */
HOT int
match_separator(const Text *t, Py_ssize_t *i, const char32_t *sep)
{
    Py_ssize_t k = 0;
    for (; sep[k]; k++) {
        Py_UCS4 c = char_at(t, *i + k);
        if (sep[k] == ' ' ? (c != ' ' && c != NBSP) : c != sep[k]) {
            return 0;
        }
    }
    *i += k;
    return 1;
}

HOT int
match_word(const Text *t, Py_ssize_t *i, const char32_t *word)
{
    Py_ssize_t k = 0;
    for (; word[k]; k++) {
        if (char_at(t, *i + k) != word[k]) {
            return 0;
        }
    }
    *i += k;
    return 1;
}

static inline int
is_space_before_ampm(Py_UCS4 c) /* `_SP` */
{
    return c == ' ' || c == NBSP || c == NNBSP;
}

/* `_AMPM` at *i: 1 afternoon, 0 morning, -1 no match. */
HOT int
match_meridiem(const Text *t, Py_ssize_t *i)
{
    Py_ssize_t j = *i;
    Py_UCS4 c = char_at(t, j);
    if (c == 'A' || c == 'a' || c == 'P' || c == 'p') {
        int afternoon = (c == 'P' || c == 'p');
        j++;
        if (char_at(t, j) == '.') {
            j++;
        }
        if (is_space_before_ampm(char_at(t, j))) {
            j++;
        }
        c = char_at(t, j);
        if (c == 'M' || c == 'm') {
            j++;
            if (char_at(t, j) == '.') {
                j++;
            }
            *i = j;
            return afternoon;
        }
        /* "abends" starts with an "a" too: fall through to the words. */
    }
    for (size_t k = 0; k < sizeof MERIDIEM_WORDS / sizeof MERIDIEM_WORDS[0]; k++) {
        if (match_word(t, i, MERIDIEM_WORDS[k].word)) {
            return MERIDIEM_WORDS[k].afternoon;
        }
    }
    return -1;
}

/* --- the scanner -------------------------------------------------------------------- */

typedef struct {
    PyObject_HEAD

    /* The dialect, as match_header needs it. */
    int bracketed;
    int twelve_hour;
    Py_UCS4 date_sep;
    int date_sep_space; /* date_sep ". ": one space may follow the dot */
    Py_UCS4 time_sep;
    char32_t datetime_sep[MAX_SEP + 1];
    char32_t header_sep[MAX_SEP + 1];
    int day_field, month_field, year_field; /* which of the three date numbers is which */

    /* What a fast-path message is made of, and who decides and builds the others. */
    PyTypeObject *message_type;
    Py_ssize_t slot_offset[N_FIELDS]; /* where Message's slots live inside an instance */
    PyObject *text_kind;              /* MessageKind.TEXT */
    PyObject *build;                  /* _MessageBuilder(): build(ts, rest, line) */
    PyObject *chat_names;             /* build.chat_names, read live */
    PyObject *needs_classifying;
    PyObject *stats; /* the ParseStats told about unparsed lines */
    uint8_t head_bloom[BLOOM_BITS / 8];
    uint8_t tail_bloom[BLOOM_BITS / 8];
    int ask_python_always; /* some marker suffix is shorter than the bloom's key */

    /* The parse between blocks, as the Python loop keeps it. */
    Py_ssize_t line;
    PyObject *ts;     /* the pending message's time; NULL before the first header */
    Py_ssize_t start; /* its header line */
    PyObject *parts;  /* its text in earlier blocks (a list), or NULL */
    int busy;

    /* The block being read (see "cutting pieces into blocks"): feed() sets it, iterating
     * reads it message by message, so each message can be dropped before the next is
     * made (no batch for the GC to walk). */
    PyObject *carry;             /* the pieces' unfinished last line */
    PyObject *block;             /* the str the current part is in; NULL between blocks */
    Text text;                   /* the current part */
    PyObject *rest_of_block;     /* the str the block's second part is in, or NULL */
    Py_ssize_t rest_start, rest_end;
    Py_ssize_t part_offset;      /* the block's characters in parts before this one */
    Py_ssize_t pos;              /* where the search for the next "\n" resumes */
    Py_ssize_t pending_from;     /* where the pending message's text goes on in this block */
    Py_ssize_t last_lrm;         /* the last LRM seen in this block, or -1 */
    Py_ssize_t block_first_line; /* lines counted before this block */
    Py_ssize_t invalid_line;     /* the header-shaped line that began the current segment */
    int segment;                 /* enum segment: what the text since the last header is */

    /* Builder results by text: `remember` says when a copy is exactly what it would
     * return. memo_names is chat_names as it was when they were learned. */
    PyObject *memo;
    PyObject *memo_names;

    /* Consecutive headers often share a minute, and a chat has few authors. */
    int ts_key[6];
    PyObject *ts_cache;
    PyObject *authors[AUTHOR_CACHE];
} Scanner;

typedef struct {
    Py_ssize_t end; /* just past the header */
    int valid;      /* the date and time exist */
    int year, month, day, hour, minute, second;
} Header;

static int
days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return days[month - 1] + (month == 2 && leap);
}

/* Does the line at i start with this dialect's header? Fills h when it does. */
HOT int
match_header(const Scanner *s, const Text *t, Py_ssize_t i, Header *h)
{
    int value[3], digits[3], n;

    i = skip_invisible(t, i);
    if (s->bracketed) {
        if (char_at(t, i) != '[') {
            return 0;
        }
        i = skip_invisible(t, i + 1);
    }
    /* (?P<date>\d{1,4}S\d{1,4}S\d{1,4}\.?), S the date separator */
    for (int k = 0; k < 3; k++) {
        digits[k] = read_digits(t, &i, &value[k]);
        if (digits[k] < 1 || digits[k] > 4) {
            return 0;
        }
        if (k < 2) {
            if (char_at(t, i) != s->date_sep) {
                return 0;
            }
            i++;
            if (s->date_sep_space && char_at(t, i) == ' ') {
                i++;
            }
        }
    }
    if (char_at(t, i) == '.') {
        i++;
    }
    if (!match_separator(t, &i, s->datetime_sep)) {
        return 0;
    }
    /* (?P<time>\d{1,2}T\d{2}(?:T\d{2})?AMPM)\.? */
    int hour, minute, second = 0, afternoon = -1;
    n = read_digits(t, &i, &hour);
    if (n < 1 || n > 2 || char_at(t, i) != s->time_sep) {
        return 0;
    }
    i++;
    if (read_digits(t, &i, &minute) != 2) {
        return 0;
    }
    if (char_at(t, i) == s->time_sep) {
        /* Optional seconds. Without them the time separator would have to match what
         * follows, and nothing that follows can start with ':' or '.' then a digit. */
        int tens = digit_value(char_at(t, i + 1)), ones = digit_value(char_at(t, i + 2));
        if (tens >= 0 && ones >= 0) {
            second = tens * 10 + ones;
            i += 3;
        }
    }
    if (s->twelve_hour) {
        if (is_space_before_ampm(char_at(t, i))) {
            i++;
        }
        afternoon = match_meridiem(t, &i);
        if (afternoon < 0) {
            return 0;
        }
    }
    if (char_at(t, i) == '.') {
        i++;
    }
    i = skip_invisible(t, i);
    if (s->bracketed) { /* \][ \u00a0]? */
        if (char_at(t, i) != ']') {
            return 0;
        }
        i++;
        if (char_at(t, i) == ' ' || char_at(t, i) == NBSP) {
            i++;
        }
    }
    else if (!match_separator(t, &i, s->header_sep)) {
        return 0;
    }
    h->end = i;

    /* _to_datetime: day and month have at most two digits, a year never three; two-digit
     * years are 20YY; then the date must exist. */
    int day = value[s->day_field], month = value[s->month_field], year = value[s->year_field];
    h->valid = digits[s->day_field] <= 2 && digits[s->month_field] <= 2 &&
               digits[s->year_field] != 3;
    if (digits[s->year_field] <= 2) {
        year += 2000;
    }
    h->valid = h->valid && year >= 1 && month >= 1 && month <= 12 && day >= 1 &&
               day <= days_in_month(year, month);
    /* _time_of_day: 12 AM is midnight, 1-11 PM are 13-23; then the clock must exist. */
    if (afternoon == 1 && hour < 12) {
        hour += 12;
    }
    else if (afternoon == 0 && hour == 12) {
        hour = 0;
    }
    h->valid = h->valid && hour <= 23 && minute <= 59 && second <= 59;
    h->year = year;
    h->month = month;
    h->day = day;
    h->hour = hour;
    h->minute = minute;
    h->second = second;
    return 1;
}

/* Index of the next "\n" at or after i (the length if none). On the way, remember the
 * last LRM: needs_classifying sends every text with one to Python.
 *
 * This loop reads every character of the export. Wide blocks (any emoji makes a block
 * UCS-4) are tested eight characters at a time without branches, which the compiler
 * turns into vector compares; the scalar loop then finds the exact position. */
#define NEXT_NEWLINE_WIDE(CHAR)                                                              \
    do {                                                                                     \
        const CHAR *data = t->data;                                                          \
        for (; i + 8 <= n; i += 8) {                                                         \
            int hit = 0;                                                                     \
            for (int k = 0; k < 8; k++) {                                                    \
                hit |= (data[i + k] == '\n') | (data[i + k] == LRM);                         \
            }                                                                                \
            if (hit) {                                                                       \
                break;                                                                       \
            }                                                                                \
        }                                                                                    \
        for (; i < n; i++) {                                                                 \
            if (data[i] == '\n') {                                                           \
                return i;                                                                    \
            }                                                                                \
            if (data[i] == LRM) {                                                            \
                *last_lrm = i;                                                               \
            }                                                                                \
        }                                                                                    \
        return n;                                                                            \
    } while (0)

static Py_ssize_t
next_newline(const Text *t, Py_ssize_t i, Py_ssize_t *last_lrm)
{
    Py_ssize_t n = t->length;
    if (t->kind == PyUnicode_1BYTE_KIND) { /* no LRM fits in one byte */
        const Py_UCS1 *data = t->data;
        const Py_UCS1 *hit = memchr(data + i, '\n', (size_t)(n - i));
        return hit ? hit - data : n;
    }
    if (t->kind == PyUnicode_2BYTE_KIND) {
        NEXT_NEWLINE_WIDE(Py_UCS2);
    }
    NEXT_NEWLINE_WIDE(Py_UCS4);
}

/* --- needs_classifying, cheaply ----------------------------------------------------- */

/* A marker (markers.CLASSIFY_HEADS, OMITTED, DOCUMENT_OMITTED) starts or ends with one of
 * a few hundred four-character strings. The blooms hold those; a text whose own first or
 * last four characters miss them cannot be a marker. */
HOT unsigned
bloom_key(const Text *t, Py_ssize_t a, Py_ssize_t n)
{
    uint32_t h = 2166136261u ^ (uint32_t)n;
    for (Py_ssize_t k = 0; k < n; k++) {
        h = (h ^ char_at(t, a + k)) * 16777619u;
    }
    return (h ^ (h >> 13)) % BLOOM_BITS;
}

static inline int
bloom_has(const uint8_t *bloom, unsigned key)
{
    return (bloom[key / 8] >> (key % 8)) & 1;
}

static inline void
bloom_add(uint8_t *bloom, unsigned key)
{
    bloom[key / 8] |= (uint8_t)(1u << (key % 8));
}

/* needs_classifying(text) for text = t[a:b]: 1 or 0 when the cheap tests decide, -1 when
 * Python must. `last_lrm` is the position of the last LRM before b, or -1. */
HOT int
quick_needs_classifying(const Scanner *s, const Text *t, Py_ssize_t a, Py_ssize_t b,
                        Py_ssize_t last_lrm)
{
    Py_ssize_t n = b - a;
    if (n == 0) {
        return 1; /* text[-1:] is "", and "" in ">)" is true */
    }
    Py_UCS4 last = char_at(t, b - 1);
    if (last == '>' || last == ')' || last_lrm >= a) {
        return 1;
    }
    if (bloom_has(s->head_bloom, bloom_key(t, a, n < 4 ? n : 4))) {
        return -1;
    }
    if (s->ask_python_always || (n >= 4 && bloom_has(s->tail_bloom, bloom_key(t, b - 4, 4)))) {
        return -1;
    }
    return 0;
}

/* --- building messages -------------------------------------------------------------- */

static PyObject *
datetime_of(Scanner *s, const Header *h)
{
    int key[6] = {h->year, h->month, h->day, h->hour, h->minute, h->second};
    if (s->ts_cache != NULL && memcmp(key, s->ts_key, sizeof key) == 0) {
        return Py_NewRef(s->ts_cache); /* datetimes are immutable: sharing one is safe */
    }
    PyObject *ts = PyDateTimeAPI->DateTime_FromDateAndTime(
        h->year, h->month, h->day, h->hour, h->minute, h->second, 0, Py_None,
        PyDateTimeAPI->DateTimeType);
    if (ts == NULL) {
        return NULL;
    }
    memcpy(s->ts_key, key, sizeof key);
    Py_XSETREF(s->ts_cache, Py_NewRef(ts));
    return ts;
}

/* The author t[a:a+n] as a str, shared with earlier messages by the same author. */
HOT PyObject *
author_of(Scanner *s, const Text *t, Py_ssize_t a, Py_ssize_t n)
{
    unsigned slot = bloom_key(t, a, n) % AUTHOR_CACHE;
    PyObject *cached = s->authors[slot];
    if (cached != NULL && PyUnicode_GET_LENGTH(cached) == n) {
        int kind = PyUnicode_KIND(cached);
        const void *data = PyUnicode_DATA(cached);
        Py_ssize_t k = 0;
        while (k < n && PyUnicode_READ(kind, data, k) == char_at(t, a + k)) {
            k++;
        }
        if (k == n) {
            return Py_NewRef(cached);
        }
    }
    PyObject *author = substring(t, a, a + n);
    if (author != NULL) {
        Py_XSETREF(s->authors[slot], Py_NewRef(author));
    }
    return author;
}

/* Message(ts, author, text, kind, edited, media, line, notice), without running the
 * dataclass's Python __init__: allocate the instance and fill its slots, as
 * object.__new__ and the slot descriptors would. Borrows every value. */
static PyObject *
new_message(Scanner *s, PyObject *const values[N_FIELDS])
{
    PyObject *message = s->message_type->tp_alloc(s->message_type, 0);
    if (message == NULL) {
        return NULL;
    }
    for (int k = 0; k < N_FIELDS; k++) {
        *(PyObject **)((char *)message + s->slot_offset[k]) = Py_NewRef(values[k]);
    }
    return message;
}

/* The hot path's Message(ts, author, text, TEXT, False, None, line). */
static PyObject *
new_text_message(Scanner *s, PyObject *author, PyObject *text, PyObject *line)
{
    PyObject *values[N_FIELDS] = {s->ts,    author,  text, s->text_kind,
                                  Py_False, Py_None, line, Py_None};
    return new_message(s, values);
}

/* --- remembering the builder ----------------------------------------------------------
 *
 * build(ts, rest, line) classifies in Python at ~4 us a message, and most messages it
 * gets are placeholders that repeat ("Sam: <Media omitted>", "Sam: This message was
 * deleted"). Its result depends on `rest` and chat_names alone, ts and line are copied
 * into it, and it may change chat_names. So after a call that left chat_names as it was,
 * a later call with the same `rest` and the same chat_names returns an equal message
 * with its own ts and line: we keep the other fields and copy them. Only values no one
 * can change are kept (str, bool, int, None, and a Media whose slots hold only those),
 * so the copies share nothing mutable. */

static int
is_immutable_value(PyObject *value)
{
    return value == Py_None || PyUnicode_Check(value) || PyBool_Check(value) ||
           PyLong_CheckExact(value);
}

/* A plain slots object (like Media) holding only immutable values? */
static int
is_copyable_record(PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp->tp_members == NULL || tp->tp_dictoffset != 0 || tp->tp_weaklistoffset != 0 ||
        tp->tp_itemsize != 0 || tp->tp_base != &PyBaseObject_Type || tp->tp_alloc == NULL) {
        return 0;
    }
    for (PyMemberDef *m = tp->tp_members; m->name != NULL; m++) {
        if (m->type != Py_T_OBJECT_EX || (m->flags & READONLY)) {
            return 0;
        }
        PyObject *value = *(PyObject **)((char *)obj + m->offset);
        if (value == NULL || !is_immutable_value(value)) {
            return 0;
        }
    }
    return 1;
}

/* copy.copy() of an object that passed is_copyable_record. */
static PyObject *
copy_record(PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    PyObject *copy = tp->tp_alloc(tp, 0);
    if (copy == NULL) {
        return NULL;
    }
    for (PyMemberDef *m = tp->tp_members; m->name != NULL; m++) {
        PyObject *value = *(PyObject **)((char *)obj + m->offset);
        *(PyObject **)((char *)copy + m->offset) = Py_NewRef(value);
    }
    return copy;
}

/* Is chat_names still what memo_names recorded? 1, 0, or -1 on error. */
static int
names_unchanged(Scanner *s)
{
    Py_ssize_t n = PySet_GET_SIZE(s->chat_names);
    if (s->memo_names == NULL || PySet_GET_SIZE(s->memo_names) != n) {
        return 0;
    }
    return n == 0 ? 1 : PyObject_RichCompareBool(s->chat_names, s->memo_names, Py_EQ);
}

/* After message = build(s->ts, rest, line), with chat_names as memo_names says before
 * the call: keep its fields if the next identical call is sure to give an equal message. */
static int
remember(Scanner *s, PyObject *rest, PyObject *message, PyObject *line)
{
    if (!Py_IS_TYPE(message, s->message_type)) {
        return 0;
    }
    PyObject *field[N_FIELDS]; /* ts, author, text, kind, edited, media, line, notice */
    for (int k = 0; k < N_FIELDS; k++) {
        field[k] = *(PyObject **)((char *)message + s->slot_offset[k]);
        if (field[k] == NULL) {
            return 0;
        }
    }
    if (field[0] != s->ts || field[6] != line || !is_immutable_value(field[1]) ||
        !is_immutable_value(field[2]) || !is_immutable_value(field[3]) ||
        !is_immutable_value(field[4]) || !is_immutable_value(field[7]) ||
        (field[5] != Py_None && !is_copyable_record(field[5]))) {
        return 0;
    }
    int unchanged = names_unchanged(s); /* else the builder learned or forgot a chat name */
    if (unchanged <= 0) {
        return unchanged;
    }
    /* Keep a copy of the media: whoever gets this message may set its media's path. */
    PyObject *media = field[5] == Py_None ? Py_NewRef(Py_None) : copy_record(field[5]);
    if (media == NULL) {
        return -1;
    }
    PyObject *template = PyTuple_Pack(6, field[1], field[2], field[3], field[4], media, field[7]);
    Py_DECREF(media);
    if (template == NULL) {
        return -1;
    }
    if (PyDict_GET_SIZE(s->memo) >= MEMO_MAX_ENTRIES) {
        PyDict_Clear(s->memo);
    }
    int failed = PyDict_SetItem(s->memo, rest, template);
    Py_DECREF(template);
    return failed;
}

/* The message build(s->ts, rest, line) would return, from what `remember` kept. */
static PyObject *
recall(Scanner *s, PyObject *template, PyObject *line)
{
    PyObject *media = PyTuple_GET_ITEM(template, 4);
    media = media == Py_None ? Py_NewRef(Py_None) : copy_record(media);
    if (media == NULL) {
        return NULL;
    }
    PyObject *values[N_FIELDS] = {s->ts,
                                  PyTuple_GET_ITEM(template, 0),
                                  PyTuple_GET_ITEM(template, 1),
                                  PyTuple_GET_ITEM(template, 2),
                                  PyTuple_GET_ITEM(template, 3),
                                  media,
                                  line,
                                  PyTuple_GET_ITEM(template, 5)};
    PyObject *message = new_message(s, values);
    Py_DECREF(media);
    return message;
}

/* build(s->ts, rest, line), or a copy of its remembered result. */
static PyObject *
build_message(Scanner *s, PyObject *rest, PyObject *line)
{
    int memo = PyUnicode_GET_LENGTH(rest) <= MEMO_MAX_TEXT;
    if (memo) {
        int unchanged = names_unchanged(s);
        if (unchanged < 0) {
            return NULL;
        }
        if (!unchanged) { /* what the memo holds was learned with other chat names */
            PyDict_Clear(s->memo);
            Py_XSETREF(s->memo_names, PyFrozenSet_New(s->chat_names));
            if (s->memo_names == NULL) {
                return NULL;
            }
        }
        PyObject *template = PyDict_GetItemWithError(s->memo, rest); /* borrowed */
        if (template != NULL) {
            return recall(s, template, line);
        }
        if (PyErr_Occurred()) {
            return NULL;
        }
    }
    PyObject *args[3] = {s->ts, rest, line};
    PyObject *message = PyObject_Vectorcall(s->build, args, 3, NULL);
    if (message != NULL && memo && remember(s, rest, message, line) < 0) {
        Py_CLEAR(message);
    }
    return message;
}

/* The hot path's author, or 0 when it has none: rest.find(": ", 0, 82) > 0 and the name
 * before it is (ASCII or printable), on one line and without quotes. */
HOT Py_ssize_t
hot_author_length(const Text *t, Py_ssize_t a, Py_ssize_t b)
{
    Py_ssize_t end = b - a < AUTHOR_WINDOW ? b : a + AUTHOR_WINDOW;
    int ascii = 1, printable = 1; /* author.isascii() or author.isprintable() */
    for (Py_ssize_t k = a; k + 1 < end; k++) {
        Py_UCS4 c = char_at(t, k);
        if (c == ':' && char_at(t, k + 1) == ' ') {
            return (k > a && (ascii || printable)) ? k - a : 0;
        }
        if (c == '\n' || c == '"' || c == 0x201C) {
            return 0; /* the first ": " would come after it: not the hot path */
        }
        if (c < 128) {
            printable = printable && c >= 0x20 && c != 0x7F;
        }
        else {
            ascii = 0;
            printable = printable && Py_UNICODE_ISPRINTABLE(c);
        }
    }
    return 0;
}

/* One message whose text after the header is t[a:b], as the Python loop's hot path or
 * its builder would make it. A new reference, or NULL with an exception set. */
HOT PyObject *
make_message(Scanner *s, const Text *t, Py_ssize_t a, Py_ssize_t b, Py_ssize_t last_lrm)
{
    PyObject *line = PyLong_FromSsize_t(s->start);
    if (line == NULL) {
        return NULL;
    }
    PyObject *message = NULL, *author = NULL, *text = NULL, *rest = NULL;
    Py_ssize_t cut = hot_author_length(t, a, b);
    if (cut > 0) {
        Py_ssize_t text_start = a + cut + 2;
        /* not text.startswith(author) */
        int starts_with_author = b - text_start >= cut;
        for (Py_ssize_t k = 0; starts_with_author && k < cut; k++) {
            starts_with_author = char_at(t, text_start + k) == char_at(t, a + k);
        }
        int needs = starts_with_author ? 1 : quick_needs_classifying(s, t, text_start, b, last_lrm);
        if (needs != 1) {
            author = author_of(s, t, a, cut);
            if (author == NULL) {
                goto done;
            }
            /* author not in chat_names: the builder may have learned a name just now */
            int chat_name = PySet_GET_SIZE(s->chat_names) ? PySet_Contains(s->chat_names, author) : 0;
            if (chat_name < 0) {
                goto done;
            }
            if (!chat_name) {
                text = substring(t, text_start, b);
                if (text == NULL) {
                    goto done;
                }
                if (needs < 0) {
                    PyObject *answer = PyObject_CallOneArg(s->needs_classifying, text);
                    if (answer == NULL) {
                        goto done;
                    }
                    needs = PyObject_IsTrue(answer);
                    Py_DECREF(answer);
                    if (needs < 0) {
                        goto done;
                    }
                }
                if (!needs) {
                    message = new_text_message(s, author, text, line);
                    goto done;
                }
            }
        }
    }
    /* Everything else is the builder's: build(ts, rest, line). */
    rest = substring(t, a, b);
    if (rest != NULL) {
        message = build_message(s, rest, line);
    }
done:
    Py_XDECREF(rest);
    Py_XDECREF(text);
    Py_XDECREF(author);
    Py_DECREF(line);
    return message;
}

/* "".join(parts), or "" without parts. */
static PyObject *
join_parts(PyObject *parts)
{
    PyObject *empty = PyUnicode_New(0, 0);
    if (empty == NULL || parts == NULL) {
        return empty;
    }
    PyObject *joined = PyUnicode_Join(empty, parts);
    Py_DECREF(empty);
    return joined;
}

/* The pending message, whose text is s->parts + t[a:b]. */
HOT PyObject *
pending_message(Scanner *s, const Text *t, Py_ssize_t a, Py_ssize_t b, Py_ssize_t last_lrm)
{
    PyObject *message;
    if (s->parts == NULL) {
        message = make_message(s, t, a, b, last_lrm);
    }
    else {
        /* Rare: the message began in an earlier block. Join its text and look again. */
        PyObject *piece = substring(t, a, b);
        if (piece == NULL || PyList_Append(s->parts, piece) < 0) {
            Py_XDECREF(piece);
            return NULL;
        }
        Py_DECREF(piece);
        PyObject *rest = join_parts(s->parts);
        Py_CLEAR(s->parts);
        Text joined;
        if (rest == NULL || text_of(rest, &joined) < 0) {
            Py_XDECREF(rest);
            return NULL;
        }
        Py_ssize_t lrm = PyUnicode_FindChar(rest, LRM, 0, joined.length, -1);
        message = lrm < -1 ? NULL : make_message(s, &joined, 0, joined.length, lrm);
        Py_DECREF(rest);
    }
    return message;
}

static int
note_unparsed(Scanner *s, Py_ssize_t line, Py_ssize_t count)
{
    PyObject *result = PyObject_CallMethod(s->stats, "note_unparsed", "nn", line, count);
    Py_XDECREF(result);
    return result == NULL ? -1 : 0;
}

enum segment { HEAD, AFTER_VALID, AFTER_INVALID };

/* The text before a header (or the block's end) has been read: report it as the Python
 * loop does. Lines before the first header of the export are unparsed; so is a
 * header-shaped line with an impossible date, with its continuation in this block.
 * `empty`: the segment has no characters; `last_line`: the last line that started in it. */
static int
close_segment(Scanner *s, enum segment segment, int empty, Py_ssize_t last_line,
              Py_ssize_t block_first_line, Py_ssize_t invalid_line)
{
    if (segment == HEAD && !empty && s->ts == NULL) {
        return note_unparsed(s, block_first_line + 1, last_line - block_first_line);
    }
    if (segment == AFTER_INVALID) {
        return note_unparsed(s, invalid_line, last_line - invalid_line + 1);
    }
    return 0;
}

/* --- cutting pieces into blocks ----------------------------------------------------------
 *
 * feed() takes the export's pieces as they come (whole text, lines, ~1 MB blocks). The
 * Python loop cuts them with _newline_led(_lines_whole(pieces)): each piece up to its
 * last line end, joined to the unfinished line before it, "\r\n" and "\r" made "\n", and
 * that line end moved to the front of the next block. Copying each block that way costs
 * more than a tenth of the whole parse, so for pieces without "\r" the scanner reads the
 * same block in place, in two parts: "\n" + carry + the piece's first line (a small new
 * str), then the piece from its first line end to its last. Pieces with a "\r" take the
 * Python loop's own str operations, in the same order. */

static PyObject *LF, *CR, *CRLF; /* "\n", "\r", "\r\n" */

/* text.replace("\r\n", "\n").replace("\r", "\n") */
static PyObject *
normalize_newlines(PyObject *text)
{
    PyObject *once = PyUnicode_Replace(text, CRLF, LF, -1);
    if (once == NULL) {
        return NULL;
    }
    PyObject *twice = PyUnicode_Replace(once, CR, LF, -1);
    Py_DECREF(once);
    return twice;
}

/* Start reading a block: first[:], then rest[rest_start:rest_end] if rest is not NULL. */
static int
start_block(Scanner *s, PyObject *first, PyObject *rest, Py_ssize_t rest_start,
            Py_ssize_t rest_end)
{
    if (text_of(first, &s->text) < 0) {
        return -1;
    }
    s->block = Py_NewRef(first);
    Py_XSETREF(s->rest_of_block, Py_XNewRef(rest));
    s->rest_start = rest_start;
    s->rest_end = rest_end;
    s->part_offset = 0;
    s->pos = 0;
    s->pending_from = 0;
    s->last_lrm = -1;
    s->block_first_line = s->line;
    s->invalid_line = 0;
    s->segment = HEAD;
    return 0;
}

/* _lines_whole for a piece when it or the carry holds a "\r". */
static int
cut_with_cr(Scanner *s, PyObject *piece)
{
    PyObject *whole = PyUnicode_Concat(s->carry, piece), *block = NULL, *carry = NULL;
    int result = -1;
    if (whole == NULL) {
        return -1;
    }
    Py_ssize_t n = PyUnicode_GET_LENGTH(whole);
    int trailing_cr = n > 0 && PyUnicode_READ_CHAR(whole, n - 1) == '\r';
    if (trailing_cr) { /* the "\n" of a CRLF may open the next piece */
        Py_SETREF(whole, PyUnicode_Substring(whole, 0, n - 1));
        if (whole == NULL) {
            return -1;
        }
    }
    Py_SETREF(whole, normalize_newlines(whole));
    if (whole == NULL) {
        return -1;
    }
    n = PyUnicode_GET_LENGTH(whole);
    Py_ssize_t cut = PyUnicode_FindChar(whole, '\n', 0, n, -1) + 1;
    if (cut < 0) {
        goto done;
    }
    carry = PyUnicode_Substring(whole, cut, n);
    if (carry != NULL && trailing_cr) {
        Py_SETREF(carry, PyUnicode_Concat(carry, CR));
    }
    if (carry == NULL) {
        goto done;
    }
    Py_SETREF(s->carry, carry);
    if (cut == 0) { /* no line ends yet */
        result = 0;
        goto done;
    }
    PyObject *lines = PyUnicode_Substring(whole, 0, cut - 1);
    if (lines != NULL) {
        block = PyUnicode_Concat(LF, lines); /* _newline_led */
        Py_DECREF(lines);
    }
    if (block != NULL) {
        result = start_block(s, block, NULL, 0, 0);
    }
done:
    Py_XDECREF(block);
    Py_DECREF(whole);
    return result;
}

/* feed(piece) -> self: take the next piece of the export; iterate for the messages that
 * end in it. */
static PyObject *
Scanner_feed(Scanner *s, PyObject *piece)
{
    if (!PyUnicode_Check(piece)) {
        PyErr_Format(PyExc_TypeError, "feed() takes a str, not %.100s", Py_TYPE(piece)->tp_name);
        return NULL;
    }
    if (s->build == NULL || s->busy || s->block != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Scanner is not initialised, busy, or still reading a block");
        return NULL;
    }
    Text t;
    if (text_of(piece, &t) < 0) {
        return NULL;
    }
    Py_ssize_t n = t.length;
    Py_ssize_t cr = PyUnicode_FindChar(piece, '\r', 0, n, 1);
    if (cr == -1) {
        cr = PyUnicode_FindChar(s->carry, '\r', 0, PyUnicode_GET_LENGTH(s->carry), 1);
    }
    if (cr < -1) {
        return NULL;
    }
    if (cr >= 0) {
        return cut_with_cr(s, piece) < 0 ? NULL : Py_NewRef(s);
    }
    Py_ssize_t first = PyUnicode_FindChar(piece, '\n', 0, n, 1);
    if (first < -1) {
        return NULL;
    }
    if (first == -1) { /* no line ends in this piece: it all waits for the next */
        PyObject *carry = PyUnicode_Concat(s->carry, piece);
        if (carry == NULL) {
            return NULL;
        }
        Py_SETREF(s->carry, carry);
        return Py_NewRef(s);
    }
    Py_ssize_t last = PyUnicode_FindChar(piece, '\n', first, n, -1);
    PyObject *start = PyUnicode_Concat(LF, s->carry), *line = NULL, *head = NULL, *carry = NULL;
    if (start != NULL && (line = PyUnicode_Substring(piece, 0, first)) != NULL) {
        head = PyUnicode_Concat(start, line); /* "\n" + carry + the first line */
    }
    if (head != NULL) {
        carry = PyUnicode_Substring(piece, last + 1, n);
    }
    int failed = carry == NULL || last < 0;
    if (!failed) {
        Py_SETREF(s->carry, carry);
        carry = NULL;
        failed = start_block(s, head, last > first ? piece : NULL, first, last) < 0;
    }
    Py_XDECREF(start);
    Py_XDECREF(line);
    Py_XDECREF(head);
    Py_XDECREF(carry);
    return failed ? NULL : Py_NewRef(s);
}

/* The pending message goes on past this part: keep its text so far. */
static int
keep_pending_text(Scanner *s)
{
    const Text *t = &s->text;
    if (s->ts == NULL || s->pending_from >= t->length) {
        return 0;
    }
    if (s->parts == NULL && (s->parts = PyList_New(0)) == NULL) {
        return -1;
    }
    PyObject *piece = substring(t, s->pending_from, t->length);
    if (piece == NULL || PyList_Append(s->parts, piece) < 0) {
        Py_XDECREF(piece);
        return -1;
    }
    Py_DECREF(piece);
    return 0;
}

/* The next message that ends in the current part; NULL without an error at its end.
 * `kind` is a constant in each of the copies next_in_block calls. */
HOT PyObject *
next_in_block_of_kind(Scanner *s, int kind)
{
    Text text = s->text;
    text.kind = kind;
    const Text *t = &text;
    for (;;) {
        /* Every "\n" starts a line; re.split tries the header expression at each one. */
        Py_ssize_t newline = next_newline(t, s->pos, &s->last_lrm);
        if (newline >= t->length) {
            s->pos = t->length;
            return NULL;
        }
        s->line++;
        Header h;
        if (!match_header(s, t, newline + 1, &h)) {
            s->pos = newline + 1;
            continue;
        }
        if (close_segment(s, s->segment, s->part_offset + newline == 0, s->line - 1,
                          s->block_first_line, s->invalid_line) < 0) {
            return NULL;
        }
        if (!h.valid) { /* shaped like a header, but not one: it continues the message */
            s->segment = AFTER_INVALID;
            s->invalid_line = s->line;
            s->pos = newline + 1; /* its characters are message text: look for LRMs in them */
            continue;
        }
        PyObject *message = NULL;
        if (s->ts != NULL) {
            /* s->start is the pending message's line until the new header replaces it */
            message = pending_message(s, t, s->pending_from, newline, s->last_lrm);
            if (message == NULL) {
                return NULL;
            }
        }
        PyObject *ts = datetime_of(s, &h);
        if (ts == NULL) {
            Py_XDECREF(message);
            return NULL;
        }
        Py_XSETREF(s->ts, ts);
        s->start = s->line;
        s->pending_from = s->pos = h.end;
        s->segment = AFTER_VALID;
        if (message != NULL) {
            return message;
        }
    }
}

static PyObject *
next_in_block(Scanner *s)
{
    switch (s->text.kind) {
    case PyUnicode_1BYTE_KIND:
        return next_in_block_of_kind(s, PyUnicode_1BYTE_KIND);
    case PyUnicode_2BYTE_KIND:
        return next_in_block_of_kind(s, PyUnicode_2BYTE_KIND);
    default:
        return next_in_block_of_kind(s, PyUnicode_4BYTE_KIND);
    }
}

/* The next message of the fed pieces; NULL without an error when they are read. */
static PyObject *
next_message(Scanner *s)
{
    while (s->block != NULL) {
        PyObject *message = next_in_block(s);
        if (message != NULL || PyErr_Occurred()) {
            return message;
        }
        if (s->rest_of_block != NULL) { /* on to the block's second part */
            if (keep_pending_text(s) < 0) {
                return NULL;
            }
            s->part_offset += s->text.length;
            Py_SETREF(s->block, s->rest_of_block);
            s->rest_of_block = NULL;
            if (text_part(s->block, s->rest_start, s->rest_end, &s->text) < 0) {
                return NULL;
            }
            s->pos = 0;
            s->pending_from = 0;
            s->last_lrm = -1;
            continue;
        }
        /* The block is read: report its last segment, keep the pending message's text. */
        if (close_segment(s, s->segment, s->part_offset + s->text.length == 0, s->line,
                          s->block_first_line, s->invalid_line) < 0 ||
            keep_pending_text(s) < 0) {
            return NULL;
        }
        Py_CLEAR(s->block);
    }
    return NULL;
}

static PyObject *
Scanner_next(Scanner *s)
{
    if (s->busy) {
        PyErr_SetString(PyExc_RuntimeError, "Scanner is busy");
        return NULL;
    }
    s->busy = 1; /* build() and needs_classifying() are Python: they must not re-enter */
    PyObject *message = next_message(s);
    s->busy = 0;
    return message;
}

/* finish() -> list[Message]: the messages of the unfinished last line, then the last
 * message, which the Python loop always builds. */
static PyObject *
Scanner_finish(Scanner *s, PyObject *Py_UNUSED(ignored))
{
    if (s->build == NULL || s->busy || s->block != NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "Scanner is not initialised, busy, or still reading a block");
        return NULL;
    }
    PyObject *out = PyList_New(0), *message = NULL;
    if (out == NULL) {
        return NULL;
    }
    if (PyUnicode_GET_LENGTH(s->carry) > 0) { /* _lines_whole's last piece, _newline_led */
        PyObject *last = normalize_newlines(s->carry), *block = NULL;
        if (last != NULL) {
            Py_ssize_t n = PyUnicode_GET_LENGTH(last);
            if (n > 0 && PyUnicode_READ_CHAR(last, n - 1) == '\n') {
                Py_SETREF(last, PyUnicode_Substring(last, 0, n - 1));
            }
        }
        if (last != NULL) {
            block = PyUnicode_Concat(LF, last);
            Py_DECREF(last);
        }
        int failed = block == NULL || start_block(s, block, NULL, 0, 0) < 0;
        Py_XDECREF(block);
        if (failed) {
            goto error;
        }
        Py_SETREF(s->carry, PyUnicode_New(0, 0));
        s->busy = 1;
        while ((message = next_message(s)) != NULL) {
            if (PyList_Append(out, message) < 0) {
                s->busy = 0;
                goto error;
            }
            Py_CLEAR(message);
        }
        s->busy = 0;
        if (PyErr_Occurred() || s->carry == NULL) {
            goto error;
        }
    }
    if (s->ts != NULL) {
        PyObject *rest = join_parts(s->parts);
        PyObject *line = PyLong_FromSsize_t(s->start);
        if (rest != NULL && line != NULL) {
            PyObject *args[3] = {s->ts, rest, line};
            message = PyObject_Vectorcall(s->build, args, 3, NULL);
        }
        Py_XDECREF(rest);
        Py_XDECREF(line);
        if (message == NULL || PyList_Append(out, message) < 0) {
            goto error;
        }
        Py_CLEAR(message);
        Py_CLEAR(s->ts);
        Py_CLEAR(s->parts);
    }
    return out;
error:
    Py_XDECREF(message);
    Py_DECREF(out);
    return NULL;
}

/* --- construction ------------------------------------------------------------------- */

static int
unsupported(const char *why)
{
    PyErr_SetString(Unsupported, why);
    return -1;
}

/* A one-character separator, or NO_CHAR. */
static Py_UCS4
single_char(PyObject *str)
{
    return PyUnicode_GET_LENGTH(str) == 1 ? PyUnicode_READ_CHAR(str, 0) : NO_CHAR;
}

/* Copy a multi-character separator, refusing what would break the forward matching:
 * a leading '.' (the optional dot before it could take it), digits, marks. */
static int
copy_separator(PyObject *str, char32_t *out, const char *name)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(str);
    if (n < 1 || n > MAX_SEP) {
        PyErr_Format(Unsupported, "%s of %zd characters", name, n);
        return -1;
    }
    for (Py_ssize_t k = 0; k < n; k++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(str, k);
        if (digit_value(c) >= 0 || is_invisible(c) || c == '\n' || (k == 0 && c == '.')) {
            PyErr_Format(Unsupported, "%s %R", name, str);
            return -1;
        }
        out[k] = c;
    }
    out[n] = 0;
    return 0;
}

static int
get_str(PyObject *obj, const char *name, PyObject **out)
{
    *out = PyObject_GetAttrString(obj, name);
    if (*out != NULL && !PyUnicode_Check(*out)) {
        PyErr_Format(PyExc_TypeError, "dialect.%s must be a str", name);
        Py_CLEAR(*out);
    }
    return *out == NULL ? -1 : 0;
}

static int
get_flag(PyObject *obj, const char *name)
{
    PyObject *value = PyObject_GetAttrString(obj, name);
    if (value == NULL) {
        return -1;
    }
    int flag = PyObject_IsTrue(value);
    Py_DECREF(value);
    return flag;
}

/* Read the Dialect; refuse what match_header does not translate exactly. */
static int
read_dialect(Scanner *s, PyObject *dialect)
{
    static const char *const unsupported_flags[] = {"time_first", "marked_date", "era"};
    for (int k = 0; k < 3; k++) {
        int flag = get_flag(dialect, unsupported_flags[k]);
        if (flag != 0) {
            return flag < 0 ? -1 : unsupported(unsupported_flags[k]);
        }
    }
    if ((s->bracketed = get_flag(dialect, "bracketed")) < 0 ||
        (s->twelve_hour = get_flag(dialect, "twelve_hour")) < 0) {
        return -1;
    }
    PyObject *date_sep = NULL, *datetime_sep = NULL, *time_sep = NULL, *header_sep = NULL,
             *order = NULL;
    int result = -1;
    if (get_str(dialect, "date_sep", &date_sep) < 0 ||
        get_str(dialect, "datetime_sep", &datetime_sep) < 0 ||
        get_str(dialect, "time_sep", &time_sep) < 0 ||
        get_str(dialect, "header_sep", &header_sep) < 0 || get_str(dialect, "order", &order) < 0) {
        goto done;
    }
    /* date_sep: "/", ".", "-", or ". " (a dot and an optional space) */
    Py_ssize_t n = PyUnicode_GET_LENGTH(date_sep);
    s->date_sep = n ? PyUnicode_READ_CHAR(date_sep, 0) : NO_CHAR;
    s->date_sep_space = n == 2 && PyUnicode_READ_CHAR(date_sep, 1) == ' ';
    if ((n != 1 && !s->date_sep_space) || !(s->date_sep == '/' || s->date_sep == '.' ||
                                             s->date_sep == '-')) {
        PyErr_Format(Unsupported, "date_sep %R", date_sep);
        goto done;
    }
    s->time_sep = single_char(time_sep);
    if (s->time_sep != ':' && s->time_sep != '.') {
        PyErr_Format(Unsupported, "time_sep %R", time_sep);
        goto done;
    }
    if (copy_separator(datetime_sep, s->datetime_sep, "datetime_sep") < 0) {
        goto done;
    }
    if (!s->bracketed && copy_separator(header_sep, s->header_sep, "header_sep") < 0) {
        goto done;
    }
    /* order: which field is the day, the month, the year ("DMY", "YMD", ...) */
    s->day_field = s->month_field = s->year_field = -1;
    for (Py_ssize_t k = 0; k < PyUnicode_GET_LENGTH(order) && k < 3; k++) {
        Py_UCS4 c = PyUnicode_READ_CHAR(order, k);
        int *field = c == 'D' ? &s->day_field : c == 'M' ? &s->month_field
                                            : c == 'Y' ? &s->year_field : NULL;
        if (field != NULL && *field < 0) {
            *field = (int)k;
        }
    }
    if (PyUnicode_GET_LENGTH(order) != 3 || s->day_field < 0 || s->month_field < 0 ||
        s->year_field < 0) {
        PyErr_Format(Unsupported, "order %R", order);
        goto done;
    }
    result = 0;
done:
    Py_XDECREF(date_sep);
    Py_XDECREF(datetime_sep);
    Py_XDECREF(time_sep);
    Py_XDECREF(header_sep);
    Py_XDECREF(order);
    return result;
}

/* Find where each of Message's fields lives: it must be a plain slots class. */
static int
read_message_type(Scanner *s, PyObject *type)
{
    if (!PyType_Check(type)) {
        PyErr_SetString(PyExc_TypeError, "message must be a class");
        return -1;
    }
    PyTypeObject *tp = (PyTypeObject *)type;
    if (tp->tp_alloc == NULL || PyObject_HasAttrString(type, "__post_init__")) {
        return unsupported("message class is not a plain slots dataclass");
    }
    for (int k = 0; k < N_FIELDS; k++) {
        PyObject *descr = PyObject_GetAttrString(type, MESSAGE_FIELDS[k]);
        if (descr == NULL) {
            return -1;
        }
        int ok = Py_IS_TYPE(descr, &PyMemberDescr_Type) &&
                 ((PyMemberDescrObject *)descr)->d_member->type == Py_T_OBJECT_EX &&
                 !(((PyMemberDescrObject *)descr)->d_member->flags & READONLY);
        if (ok) {
            s->slot_offset[k] = ((PyMemberDescrObject *)descr)->d_member->offset;
        }
        Py_DECREF(descr);
        if (!ok) {
            PyErr_Format(Unsupported, "Message.%s is not a slot", MESSAGE_FIELDS[k]);
            return -1;
        }
    }
    return 0;
}

/* Fill a bloom with the first (or last) `width` characters of each str in `strings`. A
 * str shorter than `width`: added whole if `shorter_ok` (a head is compared whole with
 * text[:4]), else it makes every text go to Python. */
static int
fill_bloom(Scanner *s, uint8_t *bloom, PyObject *strings, int from_end, int shorter_ok)
{
    PyObject *iterator = PyObject_GetIter(strings), *item;
    if (iterator == NULL) {
        return -1;
    }
    while ((item = PyIter_Next(iterator)) != NULL) {
        Text t;
        if (!PyUnicode_Check(item) || text_of(item, &t) < 0) {
            Py_DECREF(item);
            Py_DECREF(iterator);
            if (!PyErr_Occurred()) {
                PyErr_SetString(PyExc_TypeError, "markers must be str");
            }
            return -1;
        }
        if (t.length >= 4) {
            bloom_add(bloom, bloom_key(&t, from_end ? t.length - 4 : 0, 4));
        }
        else if (shorter_ok) {
            bloom_add(bloom, bloom_key(&t, 0, t.length));
        }
        else {
            s->ask_python_always = 1;
        }
        Py_DECREF(item);
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

static int
check_same(PyObject *given, PyObject *expected, const char *what)
{
    if (expected == NULL) {
        return -1;
    }
    int same = PyUnicode_Check(given) && PyUnicode_Compare(given, expected) == 0;
    Py_DECREF(expected);
    if (PyErr_Occurred()) {
        return -1;
    }
    return same ? 0 : unsupported(what);
}

static int
Scanner_init(Scanner *s, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"dialect", "stats", "build", "chat_names", "message", "text_kind",
                               "needs_classifying", "heads", "omitted", "suffixes", "invisible",
                               "ampm", NULL};
    PyObject *dialect, *stats, *build, *chat_names, *message, *text_kind, *needs_classifying;
    PyObject *heads, *omitted, *suffixes, *invisible, *ampm;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO$OOOOOOOO:Scanner", keywords, &dialect,
                                     &stats, &build, &chat_names, &message, &text_kind,
                                     &needs_classifying, &heads, &omitted, &suffixes, &invisible,
                                     &ampm)) {
        return -1;
    }
    if (s->build != NULL) { /* feed() and finish() take a set `build` to mean "ready" */
        PyErr_SetString(PyExc_RuntimeError, "Scanner is already initialised");
        return -1;
    }
    if (!PyAnySet_Check(chat_names)) {
        PyErr_SetString(PyExc_TypeError, "chat_names must be a set");
        return -1;
    }
    /* Refuse if whatsapp.py's marks or AM/PM words are not the ones compiled in here. */
    Py_ssize_t n_invisible = (Py_ssize_t)(sizeof INVISIBLE / sizeof INVISIBLE[0]) - 1;
    if (check_same(invisible,
                   PyUnicode_FromKindAndData(PyUnicode_4BYTE_KIND, INVISIBLE, n_invisible),
                   "markers.INVISIBLE changed") < 0 ||
        check_same(ampm, PyUnicode_FromString(AMPM_PATTERN), "the AM/PM expression changed") < 0) {
        return -1;
    }
    if (read_dialect(s, dialect) < 0 || read_message_type(s, message) < 0) {
        return -1;
    }
    if (fill_bloom(s, s->head_bloom, heads, 0, 1) < 0 ||
        fill_bloom(s, s->head_bloom, omitted, 0, 1) < 0 || /* text in OMITTED: same head */
        fill_bloom(s, s->tail_bloom, suffixes, 1, 0) < 0) {
        return -1;
    }
    if ((s->memo = PyDict_New()) == NULL || (s->carry = PyUnicode_New(0, 0)) == NULL) {
        return -1;
    }
    s->message_type = (PyTypeObject *)Py_NewRef(message);
    s->stats = Py_NewRef(stats);
    s->chat_names = Py_NewRef(chat_names);
    s->text_kind = Py_NewRef(text_kind);
    s->needs_classifying = Py_NewRef(needs_classifying);
    s->build = Py_NewRef(build); /* last: the scanner is ready */
    return 0;
}

static int
Scanner_traverse(Scanner *s, visitproc visit, void *arg)
{
    Py_VISIT(s->message_type);
    Py_VISIT(s->text_kind);
    Py_VISIT(s->build);
    Py_VISIT(s->chat_names);
    Py_VISIT(s->needs_classifying);
    Py_VISIT(s->stats);
    Py_VISIT(s->ts);
    Py_VISIT(s->parts);
    Py_VISIT(s->block);
    Py_VISIT(s->carry);
    Py_VISIT(s->rest_of_block);
    Py_VISIT(s->memo);
    Py_VISIT(s->memo_names);
    Py_VISIT(s->ts_cache);
    for (int k = 0; k < AUTHOR_CACHE; k++) {
        Py_VISIT(s->authors[k]);
    }
    return 0;
}

static int
Scanner_clear(Scanner *s)
{
    Py_CLEAR(s->message_type);
    Py_CLEAR(s->text_kind);
    Py_CLEAR(s->build);
    Py_CLEAR(s->chat_names);
    Py_CLEAR(s->needs_classifying);
    Py_CLEAR(s->stats);
    Py_CLEAR(s->ts);
    Py_CLEAR(s->parts);
    Py_CLEAR(s->block);
    Py_CLEAR(s->carry);
    Py_CLEAR(s->rest_of_block);
    Py_CLEAR(s->memo);
    Py_CLEAR(s->memo_names);
    Py_CLEAR(s->ts_cache);
    for (int k = 0; k < AUTHOR_CACHE; k++) {
        Py_CLEAR(s->authors[k]);
    }
    return 0;
}

static void
Scanner_dealloc(Scanner *s)
{
    PyObject_GC_UnTrack(s);
    Scanner_clear(s);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

static PyMethodDef Scanner_methods[] = {
    {"feed", (PyCFunction)Scanner_feed, METH_O,
     "feed(piece) -> self, iterating over the messages that end in this piece of the export."},
    {"finish", (PyCFunction)Scanner_finish, METH_NOARGS,
     "finish() -> list of the messages left when every piece is fed."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef Scanner_members[] = {
    {"line", T_PYSSIZET, offsetof(Scanner, line), READONLY, "Lines read so far."},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ScannerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "style.parse._scan.Scanner",
    .tp_doc = PyDoc_STR("Scanner(dialect, stats, build, chat_names, *, message, text_kind, "
                        "needs_classifying, heads, omitted, suffixes, invisible, ampm)\n\n"
                        "parse_whatsapp's loop for one export: feed() it the export's "
                        "pieces in order, reading the messages of each, then call finish()."),
    .tp_basicsize = sizeof(Scanner),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Scanner_init,
    .tp_dealloc = (destructor)Scanner_dealloc,
    .tp_traverse = (traverseproc)Scanner_traverse,
    .tp_clear = (inquiry)Scanner_clear,
    .tp_iter = PyObject_SelfIter,
    .tp_iternext = (iternextfunc)Scanner_next,
    .tp_methods = Scanner_methods,
    .tp_members = Scanner_members,
};

static struct PyModuleDef scan_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "style.parse._scan",
    .m_doc = "The native inner loop of style.parse.whatsapp.parse_whatsapp.",
    .m_size = -1,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL || PyType_Ready(&ScannerType) < 0) {
        return NULL;
    }
    if ((LF = PyUnicode_InternFromString("\n")) == NULL ||
        (CR = PyUnicode_InternFromString("\r")) == NULL ||
        (CRLF = PyUnicode_InternFromString("\r\n")) == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&scan_module);
    if (module == NULL) {
        return NULL;
    }
    Unsupported = PyErr_NewExceptionWithDoc(
        "style.parse._scan.Unsupported",
        "The dialect (or a marker table) is one the scanner cannot match exactly.",
        PyExc_ValueError, NULL);
    if (Unsupported == NULL || PyModule_AddObjectRef(module, "Unsupported", Unsupported) < 0 ||
        PyModule_AddObjectRef(module, "Scanner", (PyObject *)&ScannerType) < 0) {
        Py_XDECREF(Unsupported);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
