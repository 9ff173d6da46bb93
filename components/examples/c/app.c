// slugify-c: turn text into a URL slug, dropping the stop words of its
// `stop-words` configuration, and count its calls in kv.
//
// Input {"text": "..."}; output {"slug": "...", "calls": n}. Words are runs
// of ASCII letters and digits and of non-ASCII characters (kept as they
// are: every byte of a multi-byte UTF-8 character is >= 0x80); ASCII
// letters are lower-cased; words are joined with "-". No word left: the
// tool error `empty-slug`. A refused capability: the tool error named after
// the refusal (`denied`, ...).
//
// Build: `arw build` (bindings from this host's WIT, clang for wasm32-wasi,
// linked into a component by wasm-component-ld).

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

#define NAME "slugify-c"

static const char *INPUT_SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"text\":{\"type\":\"string\"}},\"required\":[\"text\"],"
    "\"additionalProperties\":false}";
static const char *OUTPUT_SCHEMA =
    "{\"type\":\"object\",\"properties\":{\"slug\":{\"type\":\"string\"},\"calls\":{\"type\":\"integer\"}},"
    "\"required\":[\"slug\",\"calls\"]}";

typedef exports_arw_host_tool_handler_tool_error_t tool_error_t;

static bool fail(tool_error_t *err, const char *code, const char *message, size_t message_len) {
    tool_string_dup(&err->code, code);
    tool_string_dup_n(&err->message, message, message_len);
    return false;
}

// A capability error as the tool error named after its case.
static bool capability(tool_error_t *err, arw_host_types_capability_error_t *e) {
    static const char *codes[] = {"denied", "invalid", "too-large", "unavailable"};
    const char *code = e->tag < 4 ? codes[e->tag] : "unavailable";
    tool_string_t *message = &e->val.denied;  // every case carries a string
    bool result = fail(err, code, (const char *)message->ptr, message->len);
    arw_host_types_capability_error_free(e);
    return result;
}

static void put_utf8(char *out, size_t *n, unsigned cp) {
    if (cp < 0x80) {
        out[(*n)++] = (char)cp;
    } else if (cp < 0x800) {
        out[(*n)++] = (char)(0xC0 | (cp >> 6));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*n)++] = (char)(0xE0 | (cp >> 12));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*n)++] = (char)(0xF0 | (cp >> 18));
        out[(*n)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*n)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*n)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static int hex4(const char *s, size_t len, size_t at, unsigned *out) {
    if (at + 4 > len) return 0;
    unsigned v = 0;
    for (size_t i = at; i < at + 4; i++) {
        char c = s[i];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else return 0;
    }
    *out = v;
    return 1;
}

// Decode the JSON string starting at s[*i] (the opening quote) into a new
// buffer; *i ends after the closing quote. NULL if malformed.
static char *json_string(const char *s, size_t len, size_t *i, size_t *out_len) {
    if (*i >= len || s[*i] != '"') return NULL;
    char *out = malloc(len + 1);
    size_t n = 0;
    for (size_t p = *i + 1; p < len; p++) {
        char c = s[p];
        if (c == '"') {
            *i = p + 1;
            *out_len = n;
            return out;
        }
        if (c != '\\') {
            out[n++] = c;
            continue;
        }
        if (++p >= len) break;
        unsigned cp;
        switch (s[p]) {
            case '"': out[n++] = '"'; break;
            case '\\': out[n++] = '\\'; break;
            case '/': out[n++] = '/'; break;
            case 'b': out[n++] = '\b'; break;
            case 'f': out[n++] = '\f'; break;
            case 'n': out[n++] = '\n'; break;
            case 'r': out[n++] = '\r'; break;
            case 't': out[n++] = '\t'; break;
            case 'u':
                if (!hex4(s, len, p + 1, &cp)) goto bad;
                p += 4;
                if (cp >= 0xD800 && cp < 0xDC00) {  // a surrogate pair
                    unsigned low;
                    if (p + 2 < len && s[p + 1] == '\\' && s[p + 2] == 'u' && hex4(s, len, p + 3, &low) &&
                        low >= 0xDC00 && low < 0xE000) {
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                        p += 6;
                    }
                }
                put_utf8(out, &n, cp);
                break;
            default: goto bad;
        }
    }
bad:
    free(out);
    return NULL;
}

static void skip_ws(const char *s, size_t len, size_t *i) {
    while (*i < len && (s[*i] == ' ' || s[*i] == '\t' || s[*i] == '\n' || s[*i] == '\r')) (*i)++;
}

// The value of "text" in the input object (the host has already checked
// the input against the schema: one member, a string).
static char *input_text(const char *s, size_t len, size_t *text_len) {
    size_t i = 0;
    skip_ws(s, len, &i);
    if (i >= len || s[i++] != '{') return NULL;
    for (;;) {
        skip_ws(s, len, &i);
        size_t key_len;
        char *key = json_string(s, len, &i, &key_len);
        if (!key) return NULL;
        skip_ws(s, len, &i);
        if (i >= len || s[i++] != ':') { free(key); return NULL; }
        skip_ws(s, len, &i);
        int is_text = key_len == 4 && memcmp(key, "text", 4) == 0;
        free(key);
        char *value = json_string(s, len, &i, text_len);
        if (!value) return NULL;
        if (is_text) return value;
        free(value);
        skip_ws(s, len, &i);
        if (i >= len || s[i++] != ',') return NULL;
    }
}

static int is_word_byte(unsigned char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c >= 0x80;
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

// Is `word` (length n) one of the comma-separated, case-insensitive `stop` words?
static int is_stop_word(const char *word, size_t n, const char *stop, size_t stop_len) {
    size_t start = 0;
    while (start <= stop_len) {
        size_t end = start;
        while (end < stop_len && stop[end] != ',') end++;
        size_t a = start, b = end;
        while (a < b && is_space(stop[a])) a++;
        while (b > a && is_space(stop[b - 1])) b--;
        if (b - a == n && n > 0) {
            size_t k = 0;
            while (k < n) {
                char c = stop[a + k];
                if (c >= 'A' && c <= 'Z') c = (char)(c - 'A' + 'a');
                if (c != word[k]) break;
                k++;
            }
            if (k == n) return 1;
        }
        start = end + 1;
    }
    return 0;
}

void exports_arw_host_tool_handler_describe(exports_arw_host_tool_handler_descriptor_t *ret) {
    tool_string_dup(&ret->name, NAME);
    tool_string_dup(&ret->version, "0.1.0");
    tool_string_dup(&ret->summary, "Turn text into a URL slug, without the configured stop words");
    tool_string_dup(&ret->input_schema, INPUT_SCHEMA);
    tool_string_dup(&ret->output_schema, OUTPUT_SCHEMA);
}

bool exports_arw_host_tool_handler_invoke(tool_string_t *input, tool_string_t *ret, tool_error_t *err) {
    size_t text_len;
    char *text = input_text((const char *)input->ptr, input->len, &text_len);
    tool_string_free(input);
    if (!text) {
        const char *message = "expected {\"text\": string}";
        return fail(err, "invalid-input", message, strlen(message));
    }

    arw_host_types_capability_error_t cap;
    tool_string_t key;
    tool_option_string_t stop;
    tool_string_set(&key, "stop-words");
    if (!arw_host_config_get(&key, &stop, &cap)) { free(text); return capability(err, &cap); }

    tool_string_t ns, calls_key;
    tool_string_set(&ns, NAME);
    tool_string_set(&calls_key, "calls");
    tool_option_list_u8_t stored;
    if (!arw_host_kv_get(&ns, &calls_key, &stored, &cap)) {
        tool_option_string_free(&stop);
        free(text);
        return capability(err, &cap);
    }
    unsigned long long calls = 1;
    if (stored.is_some) {
        char digits[32] = {0};
        size_t n = stored.val.len < sizeof digits - 1 ? stored.val.len : sizeof digits - 1;
        memcpy(digits, stored.val.ptr, n);
        calls = strtoull(digits, NULL, 10) + 1;
    }
    tool_option_list_u8_free(&stored);
    char count[32];
    int count_len = snprintf(count, sizeof count, "%llu", calls);
    tool_list_u8_t value = {(uint8_t *)count, (size_t)count_len};
    if (!arw_host_kv_set(&ns, &calls_key, &value, &cap)) {
        tool_option_string_free(&stop);
        free(text);
        return capability(err, &cap);
    }

    const char *stop_words = stop.is_some ? (const char *)stop.val.ptr : "";
    size_t stop_len = stop.is_some ? stop.val.len : 0;
    char *slug = malloc(text_len + 1);
    char *word = malloc(text_len + 1);
    size_t slug_len = 0, word_len = 0;
    for (size_t i = 0; i <= text_len; i++) {
        unsigned char c = i < text_len ? (unsigned char)text[i] : ' ';
        if (is_word_byte(c)) {
            word[word_len++] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c);
        } else if (word_len > 0) {
            if (!is_stop_word(word, word_len, stop_words, stop_len)) {
                if (slug_len > 0) slug[slug_len++] = '-';
                memcpy(slug + slug_len, word, word_len);
                slug_len += word_len;
            }
            word_len = 0;
        }
    }
    free(word);
    free(text);
    tool_option_string_free(&stop);
    if (slug_len == 0) {
        free(slug);
        const char *message = "nothing to slugify: no letters or digits outside the stop words";
        return fail(err, "empty-slug", message, strlen(message));
    }
    // The slug holds no `"` or `\` (they are not word bytes): no escaping.
    size_t out_len = slug_len + 64;
    char *out = malloc(out_len);
    int n = snprintf(out, out_len, "{\"slug\":\"%.*s\",\"calls\":%llu}", (int)slug_len, slug, calls);
    free(slug);
    ret->ptr = (uint8_t *)out;
    ret->len = (size_t)n;
    return true;
}
