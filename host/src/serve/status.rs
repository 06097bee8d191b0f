//! The operator's summary of a running weir — servers, tools and plugins
//! with the figures that matter — and the status page `weir serve --http`
//! shows at `/`. Read from the very metrics `/metrics` exports, so the
//! page, `weir stats` (which renders the same rows for a terminal) and a
//! Prometheus scrape can never disagree.

use std::collections::BTreeMap;

use serde::Serialize;

/// One sample of the OpenMetrics text.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub value: f64,
}

/// Reads the samples of an OpenMetrics (or Prometheus) text exposition.
/// Comments and lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(parse_line)
        .collect()
}

/// The samples of several replicas' `/metrics` as one weir's: the same
/// metric with the same labels (a `replica` label aside) summed — counts,
/// sessions, runs in flight, histogram buckets — except the oldest
/// session's age, which is the oldest of any.
pub fn merge(replicas: &[Vec<Sample>]) -> Vec<Sample> {
    let mut merged: BTreeMap<(String, BTreeMap<String, String>), f64> = BTreeMap::new();
    for sample in replicas.iter().flatten() {
        let mut labels = sample.labels.clone();
        labels.remove("replica");
        let slot = merged.entry((sample.name.clone(), labels)).or_insert(0.0);
        if sample.name == "weir_upstream_session_age_seconds" {
            *slot = slot.max(sample.value);
        } else {
            *slot += sample.value;
        }
    }
    merged
        .into_iter()
        .map(|((name, labels), value)| Sample {
            name,
            labels,
            value,
        })
        .collect()
}

/// `name{key="value",...} value` or `name value`.
fn parse_line(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = line[..name_end].to_owned();
    let mut labels = BTreeMap::new();
    let mut rest = &line[name_end..];
    if let Some(body) = rest.strip_prefix('{') {
        let mut chars = body.char_indices().peekable();
        let mut end = None;
        while let Some((start, c)) = chars.next() {
            if c == '}' {
                end = Some(start + 1);
                break;
            }
            if c == ',' || c == ' ' {
                continue;
            }
            // A key, up to `="`.
            let mut key_end = start;
            for (i, c) in chars.by_ref() {
                if c == '=' {
                    key_end = i;
                    break;
                }
            }
            let key = body[start..key_end].to_owned();
            if chars.next().map(|(_, c)| c) != Some('"') {
                return None;
            }
            let mut value = String::new();
            loop {
                match chars.next()? {
                    (_, '"') => break,
                    (_, '\\') => match chars.next()?.1 {
                        'n' => value.push('\n'),
                        other => value.push(other),
                    },
                    (_, c) => value.push(c),
                }
            }
            labels.insert(key, value);
        }
        rest = &body[end?..];
    }
    let value = rest.split_whitespace().next()?;
    let value = match value {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        v => v.parse().ok()?,
    };
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// One upstream server.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ServerRow {
    pub server: String,
    pub sessions_live: f64,
    pub sessions_opened: f64,
    pub restarts: f64,
    pub oldest_session_s: f64,
    /// Starts keep failing; calls fail fast.
    pub circuit_open: bool,
}

/// One upstream tool.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct ToolRow {
    pub server: String,
    pub tool: String,
    pub calls: f64,
    pub errors: f64,
    /// Upper bound of the histogram bucket holding the median, in ms.
    pub p50_ms: Option<f64>,
    pub p99_ms: Option<f64>,
}

/// One plugin.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct PluginRow {
    pub plugin: String,
    pub runs: f64,
    pub ok: f64,
    /// Traps and panics.
    pub traps: f64,
    /// Runs stopped by their deadline or CPU budget.
    pub timeouts: f64,
    pub denials: f64,
    pub in_flight: f64,
    pub p50_ms: Option<f64>,
}

/// The summary.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Stats {
    pub servers: Vec<ServerRow>,
    pub tools: Vec<ToolRow>,
    pub plugins: Vec<PluginRow>,
}

/// Sums up samples into rows per server, tool and plugin.
pub fn summarize(samples: &[Sample]) -> Stats {
    let label = |s: &Sample, k: &str| s.labels.get(k).cloned().unwrap_or_default();
    let mut servers: BTreeMap<String, ServerRow> = BTreeMap::new();
    let mut tools: BTreeMap<(String, String), ToolRow> = BTreeMap::new();
    let mut plugins: BTreeMap<String, PluginRow> = BTreeMap::new();
    let mut tool_buckets: BTreeMap<(String, String), Vec<(f64, f64)>> = BTreeMap::new();
    let mut run_buckets: BTreeMap<String, Vec<(f64, f64)>> = BTreeMap::new();
    for s in samples {
        let server = || {
            let name = label(s, "server");
            (
                name.clone(),
                ServerRow {
                    server: name,
                    ..Default::default()
                },
            )
        };
        let tool_key = || (label(s, "server"), label(s, "tool"));
        let plugin = label(s, "plugin");
        match s.name.as_str() {
            "weir_upstream_sessions_live" => {
                let (k, row) = server();
                servers.entry(k).or_insert(row).sessions_live = s.value;
            }
            "weir_upstream_sessions_opened_total" => {
                let (k, row) = server();
                servers.entry(k).or_insert(row).sessions_opened = s.value;
            }
            "weir_upstream_restarts_total" => {
                let (k, row) = server();
                servers.entry(k).or_insert(row).restarts = s.value;
            }
            "weir_upstream_session_age_seconds" => {
                let (k, row) = server();
                servers.entry(k).or_insert(row).oldest_session_s = s.value;
            }
            "weir_upstream_circuit_open" => {
                let (k, row) = server();
                servers.entry(k).or_insert(row).circuit_open = s.value > 0.0;
            }
            "weir_tool_calls_total" => tool_row(&mut tools, tool_key()).calls += s.value,
            "weir_tool_errors_total" => tool_row(&mut tools, tool_key()).errors += s.value,
            "weir_tool_call_duration_seconds_bucket" => {
                if let Some(le) = s.labels.get("le").and_then(|v| bucket_bound(v)) {
                    tool_buckets
                        .entry(tool_key())
                        .or_default()
                        .push((le, s.value));
                }
            }
            "weir_plugin_runs_total" => {
                let row = plugin_row(&mut plugins, plugin);
                row.runs += s.value;
                match label(s, "outcome").as_str() {
                    "ok" => row.ok += s.value,
                    "trap" | "panic" => row.traps += s.value,
                    "deadline" | "cpu" => row.timeouts += s.value,
                    _ => {}
                }
            }
            "weir_plugin_runs_in_flight" => plugin_row(&mut plugins, plugin).in_flight = s.value,
            "weir_plugin_denials_total" => plugin_row(&mut plugins, plugin).denials = s.value,
            "weir_plugin_run_duration_seconds_bucket" => {
                if let Some(le) = s.labels.get("le").and_then(|v| bucket_bound(v)) {
                    run_buckets.entry(plugin).or_default().push((le, s.value));
                }
            }
            _ => {}
        }
    }
    for (key, buckets) in &tool_buckets {
        let row = tool_row(&mut tools, key.clone());
        row.p50_ms = quantile(buckets, 0.5);
        row.p99_ms = quantile(buckets, 0.99);
    }
    for (plugin, buckets) in &run_buckets {
        plugin_row(&mut plugins, plugin.clone()).p50_ms = quantile(buckets, 0.5);
    }
    Stats {
        servers: servers.into_values().collect(),
        tools: tools.into_values().collect(),
        plugins: plugins.into_values().collect(),
    }
}

fn tool_row(
    tools: &mut BTreeMap<(String, String), ToolRow>,
    key: (String, String),
) -> &mut ToolRow {
    tools.entry(key.clone()).or_insert_with(|| ToolRow {
        server: key.0,
        tool: key.1,
        ..Default::default()
    })
}

fn plugin_row(plugins: &mut BTreeMap<String, PluginRow>, plugin: String) -> &mut PluginRow {
    plugins.entry(plugin.clone()).or_insert_with(|| PluginRow {
        plugin,
        ..Default::default()
    })
}

fn bucket_bound(le: &str) -> Option<f64> {
    match le {
        "+Inf" => Some(f64::INFINITY),
        v => v.parse().ok(),
    }
}

/// The upper bound (in ms) of the first bucket whose cumulative count
/// reaches quantile `q`; `None` with no observations.
fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let mut sorted = buckets.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total = sorted.last()?.1;
    if total <= 0.0 {
        return None;
    }
    sorted
        .iter()
        .find(|(_, count)| *count >= q * total)
        .map(|(le, _)| le * 1000.0)
}

fn fmt_ms(v: Option<f64>) -> String {
    match v {
        None => "-".into(),
        Some(v) if v.is_infinite() => "> 100 s".into(),
        Some(v) if v < 1.0 => format!("≤{v:.2} ms"),
        Some(v) => format!("≤{v:.0} ms"),
    }
}

/// The servers table's columns.
pub const SERVER_HEADER: [&str; 6] = [
    "server",
    "sessions open",
    "opened since start",
    "restarts",
    "oldest session",
    "circuit",
];
/// The tools table's columns.
pub const TOOL_HEADER: [&str; 5] = ["tool", "calls", "errors", "p50", "p99"];
/// The plugins table's columns.
pub const PLUGIN_HEADER: [&str; 8] = [
    "plugin", "runs", "ok", "traps", "timeouts", "denials", "running", "p50",
];

/// The servers table's rows, as the page and `weir stats` show them.
pub fn server_rows(stats: &Stats) -> Vec<[String; 6]> {
    stats
        .servers
        .iter()
        .map(|s| {
            [
                s.server.clone(),
                s.sessions_live.to_string(),
                s.sessions_opened.to_string(),
                s.restarts.to_string(),
                format!("{:.0} s", s.oldest_session_s),
                if s.circuit_open { "OPEN" } else { "closed" }.to_owned(),
            ]
        })
        .collect()
}

/// The tools table's rows.
pub fn tool_rows(stats: &Stats) -> Vec<[String; 5]> {
    stats
        .tools
        .iter()
        .map(|t| {
            [
                format!("{}/{}", t.server, t.tool),
                t.calls.to_string(),
                t.errors.to_string(),
                fmt_ms(t.p50_ms),
                fmt_ms(t.p99_ms),
            ]
        })
        .collect()
}

/// The plugins table's rows.
pub fn plugin_rows(stats: &Stats) -> Vec<[String; 8]> {
    stats
        .plugins
        .iter()
        .map(|p| {
            [
                p.plugin.clone(),
                p.runs.to_string(),
                p.ok.to_string(),
                p.traps.to_string(),
                p.timeouts.to_string(),
                p.denials.to_string(),
                p.in_flight.to_string(),
                fmt_ms(p.p50_ms),
            ]
        })
        .collect()
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn html_table<const N: usize>(
    out: &mut String,
    id: &str,
    header: [&str; N],
    rows: Vec<[String; N]>,
) {
    out.push_str(&format!("<table id=\"{id}\"><thead><tr>"));
    for (i, h) in header.iter().enumerate() {
        let class = if i == 0 { "" } else { " class=\"n\"" };
        out.push_str(&format!("<th{class}>{}</th>", escape(h)));
    }
    out.push_str("</tr></thead><tbody>");
    if rows.is_empty() {
        out.push_str(&format!(
            "<tr><td colspan=\"{N}\" class=\"none\">none yet</td></tr>"
        ));
    }
    for row in rows {
        out.push_str("<tr>");
        for (i, cell) in row.iter().enumerate() {
            let class = if i == 0 { "" } else { " class=\"n\"" };
            out.push_str(&format!("<td{class}>{}</td>", escape(cell)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// The figures as an HTML fragment: what the status page shows, and what
/// it fetches again to refresh itself.
pub fn render_html_fragment(stats: &Stats) -> String {
    let mut out = String::from("<h2>Servers</h2>");
    html_table(&mut out, "servers", SERVER_HEADER, server_rows(stats));
    out.push_str("<h2>Tools</h2>");
    html_table(&mut out, "tools", TOOL_HEADER, tool_rows(stats));
    out.push_str("<h2>Plugins</h2>");
    html_table(&mut out, "plugins", PLUGIN_HEADER, plugin_rows(stats));
    out
}

/// The status page: the fragment, in a page that refreshes it every two
/// seconds. No external assets: it works offline and leaks nothing.
pub fn render_html_page(stats: &Stats, version: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>weir status</title>
<style>
body{{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:62em;padding:0 1em;color:#1d2327;background:#fafafa}}
h1{{font-size:1.4em;margin:0}} h2{{font-size:1.1em;margin:1.6em 0 .4em}}
.sub{{color:#667;margin:.2em 0 1em}}
table{{border-collapse:collapse;width:100%;background:#fff;box-shadow:0 1px 2px #0002}}
th,td{{padding:.35em .7em;border-bottom:1px solid #e4e6e8;text-align:left}}
th{{background:#f0f2f4;font-weight:600}} th.n,td.n{{text-align:right;font-variant-numeric:tabular-nums}}
td.none{{color:#889;text-align:center}}
</style></head>
<body><h1>weir</h1>
<p class="sub">version {version} · one MCP session per server · refreshed every 2 s · <span id="updated">live</span></p>
<main id="stats">{fragment}</main>
<script>
setInterval(async () => {{
  try {{
    const r = await fetch("/?part=stats", {{cache: "no-store"}});
    if (r.ok) {{
      document.getElementById("stats").innerHTML = await r.text();
      document.getElementById("updated").textContent = "updated " + new Date().toLocaleTimeString();
    }}
  }} catch (e) {{
    document.getElementById("updated").textContent = "weir is not answering";
  }}
}}, 2000);
</script></body></html>
"#,
        version = escape(version),
        fragment = render_html_fragment(stats),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replicas_sum_into_one() {
        let one = parse(
            "weir_tool_calls_total{replica=\"a\",server=\"s\",tool=\"t\"} 3\n\
             weir_upstream_session_age_seconds{replica=\"a\",server=\"s\"} 10\n\
             weir_plugin_runs_in_flight{replica=\"a\",plugin=\"p\"} 1\n",
        );
        let two = parse(
            "weir_tool_calls_total{replica=\"b\",server=\"s\",tool=\"t\"} 4\n\
             weir_upstream_session_age_seconds{replica=\"b\",server=\"s\"} 25\n\
             weir_plugin_runs_in_flight{replica=\"b\",plugin=\"p\"} 2\n",
        );
        let stats = summarize(&merge(&[one, two]));
        assert_eq!(stats.tools[0].calls, 7.0);
        assert_eq!(stats.servers[0].oldest_session_s, 25.0, "the oldest of any");
        assert_eq!(stats.plugins[0].in_flight, 3.0);
    }

    /// Labels with escapes, values, infinities; and the rows built from
    /// them, with quantiles from the buckets.
    #[test]
    fn parses_and_summarizes() {
        let text = r#"# TYPE weir_tool_calls counter
weir_tool_calls_total{server="s",tool="a \"q\""} 10
weir_tool_errors_total{server="s",tool="a \"q\"",kind="timeout"} 2
weir_tool_call_duration_seconds_bucket{le="0.001",server="s",tool="a \"q\""} 4
weir_tool_call_duration_seconds_bucket{le="0.01",server="s",tool="a \"q\""} 9
weir_tool_call_duration_seconds_bucket{le="+Inf",server="s",tool="a \"q\""} 10
weir_upstream_sessions_live{server="s"} 1
weir_upstream_sessions_opened_total{server="s"} 3
weir_plugin_runs_total{plugin="p",outcome="ok"} 5
weir_plugin_runs_total{plugin="p",outcome="trap"} 1
weir_plugin_runs_total{plugin="p",outcome="deadline"} 2
weir_plugin_denials_total{plugin="p"} 7
garbage line
# EOF
"#;
        let samples = parse(text);
        assert_eq!(samples.len(), 11);
        assert_eq!(samples[0].labels["tool"], "a \"q\"");
        let stats = summarize(&samples);
        assert_eq!(stats.servers[0].sessions_opened, 3.0);
        assert_eq!(stats.servers[0].sessions_live, 1.0);
        let tool = &stats.tools[0];
        assert_eq!((tool.calls, tool.errors), (10.0, 2.0));
        assert_eq!(tool.p50_ms, Some(10.0));
        assert_eq!(tool.p99_ms, Some(f64::INFINITY));
        let plugin = &stats.plugins[0];
        assert_eq!(
            (
                plugin.runs,
                plugin.ok,
                plugin.traps,
                plugin.timeouts,
                plugin.denials
            ),
            (8.0, 5.0, 1.0, 2.0, 7.0)
        );
        let page = render_html_page(&stats, "0.1.0");
        assert!(page.contains("<td>a \"q\"</td>") || page.contains("s/a &quot;q&quot;"));
        assert!(
            !page.contains("http://") && !page.contains("https://"),
            "no external assets"
        );
    }
}
