//! `spoa-mirror`: an HAProxy SPOE agent that mirrors HTTP requests to another server.
//!
//! HAProxy's SPOE filter sends a copy of each request over SPOP ([`spop`]); the agent ACKs at
//! once (`connection`) and hands the decoded messages to a [`handler::NotifyHandler`], the
//! [`mirror`] engine, which fires the request at the mirror URL without making HAProxy wait.
//!
//! Layout: `spop` is the pure codec; `listener` and `connection` speak it over TCP; `mirror`
//! turns messages into HTTP requests; `stats` holds the counters all of them update;
//! `throttle` keeps warnings that could repeat per request or per connection to one line per
//! interval. `config` is the validated configuration every part reads; `app` runs the agent
//! from a `Config` (bind, serve, metrics, signals, orderly stop); `process` holds what
//! belongs to the process (exit codes, `-D`, `-F`, readiness); `handover` is the SIGUSR2
//! restart onto inherited sockets; `logging` sets up the log; `admin` is the run-time
//! control endpoint (`--admin-address`), given the engine by `app`; `shadow` compares the
//! primary's responses with the candidates' (a route of the router and the engine's tap).
//! `cli` turns the command line into a `Config`; only the binary (`main.rs`) uses it: `cli`
//! imports `config` and `process`, and nothing in the library imports `cli`.

// House rules, enforced: no panic on wire input, a config file or any other input. Outside
// tests, nothing may unwrap, expect, panic or index a slice (use `get` and handle `None`).
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod admin;
pub mod app;
pub mod cli;
pub mod config;
pub(crate) mod connection;
pub mod handler;
pub mod handover;
pub mod listener;
pub mod logging;
pub mod mirror;
pub mod process;
pub mod record;
pub mod replay;
pub mod shadow;
pub mod spop;
pub mod stats;
pub(crate) mod throttle;
