//! Each upstream's open circuit, shared: when one replica's starts of a
//! server keep failing and its circuit opens, the others fail fast too for
//! the cool-down instead of each hammering the dead server. Asked only
//! when a replica is about to start a session — never per call.

use std::time::Duration;

use redis::AsyncCommands;

use super::Fleet;

/// A circuit another replica (or this one) opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenCircuit {
    /// The replica that opened it.
    pub replica: String,
    /// Its last start error.
    pub error: String,
    /// How long until starts may be tried again.
    pub remaining: Duration,
}

impl Fleet {
    /// Says `server`'s circuit is open for `cooldown`, after `error`.
    pub async fn open_circuit(&self, server: &str, error: &str, cooldown: Duration) {
        let key = Self::key(&["circuit", server]);
        let value = format!("{}\n{error}", self.replica());
        let ms = u64::try_from(cooldown.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        self.ask("circuit", |mut redis| async move {
            redis.pset_ex::<_, _, ()>(&key, value, ms).await
        })
        .await;
    }

    /// Says `server` started: its circuit is closed fleet-wide.
    pub async fn close_circuit(&self, server: &str) {
        let key = Self::key(&["circuit", server]);
        self.ask("circuit", |mut redis| async move {
            redis.del(&key).await.map(|_: usize| ())
        })
        .await;
    }

    /// `server`'s circuit, if some replica has it open.
    pub async fn circuit(&self, server: &str) -> Option<OpenCircuit> {
        let key = Self::key(&["circuit", server]);
        let (value, ttl): (Option<String>, i64) = self
            .ask("circuit", |mut redis| async move {
                redis::pipe()
                    .get(&key)
                    .pttl(&key)
                    .query_async(&mut redis)
                    .await
            })
            .await?;
        let (replica, error) = value?
            .split_once('\n')
            .map(|(r, e)| (r.to_owned(), e.to_owned()))?;
        Some(OpenCircuit {
            replica,
            error,
            remaining: Duration::from_millis(u64::try_from(ttl).ok()?),
        })
    }
}
