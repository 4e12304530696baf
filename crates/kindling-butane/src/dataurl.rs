//! `data:` URLs exactly as Butane builds them.
//!
//! Butane (`base/util/url.go` `MakeDataURL`, spec fcos 1.1.0 and later) tries three encodings
//! and keeps the shortest:
//! 1. `data:,<escaped>` where every byte except `[A-Za-z0-9-_.!~*'()]` becomes `%XX` (upper-case
//!    hex, RFC 2396 "unreserved" set, as in `vincent-petithory/dataurl.Escape`);
//! 2. `data:;base64,<standard base64 with padding>`, chosen when strictly shorter than 1;
//! 3. `data:;base64,<base64 of gzip(contents)>` with `compression: gzip`, chosen when its length
//!    plus 4 (the length of `"gzip"`) is strictly shorter than the winner of 1/2. Only when the
//!    user did not set `compression` themselves.
//!
//! When the user did not set `compression`, Butane also writes `"compression": ""` explicitly.
//! fcos 1.0.0 (`base/v0_1`) only ever uses encoding 1 and never writes `compression`.
//!
//! Byte-exactness: encodings 1 and 2 are byte-identical to Butane. For 3, Butane uses Go's
//! `compress/gzip` at `BestCompression` (header `1f 8b 08 00 00000000 02 ff`); we write the same
//! header but the deflate stream comes from `flate2` (miniz_oxide) level 9, which is not
//! bit-identical to Go's compressor. The decompressed bytes are identical, and the choice between
//! gzip and the other encodings can differ only when the two sizes are within a few bytes.

use base64::Engine;
use std::io::Write;

fn is_unreserved(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'_' | b'.' | b'!' | b'~' | b'*' | b'\'' | b'(' | b')'
        )
}

/// Percent-escapes like `dataurl.Escape`.
pub fn escape(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len() * 3);
    for &b in data {
        if is_unreserved(b) {
            out.push(b as char);
        } else {
            out.push('%');
            out.push_str(&format!("{b:02X}"));
        }
    }
    out
}

/// The v0_1 (fcos 1.0.0) encoding: always `data:,<escaped>`.
pub fn plain_data_url(data: &[u8]) -> String {
    format!("data:,{}", escape(data))
}

/// Gzip with a Go-like header (mtime 0, XFL 2, OS 255).
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::GzBuilder::new()
        .operating_system(255)
        .write(Vec::new(), flate2::Compression::best());
    // Writing to a Vec cannot fail.
    let _ = enc.write_all(data);
    enc.finish().unwrap_or_default()
}

/// Result of [`make_data_url`].
pub struct DataUrl {
    /// The URL.
    pub url: String,
    /// `Some("")` or `Some("gzip")` when Butane would set `compression`; `None` when the user
    /// had already set it.
    pub compression: Option<&'static str>,
}

/// Butane's `MakeDataURL` (fcos >= 1.1.0).
pub fn make_data_url(
    data: &[u8],
    user_compression: Option<&str>,
    allow_compression: bool,
) -> DataUrl {
    let user_set = user_compression.is_some_and(|c| !c.is_empty());
    let mut compression = if user_set { None } else { Some("") };
    let mut opaque = format!(",{}", escape(data));
    let b64 = format!(
        ";base64,{}",
        base64::engine::general_purpose::STANDARD.encode(data)
    );
    if b64.len() < opaque.len() {
        opaque = b64;
    }
    if !user_set && allow_compression {
        let gz = format!(
            ";base64,{}",
            base64::engine::general_purpose::STANDARD.encode(gzip(data))
        );
        if gz.len() + 4 < opaque.len() {
            opaque = gz;
            compression = Some("gzip");
        }
    }
    DataUrl {
        url: format!("data:{opaque}"),
        compression,
    }
}

fn is_token(c: char) -> bool {
    c.is_ascii() && !c.is_ascii_control() && c != ' ' && !"()<>@,;:\\\"/[]?=".contains(c)
}

/// Checks the `data:` header the way Ignition's parser (`vincent-petithory/dataurl`) does,
/// with its error messages.
fn check_header(rest: &str) -> Result<(), String> {
    let mut it = rest.chars().peekable();
    let e = |m: &str| Err(m.to_string());
    // media type
    match it.peek().copied() {
        None => return e("missing comma before data"),
        Some(';') | Some(',') => {}
        Some(c) if is_token(c) => {
            let mut ty = String::new();
            loop {
                match it.next() {
                    None => return e("missing media type slash"),
                    Some('/') => break,
                    Some(c) if is_token(c) => ty.push(c),
                    Some(_) => return e("invalid character for media type"),
                }
            }
            let t = ty.to_ascii_lowercase();
            let known = matches!(
                t.as_str(),
                "text" | "image" | "audio" | "video" | "application" | "message" | "multipart"
            ) || t.starts_with("x-");
            if !known {
                return e("invalid media type");
            }
            loop {
                match it.peek().copied() {
                    Some(';') | Some(',') => break,
                    None => return e("incomplete media type"),
                    Some(c) if is_token(c) => {
                        it.next();
                    }
                    Some(_) => return e("invalid character for media subtype"),
                }
            }
        }
        Some(_) => return e("invalid character after data prefix"),
    }
    // parameters
    loop {
        match it.next() {
            Some(',') => return Ok(()),
            None => return e("missing comma before data"),
            Some(';') => {
                let mut attr = String::new();
                loop {
                    match it.next() {
                        None => return e("unterminated parameter sequence"),
                        Some('=') if attr.is_empty() => {
                            return e("unterminated parameter sequence");
                        }
                        Some(',') if attr.is_empty() => {
                            return e("unterminated parameter sequence");
                        }
                        Some(',') => {
                            return if attr == "base64" {
                                Ok(())
                            } else {
                                Err(format!("expected base64, got {attr}"))
                            };
                        }
                        Some('=') => break,
                        Some(c) if is_token(c) => attr.push(c),
                        Some(_) => return e("invalid character for parameter attribute"),
                    }
                }
                if it.peek().is_none() {
                    return e("missing comma before data");
                }
                while let Some(c) = it.peek().copied() {
                    if c == ';' || c == ',' {
                        break;
                    }
                    it.next();
                }
            }
            Some(_) => return e("expected semicolon or comma"),
        }
    }
}

/// Decodes a `data:` URL (RFC 2397) into bytes: used by the validator and by tests.
pub fn decode(url: &str) -> Result<Vec<u8>, String> {
    let rest = url
        .strip_prefix("data:")
        .ok_or_else(|| "missing data prefix".to_string())?;
    check_header(rest)?;
    let (meta, payload) = rest
        .split_once(',')
        .ok_or_else(|| "missing comma before data".to_string())?;
    if meta.ends_with(";base64") {
        let cleaned: String = payload.chars().filter(|c| !c.is_whitespace()).collect();
        let cleaned = percent_decode(&cleaned)?;
        base64::engine::general_purpose::STANDARD
            .decode(cleaned)
            .map_err(|e| format!("invalid base64 in data URL: {e}"))
    } else {
        percent_decode(payload)
    }
}

fn percent_decode(s: &str) -> Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "invalid percent escape in data URL".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_matches_dataurl_package() {
        assert_eq!(escape(b"hello world\n"), "hello%20world%0A");
        assert_eq!(escape(b"a/b:c=d"), "a%2Fb%3Ac%3Dd");
        assert_eq!(escape("é".as_bytes()), "%C3%A9");
        assert_eq!(escape(b"-_.!~*'()"), "-_.!~*'()");
    }

    #[test]
    fn header_errors_like_ignition() {
        assert_eq!(decode("data:x").unwrap_err(), "missing media type slash");
        assert_eq!(decode("data:foo/bar,x").unwrap_err(), "invalid media type");
        assert_eq!(
            decode("data:text/plain").unwrap_err(),
            "incomplete media type"
        );
        assert_eq!(decode("data:;charset=utf-8;base64,aGk=").unwrap(), b"hi");
        assert_eq!(decode("data:text/plain;charset=utf-8,h%69").unwrap(), b"hi");
        assert_eq!(
            decode("data:;bas,x").unwrap_err(),
            "expected base64, got bas"
        );
    }

    #[test]
    fn chooses_shortest() {
        let d = make_data_url(b"hello", None, true);
        assert_eq!(d.url, "data:,hello");
        assert_eq!(d.compression, Some(""));
        // Binary: base64 wins.
        let d = make_data_url(&[0u8, 1, 2, 3, 255, 254], None, true);
        assert_eq!(d.url, "data:;base64,AAECA//+");
        // Very compressible: gzip wins.
        let big = "a".repeat(1000);
        let d = make_data_url(big.as_bytes(), None, true);
        assert_eq!(d.compression, Some("gzip"));
        let raw = decode(&d.url).unwrap();
        let mut s = String::new();
        use std::io::Read;
        flate2::read::GzDecoder::new(&raw[..])
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, big);
        // User compression: never recompress, compression field untouched.
        let d = make_data_url(big.as_bytes(), Some("gzip"), true);
        assert_eq!(d.compression, None);
        assert!(d.url.starts_with("data:,aaa"));
    }
}
