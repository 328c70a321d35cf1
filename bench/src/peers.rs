//! The official Python and JavaScript clients, run as subprocesses through the scripts in
//! the repository's `interop/peers` (installed with its `install.sh` when missing), their JSON
//! lines parsed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::Value;

use crate::stats::Summary;

/// Where the clients are installed and where their scripts live.
#[derive(Debug, Clone)]
pub struct Peers {
    /// `install.sh`'s target: holds `py/` and `js/`.
    pub dir: PathBuf,
    /// `install.sh`, `py-session.py`, `js-session.js`.
    pub scripts: PathBuf,
}

/// Which official client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Which {
    /// diffusion (PyPI).
    Python,
    /// diffusion (npm).
    Js,
}

/// What one run of a client's script reported.
#[derive(Debug, Clone, Default)]
pub struct PeerRun {
    /// `client_version` from the `start` line.
    pub version: Option<String>,
    /// The `pings` summary line (median and nearest-rank p99, µs).
    pub pings: Option<Summary>,
    /// Warm connects: the `connect_sample` lines after the first (which is the process's
    /// first connect, so cold).
    pub warm_connects: Option<Summary>,
    /// The first error line, or why the script could not run.
    pub error: Option<String>,
}

impl Peers {
    fn python(&self) -> PathBuf {
        self.dir.join("py/bin/python")
    }

    fn js_dir(&self) -> PathBuf {
        self.dir.join("js")
    }

    fn installed(&self) -> bool {
        self.python().exists() && self.js_dir().join("node_modules/diffusion/package.json").exists()
    }

    /// Installs both clients with `install.sh` unless they are already there.
    pub fn ensure_installed(&self) -> Result<(), String> {
        if self.installed() {
            return Ok(());
        }
        let script = self.scripts.join("install.sh");
        eprintln!("installing the official clients into {}", self.dir.display());
        let status = Command::new("bash")
            .arg(&script)
            .arg(&self.dir)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("running {}: {e}", script.display()))?;
        if status.success() && self.installed() {
            Ok(())
        } else {
            Err(format!(
                "{} {} failed ({status})",
                script.display(),
                self.dir.display()
            ))
        }
    }

    /// Runs one client: `connects` warm-connect cycles, then a session with `pings` pings.
    pub fn run(&self, which: Which, url: &str, pings: usize, connects: usize) -> PeerRun {
        let counts = [
            "--pings".to_owned(),
            pings.to_string(),
            "--extra-connects".to_owned(),
            // One more: the first connect of a process is cold and is left out.
            (connects + 1).to_string(),
        ];
        let mut command = match which {
            Which::Python => {
                let mut c = Command::new(self.python());
                c.arg(self.scripts.join("py-session.py")).arg(url);
                c
            }
            Which::Js => {
                let mut c = Command::new("node");
                c.arg(self.scripts.join("js-session.js"))
                    .arg(url)
                    .arg("--js-dir")
                    .arg(self.js_dir());
                c
            }
        };
        command.args(counts).stdin(Stdio::null()).stderr(Stdio::null());
        match command.output() {
            Ok(output) => parse(&String::from_utf8_lossy(&output.stdout)),
            Err(e) => PeerRun {
                error: Some(format!("could not run: {e}")),
                ..PeerRun::default()
            },
        }
    }
}

/// Reads a script's JSON lines.
fn parse(stdout: &str) -> PeerRun {
    let mut run = PeerRun::default();
    let mut connects = Vec::new();
    let mut ok = None;
    for line in stdout.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let number = |key: &str| v.get(key).and_then(Value::as_f64);
        match v.get("event").and_then(Value::as_str) {
            Some("start") => run.version = v.get("client_version").and_then(Value::as_str).map(str::to_owned),
            Some("connect_sample") if number("n").is_some_and(|n| n > 1.0) => {
                connects.extend(number("connect_us"));
            }
            Some("pings") => {
                if let (Some(count), Some(p50_us), Some(p99_us)) =
                    (number("count"), number("median_us"), number("p99_us"))
                {
                    if count > 0.0 {
                        run.pings = Some(Summary {
                            count: count as usize,
                            p50_us,
                            p99_us,
                        });
                    }
                }
            }
            Some("error") if run.error.is_none() => {
                let stage = v.get("stage").and_then(Value::as_str).unwrap_or("?");
                let message = v.get("message").and_then(Value::as_str).unwrap_or("?");
                run.error = Some(format!("{stage}: {message}"));
            }
            Some("result") => ok = v.get("ok").and_then(Value::as_bool),
            _ => {}
        }
    }
    run.warm_connects = Summary::of_us(connects);
    if run.error.is_none() && ok != Some(true) {
        run.error = Some("the script did not report success".into());
    }
    run
}

/// The default peers folder: `$DIFFUSION_PEERS_DIR`, else `/tmp/peers`.
pub fn default_dir() -> PathBuf {
    std::env::var_os("DIFFUSION_PEERS_DIR").map_or_else(|| PathBuf::from("/tmp/peers"), PathBuf::from)
}

/// The default scripts folder: `$DIFFUSION_PEERS_SCRIPTS`, else the workspace's
/// `interop/peers`.
pub fn default_scripts(workspace: &Path) -> PathBuf {
    std::env::var_os("DIFFUSION_PEERS_SCRIPTS").map_or_else(|| workspace.join("interop/peers"), PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_summary_lines() {
        let out = r#"{"event":"start","client":"js","t_ms":1,"client_version":"6.12.1"}
{"event":"connect_sample","n":1,"connect_us":15000}
{"event":"connect_sample","n":2,"connect_us":1000}
{"event":"connect_sample","n":3,"connect_us":3000}
{"event":"pings","ok":10,"failed":0,"count":10,"min_us":1,"median_us":170,"p99_us":900,"max_us":900,"mean_us":200}
{"event":"result","ok":true}"#;
        let run = parse(out);
        assert_eq!(run.version.as_deref(), Some("6.12.1"));
        assert_eq!(run.pings.map(|p| (p.p50_us, p.p99_us)), Some((170.0, 900.0)));
        assert_eq!(run.warm_connects.map(|c| (c.count, c.p50_us)), Some((2, 2000.0)));
        assert!(run.error.is_none());
        let failed = parse(r#"{"event":"error","stage":"connect","message":"refused"}"#);
        assert_eq!(failed.error.as_deref(), Some("connect: refused"));
    }
}
