//! The machine a run happened on, for the report: kernel, CPU model, cores, date and load,
//! read from the commands and `/proc` files any Linux has.

use std::process::Command;

/// A description of the machine and the moment.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `uname -a`.
    pub uname: String,
    /// The first `model name` of `/proc/cpuinfo`.
    pub cpu: String,
    /// Online cores.
    pub cores: usize,
    /// `date -u`, ISO 8601.
    pub date: String,
}

fn command(program: &str, args: &[&str]) -> Option<String> {
    let output = Command::new(program).args(args).output().ok()?;
    let text = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    (output.status.success() && !text.is_empty()).then_some(text)
}

impl Machine {
    /// Describes this machine now.
    pub fn describe() -> Machine {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find_map(|l| l.strip_prefix("model name"))
                    .map(|v| v.trim_start_matches([' ', '\t', ':']).trim().to_owned())
            })
            .unwrap_or_else(|| "unknown".into());
        Machine {
            uname: command("uname", &["-a"]).unwrap_or_else(|| "unknown".into()),
            cpu,
            cores: std::thread::available_parallelism().map_or(0, usize::from),
            date: command("date", &["-u", "+%Y-%m-%d %H:%M:%S UTC"]).unwrap_or_else(|| "unknown".into()),
        }
    }
}

/// The 1, 5 and 15 minute load averages from `/proc/loadavg`.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// Asks the kernel to keep every CPU out of idle states with any exit latency, for as long
/// as the returned file is open (PM QoS through `/dev/cpu_dma_latency`, as latency
/// benchmarks such as cyclictest do).
///
/// Why: on a virtual machine an idle CPU halts and leaves the host, and waking it again for
/// the next message costs more than the whole round trip. The pings then measure the
/// hypervisor, and by how much depends on what else happens to keep the CPUs busy.
pub fn hold_cpus_awake() -> Result<std::fs::File, String> {
    use std::io::Write as _;
    let path = "/dev/cpu_dma_latency";
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| format!("{path}: {e}"))?;
    // The request is a native-endian i32 in microseconds: 0 allows no exit latency at all.
    file.write_all(&0i32.to_ne_bytes())
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(file)
}
