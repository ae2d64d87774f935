//! Reading trace text as a stream of lines in bounded memory.
//!
//! Accepts a text file (`trace-cmd report` output or a tracefs `trace`/`trace_pipe` copy),
//! `-` for standard input, or a binary `trace.dat`, which is converted on the fly by running
//! `trace-cmd report` and streaming its output.

use super::error::TraceError;
use std::fs::File;
use std::io::{self, Read};
use std::path::Path;
use std::process::{Command, Stdio};

/// Bytes read per call.
const CHUNK: usize = 1 << 20;
/// A line longer than this is cut (and will not parse); bounds memory on garbage input.
const MAX_LINE: usize = 1 << 20;
/// First bytes of a trace-cmd binary file.
const TRACE_DAT_MAGIC: &[u8] = b"\x17\x08\x44tracing";

/// Calls `f` with every line of `r` (without the newline). Returns the bytes read.
pub fn for_each_line<R: Read>(mut r: R, mut f: impl FnMut(&[u8])) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK + MAX_LINE];
    let mut filled = 0;
    let mut total = 0u64;
    loop {
        let n = match r.read(&mut buf[filled..]) {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        total += n as u64;
        filled += n;
        let mut start = 0;
        while let Some(off) = memchr::memchr(b'\n', &buf[start..filled]) {
            f(&buf[start..start + off]);
            start += off + 1;
        }
        if n == 0 {
            if start < filled {
                f(&buf[start..filled]);
            }
            return Ok(total);
        }
        if start == 0 && filled == buf.len() {
            // One line filled the whole buffer: hand over what we have, drop the rest of it.
            f(&buf[..filled]);
            filled = 0;
            skip_to_newline(&mut r, &mut buf, &mut total, &mut filled)?;
            continue;
        }
        buf.copy_within(start..filled, 0);
        filled -= start;
    }
}

/// Discards input up to and including the next newline, keeping what follows it.
fn skip_to_newline<R: Read>(
    r: &mut R,
    buf: &mut [u8],
    total: &mut u64,
    filled: &mut usize,
) -> io::Result<()> {
    loop {
        let n = r.read(&mut buf[..CHUNK])?;
        *total += n as u64;
        if n == 0 {
            return Ok(());
        }
        if let Some(at) = memchr::memchr(b'\n', &buf[..n]) {
            buf.copy_within(at + 1..n, 0);
            *filled = n - at - 1;
            return Ok(());
        }
    }
}

/// Streams the lines of the trace at `path` into `f`; returns the bytes of text read.
pub fn read_trace(path: &Path, f: impl FnMut(&[u8])) -> Result<u64, TraceError> {
    let io_err = |what, source| TraceError::Io {
        what,
        path: path.to_owned(),
        source,
    };
    if path == Path::new("-") {
        return for_each_line(io::stdin().lock(), f).map_err(|e| io_err("reading", e));
    }
    let mut file = File::open(path).map_err(|e| io_err("opening", e))?;
    let mut head = [0u8; 10];
    let n = read_up_to(&mut file, &mut head).map_err(|e| io_err("reading", e))?;
    if head[..n] == *TRACE_DAT_MAGIC {
        return read_trace_dat(path, f);
    }
    let file = io::Cursor::new(head[..n].to_vec()).chain(file);
    for_each_line(file, f).map_err(|e| io_err("reading", e))
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

/// Runs `trace-cmd report -t` (nanosecond timestamps) on a binary trace and streams its text.
fn read_trace_dat(path: &Path, f: impl FnMut(&[u8])) -> Result<u64, TraceError> {
    let fail = |reason: String| TraceError::TraceCmd {
        path: path.to_owned(),
        reason,
    };
    let mut child = Command::new("trace-cmd")
        .args(["report", "-t", "-i"])
        .arg(path)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| fail(format!("cannot run trace-cmd to read this binary trace.dat ({e}); install trace-cmd or pass `trace-cmd report` text")))?;
    let mut stderr = child.stderr.take().expect("stderr is piped");
    let drain = std::thread::spawn(move || {
        let mut s = Vec::new();
        let _ = stderr.by_ref().take(64 * 1024).read_to_end(&mut s);
        let _ = io::copy(&mut stderr, &mut io::sink());
        String::from_utf8_lossy(&s).into_owned()
    });
    let stdout = child.stdout.take().expect("stdout is piped");
    let read = for_each_line(stdout, f);
    let status = child.wait().map_err(|e| fail(e.to_string()))?;
    let err_text = drain.join().unwrap_or_default();
    let bytes = read.map_err(|e| fail(e.to_string()))?;
    if !status.success() {
        return Err(fail(format!("{status}: {}", err_text.trim())));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<Vec<u8>> {
        let mut v = Vec::new();
        for_each_line(input, |l| v.push(l.to_vec())).unwrap();
        v
    }

    #[test]
    fn splits_lines_including_a_last_partial_one() {
        assert_eq!(
            lines(b"a\nbb\n\nccc"),
            [b"a".to_vec(), b"bb".to_vec(), vec![], b"ccc".to_vec()]
        );
        assert!(lines(b"").is_empty());
    }

    #[test]
    fn overlong_line_is_cut_and_the_next_survives() {
        let mut input = vec![b'x'; CHUNK + MAX_LINE + 10];
        input.extend_from_slice(b"\nnext\n");
        let v = lines(&input);
        assert_eq!(v.len(), 2);
        assert_eq!(v[0].len(), CHUNK + MAX_LINE);
        assert_eq!(v[1], b"next");
    }
}
