//! The text log format, written without tracing-subscriber's per-field formatting.
//!
//! The lines are those of tracing-subscriber's default ("full") format with ANSI colours
//! off, which operators, the tests and `docs/` read:
//!
//! ```text
//! 2026-12-07T16:41:37.123456Z  INFO dhcp{iface=br0}: kindling::http: request method=GET path="/ipxe" status=200
//! ```
//!
//! a UTC timestamp to the microsecond, the level padded to five characters, the spans
//! from the root with their fields, the target, then the fields: the message as it is,
//! a string field quoted with Rust's escapes, any other field as its `Debug` (a `%field`
//! as its `Display`). The message and error values have terminal control characters
//! shown as escapes, as tracing-subscriber does; client-supplied text is escaped further
//! at the call site (`kindling_guard::esc`).
//!
//! Why our own: at a boot storm's rate a request line is written for every request, and
//! the library's formatter spent most of its time in `fmt` machinery (a `Debug` visit for
//! each field, colour styles that write nothing, the calendar for each timestamp). Here a
//! plain string is copied between its quotes, numbers skip the `Debug` detour, and each
//! thread keeps the timestamp's text up to the second. The JSON format stays the library's.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

/// The event format (see the module's documentation).
pub struct Text {
    /// The clock: the wall clock, or a fixed one in tests.
    pub now: fn() -> SystemTime,
}

impl Default for Text {
    fn default() -> Self {
        Self {
            now: SystemTime::now,
        }
    }
}

/// The field format of events and spans (see the module's documentation).
#[derive(Default)]
pub struct Fields;

impl<S, N> FormatEvent<S, N> for Text
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        // A record of the `log` crate carries its level and target in fields.
        let normalized = event.normalized_metadata();
        let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
        write_timestamp(&mut w, (self.now)())?;
        w.write_str(match *meta.level() {
            Level::TRACE => " TRACE ",
            Level::DEBUG => " DEBUG ",
            Level::INFO => "  INFO ",
            Level::WARN => "  WARN ",
            Level::ERROR => " ERROR ",
        })?;
        if let Some(scope) = ctx.event_scope() {
            let mut seen = false;
            for span in scope.from_root() {
                w.write_str(span.metadata().name())?;
                seen = true;
                let ext = span.extensions();
                if let Some(fields) = ext.get::<FormattedFields<N>>()
                    && !fields.is_empty()
                {
                    w.write_char('{')?;
                    w.write_str(fields)?;
                    w.write_char('}')?;
                }
                w.write_char(':')?;
            }
            if seen {
                w.write_char(' ')?;
            }
        }
        w.write_str(meta.target())?;
        w.write_str(": ")?;
        ctx.format_fields(w.by_ref(), event)?;
        w.write_char('\n')
    }
}

impl<'w> FormatFields<'w> for Fields {
    fn format_fields<R: RecordFields>(&self, w: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            w,
            first: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

struct Visitor<'w> {
    w: Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Visitor<'_> {
    /// Starts a field: the separating space, and `name=` unless it is the message. `None`
    /// for a field that is not shown (a `log` record's metadata, already in the line).
    fn start(&mut self, field: &Field) -> Option<bool> {
        if self.result.is_err() {
            return None;
        }
        let name = field.name();
        if name.starts_with("log.") {
            return None;
        }
        let r = (|| {
            if !std::mem::take(&mut self.first) {
                self.w.write_char(' ')?;
            }
            if name == "message" {
                return Ok(true);
            }
            self.w.write_str(name.strip_prefix("r#").unwrap_or(name))?;
            self.w.write_char('=').map(|()| false)
        })();
        match r {
            Ok(is_message) => Some(is_message),
            Err(e) => {
                self.result = Err(e);
                None
            }
        }
    }

    fn finish(&mut self, r: fmt::Result) {
        self.result = r;
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        let Some(is_message) = self.start(field) else {
            return;
        };
        let r = if is_message {
            write_sanitized(&mut self.w, value)
        } else if value
            .bytes()
            .all(|b| matches!(b, 0x20..=0x7e) && b != b'"' && b != b'\\')
        {
            // What `{:?}` writes for such a string, without walking it char by char.
            self.w
                .write_char('"')
                .and_then(|()| self.w.write_str(value))
                .and_then(|()| self.w.write_char('"'))
        } else {
            write!(self.w, "{value:?}")
        };
        self.finish(r);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        if self.start(field).is_some() {
            let r = write!(self.w, "{value}");
            self.finish(r);
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        if self.start(field).is_some() {
            let r = write!(self.w, "{value}");
            self.finish(r);
        }
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        if self.start(field).is_some() {
            let r = self.w.write_str(if value { "true" } else { "false" });
            self.finish(r);
        }
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        let Some(_) = self.start(field) else {
            return;
        };
        let r = (|| {
            Sanitizing(&mut self.w).write_fmt(format_args!("{value}"))?;
            let Some(mut source) = value.source() else {
                return Ok(());
            };
            write!(self.w, " {}.sources=[", field.name())?;
            loop {
                Sanitizing(&mut self.w).write_fmt(format_args!("{source}"))?;
                match source.source() {
                    Some(next) => {
                        self.w.write_str(", ")?;
                        source = next;
                    }
                    None => return self.w.write_char(']'),
                }
            }
        })();
        self.finish(r);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        let Some(is_message) = self.start(field) else {
            return;
        };
        let r = if is_message {
            Sanitizing(&mut self.w).write_fmt(format_args!("{value:?}"))
        } else {
            write!(self.w, "{value:?}")
        };
        self.finish(r);
    }
}

/// The terminal control characters a message or error may not carry as they are: the C0
/// ones that start or shape escape sequences, DEL, and the C1 range.
fn needs_sanitizing(c: char) -> bool {
    matches!(
        c,
        '\x1b' | '\x07' | '\x08' | '\x0c' | '\x7f' | '\u{80}'..='\u{9f}'
    )
}

fn write_sanitized(w: &mut Writer<'_>, s: &str) -> fmt::Result {
    if s.chars().any(needs_sanitizing) {
        Sanitizing(w).write_str(s)
    } else {
        w.write_str(s)
    }
}

/// Passes text on with the characters of [`needs_sanitizing`] as escapes (`\x1b`, and
/// `\u{9b}` for the C1 range).
struct Sanitizing<'a, 'w>(&'a mut Writer<'w>);

impl fmt::Write for Sanitizing<'_, '_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(i) = rest.find(needs_sanitizing) {
            self.0.write_str(&rest[..i])?;
            let c = rest[i..].chars().next().unwrap_or_default();
            if c < '\u{80}' {
                write!(self.0, "\\x{:02x}", c as u32)?;
            } else {
                write!(self.0, "\\u{{{:x}}}", c as u32)?;
            }
            rest = &rest[i + c.len_utf8()..];
        }
        self.0.write_str(rest)
    }
}

thread_local! {
    /// The second last written by this thread and its text up to the fraction,
    /// `YYYY-MM-DDTHH:MM:SS.`.
    static SECOND: RefCell<(i64, String)> = const { RefCell::new((i64::MIN, String::new())) };
}

/// Writes `t` as `YYYY-MM-DDTHH:MM:SS.ffffffZ` (UTC; a year past 9999 with a `+`, one
/// before year 0 with its sign, as tracing-subscriber writes them).
fn write_timestamp(w: &mut Writer<'_>, t: SystemTime) -> fmt::Result {
    let (secs, micros) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as i64, d.subsec_micros()),
        Err(e) => {
            // Before 1970: the second at or before `t`, and the microseconds after it.
            let d = e.duration();
            let (s, n) = (d.as_secs() as i64, d.subsec_nanos());
            if n == 0 {
                (-s, 0)
            } else {
                (-s - 1, (1_000_000_000 - n) / 1_000)
            }
        }
    };
    // The thread's cached text, or a text of its own when the cache is in use or gone
    // (a line logged while the thread's locals are torn down).
    let put = |c: &mut (i64, String), w: &mut Writer<'_>| -> fmt::Result {
        if c.0 != secs {
            c.1.clear();
            write_second(&mut c.1, secs)?;
            c.0 = secs;
        }
        w.write_str(&c.1)
    };
    match SECOND.try_with(|cell| cell.try_borrow_mut().ok().map(|mut c| put(&mut c, w))) {
        Ok(Some(r)) => r?,
        _ => put(&mut (i64::MIN, String::new()), w)?,
    }
    write!(w, "{micros:06}Z")
}

/// `YYYY-MM-DDTHH:MM:SS.` of the second `secs` after the epoch (negative before it).
fn write_second(out: &mut String, secs: i64) -> fmt::Result {
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    let (y, m, d) = kindling_timeline::event::civil_from_days(days);
    if y > 9999 {
        write!(out, "+{y}")?;
    } else if y < 0 {
        write!(out, "{y:05}")?;
    } else {
        write!(out, "{y:04}")?;
    }
    write!(
        out,
        "-{m:02}-{d:02}T{:02}:{:02}:{:02}.",
        tod / 3600,
        tod / 60 % 60,
        tod % 60
    )
}

#[cfg(test)]
mod tests;
