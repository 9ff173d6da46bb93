//! Who is calling: `Authorization: Bearer <token>` or `X-ARW-Admin: <token>`
//! names a configured caller; no token is the caller `anonymous` in the role
//! `anonymous`. Either way the caller is a Cedar principal
//! (`Arw::Caller::"<name>"`, in its roles), and Cedar decides what it may do.
//!
//! Tokens are kept only as SHA-256 digests and compared in constant time,
//! so neither the configuration nor the comparison leaks them.

use std::sync::Arc;

use arw_host::Host;
use arw_host::config::{HttpConfig, TokenConfig};
use arw_policy::Principal;
use http::HeaderMap;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::error::ServerError;
use crate::problem::Problem;

pub const ANONYMOUS: &str = "anonymous";
/// The caller `http.admin-token` names.
pub const ADMIN: &str = "admin";
pub const ADMIN_HEADER: &str = "x-arw-admin";
/// Shortest plain token accepted in the configuration.
pub const MIN_TOKEN_CHARS: usize = 16;

/// A resolved caller, prepared for Cedar questions.
#[derive(Debug)]
pub struct Identity {
    pub name: String,
    pub anonymous: bool,
    pub caller: arw_host::host::Caller,
}

/// The configured callers.
#[derive(Debug)]
pub struct Callers {
    tokens: Vec<([u8; 32], Arc<Identity>)>,
    anonymous: Arc<Identity>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Callers {
    pub fn new(host: &Host, config: &HttpConfig) -> Result<Self, ServerError> {
        let mut entries: Vec<TokenConfig> = config.tokens.clone();
        if let Some(token) = &config.admin_token {
            entries.push(TokenConfig {
                name: ADMIN.into(),
                token: Some(token.clone()),
                token_sha256: None,
                roles: vec![ADMIN.into()],
                tags: Vec::new(),
            });
        }
        let mut tokens = Vec::new();
        for entry in entries {
            let fail = |why: String| ServerError::Config(format!("http token `{}`: {why}", entry.name));
            if entry.name.is_empty() || entry.name == ANONYMOUS || entry.name == "local" {
                return Err(fail(
                    "a token needs a name other than `anonymous` and `local` (the CLI's own caller)".into(),
                ));
            }
            if tokens.iter().any(|(_, i): &([u8; 32], Arc<Identity>)| i.name == entry.name) {
                return Err(fail("the name is used twice".into()));
            }
            let digest = match (&entry.token, &entry.token_sha256) {
                (Some(token), None) if token.0.chars().count() >= MIN_TOKEN_CHARS => digest(&token.0),
                (Some(_), None) => {
                    return Err(fail(format!(
                        "the token is shorter than {MIN_TOKEN_CHARS} characters (try `openssl rand -hex 32`)"
                    )));
                }
                (None, Some(hex_digest)) => {
                    let bytes = hex::decode(hex_digest.trim()).ok().and_then(|b| <[u8; 32]>::try_from(b).ok());
                    bytes.ok_or_else(|| fail("`token-sha256` must be 64 hex digits".into()))?
                }
                _ => return Err(fail("set exactly one of `token` and `token-sha256`".into())),
            };
            if tokens.iter().any(|(d, _)| *d == digest) {
                return Err(fail("another caller has the same token".into()));
            }
            if entry.tags.len() > arw_host::config::NodeConfig::MAX_TAGS {
                return Err(fail(format!("at most {} tags are allowed", arw_host::config::NodeConfig::MAX_TAGS)));
            }
            let caller =
                host.caller_tagged(Principal::caller(entry.name.clone(), entry.roles.clone()), entry.tags.clone());
            tokens.push((digest, Arc::new(Identity { name: entry.name, anonymous: false, caller })));
        }
        let anonymous = Arc::new(Identity {
            name: ANONYMOUS.into(),
            anonymous: true,
            caller: host.caller(Principal::caller(ANONYMOUS, [ANONYMOUS])),
        });
        Ok(Callers { tokens, anonymous })
    }

    /// The caller called `name` (`anonymous` too), for `arw gate check --as`
    /// over HTTP.
    pub fn named(&self, name: &str) -> Option<Arc<Identity>> {
        if name == ANONYMOUS {
            return Some(self.anonymous.clone());
        }
        self.tokens.iter().find(|(_, i)| i.name == name).map(|(_, i)| i.clone())
    }

    /// Whether any token is configured (a public bind needs one).
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The caller a request's headers name. A token that matches no caller
    /// is refused rather than treated as anonymous: a typo must not
    /// silently downgrade a client.
    pub fn resolve(&self, headers: &HeaderMap) -> Result<Arc<Identity>, Problem> {
        let presented = arw_wire::presented_token(
            headers.get(http::header::AUTHORIZATION).map(|v| v.as_bytes()),
            headers.get(ADMIN_HEADER).map(|v| v.as_bytes()),
        )
        .map_err(Problem::from_wire)?;
        let Some(presented) = presented else { return Ok(self.anonymous.clone()) };
        let presented = digest(&presented);
        // Compare with every configured digest, no early exit.
        let mut found = None;
        for (candidate, identity) in &self.tokens {
            if bool::from(candidate.ct_eq(&presented)) {
                found = Some(identity.clone());
            }
        }
        found.ok_or_else(|| unauthorized("the token matches no configured caller (see `[[http.tokens]]`)"))
    }
}

fn unauthorized(detail: &str) -> Problem {
    Problem::new(http::StatusCode::UNAUTHORIZED, "unauthorized", detail)
}
