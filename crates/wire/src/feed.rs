//! The market data feed's client messages:
//! `{"type":"subscribe"|"unsubscribe","channels":[…],"productIds":[…]}` (or
//! Coinbase's `product_ids`; a channel may be `{"name":…, "product_ids":[…]}`).
//! Everything is bounded: a message names at most [`CHANNELS_MAX`] channels and
//! [`PRODUCTS_MAX`] products per list.

use serde_json::Value;

/// Channels per message, at most.
pub const CHANNELS_MAX: usize = 16;
/// Products per list, at most.
pub const PRODUCTS_MAX: usize = 100;
/// Characters of a product name or channel name, at most.
pub const NAME_CHARS_MAX: usize = 32;

/// Subscribe or unsubscribe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Start receiving.
    Subscribe,
    /// Stop receiving.
    Unsubscribe,
}

/// A product as the client named it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum ProductRef {
    /// By id (Atlas).
    Id(u32),
    /// By name: a symbol or an id in a string (Atlas), `SYMBOL-CURRENCY` (Coinbase).
    Name(String),
}

/// A parsed request: each channel with the products it applies to (the
/// message's own list, plus the channel's when it names some).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FeedRequest {
    /// Subscribe or unsubscribe.
    pub kind: Kind,
    /// (channel name, products).
    pub channels: Vec<(String, Vec<ProductRef>)>,
    /// Coinbase's message-level authentication, when the message carries it.
    pub auth: Option<FeedAuth>,
}

/// The fields with which a Coinbase client authenticates a subscription: an
/// API key's signature over `timestamp + "GET" + "/users/self/verify"`.
#[derive(Clone, PartialEq, Eq)]
pub struct FeedAuth {
    /// The API key.
    pub key: String,
    /// The key's passphrase.
    pub passphrase: String,
    /// Unix seconds, as sent (a JSON number or string).
    pub timestamp: String,
    /// Base64 HMAC-SHA256.
    pub signature: String,
}

impl std::fmt::Debug for FeedAuth {
    // The passphrase and signature stay out of logs and panics.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedAuth")
            .field("key", &self.key)
            .field("timestamp", &self.timestamp)
            .finish_non_exhaustive()
    }
}

/// Characters of each authentication field, at most.
pub const AUTH_FIELD_CHARS_MAX: usize = 128;

fn auth(o: &serde_json::Map<String, Value>) -> Result<Option<FeedAuth>, String> {
    const FIELDS: [&str; 4] = ["key", "passphrase", "timestamp", "signature"];
    let present = FIELDS.iter().filter(|f| o.contains_key(**f)).count();
    if present == 0 {
        return Ok(None);
    }
    let mut text = Vec::with_capacity(4);
    for f in FIELDS {
        let v = match o.get(f) {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) if f == "timestamp" => n.to_string(),
            _ => {
                return Err(
                    "authentication needs key, passphrase, timestamp and signature, each a string (timestamp may be a number)"
                        .to_owned(),
                );
            }
        };
        if v.is_empty() || v.chars().count() > AUTH_FIELD_CHARS_MAX {
            return Err(format!("each authentication field is 1 to {AUTH_FIELD_CHARS_MAX} characters"));
        }
        text.push(v);
    }
    let mut it = text.into_iter();
    let mut next = || it.next().unwrap_or_default();
    Ok(Some(FeedAuth { key: next(), passphrase: next(), timestamp: next(), signature: next() }))
}

fn products(v: Option<&Value>) -> Result<Vec<ProductRef>, String> {
    let Some(v) = v else { return Ok(Vec::new()) };
    let list = v.as_array().ok_or("product lists are arrays")?;
    if list.len() > PRODUCTS_MAX {
        return Err(format!("at most {PRODUCTS_MAX} products per list"));
    }
    list.iter()
        .map(|p| match p {
            Value::Number(n) => n
                .as_u64()
                .and_then(|n| u32::try_from(n).ok())
                .map(ProductRef::Id)
                .ok_or_else(|| format!("{n} is not a product id")),
            Value::String(s) if !s.is_empty() && s.chars().count() <= NAME_CHARS_MAX => {
                Ok(ProductRef::Name(s.clone()))
            }
            _ => Err("a product is an id or a name of 1 to 32 characters".to_owned()),
        })
        .collect()
}

fn product_list(o: &serde_json::Map<String, Value>) -> Result<Vec<ProductRef>, String> {
    let mut all = products(o.get("productIds"))?;
    all.extend(products(o.get("product_ids"))?);
    Ok(all)
}

/// Parses one client message.
pub fn parse(text: &str) -> Result<FeedRequest, String> {
    const SHAPE: &str =
        "expected {\"type\":\"subscribe\"|\"unsubscribe\",\"channels\":[…],\"productIds\":[…]}";
    let v: Value = serde_json::from_str(text).map_err(|_| SHAPE.to_owned())?;
    let o = v.as_object().ok_or(SHAPE)?;
    let kind = match o.get("type").and_then(Value::as_str) {
        Some("subscribe") => Kind::Subscribe,
        Some("unsubscribe") => Kind::Unsubscribe,
        _ => return Err(SHAPE.to_owned()),
    };
    let listed = product_list(o)?;
    let channels = o.get("channels").and_then(Value::as_array).ok_or(SHAPE)?;
    if channels.is_empty() || channels.len() > CHANNELS_MAX {
        return Err(format!("name 1 to {CHANNELS_MAX} channels"));
    }
    let mut out = Vec::with_capacity(channels.len());
    for c in channels {
        let (name, mut own) = match c {
            Value::String(s) => (s.clone(), Vec::new()),
            Value::Object(co) => {
                let name = co.get("name").and_then(Value::as_str).ok_or("a channel object has a name")?;
                (name.to_owned(), product_list(co)?)
            }
            _ => return Err("a channel is a name or {\"name\",\"product_ids\"}".to_owned()),
        };
        if name.is_empty() || name.chars().count() > NAME_CHARS_MAX {
            return Err("a channel name is 1 to 32 characters".to_owned());
        }
        own.extend(listed.iter().cloned());
        if own.is_empty() {
            return Err(format!("channel {name:?} names no product"));
        }
        out.push((name, own));
    }
    Ok(FeedRequest { kind, channels: out, auth: auth(o)? })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes() {
        let r =
            parse(r#"{"type":"subscribe","channels":["level2","matches"],"productIds":[1,"ACME"]}"#).unwrap();
        assert_eq!(r.kind, Kind::Subscribe);
        assert_eq!(r.channels.len(), 2);
        assert_eq!(r.channels[0].1, [ProductRef::Id(1), ProductRef::Name("ACME".into())]);
        let r = parse(r#"{"type":"unsubscribe","channels":[{"name":"ticker","product_ids":["ACME-USD"]}]}"#)
            .unwrap();
        assert_eq!((r.kind, &r.channels[0].0), (Kind::Unsubscribe, &"ticker".to_owned()));
        for bad in [
            "",
            "[]",
            r#"{"type":"subscribe"}"#,
            r#"{"type":"subscribe","channels":[]}"#,
            r#"{"type":"subscribe","channels":["level2"]}"#,
            r#"{"type":"subscribe","channels":["level2"],"productIds":[-1]}"#,
            r#"{"type":"subscribe","channels":[7],"productIds":[1]}"#,
            r#"{"type":"hello","channels":["level2"],"productIds":[1]}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let signed = parse(
            r#"{"type":"subscribe","channels":["user"],"product_ids":["ACME-USD"],"key":"k","passphrase":"p","timestamp":1700000000,"signature":"c2ln"}"#,
        )
        .unwrap();
        let a = signed.auth.unwrap();
        assert_eq!(
            (a.key.as_str(), a.passphrase.as_str(), a.timestamp.as_str(), a.signature.as_str()),
            ("k", "p", "1700000000", "c2ln")
        );
        assert!(!format!("{a:?}").contains("c2ln"), "the signature stays out of Debug");
        assert!(r.auth.is_none());
        for partial in [
            r#"{"type":"subscribe","channels":["user"],"productIds":[1],"key":"k"}"#,
            r#"{"type":"subscribe","channels":["user"],"productIds":[1],"key":"k","passphrase":"p","timestamp":1,"signature":7}"#,
            r#"{"type":"subscribe","channels":["user"],"productIds":[1],"key":"","passphrase":"p","timestamp":1,"signature":"s"}"#,
        ] {
            assert!(parse(partial).is_err(), "{partial}");
        }
        let long = format!(
            r#"{{"type":"subscribe","channels":["user"],"productIds":[1],"key":"{}","passphrase":"p","timestamp":1,"signature":"s"}}"#,
            "k".repeat(129)
        );
        assert!(parse(&long).is_err());
        let many = format!(
            r#"{{"type":"subscribe","channels":["level2"],"productIds":[{}]}}"#,
            vec!["1"; 101].join(",")
        );
        assert!(parse(&many).is_err());
    }
}
