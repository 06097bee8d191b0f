//! The connection storm: a new server process and `initialize` per call vs
//! weir's one session.

use super::*;

impl Bench {
    /// 2. A session per call (the anti-pattern) vs weir's one session.
    pub(super) async fn storm(&mut self, program: &Path) -> Result<()> {
        let k = if self.quick { 5 } else { 20 };
        let t = Instant::now();
        for _ in 0..k {
            let session = self.direct_session(program, &["stdio"]).await?;
            session.peer().call_tool(echo_hi()).await?;
            session.cancel().await?;
        }
        let storm_ms = t.elapsed().as_secs_f64() * 1e3 / k as f64;
        let weir = json!({"builtin": false, "default_policy": {"allow": ["*/*"], "max_calls_per_run": 1_000_000}});
        let host = self.host(
            "storm",
            weir,
            json!({"s": {"command": program, "args": ["stdio"]}}),
        )?;
        let fanout = host.load(&plugin("fanout"))?;
        let t = Instant::now();
        let n = 1000;
        host.run(
            &fanout,
            &json!({"server": "s", "tool": "echo", "arguments": {"message": "hi"}, "count": n})
                .to_string(),
        )
        .await?;
        let weir_ms = t.elapsed().as_secs_f64() * 1e3 / n as f64;
        let sessions = host.sessions().stats()[0].sessions_opened;
        self.row(
            "[everything] session per call (process + initialize)",
            format!("{storm_ms:.1} ms/call"),
            format!("{k} calls, {k} sessions"),
        );
        self.row(
            "[everything] weir, one persistent session",
            format!("{:.3} ms/call", weir_ms),
            format!(
                "{:.0}× faster; {n} calls (first includes the start), {sessions} session",
                storm_ms / weir_ms
            ),
        );
        self.json.insert(
            "storm".into(),
            json!({"session_per_call_ms": storm_ms, "weir_ms": weir_ms,
            "ratio": storm_ms / weir_ms, "storm_sessions": k, "weir_sessions": sessions}),
        );
        host.shutdown().await;
        Ok(())
    }
}
