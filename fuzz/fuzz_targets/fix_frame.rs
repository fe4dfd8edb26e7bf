//! FIX framing (`atlas_wire::fix::frame`): any bytes are framed as incomplete,
//! garbled (always consuming at least one byte, never more than given) or a
//! message that re-encodes to exactly the bytes it came from (unless a tag is
//! not a positive number: then that tag's text is kept, short and SOH-free);
//! a data field right after its length field is exactly that long.
#![no_main]

use atlas_wire::fix::{Frame, INVALID_TAG, INVALID_TAG_BYTES_MAX, encode, frame, length_tag_of};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match frame(data) {
        Frame::Incomplete => {}
        Frame::Garbled(n, why) => assert!(n >= 1 && n <= data.len() && !why.is_empty()),
        Frame::Message(n, m) => {
            assert!(n <= data.len());
            assert_eq!(m.bytes(), &data[..n]);
            let fields: Vec<(u32, &[u8])> = m.fields().collect();
            assert_eq!(fields[0].0, 8);
            assert_eq!(fields[1].0, 9);
            assert_eq!(fields[fields.len() - 1].0, 10);
            for w in fields.windows(2) {
                let (len, data) = (w[0].1, w[1].1);
                let number = !len.is_empty()
                    && len.len() <= 6
                    && len.iter().all(u8::is_ascii_digit)
                    && (len.len() == 1 || len[0] != b'0');
                if length_tag_of(w[1].0) == Some(w[0].0) && number {
                    assert_eq!(std::str::from_utf8(len).ok().and_then(|l| l.parse().ok()), Some(data.len()));
                }
            }
            match m.invalid_tag() {
                None => {
                    // Everything between the length and the checksum, written again.
                    let body = &fields[2..fields.len() - 1];
                    assert_eq!(encode(body), m.bytes());
                }
                Some(t) => {
                    assert!(!t.is_empty() && t.len() <= INVALID_TAG_BYTES_MAX && !t.contains('\x01'));
                    assert!(fields.iter().any(|f| f.0 == INVALID_TAG));
                }
            }
        }
    }
});
