//! The built-in server's key-value store, shared: one Redis hash for the
//! fleet, so a value set through one replica is read through any.

use std::sync::LazyLock;

use redis::AsyncCommands;

use super::Fleet;

/// KEYS[1]: the hash. ARGV: key, value, the most keys it may hold.
/// Returns 1 when stored, 0 when the hash is full and the key is new —
/// one atomic step, so replicas racing past the cap cannot.
const SET: &str = r"
if redis.call('HLEN', KEYS[1]) >= tonumber(ARGV[3]) and redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then
  return 0
end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
";

static SET_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SET));

/// What a shared write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The value is stored.
    Yes,
    /// The store holds `max_keys` already and this key is new.
    Full,
}

impl Fleet {
    /// The value under `key` in the shared store: `None` when Redis cannot
    /// be asked (see [`Fleet::is_shared`] to tell that from no Redis),
    /// `Some(None)` when there is no such key.
    pub async fn kv_get(&self, key: &str) -> Option<Option<String>> {
        let hash = Self::key(&["kv"]);
        let key = key.to_owned();
        self.ask(
            "kv",
            |mut redis| async move { redis.hget(&hash, &key).await },
        )
        .await
    }

    /// Stores `value` under `key`, unless the store holds `max_keys` other
    /// keys; `None` when Redis cannot be asked.
    pub async fn kv_set(&self, key: &str, value: &str, max_keys: usize) -> Option<Stored> {
        let hash = Self::key(&["kv"]);
        let stored: i64 = self
            .ask("kv", |mut redis| async move {
                SET_SCRIPT
                    .key(&hash)
                    .arg(key)
                    .arg(value)
                    .arg(max_keys)
                    .invoke_async(&mut redis)
                    .await
            })
            .await?;
        Some(if stored == 1 {
            Stored::Yes
        } else {
            Stored::Full
        })
    }
}
