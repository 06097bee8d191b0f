//! `weir auth`: signing in to remote servers behind OAuth ahead of time
//! (for a `weir serve` that will run where no one can sign in), seeing
//! which sign-ins weir holds, and forgetting one. Tokens stay in weir's
//! state directory; nothing here prints one.

use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use weir_host::config::{Config, Transport};
use weir_host::metrics::Metrics;
use weir_host::session::oauth::{
    Authorizer, OAuthTallies, Person, SignedIn, TokenStore, default_state_dir,
};

/// The OAuth client of remote server `name` of `config`.
fn authorizer(config: &Config, name: &str, person: Person) -> Result<Authorizer> {
    let server = config.servers.get(name).with_context(|| {
        let remote: Vec<&str> = remote_servers(config).map(|(n, _)| n).collect();
        format!(
            "no server named `{name}` in the config (remote servers: {})",
            if remote.is_empty() {
                "none".to_owned()
            } else {
                remote.join(", ")
            }
        )
    })?;
    let Transport::Http(http) = &server.transport else {
        bail!("`{name}` is not a remote server (no \"url\"): it needs no sign-in");
    };
    if http.headers.contains_key("authorization") {
        bail!(
            "`{name}` sends its own Authorization header (\"headers\" in the config), so weir \
             does not use OAuth for it"
        );
    }
    let state = state_dir()?;
    let (refreshes, failures) = Metrics::new().oauth_counters(name);
    Ok(Authorizer::new(
        name,
        &http.url,
        (*http.oauth).clone(),
        &state,
        person,
        OAuthTallies {
            refreshes,
            failures,
        },
    ))
}

fn state_dir() -> Result<std::path::PathBuf> {
    default_state_dir().context("no state directory for tokens: set WEIR_STATE_DIR or HOME")
}

fn remote_servers(config: &Config) -> impl Iterator<Item = (&str, &weir_host::config::HttpServer)> {
    config
        .servers
        .iter()
        .filter_map(|(name, s)| match &s.transport {
            Transport::Http(h) => Some((name.as_str(), h)),
            _ => None,
        })
}

/// `weir auth login NAME`.
pub async fn login(config: &Config, name: &str) -> Result<ExitCode> {
    // Whoever typed this is there: with no browser command, the URL goes
    // to the terminal (stderr) even if stdin is not one.
    let person = match Person::detect() {
        Person::Nobody => Person::Terminal,
        person => person,
    };
    let authorizer = Arc::new(authorizer(config, name, person)?);
    let stored = authorizer
        .login()
        .await
        .map_err(|e| anyhow::anyhow!("{}", weir_host::redact::scrub(&e.to_string())))
        .with_context(|| format!("signing in to `{name}`"))?;
    println!("signed in to {name}: {}", describe(&SignedIn::of(&stored)));
    println!("tokens kept in {}", authorizer.store().path().display());
    Ok(ExitCode::SUCCESS)
}

/// `weir auth status`: every remote server, signed in or not.
pub fn status(config: &Config) -> Result<ExitCode> {
    let state = state_dir()?;
    let mut any = false;
    for (name, http) in remote_servers(config) {
        any = true;
        let line = if http.headers.contains_key("authorization") {
            "static Authorization header (no OAuth)".to_owned()
        } else {
            match TokenStore::new(&state, name, http.url.as_str()).read() {
                Ok(Some(stored)) => describe(&SignedIn::of(&stored)),
                Ok(None) => format!("not signed in (run `weir auth login {name}` if it needs it)"),
                Err(error) => format!("error: {error}"),
            }
        };
        println!("{name:<20} {line}");
    }
    if !any {
        println!("no remote servers in the config");
    }
    Ok(ExitCode::SUCCESS)
}

/// `weir auth logout NAME`: forgets the server's tokens.
pub fn logout(config: &Config, name: &str) -> Result<ExitCode> {
    let authorizer = authorizer(config, name, Person::Nobody)?;
    let removed = authorizer.store().remove().map_err(anyhow::Error::msg)?;
    if removed {
        println!("signed out of {name}: its tokens are deleted");
    } else {
        println!("{name}: weir held no tokens for it");
    }
    Ok(ExitCode::SUCCESS)
}

/// One line of status: who, client, issuer, scopes, expiry.
fn describe(signed: &SignedIn) -> String {
    let mut parts = vec![match &signed.who {
        Some(who) => format!("as {who}"),
        None => "signed in".to_owned(),
    }];
    parts.push(format!("client {}", signed.client_id));
    if let Some(issuer) = &signed.issuer {
        parts.push(format!("issuer {issuer}"));
    }
    parts.push(if signed.scopes.is_empty() {
        "no scopes".to_owned()
    } else {
        format!("scopes {}", signed.scopes.join(" "))
    });
    parts.push(match signed.expires_in {
        Some(secs) if secs <= 0 && signed.refreshable => {
            "token expired (refreshed at next use)".to_owned()
        }
        Some(secs) if secs <= 0 => "token expired (sign in again)".to_owned(),
        Some(secs) => format!(
            "token expires in {}",
            humantime::format_duration(std::time::Duration::from_secs(secs as u64))
        ),
        None => "token expiry not said".to_owned(),
    });
    parts.join(", ")
}
