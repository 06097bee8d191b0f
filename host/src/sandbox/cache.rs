//! Compiled components on disk, so a second start of weir compiles nothing.
//!
//! An entry is keyed by the plugin file's sha256 and the engine's
//! compatibility hash (wasmtime version, target, settings): a different
//! file or engine simply misses. An entry is never trusted blindly: beside
//! it, `ENTRY.sum` holds its length and a CRC-32 over the source file's
//! sha256, the engine key and the entry's bytes, checked before wasmtime
//! (which checks its own header again) maps it. The key is inside what is
//! checked, so an entry moved or copied (with its sidecar) under another
//! plugin's name fails the check instead of running that plugin's code
//! under this one's pin. Anything that fails is ignored, logged and
//! rewritten. Entries are written to a
//! temporary file and renamed, never changed in place, so a crash never
//! leaves half an entry and a mapped entry never changes under a reader.
//!
//! A hit maps the entry rather than reading it: a Python or JS agent
//! compiles to ~35 MB, and only the code a run executes is ever paged in.
//!
//! Loading native code from disk trusts whoever can write the directory:
//! it is created private (0700) to the user running weir.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

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

    /// What ties an entry to the plugin and engine it was made for; it
    /// prefixes the bytes the checksum covers.
    fn binding(&self, file_sha256: &str) -> String {
        format!(
            "weir compile cache {SUM_VERSION}\n{file_sha256}\n{}\n",
            self.engine_key
        )
    }

    fn entry(&self, file_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{file_sha256}-{}.cwasm", self.engine_key))
    }

    /// The cached compilation of the file with this sha256, if a valid
    /// one exists.
    pub fn get(&self, engine: &Engine, file_sha256: &str) -> Option<Component> {
        let path = self.entry(file_sha256);
        // No checksum, no entry: a miss (or one from before checksums).
        let sum = std::fs::read_to_string(sum_path(&path)).ok()?;
        let reject = |why: &str| {
            tracing::warn!(entry = %path.display(), why, "ignoring compile cache entry");
            None
        };
        let Some((len, crc)) = parse_sum(&sum) else {
            return reject("unreadable checksum (or one from an older weir)");
        };
        let file = match std::fs::File::open(&path) {
            Ok(file) => file,
            Err(_) => return reject("checksum without entry"),
        };
        if file.metadata().map(|m| m.len()).ok() != Some(len) || len == 0 {
            return reject("truncated");
        }
        match crc_of(&self.binding(file_sha256), &file, len) {
            Ok(actual) if actual == crc => {}
            Ok(_) => return reject("checksum mismatch: changed, or made for another plugin"),
            Err(e) => return reject(&format!("cannot map: {e}")),
        }
        // SAFETY: the entry was written by `put` below (it matches the
        // checksum written after it) into a directory only this user can
        // write, and entries are replaced by rename, never modified in
        // place, so the mapping cannot change under wasmtime.
        match unsafe { Component::deserialize_file(engine, &path) } {
            Ok(component) => Some(component),
            Err(e) => reject(&format!("not loadable by this engine: {e}")),
        }
    }

    /// Stores a compilation. Failure only costs a recompile next time, so
    /// it is logged, not returned.
    pub fn put(&self, file_sha256: &str, component: &Component) {
        let path = self.entry(file_sha256);
        let result = component
            .serialize()
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|body| {
                write_atomically(&path, &body)?;
                let mut crc = crc32fast::Hasher::new();
                crc.update(self.binding(file_sha256).as_bytes());
                crc.update(&body);
                let sum = format!("{SUM_VERSION} {} {:08x}\n", body.len(), crc.finalize());
                write_atomically(&sum_path(&path), sum.as_bytes())
            });
        if let Err(error) = result {
            tracing::warn!(dir = %self.dir.display(), %error, "cannot write compile cache entry");
        }
    }
}

/// Where an entry's length and checksum are kept.
fn sum_path(entry: &Path) -> PathBuf {
    entry.with_extension("cwasm.sum")
}

/// The sidecar's format: sidecars of another format are misses.
const SUM_VERSION: &str = "v2";

/// `"v2 LEN CRC"` as `put` writes it.
fn parse_sum(text: &str) -> Option<(u64, u32)> {
    let mut fields = text.split_whitespace();
    if fields.next()? != SUM_VERSION {
        return None;
    }
    let len = fields.next()?.parse().ok()?;
    let crc = u32::from_str_radix(fields.next()?, 16).ok()?;
    fields.next().is_none().then_some((len, crc))
}

/// The CRC-32 of `binding` followed by the file's `len` bytes, read
/// through a mapping: no copy of a 35 MB entry, and the pages are the ones
/// wasmtime maps next.
fn crc_of(binding: &str, file: &std::fs::File, len: u64) -> std::io::Result<u32> {
    use rustix::mm::{MapFlags, ProtFlags, mmap, munmap};
    let len = usize::try_from(len).map_err(std::io::Error::other)?;
    // SAFETY: a fresh read-only private mapping of a file nobody modifies
    // in place (see `get`), read as bytes and unmapped before returning.
    unsafe {
        let base = mmap(
            std::ptr::null_mut(),
            len,
            ProtFlags::READ,
            MapFlags::PRIVATE,
            file,
            0,
        )?;
        let mut crc = crc32fast::Hasher::new();
        crc.update(binding.as_bytes());
        crc.update(std::slice::from_raw_parts(base.cast::<u8>(), len));
        let crc = crc.finalize();
        munmap(base, len)?;
        Ok(crc)
    }
}

/// Writes `bytes` to a temporary file beside `path`, syncs it, and renames
/// it over `path`.
fn write_atomically(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension(format!("tmp{}-{}", std::process::id(), fastrand::u64(..)));
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&tmp, path)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A stored entry is found again; a flipped byte, a lost checksum or a
    /// truncated entry is a miss, never a load.
    #[test]
    fn entries_round_trip_and_damage_is_a_miss() {
        let dir = std::env::temp_dir().join(format!("weir-cache-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).expect("engine");
        // The smallest component: the preamble alone.
        let empty = b"\0asm\x0d\x00\x01\x00";
        let component = Component::new(&engine, empty).expect("component");
        let cache = CompileCache::open(&dir, &engine).expect("cache");
        assert!(cache.get(&engine, "abc").is_none(), "empty cache");
        cache.put("abc", &component);
        assert!(cache.get(&engine, "abc").is_some(), "stored, found");
        assert!(cache.get(&engine, "abd").is_none(), "other key");

        let entry = cache.entry("abc");
        let good = std::fs::read(&entry).expect("entry");
        let mut bad = good.clone();
        let last = bad.len() - 1;
        bad[last] ^= 0xff;
        std::fs::write(&entry, &bad).expect("corrupt");
        assert!(cache.get(&engine, "abc").is_none(), "flipped byte");
        std::fs::write(&entry, &good[..good.len() / 2]).expect("truncate");
        assert!(cache.get(&engine, "abc").is_none(), "truncated");
        std::fs::write(&entry, &good).expect("restore");
        assert!(cache.get(&engine, "abc").is_some(), "restored");
        std::fs::remove_file(sum_path(&entry)).expect("rm sum");
        assert!(cache.get(&engine, "abc").is_none(), "no checksum");
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// An entry and its valid sidecar copied under another plugin's key
    /// are a miss: the key is part of what the checksum covers. A sidecar
    /// of the old format (no binding) is a miss too.
    #[test]
    fn a_moved_entry_is_a_miss() {
        let dir = std::env::temp_dir().join(format!("weir-cache-moved-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let mut config = wasmtime::Config::new();
        config.wasm_component_model(true);
        let engine = Engine::new(&config).expect("engine");
        let component = Component::new(&engine, b"\0asm\x0d\x00\x01\x00").expect("component");
        let cache = CompileCache::open(&dir, &engine).expect("cache");
        cache.put("hello", &component);
        let (from, to) = (cache.entry("hello"), cache.entry("fanout"));
        std::fs::copy(&from, &to).expect("copy entry");
        std::fs::copy(sum_path(&from), sum_path(&to)).expect("copy sum");
        assert!(cache.get(&engine, "hello").is_some(), "the original hits");
        assert!(cache.get(&engine, "fanout").is_none(), "the copy misses");

        let body = std::fs::read(&from).expect("entry");
        let old = format!("{} {:08x}\n", body.len(), crc32fast::hash(&body));
        std::fs::write(sum_path(&from), old).expect("old sidecar");
        assert!(cache.get(&engine, "hello").is_none(), "old format misses");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
