//! Random bytes from the kernel, for serial numbers, uuids and temp names.

/// Fills `buf` from getrandom(2). The kernel's generator does not fail once
/// booted; if it did, nothing random could be trusted, hence the panic.
pub fn fill(buf: &mut [u8]) {
    let mut filled = 0;
    while filled < buf.len() {
        match rustix::rand::getrandom(&mut buf[filled..], rustix::rand::GetRandomFlags::empty()) {
            Ok(n) => filled += n,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("getrandom failed: {e}"),
        }
    }
}
