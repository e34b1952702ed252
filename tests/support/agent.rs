//! The agent under test, in-process ([`InProcessAgent`]): `listener::serve` on 127.0.0.1:0
//! with a handler that records every NOTIFY's messages, and a raw SPOP client ([`Client`]) that
//! reads whole frames.
//!
//! Which harness: use this one for the SPOP protocol (handshake, framing, ACKs, DISCONNECT
//! statuses, what the handler receives): no process to start, the handler's messages and the
//! `Stats` are read directly, and a test can run many agents cheaply. Use
//! `tests/common/agent.rs` (`AgentProcess`, the built binary as a child process) when the
//! test is about the program: the command line, signals, logging, the metrics endpoint, exit
//! codes, or the agent behind a real HAProxy.
//!
//! Every wait here is bounded by [`WAIT`]; a test that hangs fails with a message instead.

use super::{hex, wire};
use spoa_mirror::config::SpopConfig;
use spoa_mirror::handler::{Notify, NotifyHandler};
use spoa_mirror::listener;
use spoa_mirror::spop::Message;
use spoa_mirror::stats::{get, Stats};
use std::net::SocketAddr;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Upper bound of any single wait in these tests (a frame, a close, a count).
pub const WAIT: Duration = Duration::from_secs(10);

/// Records the messages of every NOTIFY handed over, in order.
pub struct Recorder {
    notifies: Mutex<Vec<Vec<Message>>>,
    count: watch::Sender<usize>,
}

impl Recorder {
    pub fn new() -> Recorder {
        Recorder {
            notifies: Mutex::new(Vec::new()),
            count: watch::Sender::new(0),
        }
    }

    /// Everything recorded so far.
    pub fn all(&self) -> Vec<Vec<Message>> {
        self.notifies.lock().expect("recorder lock").clone()
    }

    pub fn len(&self) -> usize {
        *self.count.borrow()
    }

    /// Waits until at least `n` NOTIFYs were recorded, then returns them all.
    pub async fn wait_for(&self, n: usize) -> Vec<Vec<Message>> {
        let mut rx = self.count.subscribe();
        tokio::time::timeout(WAIT, rx.wait_for(|c| *c >= n))
            .await
            .unwrap_or_else(|_| panic!("handler got {} NOTIFYs, wanted {n}", self.len()))
            .expect("recorder alive");
        self.all()
    }
}

impl Default for Recorder {
    fn default() -> Self {
        Recorder::new()
    }
}

impl NotifyHandler for Recorder {
    fn handle(&self, notify: Notify) {
        self.notifies
            .lock()
            .expect("recorder lock")
            .push(notify.messages);
        self.count.send_modify(|c| *c += 1);
    }
}

/// The former name, still used by `tests/reliability.rs`; new code names [`InProcessAgent`].
pub type Agent = InProcessAgent;

/// A running in-process agent.
pub struct InProcessAgent {
    pub addr: SocketAddr,
    pub recorder: Arc<Recorder>,
    pub stats: Arc<Stats>,
    pub shutdown: CancellationToken,
    pub served: Option<JoinHandle<()>>,
}

impl InProcessAgent {
    /// Binds 127.0.0.1:0 and runs `serve` on the current runtime.
    pub async fn start(cfg: SpopConfig) -> InProcessAgent {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local_addr");
        let recorder = Arc::new(Recorder::new());
        let stats = Arc::new(Stats::default());
        let shutdown = CancellationToken::new();
        let served = tokio::spawn(listener::serve(
            listener,
            cfg,
            recorder.clone(),
            stats.clone(),
            shutdown.clone(),
        ));
        InProcessAgent {
            addr,
            recorder,
            stats,
            shutdown,
            served: Some(served),
        }
    }

    pub async fn connect(&self) -> Client {
        Client::connect(self.addr).await
    }

    /// A connection that completed the ≤3.0-style handshake (HELLO mfs 16380, `caps`).
    pub async fn ready(&self, caps: &str) -> Client {
        let mut c = self.connect().await;
        c.send(&wire::haproxy_hello(16380, caps)).await;
        let hello = c.frame().await.expect("AGENT-HELLO");
        assert_eq!(hello.get(4), Some(&wire::T_AGENT_HELLO), "{}", hex(&hello));
        c
    }

    /// Proves the process still serves: a fresh connection handshakes, one NOTIFY is ACKed.
    pub async fn assert_serving(&self) {
        let mut c = self.ready("").await;
        c.send(&wire::notify(77, 1, &wire::mirror_message("/alive")))
            .await;
        assert_eq!(c.frame_hex().await, hex(&wire::ack(77, 1)));
    }

    /// Waits (bounded poll: the counter lives in another task, there is no event) until
    /// `counter` reaches `want`.
    pub async fn wait_counter(&self, counter: impl Fn(&Stats) -> &AtomicU64, want: u64) {
        let deadline = tokio::time::Instant::now() + WAIT;
        while get(counter(&self.stats)) != want {
            assert!(
                tokio::time::Instant::now() < deadline,
                "counter is {}, wanted {want}",
                get(counter(&self.stats))
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Cancels the token and waits for `serve` to return.
    pub async fn stop(&mut self) {
        self.shutdown.cancel();
        if let Some(served) = self.served.take() {
            tokio::time::timeout(WAIT, served)
                .await
                .expect("serve() returns after shutdown")
                .expect("serve() did not panic");
        }
    }
}

impl Drop for InProcessAgent {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A raw SPOP peer playing HAProxy's part.
pub struct Client {
    stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect to agent");
        // Each write leaves at once, so byte-at-a-time really arrives in pieces.
        stream.set_nodelay(true).expect("nodelay");
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write to agent");
    }

    /// One write per byte (F1).
    pub async fn send_bytewise(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.stream.write_all(&[*b]).await.expect("write to agent");
            self.stream.flush().await.expect("flush");
        }
    }

    /// Half-closes our side (what HAProxy's FIN looks like to the agent).
    pub async fn shutdown_write(&mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Reads more bytes; 0 on EOF, and a reset counts as EOF (the agent closed).
    async fn fill(&mut self) -> usize {
        let mut chunk = [0u8; 16 * 1024];
        match tokio::time::timeout(WAIT, self.stream.read(&mut chunk)).await {
            Err(_) => panic!(
                "agent sent nothing within {WAIT:?} (buffered: {})",
                hex(&self.buf)
            ),
            Ok(Ok(n)) => {
                self.buf.extend_from_slice(&chunk[..n]);
                n
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionReset => 0,
            Ok(Err(e)) => panic!("read from agent: {e}"),
        }
    }

    /// The next whole frame, length prefix included; `None` when the agent closed cleanly
    /// between frames. Panics on a close in mid-frame or after [`WAIT`].
    pub async fn frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(prefix) = self.buf.get(..4) {
                let len = u32::from_be_bytes(prefix.try_into().expect("4 bytes")) as usize;
                if self.buf.len() >= 4 + len {
                    return Some(self.buf.drain(..4 + len).collect());
                }
            }
            if self.fill().await == 0 {
                assert!(
                    self.buf.is_empty(),
                    "agent closed in mid-frame: {}",
                    hex(&self.buf)
                );
                return None;
            }
        }
    }

    /// The next frame as hex (panics if the agent closed instead).
    pub async fn frame_hex(&mut self) -> String {
        hex(&self.frame().await.expect("a frame, not a close"))
    }

    /// `n` frames as hex.
    pub async fn frames_hex(&mut self, n: usize) -> Vec<String> {
        let mut out = Vec::with_capacity(n);
        for _ in 0..n {
            out.push(self.frame_hex().await);
        }
        out
    }

    /// Asserts that the agent sends nothing more and closes the connection.
    pub async fn assert_closed(&mut self) {
        if let Some(extra) = self.frame().await {
            panic!(
                "expected the agent to close, got another frame {}",
                hex(&extra)
            );
        }
    }

    /// Asserts the agent answers AGENT-DISCONNECT with `code` (exact bytes) and closes.
    pub async fn assert_disconnect(&mut self, code: u32) {
        assert_eq!(
            self.frame_hex().await,
            hex(&wire::agent_disconnect(code)),
            "expected AGENT-DISCONNECT {code} ({})",
            wire::status_text(code)
        );
        self.assert_closed().await;
    }

    /// The first read after connecting, as one `read` call: lets a test check that a frame
    /// arrived in a single segment.
    pub async fn read_once(&mut self) -> Vec<u8> {
        self.fill().await;
        std::mem::take(&mut self.buf)
    }
}
