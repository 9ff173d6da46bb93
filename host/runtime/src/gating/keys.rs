//! The gating keys of the entry points inside the host. The grammar is
//! `domain:verb[:sub]`: lower-case segments separated by `:`, with `.`
//! inside a segment (`io:ingress:tools.text-stats`). The last segment
//! carries the target verbatim, so an outgoing HTTP request's key keeps
//! its `host:port` (`io:egress:http.api.example.com:443`). Keys are never
//! renamed or reused; new ones are only added.
//!
//! Each family is asked at one place, before the effect:
//!
//! | family | asked | before |
//! |---|---|---|
//! | `io:ingress:tools.<tool>` | every tool call (HTTP, MCP, the CLI, components) | the tool is instantiated |
//! | `io:egress:tools.<tool>` | a component's call of another's tool | the callee is looked up |
//! | `io:egress:http.<host:port>` | a component's outgoing HTTP request | the request is sent |
//! | `io:egress:bus.<topic>` | a component's bus publish | the event is published |
//! | `io:egress:nats.<subject>` | a component's NATS publish or request | the message is sent |
//! | `io:egress:queue.<queue>` | a component's enqueue | the task is signed and stored |

/// One family of keys, for the catalogue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyFamily {
    /// The key with its variable part named: `io:ingress:tools.<tool>`.
    pub pattern: &'static str,
    /// What prefix every key of the family starts with.
    pub prefix: &'static str,
    /// Where it is asked.
    pub entry: &'static str,
    /// What the request's target carries.
    pub target: &'static str,
    pub summary: &'static str,
}

pub const TOOL_INGRESS: KeyFamily = KeyFamily {
    pattern: "io:ingress:tools.<tool>",
    prefix: "io:ingress:tools.",
    entry: "every tool call: HTTP `POST /tools/{name}/invoke`, MCP `tools/call`, `arw call`, a component's call",
    target: "tool, component (the provider)",
    summary: "A tool is called; asked before its instance is taken or made.",
};

pub const TOOL_EGRESS: KeyFamily = KeyFamily {
    pattern: "io:egress:tools.<tool>",
    prefix: "io:egress:tools.",
    entry: "a component's `arw:host/tools.invoke`",
    target: "tool, component (the caller)",
    summary: "A component calls another's tool; asked before the callee is looked up (then its ingress key is asked too).",
};

pub const HTTP_EGRESS: KeyFamily = KeyFamily {
    pattern: "io:egress:http.<host:port>",
    prefix: "io:egress:http.",
    entry: "a component's `wasi:http/outgoing-handler.handle`",
    target: "authority (`host:port`), component",
    summary: "A component sends an HTTP request; asked before the name is resolved or anything is sent.",
};

pub const BUS_EGRESS: KeyFamily = KeyFamily {
    pattern: "io:egress:bus.<topic>",
    prefix: "io:egress:bus.",
    entry: "a component's `arw:host/bus.publish`",
    target: "topic, component",
    summary: "A component publishes an event; asked before it reaches the bus.",
};

pub const NATS_EGRESS: KeyFamily = KeyFamily {
    pattern: "io:egress:nats.<subject>",
    prefix: "io:egress:nats.",
    entry: "a component's `arw:host/nats.publish` and `arw:host/nats.request`",
    target: "topic (the subject), component",
    summary: "A component sends a NATS message; asked before it leaves the host.",
};

pub const QUEUE_EGRESS: KeyFamily = KeyFamily {
    pattern: "io:egress:queue.<queue>",
    prefix: "io:egress:queue.",
    entry: "a component's `arw:host/queue.enqueue`",
    target: "topic (the queue), tool, component",
    summary: "A component puts a task on a queue; asked before the task is stored (its tool's ingress is asked when a worker runs it).",
};

/// Every family of the host's own entry points, in documentation order.
pub const FAMILIES: &[KeyFamily] = &[TOOL_INGRESS, TOOL_EGRESS, HTTP_EGRESS, BUS_EGRESS, NATS_EGRESS, QUEUE_EGRESS];

impl KeyFamily {
    /// The key of this family for `target`.
    pub fn key(&self, target: &str) -> String {
        let mut key = String::with_capacity(self.prefix.len() + target.len());
        key.push_str(self.prefix);
        key.push_str(target);
        key
    }
}

/// Is `key` well formed: 2 or more segments, each non-empty, of
/// `a-z 0-9 - . _` (the last segment may hold a `host:port` and any
/// character a topic or a tool name allows)?
pub fn is_well_formed(key: &str) -> bool {
    let mut segments = key.splitn(3, ':');
    let (Some(domain), Some(verb)) = (segments.next(), segments.next()) else { return false };
    let plain = |s: &str| {
        !s.is_empty() && s.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-._".contains(&b))
    };
    let sub_ok = segments.next().is_none_or(|sub| !sub.is_empty() && sub.bytes().all(|b| b.is_ascii_graphic()));
    plain(domain) && plain(verb) && sub_ok && key.len() <= 512
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_make_well_formed_keys() {
        for family in FAMILIES {
            assert!(family.pattern.starts_with(family.prefix), "{}", family.pattern);
            assert!(is_well_formed(&family.key("x")), "{}", family.key("x"));
        }
        assert_eq!(HTTP_EGRESS.key("api.example.com:443"), "io:egress:http.api.example.com:443");
        assert!(is_well_formed("io:egress:http.api.example.com:443"));
        assert!(is_well_formed("tools:invoke"));
        for bad in ["tools", ":invoke", "Tools:invoke", "tools::x", "a b:c"] {
            assert!(!is_well_formed(bad), "{bad}");
        }
    }
}
