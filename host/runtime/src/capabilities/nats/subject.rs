//! NATS subjects as components may use them: what is well formed, and
//! what is the host's own.

/// The longest subject accepted.
pub const MAX_SUBJECT_BYTES: usize = 256;

/// First tokens that belong to the host or the server: `arw` (the
/// cluster's own traffic), `_INBOX` (replies), and any starting with `$`
/// (the server's APIs, JetStream's among them).
pub fn reserved(subject: &str) -> Option<&str> {
    let first = subject.split('.').next().unwrap_or_default();
    (first == "arw" || first == "_INBOX" || first.starts_with('$')).then_some(first)
}

/// Is `subject` one a component may publish on or send to: dot-separated
/// non-empty tokens of printable ASCII, no wildcard, not reserved? The
/// error says what is wrong.
pub fn validate(subject: &str) -> Result<(), String> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
        return Err(format!("a subject is 1 to {MAX_SUBJECT_BYTES} bytes"));
    }
    if subject.split('.').any(str::is_empty) {
        return Err(format!("subject {subject:?} has an empty token: write tokens separated by single dots"));
    }
    if let Some(bad) = subject.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("subject {subject:?} holds {bad:?}: only printable ASCII without spaces"));
    }
    if subject.split('.').any(|t| t == "*" || t == ">") {
        return Err(format!("subject {subject:?} has a wildcard: publish and request name one subject"));
    }
    if let Some(first) = reserved(subject) {
        return Err(format!("subject {subject:?} is reserved (`{first}.` belongs to the host or the server)"));
    }
    Ok(())
}

/// A manifest's `nats.*` request: a pattern (`*` any run of characters)
/// of printable ASCII that does not start in a reserved namespace.
pub fn check_request(_manifest: &crate::manifest::Manifest, resource: &str) -> Result<(), String> {
    if resource.is_empty() || resource.len() > MAX_SUBJECT_BYTES || !resource.chars().all(|c| c.is_ascii_graphic()) {
        return Err(format!(
            "subject pattern {resource:?}: 1 to {MAX_SUBJECT_BYTES} printable ASCII characters, `*` for any run"
        ));
    }
    if let Some(first) = reserved(resource) {
        return Err(format!(
            "subject pattern {resource:?} names `{first}.`, which belongs to the host or the server: pick another namespace (`orders.*`)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_are_checked_and_the_hosts_own_refused() {
        for good in ["orders", "orders.created", "a.b-c.d_e.1", "ARW.x", "arwx.y"] {
            assert_eq!(validate(good), Ok(()), "{good}");
        }
        for bad in ["", "a..b", ".a", "a.", "a b", "a.*", "a.>", "arw", "arw.tasks.x", "_INBOX.x", "$JS.API.x", "é"] {
            assert!(validate(bad).is_err(), "{bad}");
        }
        assert!(validate(&"a".repeat(MAX_SUBJECT_BYTES + 1)).is_err());
        assert_eq!(reserved("$SYS.x"), Some("$SYS"));
        assert_eq!(reserved("orders.x"), None);
    }
}
