//! Rolling batches (`--serial N` or `P%`) and the stop rule
//! (`--max-fail-percent P`), as Ansible users know them: hosts go in
//! batches, each finished before the next starts; when the share of failed
//! hosts in a batch exceeds P, the rollout stops and the hosts not reached
//! are left untouched. Pure.

/// How big one batch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Hosts(usize),
    Percent(u8),
}

impl Size {
    /// Hosts in a batch of this size out of `total` (a percentage rounds
    /// down, but a batch has one host at least).
    fn of(self, total: usize) -> usize {
        match self {
            Size::Hosts(n) => n,
            Size::Percent(p) => total * usize::from(p) / 100,
        }
        .max(1)
    }
}

/// `--serial`: one size for every batch (`5`, `25%`), or a list whose
/// last size repeats (`1,10%,100%`: a canary host, then growing batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial(pub Vec<Size>);

impl std::str::FromStr for Serial {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = |item: &str| {
            format!(
                "{item:?}: expected a number of hosts (5), a percentage (25%), or a list of them (1,10%,100%)"
            )
        };
        let sizes = text
            .split(',')
            .map(|item| match item.trim().strip_suffix('%') {
                Some(percent) => match percent.trim().parse::<u8>() {
                    Ok(p) if (1..=100).contains(&p) => Ok(Size::Percent(p)),
                    _ => Err(bad(item)),
                },
                None => match item.trim().parse::<usize>() {
                    Ok(n) if n >= 1 => Ok(Size::Hosts(n)),
                    _ => Err(bad(item)),
                },
            })
            .collect::<Result<Vec<Size>, String>>()?;
        Ok(Serial(sizes))
    }
}

/// Batch sizes for `total` hosts. Without `--serial`, one batch of all.
pub fn batches(total: usize, serial: Option<&Serial>) -> Vec<usize> {
    let mut out = Vec::new();
    let mut left = total;
    while left > 0 {
        let size = match serial {
            None => total,
            Some(Serial(sizes)) => {
                let size = sizes.get(out.len()).or(sizes.last()).copied();
                size.map_or(total, |s| s.of(total))
            }
        };
        let batch = size.clamp(1, left);
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
    fn serial_parses_numbers_percentages_and_lists() {
        assert_eq!("5".parse(), Ok(Serial(vec![Size::Hosts(5)])));
        assert_eq!("25%".parse(), Ok(Serial(vec![Size::Percent(25)])));
        assert_eq!(
            "1, 10%,100%".parse(),
            Ok(Serial(vec![
                Size::Hosts(1),
                Size::Percent(10),
                Size::Percent(100)
            ]))
        );
        for bad in ["0", "0%", "101%", "x", "-1", "", "1,,2", "1,x"] {
            assert!(bad.parse::<Serial>().is_err(), "{bad}");
        }
    }

    #[test]
    fn batches_cover_every_host_once() {
        let serial = |text: &str| Some(text.parse::<Serial>().unwrap());
        let cases = [
            (10, None, vec![10]),
            (10, serial("3"), vec![3, 3, 3, 1]),
            (10, serial("25%"), vec![2, 2, 2, 2, 2]),
            (3, serial("10%"), vec![1, 1, 1]),
            (3, serial("10"), vec![3]),
            (0, None, vec![]),
            // A canary, then growing batches; the last size repeats.
            (20, serial("1,10%,50%"), vec![1, 2, 10, 7]),
            (8, serial("1,50%,100%"), vec![1, 4, 3]),
            (1, serial("1,50%,100%"), vec![1]),
            (5, serial("2,1"), vec![2, 1, 1, 1]),
        ];
        for (total, serial, expected) in cases {
            assert_eq!(
                batches(total, serial.as_ref()),
                expected,
                "{total} {serial:?}"
            );
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
