//! The engine side of recording (`crate::record`): each request a target takes, after its
//! policy (so redaction and header rules apply), handed to the target's recorder. The raw
//! request is built on the recorder's thread, as `request::build` makes it for the mirror,
//! minus the mirror URL's path prefix and the forward proxy's headers: a record is the
//! client's request as this target sends it, replayable against any URL.

use super::message::MirrorRequest;
use super::request::{build, Base};
use super::Error;
use crate::config::RecordConfig;
use crate::record::{encode_request, Payload, Recorder};
use crate::stats::TargetStats;
use std::sync::Arc;
use std::time::Duration;

/// One target's recorder and the base its records are built with.
pub(super) struct Recording {
    recorder: Recorder<Recorded>,
    base: Arc<Base>,
}

/// A queued record: the request as the target's policy left it.
pub(super) struct Recorded {
    request: Arc<MirrorRequest>,
    base: Arc<Base>,
}

impl Payload for Recorded {
    fn write_to(&self, out: &mut Vec<u8>) -> bool {
        let Ok(req) = build(&self.request, &self.base, &[]) else {
            return false;
        };
        let target = req.uri().path_and_query().map_or("/", |p| p.as_str());
        out.extend_from_slice(&encode_request(
            req.method(),
            target,
            req.version(),
            req.headers(),
            &self.request.body,
        ));
        true
    }
}

impl Recording {
    /// Starts the recorder (opens the first file: an unwritable directory or a full disk is
    /// an error here, at startup or reload).
    pub(super) fn start(
        name: &str,
        config: &RecordConfig,
        base: &Base,
        stats: Arc<TargetStats>,
    ) -> Result<Recording, Error> {
        let recorder =
            Recorder::start(name, config, stats).map_err(|e| Error::Record(e.to_string()))?;
        let base = Base {
            prefix: String::new(),
            ..base.clone()
        };
        Ok(Recording {
            recorder,
            base: Arc::new(base),
        })
    }

    /// Queues the record; never blocks (a full queue drops and counts it).
    pub(super) fn offer(&self, request: &Arc<MirrorRequest>) {
        self.recorder.offer(
            Recorded {
                request: Arc::clone(request),
                base: Arc::clone(&self.base),
            },
            request.id.clone(),
        );
    }

    /// Queues the primary's response (raw HTTP/1.1) to the request with HAProxy's id `key`.
    pub(super) fn offer_response(&self, key: &bytes::Bytes, payload: &bytes::Bytes) {
        self.recorder.offer_response(key.clone(), payload.clone());
    }

    /// Writes out what is queued and closes the file (the agent is stopping).
    pub(super) async fn finish(&self, deadline: Duration) {
        self.recorder.finish(deadline).await;
    }
}
