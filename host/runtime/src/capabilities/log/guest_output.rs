//! A guest's stdout and stderr: a log channel like `arw:host/log`, under
//! the same rules.
//!
//! - **Granted**: each line is `log.write` on `Arw::LogLevel::"stdout"` (or
//!   `"stderr"`), requested in the manifest and permitted by Cedar, like
//!   every other capability. Ungranted output is dropped (and the refusal
//!   audited, coalesced).
//! - **Rate-limited**: a token bucket per component version
//!   (`log.guest-lines-per-second`, `log.guest-burst-lines`); lines over it
//!   are dropped and counted.
//! - **Never blocking**: a line is handed to one host thread over a bounded
//!   queue (`log.guest-queue-lines`); when the queue is full the line is
//!   dropped and counted. The executor threads that run guests never wait
//!   for a log writer, and Cedar never runs on a guest's stack.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::task::{Context, Poll};
use std::time::Instant;

use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncWrite;
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};

use crate::authz::Grants;

/// Longest line kept before it is cut and logged as is.
pub const MAX_LINE_BYTES: usize = 4096;

/// `[log]`: the limits on guest output.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields, rename_all = "kebab-case")]
pub struct LogConfig {
    /// Lines per second one component version may write to stdout and
    /// stderr together (refilled continuously).
    pub guest_lines_per_second: f64,
    /// Lines it may write in a burst above the rate.
    pub guest_burst_lines: u32,
    /// Lines waiting for the log thread, across all components; past this
    /// new lines are dropped.
    pub guest_queue_lines: usize,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig { guest_lines_per_second: 50.0, guest_burst_lines: 200, guest_queue_lines: 4096 }
    }
}

impl LogConfig {
    pub fn check(&self) -> Result<(), String> {
        if !(self.guest_lines_per_second.is_finite() && self.guest_lines_per_second >= 0.0) {
            return Err("log.guest-lines-per-second must be a number of at least 0".into());
        }
        if self.guest_queue_lines == 0 {
            return Err("log.guest-queue-lines must be greater than zero".into());
        }
        Ok(())
    }
}

/// What became of guest output lines since start.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct GuestOutputStats {
    /// Lines written to the host log.
    pub logged: u64,
    /// Lines dropped because Cedar (or the manifest) does not grant them.
    pub denied: u64,
    /// Lines dropped by a component's rate limit.
    pub rate_limited: u64,
    /// Lines dropped because the log thread's queue was full.
    pub overflowed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    logged: AtomicU64,
    denied: AtomicU64,
    rate_limited: AtomicU64,
    overflowed: AtomicU64,
}

enum Queued {
    Line {
        grants: Arc<Grants>,
        component: Arc<str>,
        stream: &'static str,
        text: String,
    },
    /// Answered once every line queued before it is handled.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The host-wide end of guest output: the queue to the log thread.
#[derive(Clone)]
pub struct GuestOutputSink {
    queue: SyncSender<Queued>,
    counters: Arc<Counters>,
    config: LogConfig,
}

impl std::fmt::Debug for GuestOutputSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GuestOutputSink").field("stats", &self.stats()).finish_non_exhaustive()
    }
}

impl GuestOutputSink {
    /// Start the log thread. It ends when the last sink is dropped.
    pub fn start(config: LogConfig) -> std::io::Result<Self> {
        let (queue, lines) = std::sync::mpsc::sync_channel::<Queued>(config.guest_queue_lines);
        let counters = Arc::new(Counters::default());
        let thread_counters = counters.clone();
        std::thread::Builder::new().name("arw-guest-output".into()).spawn(move || {
            for queued in lines {
                let (grants, component, stream, text) = match queued {
                    Queued::Line { grants, component, stream, text } => (grants, component, stream, text),
                    Queued::Flush(done) => {
                        let _ = done.send(());
                        continue;
                    }
                };
                // A plain thread: Cedar may evaluate here (never on a
                // guest's fiber stack), and a slow log writer waits here.
                match grants.check_now(crate::capabilities::log::WRITE, stream) {
                    Ok(()) => {
                        thread_counters.logged.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(target: "arw::guest", component = &*component, stream, "{text}");
                    }
                    Err(_) => {
                        thread_counters.denied.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        })?;
        Ok(GuestOutputSink { queue, counters, config })
    }

    pub fn stats(&self) -> GuestOutputStats {
        GuestOutputStats {
            logged: self.counters.logged.load(Ordering::Relaxed),
            denied: self.counters.denied.load(Ordering::Relaxed),
            rate_limited: self.counters.rate_limited.load(Ordering::Relaxed),
            overflowed: self.counters.overflowed.load(Ordering::Relaxed),
        }
    }

    /// Wait (at most `timeout`) until every line queued so far is handled.
    /// Blocking: call it from a blocking thread.
    pub fn flush(&self, timeout: std::time::Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let (done, finished) = std::sync::mpsc::channel();
        let mut marker = Queued::Flush(done);
        loop {
            match self.queue.try_send(marker) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    marker = back;
                    std::thread::sleep(std::time::Duration::from_millis(2));
                }
                Err(_) => return false,
            }
        }
        finished.recv_timeout(deadline.saturating_duration_since(Instant::now())).is_ok()
    }

    /// The rate limit of one component version.
    pub fn budget(&self) -> Arc<LineBudget> {
        Arc::new(LineBudget::new(self.config.guest_lines_per_second, self.config.guest_burst_lines))
    }

    fn send(&self, budget: &LineBudget, line: Queued) {
        if !budget.take() {
            self.counters.rate_limited.fetch_add(1, Ordering::Relaxed);
            return;
        }
        match self.queue.try_send(line) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.overflowed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// A token bucket of lines.
#[derive(Debug)]
pub struct LineBudget {
    rate: f64,
    burst: f64,
    state: Mutex<(f64, Instant)>,
}

impl LineBudget {
    fn new(rate: f64, burst: u32) -> Self {
        let burst = f64::from(burst.max(1));
        LineBudget { rate, burst, state: Mutex::new((burst, Instant::now())) }
    }

    /// Take one line's worth, if there is one.
    fn take(&self) -> bool {
        let mut state = self.state.lock();
        let (tokens, last) = &mut *state;
        let now = Instant::now();
        *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * self.rate).min(self.burst);
        *last = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// One component's stdout or stderr, as WASI sees it.
#[derive(Clone)]
pub struct GuestOutput {
    pub(crate) sink: GuestOutputSink,
    pub(crate) budget: Arc<LineBudget>,
    pub(crate) grants: Arc<Grants>,
    pub(crate) component: Arc<str>,
    pub(crate) stream: &'static str,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineSplitter { output: self.clone(), pending: Vec::new() })
    }
}

/// Cuts a byte stream into lines and hands each to the sink.
struct LineSplitter {
    output: GuestOutput,
    pending: Vec<u8>,
}

impl LineSplitter {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']);
        let output = &self.output;
        output.sink.send(
            &output.budget,
            Queued::Line {
                grants: output.grants.clone(),
                component: output.component.clone(),
                stream: output.stream,
                text: text.to_string(),
            },
        );
    }

    fn flush_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line);
        }
        if self.pending.len() >= MAX_LINE_BYTES {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }

    fn flush_rest(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

impl AsyncWrite for LineSplitter {
    fn poll_write(self: Pin<&mut Self>, _cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        let this = self.get_mut();
        this.pending.extend_from_slice(buf);
        this.flush_lines();
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        self.get_mut().flush_rest();
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineSplitter {
    fn drop(&mut self) {
        self.flush_rest();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_allows_a_burst_then_the_rate() {
        let budget = LineBudget::new(0.0, 5);
        let taken = (0..100).filter(|_| budget.take()).count();
        assert_eq!(taken, 5, "a zero rate allows exactly the burst");
        let budget = LineBudget::new(1e9, 5);
        assert!((0..100).all(|_| budget.take()), "a huge rate refills between takes");
    }
}
