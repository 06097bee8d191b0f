//! Finding plugin files: a path given on the command line, or a name looked
//! up in the plugins directory.
//!
//! The directory is opened once as a capability (cap-std), and names are
//! resolved inside it: a name like `../../etc/x` cannot reach outside it.

use std::path::{Path, PathBuf};

use cap_std::ambient_authority;
use cap_std::fs::Dir;

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

/// Largest plugin file read. Real components are 100 KB to 20 MB (with an
/// interpreter inside); past this it is not a plugin.
pub const MAX_PLUGIN_BYTES: u64 = 256 << 20;

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
    #[error("plugin {location} is {size} bytes, more than the {MAX_PLUGIN_BYTES} allowed")]
    TooLarge { location: String, size: u64 },
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

/// Reads the plugin `spec` names: a path if it contains `/` or ends in
/// `.wasm`, else `NAME.wasm` in `dir`.
pub fn read(spec: &str, dir: Option<&Path>) -> Result<PluginFile, PluginError> {
    if spec.contains('/') || spec.ends_with(&format!(".{EXTENSION}")) {
        let path = Path::new(spec);
        let location = path.display().to_string();
        let name = path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|| spec.to_owned());
        let size = std::fs::metadata(path)
            .map_err(|source| PluginError::Read {
                location: location.clone(),
                source,
            })?
            .len();
        check_size(&location, size)?;
        let bytes = std::fs::read(path).map_err(|source| PluginError::Read {
            location: location.clone(),
            source,
        })?;
        let manifest_path = path.with_extension("toml");
        let manifest = match std::fs::read_to_string(&manifest_path) {
            Ok(text) => Some(parse_manifest(
                &manifest_path.display().to_string(),
                &text,
                &name,
            )?),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(source) => {
                return Err(PluginError::Read {
                    location: manifest_path.display().to_string(),
                    source,
                });
            }
        };
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
    match handle.metadata(&file_name) {
        Ok(meta) => check_size(&location, meta.len())?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let names = list(dir_path)?;
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
        Err(source) => return Err(PluginError::Read { location, source }),
    }
    let bytes = handle
        .read(&file_name)
        .map_err(|source| PluginError::Read {
            location: location.clone(),
            source,
        })?;
    let manifest_name = format!("{spec}.toml");
    let manifest_location = dir_path.join(&manifest_name).display().to_string();
    let manifest = match handle.read_to_string(&manifest_name) {
        Ok(text) => Some(parse_manifest(&manifest_location, &text, spec)?),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(source) => {
            return Err(PluginError::Read {
                location: manifest_location,
                source,
            });
        }
    };
    Ok(PluginFile {
        name: spec.to_owned(),
        location,
        sha256: sha256_hex(&bytes),
        bytes,
        manifest,
    })
}

fn parse_manifest(location: &str, text: &str, file_name: &str) -> Result<Manifest, PluginError> {
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

/// Names of the plugins in `dir`, sorted.
pub fn list(dir: &Path) -> Result<Vec<String>, PluginError> {
    let handle = open_dir(dir)?;
    let entries = handle.entries().map_err(|source| PluginError::Directory {
        dir: dir.to_owned(),
        source,
    })?;
    let mut names: Vec<String> = entries
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let stem = name.strip_suffix(&format!(".{EXTENSION}"))?;
            valid_name(stem).then(|| stem.to_owned())
        })
        .collect();
    names.sort();
    Ok(names)
}

fn open_dir(dir: &Path) -> Result<Dir, PluginError> {
    Dir::open_ambient_dir(dir, ambient_authority()).map_err(|source| PluginError::Directory {
        dir: dir.to_owned(),
        source,
    })
}

fn check_size(location: &str, size: u64) -> Result<(), PluginError> {
    if size > MAX_PLUGIN_BYTES {
        return Err(PluginError::TooLarge {
            location: location.to_owned(),
            size,
        });
    }
    Ok(())
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

    /// Names resolve inside the directory only; lookups say what exists.
    #[test]
    fn resolves_names_inside_the_directory() {
        let dir = std::env::temp_dir().join(format!("weir-plugins-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("alpha.wasm"), b"\0asm").unwrap();
        std::fs::write(dir.join("notes.txt"), b"x").unwrap();

        let found = read("alpha", Some(&dir)).unwrap();
        assert_eq!(
            (found.name.as_str(), found.bytes.as_slice()),
            ("alpha", &b"\0asm"[..])
        );
        assert_eq!(list(&dir).unwrap(), vec!["alpha".to_owned()]);

        let missing = read("beta", Some(&dir)).unwrap_err().to_string();
        assert!(
            missing.contains("no plugin named `beta`") && missing.contains("available: alpha"),
            "{missing}"
        );
        assert!(matches!(
            read("..", Some(&dir)),
            Err(PluginError::BadName(_))
        ));
        assert!(matches!(
            read("a\\b", Some(&dir)),
            Err(PluginError::BadName(_))
        ));
        assert!(matches!(
            read("alpha", None),
            Err(PluginError::NoDirectory(_))
        ));
        let by_path = read(&dir.join("alpha.wasm").display().to_string(), None).unwrap();
        assert_eq!(by_path.name, "alpha");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
