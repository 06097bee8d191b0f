//! Instantiation: empty runs with and without the instance pool; cold
//! compile vs the compile cache.

use super::*;

impl Bench {
    /// 3. Instantiation per run, pooling vs on demand; compile vs cache.
    pub(super) async fn instantiation(&mut self) -> Result<()> {
        let n = if self.quick { 500 } else { 5000 };
        let mut figures = serde_json::Map::new();
        for pooling in [true, false] {
            let weir = json!({"builtin": false, "instance_pool": pooling, "cache_dir": false});
            let host = self.host("inst", weir, json!({}))?;
            let testbed = host.load(&plugin("testbed"))?;
            for _ in 0..50 {
                host.run(&testbed, "env").await?;
            }
            let mut each = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                host.run(&testbed, "env").await?;
                each.push(t.elapsed());
            }
            let label = if pooling {
                "pooling allocator"
            } else {
                "on-demand allocator"
            };
            let figure = self.latency_row(
                &format!("run of an empty plugin (fresh store + instance), {label}"),
                each,
            );
            figures.insert(label.into(), figure);
            // Instantiation alone: fresh store and instance from the
            // `InstancePre`, dropped without running; for a typical agent
            // (fanout, 0.25 MB) and a big one (testbed, 3.3 MB).
            for name in ["fanout", "testbed"] {
                let plugin = host.load(&plugin(name))?;
                let mut each = Vec::with_capacity(n);
                for _ in 0..n {
                    let t = Instant::now();
                    host.instantiate_only(&plugin).await?;
                    each.push(t.elapsed());
                }
                let figure =
                    self.latency_row(&format!("instantiation alone ({name}), {label}"), each);
                figures.insert(format!("instantiation only, {name}, {label}"), figure);
            }
            host.shutdown().await;
        }
        let cache = self.scratch.join("cache");
        let _ = std::fs::remove_dir_all(&cache);
        for (label, weir) in [
            (
                "cold load (compile)",
                json!({"builtin": false, "cache_dir": false}),
            ),
            (
                "load from the compile cache",
                json!({"builtin": false, "cache_dir": cache}),
            ),
        ] {
            let host = self.host("load", weir, json!({}))?;
            host.load(&plugin("testbed"))?; // fills the cache in the second case
            let mut each = Vec::new();
            for _ in 0..5 {
                let t = Instant::now();
                host.load(&plugin("testbed"))?;
                each.push(t.elapsed());
            }
            each.sort();
            let ms = percentile(&each, 0.5).as_secs_f64() * 1e3;
            self.row(
                &format!("plugin {label} (testbed, 3.3 MB)"),
                format!("{ms:.1} ms"),
                "median of 5".into(),
            );
            figures.insert(label.into(), json!({"ms": ms}));
            host.shutdown().await;
        }
        self.json
            .insert("instantiation".into(), Value::Object(figures));
        Ok(())
    }
}
