//! Compiled components on disk, so a second start of weir compiles nothing.
//!
//! An entry is keyed by the plugin file's sha256 and the engine's
//! compatibility hash (wasmtime version, target, settings): a different
//! file or engine simply misses. An entry is never trusted blindly: it
//! carries the sha256 of its own bytes, checked before wasmtime (which
//! checks its own header again) is handed it; anything that fails either
//! check is ignored, logged and rewritten. Entries are written to a
//! temporary file and renamed, so a crash never leaves half an entry.
//!
//! Loading native code from disk trusts whoever can write the directory:
//! it is created private (0700) to the user running weir.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// An on-disk cache of compiled components.
#[derive(Debug)]
pub(crate) struct CompileCache {
    dir: PathBuf,
    /// The engine part of every key.
    engine_key: String,
}

impl CompileCache {
    /// Opens (creating) the cache in `dir`. `None` if the directory cannot
    /// be made: weir then compiles every time, and says so.
    pub fn open(dir: &Path, engine: &Engine) -> Option<Self> {
        if let Err(error) = create_private_dir(dir) {
            tracing::warn!(dir = %dir.display(), %error, "compile cache unavailable; plugins will be compiled at every start");
            return None;
        }
        let mut hasher = std::hash::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Some(Self {
            dir: dir.to_owned(),
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn entry(&self, file_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{file_sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of the file with this sha256, if a valid
    /// one exists.
    pub fn get(&self, engine: &Engine, file_sha256: &str) -> Option<Component> {
        let path = self.entry(file_sha256);
        let bytes = std::fs::read(&path).ok()?;
        let reject = |why: &str| {
            tracing::warn!(entry = %path.display(), why, "ignoring compile cache entry");
            None
        };
        if bytes.len() < 32 {
            return reject("truncated");
        }
        let (sum, body) = bytes.split_at(32);
        if Sha256::digest(body).as_slice() != sum {
            return reject("checksum mismatch");
        }
        // SAFETY: `body` is a serialized component this cache wrote (its
        // checksum matches) into a directory private to this user; wasmtime
        // further checks its header against this engine.
        match unsafe { Component::deserialize(engine, body) } {
            Ok(component) => Some(component),
            Err(e) => reject(&format!("not loadable by this engine: {e}")),
        }
    }

    /// Stores a compilation; failures are logged, never fatal.
    pub fn put(&self, file_sha256: &str, component: &Component) {
        let result = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|body| {
                let path = self.entry(file_sha256);
                let tmp =
                    path.with_extension(format!("tmp{}-{}", std::process::id(), fastrand::u64(..)));
                let mut file = std::fs::File::create(&tmp)?;
                file.write_all(&Sha256::digest(&body))?;
                file.write_all(&body)?;
                file.sync_all()?;
                std::fs::rename(&tmp, &path)
            });
        if let Err(error) = result {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot write compile cache entry");
        }
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    let mode = std::fs::metadata(dir)?.permissions().mode();
    if mode & 0o022 != 0 {
        return Err(std::io::Error::other(format!(
            "{} is writable by others (mode {:o})",
            dir.display(),
            mode & 0o777
        )));
    }
    Ok(())
}

/// The default cache directory: `$XDG_CACHE_HOME/weir` or `~/.cache/weir`.
pub fn default_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|base| base.join("weir").join("compiled"))
}
