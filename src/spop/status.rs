//! DISCONNECT status codes (SPOE §3.5).

/// A status code of HAPROXY-DISCONNECT / AGENT-DISCONNECT, with the reason text the agent sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Status {
    Normal,
    IoError,
    Timeout,
    FrameTooBig,
    InvalidFrame,
    NoVersion,
    NoFrameSize,
    NoCapabilities,
    BadVersion,
    BadFrameSize,
    FragmentationNotSupported,
    InterlacedFrames,
    FrameIdNotFound,
    ResourceAllocation,
    Unknown,
    /// A code this agent does not know, as received from HAProxy.
    Other(u32),
}

impl Status {
    /// Every status the spec defines, in code order.
    pub const ALL: [Status; 15] = [
        Status::Normal,
        Status::IoError,
        Status::Timeout,
        Status::FrameTooBig,
        Status::InvalidFrame,
        Status::NoVersion,
        Status::NoFrameSize,
        Status::NoCapabilities,
        Status::BadVersion,
        Status::BadFrameSize,
        Status::FragmentationNotSupported,
        Status::InterlacedFrames,
        Status::FrameIdNotFound,
        Status::ResourceAllocation,
        Status::Unknown,
    ];

    pub fn code(self) -> u32 {
        match self {
            Status::Normal => 0,
            Status::IoError => 1,
            Status::Timeout => 2,
            Status::FrameTooBig => 3,
            Status::InvalidFrame => 4,
            Status::NoVersion => 5,
            Status::NoFrameSize => 6,
            Status::NoCapabilities => 7,
            Status::BadVersion => 8,
            Status::BadFrameSize => 9,
            Status::FragmentationNotSupported => 10,
            Status::InterlacedFrames => 11,
            Status::FrameIdNotFound => 12,
            Status::ResourceAllocation => 13,
            Status::Unknown => 99,
            Status::Other(code) => code,
        }
    }

    pub fn from_code(code: u32) -> Status {
        Status::ALL
            .iter()
            .copied()
            .find(|s| s.code() == code)
            .unwrap_or(Status::Other(code))
    }

    /// The message text sent in AGENT-DISCONNECT. The wording follows the status names of
    /// SPOE §3.5, the same texts HAProxy and the original agent use, so operators' log
    /// searches keep working.
    pub fn reason(self) -> &'static str {
        match self {
            Status::Normal => "normal",
            Status::IoError => "I/O error",
            Status::Timeout => "a timeout occurred",
            Status::FrameTooBig => "frame is too big",
            Status::InvalidFrame => "invalid frame received",
            Status::NoVersion => "version value not found",
            Status::NoFrameSize => "max-frame-size value not found",
            Status::NoCapabilities => "capabilities value not found",
            Status::BadVersion => "unsupported version",
            Status::BadFrameSize => "max-frame-size too big or too small",
            Status::FragmentationNotSupported => "fragmentation not supported",
            Status::InterlacedFrames => "invalid interlaced frames",
            Status::FrameIdNotFound => "frame-id not found",
            Status::ResourceAllocation => "resource allocation error",
            Status::Unknown | Status::Other(_) => "an unknown error occurred",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", self.code(), self.reason())
    }
}
