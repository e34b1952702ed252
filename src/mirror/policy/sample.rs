//! Sampling: random, or sticky by a key hashed with a fixed seed (xxh3), so a key is in or out
//! on every agent and across restarts.

use crate::config::{SampleKey, Sampling};
use crate::mirror::message::MirrorRequest;
use http::header::COOKIE;
use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Fixed forever: changing it would move every sticky key in or out of every sample.
pub(super) const SEED: u64 = 0x5350_4f41_4d49_5252; // "SPOAMIRR"

pub(super) struct Sampler {
    /// A 64-bit draw below this is in the sample (2^64 for 100 %).
    threshold: u128,
    by: SampleKey,
}

impl Sampler {
    pub(super) fn new(s: &Sampling) -> Sampler {
        let fraction = (s.percent / 100.0).clamp(0.0, 1.0);
        // f64 → u128 saturates; 1.0 gives exactly 2^64.
        let threshold = (fraction * 18_446_744_073_709_551_616.0) as u128;
        Sampler {
            threshold,
            by: s.by.clone(),
        }
    }

    /// Whether this request is in the sample. A sticky key that the request lacks: out.
    pub(super) fn sampled(&self, req: &MirrorRequest) -> bool {
        let draw = match &self.by {
            SampleKey::Random => fastrand::u64(..),
            SampleKey::Header(name) => match req.headers.iter().find(|(n, _)| n == name) {
                Some((_, v)) => hash(v.as_bytes()),
                None => return false,
            },
            SampleKey::Cookie(name) => match cookie(req, name) {
                Some(v) => hash(v),
                None => return false,
            },
            SampleKey::Src => match req.src {
                Some(std::net::IpAddr::V4(a)) => hash(&a.octets()),
                Some(std::net::IpAddr::V6(a)) => hash(&a.octets()),
                None => return false,
            },
        };
        u128::from(draw) < self.threshold
    }
}

/// The key's position in [0, 2^64): the same on every agent, forever.
pub(super) fn hash(key: &[u8]) -> u64 {
    xxh3_64_with_seed(key, SEED)
}

/// The value of the first cookie called `name` in any Cookie header.
pub(super) fn cookie<'a>(req: &'a MirrorRequest, name: &str) -> Option<&'a [u8]> {
    req.headers
        .iter()
        .filter(|(n, _)| n == COOKIE)
        .flat_map(|(_, v)| v.as_bytes().split(|&b| b == b';'))
        .find_map(|pair| {
            let pair = pair.trim_ascii();
            let eq = pair.iter().position(|&b| b == b'=')?;
            let (n, v) = (pair.get(..eq)?, pair.get(eq + 1..)?);
            (n.trim_ascii() == name.as_bytes()).then_some(v.trim_ascii())
        })
}
