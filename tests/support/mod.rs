//! Helpers shared by the SPOP core tests (`spop_golden`, `conformance`, `replay`,
//! `codec_props`): hex, an independent frame builder ([`wire`]), an in-process agent with a
//! recording handler plus a raw SPOP client ([`agent`]), and the captures ([`captures`]). The
//! agent as a child process is `tests/common/agent.rs`.
//!
//! [`wire`] deliberately does not use the crate's encoder, so a test that builds its input
//! with it and compares the agent's output against it checks the codec against a second,
//! separately written implementation of the same byte layout.
#![allow(dead_code)]

pub mod agent;
pub mod captures;
pub mod wire;

/// Lower-case hex of `bytes`, no separators (the captures' format).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Bytes of a hex string; whitespace is ignored so long vectors can be wrapped.
pub fn unhex(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    assert!(digits.len() % 2 == 0, "odd number of hex digits");
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).expect("hex is ASCII");
            u8::from_str_radix(text, 16).unwrap_or_else(|_| panic!("bad hex {text:?}"))
        })
        .collect()
}
