//! Fault injection: how the test server misbehaves on purpose, at the transport only —
//! refusing or garbling connection responses, dropping connections, stalling — while the
//! protocol's own decisions stay the protocol server's.

use std::time::Instant;

use diffusion_proto::{ConnectionId, ConnectionResponse, ResponseCode};
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::conn::ConnCmd;
use crate::hub::{Hub, Phase};
use crate::log::{FaultAction, LogKind};
use crate::options::{DropKind, Fault, Malformed};

/// The faults in force.
#[derive(Debug)]
pub(crate) struct Faults {
    pub(crate) fault: Fault,
    /// Connections `DropAfter` has dropped since the fault was set.
    drops: u32,
    pub(crate) reconnect_answer: Option<ResponseCode>,
}

impl Faults {
    pub(crate) fn new(fault: Fault, reconnect_answer: Option<ResponseCode>) -> Self {
        Faults {
            fault,
            drops: 0,
            reconnect_answer,
        }
    }
}

impl Hub {
    /// Replaces the fault; message counts start again on every open connection, and a
    /// fault "after 0 messages" acts on them at once.
    pub(crate) fn set_fault(&mut self, now: Instant, fault: Fault) {
        self.faults.fault = fault;
        self.faults.drops = 0;
        let open: Vec<u64> = self.conns.keys().copied().collect();
        for conn in &open {
            if let Some(c) = self.conns.get_mut(conn) {
                c.messages = 0;
            }
        }
        for conn in open {
            self.apply_message_faults(now, conn);
        }
    }

    /// Answers a new connection's upgrade in the fault's stead (refusing it, or saying
    /// nothing at all); false when the protocol server is to answer.
    pub(crate) fn answer_upgrade_with_fault(&mut self, conn: u64, version: u8, reconnect: bool) -> bool {
        let code = match (self.faults.fault, self.faults.reconnect_answer) {
            (Fault::RejectAll(code), _) => Some((code, "reject-all")),
            (Fault::NoResponse, _) => {
                self.stall(conn, FaultAction::Silent);
                return true;
            }
            (_, Some(code)) if reconnect => Some((code.code(), "reconnect-answer")),
            _ => None,
        };
        let Some((code, fault)) = code else {
            return false;
        };
        if let Some(c) = self.conns.get_mut(&conn) {
            c.phase = Phase::Open;
        }
        let frame = vec![ConnectionResponse::PROTOCOL_BYTE, version, code];
        self.send_response(conn, frame, Some(fault.to_owned()));
        self.close(conn, DropKind::Fin, "closed after a fault's response");
        true
    }

    /// Sends a malformed version of a successful connection response, then closes, when
    /// the fault says so; false otherwise.
    pub(crate) fn replace_response(&mut self, now: Instant, conn: u64, response: &[u8]) -> bool {
        let Fault::MalformedResponse(m) = self.faults.fault else {
            return false;
        };
        if response.len() != ConnectionResponse::SUCCESS_LEN {
            return false;
        }
        let (bytes, text) = m.apply(response);
        self.shared.count(|s| s.malformed_responses += 1);
        if text {
            self.shared
                .record(Some(conn), LogKind::response(&bytes, Some(m.name().to_owned())));
            let text = String::from_utf8_lossy(&bytes).into_owned();
            self.send(conn, WsMessage::Text(text.into()));
        } else {
            self.send_response(conn, bytes, Some(Malformed::name(m).to_owned()));
        }
        self.close(conn, DropKind::Fin, "closed after a malformed response");
        // The session stays for the client's `r`, as after any lost connection.
        self.server().handle_closed(now, ConnectionId(conn));
        true
    }

    /// `DropAfter` and `Stall`, checked after the connection response, after each handled
    /// message and when the fault changes.
    pub(crate) fn apply_message_faults(&mut self, now: Instant, conn: u64) {
        if let Some(how) = self.drop_due(conn) {
            return self.drop_connection(now, conn, how);
        }
        let Some(c) = self.conns.get(&conn) else {
            return;
        };
        if let Fault::Stall { after_messages } = self.faults.fault {
            if c.phase == Phase::Open && c.messages >= after_messages {
                let after_messages = c.messages;
                self.stall(conn, FaultAction::Stalled { after_messages });
            }
        }
    }

    /// The kind of drop when `DropAfter` applies to `conn` now (the drop is then counted).
    pub(crate) fn drop_due(&mut self, conn: u64) -> Option<DropKind> {
        let c = self.conns.get(&conn)?;
        match self.faults.fault {
            Fault::DropAfter { messages, how, times }
                if c.phase == Phase::Open && c.messages >= messages && self.faults.drops < times =>
            {
                self.faults.drops += 1;
                Some(how)
            }
            _ => None,
        }
    }

    /// Drops `conn` before anything still queued for it is sent, like a network failure:
    /// what the last message caused (its answer) is lost in transit.
    pub(crate) fn drop_connection(&mut self, now: Instant, conn: u64, how: DropKind) {
        let after_messages = self.conns.get(&conn).map_or(0, |c| c.messages);
        self.shared.count(|s| s.dropped_connections += 1);
        let action = FaultAction::Dropped { how, after_messages };
        self.shared.record(Some(conn), LogKind::Fault(action));
        // Forgotten first, so that the outputs queued for it are discarded.
        self.close(conn, how, "dropped by a fault");
        // Through the protocol server, so that it keeps the session for a reconnection.
        self.server().drop_connection(now, ConnectionId(conn));
        self.pump(now);
    }

    fn stall(&mut self, conn: u64, action: FaultAction) {
        let Some(c) = self.conns.get_mut(&conn) else {
            return;
        };
        c.phase = Phase::Stalled;
        let _ = c.commands.try_send(ConnCmd::Stall);
        self.shared.count(|s| s.stalled_connections += 1);
        self.shared.record(Some(conn), LogKind::Fault(action));
    }
}
