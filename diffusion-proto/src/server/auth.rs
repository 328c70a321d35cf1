//! Who may connect and where randomness comes from: the [`Authenticator`] and [`Entropy`]
//! traits, with [`AllowAll`], [`UserTable`] and [`CounterEntropy`].

use std::collections::BTreeMap;
use std::fmt;

use crate::credentials::Credentials;
use crate::handshake::ConnectionParams;
use crate::handshake::ResponseCode;

/// Decides who may open a session, and who a session may become (CHANGE_PRINCIPAL,
/// RE_AUTHENTICATE). Reconnections are not authenticated again.
pub trait Authenticator {
    /// `Ok` admits; `Err(code)` refuses with that response code (usually 116). A code that
    /// opens a session (100, 105, 106) is sent as 116 instead, since a 3-byte rejection
    /// cannot carry a session.
    fn authenticate(&mut self, params: &ConnectionParams) -> Result<(), ResponseCode>;
}

impl<F> Authenticator for F
where
    F: FnMut(&ConnectionParams) -> Result<(), ResponseCode>,
{
    fn authenticate(&mut self, params: &ConnectionParams) -> Result<(), ResponseCode> {
        self(params)
    }
}

/// Admits every connection, whatever its principal and credentials.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllowAll;

impl Authenticator for AllowAll {
    fn authenticate(&mut self, _: &ConnectionParams) -> Result<(), ResponseCode> {
        Ok(())
    }
}

/// Principals with plain passwords; anonymous sessions are admitted unless
/// [`UserTable::deny_anonymous`] was called. `Debug` lists the principals only.
#[derive(Clone, Default)]
pub struct UserTable {
    users: BTreeMap<String, String>,
    deny_anonymous: bool,
}

impl UserTable {
    /// No users; anonymous sessions admitted.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds (or replaces) `principal` with `password`. An empty password matches both no
    /// credentials and an empty plain password, as the two clients send those differently.
    pub fn with_user(mut self, principal: impl Into<String>, password: impl Into<String>) -> Self {
        self.users.insert(principal.into(), password.into());
        self
    }

    /// Refuses sessions without a principal (116).
    pub fn deny_anonymous(mut self) -> Self {
        self.deny_anonymous = true;
        self
    }
}

impl fmt::Debug for UserTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserTable")
            .field("principals", &self.users.keys().collect::<Vec<_>>())
            .field("deny_anonymous", &self.deny_anonymous)
            .finish()
    }
}

impl Authenticator for UserTable {
    fn authenticate(&mut self, params: &ConnectionParams) -> Result<(), ResponseCode> {
        let admitted = match &params.principal {
            None => !self.deny_anonymous,
            Some(principal) => self
                .users
                .get(principal)
                .is_some_and(|password| match &params.credentials {
                    Credentials::Password(given) => given == password,
                    Credentials::None => password.is_empty(),
                    Credentials::Custom(_) => false,
                }),
        };
        admitted.then_some(()).ok_or(ResponseCode::AuthenticationFailed)
    }
}

/// The server's only source of randomness: session tokens and session id value parts.
pub trait Entropy {
    /// Fills `buf` with unpredictable bytes.
    fn fill(&mut self, buf: &mut [u8]);
}

impl<F: FnMut(&mut [u8])> Entropy for F {
    fn fill(&mut self, buf: &mut [u8]) {
        self(buf)
    }
}

/// A deterministic [`Entropy`] for tests and loopback servers: each call fills the buffer
/// with a counter (big-endian, repeated). Tokens from it are guessable: never use it where
/// that matters.
#[derive(Debug, Clone, Default)]
pub struct CounterEntropy {
    counter: u64,
}

impl Entropy for CounterEntropy {
    fn fill(&mut self, buf: &mut [u8]) {
        self.counter = self.counter.wrapping_add(1);
        let bytes = self.counter.to_be_bytes();
        // Filled from the end, so an 8-byte buffer reads back as the counter itself.
        for (i, b) in buf.iter_mut().rev().enumerate() {
            *b = bytes[7 - i % 8];
        }
    }
}
