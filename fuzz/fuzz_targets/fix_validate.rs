//! The FIX data dictionary (`atlas_wire::fix_dictionary::validate`) over
//! whatever the framer accepts. The input is a message's body (from MsgType
//! on), framed here with its BodyLength and CheckSum so that the fuzzer
//! spends its time on fields rather than on checksums. It never panics (repeating groups nest and
//! their counts are the client's), and what it passes is sound: every field
//! has a value, every tag is defined, a valid tag is never named as an
//! invalid one, and the tag named (371, an int field) is always an integer.
#![no_main]

use atlas_wire::fix::{Frame, INVALID_TAG, frame};
use atlas_wire::fix_dictionary::{is_defined, reason, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|body: &[u8]| {
    let mut data = format!("8=FIX.4.4\x019={}\x01", body.len()).into_bytes();
    data.extend_from_slice(body);
    let sum = data.iter().fold(0u8, |a, b| a.wrapping_add(*b));
    data.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
    let Frame::Message(_, m) = frame(&data) else { return };
    match validate(&m) {
        Ok(()) => {
            for (tag, value) in m.fields() {
                assert!(tag != INVALID_TAG && is_defined(tag), "tag {tag} passed");
                assert!(!value.is_empty(), "an empty {tag} passed");
            }
        }
        Err(p) => {
            assert!(!p.text.is_empty());
            // RefTagID (371) is an int field: whatever is named is one.
            let tag = p.tag.unwrap_or_default();
            assert!(tag.is_empty() || tag.parse::<i64>().is_ok(), "371={tag:?}");
            if p.reason == reason::INVALID_TAG_NUMBER {
                // A defined tag written as a number ("025" is not one).
                let defined = tag.parse::<u32>().is_ok_and(|t| t.to_string() == tag && is_defined(t));
                assert!(!defined, "{tag} named invalid");
            } else {
                assert!(!tag.is_empty(), "reason {} names no tag", p.reason);
            }
        }
    }
});
