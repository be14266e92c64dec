//! Python-style text: what `repr()` and `str.format` print, so that the
//! Rust transcripts read exactly like the Python ones.

use std::fmt::Write as _;
use std::net::SocketAddr;

/// Python's `repr(bytes)`: `b'...'`, in single quotes unless the bytes hold a
/// `'` and no `"`, with `\\`, `\t`, `\n`, `\r`, the quote and every byte
/// outside printable ASCII escaped (`\xhh`).
///
/// ```
/// use ioselect_demos::py::bytes_repr;
/// assert_eq!(bytes_repr(b"This is the message. "), "b'This is the message. '");
/// assert_eq!(bytes_repr(b"it's\n\x00\xff"), r#"b"it's\n\x00\xff""#);
/// assert_eq!(bytes_repr(b"'\""), r#"b'\'"'"#);
/// ```
pub fn bytes_repr(data: &[u8]) -> String {
    let quote = if data.contains(&b'\'') && !data.contains(&b'"') {
        b'"'
    } else {
        b'\''
    };
    let mut s = String::with_capacity(data.len() + 3);
    s.push('b');
    s.push(quote as char);
    for &c in data {
        match c {
            b'\\' => s.push_str("\\\\"),
            b'\t' => s.push_str("\\t"),
            b'\n' => s.push_str("\\n"),
            b'\r' => s.push_str("\\r"),
            c if c == quote => {
                s.push('\\');
                s.push(c as char);
            }
            0x20..=0x7e => s.push(c as char),
            c => {
                let _ = write!(s, "\\x{c:02x}");
            }
        }
    }
    s.push(quote as char);
    s
}

/// A socket address the way Python prints the tuple `getpeername()` and
/// `accept()` return: `('127.0.0.1', 59850)`, or for IPv6
/// `('::1', 10000, 0, 0)` (host, port, flowinfo, scope id).
///
/// ```
/// use ioselect_demos::py::addr_repr;
/// assert_eq!(addr_repr("127.0.0.1:59850".parse().unwrap()), "('127.0.0.1', 59850)");
/// assert_eq!(addr_repr("[::1]:10000".parse().unwrap()), "('::1', 10000, 0, 0)");
/// ```
pub fn addr_repr(addr: SocketAddr) -> String {
    match addr {
        SocketAddr::V4(a) => format!("('{}', {})", a.ip(), a.port()),
        SocketAddr::V6(a) => format!(
            "('{}', {}, {}, {})",
            a.ip(),
            a.port(),
            a.flowinfo(),
            a.scope_id()
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        // Each expected value is what CPython 3 prints for the same bytes.
        assert_eq!(bytes_repr(b""), "b''");
        assert_eq!(bytes_repr(b"\"'"), r#"b'"\''"#);
        assert_eq!(bytes_repr(b"\""), r#"b'"'"#);
        assert_eq!(bytes_repr(b"a\\b\t\x7f\x1f~"), r"b'a\\b\t\x7f\x1f~'");
        assert_eq!(bytes_repr(&[0x80, 0x0a, 0x0d]), r"b'\x80\n\r'");
    }
}
