//! `arw up`: run the host until told to stop.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use arw_host::HostConfig;

use crate::cli::UpArgs;

pub async fn run(config: HostConfig, args: UpArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let state_dir = config.state_dir.clone();
    let policies_dir = config.policies_dir.clone();
    let (host, refused, installed) = super::start_host_with_source(config).await?;
    let host = std::sync::Arc::new(host);
    let watch = match &state_dir {
        Some(state) => Some(super::watch::start(host.clone(), installed, policies_dir, state.clone())?),
        None => None,
    };
    let components = host.components();
    tracing::info!(
        components = components.len(),
        tools = host.tools().len(),
        refused = refused.len(),
        state_dir = %state_dir.as_deref().map(|d| d.display().to_string()).unwrap_or_default(),
        startup_ms = started.elapsed().as_millis() as u64,
        "ready"
    );
    wait_for_signal().await?;
    tracing::info!(grace_s = args.grace, "stopping: draining in-flight calls");
    if let Some(watch) = watch {
        watch.stop().await;
    }
    let host = std::sync::Arc::try_unwrap(host)
        .map_err(|_| anyhow::anyhow!("internal error: the host is still shared at shutdown"))?;
    let left = host.shutdown(Duration::from_secs(args.grace)).await;
    if left > 0 {
        tracing::warn!(calls = left, "calls still running after the grace period were abandoned");
    }
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
