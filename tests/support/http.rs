//! A host with its HTTP API on an ephemeral loopback port, for the HTTP,
//! SSE, metrics and third-party client tests.

use std::sync::Arc;
use std::time::Duration;

use arw_host::Host;
use arw_host::config::{HttpConfig, Secret, TokenConfig};
use arw_server::Server;

use crate::{Components, config, policies};

/// The token of the caller `ops` (role `admin`) in [`TestServer`]s.
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
/// The token of the caller `viewer` (role `viewer`, granted nothing by the
/// default policies).
pub const VIEWER_TOKEN: &str = "test-viewer-token-0123456789";

pub struct TestServer {
    pub host: Arc<Host>,
    pub server: Option<Server>,
    pub base: String,
    pub client: reqwest::Client,
    _state: tempfile::TempDir,
}

/// An HTTP configuration on 127.0.0.1:0 with the two test callers.
pub fn http_config() -> HttpConfig {
    HttpConfig {
        listen: "127.0.0.1:0".parse().unwrap_or_else(|e| panic!("{e}")),
        tokens: vec![
            TokenConfig {
                name: "ops".into(),
                token: Some(Secret(ADMIN_TOKEN.into())),
                token_sha256: None,
                roles: vec!["admin".into()],
                tags: Vec::new(),
            },
            TokenConfig {
                name: "viewer".into(),
                token: Some(Secret(VIEWER_TOKEN.into())),
                token_sha256: None,
                roles: vec!["viewer".into()],
                tags: vec!["guest".into()],
            },
        ],
        ..HttpConfig::default()
    }
}

impl TestServer {
    /// The first-party components under `policy_texts`, served with `http`.
    pub async fn start(policy_texts: &[&str], http: HttpConfig) -> TestServer {
        Self::start_with(policy_texts, http, |_| {}).await
    }

    /// Like [`TestServer::start`], adjusting the host configuration first.
    pub async fn start_with(
        policy_texts: &[&str],
        http: HttpConfig,
        adjust: impl FnOnce(&mut arw_host::HostConfig),
    ) -> TestServer {
        Self::start_components(Components::first_party(), policy_texts, http, adjust).await
    }

    /// `components` under `policy_texts`, served with `http`.
    pub async fn start_components(
        components: Components,
        policy_texts: &[&str],
        http: HttpConfig,
        adjust: impl FnOnce(&mut arw_host::HostConfig),
    ) -> TestServer {
        let state = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut host_config = config(state.path());
        adjust(&mut host_config);
        let (host, refused) =
            Host::start(host_config, policies(policy_texts), &components).await.unwrap_or_else(|e| panic!("{e}"));
        assert!(refused.is_empty(), "{refused:?}");
        let host = Arc::new(host);
        let server = arw_server::start(host.clone(), http, None).await.unwrap_or_else(|e| panic!("{e}"));
        let base = format!("http://{}", server.local_addr());
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            // A connection per request: the server closes one whose body it
            // refused unread (413), which a pooled client could reuse.
            .pool_max_idle_per_host(0)
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        TestServer { host, server: Some(server), base, client, _state: state }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// POST JSON text to `path` with an optional bearer token.
    pub async fn post(&self, path: &str, token: Option<&str>, body: &str) -> reqwest::Response {
        let mut request =
            self.client.post(self.url(path)).header("content-type", "application/json").body(body.to_string());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap_or_else(|e| panic!("POST {path}: {e}"))
    }

    pub async fn get(&self, path: &str, token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.get(self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown(Duration::from_secs(5)).await;
        }
        self.host.stop(Duration::from_secs(5)).await;
    }
}

/// The problem document of a response, checking its content type and that
/// its `status` matches the response's.
pub async fn problem(response: reqwest::Response) -> serde_json::Value {
    let status = response.status().as_u16();
    let content_type =
        response.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    assert_eq!(content_type, "application/problem+json", "status {status}");
    let body: serde_json::Value = response.json().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(body["status"], status, "{body}");
    assert!(body["type"].as_str().unwrap_or_default().starts_with("urn:arw:problem:"), "{body}");
    assert!(!body["detail"].as_str().unwrap_or_default().is_empty(), "{body}");
    body
}
