//! Subscription services (TOPICS.md §2): SUBSCRIBE and UNSUBSCRIBE (3, 4) from the client,
//! NOTIFY_SUBSCRIPTION (87) and NOTIFY_UNSUBSCRIPTION (42) from the server, and the
//! reasons a subscription ends.

use bytes::{BufMut, BytesMut};

use super::codec::{decode_all, read_string, EmptyPayload, Field, PayloadError, ServiceCall, ServicePayload};
use super::specification::TopicSpecification;
use crate::handshake::ProtocolVersion;
use crate::message::ServiceId;
use crate::wire::{self, Reader};

macro_rules! selector_request {
    ($(#[$doc:meta])* $name:ident, $service:expr) => {
        $(#[$doc])*
        ///
        /// Protocol 25 sends the selector alone; protocol 29 adds a subscription scope, the
        /// default scope being `""` (TOPICS §2.1).
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $name {
            /// The selector string as the application gave it (§8).
            pub selector: String,
            /// The subscription scope (protocol 29); `""` is the default scope.
            pub scope: String,
        }

        impl $name {
            /// A request for `selector` in the default scope.
            pub fn new(selector: impl Into<String>) -> Self {
                $name {
                    selector: selector.into(),
                    scope: String::new(),
                }
            }
        }

        impl ServicePayload for $name {
            fn encode(&self, out: &mut BytesMut, version: ProtocolVersion) -> Result<(), PayloadError> {
                encode_selector_scope(&self.selector, &self.scope, out, version)
            }

            fn decode(payload: &[u8], version: ProtocolVersion) -> Result<Self, PayloadError> {
                let (selector, scope) = decode_selector_scope(payload, version)?;
                Ok($name { selector, scope })
            }
        }

        impl ServiceCall for $name {
            const SERVICE: ServiceId = $service;
            type Response = EmptyPayload;
        }
    };
}

selector_request!(
    /// SUBSCRIBE (3): add a selector to the session's subscriptions.
    SubscribeRequest,
    ServiceId::SUBSCRIBE
);

selector_request!(
    /// UNSUBSCRIBE (4): remove a selector from the session's subscriptions.
    UnsubscribeRequest,
    ServiceId::UNSUBSCRIBE
);

fn encode_selector_scope(
    selector: &str,
    scope: &str,
    out: &mut BytesMut,
    version: ProtocolVersion,
) -> Result<(), PayloadError> {
    wire::put_string(out, selector);
    if version.number() >= 29 {
        wire::put_string(out, scope);
    } else if !scope.is_empty() {
        return Err(PayloadError::NotInVersion {
            what: "a subscription scope",
            version,
        });
    }
    Ok(())
}

fn decode_selector_scope(payload: &[u8], version: ProtocolVersion) -> Result<(String, String), PayloadError> {
    decode_all(payload, |r| {
        let selector = read_string(r, "selector")?;
        let scope = if version.number() >= 29 {
            read_string(r, "scope")?
        } else {
            String::new()
        };
        Ok((selector, scope))
    })
}

/// NOTIFY_SUBSCRIPTION (87), server → client: the session is subscribed to a topic, known
/// from now on by `topic_id` (TOPICS §2.2). Sent one-way (cid 0) by our server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifySubscription {
    /// The session-scoped topic id that TOPIC_VALUE and TOPIC_DELTA carry.
    pub topic_id: i32,
    /// The topic path, without leading or trailing `/`.
    pub path: String,
    /// The topic's specification.
    pub specification: TopicSpecification,
}

impl ServicePayload for NotifySubscription {
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        wire::put_varint_i32(out, self.topic_id);
        wire::put_string(out, &self.path);
        self.specification.encode(out);
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r| {
            Ok(NotifySubscription {
                topic_id: r.varint_i32().field("topic id")?,
                path: read_string(r, "topic path")?,
                specification: TopicSpecification::decode(r)?,
            })
        })
    }
}

impl ServiceCall for NotifySubscription {
    const SERVICE: ServiceId = ServiceId::NOTIFY_SUBSCRIPTION;
    type Response = EmptyPayload;
}

/// NOTIFY_UNSUBSCRIPTION (42), server → client: the session is no longer subscribed to the
/// topic `topic_id` (TOPICS §2.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyUnsubscription {
    /// The topic id bound by NOTIFY_SUBSCRIPTION.
    pub topic_id: i32,
    /// Why.
    pub reason: UnsubscribeReason,
}

impl ServicePayload for NotifyUnsubscription {
    /// A local-only reason, which never travels, is written as 4 (unknown).
    fn encode(&self, out: &mut BytesMut, _version: ProtocolVersion) -> Result<(), PayloadError> {
        wire::put_varint_i32(out, self.topic_id);
        out.put_u8(self.reason.wire_id().unwrap_or(UNKNOWN_REASON));
        Ok(())
    }

    fn decode(payload: &[u8], _version: ProtocolVersion) -> Result<Self, PayloadError> {
        decode_all(payload, |r: &mut Reader<'_>| {
            Ok(NotifyUnsubscription {
                topic_id: r.varint_i32().field("topic id")?,
                reason: UnsubscribeReason::from_wire(r.u8().field("unsubscription reason")?),
            })
        })
    }
}

impl ServiceCall for NotifyUnsubscription {
    const SERVICE: ServiceId = ServiceId::NOTIFY_UNSUBSCRIPTION;
    type Response = EmptyPayload;
}

const UNKNOWN_REASON: u8 = 4;

/// Why a subscription ended (TOPICS §2.3), with the local-only reason of a reconnection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum UnsubscribeReason {
    /// 0: the session unsubscribed itself.
    Requested,
    /// 1: another session or the server unsubscribed it.
    Control,
    /// 2: the topic was removed.
    Removal,
    /// 3: the session lost permission to read the topic.
    Authorization,
    /// 4, or a byte no client knows: unknown.
    Unknown,
    /// 5: the server dropped the subscription because of a backlog.
    BackPressure,
    /// 6: session-tree branch mappings changed.
    BranchMappings,
    /// Local only, never on the wire: the client dropped its topics after reconnecting
    /// with message loss and awaits the server's notifications again (TOPICS §2.6).
    SubscriptionRefresh,
}

impl UnsubscribeReason {
    /// The reason of a wire byte; unknown bytes are [`UnsubscribeReason::Unknown`].
    pub fn from_wire(byte: u8) -> UnsubscribeReason {
        match byte {
            0 => UnsubscribeReason::Requested,
            1 => UnsubscribeReason::Control,
            2 => UnsubscribeReason::Removal,
            3 => UnsubscribeReason::Authorization,
            5 => UnsubscribeReason::BackPressure,
            6 => UnsubscribeReason::BranchMappings,
            _ => UnsubscribeReason::Unknown,
        }
    }

    /// The wire byte; `None` for the local-only [`UnsubscribeReason::SubscriptionRefresh`].
    pub fn wire_id(self) -> Option<u8> {
        Some(match self {
            UnsubscribeReason::Requested => 0,
            UnsubscribeReason::Control => 1,
            UnsubscribeReason::Removal => 2,
            UnsubscribeReason::Authorization => 3,
            UnsubscribeReason::Unknown => UNKNOWN_REASON,
            UnsubscribeReason::BackPressure => 5,
            UnsubscribeReason::BranchMappings => 6,
            UnsubscribeReason::SubscriptionRefresh => return None,
        })
    }

    /// The lower-case name the command-line tool prints, e.g. `back_pressure`.
    ///
    /// ```
    /// use diffusion_proto::UnsubscribeReason;
    /// assert_eq!(UnsubscribeReason::from_wire(2).name(), "removal");
    /// assert_eq!(UnsubscribeReason::from_wire(99).name(), "unknown");
    /// ```
    pub fn name(self) -> &'static str {
        match self {
            UnsubscribeReason::Requested => "requested",
            UnsubscribeReason::Control => "control",
            UnsubscribeReason::Removal => "removal",
            UnsubscribeReason::Authorization => "authorization",
            UnsubscribeReason::Unknown => "unknown",
            UnsubscribeReason::BackPressure => "back_pressure",
            UnsubscribeReason::BranchMappings => "branch_mappings",
            UnsubscribeReason::SubscriptionRefresh => "subscription_refresh",
        }
    }
}

impl std::fmt::Display for UnsubscribeReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::topics::datatype::TopicType;
    use proptest::prelude::*;

    const V25: ProtocolVersion = ProtocolVersion::V25;
    const V29: ProtocolVersion = ProtocolVersion::V29;

    #[test]
    fn scope_exists_only_in_protocol_29() {
        let request = SubscribeRequest::new("?t//");
        assert_eq!(
            request.to_bytes(V25).map(|b| b.to_vec()),
            Ok(b"\x04?t//".to_vec())
        );
        assert_eq!(
            request.to_bytes(V29).map(|b| b.to_vec()),
            Ok(b"\x04?t//\x00".to_vec())
        );
        assert_eq!(
            UnsubscribeRequest::decode(b"\x04?t//\x00", V29),
            Ok(UnsubscribeRequest::new("?t//"))
        );
        assert_eq!(
            UnsubscribeRequest::decode(b"\x04?t//\x00", V25),
            Err(PayloadError::TrailingBytes { len: 1 })
        );
        let scoped = SubscribeRequest {
            scope: "s".into(),
            ..SubscribeRequest::new(">a")
        };
        assert!(matches!(
            scoped.to_bytes(V25),
            Err(PayloadError::NotInVersion { .. })
        ));
    }

    #[test]
    fn reasons_name_every_wire_byte() {
        let names: Vec<&str> = (0..=7).map(|b| UnsubscribeReason::from_wire(b).name()).collect();
        assert_eq!(
            names,
            [
                "requested",
                "control",
                "removal",
                "authorization",
                "unknown",
                "back_pressure",
                "branch_mappings",
                "unknown"
            ]
        );
        assert_eq!(
            UnsubscribeReason::SubscriptionRefresh.to_string(),
            "subscription_refresh"
        );
        for byte in 0..=6 {
            assert_eq!(UnsubscribeReason::from_wire(byte).wire_id(), Some(byte));
        }
        let local = NotifyUnsubscription {
            topic_id: 1,
            reason: UnsubscribeReason::SubscriptionRefresh,
        };
        assert_eq!(local.to_bytes(V25).map(|b| b.to_vec()), Ok(vec![1, 4]));
    }

    proptest! {
        #[test]
        fn notifications_round_trip(topic_id: i32, path in ".{0,12}", code in 14u8..=21,
                                    props in proptest::collection::vec(("[A-Z_]{1,8}", ".{0,4}"), 0..4), reason in 0u8..=6) {
            let mut specification = TopicSpecification::new(TopicType::from_code(code).unwrap_or(TopicType::Json));
            for (k, v) in props {
                specification.set_property(k, v);
            }
            let notify = NotifySubscription { topic_id, path, specification };
            let bytes = notify.to_bytes(V29);
            prop_assert_eq!(bytes.clone().and_then(|b| NotifySubscription::decode(&b, V25)), Ok(notify));
            let gone = NotifyUnsubscription { topic_id, reason: UnsubscribeReason::from_wire(reason) };
            prop_assert_eq!(gone.to_bytes(V25).and_then(|b| NotifyUnsubscription::decode(&b, V29)), Ok(gone));
        }

        #[test]
        fn any_payload_decodes_or_fails(payload in proptest::collection::vec(any::<u8>(), 0..40)) {
            for version in [V25, V29] {
                let _ = SubscribeRequest::decode(&payload, version);
                let _ = NotifySubscription::decode(&payload, version);
                let _ = NotifyUnsubscription::decode(&payload, version);
            }
        }
    }
}
