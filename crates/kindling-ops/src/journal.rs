//! The boot journal: `kindling-journal`'s rotated JSON-lines log, of [`Event`]s.

use std::io;
use std::path::Path;

pub use kindling_journal::*;

use kindling_timeline::event::Event;

/// Every boot event of the journal in `dir`, oldest first (tools and examples; start-up
/// replays it event by event instead).
pub fn read_journal(dir: &Path, files: usize) -> io::Result<ReadBack<Event>> {
    kindling_journal::read_journal(dir, files)
}
