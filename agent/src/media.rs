//! Backing media named on the command line: `PATH:SIZE`, or `PATH` for something that already exists.
//!
//! A missing file is created sparse at SIZE; an existing regular file or block device is used at its current size
//! (SIZE, if given, must not exceed it). The result feeds `LayoutStore::attach_media`, which decides where each
//! medium sits in the unit's address space.

use anyhow::{bail, Context, Result};
use dvsan_layout::{parse_size, MediumKind, MediumSpec};
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

/// One `--media` argument before it has touched the file system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaArg {
    pub path: PathBuf,
    pub size: Option<u64>,
}

impl std::str::FromStr for MediaArg {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // Split at the last ':' so paths may contain colons only when a size follows.
        let (path, size) = match s.rsplit_once(':') {
            Some((p, sz)) if !p.is_empty() => (p, Some(parse_size(sz).map_err(|e| e.to_string())?)),
            Some(_) => {
                return Err(format!(
                    "{s:?}: the path before ':' is empty; use PATH:SIZE, e.g. /var/lib/dvsan/m0.img:10G"
                ))
            }
            None => (s, None),
        };
        if path.is_empty() {
            return Err("empty media path; use PATH:SIZE, e.g. /var/lib/dvsan/m0.img:10G".into());
        }
        if size == Some(0) {
            return Err(format!("{s:?}: a medium of size 0 holds nothing; give a size such as 1G"));
        }
        Ok(MediaArg { path: PathBuf::from(path), size })
    }
}

/// Create or open each medium and measure it.
pub fn prepare(args: &[MediaArg]) -> Result<Vec<MediumSpec>> {
    args.iter().map(prepare_one).collect()
}

fn prepare_one(arg: &MediaArg) -> Result<MediumSpec> {
    let path = absolute(&arg.path)?;
    match std::fs::metadata(&path) {
        Ok(meta) if meta.file_type().is_block_device() => {
            let bytes = device_size(&path)?;
            check_fits(&path, arg.size, bytes)?;
            Ok(MediumSpec { path, kind: MediumKind::BlockDevice, bytes })
        }
        Ok(meta) if meta.is_file() => {
            check_fits(&path, arg.size, meta.len())?;
            Ok(MediumSpec { path, kind: MediumKind::File, bytes: meta.len() })
        }
        Ok(_) => bail!("{}: not a regular file or block device", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let Some(size) = arg.size else {
                bail!("{} does not exist; give a size to create it, e.g. {}:10G", path.display(), path.display())
            };
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
            }
            let f = OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
                .with_context(|| format!("creating medium {}", path.display()))?;
            // set_len on a new file makes it sparse: no blocks are written.
            f.set_len(size).with_context(|| format!("sizing {} to {size} bytes", path.display()))?;
            f.sync_all()?;
            tracing::info!(path = %path.display(), size, "created sparse medium");
            Ok(MediumSpec { path, kind: MediumKind::File, bytes: size })
        }
        Err(e) => Err(e).with_context(|| format!("inspecting medium {}", path.display())),
    }
}

fn check_fits(path: &Path, wanted: Option<u64>, have: u64) -> Result<()> {
    match wanted {
        Some(w) if w > have => bail!(
            "{} exists with {have} bytes, less than the {w} bytes asked for; remove it or give a size up to {have}",
            path.display()
        ),
        _ => Ok(()),
    }
}

fn device_size(path: &Path) -> Result<u64> {
    use std::io::{Seek, SeekFrom};
    let mut f = File::open(path).with_context(|| format!("opening block device {}", path.display()))?;
    Ok(f.seek(SeekFrom::End(0))?)
}

fn absolute(p: &Path) -> Result<PathBuf> {
    if p.is_absolute() {
        Ok(p.to_path_buf())
    } else {
        Ok(std::env::current_dir().context("reading the current directory")?.join(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_arguments() {
        assert_eq!(
            "/a/b.img:10G".parse::<MediaArg>().unwrap(),
            MediaArg { path: "/a/b.img".into(), size: Some(10 << 30) }
        );
        assert_eq!("/dev/sdb".parse::<MediaArg>().unwrap(), MediaArg { path: "/dev/sdb".into(), size: None });
        assert!("/a:0".parse::<MediaArg>().unwrap_err().contains("size 0"));
        assert!(":1G".parse::<MediaArg>().unwrap_err().contains("path"));
        assert!("/a:ten".parse::<MediaArg>().unwrap_err().contains("not a size"));
    }

    #[test]
    fn creates_sparse_and_reuses_existing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("m.img");
        let spec = prepare_one(&MediaArg { path: p.clone(), size: Some(1 << 30) }).unwrap();
        assert_eq!(spec.bytes, 1 << 30);
        use std::os::unix::fs::MetadataExt;
        assert!(std::fs::metadata(&p).unwrap().blocks() < 16, "sparse");
        let again = prepare_one(&MediaArg { path: p.clone(), size: None }).unwrap();
        assert_eq!(again.bytes, 1 << 30);
        let err = prepare_one(&MediaArg { path: p, size: Some(2 << 30) }).unwrap_err();
        assert!(err.to_string().contains("less than"), "{err}");
        let err = prepare_one(&MediaArg { path: dir.path().join("none"), size: None }).unwrap_err();
        assert!(err.to_string().contains("give a size"), "{err}");
    }
}
