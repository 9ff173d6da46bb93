// keyguard-c: a gate that refuses gating keys by pattern.
//
// Its configuration (the file `[gating.files]` names for it, given to
// `configure` at start and at every change) is one rule a line:
//
//   # a comment
//   deny PATTERN             refuse every caller
//   deny-anonymous PATTERN   refuse callers without a token
//
// PATTERN is a gating key (`admin:install`), or a prefix ending in `*`
// (`io:egress:http.*`). A line that is neither is refused with its line
// number, and the rules in force stay as they were. An action is denied if
// any of its keys is; the rule that decides is named `line-N`.
//
// Build: `arw build` (bindings from this host's WIT, clang for wasm32-wasi,
// linked into a component by wasm-component-ld).

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gate.h"

#define MAX_RULES 256
#define MAX_PATTERN 256

typedef exports_arw_host_gate_handler_request_t request_t;
typedef exports_arw_host_gate_handler_verdict_t verdict_t;
typedef exports_arw_host_gate_handler_config_error_t config_error_t;

typedef struct {
    char pattern[MAX_PATTERN + 1];
    size_t len;
    bool prefix;         // the pattern ended in `*` (not kept in `pattern`)
    bool anonymous_only; // `deny-anonymous`
    unsigned line;
} rule_t;

static rule_t rules[MAX_RULES];
static size_t rule_count = 0;

static bool matches(const rule_t *rule, const uint8_t *key, size_t len) {
    if (rule->prefix) return len >= rule->len && memcmp(key, rule->pattern, rule->len) == 0;
    return len == rule->len && memcmp(key, rule->pattern, len) == 0;
}

static bool refuse(config_error_t *err, unsigned line, const char *message) {
    err->line.is_some = line > 0;
    err->line.val = line;
    gate_string_dup(&err->message, message);
    return false;
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\r'; }

bool exports_arw_host_gate_handler_configure(gate_string_t *text, config_error_t *err) {
    // Parse into a new set first: a refused text leaves the old rules.
    static rule_t parsed[MAX_RULES];
    size_t count = 0;
    const char *s = (const char *)text->ptr;
    size_t len = text->len;
    unsigned line = 0;
    bool ok = true;
    for (size_t at = 0; at < len && ok;) {
        line++;
        size_t end = at;
        while (end < len && s[end] != '\n') end++;
        size_t a = at, b = end;
        at = end + 1;
        while (a < b && is_space(s[a])) a++;
        while (b > a && is_space(s[b - 1])) b--;
        if (a == b || s[a] == '#') continue;
        size_t word = a;
        while (word < b && !is_space(s[word])) word++;
        bool anonymous_only;
        if (word - a == 4 && memcmp(s + a, "deny", 4) == 0) anonymous_only = false;
        else if (word - a == 14 && memcmp(s + a, "deny-anonymous", 14) == 0) anonymous_only = true;
        else { ok = refuse(err, line, "expected `deny PATTERN` or `deny-anonymous PATTERN`"); break; }
        while (word < b && is_space(s[word])) word++;
        size_t plen = b - word;
        if (plen == 0) { ok = refuse(err, line, "a rule needs a pattern: a gating key, or a prefix ending in `*`"); break; }
        for (size_t i = word; i < b; i++) {
            if (is_space(s[i]) || (s[i] == '*' && i != b - 1)) {
                ok = refuse(err, line, "a pattern is one word, with `*` only at its end");
                break;
            }
        }
        if (!ok) break;
        if (plen > MAX_PATTERN) { ok = refuse(err, line, "a pattern is at most 256 bytes"); break; }
        if (count == MAX_RULES) { ok = refuse(err, line, "at most 256 rules"); break; }
        rule_t *rule = &parsed[count++];
        rule->prefix = s[b - 1] == '*';
        rule->len = rule->prefix ? plen - 1 : plen;
        memcpy(rule->pattern, s + word, rule->len);
        rule->pattern[rule->len] = '\0';
        rule->anonymous_only = anonymous_only;
        rule->line = line;
    }
    gate_string_free(text);
    if (!ok) return false;
    memcpy(rules, parsed, count * sizeof(rule_t));
    rule_count = count;
    return true;
}

void exports_arw_host_gate_handler_check(request_t *request, verdict_t *ret) {
    ret->tag = EXPORTS_ARW_HOST_GATE_HANDLER_VERDICT_ALLOW;
    for (size_t k = 0; k < request->keys.len && ret->tag == EXPORTS_ARW_HOST_GATE_HANDLER_VERDICT_ALLOW; k++) {
        gate_string_t *key = &request->keys.ptr[k];
        for (size_t r = 0; r < rule_count; r++) {
            const rule_t *rule = &rules[r];
            if (!matches(rule, key->ptr, key->len)) continue;
            if (rule->anonymous_only && request->caller.authenticated) continue;
            char contract[32], reason[MAX_PATTERN + 96];
            snprintf(contract, sizeof contract, "line-%u", rule->line);
            snprintf(reason, sizeof reason, "refused by keyguard-c line %u (`%s%s`%s)", rule->line, rule->pattern,
                     rule->prefix ? "*" : "", rule->anonymous_only ? " for callers without a token" : "");
            ret->tag = EXPORTS_ARW_HOST_GATE_HANDLER_VERDICT_DENY;
            exports_arw_host_gate_handler_denial_t *denial = &ret->val.deny;
            gate_string_dup_n(&denial->key, (const char *)key->ptr, key->len);
            gate_string_dup(&denial->code, "denied");
            gate_string_dup(&denial->contract, contract);
            gate_string_dup(&denial->reason, reason);
            break;
        }
    }
    exports_arw_host_gate_handler_request_free(request);
}

void exports_arw_host_gate_handler_covering(gate_string_t *key, gate_list_string_t *ret) {
    ret->ptr = rule_count ? calloc(rule_count, sizeof(gate_string_t)) : NULL;
    ret->len = 0;
    for (size_t r = 0; r < rule_count; r++) {
        if (!matches(&rules[r], key->ptr, key->len)) continue;
        char contract[32];
        snprintf(contract, sizeof contract, "line-%u", rules[r].line);
        gate_string_dup(&ret->ptr[ret->len++], contract);
    }
    gate_string_free(key);
}
