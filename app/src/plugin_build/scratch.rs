//! A build's scratch directory holding what weir gives every non-Rust
//! build: its own WIT (so a component is built against exactly the world
//! this weir links) and, for Python, the guest SDK. Removed when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use super::BuildError;

/// The world weir links plugins against, as built into this binary.
const AGENT_WIT: &str = include_str!("../../../wit/agent.wit");
/// The world's name in `AGENT_WIT`.
pub(super) const WORLD: &str = "agent";

pub(super) struct Scratch {
    root: PathBuf,
}

impl Scratch {
    pub(super) fn new() -> Result<Self, BuildError> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let root = std::env::temp_dir().join(format!(
            "weir-build-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let scratch = Self { root };
        scratch.write("wit/agent.wit", AGENT_WIT)?;
        Ok(scratch)
    }

    /// Writes `contents` at `relative` inside the scratch directory.
    pub(super) fn write(&self, relative: &str, contents: &str) -> Result<PathBuf, BuildError> {
        let path = self.root.join(relative);
        let io = |source| BuildError::Copy {
            path: path.clone(),
            source,
        };
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&path, contents).map_err(io)?;
        Ok(path)
    }

    pub(super) fn path(&self, relative: &str) -> PathBuf {
        self.root.join(relative)
    }

    pub(super) fn wit(&self) -> PathBuf {
        self.root.join("wit")
    }

    pub(super) fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}
