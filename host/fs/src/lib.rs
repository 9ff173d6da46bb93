//! Files the host reads and writes, done safely: crash-safe writes and
//! bounded reads of regular files only.
//!
//! Everything ARW keeps on disk (the registry, the installed set, the trust
//! store, the AOT cache, policies) is read through [`read_bounded`], which
//! refuses symbolic links, FIFOs, devices and directories, never blocks on
//! opening a special file, and never reads more than a stated limit: a
//! `<version>.wasm` that is a symlink to `/dev/zero` is an error naming the
//! file, not 23 GB of memory. Everything it writes goes through
//! [`write_atomic`], so a crash at any moment leaves the old file or the
//! whole new one.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: not found")]
    NotFound { path: PathBuf },
    #[error(
        "{path}: is {kind}, not a regular file; ARW reads only regular files here (replace it with the file itself)"
    )]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path}: is over the limit of {limit} bytes for this kind of file")]
    TooLarge { path: PathBuf, limit: u64 },
    #[error("{path}: is not UTF-8 text")]
    NotUtf8 { path: PathBuf },
    #[error("{path}: {error}")]
    Io { path: PathBuf, error: std::io::Error },
}

impl ReadError {
    /// The file is simply not there (as opposed to refused or unreadable).
    pub fn is_not_found(&self) -> bool {
        matches!(self, ReadError::NotFound { .. })
    }
}

/// What kind of file system entry a non-regular file is, for messages.
fn kind_of(file_type: std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if file_type.is_fifo() {
            return "a FIFO";
        }
        if file_type.is_char_device() {
            return "a character device";
        }
        if file_type.is_block_device() {
            return "a block device";
        }
        if file_type.is_socket() {
            return "a socket";
        }
    }
    if file_type.is_symlink() {
        "a symbolic link"
    } else if file_type.is_dir() {
        "a directory"
    } else {
        "a special file"
    }
}

/// Open `path` for reading if, and only if, it is a regular file: a final
/// symbolic link is refused (`O_NOFOLLOW`), and a FIFO does not block the
/// open (`O_NONBLOCK`, harmless for regular files).
pub fn open_regular(path: &Path) -> Result<File, ReadError> {
    open(path, false)
}

fn open(path: &Path, follow_symlinks: bool) -> Result<File, ReadError> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        let nofollow = if follow_symlinks { 0 } else { libc::O_NOFOLLOW };
        options.custom_flags(nofollow | libc::O_NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(error) => return Err(classify_open_error(path, error)),
    };
    let metadata = file.metadata().map_err(|error| ReadError::Io { path: path.into(), error })?;
    if !metadata.is_file() {
        return Err(ReadError::NotRegular { path: path.into(), kind: kind_of(metadata.file_type()) });
    }
    Ok(file)
}

fn classify_open_error(path: &Path, error: std::io::Error) -> ReadError {
    if error.kind() == std::io::ErrorKind::NotFound {
        return ReadError::NotFound { path: path.into() };
    }
    // `O_NOFOLLOW` on a symbolic link fails with ELOOP; say what it is.
    if let Ok(meta) = std::fs::symlink_metadata(path)
        && !meta.is_file()
    {
        return ReadError::NotRegular { path: path.into(), kind: kind_of(meta.file_type()) };
    }
    ReadError::Io { path: path.into(), error }
}

/// The whole of the regular file `path`, refusing anything over `limit`
/// bytes (checked before and while reading: a file that grows is caught).
pub fn read_bounded(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    read_file(open_regular(path)?, path, limit)
}

/// [`read_bounded`] of a file a user named on the command line: a
/// symbolic link is followed (the user chose it), but what it leads to must
/// still be a regular file within `limit`.
pub fn read_user_file(path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    read_file(open(path, true)?, path, limit)
}

fn read_file(file: File, path: &Path, limit: u64) -> Result<Vec<u8>, ReadError> {
    let size = file.metadata().map_err(|error| ReadError::Io { path: path.into(), error })?.len();
    if size > limit {
        return Err(ReadError::TooLarge { path: path.into(), limit });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|error| ReadError::Io { path: path.into(), error })?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { path: path.into(), limit });
    }
    Ok(bytes)
}

/// [`read_bounded`] as UTF-8 text.
pub fn read_text_bounded(path: &Path, limit: u64) -> Result<String, ReadError> {
    String::from_utf8(read_bounded(path, limit)?).map_err(|_| ReadError::NotUtf8 { path: path.into() })
}

/// Is there a regular file at `path`? `Ok(false)` when nothing is there; an
/// error when something else is (a symlink, a FIFO, a directory).
pub fn regular_file_exists(path: &Path) -> Result<bool, ReadError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => Ok(true),
        Ok(meta) => Err(ReadError::NotRegular { path: path.into(), kind: kind_of(meta.file_type()) }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(error) => Err(ReadError::Io { path: path.into(), error }),
    }
}

/// A crash-test hook: when the environment variable `ARW_FAULT_POINT`
/// names this step (`<step>`, or `<step>:<subject>` for one file), the
/// process aborts right here, as `kill -9` would. Tests use it to prove that
/// a crash between any two steps of a write leaves state consistent. Unset
/// (always, outside tests), it costs one cached check.
pub fn fault_point(step: &str, subject: &str) {
    static POINT: std::sync::OnceLock<Option<String>> = std::sync::OnceLock::new();
    let Some(point) = POINT.get_or_init(|| std::env::var("ARW_FAULT_POINT").ok()) else { return };
    let matches =
        point == step || point.strip_prefix(step).and_then(|rest| rest.strip_prefix(':')).is_some_and(|s| s == subject);
    if matches {
        eprintln!("fault injected at {step}:{subject} (ARW_FAULT_POINT)");
        std::process::abort();
    }
}

/// Write `bytes` to `path` so that a crash at any moment leaves either the
/// old file or the complete new one: write a temporary file in the same
/// directory, fsync it, rename it over `path`, fsync the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with_mode(path, bytes, None)
}

/// [`write_atomic`] creating the file with `mode` (e.g. `0o600` for a
/// secret) instead of the default.
pub fn write_atomic_with_mode(path: &Path, bytes: &[u8], mode: Option<u32>) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let (temp_path, mut temp) = tempfile_in(dir, name, mode)?;
    fault_point("write-atomic:created", name);
    let written = temp.write_all(bytes).and_then(|()| temp.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temp_path);
        return Err(e);
    }
    fault_point("write-atomic:written", name);
    std::fs::rename(&temp_path, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&temp_path);
    })?;
    fault_point("write-atomic:renamed", name);
    sync_dir(dir)
}

/// fsync a directory so a rename into it is durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    File::open(dir)?.sync_all()?;
    Ok(())
}

/// Is `name` a temporary file [`write_atomic`] left behind (a writer was
/// killed between creating and renaming it)?
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// A new, exclusively created `.NAME.<pid>.<n>.tmp` in `dir`.
fn tempfile_in(dir: &Path, name: &str, mode: Option<u32>) -> std::io::Result<(PathBuf, File)> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    loop {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        if let Some(mode) = mode {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(mode);
        }
        #[cfg(not(unix))]
        let _ = mode;
        match options.open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_regular_files_within_the_limit() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("f");
        write_atomic(&path, b"hello").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(read_bounded(&path, 5).unwrap_or_else(|e| panic!("{e}")), b"hello");
        assert!(matches!(read_bounded(&path, 4), Err(ReadError::TooLarge { limit: 4, .. })));
        assert!(read_bounded(&dir.path().join("missing"), 4).is_err_and(|e| e.is_not_found()));
        assert!(matches!(read_bounded(dir.path(), 4), Err(ReadError::NotRegular { kind: "a directory", .. })));
        assert!(!regular_file_exists(&dir.path().join("missing")).unwrap_or(true));
        assert!(regular_file_exists(&path).unwrap_or(false));
    }

    #[cfg(unix)]
    #[test]
    fn refuses_symlinks_devices_and_fifos_without_blocking() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let link = dir.path().join("zero.wasm");
        std::os::unix::fs::symlink("/dev/zero", &link).unwrap_or_else(|e| panic!("{e}"));
        let err = read_bounded(&link, 1 << 30).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { kind: "a symbolic link", .. }), "{err}");
        assert!(err.to_string().contains("zero.wasm"), "{err}");
        assert!(regular_file_exists(&link).is_err());
        // Even a symlink to a regular file is refused: what is read must be
        // the file the directory holds.
        let target = dir.path().join("target");
        write_atomic(&target, b"x").unwrap_or_else(|e| panic!("{e}"));
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap_or_else(|e| panic!("{e}"));
        assert!(matches!(read_bounded(&link, 10), Err(ReadError::NotRegular { .. })));
        // A character device opened directly.
        assert!(matches!(read_bounded(Path::new("/dev/zero"), 10), Err(ReadError::NotRegular { .. })));
        // A FIFO with no writer: opening it would block without O_NONBLOCK.
        let fifo = dir.path().join("fifo");
        let c = std::ffi::CString::new(fifo.to_string_lossy().as_bytes()).unwrap_or_else(|e| panic!("{e}"));
        #[allow(unsafe_code)]
        // SAFETY: `c` is a valid NUL-terminated path for the duration of the call.
        let made = unsafe { libc::mkfifo(c.as_ptr(), 0o600) };
        assert_eq!(made, 0);
        let err = read_bounded(&fifo, 10).unwrap_err();
        assert!(matches!(err, ReadError::NotRegular { kind: "a FIFO", .. }), "{err}");
    }

    #[cfg(unix)]
    #[test]
    fn atomic_writes_can_be_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let path = dir.path().join("secret");
        write_atomic_with_mode(&path, b"s", Some(0o600)).unwrap_or_else(|e| panic!("{e}"));
        let mode = std::fs::metadata(&path).unwrap_or_else(|e| panic!("{e}")).permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .filter_map(Result::ok)
            .filter(|e| is_temporary(&e.file_name().to_string_lossy()))
            .collect();
        assert!(leftovers.is_empty());
    }
}
