//! FIX 4.4 tag=value framing: finding one whole message in a byte stream,
//! checking its BodyLength (9) and CheckSum (10), reading its fields, and
//! writing messages with both computed. The session and application layers sit
//! above this (the acceptor); this layer only knows bytes.
//!
//! A message is `8=FIX.4.4␁9=<n>␁…body of n bytes…10=<ccc>␁`, with ␁ the SOH
//! byte (0x01); the checksum is the sum of every byte before `10=`, modulo 256,
//! as three digits. Per the specification, a message that cannot be framed or
//! whose length or checksum is wrong is *garbled*: it is dropped (the framer
//! skips to the next `8=FIX`), never answered. A whole message whose length
//! and checksum are right but which has a field whose tag is not a positive
//! number (`0=x`, `-1=x`) is framed: the specification answers it with a
//! Reject (reason 0, invalid tag number), so the framer keeps it, with the tag
//! as [`INVALID_TAG`] and its text in [`Message::invalid_tag`].
//!
//! A data field (XmlData, RawData, EncodedText…) may hold any byte, SOH
//! included: right after its length field it is read as exactly that many
//! bytes ([`length_tag_of`]); a length that does not end on an SOH makes the
//! message garbled.

/// The field separator.
pub const SOH: u8 = 0x01;
/// The only BeginString accepted.
pub const BEGIN_STRING: &[u8] = b"FIX.4.4";
/// A message is at most this large (bytes, header to checksum).
pub const MESSAGE_BYTES_MAX: usize = 16 * 1024;
/// Fields per message, at most.
pub const FIELDS_MAX: usize = 512;
/// The tag reported for a field whose tag is not a positive number.
pub const INVALID_TAG: u32 = 0;
/// An invalid tag's text is kept if at most this long (else: garbled).
pub const INVALID_TAG_BYTES_MAX: usize = 12;

/// What the framer found at the start of the buffer.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole message yet: read more bytes.
    Incomplete,
    /// A garbled message (or garbage) of this many bytes: drop them.
    Garbled(usize, &'static str),
    /// A whole, valid message of this many bytes.
    Message(usize, Message),
}

/// A parsed message: its bytes and the position of every field's value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    bytes: Vec<u8>,
    fields: Vec<(u32, u32, u32)>,
    /// The first field whose tag is not a positive number: its tag's bytes.
    invalid_tag: Option<(u32, u32)>,
}

impl Message {
    /// Every field, in order: (tag, value).
    pub fn fields(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.fields.iter().map(|&(t, a, b)| (t, &self.bytes[a as usize..b as usize]))
    }

    /// The text of the first tag that is not a positive number, if any (its
    /// field is listed with the tag [`INVALID_TAG`]).
    pub fn invalid_tag(&self) -> Option<&str> {
        let (a, b) = self.invalid_tag?;
        std::str::from_utf8(&self.bytes[a as usize..b as usize]).ok()
    }

    /// The first value of `tag`.
    pub fn get(&self, tag: u32) -> Option<&[u8]> {
        self.fields.iter().find(|f| f.0 == tag).map(|&(_, a, b)| &self.bytes[a as usize..b as usize])
    }

    /// The first value of `tag` as text.
    pub fn text(&self, tag: u32) -> Option<&str> {
        self.get(tag).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `tag` as an unsigned integer.
    pub fn uint(&self, tag: u32) -> Option<u64> {
        let v = self.get(tag)?;
        if v.is_empty() || v.len() > 19 || !v.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(v).ok()?.parse().ok()
    }

    /// MsgType (35).
    pub fn msg_type(&self) -> &[u8] {
        self.get(35).unwrap_or_default()
    }

    /// The message's bytes, as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// A number without sign or leading zeros (so that every message has one
/// spelling, and what is read is what would be written).
fn digits(s: &[u8]) -> Option<usize> {
    if s.is_empty() || s.len() > 6 || !s.iter().all(u8::is_ascii_digit) || (s.len() > 1 && s[0] == b'0') {
        return None;
    }
    s.iter().try_fold(0usize, |acc, d| acc.checked_mul(10)?.checked_add(usize::from(d - b'0')))
}

/// Where the next message might start (`8=FIX` after position 0), or the end.
fn resync(buf: &[u8]) -> usize {
    buf.windows(5).skip(1).position(|w| w == b"8=FIX").map_or(buf.len(), |p| p + 1)
}

/// The length field that must precede `tag` if `tag` is a data field
/// (FIX 4.4's `data` type, whose value may hold SOH): XmlData (213) follows
/// XmlDataLen (212), RawData (96) RawDataLength (95), and so on.
pub fn length_tag_of(tag: u32) -> Option<u32> {
    Some(match tag {
        89 => 93,
        91 => 90,
        96 => 95,
        213 => 212,
        349 | 351 | 353 | 355 | 357 | 359 | 361 | 363 | 365 | 446 | 619 | 622 => tag - 1,
        _ => return None,
    })
}

/// Frames the first message of `buf`.
pub fn frame(buf: &[u8]) -> Frame {
    let head = b"8=FIX.4.4\x019=";
    if buf.len() < head.len() {
        return if head.starts_with(buf) {
            Frame::Incomplete
        } else {
            Frame::Garbled(resync(buf).max(1), "not FIX")
        };
    }
    if !buf.starts_with(head) {
        return Frame::Garbled(resync(buf).max(1), "BeginString must be FIX.4.4, then BodyLength");
    }
    let after_len = head.len();
    let Some(len_end) = buf[after_len..].iter().take(8).position(|&b| b == SOH) else {
        return if buf.len() - after_len < 8 {
            Frame::Incomplete
        } else {
            Frame::Garbled(resync(buf), "BodyLength is not a number")
        };
    };
    let Some(body_len) = digits(&buf[after_len..after_len + len_end]) else {
        return Frame::Garbled(resync(buf), "BodyLength is not a number");
    };
    let body_start = after_len + len_end + 1;
    let total = body_start + body_len + 7; // "10=ccc␁"
    if total > MESSAGE_BYTES_MAX {
        return Frame::Garbled(resync(buf), "message too large");
    }
    if buf.len() < total {
        return Frame::Incomplete;
    }
    let trailer = &buf[body_start + body_len..total];
    // The body ends with a field's SOH, right before the checksum's tag.
    let body_ends_field = body_len > 0 && buf[body_start + body_len - 1] == SOH;
    if !(body_ends_field
        && trailer.starts_with(b"10=")
        && trailer[6] == SOH
        && trailer[3..6].iter().all(u8::is_ascii_digit))
    {
        return Frame::Garbled(resync(buf), "BodyLength does not end where CheckSum starts");
    }
    let want = buf[..body_start + body_len].iter().fold(0u8, |a, b| a.wrapping_add(*b));
    let got = (trailer[3] - b'0') as u32 * 100 + (trailer[4] - b'0') as u32 * 10 + (trailer[5] - b'0') as u32;
    if u32::from(want) != got {
        return Frame::Garbled(resync(buf), "wrong CheckSum");
    }
    let bytes = buf[..total].to_vec();
    let mut fields = Vec::new();
    let mut invalid_tag = None;
    let mut at = 0usize;
    while at < total {
        let Some(eq) = bytes[at..].iter().position(|&b| b == b'=') else {
            return Frame::Garbled(total, "a field without '='");
        };
        let tag_text = &bytes[at..at + eq];
        let tag = match digits(tag_text).and_then(|t| u32::try_from(t).ok()).filter(|t| *t > 0) {
            Some(t) => t,
            // Framed all the same (length and checksum agree): the session
            // rejects it, naming the tag. A piece with a separator in it,
            // or too long to name, is garbage.
            None if !tag_text.is_empty()
                && tag_text.len() <= INVALID_TAG_BYTES_MAX
                && !tag_text.contains(&SOH)
                && std::str::from_utf8(tag_text).is_ok() =>
            {
                invalid_tag.get_or_insert((at as u32, (at + eq) as u32));
                INVALID_TAG
            }
            None => return Frame::Garbled(total, "a tag is not a positive number"),
        };
        let value_start = at + eq + 1;
        // A data field right after its length field is that many bytes, SOH
        // and `=` included; anything else ends at the next SOH.
        let data_len = match (fields.last(), length_tag_of(tag)) {
            (Some(&(prev, a, b)), Some(len_tag)) if prev == len_tag => digits(&bytes[a as usize..b as usize]),
            _ => None,
        };
        let soh = match data_len {
            // Within the body: the trailer is no one's data.
            Some(n) if value_start + n < body_start + body_len && bytes[value_start + n] == SOH => n,
            Some(_) => return Frame::Garbled(total, "a data field does not end where its length says"),
            None => match bytes[value_start..].iter().position(|&b| b == SOH) {
                Some(n) => n,
                None => return Frame::Garbled(total, "a field without SOH"),
            },
        };
        if fields.len() >= FIELDS_MAX {
            return Frame::Garbled(total, "too many fields");
        }
        // Offsets fit: the message is at most MESSAGE_BYTES_MAX bytes.
        fields.push((tag, value_start as u32, (value_start + soh) as u32));
        at = value_start + soh + 1;
    }
    // The header's order is fixed: 8, 9, 35 first.
    if fields.len() < 4 || fields[0].0 != 8 || fields[1].0 != 9 || fields[2].0 != 35 {
        return Frame::Garbled(total, "MsgType (35) must be the third field");
    }
    Frame::Message(total, Message { bytes, fields, invalid_tag })
}

/// Parses a FIX UTCTimestamp (`YYYYMMDD-HH:MM:SS[.s…]`, up to nanoseconds)
/// to nanoseconds since the Unix epoch; None if it is not one (including
/// dates that do not exist).
pub fn parse_utc_timestamp(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 17 || b[8] != b'-' || b[11] != b':' || b[14] != b':' {
        return None;
    }
    let num = |r: std::ops::Range<usize>| -> Option<i64> {
        let t = b.get(r)?;
        t.iter().all(u8::is_ascii_digit).then(|| t.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')))
    };
    let (year, month, day) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (hour, minute, second) = (num(9..11)?, num(12..14)?, num(15..17)?);
    let leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);
    let month_days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if !(1..=month_days).contains(&day) || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let mut nanos = 0i64;
    if b.len() > 17 {
        let frac = &b[18.min(b.len())..];
        if b[17] != b'.' || frac.is_empty() || frac.len() > 9 || !frac.iter().all(u8::is_ascii_digit) {
            return None;
        }
        nanos =
            frac.iter().fold(0i64, |a, d| a * 10 + i64::from(d - b'0')) * 10i64.pow(9 - frac.len() as u32);
    }
    // Days since the epoch of a civil date (Howard Hinnant's algorithm).
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hour * 3600 + minute * 60 + second) * 1_000_000_000) + nanos)
}

/// Writes a message: `8`, `9` (computed), then `fields` in order (35 first),
/// then `10` (computed).
pub fn encode(fields: &[(u32, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(&mut out, fields);
    out
}

/// [`encode`], appending to `out` (a session's output buffer) with no
/// allocation of its own beyond `out` growing: every execution report passes
/// through here.
pub fn encode_into(out: &mut Vec<u8>, fields: &[(u32, &[u8])]) {
    encode_body_into(out, fields, &Body::default());
}

/// [`encode_into`] with `header` fields (35 first) and then a body already
/// written field by field: the message is `header` followed by `body`'s
/// fields, in order.
pub fn encode_body_into(out: &mut Vec<u8>, header: &[(u32, &[u8])], body: &Body) {
    let body_len: usize =
        header.iter().map(|(tag, value)| decimal_digits(u64::from(*tag)) + value.len() + 2).sum::<usize>()
            + body.0.len();
    let start = out.len();
    out.reserve(body_len + 32);
    out.extend_from_slice(b"8=FIX.4.4\x019=");
    push_decimal(out, body_len as u64);
    out.push(SOH);
    for (tag, value) in header {
        push_decimal(out, u64::from(*tag));
        out.push(b'=');
        out.extend_from_slice(value);
        out.push(SOH);
    }
    out.extend_from_slice(&body.0);
    let sum = out[start..].iter().fold(0u8, |a, b| a.wrapping_add(*b));
    out.extend_from_slice(&[b'1', b'0', b'=', b'0' + sum / 100, b'0' + sum / 10 % 10, b'0' + sum % 10, SOH]);
}

/// Fields of a message body, written as they will be sent (`tag=value` SOH):
/// an execution report is built in one buffer instead of a string per field.
/// Values are the caller's to keep free of SOH, as with [`encode`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Body(Vec<u8>);

impl Body {
    /// An empty body with room for `bytes`.
    pub fn with_capacity(bytes: usize) -> Body {
        Body(Vec::with_capacity(bytes))
    }

    /// Appends `tag=value`.
    pub fn push(&mut self, tag: u32, value: &[u8]) -> &mut Body {
        self.push_with(tag, |v| v.extend_from_slice(value))
    }

    /// Appends `tag=value` for a text value.
    pub fn push_str(&mut self, tag: u32, value: &str) -> &mut Body {
        self.push(tag, value.as_bytes())
    }

    /// Appends `tag=n` in decimal.
    pub fn push_int(&mut self, tag: u32, n: i64) -> &mut Body {
        self.push_with(tag, |v| {
            if n < 0 {
                v.push(b'-');
            }
            push_decimal(v, n.unsigned_abs());
        })
    }

    /// Appends `tag=` and whatever `write` appends as the value.
    pub fn push_with(&mut self, tag: u32, write: impl FnOnce(&mut Vec<u8>)) -> &mut Body {
        push_decimal(&mut self.0, u64::from(tag));
        self.0.push(b'=');
        write(&mut self.0);
        self.0.push(SOH);
        self
    }

    /// The fields, in order.
    pub fn fields(&self) -> impl Iterator<Item = (u32, &[u8])> {
        self.0.split(|b| *b == SOH).filter(|f| !f.is_empty()).filter_map(|f| {
            let eq = f.iter().position(|b| *b == b'=')?;
            let tag = std::str::from_utf8(&f[..eq]).ok()?.parse().ok()?;
            Some((tag, &f[eq + 1..]))
        })
    }

    /// The first value of `tag`, as text.
    pub fn text(&self, tag: u32) -> Option<&str> {
        self.fields().find(|(t, _)| *t == tag).and_then(|(_, v)| std::str::from_utf8(v).ok())
    }
}

/// Appends `n` in decimal (a value written straight into a [`Body`]).
pub fn write_decimal(out: &mut Vec<u8>, n: u64) {
    push_decimal(out, n);
}

fn decimal_digits(mut n: u64) -> usize {
    let mut digits = 1;
    while n >= 10 {
        n /= 10;
        digits += 1;
    }
    digits
}

fn push_decimal(out: &mut Vec<u8>, n: u64) {
    // Two digits per step (itoa): every tag and every number of every
    // execution report goes through here.
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logon() -> Vec<u8> {
        encode(&[
            (35, b"A"),
            (49, b"CLIENT"),
            (56, b"ATLAS"),
            (34, b"1"),
            (52, b"20261122-16:00:00.000"),
            (98, b"0"),
            (108, b"30"),
        ])
    }

    /// The message as the standard spells it out, written the obvious way.
    fn reference(fields: &[(u32, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (tag, value) in fields {
            body.extend_from_slice(format!("{tag}=").as_bytes());
            body.extend_from_slice(value);
            body.push(SOH);
        }
        let mut out = format!("8=FIX.4.4\x019={}\x01", body.len()).into_bytes();
        out.extend_from_slice(&body);
        let sum = out.iter().map(|b| u32::from(*b)).sum::<u32>() % 256;
        out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        out
    }

    #[test]
    fn encoding_appends_the_message_the_standard_spells_out() {
        // Tags of every width, body lengths across each decimal width, and
        // checksums below 10 and 100 (the zero padding).
        let tags = [0u32, 7, 35, 100, 9_999, 10_000, u32::MAX];
        let mut checksums = std::collections::HashSet::new();
        for len in [0usize, 1, 5, 9, 10, 98, 99, 100, 999, 1_000, 70_000] {
            for fill in [b'A', b'~', 0x80, 0xff] {
                let value = vec![fill; len];
                let fields: Vec<(u32, &[u8])> = tags.iter().map(|t| (*t, &value[..])).collect();
                let mut out = b"earlier output".to_vec();
                encode_into(&mut out, &fields);
                let want = reference(&fields);
                assert_eq!(&out[..14], b"earlier output");
                assert_eq!(out[14..], want[..], "{len} x {fill}");
                assert_eq!(encode(&fields), want);
                checksums.insert(want[want.len() - 4..want.len() - 1].to_vec());
            }
        }
        for byte in 0..=255u8 {
            // One byte's value moves the sum through every checksum.
            let v = [byte];
            let fields: [(u32, &[u8]); 1] = [(1, &v)];
            assert_eq!(encode(&fields), reference(&fields));
        }
        assert!(checksums.len() > 10, "{checksums:?}");
        assert!(matches!(frame(&encode(&[(35, b"0"), (34, b"1")])), Frame::Message(..)));
    }

    #[test]
    fn a_body_written_field_by_field_encodes_as_the_same_fields() {
        let mut body = Body::with_capacity(64);
        body.push(11, b"cl-1").push_str(55, "ACME").push_int(38, 0).push_int(14, 12_345).push_int(99, -7);
        body.push_with(17, |v| v.extend_from_slice(b"9-3-N")).push_int(1, i64::MIN).push(58, b"");
        let fields: Vec<(u32, Vec<u8>)> = body.fields().map(|(t, v)| (t, v.to_vec())).collect();
        let min = i64::MIN.to_string();
        let want: Vec<(u32, &[u8])> = vec![
            (11, b"cl-1"),
            (55, b"ACME"),
            (38, b"0"),
            (14, b"12345"),
            (99, b"-7"),
            (17, b"9-3-N"),
            (1, min.as_bytes()),
            (58, b""),
        ];
        assert_eq!(fields.iter().map(|(t, v)| (*t, &v[..])).collect::<Vec<_>>(), want);
        assert_eq!(body.text(14), Some("12345"));
        assert_eq!(body.text(6), None);
        let header: [(u32, &[u8]); 2] = [(35, b"8"), (34, b"2")];
        let mut out = b"earlier".to_vec();
        encode_body_into(&mut out, &header, &body);
        let all: Vec<(u32, &[u8])> = header.iter().copied().chain(want.iter().copied()).collect();
        assert_eq!(out[7..], reference(&all)[..]);
        assert!(matches!(frame(&out[7..]), Frame::Message(..)));
    }

    #[test]
    fn utc_timestamps_parse() {
        assert_eq!(parse_utc_timestamp("19700101-00:00:00"), Some(0));
        assert_eq!(parse_utc_timestamp("19700101-00:00:01.5"), Some(1_500_000_000));
        assert_eq!(parse_utc_timestamp("20261122-10:38:02.123"), Some(1_795_343_882_123_000_000));
        assert_eq!(parse_utc_timestamp("20240229-00:00:00.000000001"), Some(1_709_164_800_000_000_001));
        for bad in [
            "",
            "20261122",
            "2026112-07:18:02",
            "20261322-07:18:02",
            "20230229-07:18:02",
            "20261131-07:18:02",
            "20261122-24:00:00",
            "20261122-07:18:02.",
            "20261122-07:18:02.1234567890",
            "20261122 07:18:02",
            "2026112a-07:18:02",
        ] {
            assert_eq!(parse_utc_timestamp(bad), None, "{bad}");
        }
    }

    #[test]
    fn frames_what_it_writes() {
        let m = logon();
        let Frame::Message(n, msg) = frame(&m) else { panic!("{:?}", frame(&m)) };
        assert_eq!(n, m.len());
        assert_eq!(msg.msg_type(), b"A");
        assert_eq!(msg.text(49), Some("CLIENT"));
        assert_eq!(msg.uint(108), Some(30));
        assert_eq!(msg.bytes(), &m[..]);
        let fields: Vec<(u32, Vec<u8>)> = msg.fields().skip(2).map(|(t, v)| (t, v.to_vec())).collect();
        let borrowed: Vec<(u32, &[u8])> =
            fields.iter().map(|(t, v)| (*t, v.as_slice())).take(fields.len() - 1).collect();
        assert_eq!(encode(&borrowed), m);
    }

    #[test]
    fn partial_garbled_and_resync() {
        let m = logon();
        for cut in 0..m.len() {
            assert_eq!(frame(&m[..cut]), Frame::Incomplete, "cut at {cut}");
        }
        let mut bad = m.clone();
        let n = bad.len();
        bad[n - 2] = if bad[n - 2] == b'9' { b'8' } else { b'9' };
        assert!(matches!(frame(&bad), Frame::Garbled(_, "wrong CheckSum")));
        // Garbage before a message is skipped up to it.
        let mut stream = b"garbage\x01".to_vec();
        stream.extend_from_slice(&m);
        let Frame::Garbled(skip, _) = frame(&stream) else { panic!() };
        assert_eq!(skip, 8);
        assert!(matches!(frame(&stream[skip..]), Frame::Message(..)));
        assert!(matches!(frame(b"8=FIX.4.2\x019=5\x01"), Frame::Garbled(..)));
        // Leading zeros have no place in a tag (the length and checksum are right).
        assert!(matches!(frame(&raw(b"35=0\x0149=A\x01")), Frame::Message(..)));
        // In the body they are framed, to be rejected by name.
        let Frame::Message(_, m) = frame(&raw(b"35=0\x0149=A\x01007=x\x01-1=y\x01")) else { panic!() };
        assert_eq!(m.invalid_tag(), Some("007"));
        assert_eq!(m.get(INVALID_TAG), Some(&b"x"[..]));
        assert!(matches!(frame(&raw(b"35=0\x0149=A\x01")), Frame::Message(..)));
        assert!(matches!(frame(&raw(b"035=0\x0149=A\x01")), Frame::Garbled(..)));
        assert!(matches!(
            frame(&raw(b"35=0\x01a\x01b=c\x01")),
            Frame::Garbled(_, "a tag is not a positive number")
        ));
    }

    fn raw(body: &[u8]) -> Vec<u8> {
        let mut out = format!("8=FIX.4.4\x019={}\x01", body.len()).into_bytes();
        out.extend_from_slice(body);
        let sum = out.iter().fold(0u8, |a, b| a.wrapping_add(*b));
        out.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
        out
    }

    #[test]
    fn data_fields_are_framed_by_their_length() {
        // XmlData holding SOH, `=` and a whole FIX header, as QuickFIX's
        // ReceiveXmlMessage script sends it.
        let xml = b"<RTRF>8=FIX.4.3\x019=377\x0135=8\x0134=208\x01blah blah blah</RTRF>";
        let mut body = b"35=n\x0134=2\x01212=".to_vec();
        body.extend_from_slice(format!("{}\x01213=", xml.len()).as_bytes());
        body.extend_from_slice(xml);
        body.extend_from_slice(b"\x0158=after\x01");
        let m = raw(&body);
        let Frame::Message(n, msg) = frame(&m) else { panic!("{:?}", frame(&m)) };
        assert_eq!(n, m.len());
        assert_eq!(msg.get(213), Some(&xml[..]));
        assert_eq!(msg.text(58), Some("after"));
        assert_eq!(msg.fields().count(), 8);
        // The trailer's Signature follows SignatureLength the same way.
        let Frame::Message(_, msg) = frame(&raw(b"35=0\x0193=4\x0189=a\x01=b\x01")) else { panic!() };
        assert_eq!(msg.get(89), Some(&b"a\x01=b"[..]));
        // So does RawData in a Logon.
        let Frame::Message(_, msg) = frame(&raw(b"35=A\x0195=3\x0196=\x01\x01\x01\x01")) else { panic!() };
        assert_eq!(msg.get(96), Some(&b"\x01\x01\x01"[..]));
        // A length that does not end on an SOH inside the body: garbled,
        // whether it falls short, runs into the trailer or past the message,
        // or would take the CheckSum field in.
        for bad in [
            &b"35=n\x01212=2\x01213=abc\x01"[..],
            b"35=n\x01212=9\x01213=abc\x01",
            b"35=n\x01212=99\x01213=abc\x01",
            // It would swallow the CheckSum field ("abc␁10=ccc").
            b"35=n\x01212=10\x01213=abc\x01",
        ] {
            assert_eq!(
                frame(&raw(bad)),
                Frame::Garbled(raw(bad).len(), "a data field does not end where its length says"),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        // Without its length right before it, a data field ends at the next
        // SOH like any other (the length field alone is an ordinary count).
        let Frame::Message(_, msg) = frame(&raw(b"35=n\x01213=a\x01212=1\x0158=b\x01")) else { panic!() };
        assert_eq!(msg.get(213), Some(&b"a"[..]));
        assert!(matches!(frame(&raw(b"35=n\x01212=x\x01213=a\x01")), Frame::Message(..)));
    }
}
