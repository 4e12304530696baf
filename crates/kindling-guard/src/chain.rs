//! An error with its causes on one line.

use std::error::Error;
use std::fmt;

/// Displays an error followed by its [`Error::source`] chain, `outer: cause: root cause`,
/// leaving out every cause whose text the line already holds (an error whose own message
/// ends in `{source}` is not followed by that source again: never `a: b: b`). Empty
/// messages are left out too.
///
/// reqwest and hyper say only `error sending request` or `client error (Connect)` at the
/// top; the cause that matters (`Connection refused (os error 111)`, `dns error: ...`,
/// `operation timed out`, a TLS alert) is two or three sources down:
///
/// `tracing::warn!(error = %Chain(&e), ...)`, `format!("{}: {}", url, Chain(&e))`.
#[derive(Clone, Copy)]
pub struct Chain<'a>(pub &'a (dyn Error + 'a));

/// Causes followed at most (a chain that loops is cut there).
const MAX_DEPTH: usize = 32;

impl fmt::Display for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut line = self.0.to_string();
        let mut next = self.0.source();
        for _ in 0..MAX_DEPTH {
            let Some(cause) = next else { break };
            let text = cause.to_string();
            let text = text.trim();
            if !text.is_empty() && !line.contains(text) {
                if !line.is_empty() {
                    line.push_str(": ");
                }
                line.push_str(text);
            }
            next = cause.source();
        }
        f.write_str(&line)
    }
}

impl fmt::Debug for Chain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.to_string())
    }
}

/// `Chain(e).to_string()`.
pub fn chain(e: &dyn Error) -> String {
    Chain(e).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io;

    /// A message and an optional source; `with_source` also writes the source's text
    /// into its own message, as `#[error("...: {source}")]` does.
    #[derive(Debug)]
    struct E {
        msg: &'static str,
        source: Option<Box<dyn Error + Send + Sync>>,
        with_source: bool,
    }

    impl fmt::Display for E {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.msg)?;
            match &self.source {
                Some(s) if self.with_source => write!(f, ": {s}"),
                _ => Ok(()),
            }
        }
    }

    impl Error for E {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.source.as_deref().map(|s| s as &(dyn Error + 'static))
        }
    }

    fn e(msg: &'static str, source: impl Error + Send + Sync + 'static, with: bool) -> E {
        E {
            msg,
            source: Some(Box::new(source)),
            with_source: with,
        }
    }

    fn leaf(msg: &'static str) -> E {
        E {
            msg,
            source: None,
            with_source: false,
        }
    }

    #[test]
    fn the_whole_chain_as_reqwest_nests_it() {
        // reqwest -> hyper-util -> ConnectError -> io::Error, none repeating its source.
        let refused = io::Error::from_raw_os_error(111);
        let want =
            format!("error sending request: client error (Connect): tcp connect error: {refused}");
        let err = e(
            "error sending request",
            e(
                "client error (Connect)",
                e("tcp connect error", refused, false),
                false,
            ),
            false,
        );
        assert_eq!(chain(&err), want);
        assert!(
            chain(&err).contains("Connection refused"),
            "{}",
            chain(&err)
        );
    }

    #[test]
    fn a_cause_already_in_the_message_is_not_repeated() {
        // `#[error("download failed: {source}")]` over `#[error("dns error: {source}")]`.
        let err = e(
            "download failed",
            e("dns error", leaf("no such host"), true),
            true,
        );
        assert_eq!(err.to_string(), "download failed: dns error: no such host");
        assert_eq!(chain(&err), "download failed: dns error: no such host");

        // Mixed: the top writes its source, the middle one does not.
        let err = e(
            "fetching x",
            e("client error (Connect)", leaf("operation timed out"), false),
            true,
        );
        assert_eq!(
            chain(&err),
            "fetching x: client error (Connect): operation timed out"
        );

        // The same text twice in a row (a wrapper that only forwards Display).
        let err = e("a", e("b", leaf("b"), false), false);
        assert_eq!(chain(&err), "a: b");
    }

    #[test]
    fn empty_messages_and_plain_errors() {
        assert_eq!(chain(&leaf("alone")), "alone");
        let err = e("top", e("", leaf("root"), false), false);
        assert_eq!(chain(&err), "top: root");
        let io = io::Error::other(leaf("inner"));
        assert_eq!(Chain(&io).to_string(), "inner");
        assert_eq!(format!("{:?}", Chain(&leaf("x"))), "\"x\"");
    }
}
