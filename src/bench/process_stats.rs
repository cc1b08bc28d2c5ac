//! CPU time and resident memory of a process, and the CPU time of the
//! whole machine, from Linux's `/proc`.

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

/// One reading of the whole machine, in CPU seconds summed over its cores.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct MachineReading {
    /// Time the cores ran anything (user, nice, system, irq, softirq).
    pub busy_seconds: f64,
    /// Time a hypervisor gave this machine's cores to someone else: on a
    /// shared host, the run had less machine than it seemed.
    pub steal_seconds: f64,
}

/// Reads the machine's CPU time; `None` where `/proc/stat` does not say.
pub fn read_machine() -> Option<MachineReading> {
    machine_from(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The summed `cpu` line of a `/proc/stat`.
fn machine_from(stat: &str) -> Option<MachineReading> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: Vec<u64> = line.split_whitespace().skip(1).map_while(|f| f.parse().ok()).collect();
    // user nice system idle iowait irq softirq steal: guest time is
    // already inside user and nice.
    let [user, nice, system, _idle, _iowait, irq, softirq, steal, ..] = ticks[..] else {
        return None;
    };
    Some(MachineReading {
        busy_seconds: (user + nice + system + irq + softirq) as f64 / 100.0,
        steal_seconds: steal as f64 / 100.0,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_proc_stat_cpu_line_is_read_and_a_short_one_refused() {
        let stat = "cpu  2474353 3766 408955 13906421 16639 0 46995 31459 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        let m = super::machine_from(stat).expect("a full cpu line");
        assert_eq!(m.busy_seconds, (2474353.0 + 3766.0 + 408955.0 + 46995.0) / 100.0);
        assert_eq!(m.steal_seconds, 314.59);
        assert_eq!(super::machine_from("cpu  1 2 3 4 5 6 7\n"), None);
        assert!(super::read_machine().is_some(), "/proc/stat is readable on Linux");
    }

    #[test]
    fn this_process_can_be_read() {
        let me = super::read(std::process::id()).expect("/proc is readable on Linux");
        assert!(me.rss_kib > 0);
    }
}
