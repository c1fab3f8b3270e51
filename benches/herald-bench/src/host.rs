//! What the machine allows and what a server costs, read from /proc: resident
//! memory of any process, open-file limits, the ephemeral port range.

use std::net::{Ipv4Addr, SocketAddrV4};

/// Resident set size of process `pid` in bytes (VmRSS of /proc/PID/status).
pub fn vm_rss_bytes(pid: u32) -> Result<u64, String> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {path}: {e} (is pid {pid} running?)"))?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no VmRSS line in {path}"))
}

/// The command name of process `pid` (/proc/PID/comm), used as a default label.
pub fn comm(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
}

/// The soft open-file limit of process `pid` ("Max open files" in /proc/PID/limits).
pub fn nofile_soft_of(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/limits")).ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The ephemeral port range used by connect (net.ipv4.ip_local_port_range).
pub fn local_port_range() -> (u16, u16) {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            let mut it = s.split_whitespace().map(|v| v.parse::<u16>().ok());
            Some((it.next()??, it.next()??))
        })
        .unwrap_or((32768, 60999))
}

/// Which source addresses to connect from so that `conns` simultaneous
/// connections to `dst` do not run out of ephemeral ports. Empty: one source
/// is enough, the kernel picks it. `forced` asks for that many sources anyway.
pub fn plan_sources(
    conns: usize,
    dst: SocketAddrV4,
    forced: Option<usize>,
) -> Result<Vec<Ipv4Addr>, String> {
    let (lo, hi) = local_port_range();
    // Linux gives connect() the even ports of the range first and scans them
    // all before it takes odd ones, so connecting slows down sharply past
    // half the range: use half of it per source, less a tenth for others.
    let range = usize::from(hi.saturating_sub(lo)) + 1;
    let per_source = range / 2 * 9 / 10;
    let needed = conns.div_ceil(per_source.max(1));
    let count = match forced {
        Some(k) => k.max(needed),
        None if needed <= 1 => return Ok(Vec::new()),
        None => needed,
    };
    if !dst.ip().is_loopback() {
        return Err(format!(
            "{conns} connections need {count} source addresses (ephemeral ports {lo}-{hi}), \
             but only a loopback target (127.x.x.x) can be reached from 127.0.0.2 and up"
        ));
    }
    if count > 254 {
        return Err(format!(
            "{conns} connections would need {count} source addresses"
        ));
    }
    Ok((1..=count as u8)
        .map(|i| Ipv4Addr::new(127, 0, 0, i))
        .collect())
}

/// Raises this process's open-file soft limit to the hard limit; returns the
/// new soft limit.
pub fn raise_nofile() -> u64 {
    match herald::sys::raise_nofile_limit() {
        Ok((soft, _)) => soft,
        Err(e) => {
            eprintln!("herald-bench: cannot raise the open-file limit: {e}");
            1024
        }
    }
}

/// Raises the open-file limit and refuses counts this process cannot hold.
pub fn check_fd_budget(conns: usize) -> Result<(), String> {
    let soft = raise_nofile();
    let cap = soft.saturating_sub(32) as usize;
    if conns > cap {
        return Err(format!(
            "{conns} connections need more descriptors than this process may open \
             ({soft}, the hard open-file limit, less 32 for its own use): at most {cap}"
        ));
    }
    Ok(())
}

/// CPU time (user + system) a process has used so far, in seconds, from
/// /proc/PID/stat. Used to tell a server-bound figure from a tool-bound one.
pub fn cpu_seconds(pid: u32) -> Result<f64, String> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("cannot read /proc/{pid}/stat: {e}"))?;
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th fields of the line, the 12th and 13th after ")".
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    // USER_HZ is 100 on Linux.
    Ok((ticks(11) + ticks(12)) as f64 / 100.0)
}

/// CPU time (user + system) of process `pid` and all its descendants so
/// far, in seconds: a supervisor's own time, the time of the children it
/// has reaped (cutime, cstime) and that of the live ones. A worker that
/// exits between two readings moves from "live" to its parent's reaped
/// time, so differences stay meaningful across a rolling restart.
pub fn tree_cpu_seconds(pid: u32) -> Result<f64, String> {
    let fields = |pid: u32| -> Option<[u64; 4]> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let t = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        Some([t(11), t(12), t(13), t(14)])
    };
    let Some(top) = fields(pid) else {
        return Err(format!(
            "cannot read /proc/{pid}/stat (is pid {pid} running?)"
        ));
    };
    let mut ticks: u64 = top.iter().sum();
    let mut stack = children(pid);
    while let Some(child) = stack.pop() {
        // A child's own reaped children are counted in its cutime, and its
        // live ones below.
        if let Some(f) = fields(child) {
            ticks += f.iter().sum::<u64>();
        }
        stack.extend(children(child));
    }
    Ok(ticks as f64 / 100.0)
}

/// The live children of `pid`, from /proc/PID/task/*/children.
fn children(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for t in tasks.flatten() {
        let list = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
        out.extend(
            list.split_whitespace()
                .filter_map(|v| v.parse::<u32>().ok()),
        );
    }
    out
}
