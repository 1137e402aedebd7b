//! Owner-only files and directories: the store holds every object in plain text and the data
//! directory holds the admin kubeconfig, so neither may be readable by other users, whatever the
//! process's umask and whatever an earlier version left behind.

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of every file the store writes.
pub const FILE_MODE: u32 = 0o600;
/// The mode of a data directory.
pub const DIR_MODE: u32 = 0o700;

/// Creates `path` (and missing parents) with mode 0700, or tightens an existing directory to 0700.
pub fn create_private_dir(path: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(DIR_MODE).create(path)?;
    std::fs::set_permissions(path, Permissions::from_mode(DIR_MODE))
}

/// Opens `path` read-write, creating it if missing, with mode 0600; an existing file is
/// tightened to 0600. The mode is set on the open file, so there is no window in which a new
/// file is readable by others.
pub(crate) fn open_private_file(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(FILE_MODE)
        .open(path)?;
    // `mode` applies only when the file is created, and then minus the umask bits; an existing
    // or differently-masked file is set explicitly.
    file.set_permissions(Permissions::from_mode(FILE_MODE))?;
    Ok(file)
}
