//! Small JSON state files, replaced atomically.

use std::path::Path;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;

/// Loads a state file; missing → default. A corrupt file is logged and
/// replaced by the default (state is an optimisation: worst case one
/// duplicate message), never a crash.
pub(crate) fn load<T: DeserializeOwned + Default>(path: &Path) -> Result<T, Error> {
    match std::fs::read(path) {
        Ok(bytes) => match serde_json::from_slice(&bytes) {
            Ok(v) => Ok(v),
            Err(e) => {
                tracing::error!(file = %path.display(), error = %e, "corrupt notify state; starting fresh");
                Ok(T::default())
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(T::default()),
        Err(source) => Err(Error::Io {
            path: path.to_owned(),
            op: "read state",
            source,
        }),
    }
}

pub(crate) fn save<T: Serialize>(path: &Path, v: &T) -> Result<(), Error> {
    let bytes = serde_json::to_vec_pretty(v).map_err(|e| Error::Io {
        path: path.to_owned(),
        op: "serialise state",
        source: std::io::Error::other(e),
    })?;
    nexus_stdx::write_private(path, &bytes, true)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn approvals_and_alert_state_are_private() {
        let base = tempfile::tempdir().unwrap();
        let path = base.path().join("pool/approvals.json");
        save(&path, &serde_json::json!({"pending": []})).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(path.parent().unwrap()), 0o700);
        let back: serde_json::Value = load(&path).unwrap();
        assert_eq!(back["pending"], serde_json::json!([]));
    }
}
