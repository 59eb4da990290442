//! What login elements (`auths.loginTypes.*`) keep in the store: the
//! session signing keys, the sessions ended by logout, and the browser login
//! flows in progress. Session tokens themselves are signed and never stored;
//! these rows are what every replica sharing the store must agree on.

/// One session signing key. `Debug` never shows the secret.
#[derive(Clone, PartialEq, Eq)]
pub struct LoginKey {
    /// 1 for the first key; each rotation adds one. The newest signs.
    pub generation: i64,
    /// The key material (base64 text).
    pub secret: String,
    /// When it was created (milliseconds since the epoch); for an older key
    /// the next one's creation is when it stopped signing.
    pub created_at: i64,
}

impl std::fmt::Debug for LoginKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginKey")
            .field("generation", &self.generation)
            .field("secret", &"***")
            .field("created_at", &self.created_at)
            .finish()
    }
}

/// A browser login flow started and not finished (the OAuth `state`).
/// `Debug` never shows the state id (it is a single-use credential).
#[derive(Clone, PartialEq, Eq)]
pub struct LoginState {
    /// The random `state` value sent to the platform.
    pub state_id: String,
    /// The login element's fullName.
    pub login: String,
    /// A hash of the browser's binding cookie: the callback must come from
    /// the browser that started the flow.
    pub browser_hash: String,
    /// Where to send the browser after the login (already checked).
    pub redirect: String,
    /// When it stops being accepted (milliseconds since the epoch).
    pub expires_at: i64,
}

impl std::fmt::Debug for LoginState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginState")
            .field("state_id", &"***")
            .field("login", &self.login)
            .field("redirect", &self.redirect)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}
