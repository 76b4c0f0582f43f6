//! Secret values: [`SecretString`], which never shows itself, the rule that makes token-like env
//! names secret, and the scrubbing of secret values out of free text.

use std::fmt;

use serde::{Serialize, Serializer};

/// What secret values are shown as.
pub const REDACTED: &str = "<redacted>";

/// A string that never shows itself: `Debug`, `Display` and `Serialize` print `<redacted>`.
/// The value is reachable only through [`SecretString::expose`].
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        SecretString(value.into())
    }

    /// The secret value. Pass it to the process that needs it; never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl fmt::Display for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

impl Serialize for SecretString {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(REDACTED)
    }
}

/// Whether an env name looks like it holds a credential: `*_TOKEN`, `*_KEY`, `*_SECRET`,
/// `*PASSWORD*` (and bare `TOKEN`, `KEY`, `SECRET`), any case. Such envs are treated as secrets.
///
/// ```
/// use skyplan_spec::is_secret_env;
/// assert!(is_secret_env("HF_TOKEN") && is_secret_env("aws_secret_access_key") && is_secret_env("DB_PASSWORD_FILE"));
/// assert!(!is_secret_env("MODEL_NAME") && !is_secret_env("TOKENIZER"));
/// ```
pub fn is_secret_env(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    upper.ends_with("_TOKEN")
        || upper.ends_with("_KEY")
        || upper.ends_with("_SECRET")
        || upper.contains("PASSWORD")
        || matches!(upper.as_str(), "TOKEN" | "KEY" | "SECRET")
}

/// Replaces every occurrence of each secret value in `text` with `<redacted>` (longest values
/// first, empty values ignored). For log lines and other text that might echo a secret.
///
/// ```
/// use skyplan_spec::redact_text;
/// assert_eq!(redact_text("login hf_abc ok", &["hf_abc"]), "login <redacted> ok");
/// ```
pub fn redact_text(text: &str, secrets: &[&str]) -> String {
    let mut values: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    values.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_string();
    for value in values {
        if out.contains(value) {
            out = out.replace(value, REDACTED);
        }
    }
    out
}
