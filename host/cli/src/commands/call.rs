//! `arw call TOOL --input JSON`: one call, in-process.

use std::io::Read;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use arw_host::HostConfig;
use arw_policy::Principal;

use crate::cli::CallArgs;

pub async fn run(config: HostConfig, args: CallArgs) -> anyhow::Result<ExitCode> {
    let input = if args.input == "-" {
        let mut text = String::new();
        std::io::stdin().read_to_string(&mut text).context("reading the input from stdin")?;
        text
    } else {
        args.input
    };
    let (host, refused) = super::start_host(config).await?;
    for error in &refused {
        eprintln!("warning: {error}");
    }
    let caller = host.caller(Principal::local_operator());
    let result = if args.break_glass {
        host.call_break_glass(&caller, &args.tool, &input).await
    } else {
        host.call(&caller, &args.tool, &input).await
    };
    host.shutdown(Duration::from_secs(5)).await;
    match result {
        Ok(output) => {
            out!("{output}");
            Ok(ExitCode::SUCCESS)
        }
        Err(error) => {
            eprintln!("error[{}]: {error}", error.code());
            Ok(ExitCode::FAILURE)
        }
    }
}
