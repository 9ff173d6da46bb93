//! A policy file, parsed and validated against ARW's schema in strict mode;
//! a set that validates then answers every action without panicking.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;

fn schema() -> &'static cedar_policy::Schema {
    static SCHEMA: OnceLock<cedar_policy::Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| arw_policy::schema::embedded().unwrap_or_else(|e| panic!("{e}")))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let source = arw_policy::PolicySource::new("fuzz.cedar", text);
    match arw_policy::PolicySet::from_sources(schema(), [source]) {
        Ok(set) => {
            let authorizer = arw_policy::Authorizer::new(schema().clone(), set);
            let who = authorizer.principal(arw_policy::Principal::component("fuzz:x", "1.0.0", "fuzz", "sha256:00"));
            for action in arw_policy::Action::ALL {
                let _ = authorizer.decide(&who, action, "r");
            }
        }
        Err(error) => {
            let _ = error.to_string();
        }
    }
});
