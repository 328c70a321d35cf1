//! The clients under measurement on their runtimes (tokio, async-std, smol), opened and
//! driven in turns, so that a change in the machine's load reaches them all alike.

use std::future::Future;
use std::time::Duration;

use diffusion_async_std::{AsyncStd, Smol};
use diffusion_client::Session;
use diffusion_tokio::Tokio;

use crate::raw::{self, FuturesWs, RawClient, TokioWs};
use crate::stats::Summary;
use crate::{ours, Opts};

/// Runs `f` as a task on the tokio runtime's workers (not on the calling thread), as
/// application code that pings from a task does.
fn on_tokio<T: Send + 'static>(
    rt: &Runtimes,
    f: impl Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    let rt = &rt.multi;
    rt.block_on(rt.spawn(f)).map_err(|e| format!("task: {e}"))?
}

/// Runs `f` as a task on the current-thread tokio runtime, which this thread drives.
fn on_tokio_current<T: Send + 'static>(
    rt: &Runtimes,
    f: impl Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    let rt = &rt.current;
    rt.block_on(rt.spawn(f)).map_err(|e| format!("task: {e}"))?
}

/// The two tokio runtimes: the default multi-thread one (as `#[tokio::main]`) and a
/// current-thread one (`flavor = "current_thread"`).
pub struct Runtimes {
    multi: tokio::runtime::Runtime,
    current: tokio::runtime::Runtime,
}

impl Runtimes {
    pub fn new() -> Result<Runtimes, String> {
        let multi = tokio::runtime::Builder::new_multi_thread().enable_all().build();
        let current = tokio::runtime::Builder::new_current_thread().enable_all().build();
        match (multi, current) {
            (Ok(multi), Ok(current)) => Ok(Runtimes { multi, current }),
            (Err(e), _) | (_, Err(e)) => Err(format!("tokio runtime: {e}")),
        }
    }
}

/// Runs `f` as a task on async-std's executor.
fn on_async_std<T: Send + 'static>(
    f: impl Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    async_std::task::block_on(async_std::task::spawn(f))
}

/// Runs `f` as a task on smol's global executor.
fn on_smol<T: Send + 'static>(
    f: impl Future<Output = Result<T, String>> + Send + 'static,
) -> Result<T, String> {
    smol::block_on(smol::spawn(f))
}

/// One client under measurement, on its own runtime.
enum Client {
    Raw(RawClient<TokioWs>),
    RawCurrent(RawClient<TokioWs>),
    TokioCurrent(Session<Tokio>),
    RawAsyncStd(RawClient<FuturesWs>),
    RawSmol(RawClient<FuturesWs>),
    Tokio(Session<Tokio>),
    AsyncStd(Session<AsyncStd>),
    Smol(Session<Smol>),
}

/// A client, or why it could not be opened or went on no longer.
type Opened = Result<Client, String>;

/// Which client to open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    Floor,
    FloorCurrent,
    TokioCurrent,
    FloorAsyncStd,
    FloorSmol,
    RawToServer,
    Tokio,
    AsyncStd,
    Smol,
}

impl Who {
    /// One of our clients (not a raw one).
    pub fn is_ours(self) -> bool {
        matches!(self, Who::Tokio | Who::TokioCurrent | Who::AsyncStd | Who::Smol)
    }

    /// The raw client on the same runtime as this one of ours, when that is not tokio.
    pub fn runtime_floor(self) -> Option<Who> {
        match self {
            Who::TokioCurrent => Some(Who::FloorCurrent),
            Who::AsyncStd => Some(Who::FloorAsyncStd),
            Who::Smol => Some(Who::FloorSmol),
            _ => None,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Who::Floor => "floor: raw tokio-tungstenite client → raw echo server",
            Who::FloorCurrent => "raw tokio-tungstenite client, current-thread runtime → raw echo server",
            Who::TokioCurrent => "diffusion-tokio, current-thread runtime",
            Who::FloorAsyncStd => "raw async-tungstenite client on async-std → raw echo server",
            Who::FloorSmol => "raw async-tungstenite client on smol → raw echo server",
            Who::RawToServer => "raw tokio-tungstenite client → test server (the server's share)",
            Who::Tokio => "diffusion-tokio",
            Who::AsyncStd => "diffusion-async-std on async-std",
            Who::Smol => "diffusion-async-std on smol",
        }
    }
}

impl Client {
    fn open(rt: &Runtimes, who: Who, echo: &str, server: &str) -> Result<Client, String> {
        let (echo, server) = (echo.to_owned(), server.to_owned());
        match who {
            Who::Floor => on_tokio(rt, async move { RawClient::connect_echo(&echo).await }).map(Client::Raw),
            Who::FloorCurrent => on_tokio_current(rt, async move { RawClient::connect_echo(&echo).await })
                .map(Client::RawCurrent),
            Who::TokioCurrent => on_tokio_current(rt, async move { ours::connect::<Tokio>(&server).await })
                .map(Client::TokioCurrent),
            Who::FloorAsyncStd => on_async_std(async move { RawClient::connect_echo_futures(&echo).await })
                .map(Client::RawAsyncStd),
            Who::FloorSmol => {
                on_smol(async move { RawClient::connect_echo_futures(&echo).await }).map(Client::RawSmol)
            }
            Who::RawToServer => {
                on_tokio(rt, async move { RawClient::connect_diffusion(&server).await }).map(Client::Raw)
            }
            Who::Tokio => {
                on_tokio(rt, async move { ours::connect::<Tokio>(&server).await }).map(Client::Tokio)
            }
            Who::AsyncStd => {
                on_async_std(async move { ours::connect::<AsyncStd>(&server).await }).map(Client::AsyncStd)
            }
            Who::Smol => on_smol(async move { ours::connect::<Smol>(&server).await }).map(Client::Smol),
        }
    }

    /// `n` sequential pings; the client comes back for the next round.
    fn pings(self, rt: &Runtimes, n: usize) -> Result<(Client, Vec<Duration>), String> {
        match self {
            Client::Raw(mut c) => on_tokio(rt, async move {
                let s = c.pings(n).await?;
                Ok((Client::Raw(c), s))
            }),
            Client::RawCurrent(mut c) => on_tokio_current(rt, async move {
                let s = c.pings(n).await?;
                Ok((Client::RawCurrent(c), s))
            }),
            Client::TokioCurrent(c) => on_tokio_current(rt, async move {
                let s = ours::pings(&c, n).await?;
                Ok((Client::TokioCurrent(c), s))
            }),
            Client::RawAsyncStd(mut c) => on_async_std(async move {
                let s = c.pings(n).await?;
                Ok((Client::RawAsyncStd(c), s))
            }),
            Client::RawSmol(mut c) => on_smol(async move {
                let s = c.pings(n).await?;
                Ok((Client::RawSmol(c), s))
            }),
            Client::Tokio(c) => on_tokio(rt, async move {
                let s = ours::pings(&c, n).await?;
                Ok((Client::Tokio(c), s))
            }),
            Client::AsyncStd(c) => on_async_std(async move {
                let s = ours::pings(&c, n).await?;
                Ok((Client::AsyncStd(c), s))
            }),
            Client::Smol(c) => on_smol(async move {
                let s = ours::pings(&c, n).await?;
                Ok((Client::Smol(c), s))
            }),
        }
    }

    /// Pings per second with `in_flight` outstanding for `duration`.
    fn pipelined(self, rt: &Runtimes, in_flight: usize, duration: Duration) -> Result<(Client, f64), String> {
        match self {
            Client::Raw(mut c) => on_tokio(rt, async move {
                let r = c.pipelined(in_flight, duration).await?;
                Ok((Client::Raw(c), r))
            }),
            Client::RawCurrent(mut c) => on_tokio_current(rt, async move {
                let r = c.pipelined(in_flight, duration).await?;
                Ok((Client::RawCurrent(c), r))
            }),
            Client::TokioCurrent(c) => on_tokio_current(rt, async move {
                let r = ours::pipelined(&c, in_flight, duration).await?;
                Ok((Client::TokioCurrent(c), r))
            }),
            Client::RawAsyncStd(mut c) => on_async_std(async move {
                let r = c.pipelined(in_flight, duration).await?;
                Ok((Client::RawAsyncStd(c), r))
            }),
            Client::RawSmol(mut c) => on_smol(async move {
                let r = c.pipelined(in_flight, duration).await?;
                Ok((Client::RawSmol(c), r))
            }),
            Client::Tokio(c) => on_tokio(rt, async move {
                let r = ours::pipelined(&c, in_flight, duration).await?;
                Ok((Client::Tokio(c), r))
            }),
            Client::AsyncStd(c) => on_async_std(async move {
                let r = ours::pipelined(&c, in_flight, duration).await?;
                Ok((Client::AsyncStd(c), r))
            }),
            Client::Smol(c) => on_smol(async move {
                let r = ours::pipelined(&c, in_flight, duration).await?;
                Ok((Client::Smol(c), r))
            }),
        }
    }

    fn close(self, rt: &Runtimes) {
        let _ = match self {
            Client::Raw(c) => on_tokio(rt, async move {
                c.close().await;
                Ok(())
            }),
            Client::RawCurrent(c) => on_tokio_current(rt, async move {
                c.close().await;
                Ok(())
            }),
            Client::TokioCurrent(c) => on_tokio_current(rt, async move {
                c.close().await;
                Ok(())
            }),
            Client::RawAsyncStd(c) => on_async_std(async move {
                c.close().await;
                Ok(())
            }),
            Client::RawSmol(c) => on_smol(async move {
                c.close().await;
                Ok(())
            }),
            Client::Tokio(c) => on_tokio(rt, async move {
                c.close().await;
                Ok(())
            }),
            Client::AsyncStd(c) => on_async_std(async move {
                c.close().await;
                Ok(())
            }),
            Client::Smol(c) => on_smol(async move {
                c.close().await;
                Ok(())
            }),
        };
    }
}

/// `n` connects of `who`, each timed until open, then closed untimed.
fn connect_samples(
    rt: &Runtimes,
    who: Who,
    echo: &str,
    server: &str,
    n: usize,
) -> Result<Vec<Duration>, String> {
    let (echo, server) = (echo.to_owned(), server.to_owned());
    match who {
        Who::Floor => on_tokio(rt, async move { raw::connect_samples(&echo, n, false).await }),
        Who::RawToServer => on_tokio(rt, async move { raw::connect_samples(&server, n, true).await }),
        Who::Tokio => on_tokio(
            rt,
            async move { ours::connect_samples::<Tokio>(&server, n).await },
        ),
        Who::AsyncStd => on_async_std(async move { ours::connect_samples::<AsyncStd>(&server, n).await }),
        Who::Smol => on_smol(async move { ours::connect_samples::<Smol>(&server, n).await }),
        _ => Err("not measured".into()),
    }
}

pub const CONNECT_CLIENTS: [Who; 5] = [Who::Floor, Who::RawToServer, Who::Tokio, Who::AsyncStd, Who::Smol];

/// Warm connects: a few unmeasured ones each, then the clients take turns, `rounds` times.
pub fn measure_connects(
    rt: &Runtimes,
    echo: &str,
    server: &str,
    opts: &Opts,
) -> Vec<(Who, Result<Summary, String>)> {
    let mut clients: Vec<(Who, Result<Vec<Duration>, String>)> = CONNECT_CLIENTS
        .iter()
        .map(|&who| {
            let warm = connect_samples(rt, who, echo, server, opts.connects.clamp(1, 10));
            (who, warm.map(|_| Vec::with_capacity(opts.connects)))
        })
        .collect();
    for round in 0..opts.rounds {
        let share = opts.connects / opts.rounds + usize::from(round < opts.connects % opts.rounds);
        for (who, samples) in &mut clients {
            if let Ok(kept) = samples {
                match connect_samples(rt, *who, echo, server, share) {
                    Ok(s) => kept.extend(s),
                    Err(e) => *samples = Err(e),
                }
            }
        }
    }
    clients
        .into_iter()
        .map(|(who, samples)| {
            let summary = samples.and_then(|s| Summary::of(&s).ok_or_else(|| "no samples".into()));
            (who, summary)
        })
        .collect()
}

pub const PING_CLIENTS: [Who; 9] = [
    Who::Floor,
    Who::RawToServer,
    Who::Tokio,
    Who::FloorCurrent,
    Who::TokioCurrent,
    Who::FloorAsyncStd,
    Who::AsyncStd,
    Who::FloorSmol,
    Who::Smol,
];
pub const RATE_CLIENTS: [Who; 4] = [Who::Floor, Who::RawToServer, Who::Tokio, Who::AsyncStd];
pub const IN_FLIGHT: [usize; 3] = [1, 16, 256];

/// The client out of `opened` for one more turn, leaving an error in its place meanwhile;
/// `None` (and the error kept) when it failed before.
fn take(opened: &mut Opened) -> Option<Client> {
    if opened.is_err() {
        return None;
    }
    std::mem::replace(opened, Err(String::new())).ok()
}

/// Ping round trips: the clients take turns, `rounds` times, so that a change in the
/// machine's load shows in all of them alike.
pub fn measure_pings(
    rt: &Runtimes,
    echo: &str,
    server: &str,
    opts: &Opts,
) -> Vec<(Who, Result<Summary, String>)> {
    let mut clients: Vec<(Who, Opened, Vec<Duration>)> = PING_CLIENTS
        .iter()
        .map(|&who| {
            let client =
                Client::open(rt, who, echo, server).and_then(|c| c.pings(rt, opts.warmup).map(|(c, _)| c));
            (who, client, Vec::with_capacity(opts.pings))
        })
        .collect();
    for round in 0..opts.rounds {
        let share = opts.pings / opts.rounds + usize::from(round < opts.pings % opts.rounds);
        for (_, client, samples) in &mut clients {
            if let Some(c) = take(client) {
                *client = c.pings(rt, share).map(|(c, s)| {
                    samples.extend(s);
                    c
                });
            }
        }
    }
    clients
        .into_iter()
        .map(|(who, client, samples)| {
            let summary = client
                .map(|c| c.close(rt))
                .and_then(|()| Summary::of(&samples).ok_or_else(|| "no samples".into()));
            (who, summary)
        })
        .collect()
}

/// Pings per second at each number in flight, or why there is no rate.
pub type Rates = Vec<(usize, Result<f64, String>)>;

/// Pipelined rates: every client at every number in flight, `rounds` times in turn (each
/// for `duration`), and the median of the rounds.
pub fn measure_rates(rt: &Runtimes, echo: &str, server: &str, opts: &Opts) -> Vec<(Who, Rates)> {
    let rounds = opts.rate_rounds();
    let mut clients: Vec<(Who, Opened, Vec<Vec<f64>>)> = RATE_CLIENTS
        .iter()
        .map(|&who| {
            let client = Client::open(rt, who, echo, server).and_then(|c| {
                let warmup = opts.duration.min(Duration::from_millis(300));
                c.pipelined(rt, 16, warmup).map(|(c, _)| c)
            });
            (who, client, vec![Vec::new(); IN_FLIGHT.len()])
        })
        .collect();
    for _ in 0..rounds {
        for (_, client, rates) in &mut clients {
            for (i, in_flight) in IN_FLIGHT.into_iter().enumerate() {
                if let Some(c) = take(client) {
                    *client = c.pipelined(rt, in_flight, opts.duration).map(|(c, rate)| {
                        rates[i].push(rate);
                        c
                    });
                }
            }
        }
    }
    clients
        .into_iter()
        .map(|(who, client, rates)| {
            let result = client.map(|c| c.close(rt));
            let rates = IN_FLIGHT
                .into_iter()
                .zip(rates)
                .map(|(in_flight, mut rates)| {
                    rates.sort_by(f64::total_cmp);
                    let median = match &result {
                        Err(e) if rates.len() < rounds => Err(e.clone()),
                        _ => rates
                            .get(rates.len() / 2)
                            .copied()
                            .ok_or_else(|| "no rate".to_owned()),
                    };
                    (in_flight, median)
                })
                .collect();
            (who, rates)
        })
        .collect()
}
