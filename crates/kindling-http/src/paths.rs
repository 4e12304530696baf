//! URL path handling with Go's `net/http` semantics: percent-decoding of the
//! path and `ServeMux`'s `cleanPath`.

/// Decodes `%XX` escapes in a URL path (no `+` handling, as in a path).
/// `None` for a malformed escape (Go answers 400 Bad Request).
pub fn decode_path(raw: &str) -> Option<String> {
    let b = raw.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hi = b.get(i + 1).and_then(|c| (*c as char).to_digit(16))?;
            let lo = b.get(i + 2).and_then(|c| (*c as char).to_digit(16))?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Some(
        String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
    )
}

/// Go's `path.Clean`.
pub fn clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|l| *l != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// `net/http`'s `cleanPath`: rooted, cleaned, trailing slash kept.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    let rooted = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    let mut np = clean(&rooted);
    if rooted.len() > 1 && rooted.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

/// Whether [`clean_path`] leaves `p` as it is: rooted, and no empty, `.` or `..` segment
/// (but a trailing slash, which `clean_path` keeps).
pub fn is_clean_path(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    if rest.is_empty() {
        return true;
    }
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    rest.split('/')
        .all(|s| !s.is_empty() && s != "." && s != "..")
}

const PATH_ESCAPE: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'<')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// Escapes a decoded path for a `Location` header or an `href`.
pub fn escape_path(p: &str) -> String {
    percent_encoding::utf8_percent_encode(p, PATH_ESCAPE).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_clean_path() {
        for (i, o) in [
            ("", "/"),
            ("/", "/"),
            ("//ipxe", "/ipxe"),
            ("/ipxe/", "/ipxe/"),
            ("/a/../b", "/b"),
            ("/../../etc/passwd", "/etc/passwd"),
            ("/assets/./x", "/assets/x"),
            ("/assets/x/..", "/assets"),
            ("/assets/x/../", "/assets/"),
            ("ipxe", "/ipxe"),
        ] {
            assert_eq!(clean_path(i), o, "{i:?}");
        }
    }

    #[test]
    fn is_clean_path_agrees_with_clean_path() {
        // Every path of up to 7 characters over '/', '.', 'a' and '%'.
        let alphabet = ['/', '.', 'a', '%'];
        let mut paths = vec![String::new()];
        let mut checked = 0;
        for _ in 0..7 {
            let mut next = Vec::new();
            for p in &paths {
                for c in alphabet {
                    let q = format!("{p}{c}");
                    assert_eq!(is_clean_path(&q), clean_path(&q) == q, "{q:?}");
                    checked += 1;
                    next.push(q);
                }
            }
            paths = next;
        }
        assert!(is_clean_path("/"));
        assert!(!is_clean_path(""));
        assert_eq!(checked, 21_844);
    }

    #[test]
    fn decode() {
        assert_eq!(decode_path("/%2e%2e/x").as_deref(), Some("/../x"));
        assert_eq!(decode_path("/a%2Fb").as_deref(), Some("/a/b"));
        assert_eq!(decode_path("/%zz"), None);
        assert_eq!(decode_path("/%4"), None);
    }
}
