//! NBD_CMD_BLOCK_STATUS with the `base:allocation` metadata context: real clients (`nbdinfo --map`,
//! `qemu-img map`) see the holes and data of a sparse volume, across a media boundary; the option haggling and
//! the command's rules are checked on the wire.

use dvsan_layout::AccessMode;
use dvsan_nbd::constants::*;
use dvsan_nbd::handshake::MetaContextRequest;
use dvsan_nbd::transmission::{ChunkHeader, ErrorChunk};
use dvsan_nbd::{ClientOption, Errno, InfoRequest};
use dvsan_tests::nbd::*;

const MIB: u64 = 1024 * 1024;
/// The two media are 8 MiB each; the volume "data" covers 12 MiB from the start.
const BOUNDARY: u64 = 8 * MIB;

fn unit() -> Unit {
    let unit = Unit::new(&[8 * MIB, 8 * MIB]);
    let data = unit.volume("data", 3072);
    let other = unit.volume("other", 256);
    unit.grant(data.index, None, "127.0.0.1", AccessMode::ReadWrite);
    unit.grant(other.index, None, "127.0.0.7", AccessMode::ReadWrite);
    unit
}

/// Data at [1 MiB, 2 MiB) and at 32 KiB either side of the media boundary; everything else is a hole.
fn write_data(blockd: &Blockd) {
    let uri = blockd.uri("data");
    run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", "write -P 0x11 1M 1M", &uri], 30);
    let at = (BOUNDARY - 32 * 1024).to_string();
    run_tool_ok("qemu-io", "qemu-utils", &["-f", "raw", "-c", &format!("write -P 0x22 {at} 64k"), &uri], 30);
}

/// (offset, length, is_hole) runs the volume should report.
fn expected() -> Vec<(u64, u64, bool)> {
    let k32 = 32 * 1024;
    vec![
        (0, MIB, true),
        (MIB, MIB, false),
        (2 * MIB, BOUNDARY - k32 - 2 * MIB, true),
        (BOUNDARY - k32, 2 * k32, false),
        (BOUNDARY + k32, 12 * MIB - BOUNDARY - k32, true),
    ]
}

#[test]
fn nbdinfo_and_qemu_img_map_the_holes_and_data_of_a_volume() {
    let unit = unit();
    let blockd = Blockd::start(&unit);
    write_data(&blockd);
    let uri = blockd.uri("data");

    // nbdinfo --map: "offset length type description" per line.
    let out = run_tool_ok("nbdinfo", "libnbd-bin", &["--map", &uri], 30);
    let runs: Vec<(u64, u64, bool)> = out
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            assert!(f.len() >= 4, "unexpected nbdinfo line {l:?}");
            (f[0].parse().unwrap(), f[1].parse().unwrap(), f[2] == "3")
        })
        .collect();
    assert_eq!(runs, expected(), "{out}");
    assert!(out.contains("hole,zero") && out.contains("data"), "{out}");

    // qemu-img map reads the same context.
    let out = run_tool_ok("qemu-img", "qemu-utils", &["map", "--output=json", &uri], 30);
    for (at, len, hole) in expected() {
        let entry = format!(
            r#""start": {at}, "length": {len}, "depth": 0, "present": true, "zero": {hole}, "data": {}"#,
            !hole
        );
        assert!(out.contains(&entry), "qemu-img map lacks {entry}: {out}");
    }
    assert!(blockd.log().contains("connection ended"), "{}", blockd.log());
}

/// A raw connection from 127.0.0.1 with structured replies, that sets `queries` on `export` before GO.
fn raw_with_contexts(blockd: &Blockd, export: &str, queries: &[&str]) -> (Raw, Vec<(u32, String)>) {
    let mut raw = Raw::greet(blockd.addr);
    raw.option(&ClientOption::StructuredReply);
    assert_eq!(raw.option_reply().0.reply, REP_ACK);
    let req = MetaContextRequest { export: export.into(), queries: queries.iter().map(|q| q.to_string()).collect() };
    raw.option(&ClientOption::SetMetaContext(req));
    let contexts = context_replies(&mut raw);
    raw.option(&ClientOption::Go(InfoRequest { name: export.into(), requests: vec![] }));
    loop {
        let (h, _) = raw.option_reply();
        assert!(!h.is_error(), "GO refused: {h:?}");
        if h.reply == REP_ACK {
            return (raw, contexts);
        }
    }
}

/// Read NBD_REP_META_CONTEXT replies up to the ACK: (id, name) each.
fn context_replies(raw: &mut Raw) -> Vec<(u32, String)> {
    let mut contexts = Vec::new();
    loop {
        let (h, payload) = raw.option_reply();
        assert!(!h.is_error(), "meta context option refused: {h:?} {}", String::from_utf8_lossy(&payload));
        if h.reply == REP_ACK {
            return contexts;
        }
        assert_eq!(h.reply, REP_META_CONTEXT);
        let id = u32::from_be_bytes(payload[..4].try_into().unwrap());
        contexts.push((id, String::from_utf8(payload[4..].to_vec()).unwrap()));
    }
}

/// Send BLOCK_STATUS and read its one final chunk: Ok((context id, extents)) or Err(error chunk).
fn block_status(raw: &mut Raw, flags: u16, offset: u64, length: u32) -> Result<(u32, Vec<(u32, u32)>), ErrorChunk> {
    raw.request(CMD_BLOCK_STATUS, flags, 5, offset, length);
    let mut h = [0u8; 20];
    raw.read_exact(&mut h);
    let h = ChunkHeader::decode(&h, 1 << 20).unwrap();
    assert!(h.handle == 5 && h.is_done(), "{h:?}");
    let mut payload = vec![0u8; h.length as usize];
    raw.read_exact(&mut payload);
    if h.is_error() {
        return Err(ErrorChunk::parse(h.kind, &payload).unwrap());
    }
    assert_eq!(h.kind, REPLY_TYPE_BLOCK_STATUS);
    let id = u32::from_be_bytes(payload[..4].try_into().unwrap());
    let extents = payload[4..]
        .chunks(8)
        .map(|d| (u32::from_be_bytes(d[..4].try_into().unwrap()), u32::from_be_bytes(d[4..].try_into().unwrap())))
        .collect();
    Ok((id, extents))
}

#[test]
fn block_status_on_the_wire() {
    let unit = unit();
    let blockd = Blockd::start(&unit);
    write_data(&blockd);

    // LIST with no queries names the context; an export this host has no grant for is not available to it.
    let mut raw = Raw::greet(blockd.addr);
    raw.option(&ClientOption::ListMetaContext(MetaContextRequest { export: "data".into(), queries: vec![] }));
    assert_eq!(context_replies(&mut raw), vec![(0, CONTEXT_BASE_ALLOCATION.to_string())], "listed, id 0");
    raw.option(&ClientOption::ListMetaContext(MetaContextRequest { export: "other".into(), queries: vec![] }));
    assert_eq!(raw.option_reply().0.reply, REP_ERR_UNKNOWN);
    // SET before structured replies is invalid.
    let set = MetaContextRequest { export: "data".into(), queries: vec![CONTEXT_BASE_ALLOCATION.into()] };
    raw.option(&ClientOption::SetMetaContext(set));
    assert_eq!(raw.option_reply().0.reply, REP_ERR_INVALID);

    // Selected: the whole volume, then one extent with REQ_ONE, then a range across the boundary.
    let (mut raw, contexts) = raw_with_contexts(&blockd, "data", &["qemu:dirty-bitmap:x", CONTEXT_BASE_ALLOCATION]);
    assert_eq!(contexts, vec![(1, CONTEXT_BASE_ALLOCATION.to_string())], "unknown contexts are left out");
    let (id, extents) = block_status(&mut raw, 0, 0, (12 * MIB) as u32).unwrap();
    assert_eq!(id, 1);
    let want: Vec<(u32, u32)> =
        expected().iter().map(|&(_, len, hole)| (len as u32, if hole { STATE_HOLE | STATE_ZERO } else { 0 })).collect();
    assert_eq!(extents, want);
    assert_eq!(block_status(&mut raw, CMD_FLAG_REQ_ONE, 0, (4 * MIB) as u32).unwrap().1, vec![(MIB as u32, 3)]);
    let across = block_status(&mut raw, 0, BOUNDARY - 4096, 8192).unwrap().1;
    assert_eq!(across, vec![(8192, 0)], "data on both media is one extent");
    // Past the end, zero length, and a flag it does not take: EINVAL, and the connection goes on; FUA is
    // accepted on every command.
    assert_eq!(block_status(&mut raw, 0, 12 * MIB, 1).unwrap_err().error, Errno::EINVAL);
    assert_eq!(block_status(&mut raw, 0, 0, 0).unwrap_err().error, Errno::EINVAL);
    assert_eq!(block_status(&mut raw, CMD_FLAG_NO_HOLE, 0, 1).unwrap_err().error, Errno::EINVAL);
    assert_eq!(block_status(&mut raw, CMD_FLAG_FUA, 0, 4096).unwrap().1, vec![(4096, 3)]);

    // Without a selected context (SET named none this server knows), BLOCK_STATUS is EINVAL.
    let (mut raw, contexts) = raw_with_contexts(&blockd, "data", &["base:unknown"]);
    assert!(contexts.is_empty());
    assert_eq!(block_status(&mut raw, 0, 0, 4096).unwrap_err().error, Errno::EINVAL);
}

#[test]
fn block_status_of_a_missing_medium_is_eio() {
    let unit = unit();
    std::fs::remove_file(&unit.media[1]).unwrap();
    let blockd = Blockd::start(&unit);
    let (mut raw, _) = raw_with_contexts(&blockd, "data", &[CONTEXT_BASE_ALLOCATION]);
    assert_eq!(block_status(&mut raw, 0, BOUNDARY - 4096, 8192).unwrap_err().error, Errno::EIO);
    // The first medium still answers.
    assert_eq!(block_status(&mut raw, 0, 0, 4096).unwrap().1, vec![(4096, 3)]);
}

#[test]
fn the_part_of_a_medium_past_its_file_end_is_not_reported_as_zeroes() {
    let unit = unit();
    let blockd = Blockd::start(&unit);
    write_data(&blockd);
    // The second medium's file now ends 1 MiB in: a hole up to there, then bytes no READ can return.
    std::fs::OpenOptions::new().write(true).open(&unit.media[1]).unwrap().set_len(MIB).unwrap();
    let (mut raw, _) = raw_with_contexts(&blockd, "data", &[CONTEXT_BASE_ALLOCATION]);
    let (_, extents) = block_status(&mut raw, 0, BOUNDARY + 64 * 1024, (3 * MIB) as u32).unwrap();
    let hole = (MIB - 64 * 1024) as u32;
    assert_eq!(extents, vec![(hole, 3), ((3 * MIB) as u32 - hole, 0)]);
    raw.request(CMD_READ, 0, 6, BOUNDARY + 2 * MIB, 4096);
    let mut h = [0u8; 20];
    raw.read_exact(&mut h);
    assert!(ChunkHeader::decode(&h, 1 << 20).unwrap().is_error(), "the read past the file end fails");
}
