//! A policy file, parsed and validated against ARW's schema in strict mode;
//! a set that validates then answers every action without panicking.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn schema() -> &'static cedar_policy::Schema {
    static SCHEMA: OnceLock<cedar_policy::Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}")))
}

/// Every action the schema declares (read back from it, as the host does),
/// made once.
fn actions() -> &'static [arw_policy::Action] {
    static ACTIONS: OnceLock<Vec<arw_policy::Action>> = OnceLock::new();
    ACTIONS.get_or_init(|| {
        let vocabulary = arw_policy::Vocabulary::of(schema()).unwrap_or_else(|e| panic!("{e}"));
        vocabulary.iter().map(|a| arw_policy::Action::new(Box::leak(a.name.clone().into_boxed_str()))).collect()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = arw_policy::PolicySource::new("fuzz.cedar", text);
    match arw_policy::PolicySet::from_sources(schema(), [source]) {
        Ok(set) => {
            let authorizer = arw_policy::Authorizer::new(schema().clone(), set);
            let who = authorizer.principal(arw_policy::Principal::component("fuzz:x", "1.0.0", "fuzz", "sha256:00"));
            for action in actions() {
                let _ = authorizer.decide(&who, *action, "r");
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
