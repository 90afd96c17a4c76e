//! Readings from `/proc`: CPU ticks of a process, of this process, of the PostgreSQL
//! backends serving a database and of the whole machine, and a process's peak RSS.

use anyhow::Context;

/// utime + stime of `pid`, in clock ticks.
pub fn cpu_ticks(pid: u32) -> anyhow::Result<u64> {
    parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat"))?)
}

/// utime + stime of this process, in clock ticks.
pub fn cpu_ticks_self() -> anyhow::Result<u64> {
    parse_stat_ticks(&std::fs::read_to_string("/proc/self/stat")?)
}

/// Fields 14 and 15 of `/proc/<pid>/stat`; counted after the `)` that ends the command
/// name, which may itself contain spaces.
fn parse_stat_ticks(stat: &str) -> anyhow::Result<u64> {
    let rest = &stat[stat.rfind(')').context("malformed /proc stat")? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state), so field 14 is index 11.
    let utime: u64 = fields.get(11).context("no utime")?.parse()?;
    let stime: u64 = fields.get(12).context("no stime")?.parse()?;
    Ok(utime + stime)
}

/// Busy time of all CPUs (the `cpu` line of `/proc/stat` minus idle and iowait), in
/// clock ticks.
pub fn machine_busy_ticks() -> anyhow::Result<u64> {
    let stat = std::fs::read_to_string("/proc/stat")?;
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .context("no cpu line in /proc/stat")?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(str::parse)
        .collect::<Result<_, _>>()?;
    // user nice system idle iowait irq softirq steal (guest time is already in user).
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    Ok(total - idle)
}

/// utime + stime of every local PostgreSQL backend connected to `database` (its process
/// title, in `/proc/<pid>/cmdline`, is `postgres: [<cluster>:] <user> <database> <client>
/// <state>`).
/// Backends that exit inside the window are missed; berth-auth's pool keeps its open.
pub fn pg_backend_ticks(database: &str) -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    let mut total = 0;
    for entry in dir.flatten() {
        let path = entry.path();
        let is_pid = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()));
        if !is_pid {
            continue;
        }
        let Ok(cmdline) = std::fs::read(path.join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline);
        let ours =
            cmdline.starts_with("postgres:") && cmdline.split_whitespace().any(|w| w == database);
        if ours
            && let Ok(stat) = std::fs::read_to_string(path.join("stat"))
            && let Ok(ticks) = parse_stat_ticks(&stat)
        {
            total += ticks;
        }
    }
    total
}

/// `getconf CLK_TCK`, else Linux's usual 100.
pub fn clock_ticks_per_second() -> u64 {
    static TICKS: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .filter(|&t| t > 0)
            .unwrap_or(100)
    })
}

/// Peak resident set size (VmHWM) of `pid` so far, in MiB.
pub fn peak_rss_mib(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .context("no VmHWM in /proc/<pid>/status")?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()?;
    Ok(kib / 1024.0)
}
