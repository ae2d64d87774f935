//! The vmprobe probe protocol: one definition of every byte that crosses the wire between the
//! host harness and the guest probe (UDP port [`PROBE_PORT`]).
//!
//! Built like smoltcp's wire layer: one module per message, each with a `Packet<T>` wrapper over
//! a byte buffer (`new_unchecked`, `check_len`, `new_checked`, getters and setters at fixed byte
//! ranges) and a `Repr`, the validated compact form (`parse`, `buffer_len`, `emit`). [`header`]
//! frames every datagram; [`Datagram`] ties the header to the body its `kind` names. All
//! integers are big-endian. Nothing allocates.
//!
//! # Messages
//! | kind | direction | body | reply |
//! |---|---|---|---|
//! | [`EchoRequest`](Kind::EchoRequest) | host → guest | [`echo_request`] | `EchoReply` |
//! | [`EchoReply`](Kind::EchoReply) | guest → host | [`echo_reply`] | |
//! | [`StatsRequest`](Kind::StatsRequest) | host → guest | empty | `StatsReply` |
//! | [`StatsReply`](Kind::StatsReply) | guest → host | [`stats_reply`] | |
//! | [`BenchRequest`](Kind::BenchRequest) | host → guest | [`bench_request`] | `BenchResult` or `Error` |
//! | [`BenchResult`](Kind::BenchResult) | guest → host | [`bench_result`] | |
//! | [`SamplesRequest`](Kind::SamplesRequest) | host → guest | [`samples_request`] | `Samples` or `Error` |
//! | [`Samples`](Kind::Samples) | guest → host | [`samples`] | |
//! | [`PowerOff`](Kind::PowerOff) | host → guest | empty | `PowerOffAck`, then the VM powers off |
//! | [`PowerOffAck`](Kind::PowerOffAck) | guest → host | empty | |
//! | [`Error`](Kind::Error) | guest → host | [`error_reply`] | |
//! | [`ClockRequest`](Kind::ClockRequest) | host → guest | [`clock_request`] | `ClockReply` or `Error` |
//! | [`ClockReply`](Kind::ClockReply) | guest → host | [`clock_reply`] | |
//!
//! Every reply carries its request's `sequence` and `flags`. The guest sends nothing for a
//! malformed or unknown datagram; it counts it (see [`GuestStats`]).
//!
//! # The no-panic contract
//! - After `check_len` (or `new_checked`) succeeds, no accessor of that `Packet` panics.
//! - `Repr::parse` and [`Datagram::parse`] never panic, whatever the bytes: every malformed,
//!   truncated or unknown datagram is an [`Error`]. Both are fuzzed (`proto/fuzz`) and
//!   property-tested.
//! - `Repr::emit` never panics on a buffer of at least `buffer_len` bytes; [`Datagram::emit`]
//!   never panics at all (a short buffer is [`Error::Truncated`]).
//! - Never use `new_checked` on a buffer you are about to emit into: it holds no header yet.
//!
//! # Example
//! ```
//! use vmprobe_proto::{echo_request, Datagram, Message};
//!
//! let request = Datagram {
//!     sequence: 7,
//!     flags: 0,
//!     message: Message::EchoRequest(echo_request::Repr {
//!         host_send_ns: 1_000_000,
//!         reply_len: 0,
//!         rx: Default::default(),
//!         padding: 16,
//!     }),
//! };
//! let mut buf = [0u8; 128];
//! let len = request.emit(&mut buf).unwrap();
//! assert_eq!(Datagram::parse(&buf[..len]), Ok(request));
//! assert!(Datagram::parse(&buf[..len - 1]).is_err());
//! ```
#![cfg_attr(not(test), no_std)]
#![deny(unsafe_code, missing_docs)]

mod bytes;

pub mod bench;
pub mod bench_request;
pub mod bench_result;
pub mod clock_reply;
pub mod clock_request;
pub mod echo_reply;
pub mod echo_request;
pub mod error_reply;
pub mod guest;
pub mod header;
pub mod message;
pub mod samples;
pub mod samples_request;
pub mod stats_reply;

pub use bench::{BenchTest, Summary};
pub use guest::{CounterKind, GuestMode};
pub use header::{Kind, HEADER_LEN, MAGIC, VERSION};
pub use message::{Datagram, Message};
pub use stats_reply::GuestStats;

/// UDP port the guest listens on for the probe protocol.
pub const PROBE_PORT: u16 = 7777;

/// Why bytes are not a valid probe message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Error {
    /// Shorter than its header, its `length` field or its message's fixed part; or a `length`
    /// smaller than a header.
    #[error("probe datagram truncated or its length field inconsistent")]
    Truncated,
    /// Does not start with [`MAGIC`].
    #[error("not a probe datagram (bad magic)")]
    BadMagic,
    /// A protocol version this build does not speak.
    #[error("unsupported probe protocol version")]
    BadVersion,
    /// A message kind this build does not know.
    #[error("unknown probe message kind")]
    UnknownKind,
    /// A field holds a value outside its range (test id, counter kind, mode, error code).
    #[error("probe message field out of range")]
    BadValue,
}

/// Result of parsing or emitting probe messages.
pub type Result<T> = core::result::Result<T, Error>;
