//! Atlas's FIX 4.4 data dictionary: which tags exist, the format and the
//! enumerated values of the fields Atlas reads, and which fields (and
//! repeating groups) each message Atlas accepts may carry. The session layer
//! checks every message against it before acting on it, so a malformed or
//! unexpected field gets the specification's session-level Reject, naming the
//! tag (371) and the reason (373), instead of being misread or silently
//! ignored.
//!
//! The dictionary is FIX 4.4 restricted to what Atlas does, as a venue's
//! rules of engagement are: a field FIX 4.4 defines but no message here lists
//! is "not defined for this message type" (reason 2). Fields that are listed
//! fall in three kinds, decided by the handlers, not here: acted on (Price,
//! TimeInForce…), informational and recorded nowhere (Account, Parties,
//! TradingSessions, TransactTime, Text), and meaningful but unsupported
//! (MinQty, MaxFloor, ExpireTime…), which the handlers refuse as business
//! rejects rather than ignore. The checks run in the order QuickFIX's
//! validator uses, so the first problem in a message is the one reported:
//! field order (14), empty value (4), repeated tag (13), format (6), value
//! (5), tag number (0), membership (2), then group counts (16) and the order
//! inside a group (15). Required fields are the handlers' to check.

use crate::fix::{INVALID_TAG, Message, parse_utc_timestamp};

/// A field's value format (FIX 4.4 data types, as far as they differ).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// int: optional '-', digits.
    Int,
    /// SeqNum, Length, NumInGroup: digits.
    Count,
    /// float, Qty, Price: optional '-', digits with at most one '.'.
    Float,
    /// char: one character.
    Char,
    /// String, data: anything non-empty.
    Text,
    /// MultipleValueString: single values separated by spaces.
    Multiple,
    /// UTCTimestamp: `YYYYMMDD-HH:MM:SS[.sss]`.
    Timestamp,
    /// LocalMktDate: `YYYYMMDD`.
    Date,
}

/// Every tag FIX 4.4 defines (1 to 956 but three), and Atlas's own.
pub fn is_defined(tag: u32) -> bool {
    ((1..=956).contains(&tag) && !matches!(tag, 101 | 261 | 809)) || CUSTOM_TAGS.contains(&tag)
}

/// Tags outside FIX 4.4 that Atlas reads: SelfTradePrevention (7928) on
/// orders and CancelOrdersOnDisconnect (8013) on the Logon, as Coinbase's FIX
/// gateway names them.
const CUSTOM_TAGS: &[u32] = &[7928, 8013];

/// The standard header's fields (8, 9 and 35 are checked by the framer).
fn is_header(tag: u32) -> bool {
    matches!(
        tag,
        8 | 9
            | 35
            | 49
            | 56
            | 115
            | 128
            | 90
            | 91
            | 34
            | 50
            | 142
            | 57
            | 143
            | 116
            | 144
            | 129
            | 145
            | 43
            | 97
            | 52
            | 122
            | 212
            | 213
            | 347
            | 369
            | 627
            | 628
            | 629
            | 630
    )
}

/// The standard trailer's fields.
fn is_trailer(tag: u32) -> bool {
    matches!(tag, 93 | 89 | 10)
}

/// Format and enumerated values (empty: any) of the fields Atlas knows.
fn spec(tag: u32) -> Option<(Format, &'static [&'static str])> {
    use Format::*;
    const BOOL: &[&str] = &["Y", "N"];
    Some(match tag {
        // Header and trailer.
        9 | 34 | 90 | 93 | 212 | 369 | 627 | 630 => (Count, &[]),
        43 | 97 => (Char, BOOL),
        52 | 122 | 629 => (Timestamp, &[]),
        // Session messages.
        7 | 16 | 36 | 45 | 95 | 354 | 383 | 384 | 789 => (Count, &[]),
        98 => (Int, &["0", "1", "2", "3", "4", "5", "6"]),
        108 | 371 => (Int, &[]),
        123 | 141 | 464 => (Char, BOOL),
        373 => (
            Int,
            &[
                "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
                "17", "99",
            ],
        ),
        385 => (Char, &["R", "S"]),
        8013 => (Char, &["Y", "S", "N"]),
        // Orders.
        38 | 44 | 99 | 110 | 111 | 152 => (Float, &[]),
        18 => (
            Multiple,
            &[
                "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "a", "B", "b", "c", "C", "d", "D",
                "E", "e", "F", "G", "H", "I", "J", "K", "L", "M", "N", "O", "P", "Q", "R", "S", "U", "V",
                "W", "X", "Y", "Z",
            ],
        ),
        21 => (Char, &["1", "2", "3"]),
        40 => (
            Char,
            &[
                "1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F", "G", "H", "I",
                "J", "K", "L", "M", "P",
            ],
        ),
        54 => (Char, &["1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F", "G"]),
        59 => (Char, &["0", "1", "2", "3", "4", "5", "6", "7"]),
        60 | 126 => (Timestamp, &[]),
        432 => (Date, &[]),
        453 | 802 | 386 => (Count, &[]),
        447 => (
            Char,
            &["1", "2", "3", "4", "5", "6", "7", "8", "9", "A", "B", "C", "D", "E", "F", "G", "H", "I"],
        ),
        452 | 803 => (Int, &[]),
        460 => (Int, &["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13"]),
        167 => (Text, SECURITY_TYPES),
        530 => (Char, &["1", "2", "3", "4", "5", "6", "7"]),
        585 => (Int, &["1", "2", "3", "4", "5", "6", "7", "8"]),
        7928 => (Char, &["D", "O", "N", "B"]),
        _ => return None,
    })
}

/// SecurityType (167) values in FIX 4.4.
const SECURITY_TYPES: &[&str] = &[
    "ABS",
    "AMENDED",
    "AN",
    "BA",
    "BN",
    "BOX",
    "BRADY",
    "BRIDGE",
    "BUYSELL",
    "CB",
    "CD",
    "CL",
    "CMBS",
    "CMO",
    "COFO",
    "COFP",
    "CORP",
    "CP",
    "CPP",
    "CS",
    "DEFLTED",
    "DINP",
    "DN",
    "DUAL",
    "EUCD",
    "EUCORP",
    "EUCP",
    "EUSOV",
    "EUSUPRA",
    "FAC",
    "FADN",
    "FOR",
    "FORWARD",
    "FUT",
    "GO",
    "IET",
    "LOFC",
    "LQN",
    "MATURED",
    "MBS",
    "MF",
    "MIO",
    "MLEG",
    "MPO",
    "MPP",
    "MPT",
    "MT",
    "MTN",
    "NONE",
    "ONITE",
    "OPT",
    "PEF",
    "PFAND",
    "PN",
    "PS",
    "PZFJ",
    "RAN",
    "REPLACD",
    "REPO",
    "RETIRED",
    "REV",
    "RVLV",
    "RVLVTRM",
    "SECLOAN",
    "SECPLEDGE",
    "SPCLA",
    "SPCLO",
    "SPCLT",
    "STN",
    "STRUCT",
    "SUPRA",
    "SWING",
    "TAN",
    "TAXA",
    "TBA",
    "TBILL",
    "TBOND",
    "TCAL",
    "TD",
    "TECP",
    "TERM",
    "TINT",
    "TIPS",
    "TNOTE",
    "TPRN",
    "TRAN",
    "UST",
    "USTB",
    "VRDN",
    "WAR",
    "WITHDRN",
    "WLD",
    "XCN",
    "XLINKD",
    "YANK",
    "YCD",
];

/// A message body's entry: a field, a repeating group (its NumInGroup tag
/// and its members, the first of which starts every instance), or a
/// component (a block of entries several messages share, as FIX defines them).
enum Entry {
    Field(u32),
    Group(u32, &'static [Entry]),
    Component(&'static [Entry]),
}
use Entry::{Component as C, Field as F, Group as G};

const PARTIES: Entry = G(453, &[F(448), F(447), F(452), G(802, &[F(523), F(803)])]);
const TRADING_SESSIONS: Entry = G(386, &[F(336), F(625)]);
/// The Instrument fields Atlas accepts (the product is named by Symbol).
const INSTRUMENT: Entry = C(&[F(55), F(167), F(460), F(207), F(107)]);
/// Free text, plain and encoded.
const TEXT: Entry = C(&[F(58), F(354), F(355)]);
/// Who sent an order request: its ids and the informational account fields.
const REQUEST: Entry = C(&[F(11), F(526), F(1), PARTIES]);
/// An order's terms, as a new order and a replace both carry them.
const ORDER_TERMS: Entry = C(&[
    F(18),
    F(21),
    TRADING_SESSIONS,
    INSTRUMENT,
    F(54),
    F(60),
    F(38),
    F(152),
    F(40),
    F(44),
    F(99),
    F(59),
    F(126),
    F(432),
    F(110),
    F(111),
    TEXT,
]);

/// The body each message type Atlas handles may carry; None: a type Atlas
/// does not handle (its body is checked field by field only, and it gets a
/// BusinessMessageReject).
fn body(msg_type: &[u8]) -> Option<&'static [Entry]> {
    Some(match msg_type {
        b"0" | b"1" => &[F(112)],
        b"2" => &[F(7), F(16)],
        b"3" => &[F(45), F(371), F(372), F(373), TEXT],
        b"4" => &[F(123), F(36)],
        b"5" => &[TEXT],
        b"A" => &[
            F(98),
            F(108),
            F(95),
            F(96),
            F(141),
            F(789),
            F(383),
            G(384, &[F(372), F(385)]),
            F(464),
            F(553),
            F(554),
            F(8013),
        ],
        b"D" => &[REQUEST, ORDER_TERMS, F(7928)],
        b"F" => &[F(41), F(37), REQUEST, INSTRUMENT, F(54), F(60), F(38), TEXT],
        b"G" => &[F(37), F(41), REQUEST, ORDER_TERMS],
        b"q" => &[F(11), F(526), F(530), F(336), F(625), INSTRUMENT, F(54), F(60), TEXT],
        b"H" => &[F(37), F(11), F(526), PARTIES, F(790), F(1), INSTRUMENT, F(54)],
        b"AF" => &[F(584), F(585), PARTIES, F(1), INSTRUMENT, F(54)],
        _ => return None,
    })
}

/// What is wrong with a message: SessionRejectReason (373), the tag (371) as
/// its text (an invalid tag is named as written), and why.
#[derive(Debug, PartialEq, Eq)]
pub struct Problem {
    /// SessionRejectReason (373).
    pub reason: u32,
    /// RefTagID (371), as the client wrote it; None for a tag that is not
    /// even an integer.
    pub tag: Option<String>,
    /// The reason in words (58).
    pub text: &'static str,
}

/// SessionRejectReason (373) values.
pub mod reason {
    /// Not a tag FIX 4.4 (or Atlas) defines.
    pub const INVALID_TAG_NUMBER: u32 = 0;
    /// A field the message needs is missing.
    pub const REQUIRED_TAG_MISSING: u32 = 1;
    /// A defined tag this message type does not carry.
    pub const TAG_NOT_DEFINED_FOR_MSG_TYPE: u32 = 2;
    /// `tag=` with nothing after it.
    pub const TAG_WITHOUT_VALUE: u32 = 4;
    /// A value outside the field's enumeration or range.
    pub const VALUE_INCORRECT: u32 = 5;
    /// A value not in the field's format.
    pub const INCORRECT_DATA_FORMAT: u32 = 6;
    /// SenderCompID or TargetCompID is not the session's.
    pub const COMP_ID_PROBLEM: u32 = 9;
    /// SendingTime too far from the exchange's clock.
    pub const SENDING_TIME_ACCURACY: u32 = 10;
    /// A MsgType FIX 4.4 does not define.
    pub const INVALID_MSG_TYPE: u32 = 11;
    /// A tag repeated outside a repeating group.
    pub const TAG_APPEARS_MORE_THAN_ONCE: u32 = 13;
    /// A header field after the body, or a body field after the trailer.
    pub const OUT_OF_ORDER: u32 = 14;
    /// A repeating group's instance that does not start with its first field.
    pub const GROUP_OUT_OF_ORDER: u32 = 15;
    /// NumInGroup differs from the instances that follow.
    pub const GROUP_COUNT: u32 = 16;
    /// Anything else.
    pub const OTHER: u32 = 99;
}

fn problem(reason: u32, tag: u32, text: &'static str) -> Problem {
    Problem { reason, tag: Some(tag.to_string()), text }
}

fn unsigned(v: &[u8]) -> &[u8] {
    v.strip_prefix(b"-").unwrap_or(v)
}

fn format_ok(format: Format, v: &[u8]) -> bool {
    let digits = |d: &[u8]| !d.is_empty() && d.iter().all(u8::is_ascii_digit);
    match format {
        Format::Count => digits(v),
        Format::Int => digits(unsigned(v)),
        Format::Float => {
            let v = unsigned(v);
            let (whole, frac) = match v.iter().position(|&b| b == b'.') {
                Some(p) => (&v[..p], &v[p + 1..]),
                None => (v, &b""[..]),
            };
            (digits(whole) || digits(frac))
                && (whole.is_empty() || digits(whole))
                && (frac.is_empty() || digits(frac))
        }
        Format::Char => v.len() == 1 && v[0].is_ascii_graphic(),
        Format::Text | Format::Multiple => true,
        Format::Timestamp => std::str::from_utf8(v).ok().and_then(parse_utc_timestamp).is_some(),
        Format::Date => {
            v.len() == 8
                && digits(v)
                && matches!(std::str::from_utf8(&v[4..6]).map(str::parse::<u8>), Ok(Ok(1..=12)))
                && matches!(std::str::from_utf8(&v[6..8]).map(str::parse::<u8>), Ok(Ok(1..=31)))
        }
    }
}

/// The checks every field gets, wherever it is: empty, format, value, number.
fn check_field(tag: u32, v: &[u8], m: &Message) -> Result<(), Problem> {
    if tag == INVALID_TAG {
        // RefTagID (371) is an int: a tag written as one (`0`, `-1`, `007`)
        // is named, anything else is not.
        let text = m.invalid_tag().filter(|t| t.parse::<i64>().is_ok()).map(str::to_owned);
        return Err(Problem { reason: reason::INVALID_TAG_NUMBER, tag: text, text: "Invalid tag number" });
    }
    if v.is_empty() {
        return Err(problem(reason::TAG_WITHOUT_VALUE, tag, "Tag specified without a value"));
    }
    if let Some((format, values)) = spec(tag) {
        if !format_ok(format, v) {
            return Err(problem(reason::INCORRECT_DATA_FORMAT, tag, "Incorrect data format for value"));
        }
        let known = |x: &[u8]| values.iter().any(|e| e.as_bytes() == x);
        let in_range = values.is_empty()
            || match format {
                Format::Multiple => v.split(|&b| b == b' ').all(known),
                _ => known(v),
            };
        if !in_range {
            return Err(problem(
                reason::VALUE_INCORRECT,
                tag,
                "Value is incorrect (out of range) for this tag",
            ));
        }
    }
    if !is_defined(tag) {
        return Err(problem(reason::INVALID_TAG_NUMBER, tag, "Invalid tag number"));
    }
    Ok(())
}

/// The field or group `tag` names among `entries` (components looked into).
fn member(entries: &'static [Entry], tag: u32) -> Option<&'static Entry> {
    entries.iter().find_map(|e| match e {
        F(t) | G(t, _) if *t == tag => Some(e),
        C(inner) => member(inner, tag),
        _ => None,
    })
}

/// Reads the instances of a group whose count field is at `fields[*at - 1]`,
/// leaving `at` after the last.
fn group(
    fields: &[(u32, &[u8])],
    at: &mut usize,
    count_tag: u32,
    count: usize,
    members: &'static [Entry],
    m: &Message,
) -> Result<(), Problem> {
    // Groups here begin with a field (components only stand at the top).
    let delimiter = match members.first() {
        Some(F(t) | G(t, _)) => *t,
        Some(C(_)) | None => return Ok(()),
    };
    let mut instances = 0usize;
    while let Some(&(tag, _)) = fields.get(*at) {
        if member(members, tag).is_none() {
            break;
        }
        if tag != delimiter {
            return Err(problem(reason::GROUP_OUT_OF_ORDER, tag, "Repeating group fields out of order"));
        }
        instances += 1;
        if instances > count {
            return Err(problem(
                reason::GROUP_COUNT,
                count_tag,
                "Incorrect NumInGroup count for repeating group",
            ));
        }
        let mut seen: Vec<u32> = Vec::new();
        while let Some(&(tag, v)) = fields.get(*at) {
            let Some(entry) = member(members, tag) else { break };
            if tag == delimiter && !seen.is_empty() {
                break;
            }
            if seen.contains(&tag) {
                return Err(problem(reason::TAG_APPEARS_MORE_THAN_ONCE, tag, "Tag appears more than once"));
            }
            seen.push(tag);
            check_field(tag, v, m)?;
            *at += 1;
            if let G(_, inner) = entry {
                let n = parse_count(v);
                group(fields, at, tag, n, inner, m)?;
            }
        }
    }
    if instances != count {
        return Err(problem(
            reason::GROUP_COUNT,
            count_tag,
            "Incorrect NumInGroup count for repeating group",
        ));
    }
    Ok(())
}

/// A NumInGroup value (its format was checked), capped: a group cannot have
/// more instances than a message has fields.
fn parse_count(v: &[u8]) -> usize {
    std::str::from_utf8(v).ok().and_then(|s| s.parse().ok()).unwrap_or(usize::MAX)
}

/// The tags seen in a message, in constant time per tag (a message may have
/// FIELDS_MAX fields): a bit per tag FIX 4.4 defines, a list for the rest
/// (short: a tag above them is rejected as soon as it is checked, but for
/// Atlas's own two).
#[derive(Default)]
struct Seen {
    bits: [u64; 16],
    others: Vec<u32>,
}

impl Seen {
    /// False if `tag` was seen already.
    fn insert(&mut self, tag: u32) -> bool {
        if let Some(word) = self.bits.get_mut((tag / 64) as usize) {
            let bit = 1u64 << (tag % 64);
            let new = *word & bit == 0;
            *word |= bit;
            return new;
        }
        if self.others.contains(&tag) {
            return false;
        }
        self.others.push(tag);
        true
    }
}

/// Checks a framed message against the dictionary. Err: the first problem,
/// for a session-level Reject.
pub fn validate(m: &Message) -> Result<(), Problem> {
    let layout = body(m.msg_type());
    let fields: Vec<(u32, &[u8])> = m.fields().collect();
    // 0: header, 1: body, 2: trailer.
    let mut part = 0;
    let mut seen = Seen::default();
    let mut at = 0;
    while let Some(&(tag, v)) = fields.get(at) {
        at += 1;
        let now = if is_header(tag) {
            0
        } else if is_trailer(tag) {
            2
        } else {
            1
        };
        if now < part {
            return Err(problem(reason::OUT_OF_ORDER, tag, "Tag specified out of required order"));
        }
        part = now;
        if v.is_empty() && tag != INVALID_TAG {
            return Err(problem(reason::TAG_WITHOUT_VALUE, tag, "Tag specified without a value"));
        }
        // Without a layout, a repeated tag may be a group's: not judged.
        if !seen.insert(tag) && tag != INVALID_TAG && (layout.is_some() || now == 0) {
            return Err(problem(reason::TAG_APPEARS_MORE_THAN_ONCE, tag, "Tag appears more than once"));
        }
        check_field(tag, v, m)?;
        if now != 1 {
            continue;
        }
        let Some(layout) = layout else { continue };
        match member(layout, tag) {
            None => {
                return Err(problem(
                    reason::TAG_NOT_DEFINED_FOR_MSG_TYPE,
                    tag,
                    "Tag not defined for this message type",
                ));
            }
            Some(G(_, members)) => group(&fields, &mut at, tag, parse_count(v), members, m)?,
            Some(_) => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fix::{Frame, encode, frame};

    fn msg(msg_type: &str, body: &[(u32, &str)]) -> Message {
        let mut f: Vec<(u32, &[u8])> = vec![
            (35, msg_type.as_bytes()),
            (34, b"2"),
            (49, b"K"),
            (52, b"20261122-16:00:00.000"),
            (56, b"ATLAS"),
        ];
        f.extend(body.iter().map(|(t, v)| (*t, v.as_bytes())));
        let Frame::Message(_, m) = frame(&encode(&f)) else { panic!() };
        m
    }

    fn check(msg_type: &str, body: &[(u32, &str)]) -> Result<(), (u32, String)> {
        validate(&msg(msg_type, body)).map_err(|p| (p.reason, p.tag.unwrap_or_default()))
    }

    const ORDER: &[(u32, &str)] = &[(11, "a"), (55, "ACME"), (54, "1"), (38, "10"), (40, "2"), (44, "9.50")];

    fn order_with(extra: &[(u32, &str)]) -> Vec<(u32, &'static str)> {
        let mut v: Vec<(u32, &str)> = ORDER.to_vec();
        v.extend(extra.iter().map(|&(t, s)| (t, &*Box::leak(s.to_owned().into_boxed_str()))));
        v
    }

    #[test]
    fn well_formed_messages_pass() {
        assert_eq!(check("D", ORDER), Ok(()));
        assert_eq!(check("0", &[]), Ok(()));
        assert_eq!(check("1", &[(112, "x")]), Ok(()));
        let parties = order_with(&[(453, "2"), (448, "p1"), (447, "D"), (452, "3"), (448, "p2"), (447, "C")]);
        assert_eq!(check("D", &parties), Ok(()));
        let nested = order_with(&[
            (453, "1"),
            (448, "p"),
            (447, "D"),
            (802, "2"),
            (523, "s1"),
            (803, "1"),
            (523, "s2"),
        ]);
        assert_eq!(check("D", &nested), Ok(()));
        assert_eq!(check("D", &order_with(&[(18, "6 A"), (60, "20261122-16:00:00"), (7928, "D")])), Ok(()));
        // A type Atlas does not handle: its fields are only checked one by one.
        assert_eq!(check("R", &[(131, "q"), (146, "1"), (55, "A"), (55, "B")]), Ok(()));
    }

    #[test]
    fn each_problem_has_its_reason_and_tag() {
        let p = |r: u32, t: &str| Err((r, t.to_owned()));
        assert_eq!(check("0", &[(999, "HI")]), p(0, "999"));
        assert_eq!(check("0", &[(5000, "HI")]), p(0, "5000"));
        assert_eq!(check("0", &[(55, "X")]), p(2, "55"));
        assert_eq!(check("D", &order_with(&[(21, "4")])), p(5, "21"));
        assert_eq!(check("D", &order_with(&[(167, "BOO")])), p(5, "167"));
        assert_eq!(check("D", &order_with(&[(18, "6 !")])), p(5, "18"));
        assert_eq!(check("D", &[(11, "a"), (54, "failboat")]), p(6, "54"));
        assert_eq!(check("D", &order_with(&[(126, "20040415")])), p(6, "126"));
        assert_eq!(check("D", &order_with(&[(432, "20041315")])), p(6, "432"));
        assert_eq!(check("D", &order_with(&[(44, "1.2.3")])).map_err(|e| e.0), Err(13));
        assert_eq!(check("D", &[(11, "a"), (38, "1.2.3")]), p(6, "38"));
        assert_eq!(check("D", &order_with(&[(1, "")])), p(4, "1"));
        assert_eq!(check("D", &order_with(&[(34, "9")])), p(14, "34"));
        assert_eq!(check("D", &order_with(&[(386, "3"), (336, "A"), (336, "B")])), p(16, "386"));
        assert_eq!(check("D", &order_with(&[(386, "1"), (336, "A"), (336, "B")])), p(16, "386"));
        assert_eq!(check("D", &order_with(&[(453, "1"), (447, "D"), (448, "p")])), p(15, "447"));
        assert_eq!(check("D", &order_with(&[(453, "1"), (448, "p"), (448, "q")])), p(16, "453"));
        assert_eq!(check("D", &order_with(&[(453, "2"), (448, "p"), (447, "x!")])), p(6, "447"));
        let nested = order_with(&[(453, "1"), (448, "p"), (802, "1"), (523, "s"), (803, "failboat")]);
        assert_eq!(check("D", &nested), p(6, "803"));
        // A member of a group, outside it.
        assert_eq!(check("D", &order_with(&[(448, "p")])), p(2, "448"));
        // A tag that is not a number is named as written.
        let invalid = |field: &[u8]| {
            let mut body = b"35=0\x0134=2\x0149=K\x0156=ATLAS\x01".to_vec();
            body.extend_from_slice(field);
            let mut raw = format!("8=FIX.4.4\x019={}\x01", body.len()).into_bytes();
            raw.extend_from_slice(&body);
            let sum = raw.iter().fold(0u8, |a, b| a.wrapping_add(*b));
            raw.extend_from_slice(format!("10={sum:03}\x01").as_bytes());
            let Frame::Message(_, m) = frame(&raw) else { panic!() };
            validate(&m).map_err(|p| (p.reason, p.tag))
        };
        assert_eq!(invalid(b"-1=HI\x01"), Err((0, Some("-1".to_owned()))));
        // 371 is an int field: a tag that is not one is not named.
        assert_eq!(invalid(b"x=HI\x01"), Err((0, None)));
    }
}
