//! What the results were measured on: the machine and the toolchain.

/// The machine line of `results.md`: CPU model, cores, memory, kernel and open-files limit.
pub fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let nofile = rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(0, |(_, h)| h);
    format!(
        "{cpu}, {cores} cores (shared with other builds), {:.0} GiB RAM, Linux {}, open-files limit {nofile} per process",
        mem_kib as f64 / 1024.0 / 1024.0,
        kernel.trim()
    )
}

/// `rustc --version` (empty when rustc cannot be run).
pub fn rustc_version() -> String {
    std::process::Command::new("rustc")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}
