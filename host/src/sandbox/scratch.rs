//! The one filesystem a plugin may ever see: a private, empty directory
//! made for one run (when its policy grants one), preopened as `/scratch`,
//! and deleted with everything in it when the run ends.

use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, DirBuilder};

/// Where the guest sees its scratch directory.
pub(crate) const GUEST_PATH: &str = "/scratch";

/// A run's scratch directory; removed on drop.
#[derive(Debug)]
pub(crate) struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    /// Creates `weir-scratch-<random>` inside `root`, private to this user.
    /// It is created through a capability on `root`, so the name cannot
    /// lead anywhere else.
    pub fn create(root: &Path, plugin: &str) -> std::io::Result<Self> {
        use cap_std::fs::DirBuilderExt;
        let parent = Dir::open_ambient_dir(root, ambient_authority())?;
        let name = format!(
            "weir-scratch-{}-{:016x}",
            std::process::id(),
            fastrand::u64(..)
        );
        let mut builder = DirBuilder::new();
        builder.mode(0o700);
        parent.create_dir_with(&name, &builder)?;
        tracing::debug!(plugin, dir = %root.join(&name).display(), "scratch directory created");
        Ok(Self {
            path: root.join(name),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        if let Err(error) = std::fs::remove_dir_all(&self.path) {
            tracing::warn!(dir = %self.path.display(), %error, "cannot delete a scratch directory");
        }
    }
}
