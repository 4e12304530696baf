use super::*;

fn parse(s: &str) -> Result<Option<(Head, usize)>, HeadError> {
    parse_head(s.as_bytes())
}

#[test]
fn heads_parse_with_their_framing_and_keep_alive() {
    let first = "GET /ipxe?mac=52:54:00:00:00:01 HTTP/1.1\r\nHost: x\r\n\r\n";
    let (h, n) = parse(&format!("{first}GET /")).unwrap().unwrap();
    assert_eq!(
        n,
        first.len(),
        "a pipelined next request is left in the buffer"
    );
    assert_eq!(h.method, Method::GET);
    assert_eq!(h.uri.path(), "/ipxe");
    assert_eq!(h.uri.query(), Some("mac=52:54:00:00:00:01"));
    assert_eq!((h.body, h.keep_alive), (Framing::None, true));
    assert_eq!(h.headers["host"], "x");

    let h = |s: &str| parse(s).unwrap().unwrap().0;
    assert!(!h("GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n").keep_alive);
    assert!(!h("GET / HTTP/1.0\r\n\r\n").keep_alive);
    assert!(h("HEAD / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n").keep_alive);
    assert_eq!(
        h("POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n").body,
        Framing::Length(5)
    );
    assert_eq!(
        h("POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n").body,
        Framing::None
    );
    assert_eq!(
        h("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n").body,
        Framing::Unread
    );
    assert_eq!(
        h("PUT / HTTP/1.1\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n").body,
        Framing::Unread
    );
    assert_eq!(
        h("POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n").body,
        Framing::Length(5)
    );
    // Absolute-form targets keep their path and query.
    let a = h("GET http://10.0.0.1:8080/boot.ipxe?x=1 HTTP/1.1\r\n\r\n");
    assert_eq!((a.uri.path(), a.uri.query()), ("/boot.ipxe", Some("x=1")));
}

#[test]
fn partial_heads_wait_and_bad_ones_are_refused() {
    assert!(
        parse("GET /ipxe HTTP/1.1\r\nHost: x\r\n")
            .unwrap()
            .is_none()
    );
    assert!(parse("GE").unwrap().is_none());
    let bad = |s: &str| parse(s).err();
    assert_eq!(
        bad("GET / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n"),
        Some(HeadError::Malformed("contradictory Content-Length"))
    );
    assert_eq!(
        bad("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n"),
        Some(HeadError::Malformed("bad Content-Length"))
    );
    assert_eq!(
        bad("GET / HTTP/2.0\r\n\r\n"),
        Some(HeadError::Malformed("not HTTP/1.x"))
    );
    assert!(matches!(
        bad("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"),
        Some(HeadError::Malformed(_))
    ));
    assert!(matches!(
        bad("\x16\x03\x01\x02\x00"),
        Some(HeadError::Malformed(_))
    ));
    // Too many fields, or too many bytes without an end.
    let many: String = (0..=MAX_HEADERS).map(|i| format!("X-{i}: y\r\n")).collect();
    assert_eq!(
        bad(&format!("GET / HTTP/1.1\r\n{many}\r\n")),
        Some(HeadError::TooLarge)
    );
    let long = format!("GET / HTTP/1.1\r\nX: {}", "a".repeat(MAX_HEAD_BYTES));
    assert_eq!(bad(&long), Some(HeadError::TooLarge));
}

#[test]
fn answer_heads_say_date_length_and_connection() {
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, "text/plain".parse().unwrap());
    let mut out = Vec::new();
    let date = "Sat, 05 Dec 2026 00:00:00 GMT";
    answer_head(
        &mut out,
        StatusCode::OK,
        &h,
        Some(3),
        date,
        Version::HTTP_11,
        true,
    );
    assert_eq!(
        String::from_utf8(out.clone()).unwrap(),
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\
         date: Sat, 05 Dec 2026 00:00:00 GMT\r\n\r\n"
    );
    out.clear();
    answer_head(
        &mut out,
        StatusCode::NOT_FOUND,
        &h,
        None,
        date,
        Version::HTTP_11,
        false,
    );
    assert!(String::from_utf8_lossy(&out).ends_with("connection: close\r\n\r\n"));
    assert!(!String::from_utf8_lossy(&out).contains("content-length"));
    out.clear();
    answer_head(
        &mut out,
        StatusCode::OK,
        &h,
        Some(0),
        date,
        Version::HTTP_10,
        true,
    );
    assert!(String::from_utf8_lossy(&out).ends_with("connection: keep-alive\r\n\r\n"));
    assert!(String::from_utf8_lossy(&out).contains("\r\ncontent-length: 0\r\n"));
    assert_eq!(with_http_date(str::len), 29);
}
