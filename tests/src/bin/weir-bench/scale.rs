//! Scale: 100 / 1,000 / 10,000 concurrent runs × 10 calls.

use super::*;

impl Bench {
    /// 4. Many concurrent runs × 10 calls on one session.
    pub(super) async fn scale(&mut self) -> Result<()> {
        let sizes: &[usize] = if self.quick {
            &[100, 1000]
        } else {
            &[100, 1000, 10_000]
        };
        let server = sibling("weir-test-server")?;
        let mut figures = Vec::new();
        for &runs in sizes {
            let weir = json!({"builtin": false, "max_concurrent_runs": 1000,
                "default_policy": {"allow": ["*/*"], "max_concurrent_runs": 1000}});
            let host = Arc::new(self.host("scale", weir, json!({"test": {"command": server}}))?);
            let testbed = host.load(&plugin("testbed"))?;
            host.run(&testbed, "echo:warm:10").await?;
            reset_peak_rss();
            let t = Instant::now();
            let handles: Vec<_> = (0..runs)
                .map(|i| {
                    let (host, testbed) = (host.clone(), testbed.clone());
                    tokio::spawn(async move {
                        let started = Instant::now();
                        let out = host.run(&testbed, &format!("echo:r{i}:10")).await;
                        (started.elapsed(), out)
                    })
                })
                .collect();
            let mut latencies = Vec::with_capacity(runs);
            for h in handles {
                let (latency, out) = h.await?;
                if out? != "10 ok" {
                    bail!("a scale run returned a wrong answer");
                }
                latencies.push(latency);
            }
            let wall = t.elapsed();
            latencies.sort();
            let rate = (runs * 10) as f64 / wall.as_secs_f64();
            let sessions = host.sessions().stats()[0].sessions_opened;
            let rss = peak_rss_mib();
            self.row(
                &format!("{runs} concurrent runs × 10 calls (test server)"),
                format!("{rate:.0} calls/s"),
                format!(
                    "run p50 {:.1} ms, p99 {:.1} ms; {sessions} session; peak RSS {rss:.0} MiB",
                    percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                    percentile(&latencies, 0.99).as_secs_f64() * 1e3
                ),
            );
            figures.push(
                json!({"runs": runs, "calls_per_s": rate, "sessions": sessions, "peak_rss_mib": rss,
                "p50_ms": percentile(&latencies, 0.5).as_secs_f64() * 1e3,
                "p99_ms": percentile(&latencies, 0.99).as_secs_f64() * 1e3}),
            );
            host.shutdown().await;
        }
        self.json.insert("scale".into(), Value::Array(figures));
        Ok(())
    }
}
