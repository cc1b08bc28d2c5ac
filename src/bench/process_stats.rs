//! CPU time and resident memory of a process, from Linux's `/proc`.

use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Reading {
    /// User + system CPU seconds so far.
    pub cpu_seconds: f64,
    /// Resident set size, in KiB.
    pub rss_kib: u64,
}

/// Reads process `pid`; `None` where `/proc` does not say (not Linux, gone).
pub fn read(pid: u32) -> Option<Reading> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())?;
    Some(Reading {
        // Linux reports in USER_HZ, 100 on every mainstream configuration.
        cpu_seconds: ticks as f64 / 100.0,
        rss_kib,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn this_process_can_be_read() {
        let me = super::read(std::process::id()).expect("/proc is readable on Linux");
        assert!(me.rss_kib > 0);
    }
}
