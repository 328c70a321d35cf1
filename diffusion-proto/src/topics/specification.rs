//! Topic specifications (TOPICS.md §4): a topic type and a map of string properties, with
//! the well-known property keys.
//!
//! Properties keep their insertion order, which is their order on the wire; equality
//! ignores it, because a server compares specifications to answer "exists".

use bytes::{BufMut, BytesMut};

use super::codec::{put_properties, Field, PayloadError};
use super::datatype::TopicType;
use crate::wire::Reader;

/// A topic's type and properties.
///
/// ```
/// use diffusion_proto::{TopicSpecification, TopicType};
///
/// let spec = TopicSpecification::new(TopicType::Json)
///     .with_property(TopicSpecification::CONFLATION, "off")
///     .with_property(TopicSpecification::DONT_RETAIN_VALUE, "true");
/// assert!(spec.dont_retain_value() && !spec.publish_values_only());
/// assert_eq!(spec.property("CONFLATION"), Some("off"));
///
/// // Equality ignores the order of properties.
/// let same = TopicSpecification::new(TopicType::Json)
///     .with_property("DONT_RETAIN_VALUE", "true")
///     .with_property("CONFLATION", "off");
/// assert_eq!(spec, same);
/// ```
#[derive(Debug, Clone)]
pub struct TopicSpecification {
    topic_type: TopicType,
    properties: Vec<(String, String)>,
}

impl TopicSpecification {
    /// `true`/`false`: never send deltas, only whole values.
    pub const PUBLISH_VALUES_ONLY: &'static str = "PUBLISH_VALUES_ONLY";
    /// `true`/`false`: the server validates values against the type.
    pub const VALIDATE_VALUES: &'static str = "VALIDATE_VALUES";
    /// `true`/`false`: drop queued updates on unsubscription.
    pub const TIDY_ON_UNSUBSCRIBE: &'static str = "TIDY_ON_UNSUBSCRIBE";
    /// `true`/`false`: the server (and a client's cache) keep no last value.
    pub const DONT_RETAIN_VALUE: &'static str = "DONT_RETAIN_VALUE";
    /// `true`/`false`: the topic survives a server restart.
    pub const PERSISTENT: &'static str = "PERSISTENT";
    /// A removal policy expression.
    pub const REMOVAL: &'static str = "REMOVAL";
    /// `off`, `conflate`, `unsubscribe` or `always`.
    pub const CONFLATION: &'static str = "CONFLATION";
    /// `off`, `low`, `medium`, `high` (or `true`/`false`).
    pub const COMPRESSION: &'static str = "COMPRESSION";
    /// `low`, `default` or `high`.
    pub const PRIORITY: &'static str = "PRIORITY";
    /// A session-property expression naming the owner, e.g. `$Principal is 'foo'`.
    pub const OWNER: &'static str = "OWNER";
    /// The schema of a RECORD_V2 topic.
    pub const SCHEMA: &'static str = "SCHEMA";
    /// The datatype name of a TIME_SERIES topic's events.
    pub const TIME_SERIES_EVENT_VALUE_TYPE: &'static str = "TIME_SERIES_EVENT_VALUE_TYPE";
    /// The range of events a TIME_SERIES topic retains.
    pub const TIME_SERIES_RETAINED_RANGE: &'static str = "TIME_SERIES_RETAINED_RANGE";
    /// The range of events a new TIME_SERIES subscriber receives.
    pub const TIME_SERIES_SUBSCRIPTION_RANGE: &'static str = "TIME_SERIES_SUBSCRIPTION_RANGE";

    /// A specification of `topic_type` with no properties.
    pub fn new(topic_type: TopicType) -> Self {
        TopicSpecification {
            topic_type,
            properties: Vec::new(),
        }
    }

    /// This specification with `key` set to `value`.
    #[must_use]
    pub fn with_property(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.set_property(key, value);
        self
    }

    /// Sets `key` to `value`: in place when the key is present, else appended.
    pub fn set_property(&mut self, key: impl Into<String>, value: impl Into<String>) {
        let (key, value) = (key.into(), value.into());
        match self.properties.iter_mut().find(|(k, _)| *k == key) {
            Some(entry) => entry.1 = value,
            None => self.properties.push((key, value)),
        }
    }

    /// The topic type.
    pub fn topic_type(&self) -> TopicType {
        self.topic_type
    }

    /// The value of property `key`.
    pub fn property(&self, key: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The properties in wire order.
    pub fn properties(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.properties.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// Whether `PUBLISH_VALUES_ONLY` is `true`: subscribers get values, never deltas.
    pub fn publish_values_only(&self) -> bool {
        self.property(Self::PUBLISH_VALUES_ONLY) == Some("true")
    }

    /// Whether `DONT_RETAIN_VALUE` is `true`: no last value is kept.
    pub fn dont_retain_value(&self) -> bool {
        self.property(Self::DONT_RETAIN_VALUE) == Some("true")
    }

    /// Appends the wire form: type byte, then the properties map.
    pub(crate) fn encode(&self, out: &mut BytesMut) {
        out.put_u8(self.topic_type.code());
        put_properties(out, &self.properties);
    }

    /// Reads the wire form. A key given twice keeps its last value at its first place.
    pub(crate) fn decode(r: &mut Reader<'_>) -> Result<Self, PayloadError> {
        let code = r.u8().field("topic type")?;
        let topic_type = TopicType::from_code(code).ok_or(PayloadError::UnknownTopicType(code))?;
        let mut spec = TopicSpecification::new(topic_type);
        for (key, value) in r.string_map().field("topic properties")? {
            spec.set_property(key, value);
        }
        Ok(spec)
    }
}

/// Same type and same properties, in any order.
impl PartialEq for TopicSpecification {
    fn eq(&self, other: &Self) -> bool {
        self.topic_type == other.topic_type
            && self.properties.len() == other.properties.len()
            && self.properties().all(|(k, v)| other.property(k) == Some(v))
    }
}

impl Eq for TopicSpecification {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_form_keeps_insertion_order() {
        let spec = TopicSpecification::new(TopicType::String)
            .with_property(TopicSpecification::PUBLISH_VALUES_ONLY, "true")
            .with_property(TopicSpecification::TIDY_ON_UNSUBSCRIBE, "true");
        let mut out = BytesMut::new();
        spec.encode(&mut out);
        let mut expected = vec![0x11, 0x02, 0x13];
        expected.extend_from_slice(b"PUBLISH_VALUES_ONLY\x04true\x13TIDY_ON_UNSUBSCRIBE\x04true");
        assert_eq!(&out[..], expected);
        let decoded = TopicSpecification::decode(&mut Reader::new(&out));
        assert_eq!(decoded.as_ref(), Ok(&spec));
        let order: Vec<_> = decoded
            .iter()
            .flat_map(|s| s.properties().map(|(k, _)| k.to_owned()))
            .collect();
        assert_eq!(order, ["PUBLISH_VALUES_ONLY", "TIDY_ON_UNSUBSCRIBE"]);
    }

    #[test]
    fn equality_needs_the_same_type_and_values() {
        let a = TopicSpecification::new(TopicType::Json).with_property("A", "1");
        assert_ne!(
            a,
            TopicSpecification::new(TopicType::String).with_property("A", "1")
        );
        assert_ne!(
            a,
            TopicSpecification::new(TopicType::Json).with_property("A", "2")
        );
        assert_ne!(a, TopicSpecification::new(TopicType::Json));
        assert_eq!(a.clone().with_property("A", "1"), a);
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_and_unknown_types_fail() {
        let bytes = b"\x0f\x02\x01A\x011\x01A\x012";
        let spec = TopicSpecification::decode(&mut Reader::new(bytes));
        assert_eq!(spec.as_ref().map(|s| s.properties().len()), Ok(1));
        assert_eq!(
            spec.map(|s| s.property("A").map(str::to_owned)),
            Ok(Some("2".to_owned()))
        );
        assert_eq!(
            TopicSpecification::decode(&mut Reader::new(&[0x07, 0x00])),
            Err(PayloadError::UnknownTopicType(7))
        );
    }
}
