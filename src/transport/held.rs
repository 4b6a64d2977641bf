//! Scripts run by a held command (an apply's host lock, a root shell; see
//! `engine::remote::lock`) on the channel it holds: the framing of a
//! request, and where its answer ends in the bytes the host sends back.
//!
//! A request is the line `@run END SIZE INPUT`, SIZE bytes of script whose
//! last line is `#END`, then INPUT bytes for the script's stdin (which then
//! ends, as a command's would). The shell answers with the script's output,
//! then `END STATUS` and a newline on stdout, and `END` and a newline on
//! stderr. END is new for every request (random): nothing a script prints
//! ends its answer early, and nothing left of an earlier answer ends this
//! one. A script cut short on the way never runs: it does not end in its
//! `#END`. Its input is not framed so: an input cut short (the connection
//! gone mid-request) reaches the script shorter, as a command's stdin
//! would, and the script must tell (staging checks every size it reads).

/// The first word of a request.
pub const RUN: &str = "@run";

/// A new END for a request.
pub fn fresh_end() -> String {
    let mut bytes = [0u8; 12];
    crate::random::fill(&mut bytes);
    format!("@end-{}", crate::core::hex(&bytes))
}

/// The bytes of a request: its line, the script with its `#END`, the input.
pub fn request(end: &str, script: &str, input: &[u8]) -> Vec<u8> {
    let tail = format!("\n#{end}");
    let line = format!(
        "{RUN} {end} {} {}\n",
        script.len() + tail.len(),
        input.len()
    );
    let mut bytes = Vec::with_capacity(line.len() + script.len() + tail.len() + input.len());
    bytes.extend_from_slice(line.as_bytes());
    bytes.extend_from_slice(script.as_bytes());
    bytes.extend_from_slice(tail.as_bytes());
    bytes.extend_from_slice(input);
    bytes
}

/// Where the script's output ends on stdout and the status it ended with,
/// once the whole `END STATUS` line is in; `Ok(None)` before. `from`: how
/// much of `stdout` was looked at before (only what may hold END anew is
/// looked at again). An END followed by anything but a status is an error:
/// the host did not answer as the lock's shell does.
pub fn stdout_end(stdout: &[u8], end: &str, from: usize) -> Result<Option<(usize, u32)>, String> {
    // An END cut at the last look, or whose line was not whole then, is
    // looked at again.
    let start = from.saturating_sub(end.len() + STATUS_LINE_MAX);
    let Some(at) = find(stdout, end.as_bytes(), start) else {
        return Ok(None);
    };
    let rest = &stdout[at + end.len()..];
    let Some(line_end) = rest.iter().take(STATUS_LINE_MAX).position(|b| *b == b'\n') else {
        if rest.len() < STATUS_LINE_MAX {
            return Ok(None);
        }
        return Err(not_a_status(rest));
    };
    let status = rest[..line_end]
        .strip_prefix(b" ")
        .filter(|digits| !digits.is_empty() && digits.len() <= 3)
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(|digits| digits.parse::<u32>().ok())
        .filter(|status| *status <= 255)
        .ok_or_else(|| not_a_status(&rest[..line_end]))?;
    Ok(Some((at, status)))
}

/// The longest line after END on stdout: ` 255` and its newline.
const STATUS_LINE_MAX: usize = 5;

fn not_a_status(rest: &[u8]) -> String {
    format!(
        "the held command's answer ended in {:?}, not in an exit status",
        String::from_utf8_lossy(&rest[..rest.len().min(STATUS_LINE_MAX)])
    )
}

/// Where the script's output ends on stderr, once the whole `END` line is
/// in (see [`stdout_end`] for `from`).
pub fn stderr_end(stderr: &[u8], end: &str, from: usize) -> Option<usize> {
    // An END cut at the last look, or without its newline then, is looked
    // at again.
    let mut start = from.saturating_sub(end.len());
    loop {
        let at = find(stderr, end.as_bytes(), start)?;
        match stderr.get(at + end.len()) {
            Some(b'\n') => return Some(at),
            // Not whole yet: looked at again with the next bytes.
            None => return None,
            Some(_) => start = at + 1,
        }
    }
}

/// The first `needle` in `haystack` at `start` or later.
fn find(haystack: &[u8], needle: &[u8], start: usize) -> Option<usize> {
    let start = start.min(haystack.len());
    haystack[start..]
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|at| start + at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_carries_its_sizes_its_script_with_its_end_and_its_input() {
        let end = fresh_end();
        assert_eq!(end.len(), "@end-".len() + 24);
        assert_ne!(end, fresh_end());
        let bytes = request(&end, "echo hi", b"data");
        let text = String::from_utf8(bytes).unwrap();
        let script = format!("echo hi\n#{end}");
        assert_eq!(text, format!("@run {end} {} 4\n{script}data", script.len()));
    }

    #[test]
    fn an_answer_ends_at_its_own_end_only() {
        let end = "@end-ab";
        type Found = Result<Option<(usize, u32)>, ()>;
        let cases: &[(&[u8], Found)] = &[
            (b"", Ok(None)),
            (b"out\n@end-ab", Ok(None)),
            (b"out\n@end-ab 0", Ok(None)),
            (b"out\n@end-ab 0\n", Ok(Some((4, 0)))),
            // Output that ends without a newline.
            (b"out@end-ab 127\n", Ok(Some((3, 127)))),
            (b"@end-ab 1\n", Ok(Some((0, 1)))),
            // Another request's END is output like any.
            (b"@end-zz 0\n@end-ab 2\n", Ok(Some((10, 2)))),
            (b"@end-ab x\n", Err(())),
            (b"@end-ab 256\n", Err(())),
            (b"@end-ab \n", Err(())),
            (b"@end-ab0\n", Err(())),
            (b"@end-ab 0000\n", Err(())),
            (b"@end-ab 1", Ok(None)),
        ];
        for (stdout, want) in cases {
            let got = stdout_end(stdout, end, 0).map_err(|_| ());
            assert_eq!(&got, want, "{:?}", String::from_utf8_lossy(stdout));
        }
        assert_eq!(stderr_end(b"warn\n@end-ab\n", end, 0), Some(5));
        assert_eq!(stderr_end(b"warn\n@end-ab", end, 0), None);
        assert_eq!(stderr_end(b"@end-abc\n@end-ab\n", end, 0), Some(9));
    }

    #[test]
    fn an_end_cut_between_two_chunks_is_found_when_its_rest_comes() {
        let end = "@end-ab";
        for cut in 0..b"output @end-ab 3\n".len() {
            let whole = b"output @end-ab 3\n";
            let mut stdout = whole[..cut].to_vec();
            assert_eq!(stdout_end(&stdout, end, 0), Ok(None), "{cut}");
            stdout.extend_from_slice(&whole[cut..]);
            assert_eq!(stdout_end(&stdout, end, cut), Ok(Some((7, 3))), "{cut}");
        }
        let mut stderr = b"@end-a".to_vec();
        let seen = stderr.len();
        stderr.extend_from_slice(b"b\n");
        assert_eq!(stderr_end(&stderr, end, seen), Some(0));
    }
}
