//! Credentials (SPEC §9): NONE, a plain password or custom bytes, as the raw
//! type + length + bytes structure and as the base64 `password` connection parameter.
//!
//! The secret never appears in `Debug`; there is deliberately no `Display`.

use base64::engine::general_purpose::STANDARD as BASE64;
use base64::Engine as _;
use bytes::{BufMut, BytesMut};

use crate::wire::{self, Reader, WireError};

/// What a session authenticates with.
#[derive(Clone, PartialEq, Eq, Default)]
pub enum Credentials {
    /// No credentials (anonymous, or a principal without a password).
    #[default]
    None,
    /// A plain password, sent as UTF-8.
    Password(String),
    /// Arbitrary bytes for a custom authenticator.
    Custom(Vec<u8>),
}

/// Why a `password` parameter or raw credentials could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CredentialsError {
    /// The parameter was not standard base64.
    #[error("credentials parameter is not valid base64")]
    Base64,
    /// The type byte was not 0, 1 or 2.
    #[error("unknown credentials type {0}")]
    UnknownType(u8),
    /// A plain password was not UTF-8.
    #[error("password credentials are not valid UTF-8")]
    InvalidUtf8,
    /// The structure was cut short or malformed.
    #[error("malformed credentials: {0}")]
    Wire(#[from] WireError),
    /// Bytes followed the credentials.
    #[error("{0} unexpected byte(s) after the credentials")]
    TrailingBytes(usize),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::None => f.write_str("Credentials::None"),
            Credentials::Password(_) => f.write_str("Credentials::Password(<redacted>)"),
            Credentials::Custom(b) => {
                write!(f, "Credentials::Custom(<{} bytes redacted>)", b.len())
            }
        }
    }
}

impl Credentials {
    /// A plain password. The empty password is [`Credentials::None`], as the Python client maps it.
    pub fn password(password: impl Into<String>) -> Self {
        let password = password.into();
        if password.is_empty() {
            Credentials::None
        } else {
            Credentials::Password(password)
        }
    }

    /// Custom bytes for a custom authenticator.
    pub fn custom(bytes: impl Into<Vec<u8>>) -> Self {
        Credentials::Custom(bytes.into())
    }

    /// The wire type byte: 0 NONE, 1 PLAIN_PASSWORD, 2 CUSTOM.
    pub fn type_byte(&self) -> u8 {
        match self {
            Credentials::None => 0,
            Credentials::Password(_) => 1,
            Credentials::Custom(_) => 2,
        }
    }

    /// The kind, for logs: `none`, `password` or `custom` (never the secret).
    pub fn kind(&self) -> &'static str {
        match self {
            Credentials::None => "none",
            Credentials::Password(_) => "password",
            Credentials::Custom(_) => "custom",
        }
    }

    fn secret(&self) -> &[u8] {
        match self {
            Credentials::None => &[],
            Credentials::Password(p) => p.as_bytes(),
            Credentials::Custom(b) => b,
        }
    }

    /// Appends type byte, varint length and bytes (the form inside CHANGE_PRINCIPAL).
    pub fn encode_raw(&self, out: &mut BytesMut) {
        out.put_u8(self.type_byte());
        wire::put_bytes(out, self.secret());
    }

    /// Reads the raw structure written by [`Credentials::encode_raw`].
    pub fn decode_raw(r: &mut Reader<'_>) -> Result<Self, CredentialsError> {
        let kind = r.u8()?;
        let secret = r.bytes()?;
        match kind {
            0 => Ok(Credentials::None),
            1 => std::str::from_utf8(secret)
                .map(|p| Credentials::Password(p.to_owned()))
                .map_err(|_| CredentialsError::InvalidUtf8),
            2 => Ok(Credentials::Custom(secret.to_vec())),
            other => Err(CredentialsError::UnknownType(other)),
        }
    }

    /// The `password` parameter as the Python client sends it: base64 of the raw form,
    /// and the empty string for NONE.
    ///
    /// ```
    /// use diffusion_proto::Credentials;
    /// assert_eq!(Credentials::password("bar").to_param(), "AQNiYXI=");
    /// assert_eq!(Credentials::custom(*b"bla").to_param(), "AgNibGE=");
    /// assert_eq!(Credentials::None.to_param(), "");
    /// ```
    pub fn to_param(&self) -> String {
        match self {
            Credentials::None => String::new(),
            _ => self.to_base64(),
        }
    }

    /// Base64 of the raw form, also for NONE (`AAA=`, as the JavaScript client sends it).
    pub fn to_base64(&self) -> String {
        let mut raw = BytesMut::with_capacity(self.secret().len() + 6);
        self.encode_raw(&mut raw);
        BASE64.encode(&raw)
    }

    /// Decodes a `password` parameter in any form a client sends: empty (NONE),
    /// base64 with padding, or base64 still percent-encoded is the caller's to undo.
    pub fn from_param(param: &str) -> Result<Self, CredentialsError> {
        if param.is_empty() {
            return Ok(Credentials::None);
        }
        let raw = BASE64.decode(param).map_err(|_| CredentialsError::Base64)?;
        let mut r = Reader::new(&raw);
        let creds = Credentials::decode_raw(&mut r)?;
        match r.remaining() {
            0 => Ok(creds),
            n => Err(CredentialsError::TrailingBytes(n)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn debug_hides_the_secret() {
        let shown = format!(
            "{:?} {:?}",
            Credentials::password("hunter2"),
            Credentials::custom(*b"tok3n")
        );
        assert!(!shown.contains("hunter2") && !shown.contains("tok3n"), "{shown}");
    }

    #[test]
    fn empty_password_is_none_and_null_is_aaa() {
        assert_eq!(Credentials::password(""), Credentials::None);
        assert_eq!(Credentials::None.to_base64(), "AAA=");
        assert_eq!(Credentials::from_param("AAA="), Ok(Credentials::None));
        assert_eq!(
            Credentials::from_param("AQA="),
            Ok(Credentials::Password(String::new()))
        );
        assert_eq!(Credentials::from_param("!!"), Err(CredentialsError::Base64));
        assert_eq!(
            Credentials::from_param("AwA="),
            Err(CredentialsError::UnknownType(3))
        );
    }

    fn any_credentials() -> impl Strategy<Value = Credentials> {
        prop_oneof![
            Just(Credentials::None),
            ".{1,40}".prop_map(Credentials::Password),
            proptest::collection::vec(any::<u8>(), 0..40).prop_map(Credentials::Custom),
        ]
    }

    proptest! {
        #[test]
        fn param_round_trips(c in any_credentials()) {
            prop_assert_eq!(Credentials::from_param(&c.to_param()), Ok(c.clone()));
            prop_assert_eq!(Credentials::from_param(&c.to_base64()), Ok(c));
        }

        #[test]
        fn any_text_decodes_or_errs(s in ".{0,40}") {
            let _ = Credentials::from_param(&s);
        }
    }
}
