//! The built-in services: USER_PING, GET_OWN_SESSION_PROPERTIES, CHANGE_PRINCIPAL and
//! RE_AUTHENTICATE; registered services go to the caller, any other gets "Unknown service".

use bytes::{Bytes, BytesMut};

use super::{ConnectionId, Server, ServerEvent, ServerEventKind};
use crate::credentials::Credentials;
use crate::handshake::ConnectionParams;
use crate::handshake::SessionId;
use crate::message::{ErrorReason, Message, ServiceId};
use crate::wire::{self, Reader};

impl Server {
    pub(super) fn service_request(
        &mut self,
        conn: ConnectionId,
        id: SessionId,
        service: ServiceId,
        cid: i64,
        payload: Bytes,
    ) {
        if service != ServiceId::USER_PING && self.services.contains(&service) {
            self.event(ServerEvent {
                conn: Some(conn),
                session_id: Some(id),
                kind: ServerEventKind::ServiceRequest {
                    service,
                    cid,
                    payload,
                },
            });
            return;
        }
        if Self::is_topic_service(service) {
            return self.topic_request(conn, id, service, cid, payload);
        }
        let reply = match service {
            ServiceId::USER_PING => {
                if cid != 0 {
                    if let Some(session) = self.sessions.get_mut(&id) {
                        session.info.stats.user_pings_answered += 1;
                    }
                }
                Message::ServiceResponse {
                    cid,
                    payload: Bytes::new(),
                }
            }
            ServiceId::GET_OWN_SESSION_PROPERTIES => Message::ServiceResponse {
                cid,
                payload: self.properties_payload(id),
            },
            ServiceId::CHANGE_PRINCIPAL | ServiceId::RE_AUTHENTICATE => {
                self.change_principal(conn, id, service, cid, &payload)
            }
            _ => {
                if let Some(session) = self.sessions.get_mut(&id) {
                    session.info.stats.unknown_services += 1;
                }
                self.event(ServerEvent {
                    conn: Some(conn),
                    session_id: Some(id),
                    kind: ServerEventKind::UnknownService { service, cid },
                });
                Message::ServiceError {
                    cid,
                    description: format!("Unknown service: {}", service.0),
                    reason: ErrorReason::COMMUNICATION_FAILURE,
                }
            }
        };
        // cid 0 is one-way: the JavaScript client does not answer it either.
        if cid != 0 {
            self.reply(id, reply);
        }
    }

    /// `01` + map: the fixed properties a session always has, then the proposed ones.
    fn properties_payload(&self, id: SessionId) -> Bytes {
        let mut out = BytesMut::new();
        let Some(session) = self.sessions.get(&id) else {
            wire::put_bool(&mut out, false);
            return out.freeze();
        };
        let info = &session.info;
        let id_text = id.to_string();
        let fixed = [
            ("$SessionId", id_text.as_str()),
            ("$Principal", info.principal.as_deref().unwrap_or_default()),
            ("$ClientType", info.client_type.as_str()),
        ];
        let entries: Vec<(&str, &str)> = fixed
            .into_iter()
            .chain(
                info.properties
                    .iter()
                    .filter(|(k, _)| !fixed.iter().any(|(f, _)| f == k)),
            )
            .collect();
        wire::put_bool(&mut out, true);
        wire::put_string_map(&mut out, entries.into_iter());
        out.freeze()
    }

    /// CHANGE_PRINCIPAL / RE_AUTHENTICATE: the boolean answer, or INVALID_DATA.
    fn change_principal(
        &mut self,
        conn: ConnectionId,
        id: SessionId,
        service: ServiceId,
        cid: i64,
        payload: &[u8],
    ) -> Message {
        let request = match decode_principal_change(service, payload) {
            Ok(request) => request,
            Err(e) => {
                return Message::ServiceError {
                    cid,
                    description: format!("malformed {service} request: {e}"),
                    reason: ErrorReason::INVALID_DATA,
                }
            }
        };
        let Some(session) = self.sessions.get(&id) else {
            return Message::ServiceError {
                cid,
                description: "no such session".to_owned(),
                reason: ErrorReason::NO_SUCH_SESSION,
            };
        };
        let info = &session.info;
        let mut params = ConnectionParams::new(info.version);
        params.client_type = info.client_type.clone();
        params.capabilities = info.capabilities;
        params.reconnect_timeout_ms = u64::try_from(info.reconnect_timeout.as_millis()).unwrap_or(u64::MAX);
        params.principal = Some(request.principal).filter(|p| !p.is_empty());
        params.credentials = request.credentials;
        params.properties = info.properties.clone();
        for (k, v) in request.properties {
            params.properties.set(k, v);
        }
        let admitted = self.authenticator.authenticate(&params).is_ok();
        if admitted {
            if let Some(session) = self.sessions.get_mut(&id) {
                session.info.principal = params.principal.clone();
                session.info.properties = params.properties;
            }
            self.event(ServerEvent {
                conn: Some(conn),
                session_id: Some(id),
                kind: ServerEventKind::PrincipalChanged {
                    principal: params.principal,
                },
            });
        }
        let mut out = BytesMut::with_capacity(1);
        wire::put_bool(&mut out, admitted);
        Message::ServiceResponse {
            cid,
            payload: out.freeze(),
        }
    }
}

struct PrincipalChange {
    principal: String,
    credentials: Credentials,
    properties: Vec<(String, String)>,
}

fn decode_principal_change(service: ServiceId, payload: &[u8]) -> Result<PrincipalChange, String> {
    let mut r = Reader::new(payload);
    let principal = r.string().map_err(|e| e.to_string())?.to_owned();
    let credentials = Credentials::decode_raw(&mut r).map_err(|e| e.to_string())?;
    let properties = if service == ServiceId::RE_AUTHENTICATE {
        r.string_map().map_err(|e| e.to_string())?
    } else {
        Vec::new()
    };
    Ok(PrincipalChange {
        principal,
        credentials,
        properties,
    })
}
