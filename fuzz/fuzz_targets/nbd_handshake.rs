//! Fuzz the handshake decoders with an arbitrary byte stream, read the way the server reads a client (client
//! flags, then option headers and payloads) and the way the client reads a server (option replies).
//!
//! Properties: no panic; no payload longer than the limit is accepted; options that parse re-encode to a form
//! that parses to the same value.

#![no_main]

use dvsan_nbd::constants::*;
use dvsan_nbd::handshake::{
    decode_greeting, ClientFlags, ClientOption, ExportListing, Info, OptionHeader, OptionReplyHeader,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Server side: client flags, then options.
    if data.len() >= 4 {
        let flags = u32::from_be_bytes([data[0], data[1], data[2], data[3]]);
        let _ = ClientFlags::decode(flags, FLAG_FIXED_NEWSTYLE | FLAG_NO_ZEROES);
        let mut rest = &data[4..];
        while rest.len() >= OPTION_HEADER_LEN {
            let Ok(header) = OptionHeader::decode(&rest[..OPTION_HEADER_LEN]) else { break };
            assert!(header.length <= MAX_OPTION_PAYLOAD);
            rest = &rest[OPTION_HEADER_LEN..];
            let len = (header.length as usize).min(rest.len());
            let payload = &rest[..len];
            rest = &rest[len..];
            if let Ok(option) = ClientOption::parse(header.option, payload) {
                if !matches!(option, ClientOption::Other(_) | ClientOption::Abort) {
                    let mut encoded = Vec::new();
                    option.encode(&mut encoded);
                    let h = OptionHeader::decode(&encoded[..OPTION_HEADER_LEN]).expect("own header");
                    let again = ClientOption::parse(h.option, &encoded[OPTION_HEADER_LEN..]).expect("own option");
                    assert_eq!(again, option);
                }
            }
        }
    }

    // Client side: greeting, then option replies.
    let _ = decode_greeting(data);
    let mut rest = data;
    while rest.len() >= OPTION_REPLY_HEADER_LEN {
        let Ok(h) = OptionReplyHeader::decode(&rest[..OPTION_REPLY_HEADER_LEN]) else { break };
        assert!(h.length <= MAX_OPTION_REPLY_PAYLOAD);
        rest = &rest[OPTION_REPLY_HEADER_LEN..];
        let len = (h.length as usize).min(rest.len());
        let payload = &rest[..len];
        rest = &rest[len..];
        match h.reply {
            REP_INFO => {
                if let Ok(info) = Info::parse(payload) {
                    let mut encoded = Vec::new();
                    info.encode_reply(&mut encoded, h.option);
                    if !matches!(info, Info::Unknown(_)) {
                        assert_eq!(Info::parse(&encoded[OPTION_REPLY_HEADER_LEN..]).expect("own info"), info);
                    }
                }
            }
            REP_SERVER => {
                let _ = ExportListing::parse(payload);
            }
            _ => {}
        }
    }
});
