//! Read-only TFTP server for Kindling.
//!
//! - [`packet`]: codec for RRQ/WRQ/DATA/ACK/ERROR/OACK (RFC 1350, 2347).
//! - [`transfer`]: sans-I/O per-transfer state machine with blksize, tsize,
//!   timeout and windowsize negotiation (RFC 2348, 2349, 7440), retransmission
//!   with exponential backoff and Sorcerer's-Apprentice-safe ACK handling.
//! - [`source`]: request-name resolution confined to a root, named overrides,
//!   default iPXE binaries, and the [`FileSource`] trait for generated files.
//! - [`limits`]: sans-I/O admission control: transfer slots per client address with
//!   eviction of idle transfers, and a per-address request token bucket.
//! - [`secureboot`]: the names of the Secure Boot chain (shim, GRUB, its configuration,
//!   assets), classified purely and answered in front of another source.
//! - [`server`]: the tokio shell ([`TftpServer`]).
//!
//! Transfer mode `netascii` is served byte for byte like `octet` (no CR/LF
//! translation: boot files are binary); `mail` is refused with ERROR 4.

pub mod config;
pub mod limits;
pub mod packet;
mod pktinfo;
pub mod secureboot;
pub mod server;
pub mod source;
pub mod stats;
pub mod transfer;

pub use config::{ConfigError, TftpConfig};
pub use packet::{ErrorCode, Packet, PacketError};
pub use server::{ServerError, TftpServer};
pub use source::{FileSource, FsSource, Opened, TftpError};
pub use stats::{Refusal, StatsSnapshot, TftpObserver, TftpStats};
pub use tokio_util::sync::CancellationToken;
pub use transfer::{BlockReader, Outcome, Status, Step, Transfer, TransferParams};
