//! `spoa-mirror`: an HAProxy SPOE agent that mirrors HTTP requests to another server.
//!
//! HAProxy's SPOE filter sends a copy of each request over SPOP ([`spop`]); the agent ACKs at
//! once ([`connection`]) and hands the decoded messages to a [`handler::NotifyHandler`], the
//! [`mirror`] engine, which fires the request at the mirror URL without making HAProxy wait.
//!
//! Layout: `spop` is the pure codec; `listener` and `connection` speak it over TCP; `mirror`
//! turns messages into HTTP requests; `cli`, `config`, `logging` and `daemon` are the process
//! around them; `stats` holds the counters all of them update; `throttle` keeps warnings that
//! could repeat per request or per connection to one line per interval.

pub mod cli;
pub mod config;
pub mod connection;
pub mod daemon;
pub mod handler;
pub mod listener;
pub mod logging;
pub mod mirror;
pub mod spop;
pub mod stats;
pub(crate) mod throttle;
