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

/// The one namespace under `arw.` a component may use, through
/// JetStream only: queue backends' tasks (the host runs a task only if it
/// signed its ticket itself, so what anyone writes there is inert).
pub const TASKS_PREFIX: &str = "arw.tasks.";

/// Is `subject` well formed: dot-separated non-empty tokens of printable
/// ASCII, wildcards (`*` a token, `>` the last) only where `wildcards`?
fn shape(subject: &str, wildcards: bool) -> Result<(), String> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
        return Err(format!("a subject is 1 to {MAX_SUBJECT_BYTES} bytes"));
    }
    if subject.split('.').any(str::is_empty) {
        return Err(format!("subject {subject:?} has an empty token: write tokens separated by single dots"));
    }
    if let Some(bad) = subject.chars().find(|c| !c.is_ascii_graphic()) {
        return Err(format!("subject {subject:?} holds {bad:?}: only printable ASCII without spaces"));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    let misplaced = tokens
        .iter()
        .enumerate()
        .any(|(i, t)| (t.contains('*') && *t != "*") || (t.contains('>') && (*t != ">" || i + 1 != tokens.len())));
    if !wildcards && tokens.iter().any(|t| t.contains('*') || t.contains('>')) {
        return Err(format!("subject {subject:?} has a wildcard: publish and request name one subject"));
    }
    if misplaced {
        return Err(format!("subject {subject:?}: `*` stands for a whole token, `>` only for the last"));
    }
    Ok(())
}

/// Is `subject` one a component may publish on or send to: well formed,
/// no wildcard, not reserved? The error says what is wrong.
pub fn validate(subject: &str) -> Result<(), String> {
    shape(subject, false)?;
    if let Some(first) = reserved(subject) {
        return Err(format!("subject {subject:?} is reserved (`{first}.` belongs to the host or the server)"));
    }
    Ok(())
}

/// Is `subject` one a JetStream stream may capture (`wildcards`) or a
/// JetStream publish may name: well formed, and outside the reserved
/// namespaces except [`TASKS_PREFIX`]? The second part of the error says
/// whether it was refused as reserved (`true`) or malformed.
pub fn validate_stream(subject: &str, wildcards: bool) -> Result<(), (String, bool)> {
    shape(subject, wildcards).map_err(|why| (why, false))?;
    match reserved(subject) {
        Some(_) if subject.starts_with(TASKS_PREFIX) && subject.len() > TASKS_PREFIX.len() => Ok(()),
        Some(first) => Err((
            format!(
                "subject {subject:?} is reserved (`{first}.` belongs to the host or the server; of `arw.`, only `{TASKS_PREFIX}` is open to streams)"
            ),
            true,
        )),
        None => Ok(()),
    }
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
        // Streams: wildcards where a stream captures, arw.tasks. only.
        for good in ["orders.>", "orders.*.eu", "arw.tasks.q.ready.*", "arw.tasks.>"] {
            assert_eq!(validate_stream(good, true), Ok(()), "{good}");
        }
        assert!(validate_stream("orders.*", false).is_err());
        for (bad, reserved) in [
            ("arw.events.>", true),
            ("arw.>", true),
            ("$JS.API.>", true),
            ("a.b>", false),
            ("a.>.b", false),
            ("a*.b", false),
        ] {
            assert_eq!(validate_stream(bad, true).map_err(|e| e.1), Err(reserved), "{bad}");
        }
        assert_eq!(reserved("orders.x"), None);
    }
}
