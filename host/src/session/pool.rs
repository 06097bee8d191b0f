//! A server's pool of session slots, and who shares it.
//!
//! A pool is `pool_size` slots; each call goes to the least-loaded one
//! (ties rotate, so even sequential calls spread). A server's pools are one
//! shared by every plugin, or one per plugin when its scope is `plugin`,
//! with the total bounded by `max_sessions`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::join_all;
use tokio_util::sync::CancellationToken;

use super::slot::{ServerShared, Slot};
use crate::config::{Scope, ServerConfig};
use crate::gateway::CallError;

/// `pool_size` slots of one server.
pub(crate) struct Pool {
    slots: Vec<Slot>,
    next: AtomicUsize,
    closing: CancellationToken,
}

impl Pool {
    fn new(server: &Arc<ServerShared>, size: usize, closing: CancellationToken) -> Self {
        Self {
            slots: (0..size.max(1))
                .map(|_| Slot::new(server.clone(), closing.clone()))
                .collect(),
            next: AtomicUsize::new(0),
            closing,
        }
    }

    /// The least-loaded slot; the scan starts one further each time, so
    /// ties rotate.
    pub fn pick(&self) -> &Slot {
        let n = self.slots.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        (0..n)
            .map(|i| &self.slots[(start + i) % n])
            .min_by_key(|s| s.load())
            .unwrap_or(&self.slots[0])
    }

    /// The slot for tool lists: the first, so listing never opens a second
    /// session.
    pub fn first(&self) -> &Slot {
        &self.slots[0]
    }

    fn load(&self) -> usize {
        self.slots.iter().map(Slot::load).sum()
    }

    fn pids(&self) -> impl Iterator<Item = u32> + '_ {
        self.slots.iter().filter_map(Slot::pid)
    }

    fn protocol(&self) -> Option<String> {
        self.slots.iter().find_map(Slot::protocol)
    }

    fn circuit_open(&self) -> bool {
        self.slots.iter().any(Slot::circuit_open)
    }

    fn session_ages(&self) -> impl Iterator<Item = Duration> + '_ {
        self.slots.iter().filter_map(Slot::session_age)
    }

    async fn shutdown(&self) {
        self.closing.cancel();
        join_all(self.slots.iter().map(Slot::shutdown)).await;
    }
}

/// A server's pools.
pub(crate) struct Upstream {
    server: Arc<ServerShared>,
    pool_size: usize,
    max_sessions: usize,
    pools: Pools,
    closing: CancellationToken,
}

/// Plugin-scoped pools by plugin, with when each was last used (for
/// eviction).
type PluginPools = HashMap<Arc<str>, (Arc<Pool>, Instant)>;

enum Pools {
    Shared(Arc<Pool>),
    PerPlugin(Mutex<PluginPools>),
}

impl Upstream {
    pub fn new(
        server: Arc<ServerShared>,
        config: &ServerConfig,
        closing: CancellationToken,
    ) -> Self {
        let pools = match config.scope {
            Scope::Shared => Pools::Shared(Arc::new(Pool::new(
                &server,
                config.pool_size,
                closing.child_token(),
            ))),
            Scope::Plugin => Pools::PerPlugin(Mutex::default()),
        };
        Self {
            server,
            pool_size: config.pool_size,
            max_sessions: config.max_sessions,
            pools,
            closing,
        }
    }

    pub fn shared(&self) -> &ServerShared {
        &self.server
    }

    /// The pool serving `plugin`. For a plugin-scoped server this may
    /// create one, closing the least recently used idle plugin's pool to
    /// stay within `max_sessions`.
    pub fn pool_for(&self, plugin: &Arc<str>) -> Result<Arc<Pool>, CallError> {
        let map = match &self.pools {
            Pools::Shared(pool) => return Ok(pool.clone()),
            Pools::PerPlugin(map) => map,
        };
        let mut map = map
            .lock()
            .map_err(|_| CallError::Unavailable("session registry poisoned".into()))?;
        if let Some((pool, used)) = map.get_mut(plugin) {
            *used = Instant::now();
            return Ok(pool.clone());
        }
        if self.closing.is_cancelled() {
            return Err(CallError::Unavailable("weir is shutting down".into()));
        }
        while (map.len() + 1) * self.pool_size > self.max_sessions {
            let idle = map
                .iter()
                .filter(|(_, (pool, _))| pool.load() == 0)
                .min_by_key(|(_, (_, used))| *used)
                .map(|(name, _)| name.clone());
            let Some(evict) = idle else {
                return Err(CallError::Unavailable(format!(
                    "server `{}` already has {} plugin-scoped sessions, all busy (max_sessions {})",
                    self.server.name,
                    map.len() * self.pool_size,
                    self.max_sessions
                )));
            };
            if let Some((pool, _)) = map.remove(&evict) {
                tracing::info!(server = %self.server.name, plugin = %evict, "closing an idle plugin's sessions to make room");
                self.server
                    .reaper
                    .spawn(async move { pool.shutdown().await });
            }
        }
        let pool = Arc::new(Pool::new(
            &self.server,
            self.pool_size,
            self.closing.child_token(),
        ));
        map.insert(plugin.clone(), (pool.clone(), Instant::now()));
        Ok(pool)
    }

    fn all_pools(&self) -> Vec<Arc<Pool>> {
        match &self.pools {
            Pools::Shared(pool) => vec![pool.clone()],
            Pools::PerPlugin(map) => map
                .lock()
                .map(|m| m.values().map(|(p, _)| p.clone()).collect())
                .unwrap_or_default(),
        }
    }

    /// Pids of the open sessions' processes.
    pub fn pids(&self) -> Vec<u32> {
        self.all_pools()
            .iter()
            .flat_map(|p| p.pids().collect::<Vec<_>>())
            .collect()
    }

    /// The protocol revision of some open session, if any is open.
    pub fn protocol(&self) -> Option<String> {
        self.all_pools().iter().find_map(|p| p.protocol())
    }

    /// Whether the circuit of any of its slots is open.
    pub fn circuit_open(&self) -> bool {
        self.all_pools().iter().any(|p| p.circuit_open())
    }

    /// How long each open session has been open.
    pub fn session_ages(&self) -> Vec<Duration> {
        self.all_pools()
            .iter()
            .flat_map(|p| p.session_ages().collect::<Vec<_>>())
            .collect()
    }

    pub async fn shutdown(&self) {
        self.closing.cancel();
        join_all(self.all_pools().iter().map(|p| p.shutdown())).await;
    }
}
