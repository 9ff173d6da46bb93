//! Store data and per-call store setup.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncWrite;
use wasmtime::component::ResourceTable;
use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::{Capabilities, CapabilityInstances, ComponentCapabilities};

/// Everything one instance's host functions can reach.
pub struct InstanceState {
    wasi: WasiCtx,
    table: ResourceTable,
    limiter: MemoryCap,
    pub(crate) capabilities: CapabilityInstances,
}

impl WasiView for InstanceState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.wasi, table: &mut self.table }
    }
}

impl wasmtime_wasi_http::WasiHttpView for InstanceState {
    fn http(&mut self) -> wasmtime_wasi_http::WasiHttpCtxView<'_> {
        let http = &mut self.capabilities.http;
        wasmtime_wasi_http::WasiHttpCtxView { ctx: &mut http.ctx, table: &mut self.table, hooks: &mut http.hooks }
    }
}

/// Raised (as a trap) when a guest tries to grow memory past its cap.
#[derive(Debug, thiserror::Error)]
#[error("memory cap of {limit} bytes exceeded (the guest asked for {desired} bytes)")]
pub struct MemoryCapExceeded {
    pub limit: usize,
    pub desired: usize,
}

/// Raised (as a trap) in a call still running on a replaced version when
/// its drain grace period ends.
#[derive(Debug, thiserror::Error)]
#[error("interrupted: this version was replaced and its drain grace period ended")]
pub struct Retired;

/// Raised (as a trap) when a call runs past its deadline.
#[derive(Debug, thiserror::Error)]
#[error("deadline of {0:?} exceeded")]
pub struct DeadlineExceeded(pub Duration);

/// Per-store limiter: caps linear memory at the manifest's limit and turns
/// an attempt to exceed it into a trap that says so.
struct MemoryCap {
    limit: usize,
}

impl ResourceLimiter for MemoryCap {
    fn memory_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        if desired > self.limit {
            return Err(wasmtime::Error::new(MemoryCapExceeded { limit: self.limit, desired }));
        }
        Ok(true)
    }

    fn table_growing(&mut self, _current: usize, desired: usize, _maximum: Option<usize>) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// A fresh store for one call of a component: deny-by-default WASI, the
/// component's capabilities, its memory cap and its deadline.
pub fn new_store(
    engine: &Engine,
    host: &Capabilities,
    component: &ComponentCapabilities,
    memory_limit: usize,
    timeout: Duration,
    retired: Arc<AtomicBool>,
) -> Store<InstanceState> {
    // WASI grants nothing: no preopened directories, no environment, no
    // arguments, no stdin, no network (the socket check denies every
    // address). Clocks and random are available. stdout/stderr go to the
    // log, tagged with the component.
    let wasi = WasiCtx::builder()
        .stdout(GuestOutput { component: component.component.clone(), stream: "stdout" })
        .stderr(GuestOutput { component: component.component.clone(), stream: "stderr" })
        .allow_tcp(false)
        .allow_udp(false)
        .allow_ip_name_lookup(false)
        .build();
    let state = InstanceState {
        wasi,
        table: ResourceTable::new(),
        limiter: MemoryCap { limit: memory_limit },
        capabilities: CapabilityInstances::new(host, component),
    };
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.limiter);
    let deadline = Instant::now() + timeout;
    // Check at every epoch tick: yield to the executor (so a busy guest
    // never starves other calls) until the deadline, then trap; trap early
    // if the version was retired and its drain grace period ended.
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if retired.load(Ordering::Acquire) {
            Err(wasmtime::Error::new(Retired))
        } else if Instant::now() >= deadline {
            Err(wasmtime::Error::new(DeadlineExceeded(timeout)))
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    store
}

/// A guest's stdout or stderr, written line by line to the log.
#[derive(Clone)]
struct GuestOutput {
    component: Arc<str>,
    stream: &'static str,
}

impl IsTerminal for GuestOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for GuestOutput {
    fn async_stream(&self) -> Box<dyn AsyncWrite + Send + Sync> {
        Box::new(LineLogger { output: self.clone(), pending: Vec::new() })
    }
}

/// Longest line kept before it is flushed to the log as is.
const MAX_LINE: usize = 4096;

struct LineLogger {
    output: GuestOutput,
    pending: Vec<u8>,
}

impl LineLogger {
    fn emit(&self, line: &[u8]) {
        let text = String::from_utf8_lossy(line);
        let text = text.trim_end_matches(['\n', '\r']);
        tracing::info!(target: "arw::guest", component = &*self.output.component, stream = self.output.stream, "{text}");
    }

    fn flush_lines(&mut self) {
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line);
        }
        if self.pending.len() >= MAX_LINE {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}

impl AsyncWrite for LineLogger {
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
        let this = self.get_mut();
        if !this.pending.is_empty() {
            let line = std::mem::take(&mut this.pending);
            this.emit(&line);
        }
        Poll::Ready(Ok(()))
    }
}

impl Drop for LineLogger {
    fn drop(&mut self) {
        if !self.pending.is_empty() {
            let line = std::mem::take(&mut self.pending);
            self.emit(&line);
        }
    }
}
