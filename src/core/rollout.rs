//! Rolling batches (`--serial N` or `P%`) and the stop rule
//! (`--max-fail-percent P`), as Ansible users know them: hosts go in
//! batches, each finished before the next starts; when the share of failed
//! hosts in a batch exceeds P, the rollout stops and the hosts not reached
//! are left untouched. Pure.

/// How big each batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Serial {
    Hosts(usize),
    Percent(u8),
}

impl std::str::FromStr for Serial {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || format!("{text:?}: expected a number of hosts (5) or a percentage (25%)");
        match text.strip_suffix('%') {
            Some(percent) => match percent.trim().parse::<u8>() {
                Ok(p) if (1..=100).contains(&p) => Ok(Serial::Percent(p)),
                _ => Err(bad()),
            },
            None => match text.trim().parse::<usize>() {
                Ok(n) if n >= 1 => Ok(Serial::Hosts(n)),
                _ => Err(bad()),
            },
        }
    }
}

/// Batch sizes for `total` hosts (a percentage rounds down, but a batch
/// has one host at least). Without `--serial`, one batch of all hosts.
pub fn batches(total: usize, serial: Option<Serial>) -> Vec<usize> {
    let size = match serial {
        None => total,
        Some(Serial::Hosts(n)) => n,
        Some(Serial::Percent(p)) => total * usize::from(p) / 100,
    }
    .clamp(1, total.max(1));
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let batch = size.min(left);
        out.push(batch);
        left -= batch;
    }
    out
}

/// Whether a batch's failures stop the rollout: more than `max_percent`
/// of its hosts failed (Ansible's rule: exceeding, not reaching). Without
/// a limit, any failure in a rolling rollout stops it only if every host
/// of the batch failed.
pub fn stop_after(failed: usize, batch: usize, max_percent: Option<u8>) -> bool {
    if batch == 0 || failed == 0 {
        return false;
    }
    match max_percent {
        Some(p) => failed * 100 > batch * usize::from(p),
        None => failed == batch,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_parses_numbers_and_percentages() {
        assert_eq!("5".parse(), Ok(Serial::Hosts(5)));
        assert_eq!("25%".parse(), Ok(Serial::Percent(25)));
        for bad in ["0", "0%", "101%", "x", "-1", ""] {
            assert!(bad.parse::<Serial>().is_err(), "{bad}");
        }
    }

    #[test]
    fn batches_cover_every_host_once() {
        let cases = [
            (10, None, vec![10]),
            (10, Some(Serial::Hosts(3)), vec![3, 3, 3, 1]),
            (10, Some(Serial::Percent(25)), vec![2, 2, 2, 2, 2]),
            (3, Some(Serial::Percent(10)), vec![1, 1, 1]),
            (3, Some(Serial::Hosts(10)), vec![3]),
            (0, None, vec![]),
        ];
        for (total, serial, expected) in cases {
            assert_eq!(batches(total, serial), expected, "{total} {serial:?}");
        }
    }

    #[test]
    fn the_stop_rule() {
        let cases = [
            (0, 4, Some(0), false),
            (1, 4, Some(0), true),
            (1, 4, Some(25), false),
            (2, 4, Some(25), true),
            (3, 3, None, true),
            (2, 3, None, false),
        ];
        for (failed, batch, max, expected) in cases {
            assert_eq!(
                stop_after(failed, batch, max),
                expected,
                "{failed}/{batch} max {max:?}"
            );
        }
    }
}
