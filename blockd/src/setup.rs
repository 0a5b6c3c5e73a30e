//! Creating a unit state directory for benchmarks and manual runs before `dvsan-agent` exists to do it.
//!
//! Does what the agent does on first start (initialise the unit, attach media) plus one volume and its grants,
//! all through the layout crate, so blockd sees exactly what it would see from the agent. One difference: the
//! agent clears new media before their space is free (a volume's blocks never reach another host); this tool
//! serves the media's contents as they are, because it is given files filled on purpose (a benchmark's random
//! bytes).

use dvsan_layout::{
    AccessMode, Blocks, ClearTarget, LayoutError, LayoutStore, MediumKind, MediumSpec, NewGrant, NewVolume, Volume,
};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

/// What to create.
#[derive(Debug, Clone)]
pub struct UnitSetup {
    pub state_dir: PathBuf,
    pub unit_name: String,
    pub block_size: u32,
    pub media: Vec<PathBuf>,
    pub volume_name: String,
    /// Blocks of the volume; None takes the largest free extent.
    pub volume_blocks: Option<u64>,
    pub grants: Vec<(IpAddr, AccessMode)>,
}

/// Initialise the unit, attach the media (sizes read from disk), create the volume and grants.
pub fn setup_unit(s: &UnitSetup) -> Result<Volume, LayoutError> {
    let mut store = LayoutStore::open(&s.state_dir)?;
    store.init_unit(&s.unit_name, s.block_size)?;
    let specs = s.media.iter().map(|p| medium_spec(p)).collect::<Result<Vec<_>, _>>()?;
    store.attach_media(&specs)?;
    // Keep what the files hold (see the module comment): their released space is free at once, not cleared.
    for job in store.clear_jobs()? {
        if let ClearTarget::Released(_) = job.target {
            store.finish_clearing(job.target)?;
        }
    }
    let layout = store.load()?;
    let len = Blocks(s.volume_blocks.unwrap_or(layout.largest_free().0));
    let volume = store.create_volume(&NewVolume { name: Some(s.volume_name.clone()), len, ..Default::default() })?;
    for (host, mode) in &s.grants {
        store.create_grant(&NewGrant {
            index: None,
            volume: volume.index,
            partition: None,
            host: Some(*host),
            identity: None,
            mode: *mode,
        })?;
    }
    Ok(volume)
}

fn medium_spec(path: &Path) -> Result<MediumSpec, LayoutError> {
    let meta = std::fs::metadata(path)?;
    use std::os::unix::fs::FileTypeExt;
    let kind = if meta.file_type().is_block_device() { MediumKind::BlockDevice } else { MediumKind::File };
    let bytes = match kind {
        MediumKind::File => meta.len(),
        MediumKind::BlockDevice => {
            use std::io::{Seek, SeekFrom};
            std::fs::File::open(path)?.seek(SeekFrom::End(0))?
        }
    };
    Ok(MediumSpec { path: path.to_path_buf(), kind, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The medium's bytes are served as they are, and the whole medium is free for the volume at once.
    #[test]
    fn a_filled_medium_keeps_its_bytes_and_is_free_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let medium = dir.path().join("disk.img");
        std::fs::write(&medium, vec![0xAB; 1 << 20]).unwrap();
        let setup = UnitSetup {
            state_dir: dir.path().join("state"),
            unit_name: "bench".into(),
            block_size: 4096,
            media: vec![medium.clone()],
            volume_name: "bench".into(),
            volume_blocks: None,
            grants: vec![("127.0.0.1".parse().unwrap(), AccessMode::ReadWrite)],
        };
        let volume = setup_unit(&setup).unwrap();
        assert_eq!(volume.extent.len, Blocks(256));
        assert!(std::fs::read(&medium).unwrap().iter().all(|&b| b == 0xAB));
        assert!(LayoutStore::open(&setup.state_dir).unwrap().clear_jobs().unwrap().is_empty());
    }
}
