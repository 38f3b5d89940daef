//! A node's identity: the recipient of its block rewards.
//!
//! Kept in the data directory so a restarted node is the same node (its rewards and
//! its blocks-won count stay attributable), like the tutorial's `uuid4().hex` but stable.

use std::fs;
use std::io;
use std::path::Path;

const ID_FILE: &str = "node-id";

/// Reads the node id from `data_dir`, creating a random one on first start.
pub fn load_or_create(data_dir: &Path) -> io::Result<String> {
    let path = data_dir.join(ID_FILE);
    match fs::read_to_string(&path) {
        Ok(id) if !id.trim().is_empty() => return Ok(id.trim().to_string()),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {}
        Err(err) => return Err(err),
    }
    fs::create_dir_all(data_dir)?;
    let id = hex::encode(rand::random::<[u8; 16]>());
    fs::write(&path, format!("{id}\n"))?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    #[test]
    fn id_is_stable_across_restarts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let first = super::load_or_create(dir.path()).expect("create");
        assert_eq!(first.len(), 32);
        assert_eq!(super::load_or_create(dir.path()).expect("reload"), first);
    }
}
