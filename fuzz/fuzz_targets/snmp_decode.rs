//! Fuzz the SNMP message decoder: it must never panic, and whatever it accepts must survive an encode/decode
//! round trip unchanged.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(msg) = dvsan_snmp::decode(data) {
        let bytes = dvsan_snmp::encode(&msg);
        let again = dvsan_snmp::decode(&bytes).expect("a re-encoded message decodes");
        assert_eq!(again, msg);
    }
});
