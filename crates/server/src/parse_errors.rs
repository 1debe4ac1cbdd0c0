//! HTTP/1 requests hyper cannot parse (a garbage request line, too many or too large headers,
//! a target too long) are answered by hyper itself, before any router, with a bare head and
//! no body; it offers no hook for that answer. This writer under hyper recognises those heads
//! (an exact shape: status line, `connection: close`, `content-length: 0`, `date`; our own
//! error answers always carry a JSON body) and sends the same status with the
//! `{"error","message"}` body instead.

use serde_json::json;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// hyper's automatic answers: status line, error code, message.
const AUTOMATIC: [(&str, &str, &str); 3] = [
    (
        "HTTP/1.1 400 Bad Request",
        "bad_request",
        "the request line or a header could not be parsed",
    ),
    (
        "HTTP/1.1 414 URI Too Long",
        "uri_too_long",
        "the request target is too long",
    ),
    (
        "HTTP/1.1 431 Request Header Fields Too Large",
        "request_header_fields_too_large",
        "too many headers (at most 100) or headers too large",
    ),
];

/// The JSON answer that replaces `head` when it is one of hyper's automatic ones.
pub fn rewrite(head: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(head).ok()?;
    let (status_line, code, message) = AUTOMATIC
        .iter()
        .find(|(line, ..)| text.starts_with(&format!("{line}\r\n")))?;
    let fields = text
        .strip_prefix(status_line)?
        .strip_prefix("\r\n")?
        .strip_suffix("\r\n\r\n")?;
    let mut date = None;
    let mut empty = false;
    for f in fields.split("\r\n") {
        let (name, value) = f.split_once(": ")?;
        match name.to_ascii_lowercase().as_str() {
            "content-length" if value == "0" => empty = true,
            "date" => date = Some(value),
            "connection" if value == "close" => {}
            _ => return None,
        }
    }
    if !empty {
        return None;
    }
    let body = json!({"error": code, "message": message}).to_string();
    let date = date.map(|d| format!("date: {d}\r\n")).unwrap_or_default();
    Some(
        format!(
            "{status_line}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
             x-content-type-options: nosniff\r\ncache-control: no-store\r\nconnection: close\r\n\
             {date}\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

/// The connection's stream, with hyper's bare error answers given JSON bodies.
pub struct JsonParseErrors<I> {
    io: I,
    /// A rewritten answer not yet fully written, and how much of it was.
    pending: Vec<u8>,
    sent: usize,
}

impl<I> JsonParseErrors<I> {
    pub fn new(io: I) -> Self {
        JsonParseErrors {
            io,
            pending: Vec::new(),
            sent: 0,
        }
    }
}

impl<I: AsyncWrite + Unpin> JsonParseErrors<I> {
    fn drain(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.sent < self.pending.len() {
            let n = ready!(Pin::new(&mut self.io).poll_write(cx, &self.pending[self.sent..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            self.sent += n;
        }
        self.pending.clear();
        self.sent = 0;
        Poll::Ready(Ok(()))
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for JsonParseErrors<I> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for JsonParseErrors<I> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.drain(cx))?;
        // hyper writes an automatic answer's head in one piece (this writer is not vectored).
        if buf.starts_with(b"HTTP/1.1 4") {
            if let Some(answer) = rewrite(buf) {
                self.pending = answer;
                if let Poll::Ready(Err(e)) = self.drain(cx) {
                    return Poll::Ready(Err(e));
                }
                return Poll::Ready(Ok(buf.len()));
            }
        }
        Pin::new(&mut self.io).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.drain(cx))?;
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn only_hypers_bare_error_heads_are_rewritten() {
        let bare = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\n\
                     content-length: 0\r\ndate: Mon, 07 Dec 2026 04:00:00 GMT\r\n\r\n";
        let out = String::from_utf8(rewrite(bare).unwrap()).unwrap();
        let (head, body) = out.split_once("\r\n\r\n").unwrap();
        assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
        assert!(head.contains("content-type: application/json"));
        assert!(head.contains(&format!("content-length: {}", body.len())));
        assert!(head.contains("date: Mon, 07 Dec 2026 04:00:00 GMT"));
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["error"], "request_header_fields_too_large");
        // Our own answers (a body, other headers) and other statuses pass untouched.
        let own = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\n\
                    content-length: 2\r\n\r\n";
        assert!(rewrite(own).is_none());
        assert!(rewrite(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n").is_none());
        assert!(rewrite(b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n{}").is_none());
    }
}
