//! Checks real answers against the served OpenAPI description: every request a
//! test made must hit a documented operation, answer a documented status, and
//! carry a body that validates against the documented schema, with no field the
//! schema does not list. A small validator for the JSON Schema subset that the
//! description uses ($ref, type, enum, properties, required, items, allOf,
//! oneOf, anyOf, minimum).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;

use serde_json::Value;

/// One request and its answer, as a test client saw it.
#[derive(Clone, Debug)]
pub struct Exchange {
    pub base: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    pub body: Value,
}

/// A served description.
pub struct Spec(pub Value);

fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<&str>, Vec<&str>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter().zip(&p).all(|(t, p)| (t.starts_with('{') && t.ends_with('}') && !p.is_empty()) || t == p)
}

impl Spec {
    /// The operation for a method and a concrete path: literal segments win over
    /// templated ones (`/orderBook/endOfDay` before `/orderBook/{product}`).
    pub fn operation(&self, method: &str, path: &str) -> Option<(&str, &Value)> {
        let paths = self.0["paths"].as_object()?;
        let mut candidates: Vec<(&String, &Value)> =
            paths.iter().filter(|(t, _)| matches_template(t, path)).collect();
        candidates.sort_by_key(|(t, _)| t.matches('{').count());
        let (template, item) = candidates.into_iter().next()?;
        item.get(method.to_ascii_lowercase()).map(|op| (template.as_str(), op))
    }

    fn resolve<'a>(&'a self, schema: &'a Value) -> &'a Value {
        match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => {
                let name = r.strip_prefix("#/components/schemas/").expect("local schema ref");
                let target = &self.0["components"]["schemas"][name];
                assert!(!target.is_null(), "dangling $ref {r}");
                self.resolve(target)
            }
            None => schema,
        }
    }

    /// Checks one exchange.
    pub fn check(&self, x: &Exchange) -> Result<(), String> {
        let Some((template, op)) = self.operation(&x.method, &x.path) else {
            return Err(format!(
                "{} {}{} is not documented (it answered {})",
                x.method, x.base, x.path, x.status
            ));
        };
        let responses = &op["responses"];
        let Some(response) = responses.get(x.status.to_string()) else {
            return Err(format!(
                "{} {template} answered {} ({}), which is not documented",
                x.method, x.status, x.body
            ));
        };
        let content = response.get("content").and_then(Value::as_object);
        match content {
            None if x.body.is_null() => Ok(()),
            None => Err(format!("{} {template} {}: undocumented body {}", x.method, x.status, x.body)),
            Some(c) => {
                let schema =
                    c.values().next().and_then(|m| m.get("schema")).ok_or("content without schema")?;
                self.validate(schema, &x.body, &format!("{} {template} {}", x.method, x.status))
            }
        }
    }

    /// Validates `v` against `schema`; `at` names the place for messages.
    pub fn validate(&self, schema: &Value, v: &Value, at: &str) -> Result<(), String> {
        let s = self.resolve(schema);
        if let Some(all) = s.get("allOf").and_then(Value::as_array) {
            // Each part, without the closed-object check (the union of their
            // properties is what the object may have).
            let mut allowed = BTreeSet::new();
            for part in all {
                let part = self.resolve(part);
                self.validate_open(part, v, at)?;
                allowed.extend(self.property_names(part));
            }
            return closed(v, &allowed, at);
        }
        self.validate_open(s, v, at)?;
        if s.get("properties").is_some() {
            closed(v, &self.property_names(s), at)?;
        }
        Ok(())
    }

    fn property_names(&self, s: &Value) -> BTreeSet<String> {
        let mut names: BTreeSet<String> = s
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().cloned().collect())
            .unwrap_or_default();
        for part in s.get("allOf").and_then(Value::as_array).into_iter().flatten() {
            names.extend(self.property_names(self.resolve(part)));
        }
        names
    }

    fn validate_open(&self, s: &Value, v: &Value, at: &str) -> Result<(), String> {
        if let Some(one) = s.get("oneOf").and_then(Value::as_array) {
            let ok = one.iter().filter(|o| self.validate(o, v, at).is_ok()).count();
            if ok != 1 {
                return Err(format!("{at}: {v} matches {ok} of oneOf"));
            }
        }
        if let Some(any) = s.get("anyOf").and_then(Value::as_array)
            && !any.iter().any(|o| self.validate(o, v, at).is_ok())
        {
            return Err(format!("{at}: {v} matches none of anyOf"));
        }
        if let Some(t) = s.get("type") {
            let types: Vec<&str> = match t {
                Value::String(one) => vec![one.as_str()],
                Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
                _ => vec![],
            };
            if !types.iter().any(|t| type_ok(t, v)) {
                return Err(format!("{at}: {v} is not of type {t}"));
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array)
            && !e.contains(v)
        {
            return Err(format!("{at}: {v} is not one of {e:?}"));
        }
        if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), v.as_f64())
            && n < min
        {
            return Err(format!("{at}: {n} is below the minimum {min}"));
        }
        if let Value::Object(obj) = v {
            for r in s.get("required").and_then(Value::as_array).into_iter().flatten() {
                let r = r.as_str().unwrap_or_default();
                if !obj.contains_key(r) {
                    return Err(format!("{at}: {v} lacks required {r}"));
                }
            }
            if let Some(props) = s.get("properties").and_then(Value::as_object) {
                for (k, val) in obj {
                    if let Some(p) = props.get(k) {
                        self.validate(p, val, &format!("{at}.{k}"))?;
                    }
                }
            }
        }
        if let (Value::Array(items), Some(schema)) = (v, s.get("items")) {
            for (i, item) in items.iter().enumerate() {
                self.validate(schema, item, &format!("{at}[{i}]"))?;
            }
        }
        Ok(())
    }
}

fn closed(v: &Value, allowed: &BTreeSet<String>, at: &str) -> Result<(), String> {
    if let Value::Object(obj) = v {
        for k in obj.keys() {
            if !allowed.contains(k) {
                return Err(format!("{at}: field {k} is not in the schema"));
            }
        }
    }
    Ok(())
}

fn type_ok(t: &str, v: &Value) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => false,
    }
}
