//! Topic types (the type byte of a specification) and datatypes (the names messaging and
//! fetch use), TOPICS.md §3.1, with the compatibility rule of §2.5.

/// The type of a topic: the byte of a topic specification (TOPICS §3.1, §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum TopicType {
    /// Raw bytes (14).
    Binary,
    /// One CBOR data item read as JSON (15).
    Json,
    /// A time series of events (16); its values are not covered here.
    TimeSeries,
    /// A CBOR text string (17).
    String,
    /// A CBOR integer (18).
    Int64,
    /// A CBOR float (19).
    Double,
    /// The record format of Diffusion (20); its values are not covered here.
    RecordV2,
    /// A topic of unknown type (21).
    Unknown,
}

impl TopicType {
    /// Every topic type, in code order.
    pub const ALL: [TopicType; 8] = [
        TopicType::Binary,
        TopicType::Json,
        TopicType::TimeSeries,
        TopicType::String,
        TopicType::Int64,
        TopicType::Double,
        TopicType::RecordV2,
        TopicType::Unknown,
    ];

    /// The type byte on the wire.
    pub fn code(self) -> u8 {
        match self {
            TopicType::Binary => 14,
            TopicType::Json => 15,
            TopicType::TimeSeries => 16,
            TopicType::String => 17,
            TopicType::Int64 => 18,
            TopicType::Double => 19,
            TopicType::RecordV2 => 20,
            TopicType::Unknown => 21,
        }
    }

    /// The topic type with this byte, if it is one of protocol 25/29's.
    ///
    /// ```
    /// use diffusion_proto::TopicType;
    /// assert_eq!(TopicType::from_code(15), Some(TopicType::Json));
    /// assert_eq!(TopicType::from_code(7), None);
    /// ```
    pub fn from_code(code: u8) -> Option<TopicType> {
        TopicType::ALL.into_iter().find(|t| t.code() == code)
    }

    /// The name both official clients print, e.g. `JSON`.
    pub fn name(self) -> &'static str {
        match self {
            TopicType::Binary => "BINARY",
            TopicType::Json => "JSON",
            TopicType::TimeSeries => "TIME_SERIES",
            TopicType::String => "STRING",
            TopicType::Int64 => "INT64",
            TopicType::Double => "DOUBLE",
            TopicType::RecordV2 => "RECORD_V2",
            TopicType::Unknown => "UNKNOWN",
        }
    }

    /// The datatype of this topic's values; `None` for TIME_SERIES (its event type is a
    /// property) and UNKNOWN.
    pub fn data_type(self) -> Option<DataType> {
        Some(match self {
            TopicType::Binary => DataType::Binary,
            TopicType::Json => DataType::Json,
            TopicType::String => DataType::String,
            TopicType::Int64 => DataType::Int64,
            TopicType::Double => DataType::Double,
            TopicType::RecordV2 => DataType::RecordV2,
            TopicType::TimeSeries | TopicType::Unknown => return None,
        })
    }
}

impl std::fmt::Display for TopicType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// A datatype: how a value is encoded, named as messaging and fetch name it (TOPICS §3.1,
/// §7.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum DataType {
    /// `json`: one CBOR data item.
    Json,
    /// `string`: a CBOR text string, or CBOR null for no value.
    String,
    /// `int64`: a CBOR integer, or CBOR null.
    Int64,
    /// `double`: a CBOR float, or CBOR null.
    Double,
    /// `binary`: the bytes themselves.
    Binary,
    /// `record_v2`: Diffusion's record format (not decoded by this crate).
    RecordV2,
}

impl DataType {
    /// Every datatype.
    pub const ALL: [DataType; 6] = [
        DataType::Json,
        DataType::String,
        DataType::Int64,
        DataType::Double,
        DataType::Binary,
        DataType::RecordV2,
    ];

    /// The name on the wire, e.g. `json`.
    pub fn name(self) -> &'static str {
        match self {
            DataType::Json => "json",
            DataType::String => "string",
            DataType::Int64 => "int64",
            DataType::Double => "double",
            DataType::Binary => "binary",
            DataType::RecordV2 => "record_v2",
        }
    }

    /// The datatype with this wire name; names are matched exactly (lower case).
    ///
    /// ```
    /// use diffusion_proto::DataType;
    /// assert_eq!(DataType::from_name("int64"), Some(DataType::Int64));
    /// assert_eq!(DataType::from_name("INT64"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<DataType> {
        DataType::ALL.into_iter().find(|d| d.name() == name)
    }

    /// The topic type whose values have this datatype.
    pub fn topic_type(self) -> TopicType {
        match self {
            DataType::Json => TopicType::Json,
            DataType::String => TopicType::String,
            DataType::Int64 => TopicType::Int64,
            DataType::Double => TopicType::Double,
            DataType::Binary => TopicType::Binary,
            DataType::RecordV2 => TopicType::RecordV2,
        }
    }

    /// Whether a reader of this datatype can read values of `other` (TOPICS §2.5): each
    /// reads its own; JSON also reads STRING, INT64 and DOUBLE, whose CBOR is a JSON value.
    /// BINARY is readable only as BINARY.
    ///
    /// ```
    /// use diffusion_proto::DataType;
    /// assert!(DataType::Json.can_read(DataType::Int64));
    /// assert!(!DataType::Json.can_read(DataType::Binary));
    /// assert!(!DataType::String.can_read(DataType::Json));
    /// ```
    pub fn can_read(self, other: DataType) -> bool {
        self == other
            || (self == DataType::Json
                && matches!(other, DataType::String | DataType::Int64 | DataType::Double))
    }

    /// Whether values of this datatype may change by binary delta (TOPICS §3.1): JSON,
    /// STRING, BINARY and RECORD_V2 do; INT64 and DOUBLE do not.
    pub fn supports_deltas(self) -> bool {
        !matches!(self, DataType::Int64 | DataType::Double)
    }
}

impl std::fmt::Display for DataType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_names_follow_the_table() {
        let codes: Vec<(u8, &str)> = TopicType::ALL.iter().map(|t| (t.code(), t.name())).collect();
        assert_eq!(
            codes,
            [
                (14, "BINARY"),
                (15, "JSON"),
                (16, "TIME_SERIES"),
                (17, "STRING"),
                (18, "INT64"),
                (19, "DOUBLE"),
                (20, "RECORD_V2"),
                (21, "UNKNOWN")
            ]
        );
        for t in TopicType::ALL {
            assert_eq!(TopicType::from_code(t.code()), Some(t));
        }
        assert_eq!(TopicType::from_code(13), None);
        assert_eq!(TopicType::from_code(22), None);
    }

    #[test]
    fn datatypes_round_trip_through_names_and_topic_types() {
        let names: Vec<&str> = DataType::ALL.iter().map(|d| d.name()).collect();
        assert_eq!(
            names,
            ["json", "string", "int64", "double", "binary", "record_v2"]
        );
        for d in DataType::ALL {
            assert_eq!(DataType::from_name(d.name()), Some(d));
            assert_eq!(d.topic_type().data_type(), Some(d));
        }
        assert_eq!(TopicType::TimeSeries.data_type(), None);
        assert_eq!(TopicType::Unknown.data_type(), None);
    }

    #[test]
    fn compatibility_is_exact_except_json_reading_cbor_scalars() {
        use DataType::*;
        let readable: Vec<(DataType, DataType)> = DataType::ALL
            .iter()
            .flat_map(|&r| DataType::ALL.iter().map(move |&t| (r, t)))
            .filter(|&(r, t)| r.can_read(t))
            .collect();
        assert_eq!(
            readable,
            [
                (Json, Json),
                (Json, String),
                (Json, Int64),
                (Json, Double),
                (String, String),
                (Int64, Int64),
                (Double, Double),
                (Binary, Binary),
                (RecordV2, RecordV2)
            ]
        );
        assert!(DataType::Json.supports_deltas() && DataType::Binary.supports_deltas());
        assert!(!DataType::Int64.supports_deltas() && !DataType::Double.supports_deltas());
    }
}
