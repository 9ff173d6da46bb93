//! `arw up`: run the host and its HTTP API until told to stop.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use arw_host::HostConfig;

use crate::cli::UpArgs;

pub async fn run(mut config: HostConfig, args: UpArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if let Some(listen) = args.listen {
        config.http.listen = listen;
    }
    if args.no_http {
        config.http.enabled = false;
    }
    let state_dir = config.state_dir.clone();
    let policies_dir = config.policies_dir.clone();
    let http = config.http.clone();
    let (host, refused, stores) = super::start_host_with_source(config.clone()).await?;
    let host = Arc::new(host);
    let source = stores.as_ref().map(arw_ops::Stores::source);
    let server = if http.enabled {
        let policies = super::policy_origin(&config);
        let admin = Arc::new(arw_ops::Live::new(host.clone(), config, policies, stores));
        let server = arw_server::start(host.clone(), http, Some(admin)).await.context("the HTTP API did not start")?;
        Some(server)
    } else {
        None
    };
    let watch = match &state_dir {
        Some(state) => Some(super::watch::start(
            host.clone(),
            source,
            policies_dir,
            state.clone(),
            server.as_ref().map(|s| s.local_addr()),
        )?),
        None => None,
    };
    tracing::info!(
        components = host.components().len(),
        tools = host.tools().len(),
        refused = refused.len(),
        http = %server.as_ref().map(|s| format!("http://{}", s.local_addr())).unwrap_or_else(|| "off".into()),
        state_dir = %state_dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default(),
        startup_ms = started.elapsed().as_millis() as u64,
        "ready"
    );
    wait_for_signal().await?;
    let grace = Duration::from_secs(args.grace);
    tracing::info!(grace_s = args.grace, "stopping: draining in-flight calls");
    if let Some(server) = server {
        server.shutdown(grace).await;
    }
    if let Some(watch) = watch {
        watch.stop().await;
    }
    let left = host.stop(grace).await;
    if left > 0 {
        tracing::warn!(calls = left, "calls still running after the grace period were abandoned");
    }
    drop(host);
    tracing::info!("stopped");
    Ok(ExitCode::SUCCESS)
}

async fn wait_for_signal() -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term = signal(SignalKind::terminate())?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r?,
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c().await?;
    Ok(())
}
