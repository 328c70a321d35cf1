//! The rows of the table from what a run measured: each number with its ratio (ours against
//! the floor, each official client against ours) and its target, met or missed.

use crate::clients::{Rates, Who};
use crate::idle::IdleResult;
use crate::peers::PeerRun;
use crate::report::Row;
use crate::stats::{micros, rate, thousands, Summary};

/// Everything one run measured; each entry is a number or why there is none.
pub struct Results {
    pub pings: Vec<(Who, Result<Summary, String>)>,
    pub connects: Vec<(Who, Result<Summary, String>)>,
    pub rates: Vec<(Who, Rates)>,
    pub python: Option<PeerRun>,
    pub js: Option<PeerRun>,
    pub idle: Option<Result<IdleResult, String>>,
}

fn ratio(x: f64, of: f64) -> String {
    format!("{:.2} ×", x / of)
}

fn verdict(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "missed"
    }
}

fn failed(measurement: &str, client: &str, error: &str) -> Row {
    Row {
        measurement: measurement.into(),
        client: client.into(),
        value: "failed".into(),
        p99: "—".into(),
        ratio: "—".into(),
        target: format!("failed: {error}"),
    }
}

fn find<T>(list: &[(Who, T)], who: Who) -> Option<&T> {
    list.iter().find(|(w, _)| *w == who).map(|(_, t)| t)
}

/// The table's rows; `sessions` is how many idle sessions were asked for.
pub fn rows(r: &Results, sessions: usize) -> Vec<Row> {
    let mut rows = Vec::new();
    let ping = "ping round trip";
    let floor = find(&r.pings, Who::Floor).and_then(|s| s.as_ref().ok()).copied();
    let ours = find(&r.pings, Who::Tokio).and_then(|s| s.as_ref().ok()).copied();
    for (who, summary) in &r.pings {
        let s = match summary {
            Ok(s) => *s,
            Err(e) => {
                rows.push(failed(ping, who.label(), e));
                continue;
            }
        };
        let vs_floor = |f: Summary| {
            format!(
                "{} floor (p99 {})",
                ratio(s.p50_us, f.p50_us),
                ratio(s.p99_us, f.p99_us)
            )
        };
        // The same raw client on the adapter's runtime: what that runtime alone costs.
        let own_floor = who
            .runtime_floor()
            .and_then(|w| find(&r.pings, w))
            .and_then(|s| s.as_ref().ok());
        let (ratio_cell, target) = match (who, floor) {
            (Who::Floor, _) => ("1.00 × (the floor)".to_owned(), "—".to_owned()),
            (_, None) => ("—".to_owned(), "—".to_owned()),
            (_, Some(f)) if !who.is_ours() => (vs_floor(f), "—".to_owned()),
            (_, Some(f)) => {
                let mut cell = vs_floor(f);
                if let Some(own) = own_floor {
                    cell.push_str(&format!("; {} its runtime's floor", ratio(s.p50_us, own.p50_us)));
                }
                let target = format!("p50 ≤ 1.5 × floor: {}", verdict(s.p50_us <= 1.5 * f.p50_us));
                (cell, target)
            }
        };
        rows.push(Row {
            measurement: ping.into(),
            client: who.label().into(),
            value: micros(s.p50_us),
            p99: micros(s.p99_us),
            ratio: ratio_cell,
            target,
        });
    }
    for (run, name, factor) in [(&r.python, "Python", 5.0), (&r.js, "JavaScript", 3.0)] {
        let Some(run) = run else { continue };
        let client = format!("official {name} client {}", run.version.as_deref().unwrap_or(""));
        match (&run.pings, &run.error) {
            (Some(s), _) => {
                let (ratio_cell, target) = match ours {
                    Some(o) => (
                        format!(
                            "{} diffusion-tokio (p99 {})",
                            ratio(s.p50_us, o.p50_us),
                            ratio(s.p99_us, o.p99_us)
                        ),
                        format!(
                            "p50 ≥ {factor} × ours: {}",
                            verdict(s.p50_us >= factor * o.p50_us)
                        ),
                    ),
                    None => ("—".into(), "—".into()),
                };
                rows.push(Row {
                    measurement: ping.into(),
                    client: client.trim().into(),
                    value: micros(s.p50_us),
                    p99: micros(s.p99_us),
                    ratio: ratio_cell,
                    target,
                });
            }
            (None, e) => rows.push(failed(
                ping,
                client.trim(),
                e.as_deref().unwrap_or("no pings summary"),
            )),
        }
    }

    let connect = "connect, warm";
    let floor = find(&r.connects, Who::Floor)
        .and_then(|s| s.as_ref().ok())
        .copied();
    let ours = find(&r.connects, Who::Tokio)
        .and_then(|s| s.as_ref().ok())
        .copied();
    for (who, summary) in &r.connects {
        let label = match who {
            Who::Floor => "floor: TCP connect + WebSocket upgrade → raw echo server",
            Who::RawToServer => "raw: TCP connect + WebSocket upgrade + connection response → test server",
            other => other.label(),
        };
        match summary {
            Ok(s) => rows.push(Row {
                measurement: connect.into(),
                client: label.into(),
                value: micros(s.p50_us),
                p99: micros(s.p99_us),
                ratio: match (who, floor) {
                    (Who::Floor, _) => "1.00 × (the floor)".into(),
                    (_, Some(f)) => format!("{} floor", ratio(s.p50_us, f.p50_us)),
                    _ => "—".into(),
                },
                target: "—".into(),
            }),
            Err(e) => rows.push(failed(connect, label, e)),
        }
    }
    for (run, name) in [(&r.python, "Python"), (&r.js, "JavaScript")] {
        let Some(run) = run else { continue };
        let client = format!("official {name} client {}", run.version.as_deref().unwrap_or(""));
        match (&run.warm_connects, &run.error) {
            (Some(s), _) => rows.push(Row {
                measurement: connect.into(),
                client: client.trim().into(),
                value: micros(s.p50_us),
                p99: micros(s.p99_us),
                ratio: ours.map_or("—".into(), |o| {
                    format!("{} diffusion-tokio", ratio(s.p50_us, o.p50_us))
                }),
                target: "—".into(),
            }),
            (None, e) => rows.push(failed(
                connect,
                client.trim(),
                e.as_deref().unwrap_or("no connect samples"),
            )),
        }
    }

    let floor_rates = find(&r.rates, Who::Floor);
    for (who, rates) in &r.rates {
        for (in_flight, result) in rates {
            let measurement = format!("pipelined pings, one session, {in_flight} in flight");
            let client = match who {
                Who::Floor => "floor: raw tokio-tungstenite client → raw echo server",
                other => other.label(),
            };
            match result {
                Ok(rate_value) => {
                    let floor_rate = floor_rates
                        .and_then(|f| f.iter().find(|(n, _)| n == in_flight))
                        .and_then(|(_, r)| r.as_ref().ok());
                    rows.push(Row {
                        measurement,
                        client: client.into(),
                        value: rate(*rate_value),
                        p99: "—".into(),
                        ratio: match (who, floor_rate) {
                            (Who::Floor, _) => "1.00 × (the floor)".into(),
                            (_, Some(f)) => format!("{} floor", ratio(*rate_value, *f)),
                            _ => "—".into(),
                        },
                        target: if who.is_ours() && *in_flight == 256 {
                            format!("≥ 100 000 pings/s: {}", verdict(*rate_value >= 100_000.0))
                        } else {
                            "—".into()
                        },
                    });
                }
                Err(e) => rows.push(failed(&measurement, client, e)),
            }
        }
    }

    if let Some(idle) = &r.idle {
        let measurement = format!("memory, {} idle sessions", thousands(sessions as u64));
        let client = "diffusion-tokio (client process RSS growth ÷ sessions)";
        match idle {
            Ok(i) if i.sessions > 0 => rows.push(Row {
                measurement,
                client: client.into(),
                value: format!("{:.1} KiB/session", i.per_session_bytes / 1024.0),
                p99: "—".into(),
                ratio: format!(
                    "{} connected, {} failed, opened in {:.1} s",
                    thousands(i.sessions),
                    i.failed,
                    i.open_time.as_secs_f64()
                ),
                target: format!("≤ 16 KiB: {}", verdict(i.per_session_bytes <= 16.0 * 1024.0)),
            }),
            Ok(_) => rows.push(failed(&measurement, client, "no session connected")),
            Err(e) => rows.push(failed(&measurement, client, e)),
        }
    }
    rows
}
