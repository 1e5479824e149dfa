//! Who this machine is: host name and kernel boot id, read once per process.

use std::sync::OnceLock;

/// The kernel boot id (`/proc/sys/kernel/random/boot_id`), read once per
/// process; `None` off Linux.
pub fn boot_id() -> Option<&'static str> {
    static BOOT: OnceLock<Option<String>> = OnceLock::new();
    BOOT.get_or_init(|| {
        crate::fs::read_capped("/proc/sys/kernel/random/boot_id".as_ref(), 128)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
    })
    .as_deref()
}

/// This machine's host name (`/proc/sys/kernel/hostname`, else `$HOSTNAME`,
/// else `unknown`), read once per process.
pub fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        crate::fs::read_capped("/proc/sys/kernel/hostname".as_ref(), 256)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .or_else(|| std::env::var("HOSTNAME").ok())
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_and_boot_are_known_on_linux() {
        assert!(!hostname().is_empty());
        if std::path::Path::new("/proc/sys/kernel/random/boot_id").exists() {
            assert_eq!(boot_id().map(str::len), Some(36));
        }
    }
}
