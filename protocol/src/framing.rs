//! NDJSON framing without I/O: feed bytes in, get whole lines out. A line longer
//! than the limit is reported once and skipped up to its newline, so the
//! connection stays usable.

/// What the decoder found.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One line, without its newline (a trailing `\r` is dropped too).
    Line(Vec<u8>),
    /// A line passed the limit; its bytes up to the next newline are dropped.
    TooLarge,
}

/// Splits a byte stream into lines of at most `max` bytes.
#[derive(Debug)]
pub struct LineDecoder {
    buf: Vec<u8>,
    max: usize,
    discarding: bool,
}

impl LineDecoder {
    pub fn new(max: usize) -> Self {
        LineDecoder { buf: Vec::new(), max, discarding: false }
    }

    /// Takes bytes from `chunk`; returns how many it used and the frame completed,
    /// if any. Call again with the rest until it has used the whole chunk.
    pub fn push(&mut self, chunk: &[u8]) -> (usize, Option<Frame>) {
        match chunk.iter().position(|&b| b == b'\n') {
            Some(i) => {
                if self.discarding {
                    self.discarding = false;
                    return (i + 1, None);
                }
                if self.buf.len() + i > self.max {
                    self.buf.clear();
                    return (i + 1, Some(Frame::TooLarge));
                }
                self.buf.extend_from_slice(&chunk[..i]);
                if self.buf.last() == Some(&b'\r') {
                    self.buf.pop();
                }
                (i + 1, Some(Frame::Line(std::mem::take(&mut self.buf))))
            }
            None => {
                if self.discarding {
                    return (chunk.len(), None);
                }
                if self.buf.len() + chunk.len() > self.max {
                    self.buf = Vec::new();
                    self.discarding = true;
                    return (chunk.len(), Some(Frame::TooLarge));
                }
                self.buf.extend_from_slice(chunk);
                (chunk.len(), None)
            }
        }
    }

    /// Bytes of an unfinished line held so far.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }

    /// Whether a line has begun and not ended (including one being skipped).
    pub fn in_line(&self) -> bool {
        self.discarding || !self.buf.is_empty()
    }

    /// At end of stream: the last line if it had no newline.
    pub fn finish(&mut self) -> Option<Frame> {
        if self.discarding || self.buf.is_empty() {
            return None;
        }
        Some(Frame::Line(std::mem::take(&mut self.buf)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(dec: &mut LineDecoder, mut data: &[u8]) -> Vec<Frame> {
        let mut out = Vec::new();
        while !data.is_empty() {
            let (used, f) = dec.push(data);
            out.extend(f);
            data = &data[used..];
        }
        out
    }

    #[test]
    fn splits_lines_across_chunks() {
        let mut d = LineDecoder::new(100);
        assert_eq!(frames(&mut d, b"ab"), vec![]);
        assert_eq!(frames(&mut d, b"c\r\nde\nf"), vec![Frame::Line(b"abc".to_vec()), Frame::Line(b"de".to_vec())]);
        assert_eq!(d.finish(), Some(Frame::Line(b"f".to_vec())));
    }

    #[test]
    fn oversized_line_is_reported_once_and_skipped() {
        let mut d = LineDecoder::new(4);
        assert_eq!(frames(&mut d, b"123"), vec![]);
        assert_eq!(frames(&mut d, b"456"), vec![Frame::TooLarge]);
        assert_eq!(frames(&mut d, b"789"), vec![]);
        assert_eq!(frames(&mut d, b"0\nok\n"), vec![Frame::Line(b"ok".to_vec())]);
        assert_eq!(frames(&mut d, b"12345\nyes\n"), vec![Frame::TooLarge, Frame::Line(b"yes".to_vec())]);
        assert_eq!(frames(&mut d, b"1234\n"), vec![Frame::Line(b"1234".to_vec())]);
    }
}
