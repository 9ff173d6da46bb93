//! Test guest: performs exactly the capability call its input names and
//! reports the outcome, so tests can check what is granted and what is
//! denied without a new guest per case.
//!
//! Input is one of:
//! `{"op": "kv.get", "namespace": "...", "key": "..."}`,
//! `{"op": "kv.set", "namespace": "...", "key": "...", "value": "..."}`,
//! `{"op": "kv.list", "namespace": "...", "prefix": "..."}`,
//! `{"op": "bus.publish", "topic": "...", "message": <json>}`,
//! `{"op": "config.get", "key": "..."}`, `{"op": "log", "message": "..."}`,
//! `{"op": "print", "message": "...", "times": n}` (writes `n` lines, default
//! 1, to stdout and as many to stderr),
//! `{"op": "sleep", "ms": n}` (waits in the host, on a `wasi:clocks` pollable),
//! `{"op": "fail", "code": "..."}` (returns a tool error with that code),
//! `{"op": "echo", "value": <json>}` (no capability at all),
//! `{"op": "http.get", "url": "http://host:port/path"}` (`wasi:http`;
//! answers `{"status": 200, "body": "..."}`),
//! `{"op": "instance"}` (answers `{"instance": "<hex>", "calls": n}`: a
//! random id of this instance and how many calls it has served, for the
//! pooled lifecycle's tests),
//! `{"op": "trap"}` (panics),
//! `{"op": "tools.invoke", "tool": "...", "input": <json>}` (another
//! component's tool through `arw:host/tools`; answers its output, and a
//! refusal is the tool error named after the `call-error` case, `failed`
//! with the message `<code>: <message>`).
//! `{"op": "nats.publish", "subject": "...", "payload": "...", "headers": [["k", "v"]]}`
//! (`arw:host/nats`; answers null),
//! `{"op": "nats.request", "subject": "...", "payload": "...", "timeout-ms": n}`
//! (answers the reply's payload as text),
//! `{"op": "count", "namespace": "...", "key": "...", "fail-below": n, "sleep-ms": m}`
//! (adds one to the counter under `key`, after waiting `sleep-ms`; while the
//! count is below `fail-below` it fails with code `not-yet`; answers the
//! count: a queued task's runs, counted where a crash cannot lose them),
//! `{"op": "queue.enqueue", "queue": "...", "tool": "...", "input": <json>, "idem-key": "...", "priority": n}`
//! (`arw:host/queue`; answers `{"id": "...", "duplicate": bool}`),
//! `{"op": "js.stream", "name": "...", "subjects": ["..."]}` (`arw:host/jetstream`
//! `ensure-stream`, limits retention), `{"op": "js.publish", "stream": "...",
//! "subject": "...", "payload": "...", "headers": [["k", "v"]]}` (answers the
//! sequence).
//! The tool is called `probe`, or the value of its `tool-name` config key.
//! With a `describe-delay-ms` config key, `describe` (the health check)
//! first waits that long in the host.
//! `config.get` of a key whose value is `"trap"` traps.
//! Output `{"ok": <result>}`; a capability error becomes a tool error whose
//! code is the error's case (`denied`, `invalid`, `too-large`, `unavailable`).

wit_bindgen::generate!({ path: "../../../wit", world: "arw:host/tool" });

use arw::host::types::CapabilityError;
use arw::host::{bus, config, jetstream, kv, log, nats, queue, tools};
use exports::arw::host::tool_handler::{Descriptor, Guest, ToolError};
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Deserialize)]
#[serde(tag = "op", deny_unknown_fields)]
enum Op {
    #[serde(rename = "kv.get")]
    KvGet { namespace: String, key: String },
    #[serde(rename = "kv.set")]
    KvSet { namespace: String, key: String, value: String },
    #[serde(rename = "kv.list")]
    KvList { namespace: String, prefix: String },
    #[serde(rename = "bus.publish")]
    Publish { topic: String, message: Value },
    #[serde(rename = "config.get")]
    ConfigGet { key: String },
    #[serde(rename = "log")]
    Log { message: String },
    #[serde(rename = "print")]
    Print {
        message: String,
        #[serde(default = "one")]
        times: u32,
    },
    #[serde(rename = "sleep")]
    Sleep { ms: u64 },
    #[serde(rename = "fail")]
    Fail { code: String },
    #[serde(rename = "echo")]
    Echo { value: Value },
    #[serde(rename = "http.get")]
    HttpGet { url: String },
    #[serde(rename = "tools.invoke")]
    ToolsInvoke { tool: String, input: Value },
    #[serde(rename = "instance")]
    Instance,
    #[serde(rename = "nats.publish")]
    NatsPublish {
        subject: String,
        payload: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    #[serde(rename = "nats.request")]
    NatsRequest {
        subject: String,
        payload: String,
        #[serde(rename = "timeout-ms")]
        timeout_ms: u32,
    },
    #[serde(rename = "count")]
    Count {
        namespace: String,
        key: String,
        #[serde(default, rename = "fail-below")]
        fail_below: u64,
        #[serde(default, rename = "sleep-ms")]
        sleep_ms: u64,
    },
    #[serde(rename = "queue.enqueue")]
    Enqueue {
        queue: String,
        tool: String,
        input: Value,
        #[serde(default, rename = "idem-key")]
        idem_key: Option<String>,
        #[serde(default)]
        priority: i32,
    },
    #[serde(rename = "js.stream")]
    JsStream { name: String, subjects: Vec<String> },
    #[serde(rename = "js.publish")]
    JsPublish {
        stream: String,
        subject: String,
        payload: String,
        #[serde(default)]
        headers: Vec<(String, String)>,
    },
    #[serde(rename = "trap")]
    Trap,
}

/// This instance's random id and calls served so far (this one included).
fn instance() -> Value {
    use std::hash::{BuildHasher, Hasher};
    static SEEN: std::sync::Mutex<Option<(u64, u64)>> = std::sync::Mutex::new(None);
    let mut seen = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    let (id, calls) = seen.get_or_insert_with(|| {
        let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
        hasher.write_u8(0);
        (hasher.finish(), 0)
    });
    *calls += 1;
    json!({"instance": format!("{id:016x}"), "calls": *calls})
}

fn call_error(e: tools::CallError) -> ToolError {
    let (code, message) = match e {
        tools::CallError::Denied(m) => ("denied", m),
        tools::CallError::UnknownTool(m) => ("unknown-tool", m),
        tools::CallError::InvalidInput(m) => ("invalid-input", m),
        tools::CallError::TooDeep(m) => ("too-deep", m),
        tools::CallError::Failed(f) => ("failed", format!("{}: {}", f.code, f.message)),
    };
    ToolError { code: code.into(), message }
}

/// A GET through `wasi:http/outgoing-handler`. A refused request is the
/// tool error `denied`; anything else (timeouts, a body over the host's cap)
/// is `http-error` with the reason.
fn http_get(url: &str) -> Result<Value, ToolError> {
    use wasip2::http::types::{ErrorCode, Fields, OutgoingRequest, Scheme, http_error_code};
    use wasip2::io::streams::StreamError;

    let fail = |code: &str, message: String| ToolError { code: code.into(), message };
    let from_code = |e: ErrorCode| match e {
        ErrorCode::HttpRequestDenied => fail("denied", "the host refused the request (HTTP-request-denied)".into()),
        ErrorCode::HttpResponseBodySize(_) => fail("too-large", format!("{e:?}")),
        other => fail("http-error", format!("{other:?}")),
    };
    let (scheme, rest) = url.split_once("://").ok_or_else(|| fail("invalid-input", format!("not a URL: {url}")))?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let request = OutgoingRequest::new(Fields::new());
    let scheme = if scheme == "https" { Scheme::Https } else { Scheme::Http };
    let _ = request.set_scheme(Some(&scheme));
    let _ = request.set_authority(Some(authority));
    let _ = request.set_path_with_query(Some(path));
    let pending = wasip2::http::outgoing_handler::handle(request, None).map_err(from_code)?;
    pending.subscribe().block();
    let response = match pending.get() {
        Some(Ok(Ok(response))) => response,
        Some(Ok(Err(code))) => return Err(from_code(code)),
        _ => return Err(fail("http-error", "no response".into())),
    };
    let status = response.status();
    let body = response.consume().map_err(|()| fail("http-error", "no body".into()))?;
    let mut bytes = Vec::new();
    let stream = body.stream().map_err(|()| fail("http-error", "no body stream".into()))?;
    loop {
        match stream.blocking_read(64 << 10) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => break,
            // Why the body stopped, as an HTTP error code when it is one.
            Err(StreamError::LastOperationFailed(e)) => {
                return Err(match http_error_code(&e) {
                    Some(code) => from_code(code),
                    None => fail("http-error", e.to_debug_string()),
                });
            }
        }
    }
    Ok(json!({"status": status, "body": String::from_utf8_lossy(&bytes)}))
}

fn capability_error(e: CapabilityError) -> ToolError {
    let (code, message) = match e {
        CapabilityError::Denied(m) => ("denied", m),
        CapabilityError::Invalid(m) => ("invalid", m),
        CapabilityError::TooLarge(m) => ("too-large", m),
        CapabilityError::Unavailable(m) => ("unavailable", m),
    };
    ToolError { code: code.into(), message }
}

fn one() -> u32 {
    1
}

/// Wait `ms` in the host (the guest is parked on a pollable, not running).
fn sleep(ms: u64) {
    wasip2::clocks::monotonic_clock::subscribe_duration(ms.saturating_mul(1_000_000)).block();
}

struct Probe;

impl Guest for Probe {
    fn describe() -> Descriptor {
        // Several probes can be loaded side by side when each is configured
        // with its own `tool-name` (and granted `config.read` on it).
        if let Some(ms) = config::get("describe-delay-ms").ok().flatten().and_then(|v| v.parse().ok()) {
            sleep(ms);
        }
        let name = config::get("tool-name").ok().flatten().unwrap_or_else(|| "probe".into());
        Descriptor {
            name,
            version: env!("CARGO_PKG_VERSION").into(),
            summary: "Performs one named capability call (test guest)".into(),
            input_schema: r#"{"type":"object","required":["op"]}"#.into(),
            output_schema: r#"{"type":"object","required":["ok"]}"#.into(),
        }
    }

    fn invoke(input: String) -> Result<String, ToolError> {
        let op: Op = serde_json::from_str(&input)
            .map_err(|e| ToolError { code: "invalid-input".into(), message: e.to_string() })?;
        let result = match op {
            Op::KvGet { namespace, key } => {
                let value = kv::get(&namespace, &key).map_err(capability_error)?;
                json!(value.map(|v| String::from_utf8_lossy(&v).into_owned()))
            }
            Op::KvSet { namespace, key, value } => {
                kv::set(&namespace, &key, value.as_bytes()).map_err(capability_error)?;
                Value::Null
            }
            Op::KvList { namespace, prefix } => {
                json!(kv::list_keys(&namespace, &prefix, 1000).map_err(capability_error)?)
            }
            Op::Count { namespace, key, fail_below, sleep_ms } => {
                if sleep_ms > 0 {
                    sleep(sleep_ms);
                }
                let before = kv::get(&namespace, &key).map_err(capability_error)?;
                let count = before.and_then(|v| String::from_utf8_lossy(&v).parse::<u64>().ok()).unwrap_or(0) + 1;
                kv::set(&namespace, &key, count.to_string().as_bytes()).map_err(capability_error)?;
                if count < fail_below {
                    return Err(ToolError { code: "not-yet".into(), message: format!("run {count} of {fail_below}") });
                }
                json!(count)
            }
            Op::JsStream { name, subjects } => {
                let config = jetstream::StreamConfig {
                    name,
                    subjects,
                    work_queue: false,
                    max_messages: 1000,
                    duplicate_window_ms: 60_000,
                    allow_schedules: false,
                };
                jetstream::ensure_stream(&config).map_err(capability_error)?;
                Value::Null
            }
            Op::JsPublish { stream, subject, payload, headers } => {
                let ack =
                    jetstream::publish(&stream, &subject, payload.as_bytes(), &headers).map_err(capability_error)?;
                json!(ack.sequence)
            }
            Op::Enqueue { queue, tool, input, idem_key, priority } => {
                let task = queue::NewTask {
                    tool,
                    input: input.to_string(),
                    idem_key,
                    priority,
                    not_before_ms: None,
                    max_attempts: None,
                };
                let enqueued = queue::enqueue(&queue, &task).map_err(capability_error)?;
                json!({"id": enqueued.id, "duplicate": enqueued.duplicate})
            }
            Op::Publish { topic, message } => {
                let id = bus::publish(&topic, &bus::Payload::Json(message.to_string())).map_err(capability_error)?;
                json!(id)
            }
            Op::ConfigGet { key } => {
                let value = config::get(&key).map_err(capability_error)?;
                // A config value of "trap" makes reading it trap: a
                // deliberately broken release for the auto-rollback tests.
                if value.as_deref() == Some("trap") {
                    panic!("configured to fail");
                }
                json!(value)
            }
            Op::Log { message } => {
                log::write(log::Level::Info, &message, &[log::Field { key: "probe".into(), value: "yes".into() }])
                    .map_err(capability_error)?;
                Value::Null
            }
            Op::Print { message, times } => {
                for _ in 0..times {
                    println!("{message}");
                    eprintln!("{message}");
                }
                Value::Null
            }
            Op::Sleep { ms } => {
                sleep(ms);
                Value::Null
            }
            Op::Fail { code } => return Err(ToolError { code, message: "failed on request".into() }),
            Op::Echo { value } => value,
            Op::HttpGet { url } => http_get(&url)?,
            Op::Instance => instance(),
            Op::NatsPublish { subject, payload, headers } => {
                nats::publish(&subject, payload.as_bytes(), &headers).map_err(capability_error)?;
                Value::Null
            }
            Op::NatsRequest { subject, payload, timeout_ms } => {
                let reply = nats::request(&subject, payload.as_bytes(), &[], timeout_ms).map_err(capability_error)?;
                json!(String::from_utf8_lossy(&reply))
            }
            Op::Trap => panic!("probe: told to trap"),
            Op::ToolsInvoke { tool, input } => {
                let output = tools::invoke(&tool, &input.to_string()).map_err(call_error)?;
                serde_json::from_str(&output)
                    .map_err(|e| ToolError { code: "invalid-output".into(), message: e.to_string() })?
            }
        };
        Ok(json!({ "ok": result }).to_string())
    }
}

export!(Probe);
