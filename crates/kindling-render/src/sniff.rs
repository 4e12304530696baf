//! Content-type detection as Go's `http.DetectContentType` does it (the
//! WHATWG MIME sniffing algorithm, for the signatures that matter to a boot
//! server). matchbox never sets a content type on most endpoints, so Go's
//! net/http sniffs the body; Kindling reproduces that header.

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";

fn is_ws(b: u8) -> bool {
    matches!(b, b'\t' | b'\n' | 0x0c | b'\r' | b' ')
}

fn is_tt(b: u8) -> bool {
    b == b' ' || b == b'>'
}

fn html_sig(data: &[u8], sig: &[u8]) -> bool {
    if data.len() < sig.len() + 1 {
        return false;
    }
    for (i, &s) in sig.iter().enumerate() {
        let mut d = data[i];
        if s.is_ascii_uppercase() {
            d &= 0xDF;
        }
        if d != s {
            return false;
        }
    }
    is_tt(data[sig.len()])
}

/// Returns the MIME type Go's `http.DetectContentType` would give.
pub fn detect_content_type(data: &[u8]) -> &'static str {
    let data = &data[..data.len().min(512)];
    let first_non_ws = data.iter().position(|b| !is_ws(*b)).unwrap_or(data.len());
    let trimmed = &data[first_non_ws..];

    const HTML: [&[u8]; 17] = [
        b"<!DOCTYPE HTML",
        b"<HTML",
        b"<HEAD",
        b"<SCRIPT",
        b"<IFRAME",
        b"<H1",
        b"<DIV",
        b"<FONT",
        b"<TABLE",
        b"<A",
        b"<STYLE",
        b"<TITLE",
        b"<B",
        b"<BODY",
        b"<BR",
        b"<P",
        b"<!--",
    ];
    if HTML.iter().any(|s| html_sig(trimmed, s)) {
        return "text/html; charset=utf-8";
    }
    if trimmed.starts_with(b"<?xml") {
        return "text/xml; charset=utf-8";
    }
    const EXACT: [(&[u8], &str); 16] = [
        (b"%PDF-", "application/pdf"),
        (b"%!PS-Adobe-", "application/postscript"),
        (b"\xFE\xFF", "text/plain; charset=utf-16be"),
        (b"\xFF\xFE", "text/plain; charset=utf-16le"),
        (b"\xEF\xBB\xBF", TEXT_PLAIN),
        (b"\x00\x00\x01\x00", "image/x-icon"),
        (b"\x00\x00\x02\x00", "image/x-icon"),
        (b"BM", "image/bmp"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
        (b"\x89PNG\x0D\x0A\x1A\x0A", "image/png"),
        (b"\xFF\xD8\xFF", "image/jpeg"),
        (b"\x1F\x8B\x08", "application/x-gzip"),
        (b"PK\x03\x04", "application/zip"),
        (b"Rar!\x1A\x07\x00", "application/x-rar-compressed"),
        (b"\x00asm", "application/wasm"),
    ];
    for (sig, ty) in EXACT {
        if data.starts_with(sig) {
            return ty;
        }
    }
    if data.len() >= 14 && &data[..4] == b"RIFF" && &data[8..14] == b"WEBPVP" {
        return "image/webp";
    }
    if data.starts_with(b"OggS\x00") {
        return "application/ogg";
    }
    if data.starts_with(b"ID3") {
        return "audio/mpeg";
    }
    let binary = data.iter().any(|&b| {
        b <= 0x08 || b == 0x0B || (0x0E..=0x1A).contains(&b) || (0x1C..=0x1F).contains(&b)
    });
    if binary {
        "application/octet-stream"
    } else {
        TEXT_PLAIN
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_bodies() {
        assert_eq!(detect_content_type(b"#!ipxe\nkernel x\n"), TEXT_PLAIN);
        assert_eq!(detect_content_type(b"{\"a\":1}"), TEXT_PLAIN);
        assert_eq!(detect_content_type(b""), TEXT_PLAIN);
        assert_eq!(
            detect_content_type(b"  <html>x"),
            "text/html; charset=utf-8"
        );
        assert_eq!(detect_content_type(b"<p>x"), "text/html; charset=utf-8");
        assert_eq!(detect_content_type(b"<pre>"), TEXT_PLAIN);
        assert_eq!(
            detect_content_type(b"\x7fELF\x02\x01"),
            "application/octet-stream"
        );
        assert_eq!(
            detect_content_type(b"\x1f\x8b\x08\x00"),
            "application/x-gzip"
        );
    }
}
