//! `arw:host/jetstream` for guests: streams, durable pull consumers,
//! publishing with de-duplication and schedules, explicit acks, on the
//! host's one connection.
//!
//! Every call names a stream and is decided by Cedar on it
//! (`jetstream.manage`, `jetstream.publish`, `jetstream.consume`); an ack
//! names its message's reply subject, whose stream is read from it
//! (`$JS.ACK.<stream>.…`) and decided the same way. Subjects follow
//! [`super::subject::validate_stream`]; a publish carries
//! `Nats-Expected-Stream`, so the server stores it in the stream the
//! component named or nowhere.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt;

use super::NatsInstance;
use crate::bindings::CapabilityError;
use crate::bindings::imports::arw::host::jetstream as wit;

/// Headers under `Nats-` a component may set: de-duplication, schedules,
/// per-message TTL. The rest are the server's.
const ALLOWED_NATS_HEADERS: &[&str] = &["nats-msg-id", "nats-schedule", "nats-schedule-target", "nats-ttl"];

/// Messages one fetch may ask for at most.
const MAX_FETCH: u32 = 1_000;
/// The longest a fetch may wait for its first message.
const MAX_FETCH_WAIT_MS: u32 = 30_000;
/// Consumers the host keeps looked up, all components together.
const MAX_CACHED_CONSUMERS: usize = 256;

/// A stream's or consumer's name: 1 to 64 of `A-Z a-z 0-9 _ -`.
fn check_name(what: &str, name: &str) -> Result<(), CapabilityError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !ok {
        return Err(CapabilityError::Invalid(format!(
            "{what} name {:?}: 1 to 64 characters of A-Z, a-z, 0-9, `_` and `-`",
            crate::authz::shown(name, 64)
        )));
    }
    Ok(())
}

fn stream_subject(subject: &str, wildcards: bool) -> Result<(), CapabilityError> {
    super::subject::validate_stream(subject, wildcards).map_err(|(why, reserved)| match reserved {
        true => CapabilityError::Denied(why),
        false => CapabilityError::Invalid(why),
    })
}

/// The stream an ack's reply subject belongs to: `$JS.ACK.<stream>.…`
/// (9 tokens), or with a domain and account hash (12 tokens).
fn reply_stream(reply: &str) -> Result<&str, CapabilityError> {
    let tokens: Vec<&str> = reply.split('.').collect();
    let stream = match (tokens.first(), tokens.get(1), tokens.len()) {
        (Some(&"$JS"), Some(&"ACK"), 9) => tokens.get(2),
        (Some(&"$JS"), Some(&"ACK"), n) if n >= 11 => tokens.get(4),
        _ => None,
    };
    stream.copied().filter(|s| !s.is_empty()).ok_or_else(|| {
        CapabilityError::Invalid(
            "not a JetStream reply subject (`$JS.ACK.<stream>...`): pass a message's `reply`".into(),
        )
    })
}

fn unavailable(what: &str, e: impl std::fmt::Display) -> CapabilityError {
    CapabilityError::Unavailable(format!("jetstream {what}: {e}"))
}

fn millis(time: time::OffsetDateTime) -> u64 {
    u64::try_from(time.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

fn headers_of(map: Option<&async_nats::HeaderMap>) -> Vec<wit::Header> {
    let Some(map) = map else { return Vec::new() };
    map.iter().flat_map(|(name, values)| values.iter().map(move |v| (name.to_string(), v.to_string()))).collect()
}

impl NatsInstance {
    async fn context(&self) -> Result<jetstream::Context, CapabilityError> {
        let client = self.nats.client().await.map_err(CapabilityError::Unavailable)?;
        Ok(jetstream::new(client.clone()))
    }

    async fn stream(&self, name: &str) -> Result<jetstream::stream::Stream, CapabilityError> {
        self.context().await?.get_stream(name).await.map_err(|e| unavailable(&format!("stream {name}"), e))
    }

    /// The pull consumer, from the host's cache or looked up once.
    async fn consumer(&self, stream: &str, name: &str) -> Result<consumer::PullConsumer, CapabilityError> {
        let key = (stream.to_string(), name.to_string());
        if let Some(found) = self.nats.consumers.lock().get(&key) {
            return Ok(found.clone());
        }
        let found: consumer::PullConsumer = self
            .context()
            .await?
            .get_consumer_from_stream(name, stream)
            .await
            .map_err(|e| unavailable(&format!("consumer {name} of {stream}"), e))?;
        let mut cache = self.nats.consumers.lock();
        if cache.len() >= MAX_CACHED_CONSUMERS {
            cache.clear();
        }
        cache.insert(key, found.clone());
        Ok(found)
    }

    fn forget_consumer(&self, stream: &str, name: &str) {
        self.nats.consumers.lock().remove(&(stream.to_string(), name.to_string()));
    }
}

impl wit::Host for NatsInstance {
    async fn ensure_stream(&mut self, config: wit::StreamConfig) -> Result<(), CapabilityError> {
        check_name("stream", &config.name)?;
        if config.subjects.is_empty() || config.subjects.len() > 16 {
            return Err(CapabilityError::Invalid("a stream captures 1 to 16 subjects".into()));
        }
        for subject in &config.subjects {
            stream_subject(subject, true)?;
        }
        self.grants.check(super::JS_MANAGE, &config.name).await?;
        let stream_config = stream::Config {
            name: config.name.clone(),
            subjects: config.subjects,
            retention: if config.work_queue {
                stream::RetentionPolicy::WorkQueue
            } else {
                stream::RetentionPolicy::Limits
            },
            max_messages: if config.max_messages == 0 {
                -1
            } else {
                i64::try_from(config.max_messages).unwrap_or(i64::MAX)
            },
            duplicate_window: Duration::from_millis(config.duplicate_window_ms),
            allow_message_schedules: config.allow_schedules,
            storage: stream::StorageType::File,
            ..Default::default()
        };
        let context = self.context().await?;
        match context.get_stream(&config.name).await {
            Ok(_) => context.update_stream(stream_config).await.map(|_| ()),
            Err(_) => context.create_stream(stream_config).await.map(|_| ()),
        }
        .map_err(|e| unavailable(&format!("stream {}", config.name), e))
    }

    async fn ensure_consumer(&mut self, config: wit::ConsumerConfig) -> Result<(), CapabilityError> {
        check_name("stream", &config.stream)?;
        check_name("consumer", &config.name)?;
        stream_subject(&config.filter_subject, true)?;
        self.grants.check(super::JS_MANAGE, &config.stream).await?;
        let consumer_config = consumer::pull::Config {
            durable_name: Some(config.name.clone()),
            filter_subject: config.filter_subject,
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_millis(config.ack_wait_ms.max(1)),
            max_deliver: if config.max_deliver == 0 {
                -1
            } else {
                i64::try_from(config.max_deliver).unwrap_or(i64::MAX)
            },
            max_ack_pending: if config.max_ack_pending == 0 {
                0
            } else {
                i64::try_from(config.max_ack_pending).unwrap_or(i64::MAX)
            },
            ..Default::default()
        };
        let stream = self.stream(&config.stream).await?;
        let made = stream.create_consumer(consumer_config).await;
        self.forget_consumer(&config.stream, &config.name);
        made.map(|_| ()).map_err(|e| unavailable(&format!("consumer {}", config.name), e))
    }

    async fn publish(
        &mut self,
        stream: String,
        subject: String,
        payload: Vec<u8>,
        headers: Vec<wit::Header>,
    ) -> Result<wit::PublishAck, CapabilityError> {
        check_name("stream", &stream)?;
        stream_subject(&subject, false)?;
        for (name, value) in &headers {
            let lower = name.to_ascii_lowercase();
            if lower.starts_with("nats-") && !ALLOWED_NATS_HEADERS.contains(&lower.as_str()) {
                return Err(CapabilityError::Denied(format!(
                    "header {name:?} is the server's; a component may set {}",
                    ALLOWED_NATS_HEADERS.join(", ")
                )));
            }
            if lower == "nats-schedule-target" {
                stream_subject(value, false)?;
            }
        }
        let mut map = self.admit_message(&subject, &payload, &headers).await?;
        self.grants.check(super::JS_PUBLISH, &stream).await?;
        map.insert("Nats-Expected-Stream", stream.as_str());
        let context = self.context().await?;
        let ack = context
            .publish_with_headers(subject.clone(), map, payload.into())
            .await
            .map_err(|e| unavailable(&format!("publish on {subject}"), e))?
            .await
            .map_err(|e| unavailable(&format!("publish on {subject}"), e))?;
        Ok(wit::PublishAck { stream: ack.stream, sequence: ack.sequence, duplicate: ack.duplicate })
    }

    async fn fetch(
        &mut self,
        stream: String,
        consumer: String,
        max: u32,
        expires_ms: u32,
    ) -> Result<Vec<wit::Message>, CapabilityError> {
        check_name("stream", &stream)?;
        check_name("consumer", &consumer)?;
        self.grants.check(super::JS_CONSUME, &stream).await?;
        let pull = self.consumer(&stream, &consumer).await?;
        let max = max.clamp(1, MAX_FETCH) as usize;
        let batch = match expires_ms {
            0 => pull.fetch().max_messages(max).messages().await,
            ms => {
                let wait = Duration::from_millis(u64::from(ms.min(MAX_FETCH_WAIT_MS)));
                pull.batch().max_messages(max).expires(wait).messages().await
            }
        };
        let mut batch = batch.map_err(|e| {
            self.forget_consumer(&stream, &consumer);
            unavailable("fetch", e)
        })?;
        let mut out = Vec::new();
        while let Some(next) = batch.next().await {
            let message = next.map_err(|e| unavailable("fetch", e))?;
            let info = message.info().map_err(|e| unavailable("fetch", e))?;
            let (delivered, stream_sequence, published_ms) =
                (u64::try_from(info.delivered).unwrap_or(0), info.stream_sequence, millis(info.published));
            out.push(wit::Message {
                subject: message.subject.to_string(),
                payload: message.payload.to_vec(),
                headers: headers_of(message.headers.as_ref()),
                reply: message.reply.as_ref().map(|r| r.to_string()).unwrap_or_default(),
                delivered,
                stream_sequence,
                published_ms,
            });
        }
        Ok(out)
    }

    async fn ack(&mut self, reply: String, kind: wit::AckKind) -> Result<(), CapabilityError> {
        let stream = reply_stream(&reply)?.to_string();
        self.grants.check(super::JS_CONSUME, &stream).await?;
        let client = self.nats.client().await.map_err(CapabilityError::Unavailable)?;
        let body: bytes::Bytes = match kind {
            wit::AckKind::Ack => jetstream::AckKind::Ack.into(),
            wit::AckKind::Nak(ms) => jetstream::AckKind::Nak(Some(Duration::from_millis(ms))).into(),
            wit::AckKind::Progress => jetstream::AckKind::Progress.into(),
            wit::AckKind::Term => jetstream::AckKind::Term.into(),
        };
        if matches!(kind, wit::AckKind::Ack) {
            // Confirmed by the server, so "acked" means stored as acked.
            let request = async_nats::Request::new().payload(body).timeout(Some(Duration::from_secs(5)));
            return client.send_request(reply, request).await.map(|_| ()).map_err(|e| unavailable("ack", e));
        }
        client.publish(reply, body).await.map_err(|e| unavailable("ack", e))
    }

    async fn stream_info(&mut self, stream: String) -> Result<wit::StreamState, CapabilityError> {
        check_name("stream", &stream)?;
        self.grants.check(super::JS_CONSUME, &stream).await?;
        let mut source = self.stream(&stream).await?;
        let info = source.info().await.map_err(|e| unavailable("stream info", e))?;
        Ok(wit::StreamState {
            messages: info.state.messages,
            first_sequence: info.state.first_sequence,
            last_sequence: info.state.last_sequence,
        })
    }

    async fn consumer_info(&mut self, stream: String, consumer: String) -> Result<wit::ConsumerState, CapabilityError> {
        check_name("stream", &stream)?;
        check_name("consumer", &consumer)?;
        self.grants.check(super::JS_CONSUME, &stream).await?;
        let source = self.stream(&stream).await?;
        let mut pull: consumer::PullConsumer =
            source.get_consumer(&consumer).await.map_err(|e| unavailable(&format!("consumer {consumer}"), e))?;
        let info = pull.info().await.map_err(|e| unavailable("consumer info", e))?;
        Ok(wit::ConsumerState {
            pending: info.num_pending,
            ack_pending: u64::try_from(info.num_ack_pending).unwrap_or(0),
            redelivered: u64::try_from(info.num_redelivered).unwrap_or(0),
        })
    }

    async fn get_message(&mut self, stream: String, sequence: u64) -> Result<Option<wit::Message>, CapabilityError> {
        check_name("stream", &stream)?;
        self.grants.check(super::JS_CONSUME, &stream).await?;
        let source = self.stream(&stream).await?;
        match source.get_raw_message(sequence).await {
            Ok(message) => Ok(Some(wit::Message {
                subject: message.subject.to_string(),
                payload: message.payload.to_vec(),
                headers: headers_of(Some(&message.headers)),
                reply: String::new(),
                delivered: 0,
                stream_sequence: message.sequence,
                published_ms: millis(message.time),
            })),
            Err(e) if matches!(e.kind(), stream::RawMessageErrorKind::NoMessageFound) => Ok(None),
            Err(e) => Err(unavailable("get message", e)),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn an_acks_stream_is_read_from_its_reply_subject() {
        assert_eq!(super::reply_stream("$JS.ACK.ORDERS.workers.1.7.7.1700000000000000000.0").ok(), Some("ORDERS"));
        assert_eq!(
            super::reply_stream("$JS.ACK.hub.ACC.ORDERS.workers.1.7.7.1700000000000000000.0.tok").ok(),
            Some("ORDERS")
        );
        for bad in ["orders.x", "$JS.API.STREAM.INFO.ORDERS", "$JS.ACK.ORDERS", "$JS.ACK..w.1.7.7.1.0"] {
            assert!(super::reply_stream(bad).is_err(), "{bad}");
        }
    }
}
