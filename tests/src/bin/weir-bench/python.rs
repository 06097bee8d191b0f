//! The Python stack, when `bench/.venv` has it, against weir.

use super::*;

impl Bench {
    /// 5. The Python stack against the same server, if installed.
    pub(super) async fn python(&mut self, program: &Path) -> Result<()> {
        let python = self.root.join("bench/.venv/bin/python");
        if !python.exists() {
            self.row(
                "Python stack",
                "skipped".into(),
                "bench/.venv missing: run scripts/bench".into(),
            );
            return Ok(());
        }
        let out = tokio::process::Command::new(python)
            .arg(self.root.join("bench/python_bench.py"))
            .arg(program)
            .arg(if self.quick { "quick" } else { "full" })
            .stderr(Stdio::inherit())
            .output()
            .await?;
        if !out.status.success() {
            bail!("python_bench.py failed: {}", out.status);
        }
        let results: Value = serde_json::from_slice(&out.stdout)?;
        for (key, label) in [
            ("mcp_sdk", "Python mcp SDK, one ClientSession"),
            (
                "langchain_session",
                "langchain-mcp-adapters, persistent session",
            ),
            (
                "langchain_get_tools",
                "langchain-mcp-adapters, get_tools() per call",
            ),
        ] {
            if let Some(r) = results.get(key) {
                self.row(
                    &format!("[everything] {label}"),
                    format!("{:.0} calls/s", r["calls_per_s"].as_f64().unwrap_or(0.0)),
                    format!(
                        "{:.3} ms/call, {} calls",
                        r["ms_per_call"].as_f64().unwrap_or(0.0),
                        r["calls"]
                    ),
                );
            }
        }
        if let (Some(weir), Some(sdk), Some(lc)) = (
            self.json
                .get("overhead_everything")
                .and_then(|o| o["plugin_us_per_call"].as_f64()),
            results
                .pointer("/mcp_sdk/ms_per_call")
                .and_then(Value::as_f64),
            results
                .pointer("/langchain_session/ms_per_call")
                .and_then(Value::as_f64),
        ) {
            let weir_ms = weir / 1e3;
            self.row(
                "weir vs Python mcp SDK (sequential)",
                format!("{:.1}×", sdk / weir_ms),
                String::new(),
            );
            self.row(
                "weir vs langchain persistent session (sequential)",
                format!("{:.1}×", lc / weir_ms),
                String::new(),
            );
        }
        self.json.insert("python".into(), results);
        Ok(())
    }
}
