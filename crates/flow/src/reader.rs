//! Opening inputs (files, stdin, gzip by magic number) and splitting them into lines with a
//! bounded buffer, so memory does not grow with the input.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use crate::Error;

/// Lines longer than this are reported corrupt and skipped without being buffered whole.
pub const MAX_LINE: usize = 8 << 20;

const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// Opens `path` (`-` for stdin) for line reading, decompressing gzip when the input starts
/// with the gzip magic number (whatever the file is called).
pub fn open(path: &str) -> Result<Box<dyn BufRead>, Error> {
    let io_err = |source| Error::Io {
        path: PathBuf::from(path),
        source,
    };
    let raw: Box<dyn Read> = if path == "-" {
        Box::new(io::stdin())
    } else {
        Box::new(File::open(Path::new(path)).map_err(io_err)?)
    };
    let mut buffered = BufReader::with_capacity(256 << 10, raw);
    let head = buffered.fill_buf().map_err(io_err)?;
    if head.starts_with(&GZIP_MAGIC) {
        let gz = flate2::bufread::MultiGzDecoder::new(buffered);
        Ok(Box::new(BufReader::with_capacity(256 << 10, gz)))
    } else {
        Ok(Box::new(buffered))
    }
}

/// Splits a reader into lines, reusing one buffer.
pub struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
    line: u64,
    bytes: u64,
}

/// One line: its 1-based number and content (without the newline), or a note that it was
/// longer than [`MAX_LINE`].
pub enum Line<'a> {
    Text(u64, &'a [u8]),
    TooLong(u64),
}

impl<R: BufRead> Lines<R> {
    pub fn new(inner: R) -> Self {
        Lines {
            inner,
            buf: Vec::with_capacity(8 << 10),
            line: 0,
            bytes: 0,
        }
    }

    /// Bytes consumed so far (after decompression).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Calls `f` with the next line and returns its result, `None` at the end of input.
    /// Lines that lie whole in the reader's buffer are not copied.
    pub fn next_with<T>(&mut self, f: impl FnOnce(Line<'_>) -> T) -> io::Result<Option<T>> {
        let avail = loop {
            match self.inner.fill_buf() {
                Ok(a) => break a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if let Some(i) = memchr::memchr(b'\n', avail) {
            if i <= MAX_LINE {
                self.line += 1;
                let mut end = i;
                while end > 0 && avail[end - 1] == b'\r' {
                    end -= 1;
                }
                let out = f(Line::Text(self.line, &avail[..end]));
                self.inner.consume(i + 1);
                self.bytes += i as u64 + 1;
                return Ok(Some(out));
            }
        }
        Ok(self.next_line()?.map(f))
    }

    /// The next line, `None` at the end of input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        self.buf.clear();
        let mut too_long = false;
        let mut seen_any = false;
        loop {
            let avail = match self.inner.fill_buf() {
                Ok(a) => a,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if avail.is_empty() {
                if !seen_any {
                    return Ok(None);
                }
                break;
            }
            seen_any = true;
            let (take, done) = match memchr::memchr(b'\n', avail) {
                Some(i) => (i + 1, true),
                None => (avail.len(), false),
            };
            if !too_long {
                if self.buf.len() + take > MAX_LINE {
                    too_long = true;
                    self.buf = Vec::with_capacity(8 << 10);
                } else {
                    self.buf.extend_from_slice(&avail[..take]);
                }
            }
            self.inner.consume(take);
            self.bytes += take as u64;
            if done {
                break;
            }
        }
        self.line += 1;
        if too_long {
            return Ok(Some(Line::TooLong(self.line)));
        }
        while matches!(self.buf.last(), Some(b'\n' | b'\r')) {
            self.buf.pop();
        }
        Ok(Some(Line::Text(self.line, &self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn show(l: Line<'_>) -> String {
        match l {
            Line::Text(n, t) => format!("{n}:{}", String::from_utf8_lossy(t)),
            Line::TooLong(n) => format!("{n}:too long"),
        }
    }

    /// Lines through both the copying and the zero-copy path (a small buffer forces lines
    /// across buffer boundaries).
    fn collect(input: &[u8]) -> Vec<String> {
        let mut lines = Lines::new(input);
        let mut out = Vec::new();
        while let Some(l) = lines.next_line().unwrap() {
            out.push(show(l));
        }
        let mut lines = Lines::new(std::io::BufReader::with_capacity(3, input));
        let mut out2 = Vec::new();
        while let Some(s) = lines.next_with(show).unwrap() {
            out2.push(s);
        }
        assert_eq!(out, out2);
        out
    }

    #[test]
    fn splits_lines_with_and_without_final_newline() {
        assert_eq!(collect(b"a\r\nb\n\nc"), ["1:a", "2:b", "3:", "4:c"]);
        assert_eq!(collect(b"a\n"), ["1:a"]);
        assert!(collect(b"").is_empty());
    }

    #[test]
    fn overlong_lines_are_reported_not_buffered() {
        let mut input = vec![b'x'; MAX_LINE + 10];
        input.extend_from_slice(b"\nok\n");
        assert_eq!(collect(&input), ["1:too long", "2:ok"]);
    }
}
