//! `esp::nat_t::classify` on arbitrary UDP payloads: never panics, and each
//! verdict matches RFC 3948's rule on the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpn_core::esp::nat_t::{classify, NatTDatagram, NON_ESP_MARKER_LEN};

fuzz_target!(|data: &[u8]| {
    match classify(data) {
        NatTDatagram::Keepalive => assert_eq!(data, [0xFF]),
        NatTDatagram::Ike(ike) => {
            assert_eq!(&data[..NON_ESP_MARKER_LEN], [0, 0, 0, 0]);
            assert_eq!(ike, &data[NON_ESP_MARKER_LEN..]);
            assert!(!ike.is_empty());
        }
        NatTDatagram::Esp(esp) => {
            assert_eq!(esp, data);
            assert!(esp.len() >= 8 && esp[..4] != [0, 0, 0, 0]);
        }
        NatTDatagram::Invalid => {
            assert!(data != [0xFF]);
            assert!(data.len() < 8 || data[..4] == [0, 0, 0, 0]);
            assert!(data.len() <= NON_ESP_MARKER_LEN || data[..4] != [0, 0, 0, 0]);
        }
    }
});
