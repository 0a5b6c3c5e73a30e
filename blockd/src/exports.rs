//! What blockd serves right now: the exports of one layout snapshot, with their media opened.
//!
//! The maintenance thread builds a new [`ExportTable`] whenever the layout's change counter moves and swaps it
//! in; handshakes look exports and grants up in the current table, and an open connection keeps the
//! [`ServedExport`] it negotiated (an `Arc`), so a swap never disturbs requests in flight. Media files are opened
//! read-write once ([`MediaCache`]) and shared by every export and connection, which is what makes FLUSH on one
//! connection cover writes of all of them (NBD_FLAG_CAN_MULTI_CONN). Each medium is also mapped read-only once
//! ([`MediumMapping`]), for large reads sent straight from the page cache.

use crate::mapped_read::MediumMapping;
use dvsan_layout::{AccessMode, Client, Export, ExportKind, Layout, MediaMap};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;

/// The unit's media in address order, as one byte-addressed space.
#[derive(Debug)]
pub struct MediaSet {
    pub map: MediaMap,
    /// Open file per medium, in the same order as the map's segments; None if it could not be opened.
    pub files: Vec<Option<Arc<File>>>,
    /// Read-only mapping per medium, same order; None if the medium is not open or cannot be mapped.
    pub mappings: Vec<Option<Arc<MediumMapping>>>,
    pub paths: Vec<PathBuf>,
}

/// One export as served: where it lives in the unit's address space and how big it is.
#[derive(Debug)]
pub struct ServedExport {
    pub name: String,
    pub kind: ExportKind,
    /// First byte in the unit's address space.
    pub start: u64,
    pub size: u64,
    pub media: Arc<MediaSet>,
    /// Indexes (into `media.files`) of the media this export touches: what FLUSH syncs.
    pub touched: Vec<usize>,
    pub description: String,
}

/// Open files and their mappings by path, kept across reloads so a medium is opened and mapped once for the life
/// of the process (a mapping keeps its page tables, so sending from it stays cheap after a reload).
#[derive(Debug, Default)]
pub struct MediaCache {
    files: HashMap<PathBuf, Arc<File>>,
    /// By path: the length asked for, and the mapping (shorter if the file was).
    mappings: HashMap<PathBuf, (u64, Arc<MediumMapping>)>,
}

impl MediaCache {
    fn get(&mut self, path: &PathBuf) -> Option<Arc<File>> {
        if let Some(f) = self.files.get(path) {
            return Some(f.clone());
        }
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(f) => {
                let f = Arc::new(f);
                self.files.insert(path.clone(), f.clone());
                Some(f)
            }
            Err(e) => {
                tracing::error!(path = %path.display(), error = %e, "cannot open medium; its exports fail with EIO");
                None
            }
        }
    }

    /// A read-only mapping of the first `len` bytes of the medium at `path`, or None (logged) if it cannot be
    /// mapped; then its large reads are spliced or copied. A medium that grew is mapped again.
    fn mapping(&mut self, path: &PathBuf, len: u64) -> Option<Arc<MediumMapping>> {
        if let Some((_, m)) = self.mappings.get(path).filter(|(asked, _)| *asked >= len) {
            return Some(m.clone());
        }
        let file = self.files.get(path)?;
        match MediumMapping::new(file, len) {
            Ok(m) => {
                let m = Arc::new(m);
                self.mappings.insert(path.clone(), (len, m.clone()));
                Some(m)
            }
            Err(e) => {
                tracing::info!(path = %path.display(), error = %e, "cannot map medium; its large reads are not mapped");
                None
            }
        }
    }

    /// Every open medium, for the final flush at shutdown.
    pub fn all(&self) -> impl Iterator<Item = (&PathBuf, &Arc<File>)> {
        self.files.iter()
    }
}

/// Exports and grants of one layout snapshot.
#[derive(Debug)]
pub struct ExportTable {
    pub change_counter: u32,
    pub block_size: u32,
    layout: Layout,
    /// In layout order: volumes, then partitions.
    exports: Vec<Arc<ServedExport>>,
}

impl ExportTable {
    pub fn build(layout: Layout, cache: &mut MediaCache) -> ExportTable {
        let bs = u64::from(layout.unit.block_size);
        let mut media = layout.media.clone();
        // MediaMap orders media by address; keep the file list in the same order so segment indexes match.
        media.sort_by_key(|m| m.extent.start);
        let set = Arc::new(MediaSet {
            map: MediaMap::new(&media, layout.unit.block_size),
            files: media.iter().map(|m| cache.get(&m.path)).collect(),
            mappings: media.iter().map(|m| cache.mapping(&m.path, m.extent.bytes(layout.unit.block_size))).collect(),
            paths: media.iter().map(|m| m.path.clone()).collect(),
        });
        let exports = layout
            .exports()
            .into_iter()
            .map(|e| {
                let start = e.extent.start.0 * bs;
                let size = e.extent.bytes(layout.unit.block_size);
                let touched =
                    media.iter().enumerate().filter(|(_, m)| m.extent.overlaps(&e.extent)).map(|(i, _)| i).collect();
                let description = describe(&layout, &e);
                Arc::new(ServedExport {
                    name: e.name,
                    kind: e.kind,
                    start,
                    size,
                    media: set.clone(),
                    touched,
                    description,
                })
            })
            .collect();
        ExportTable { change_counter: layout.unit.change_counter, block_size: layout.unit.block_size, layout, exports }
    }

    pub fn export(&self, name: &str) -> Option<&Arc<ServedExport>> {
        self.exports.iter().find(|e| e.name == name)
    }

    /// The access `client` has to the export `name`, if it exists and a grant allows it.
    pub fn access(&self, name: &str, client: &Client) -> Access {
        let Some(served) = self.export(name) else { return Access::NoSuchExport };
        let export = Export { name: served.name.clone(), kind: served.kind, extent: extent_of(&self.layout, served) };
        match self.layout.grant_for(&export, client) {
            Some(g) => Access::Granted(served.clone(), g.mode),
            None => Access::NotGranted,
        }
    }

    /// Exports `client` may use, in layout order.
    pub fn visible_to<'a>(&'a self, client: &'a Client) -> impl Iterator<Item = &'a Arc<ServedExport>> {
        self.exports.iter().filter(move |e| matches!(self.access(&e.name, client), Access::Granted(..)))
    }

    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.exports.iter().map(|e| e.name.as_str())
    }

    /// Whether a connection negotiated on `old` (with `mode`) may go on under this table: same export at the same
    /// place, and the client still has a grant with the same mode.
    pub fn still_allows(&self, old: &ServedExport, client: &Client, mode: AccessMode) -> bool {
        match self.access(&old.name, client) {
            Access::Granted(now, now_mode) => {
                now.kind == old.kind && now.start == old.start && now.size >= old.size && now_mode == mode
            }
            _ => false,
        }
    }
}

/// Outcome of an access check.
#[derive(Debug)]
pub enum Access {
    Granted(Arc<ServedExport>, AccessMode),
    NotGranted,
    NoSuchExport,
}

fn extent_of(layout: &Layout, served: &ServedExport) -> dvsan_layout::Extent {
    let bs = u64::from(layout.unit.block_size);
    dvsan_layout::Extent::new(dvsan_layout::Lba(served.start / bs), dvsan_layout::Blocks(served.size / bs))
}

fn describe(layout: &Layout, e: &Export) -> String {
    match e.kind {
        ExportKind::Volume(v) => {
            let name = layout.volume(v).map(|v| v.name.as_str()).unwrap_or("?");
            format!("volume {v} ({name}) of unit {}", layout.unit.name)
        }
        ExportKind::Partition(v, p) => format!("partition {p} of volume {v} of unit {}", layout.unit.name),
    }
}
