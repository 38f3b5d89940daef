//! ed25519 key files: one line, the 32-byte secret seed as 64 lowercase hex digits
//! (what PyNaCl's `SigningKey(bytes.fromhex(line))` reads). Created with mode 0600,
//! never overwritten.

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;

use crate::chain::accounts::Address;

/// The node's own key in its data directory (accounts chains mint rewards to it).
pub const NODE_KEY_FILE: &str = "node.key";

/// Why a key file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("{0}: already exists (key files are never overwritten)")]
    Exists(PathBuf),
    #[error("{0}: not a key file (expected one line of 64 lowercase hex digits)")]
    Malformed(PathBuf),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> KeyFileError + '_ {
    move |source| KeyFileError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Writes a new random key to `path` (mode 0600); refuses to overwrite.
pub fn create(path: &Path) -> Result<SigningKey, KeyFileError> {
    let key = SigningKey::generate(&mut rand::rngs::OsRng);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| {
            if e.kind() == io::ErrorKind::AlreadyExists {
                KeyFileError::Exists(path.to_path_buf())
            } else {
                io_err(path)(e)
            }
        })?;
    writeln!(file, "{}", hex::encode(key.to_bytes())).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))?;
    Ok(key)
}

/// Reads a key file.
pub fn read(path: &Path) -> Result<SigningKey, KeyFileError> {
    let text = fs::read_to_string(path).map_err(io_err(path))?;
    let seed = crate::chain::hash::decode_lower_hex(text.trim().as_bytes())
        .ok_or_else(|| KeyFileError::Malformed(path.to_path_buf()))?;
    Ok(SigningKey::from_bytes(&seed))
}

/// The node's key in `data_dir`, created on first start.
pub fn node_key(data_dir: &Path) -> Result<SigningKey, KeyFileError> {
    let path = data_dir.join(NODE_KEY_FILE);
    match read(&path) {
        Ok(key) => Ok(key),
        Err(KeyFileError::Io { source, .. }) if source.kind() == io::ErrorKind::NotFound => {
            fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
            create(&path)
        }
        Err(e) => Err(e),
    }
}

/// The address of a key.
pub fn address(key: &SigningKey) -> Address {
    Address::of(&key.verifying_key())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn create_read_and_refuse_overwrite() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("k");
        let key = create(&path).expect("create");
        let mode = fs::metadata(&path).expect("stat").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(read(&path).expect("read").to_bytes(), key.to_bytes());
        assert!(matches!(create(&path), Err(KeyFileError::Exists(_))));
        assert_eq!(read(&path).expect("unchanged").to_bytes(), key.to_bytes());
        let node = node_key(dir.path()).expect("node key");
        assert_eq!(
            node_key(dir.path()).expect("again").to_bytes(),
            node.to_bytes()
        );
        fs::write(&path, "nope").expect("write");
        assert!(matches!(read(&path), Err(KeyFileError::Malformed(_))));
    }
}
