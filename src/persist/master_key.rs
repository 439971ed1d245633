//! The master key file (`--master-key-file`, default `<data-dir>/master.key`):
//! 32 random bytes in base64 on one line, created with mode 0600 on first
//! start and never rewritten. It is not log or snapshot data, and it needs a
//! file mode at creation, so it is read and written here with `std::fs`
//! rather than through the `Fs` trait.

use std::io::Write;
use std::path::Path;

/// The key file's text, if the file exists.
pub fn read(path: &Path) -> std::io::Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Creates the key file with `text` (fails if it exists), mode 0600, flushed
/// together with its directory entry.
pub fn create(path: &Path, text: &str) -> std::io::Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(text.as_bytes())?;
    f.write_all(b"\n")?;
    f.sync_all()?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}
