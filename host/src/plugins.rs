//! Finding plugin files: a path given on the command line, or a name looked
//! up in the plugins directory.
//!
//! The directory is opened once as a capability (cap-std), and names are
//! resolved inside it: a name like `../../etc/x` cannot reach outside it.

use std::io::Read;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::{Dir, OpenOptionsExt as _};

use serde::Deserialize;

use crate::policy::PolicySpec;
use crate::sandbox::LoadError;

/// What a plugin says about itself, in `NAME.toml` beside `NAME.wasm`.
/// Descriptive fields are shown to operators and clients; `policy` is what
/// the plugin asks for, and can only narrow what the operator grants.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Must equal the file name, if given: a manifest cannot claim another
    /// plugin's name (and with it, that plugin's grants).
    pub name: Option<String>,
    pub version: Option<String>,
    pub description: Option<String>,
    /// JSON Schema of the input, as a TOML table.
    pub input_schema: Option<toml::Table>,
    pub policy: Option<PolicySpec>,
}

/// File extension of plugin components.
pub const EXTENSION: &str = "wasm";

/// A plugin file's bytes and what to call it.
#[derive(Debug)]
pub struct PluginFile {
    /// The plugin's name: the file name without `.wasm`.
    pub name: String,
    /// Where it came from, for messages.
    pub location: String,
    pub bytes: Vec<u8>,
    /// sha256 of `bytes` (hex): checked against pins, keys the compile cache.
    pub sha256: String,
    /// `NAME.toml` beside the file, if there is one.
    pub manifest: Option<Manifest>,
}

/// Why a plugin could not be found or loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("cannot read plugin {location}: {source}")]
    Read {
        location: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "plugin {location} is {size} bytes or more, over the limit of {max} bytes \
         (weir.plugin_size_limit_mb)"
    )]
    TooLarge {
        location: String,
        size: u64,
        max: u64,
    },
    #[error("plugin {location} is {kind}, not a regular file: weir reads only regular files")]
    NotRegular {
        location: String,
        kind: &'static str,
    },
    #[error(
        "{location} is not loaded: `{stem}` is not a plugin name (use letters, digits, '-', '_' and '.', not starting with '.')"
    )]
    Skipped { location: String, stem: String },
    #[error("no plugin named `{name}` in {dir} ({available})")]
    NotFound {
        name: String,
        dir: PathBuf,
        available: String,
    },
    #[error(
        "`{0}` is not a path to a .wasm file, and there is no plugins directory to look it up in \
         (pass --plugins DIR, or set weir.plugins_dir in the config)"
    )]
    NoDirectory(String),
    #[error("`{0}` is not a plugin name: use letters, digits, '-', '_' and '.'")]
    BadName(String),
    #[error("cannot open plugins directory {dir}: {source}")]
    Directory {
        dir: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin manifest {location}: {message}")]
    Manifest { location: String, message: String },
    #[error("plugin name `{name}` is taken twice: {first} and {second}")]
    Collision {
        name: String,
        first: String,
        second: String,
    },
    #[error(
        "plugin {location} does not match its pinned sha256: expected {expected}, found {actual}"
    )]
    Integrity {
        location: String,
        expected: String,
        actual: String,
    },
    #[error(transparent)]
    Load(#[from] LoadError),
}

/// The sha256 of a plugin file, as lowercase hex: what operators pin.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Largest manifest (`NAME.toml`) read: a few hundred bytes in practice.
pub const MAX_MANIFEST_BYTES: u64 = 1 << 20;

/// The first bytes of every WebAssembly file.
const WASM_MAGIC: &[u8; 4] = b"\0asm";

/// Reads the plugin `spec` names: a path if it contains `/` or ends in
/// `.wasm`, else `NAME.wasm` in `dir`. A file larger than `max_bytes` is
/// refused before it is read.
pub fn read(spec: &str, dir: Option<&Path>, max_bytes: u64) -> Result<PluginFile, PluginError> {
    if spec.contains('/') || spec.ends_with(&format!(".{EXTENSION}")) {
        let path = Path::new(spec);
        let location = path.display().to_string();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.to_owned());
        let opened = open_nonblocking(path);
        let bytes = read_plugin(opened, &location, max_bytes)?;
        let manifest_path = path.with_extension("toml");
        let opened = open_nonblocking(&manifest_path);
        let manifest_location = manifest_path.display().to_string();
        let manifest = read_manifest(opened, &manifest_location, &name)?;
        return Ok(PluginFile {
            name,
            location,
            sha256: sha256_hex(&bytes),
            bytes,
            manifest,
        });
    }
    let dir_path = dir.ok_or_else(|| PluginError::NoDirectory(spec.to_owned()))?;
    if !valid_name(spec) {
        return Err(PluginError::BadName(spec.to_owned()));
    }
    let handle = open_dir(dir_path)?;
    let file_name = format!("{spec}.{EXTENSION}");
    let location = dir_path.join(&file_name).display().to_string();
    let opened = open_in(&handle, &file_name);
    if let Err(e) = &opened
        && e.kind() == std::io::ErrorKind::NotFound
    {
        let names = list(dir_path)?.names;
        return Err(PluginError::NotFound {
            name: spec.to_owned(),
            dir: dir_path.to_owned(),
            available: if names.is_empty() {
                "it holds no .wasm files".to_owned()
            } else {
                format!("available: {}", names.join(", "))
            },
        });
    }
    let bytes = read_plugin(opened, &location, max_bytes)?;
    let manifest_name = format!("{spec}.toml");
    let manifest_location = dir_path.join(&manifest_name).display().to_string();
    let opened = open_in(&handle, &manifest_name);
    let manifest = read_manifest(opened, &manifest_location, spec)?;
    Ok(PluginFile {
        name: spec.to_owned(),
        location,
        sha256: sha256_hex(&bytes),
        bytes,
        manifest,
    })
}

/// Opens `path` for reading without blocking (see [`nonblocking`]).
fn open_nonblocking(path: &Path) -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nonblocking())
        .open(path)
}

/// Opens `name` inside `dir` for reading without blocking.
fn open_in(dir: &Dir, name: &str) -> std::io::Result<std::fs::File> {
    dir.open_with(
        name,
        cap_std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(nonblocking()),
    )
    .map(cap_std::fs::File::into_std)
}

/// `O_NONBLOCK`, for opening files that may not be regular: opening a FIFO
/// for reading blocks until a writer comes, and nobody may be coming.
fn nonblocking() -> i32 {
    // The flag's bits fit an i32 (they are a C `int`).
    rustix::fs::OFlags::NONBLOCK.bits() as i32
}

/// A plugin file's bytes: a regular file, starting like WebAssembly, of at
/// most `max_bytes`. Each check comes before the read it saves: a FIFO is
/// never read, a file of zeros is refused after four bytes, and a big one
/// by its size.
fn read_plugin(
    opened: std::io::Result<std::fs::File>,
    location: &str,
    max_bytes: u64,
) -> Result<Vec<u8>, PluginError> {
    let read_error = |source| PluginError::Read {
        location: location.to_owned(),
        source,
    };
    let mut file = opened.map_err(read_error)?;
    let size = regular_size(&file, location)?;
    if size > max_bytes {
        return Err(PluginError::TooLarge {
            location: location.to_owned(),
            size,
            max: max_bytes,
        });
    }
    let mut magic = [0u8; 4];
    let got = read_up_to(&mut file, &mut magic).map_err(read_error)?;
    if got < magic.len() || &magic != WASM_MAGIC {
        return Err(PluginError::Load(LoadError::NotWasm(location.to_owned())));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    bytes.extend_from_slice(&magic);
    // Bounded even if the file grows while it is read.
    (&mut file)
        .take(max_bytes + 1 - magic.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(read_error)?;
    if bytes.len() as u64 > max_bytes {
        return Err(PluginError::TooLarge {
            location: location.to_owned(),
            size: bytes.len() as u64,
            max: max_bytes,
        });
    }
    Ok(bytes)
}

/// The manifest beside a plugin, if there is one: a regular file of at
/// most [`MAX_MANIFEST_BYTES`].
fn read_manifest(
    opened: std::io::Result<std::fs::File>,
    location: &str,
    plugin: &str,
) -> Result<Option<Manifest>, PluginError> {
    let read_error = |source| PluginError::Read {
        location: location.to_owned(),
        source,
    };
    let file = match opened {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(read_error(source)),
    };
    let size = regular_size(&file, location)?;
    if size > MAX_MANIFEST_BYTES {
        return Err(PluginError::Manifest {
            location: location.to_owned(),
            message: format!(
                "it is {size} bytes, more than the {MAX_MANIFEST_BYTES} a manifest may be"
            ),
        });
    }
    let mut text = String::new();
    file.take(MAX_MANIFEST_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(read_error)?;
    parse_manifest(location, &text, plugin).map(Some)
}

/// The size of an open file that must be a regular one (not a FIFO, a
/// socket, a device or a directory).
fn regular_size(file: &std::fs::File, location: &str) -> Result<u64, PluginError> {
    let meta = file.metadata().map_err(|source| PluginError::Read {
        location: location.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(PluginError::NotRegular {
            location: location.to_owned(),
            kind: kind_of(&meta.file_type()),
        });
    }
    Ok(meta.len())
}

/// What a file that is not a regular file is, for messages.
fn kind_of(file_type: &std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO (named pipe)"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_char_device() || file_type.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Reads until `buf` is full or the file ends; how many bytes came.
fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

pub(crate) fn parse_manifest(
    location: &str,
    text: &str,
    file_name: &str,
) -> Result<Manifest, PluginError> {
    let manifest: Manifest = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        PluginError::Manifest {
            location: location.to_owned(),
            message: match line {
                Some(line) => format!("line {line}: {}", e.message()),
                None => e.message().to_owned(),
            },
        }
    })?;
    if let Some(name) = manifest.name.as_deref().filter(|n| *n != file_name) {
        return Err(PluginError::Manifest {
            location: location.to_owned(),
            message: format!(
                "it names the plugin `{name}`, but the file is `{file_name}.{EXTENSION}`"
            ),
        });
    }
    Ok(manifest)
}

/// What a plugins directory holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Listing {
    /// Names of the plugins, sorted.
    pub names: Vec<String>,
    /// `.wasm` files that cannot be plugins, by file name, sorted: their
    /// names are not plugin names. Said, never silently left out.
    pub skipped: Vec<String>,
}

impl Listing {
    /// The error for each skipped file, to report beside the plugins.
    pub fn skipped_errors(&self, dir: &Path) -> Vec<(String, PluginError)> {
        self.skipped
            .iter()
            .map(|file| {
                let stem = file
                    .strip_suffix(&format!(".{EXTENSION}"))
                    .unwrap_or(file)
                    .to_owned();
                let location = dir.join(file).display().to_string();
                (file.clone(), PluginError::Skipped { location, stem })
            })
            .collect()
    }
}

/// The plugins in `dir`, and the `.wasm` files that cannot be plugins.
pub fn list(dir: &Path) -> Result<Listing, PluginError> {
    let handle = open_dir(dir)?;
    let entries = handle.entries().map_err(|source| PluginError::Directory {
        dir: dir.to_owned(),
        source,
    })?;
    let suffix = format!(".{EXTENSION}");
    let mut listing = Listing::default();
    for entry in entries.filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(&suffix) else {
            continue;
        };
        if valid_name(stem) {
            listing.names.push(stem.to_owned());
        } else {
            listing.skipped.push(name);
        }
    }
    listing.names.sort();
    listing.skipped.sort();
    Ok(listing)
}

fn open_dir(dir: &Path) -> Result<Dir, PluginError> {
    Dir::open_ambient_dir(dir, ambient_authority()).map_err(|source| PluginError::Directory {
        dir: dir.to_owned(),
        source,
    })
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DEFAULT_MAX_PLUGIN_BYTES;

    /// Names resolve inside the directory only; lookups say what exists.
    #[test]
    fn resolves_names_inside_the_directory() {
        let dir = std::env::temp_dir().join(format!("weir-plugins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("alpha.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();

        let found = read("alpha", Some(&dir), DEFAULT_MAX_PLUGIN_BYTES).unwrap();
        assert_eq!(
            (found.name.as_str(), found.bytes.as_slice()),
            ("alpha", &b"\0asm"[..])
        );
        assert_eq!(list(&dir).unwrap().names, vec!["alpha".to_owned()]);

        let missing = read("beta", Some(&dir), DEFAULT_MAX_PLUGIN_BYTES)
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("no plugin named `beta`") && missing.contains("available: alpha"),
            "{missing}"
        );
        assert!(matches!(
            read("..", Some(&dir), DEFAULT_MAX_PLUGIN_BYTES),
            Err(PluginError::BadName(_))
        ));
        assert!(matches!(
            read("a\\b", Some(&dir), DEFAULT_MAX_PLUGIN_BYTES),
            Err(PluginError::BadName(_))
        ));
        assert!(matches!(
            read("alpha", None, DEFAULT_MAX_PLUGIN_BYTES),
            Err(PluginError::NoDirectory(_))
        ));
        let by_path = read(
            &dir.join("alpha.wasm").display().to_string(),
            None,
            DEFAULT_MAX_PLUGIN_BYTES,
        )
        .unwrap();
        assert_eq!(by_path.name, "alpha");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

#[cfg(test)]
mod hostile_files {
    use super::*;
    use crate::config::DEFAULT_MAX_PLUGIN_BYTES;
    use std::sync::mpsc;
    use std::time::Duration;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("weir-plugins-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// `f` on another thread, failing (not hanging) if it does not return.
    fn bounded<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(f());
        });
        rx.recv_timeout(Duration::from_secs(20))
            .expect("reading a plugin blocked")
    }

    /// A FIFO named like a plugin or a manifest is refused at once, by
    /// name and by path, and never opened for a blocking read.
    #[test]
    fn fifos_are_refused_without_blocking() {
        let dir = scratch("fifo");
        let mkfifo = |name: &str| {
            let status = std::process::Command::new("mkfifo")
                .arg(dir.join(name))
                .status()
                .unwrap();
            assert!(status.success());
        };
        mkfifo("x.wasm");
        std::fs::write(dir.join("good.wasm"), b"\0asm\x0d\0\x01\0").unwrap();
        mkfifo("good.toml");
        let d = dir.clone();
        let (by_name, by_path, manifest) = bounded(move || {
            (
                read("x", Some(&d), DEFAULT_MAX_PLUGIN_BYTES).unwrap_err(),
                read(&d.join("x.wasm").display().to_string(), None, 1 << 20).unwrap_err(),
                read("good", Some(&d), DEFAULT_MAX_PLUGIN_BYTES).unwrap_err(),
            )
        });
        for error in [&by_name, &by_path] {
            assert!(matches!(error, PluginError::NotRegular { .. }), "{error}");
            assert!(error.to_string().contains("a FIFO"), "{error}");
        }
        assert!(
            matches!(&manifest, PluginError::NotRegular { location, .. } if location.ends_with("good.toml")),
            "{manifest}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Size and content are checked before the bytes are read: a file of
    /// zeros stops after its first bytes, one over the limit by its size,
    /// and the error names the limit.
    #[test]
    fn big_and_foreign_files_are_refused_early() {
        let dir = scratch("big");
        let zeros = std::fs::File::create(dir.join("zeros.wasm")).unwrap();
        zeros.set_len(200 << 20).unwrap();
        let error = read("zeros", Some(&dir), 256 << 20).unwrap_err();
        assert!(
            matches!(error, PluginError::Load(LoadError::NotWasm(_))),
            "{error}"
        );
        let big = std::fs::File::create(dir.join("big.wasm")).unwrap();
        big.set_len(3 << 20).unwrap();
        let error = read("big", Some(&dir), 1 << 20).unwrap_err();
        assert!(
            matches!(error, PluginError::TooLarge { max, .. } if max == 1 << 20),
            "{error}"
        );
        assert!(
            error.to_string().contains("weir.plugin_size_limit_mb"),
            "{error}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Files that cannot be plugins by their names are listed as skipped,
    /// each with an error naming the file.
    #[test]
    fn unusable_names_are_reported() {
        let dir = scratch("names");
        for name in [
            "ok.wasm",
            "sp ace.wasm",
            "ünï.wasm",
            ".hidden.wasm",
            "notes.txt",
        ] {
            std::fs::write(dir.join(name), b"\0asm").unwrap();
        }
        let listing = list(&dir).unwrap();
        assert_eq!(listing.names, ["ok"]);
        assert_eq!(listing.skipped, [".hidden.wasm", "sp ace.wasm", "ünï.wasm"]);
        let errors = listing.skipped_errors(&dir);
        let text = errors[1].1.to_string();
        assert!(
            text.contains("sp ace.wasm") && text.contains("not a plugin name"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
