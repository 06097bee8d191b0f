//! Secrets stay secret, in one place. A config carries tokens in three
//! ways: values of `${VAR}` references, a URL's query values and userinfo
//! (`?apiKey=…`, `user:password@`), and header values. The config reader
//! [`register`]s each one it meets; whatever weir shows — a command line or
//! URL ([`url`], and the config's own display forms), an error, a log line
//! ([`scrub`]) — passes through here first, so a secret is never printed,
//! whichever path would print it.
//!
//! The registry is process-wide and only grows: a value once a secret stays
//! masked, even after a reload dropped it (masking too much is safe;
//! printing a token is not).

use std::sync::RwLock;

/// What a secret is shown as.
pub const MASK: &str = "***";

/// Values shorter than this are not scrubbed from free text: a short value
/// (`1`, `json`, a port) is no secret worth the noise of masking every
/// occurrence of it in every log line. Display forms mask them anyway.
pub const MIN_SECRET_LEN: usize = 6;

/// Secrets kept at most: far more than any config holds, and a bound on
/// what masking every log line costs.
pub const MAX_SECRETS: usize = 4096;

static SECRETS: RwLock<Vec<String>> = RwLock::new(Vec::new());

/// Marks `value` as a secret, to be masked wherever weir prints it. A
/// header value of the form `Scheme token` (`Bearer …`) registers the
/// token too, which is what a log would quote alone.
pub fn register(value: &str) {
    let mut values = vec![value.trim()];
    if let Some((scheme, token)) = value.trim().split_once(' ')
        && !scheme.is_empty()
        && scheme.chars().all(|c| c.is_ascii_alphabetic())
    {
        values.push(token.trim());
    }
    let Ok(mut secrets) = SECRETS.write() else {
        return;
    };
    for value in values {
        if secrets.len() >= MAX_SECRETS {
            tracing::warn!(
                max = MAX_SECRETS,
                "more secrets in the config than weir masks; later ones may be shown"
            );
            return;
        }
        if value.len() >= MIN_SECRET_LEN && !secrets.iter().any(|s| s == value) {
            secrets.push(value.to_owned());
            // Longest first: a secret holding another is masked whole.
            secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        }
    }
}

/// `text` with every registered secret in it masked.
pub fn scrub(text: &str) -> String {
    let Ok(secrets) = SECRETS.read() else {
        return text.to_owned();
    };
    let mut out = text.to_owned();
    for secret in secrets.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// A URL as weir shows it: user name, password and every query value
/// masked (the query's keys stay: they say what was configured), and the
/// fragment dropped.
pub fn url(url: &url::Url) -> String {
    let mut shown = url.clone();
    shown.set_fragment(None);
    if !shown.username().is_empty() {
        let _ = shown.set_username(MASK);
    }
    if shown.password().is_some() {
        let _ = shown.set_password(Some(MASK));
    }
    if shown.query().is_some() {
        let keys: Vec<String> = url.query_pairs().map(|(k, _)| k.into_owned()).collect();
        let mut query = shown.query_pairs_mut();
        query.clear();
        for key in &keys {
            query.append_pair(key, MASK);
        }
        drop(query);
    }
    scrub(&shown.to_string().replace("%2A%2A%2A", MASK))
}

/// Registers the parts of a URL that are secrets: its userinfo and its
/// query values.
pub fn register_url(url: &url::Url) {
    register(url.username());
    if let Some(password) = url.password() {
        register(password);
    }
    for (_, value) in url.query_pairs() {
        register(&value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A URL's userinfo and query values are masked; keys, host and path
    /// stay readable.
    #[test]
    fn urls_are_shown_without_their_secrets() {
        let url = url::Url::parse(
            "https://alice:pw-0001@mcp.example.com/mcp/?tavilyApiKey=KEY-0001&mode=x#frag",
        )
        .expect("url");
        let shown = super::url(&url);
        assert_eq!(
            shown,
            "https://***:***@mcp.example.com/mcp/?tavilyApiKey=***&mode=***"
        );
        let plain = url::Url::parse("http://127.0.0.1:9/mcp").expect("url");
        assert_eq!(super::url(&plain), "http://127.0.0.1:9/mcp");
    }

    /// Registered values are masked in free text, a bearer token alone
    /// too; short values are left alone.
    #[test]
    fn registered_secrets_are_scrubbed() {
        register("Bearer tok-redact-test-0001");
        register("abc");
        let text = "sent Bearer tok-redact-test-0001; later tok-redact-test-0001 alone; abc";
        assert_eq!(scrub(text), "sent ***; later *** alone; abc");
    }
}
