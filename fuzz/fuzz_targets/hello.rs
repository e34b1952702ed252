//! Fuzz target `hello`: see `oracles::hello` for the decoder it drives and what it asserts.
#![no_main]

#[path = "../oracles.rs"]
#[allow(dead_code)]
mod oracles;

libfuzzer_sys::fuzz_target!(|data: &[u8]| oracles::hello(data));
