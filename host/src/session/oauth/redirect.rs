//! The person's side of an authorization-code flow: the authorization URL
//! shown to them (opened with `$BROWSER`, or printed on a terminal), and
//! the redirect back received on a loopback port — the native-app pattern
//! of RFC 8252, no web server of weir's own.

use std::convert::Infallible;
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};

use http_body_util::Full;
use hyper::body::Bytes;
use tokio::net::TcpListener;

/// How weir reaches a person to sign in.
#[derive(Debug, Clone, PartialEq)]
pub enum Person {
    /// `$BROWSER`: the URL is handed to this command (as its last
    /// argument, or in place of a `%s`).
    Browser(String),
    /// No browser command, but a terminal: the URL is printed there.
    Terminal,
    /// Nobody to ask (a service, a pipe): authorization needs
    /// `weir auth login` beforehand.
    Nobody,
}

impl Person {
    /// Who is there for this process.
    pub fn detect() -> Self {
        match std::env::var("BROWSER") {
            Ok(command) if !command.trim().is_empty() => Person::Browser(command),
            _ if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() => {
                Person::Terminal
            }
            _ => Person::Nobody,
        }
    }

    /// Shows `url` to the person (for `server`).
    pub fn show(&self, server: &str, url: &str) -> Result<(), String> {
        match self {
            Person::Browser(command) => {
                let mut words: Vec<String> =
                    command.split_whitespace().map(str::to_owned).collect();
                if let Some(slot) = words.iter_mut().find(|w| w.contains("%s")) {
                    *slot = slot.replace("%s", url);
                } else {
                    words.push(url.to_owned());
                }
                let (program, args) = words.split_first().ok_or("$BROWSER is empty")?;
                let mut child = tokio::process::Command::new(program)
                    .args(args)
                    .stdin(std::process::Stdio::null())
                    .stdout(std::process::Stdio::null())
                    .spawn()
                    .map_err(|e| format!("cannot start $BROWSER ({program}): {e}"))?;
                tokio::spawn(async move {
                    let _ = child.wait().await;
                });
                eprintln!("weir: signing in to {server} in your browser");
                Ok(())
            }
            Person::Terminal => {
                eprintln!(
                    "weir: to let weir use {server}, open this URL and sign in:\n\n  {url}\n"
                );
                Ok(())
            }
            Person::Nobody => Err("no browser or terminal to sign in with".into()),
        }
    }
}

/// A loopback port waiting for the authorization server's redirect.
pub struct Redirect {
    listener: TcpListener,
    uri: String,
}

impl Redirect {
    /// Listens on 127.0.0.1:`port` (any free port when `None`).
    pub async fn bind(port: Option<u16>) -> Result<Self, String> {
        let listener = TcpListener::bind(("127.0.0.1", port.unwrap_or(0)))
            .await
            .map_err(|e| {
                format!(
                    "cannot listen on 127.0.0.1:{} for the sign-in redirect: {e}",
                    port.unwrap_or(0)
                )
            })?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        Ok(Self {
            listener,
            uri: format!("http://127.0.0.1:{port}/callback"),
        })
    }

    /// The redirect URI to register and send.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// Waits for the redirect; returns its full URL (code, state, iss or
    /// error). Other requests (a favicon) get a 404 and are not it.
    pub async fn receive(self) -> Result<String, String> {
        let (sent, mut received) = tokio::sync::mpsc::channel::<String>(1);
        loop {
            let (stream, _) = tokio::select! {
                accepted = self.listener.accept() => accepted.map_err(|e| e.to_string())?,
                Some(url) = received.recv() => return Ok(url),
            };
            let sent = sent.clone();
            let base = self.uri.clone();
            let answered = Arc::new(Mutex::new(false));
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                let sent = sent.clone();
                let base = base.clone();
                let answered = answered.clone();
                async move {
                    let is_it = request.uri().path() == "/callback";
                    let url = format!("{base}?{}", request.uri().query().unwrap_or_default());
                    let failed = url::Url::parse(&url).ok().and_then(|u| {
                        u.query_pairs()
                            .find(|(k, _)| k == "error")
                            .map(|(_, v)| v.into_owned())
                    });
                    if is_it
                        && !std::mem::replace(
                            &mut *answered.lock().unwrap_or_else(|p| p.into_inner()),
                            true,
                        )
                    {
                        let _ = sent.send(url).await;
                    }
                    let (status, body) = match (is_it, failed) {
                        (false, _) => (404, "Not found.".to_owned()),
                        (true, Some(error)) => (
                            200,
                            format!("Sign-in failed ({error}). You can close this window."),
                        ),
                        (true, None) => (
                            200,
                            "Signed in: weir has what it needs. You can close this window."
                                .to_owned(),
                        ),
                    };
                    let page = format!(
                        "<!doctype html><title>weir</title><p>{}</p>",
                        html_escape(&body)
                    );
                    Ok::<_, Infallible>(
                        hyper::Response::builder()
                            .status(status)
                            .header("content-type", "text/html; charset=utf-8")
                            .body(Full::new(Bytes::from(page)))
                            .unwrap_or_default(),
                    )
                }
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    }
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The redirect's query comes back whole; a stray request does not end
    /// the wait.
    #[tokio::test]
    async fn receives_the_redirect() {
        let redirect = Redirect::bind(None).await.expect("bound");
        let uri = redirect.uri().to_owned();
        assert!(uri.starts_with("http://127.0.0.1:") && uri.ends_with("/callback"));
        let waiting = tokio::spawn(redirect.receive());
        let port = uri
            .trim_start_matches("http://127.0.0.1:")
            .trim_end_matches("/callback");
        let get = |path: String| {
            let port = port.to_owned();
            async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut stream = tokio::net::TcpStream::connect(format!("127.0.0.1:{port}"))
                    .await
                    .expect("connect");
                stream
                    .write_all(
                        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                            .as_bytes(),
                    )
                    .await
                    .expect("write");
                let mut answer = String::new();
                stream.read_to_string(&mut answer).await.expect("read");
                answer
            }
        };
        assert!(get("/favicon.ico".into()).await.starts_with("HTTP/1.1 404"));
        let page = get("/callback?code=abc&state=xyz&iss=https%3A%2F%2Fas".into()).await;
        assert!(page.contains("Signed in"), "{page}");
        let url = waiting.await.expect("joined").expect("received");
        assert_eq!(
            url,
            format!("{uri}?code=abc&state=xyz&iss=https%3A%2F%2Fas")
        );
    }
}
