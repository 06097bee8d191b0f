//! `weir stats`: the operator's summary of a running `weir serve`, fetched
//! from its `/metrics` and drawn as tables for a terminal. The summary
//! itself is the status page's ([`weir_host::serve::status`]).

use weir_host::serve::status::{
    PLUGIN_HEADER, SERVER_HEADER, Stats, TOOL_HEADER, plugin_rows, server_rows, tool_rows,
};

/// The summary as tables, for a terminal.
pub fn render_text(stats: &Stats) -> String {
    let mut out = String::from("Servers\n");
    crate::doctor::table(&mut out, SERVER_HEADER, &server_rows(stats));
    out.push_str("\nTools\n");
    crate::doctor::table(&mut out, TOOL_HEADER, &tool_rows(stats));
    out.push_str("\nPlugins\n");
    crate::doctor::table(&mut out, PLUGIN_HEADER, &plugin_rows(stats));
    out
}

/// Fetches `base` + `/metrics` from a running `weir serve` (plain HTTP,
/// as weir serves it).
pub async fn fetch_metrics(base: &str, token: Option<&str>) -> Result<String, String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let authority = base
        .strip_prefix("http://")
        .ok_or_else(|| format!("{base:?}: give an http:// URL (weir serves plain HTTP)"))?
        .trim_end_matches('/');
    let authority = authority.split('/').next().unwrap_or(authority);
    let mut stream = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio::net::TcpStream::connect(authority),
    )
    .await
    .map_err(|_| format!("no answer from {authority} within 10 s"))?
    .map_err(|e| format!("cannot connect to {authority}: {e} (is `weir serve --http` running?)"))?;
    let authorization = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /metrics HTTP/1.1\r\nHost: {authority}\r\n{authorization}Connection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("cannot send the request: {e}"))?;
    let mut reply = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut reply),
    )
    .await
    .map_err(|_| "the reply did not end within 10 s".to_owned())?
    .map_err(|e| format!("cannot read the reply: {e}"))?;
    let reply = String::from_utf8_lossy(&reply);
    let (head, body) = reply
        .split_once("\r\n\r\n")
        .ok_or("the reply is not HTTP")?;
    let status = head.lines().next().unwrap_or("");
    if status.contains(" 401 ") {
        return Err(format!(
            "{base}/metrics needs a token (weir.auth.protect_status): give --token or WEIR_STATS_TOKEN"
        ));
    }
    if !status.contains(" 200 ") {
        return Err(format!("{base}/metrics answered `{status}`"));
    }
    Ok(body.to_owned())
}
