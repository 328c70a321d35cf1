//! `e2e`: ping round trips, warm connects, pipelined rates and idle-session memory of our
//! clients, a raw WebSocket floor and the official clients, as one table in `BENCHMARKS.md`.
#![forbid(unsafe_code)]

mod clients;
mod idle;
mod machine;
mod ours;
mod peers;
mod raw;
mod report;
mod rows;
mod servers;
mod stats;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, Parser};
use std::time::{Duration, Instant};

use crate::clients::{measure_connects, measure_pings, measure_rates, Runtimes};
use crate::machine::Machine;
use crate::peers::{PeerRun, Peers, Which};
use crate::rows::Results;
use crate::servers::{Kind, ServerProcess};
use crate::stats::thousands;

/// The workspace root (this crate's parent folder), for the default paths.
fn workspace() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// What a run measures, and how much.
#[derive(Debug, Clone)]
struct Opts {
    pings: usize,
    warmup: usize,
    rounds: usize,
    connects: usize,
    duration: Duration,
    sessions: usize,
    peers: Option<Peers>,
    out: Option<PathBuf>,
    /// Keep the CPUs out of idle states while measuring (see `machine::hold_cpus_awake`).
    hold_cpus_awake: bool,
    /// The arguments as given, for the report's command line.
    given: Vec<String>,
}

impl Opts {
    /// Runs per pipelined rate: a rate is long enough not to need as many as latencies.
    fn rate_rounds(&self) -> usize {
        self.rounds.min(3)
    }
}

/// The command line.
#[derive(Parser)]
#[command(
    name = "e2e",
    about = "End-to-end benchmarks of diffusion-rs against its loopback test server",
    override_usage = "cargo run --release -p diffusion-bench --bin e2e -- [OPTIONS]"
)]
struct Cli {
    /// A quick run: 1000 pings, 200 warm-up pings, 10 connects, 0.3 s per rate, 1000 sessions
    #[arg(long)]
    quick: bool,
    /// Measured pings per client [default: 10000]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(usize))]
    pings: Option<usize>,
    /// Pings before measuring, per client of ours and the floor [default: 1000]
    #[arg(long, value_name = "N")]
    warmup: Option<usize>,
    /// Our clients and the floors take turns in N rounds
    #[arg(long, value_name = "N", default_value_t = 10)]
    rounds: usize,
    /// Warm connects per client [default: 100]
    #[arg(long, value_name = "N")]
    connects: Option<usize>,
    /// How long each pipelined rate is measured, 3 times [default: 1000]
    #[arg(long, value_name = "N")]
    duration_ms: Option<u64>,
    /// Idle sessions for the memory row; 0 skips it [default: 10000]
    #[arg(long, value_name = "N")]
    sessions: Option<usize>,
    /// Where the official clients are (or get) installed [default: $DIFFUSION_PEERS_DIR, else /tmp/peers]
    #[arg(long, value_name = "DIR")]
    peers_dir: Option<PathBuf>,
    /// The peers scripts [default: $DIFFUSION_PEERS_SCRIPTS, else interop/peers]
    #[arg(long, value_name = "DIR")]
    peers_scripts: Option<PathBuf>,
    /// Skip the official clients
    #[arg(long)]
    no_peers: bool,
    /// Where to write the report [default: BENCHMARKS.md in the workspace]
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Print the table only
    #[arg(long, conflicts_with = "out")]
    no_write: bool,
    /// Leave CPU idle states alone (by default /dev/cpu_dma_latency holds them off while measuring)
    #[arg(long)]
    cpus_may_idle: bool,
    /// Child process: serve KIND (test-server or echo) and print its URL
    #[arg(long, value_name = "KIND", hide = true)]
    serve: Option<String>,
    /// Child process: hold N idle sessions to URL and print their memory
    #[arg(long, num_args = 2, value_names = ["N", "URL"], hide = true)]
    idle_child: Option<Vec<String>>,
}

/// What this process is asked to be.
enum Mode {
    Run(Box<Opts>),
    Serve(Kind),
    IdleChild { sessions: usize, url: String },
}

impl Cli {
    fn mode(self, given: Vec<String>) -> Result<Mode, String> {
        if let Some(name) = self.serve {
            return Kind::from_name(&name)
                .map(Mode::Serve)
                .ok_or_else(|| format!("--serve: unknown server {name:?}"));
        }
        if let Some([sessions, url]) = self.idle_child.as_deref() {
            let sessions = sessions
                .parse()
                .map_err(|_| format!("--idle-child: {sessions:?} is not a number"))?;
            return Ok(Mode::IdleChild {
                sessions,
                url: url.clone(),
            });
        }
        let quick = self.quick;
        let pings = self.pings.unwrap_or(if quick { 1000 } else { 10_000 });
        if pings == 0 {
            return Err("--pings must be at least 1".into());
        }
        let peers = (!self.no_peers).then(|| Peers {
            dir: self.peers_dir.unwrap_or_else(peers::default_dir),
            scripts: self
                .peers_scripts
                .unwrap_or_else(|| peers::default_scripts(&workspace())),
        });
        Ok(Mode::Run(Box::new(Opts {
            pings,
            warmup: self.warmup.unwrap_or(if quick { 200 } else { 1000 }),
            rounds: self.rounds.max(1),
            connects: self.connects.unwrap_or(if quick { 10 } else { 100 }),
            duration: Duration::from_millis(self.duration_ms.unwrap_or(if quick { 300 } else { 1000 })),
            sessions: self.sessions.unwrap_or(if quick { 1000 } else { 10_000 }),
            peers,
            out: (!self.no_write).then(|| self.out.unwrap_or_else(|| workspace().join("BENCHMARKS.md"))),
            hold_cpus_awake: !self.cpus_may_idle,
            given,
        })))
    }
}

fn main() -> ExitCode {
    let mode = match Cli::parse().mode(std::env::args().skip(1).collect()) {
        Ok(mode) => mode,
        Err(e) => Cli::command()
            .error(clap::error::ErrorKind::ValueValidation, e)
            .exit(),
    };
    let result = match mode {
        Mode::Serve(kind) => servers::serve(kind),
        Mode::IdleChild { sessions, url } => idle::child(&url, sessions),
        Mode::Run(opts) => run(&opts),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("e2e: {e}");
            ExitCode::FAILURE
        }
    }
}

fn progress(what: &str) {
    eprintln!("[e2e {}] {what}", machine::load_average());
}

fn run(opts: &Opts) -> Result<(), String> {
    // 10 000 sessions need 10 000 sockets here and as many in the server's process, which
    // inherits this limit.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).map_err(|e| format!("RLIMIT_NOFILE: {e}"))?;
    let machine = Machine::describe();
    let load_before = machine::load_average();
    // Held until the end of the run; without it the result says how it ran.
    let awake = opts.hold_cpus_awake.then(machine::hold_cpus_awake);
    let cpu_idle = match &awake {
        Some(Ok(_)) => "CPU idle states held off (`/dev/cpu_dma_latency` = 0) during the run".to_owned(),
        Some(Err(e)) => format!("CPU idle states could not be held off ({e}): the machine as it was"),
        None => "CPU idle states left as they were (`--cpus-may-idle`)".to_owned(),
    };
    let started = Instant::now();
    let rt = Runtimes::new()?;

    let echo = ServerProcess::start(Kind::Echo)?;
    let server = ServerProcess::start(Kind::TestServer)?;
    progress(&format!(
        "echo server {} (pid {}), test server {} (pid {})",
        echo.url,
        echo.pid(),
        server.url,
        server.pid()
    ));

    progress("ping round trips");
    let pings = measure_pings(&rt, &echo.url, &server.url, opts);
    progress("warm connects");
    let connects = measure_connects(&rt, &echo.url, &server.url, opts);
    let (python, js) = match &opts.peers {
        Some(peers) => {
            progress("official clients");
            match peers.ensure_installed() {
                Ok(()) => (
                    Some(peers.run(Which::Python, &server.url, opts.pings, opts.connects)),
                    Some(peers.run(Which::Js, &server.url, opts.pings, opts.connects)),
                ),
                Err(e) => {
                    let failed = PeerRun {
                        error: Some(e),
                        ..PeerRun::default()
                    };
                    (Some(failed.clone()), Some(failed))
                }
            }
        }
        None => (None, None),
    };
    progress("pipelined throughput");
    let rates = measure_rates(&rt, &echo.url, &server.url, opts);
    drop(server);
    drop(echo);

    let idle = (opts.sessions > 0).then(|| {
        progress(&format!("{} idle sessions", opts.sessions));
        // A server of its own, with no earlier sessions in it.
        ServerProcess::start(Kind::TestServer).and_then(|s| idle::measure(&s.url, opts.sessions))
    });
    let load_after = machine::load_average();
    drop(awake);

    let results = Results {
        pings,
        connects,
        rates,
        python,
        js,
        idle,
    };
    let rows = rows::rows(&results, opts.sessions);
    let command = std::iter::once("cargo run --release -p diffusion-bench --bin e2e".to_owned())
        .chain((!opts.given.is_empty()).then(|| format!("-- {}", opts.given.join(" "))))
        .collect::<Vec<_>>()
        .join(" ");
    let generated = format!(
        "Command: `{command}`\n\n\
         Machine: {cpu}, {cores} cores; `{uname}`\n\n\
         Date: {date}; load average (1, 5, 15 min) {load_before} before, {load_after} after; \
         {secs:.0} s; RLIMIT_NOFILE {nofile}; {cpu_idle}.\n\n\
         Settings: {pings} measured pings per client, sequential (after {warmup} warm-up pings for ours \
         and the raw clients, which take turns in {rounds} rounds; the official clients run after them, \
         once each); {connects} warm connects per client; each pipelined rate the median of {rate_rounds} \
         runs of {ms} ms, the clients taking turns (ours keep N in flight as N tasks pinging one \
         session in a loop, the raw clients as a window of N on one connection); {sessions} idle sessions in a child process. Our \
         clients and the raw clients run as tasks on their runtime's executor; each server is a child \
         process on a default multi-thread tokio runtime.\n\n\
         {table}",
        cpu = machine.cpu,
        cores = machine.cores,
        uname = machine.uname,
        date = machine.date,
        secs = started.elapsed().as_secs_f64(),
        pings = opts.pings,
        warmup = opts.warmup,
        rounds = opts.rounds,
        rate_rounds = opts.rate_rounds(),
        connects = opts.connects,
        ms = opts.duration.as_millis(),
        sessions = thousands(opts.sessions as u64),
        table = report::table(&rows),
    );
    println!("{generated}");
    if let Some(path) = &opts.out {
        report::write(path, &generated).map_err(|e| format!("writing {}: {e}", path.display()))?;
        eprintln!("written to {}", path.display());
    }
    Ok(())
}
