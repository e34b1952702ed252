//! `spoa-mirror-replay`: plays record files (spoa-mirror's or GoReplay's) against a URL.
//! The agent's command line is not touched: this is a tool of its own.

// The crate's house rules hold here too.
#![deny(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use clap::Parser;
use spoa_mirror::replay::cli::{run, Args, EXIT_INPUT};
use std::process::ExitCode;

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build();
    let code = match runtime {
        Ok(rt) => rt.block_on(run(args)),
        Err(e) => {
            eprintln!("spoa-mirror-replay: cannot start the runtime: {e}");
            EXIT_INPUT
        }
    };
    ExitCode::from(code)
}
