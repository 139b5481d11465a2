//! Finding the `cairn-node` binary of this build.

use std::path::PathBuf;

use crate::TestkitError;

/// The `cairn-node` binary: `CAIRN_NODE_BIN`, else next to the running test executable (in
/// `target/<profile>/`, one level above `deps/`).
///
/// # Errors
/// [`TestkitError::NodeBinaryMissing`] with the places looked at.
pub fn node_binary() -> Result<PathBuf, TestkitError> {
    if let Some(p) = std::env::var_os("CAIRN_NODE_BIN") {
        let p = PathBuf::from(p);
        return if p.exists() { Ok(p) } else { Err(TestkitError::NodeBinaryMissing { looked: vec![p] }) };
    }
    let exe = std::env::current_exe().map_err(TestkitError::io("locating the test executable"))?;
    let mut looked = Vec::new();
    for dir in exe.ancestors().skip(1).take(2) {
        let candidate = dir.join("cairn-node");
        if candidate.exists() {
            return Ok(candidate);
        }
        looked.push(candidate);
    }
    Err(TestkitError::NodeBinaryMissing { looked })
}
