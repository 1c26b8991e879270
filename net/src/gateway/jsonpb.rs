//! Protobuf messages as JSON, the way etcd 3.4's gateway writes and reads them (grpc-gateway's
//! `JSONPb{OrigName: true}` over golang/protobuf 1.3's `jsonpb`).
//!
//! Written ([`to_json`]): proto field names (`create_revision`, and `dbSize` where etcd's proto
//! spells it so), 64-bit integers as strings, enums by name, bytes as padded standard base64,
//! fields at their zero value left out, `<`, `>` and `&` escaped as Go escapes them.
//!
//! Read ([`from_json`]): either the proto name or the camel-case JSON name, unknown fields
//! ignored, `null` meaning unset, numbers quoted or not, enums by name or number, bytes as
//! standard base64 (or an array of byte values) — and where Go refuses, the same refusal in
//! Go's words: `illegal base64 data at input byte 0`, `json: cannot unmarshal number 1.5 into Go
//! value of type int64`, `unknown value "UP" for enum etcdserverpb.RangeRequest_SortOrder`.

use super::json::{whole, Json};
use prost_reflect::{
    DynamicMessage, EnumDescriptor, FieldDescriptor, Kind, MessageDescriptor, SerializeOptions,
    Value,
};

/// The message of type `message` that `json` describes, or Go's complaint.
pub fn from_json(message: &MessageDescriptor, json: &Json) -> Result<DynamicMessage, String> {
    let mut out = DynamicMessage::new(message.clone());
    let members = match json {
        Json::Null => return Ok(out),
        Json::Object(members) => members,
        other => return Err(mismatch(other, "map[string]json.RawMessage")),
    };
    // A field may come by either name; a repeated name, or both names, keep the last one.
    // Fields are read in number order, so of two members of one oneof the higher wins.
    for field in message.fields() {
        let given = members
            .iter()
            .rev()
            .find(|(name, _)| name == field.name() || name == field.json_name());
        let Some((_, value)) = given else { continue };
        if let Some(value) = field_value(&field, value)? {
            out.set_field(&field, value);
        }
    }
    Ok(out)
}

/// `message` (protobuf bytes of type `descriptor`) as etcd's gateway writes it.
pub fn to_json(descriptor: &MessageDescriptor, message: &[u8]) -> Result<Vec<u8>, String> {
    let message = DynamicMessage::decode(descriptor.clone(), message)
        .map_err(|error| format!("a malformed {}: {error}", descriptor.full_name()))?;
    let options = SerializeOptions::new().use_proto_field_name(true);
    let mut out = Vec::new();
    message
        .serialize_with_options(&mut serde_json::Serializer::new(&mut out), &options)
        .map_err(|error| error.to_string())?;
    // serde_json writes UTF-8.
    let json = String::from_utf8(out).map_err(|error| error.to_string())?;
    Ok(escape_like_go(json).into_bytes())
}

/// Go's `encoding/json` writes `<`, `>`, `&`, U+2028 and U+2029 inside strings as `\u` escapes;
/// in JSON text those characters only occur inside strings, so every one is replaced.
pub fn escape_like_go(json: String) -> String {
    const SPECIAL: [char; 5] = ['<', '>', '&', '\u{2028}', '\u{2029}'];
    if !json.contains(SPECIAL) {
        return json;
    }
    let mut out = String::with_capacity(json.len() + 16);
    for c in json.chars() {
        if SPECIAL.contains(&c) {
            out.push_str(&format!("\\u{:04x}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// The value of `field` from `json`; `None` leaves the field unset (`null`, an empty list).
fn field_value(field: &FieldDescriptor, json: &Json) -> Result<Option<Value>, String> {
    if matches!(json, Json::Null) {
        return Ok(None);
    }
    if field.is_list() {
        let Json::Array(elements) = json else {
            return Err(mismatch(json, "[]json.RawMessage"));
        };
        let mut values = Vec::with_capacity(elements.len());
        for element in elements {
            values.push(single(&field.kind(), element)?.unwrap_or_else(|| zero(&field.kind())));
        }
        return Ok(Some(Value::List(values)));
    }
    single(&field.kind(), json)
}

/// A value of `kind` (not a list); `None` for `null`.
fn single(kind: &Kind, json: &Json) -> Result<Option<Value>, String> {
    if matches!(json, Json::Null) {
        return Ok(None);
    }
    let value = match kind {
        Kind::Message(message) => Value::Message(from_json(message, json)?),
        Kind::Enum(enumeration) => match json {
            Json::String { raw, .. } => {
                let name = String::from_utf8_lossy(raw);
                let value = enumeration.get_value_by_name(&name).ok_or_else(|| {
                    format!("unknown value {:?} for enum {}", name, go_type(enumeration))
                })?;
                Value::EnumNumber(value.number())
            }
            other => {
                let (min, max) = (i32::MIN.into(), i32::MAX.into());
                Value::EnumNumber(integer(other, &go_type(enumeration), min, max)? as i32)
            }
        },
        Kind::Bool => match json {
            Json::Bool(value) => Value::Bool(*value),
            other => return Err(mismatch(other, "bool")),
        },
        Kind::String => match json {
            Json::String { value, .. } => Value::String(value.clone()),
            other => return Err(mismatch(other, "string")),
        },
        Kind::Bytes => Value::Bytes(bytes(json)?.into()),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => {
            Value::I32(integer(json, "int32", i32::MIN.into(), i32::MAX.into())? as i32)
        }
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(integer(json, "int64", i64::MIN.into(), i64::MAX.into())? as i64)
        }
        Kind::Uint32 | Kind::Fixed32 => {
            Value::U32(integer(json, "uint32", 0, u32::MAX.into())? as u32)
        }
        Kind::Uint64 | Kind::Fixed64 => {
            Value::U64(integer(json, "uint64", 0, u64::MAX.into())? as u64)
        }
        Kind::Float | Kind::Double => {
            return Err("floating-point fields are not part of etcd's API".to_string())
        }
    };
    Ok(Some(value))
}

/// The zero value of `kind` (a `null` element of a list).
fn zero(kind: &Kind) -> Value {
    match kind {
        Kind::Message(message) => Value::Message(DynamicMessage::new(message.clone())),
        other => Value::default_value(other),
    }
}

/// An integer of Go type `go` within `min..=max`: a number, or a number inside quotes (jsonpb
/// drops the quotes, undecoded, and parses what is left as JSON).
fn integer(json: &Json, go: &str, min: i128, max: i128) -> Result<i128, String> {
    let unquoted;
    let json = match json {
        Json::String { raw, .. } => {
            unquoted = whole(raw)?;
            &unquoted
        }
        other => other,
    };
    match json {
        Json::Null => Ok(0),
        Json::Number(text) => {
            text.parse::<i128>().ok().filter(|n| (min..=max).contains(n)).ok_or_else(|| {
                format!("json: cannot unmarshal number {text} into Go value of type {go}")
            })
        }
        other => Err(mismatch(other, go)),
    }
}

/// Bytes: standard padded base64 in a string (Go skips `\r` and `\n` in it), or an array of
/// byte values.
fn bytes(json: &Json) -> Result<Vec<u8>, String> {
    match json {
        Json::String { value, .. } => go_base64(value.as_bytes()),
        Json::Array(elements) => elements
            .iter()
            .map(|element| integer_only(element, "uint8", 255).map(|n| n as u8))
            .collect(),
        other => Err(mismatch(other, "[]uint8")),
    }
}

/// An unquoted integer of Go type `go` in `0..=max` (an element of a byte array).
fn integer_only(json: &Json, go: &str, max: i128) -> Result<i128, String> {
    match json {
        Json::String { .. } => Err(mismatch(json, go)),
        other => integer(other, go, 0, max),
    }
}

/// Go's `base64.StdEncoding.DecodeString`, with its error offsets.
fn go_base64(input: &[u8]) -> Result<Vec<u8>, String> {
    let corrupt = |at: usize| format!("illegal base64 data at input byte {at}");
    let sextet = |c: u8| match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    };
    let skip_newlines = |mut at: usize| {
        while at < input.len() && matches!(input[at], b'\r' | b'\n') {
            at += 1;
        }
        at
    };
    let mut out = Vec::with_capacity(input.len() / 4 * 3);
    let mut at = 0;
    loop {
        // One quantum: up to four sextets.
        let mut quantum = [0u8; 4];
        let mut have = 0;
        while have < 4 {
            if at == input.len() {
                if have == 0 {
                    return Ok(out);
                }
                return Err(corrupt(at - have));
            }
            let c = input[at];
            at += 1;
            if let Some(value) = sextet(c) {
                quantum[have] = value;
                have += 1;
                continue;
            }
            if matches!(c, b'\r' | b'\n') {
                continue;
            }
            if c != b'=' || have < 2 {
                return Err(corrupt(at - 1));
            }
            // Padding: "==" after two sextets, "=" after three, then nothing but newlines.
            if have == 2 {
                at = skip_newlines(at);
                if at == input.len() {
                    return Err(corrupt(input.len()));
                }
                if input[at] != b'=' {
                    return Err(corrupt(at - 1));
                }
                at += 1;
            }
            at = skip_newlines(at);
            if at < input.len() {
                return Err(corrupt(at));
            }
            break;
        }
        let bits = quantum.iter().fold(0u32, |bits, &s| bits << 6 | u32::from(s));
        let bytes = [(bits >> 16) as u8, (bits >> 8) as u8, bits as u8];
        out.extend_from_slice(&bytes[..have * 3 / 4]);
        if have < 4 {
            return Ok(out);
        }
    }
}

/// Go's `json: cannot unmarshal <kind> into Go value of type <go>`.
fn mismatch(json: &Json, go: &str) -> String {
    format!("json: cannot unmarshal {} into Go value of type {go}", json.kind())
}

/// The Go type name golang/protobuf gives an enum: `etcdserverpb.RangeRequest_SortOrder`.
fn go_type(enumeration: &EnumDescriptor) -> String {
    let package = enumeration.package_name();
    let full = enumeration.full_name();
    let local = full.strip_prefix(package).unwrap_or(full).trim_start_matches('.');
    format!("{package}.{}", local.replace('.', "_"))
}

#[cfg(test)]
mod tests {
    use super::super::json::next_value;
    use super::super::json::Next;
    use super::*;

    fn pool() -> prost_reflect::DescriptorPool {
        super::super::methods::descriptors()
    }

    fn message(name: &str) -> MessageDescriptor {
        pool().get_message_by_name(name).unwrap()
    }

    /// `body` read as a `type_`, written back out.
    fn round(type_: &str, body: &str) -> Result<String, String> {
        let Next::Value(json, _) = next_value(body.as_bytes(), true)? else { panic!("{body}") };
        let decoded = from_json(&message(type_), &json)?;
        let written = to_json(&message(type_), &prost::Message::encode_to_vec(&decoded))?;
        Ok(String::from_utf8(written).unwrap())
    }

    #[test]
    fn requests_read_and_write_as_etcds_gateway_does() {
        for (body, written) in [
            (r#"{"key":"Zm9v","bogus":1}"#, r#"{"key":"Zm9v"}"#),
            (r#"{"key":"Zm9v","rangeEnd":"AA=="}"#, r#"{"key":"Zm9v","range_end":"AA=="}"#),
            (r#"{"key":"Zm9v","range_end":null}"#, r#"{"key":"Zm9v"}"#),
            (r#"{"key":"Zm9v","limit":"-1"}"#, r#"{"key":"Zm9v","limit":"-1"}"#),
            (r#"{"key":"Zm9v","limit":12}"#, r#"{"key":"Zm9v","limit":"12"}"#),
            (
                r#"{"key":"Zm9v", "min_mod_revision": " 10"}"#,
                r#"{"key":"Zm9v","min_mod_revision":"10"}"#,
            ),
            (r#"{"key":"Zm9v","sort_order":7}"#, r#"{"key":"Zm9v","sort_order":7}"#),
            (
                r#"{"key":"Zm9v","sort_order":"DESCEND","sortTarget":"VALUE"}"#,
                r#"{"key":"Zm9v","sort_order":"DESCEND","sort_target":"VALUE"}"#,
            ),
            (r#"{"key":"Zm9v","keys_only":true,"keys_only":false}"#, r#"{"key":"Zm9v"}"#),
            (r#"{"key":"Zm9v\n"}"#, r#"{"key":"Zm9v"}"#),
            (r#"{"key":"\u005am9v"}"#, r#"{"key":"Zm9v"}"#),
            (r#"{"key":[102,111]}"#, r#"{"key":"Zm8="}"#),
            ("null", "{}"),
        ] {
            assert_eq!(round("etcdserverpb.RangeRequest", body).as_deref(), Ok(written), "{body}");
        }
    }

    #[test]
    fn refusals_read_as_gos() {
        // Each answer is what etcd 3.4.23's gateway said for the same body.
        for (body, go) in [
            (
                "[1,2]",
                "json: cannot unmarshal array into Go value of type map[string]json.RawMessage",
            ),
            (
                r#""str""#,
                "json: cannot unmarshal string into Go value of type map[string]json.RawMessage",
            ),
            (
                "12",
                "json: cannot unmarshal number into Go value of type map[string]json.RawMessage",
            ),
            (r#"{"key":12}"#, "json: cannot unmarshal number into Go value of type []uint8"),
            (r#"{"key":["Zm9v"]}"#, "json: cannot unmarshal string into Go value of type uint8"),
            (r#"{"key":"Zm9"}"#, "illegal base64 data at input byte 0"),
            (r#"{"key":"Zm-v"}"#, "illegal base64 data at input byte 2"),
            (r#"{"key":"Zm9v====="}"#, "illegal base64 data at input byte 4"),
            (
                r#"{"key":"Zm9v","limit":1.5}"#,
                "json: cannot unmarshal number 1.5 into Go value of type int64",
            ),
            (
                r#"{"key":"Zm9v","limit":"1.5"}"#,
                "json: cannot unmarshal number 1.5 into Go value of type int64",
            ),
            (r#"{"key":"Zm9v","limit":"12a"}"#, "invalid character 'a' after top-level value"),
            (
                r#"{"key":"Zm9v","revision":"abc"}"#,
                "invalid character 'a' looking for beginning of value",
            ),
            (
                r#"{"key":"Zm9v","limit":99999999999999999999}"#,
                "json: cannot unmarshal number 99999999999999999999 into Go value of type int64",
            ),
            (
                r#"{"key":"Zm9v","serializable":"true"}"#,
                "json: cannot unmarshal string into Go value of type bool",
            ),
            (
                r#"{"key":"Zm9v","serializable":1}"#,
                "json: cannot unmarshal number into Go value of type bool",
            ),
            (
                r#"{"key":"Zm9v","limit":{}}"#,
                "json: cannot unmarshal object into Go value of type int64",
            ),
            (
                r#"{"key":"Zm9v","min_mod_revision":"0x10"}"#,
                "invalid character 'x' after top-level value",
            ),
            (
                r#"{"key":"Zm9v","min_mod_revision":1e2}"#,
                "json: cannot unmarshal number 1e2 into Go value of type int64",
            ),
            (
                r#"{"key":"Zm9v","sort_order":"UP"}"#,
                r#"unknown value "UP" for enum etcdserverpb.RangeRequest_SortOrder"#,
            ),
        ] {
            assert_eq!(round("etcdserverpb.RangeRequest", body), Err(go.to_string()), "{body}");
        }
        for (body, go) in [
            (
                r#"{"compare":[{"target":"BOGUS"}]}"#,
                r#"unknown value "BOGUS" for enum etcdserverpb.Compare_CompareTarget"#,
            ),
            (
                r#"{"compare":[{"target":"VALUE","value":"x"}]}"#,
                "illegal base64 data at input byte 0",
            ),
            (
                r#"{"compare":{"target":"VALUE"}}"#,
                "json: cannot unmarshal object into Go value of type []json.RawMessage",
            ),
        ] {
            assert_eq!(round("etcdserverpb.TxnRequest", body), Err(go.to_string()), "{body}");
        }
    }

    #[test]
    fn oneofs_nested_messages_and_lists_read_whole() {
        let body = r#"{"compare":[{"target":"VERSION","key":"YQ==","version":"0"}],
            "success":[{"request_put":{"key":"YQ==","value":"Yg=="},"request_range":{"key":"YQ=="}}],
            "failure":[null]}"#;
        assert_eq!(
            round("etcdserverpb.TxnRequest", body).unwrap(),
            // VERSION is the target's zero value, so it is left out; the oneof's zero is kept.
            r#"{"compare":[{"key":"YQ==","version":"0"}],"success":[{"request_put":{"key":"YQ==","value":"Yg=="}}],"failure":[{}]}"#
        );
        assert_eq!(
            round(
                "etcdserverpb.WatchRequest",
                r#"{"create_request":{"key":"YQ==","filters":["NODELETE",0]}}"#
            )
            .unwrap(),
            r#"{"create_request":{"key":"YQ==","filters":["NODELETE","NOPUT"]}}"#
        );
    }

    #[test]
    fn responses_write_as_etcds_gateway_does() {
        // etcd 3.4.23's answer to a Status call, re-encoded: the camel-case names are etcd's own.
        let etcd = r#"{"header":{"cluster_id":"14841639068965178418","member_id":"10276657743932975437","revision":"2","raft_term":"2"},"version":"3.4.23","dbSize":"24576","leader":"10276657743932975437","raftIndex":"5","raftTerm":"2","raftAppliedIndex":"5","dbSizeInUse":"16384"}"#;
        assert_eq!(round("etcdserverpb.StatusResponse", etcd).unwrap(), etcd);
        let hash = r#"{"header":{"revision":"2"},"hash":45340110}"#;
        assert_eq!(round("etcdserverpb.HashResponse", hash).unwrap(), hash);
        let deleted = r#"{"header":{"revision":"4"},"events":[{"type":"DELETE","kv":{"key":"Zm9v","mod_revision":"4"}}]}"#;
        assert_eq!(round("etcdserverpb.WatchResponse", deleted).unwrap(), deleted);
        let named = r#"{"name":"a<b>&c"}"#;
        assert_eq!(
            round("etcdserverpb.AuthUserAddRequest", named).unwrap(),
            r#"{"name":"a\u003cb\u003e\u0026c"}"#
        );
    }

    #[test]
    fn strings_escape_as_gos() {
        let written = escape_like_go("{\"a\":\"<&>\u{2028}\u{2029}é\"}".to_string());
        assert_eq!(written, r#"{"a":"\u003c\u0026\u003e\u2028\u2029é"}"#);
        assert_eq!(escape_like_go("{}".to_string()), "{}");
    }

    #[test]
    fn base64_reads_as_gos() {
        assert_eq!(go_base64(b"").unwrap(), b"");
        assert_eq!(go_base64(b"Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(go_base64(b"Zm9vYg==").unwrap(), b"foob");
        assert_eq!(go_base64(b"Zm9vYmE=").unwrap(), b"fooba");
        assert_eq!(go_base64(b"Zm9v\r\nYmE=\n").unwrap(), b"fooba");
        assert_eq!(go_base64(b"Zm9vYg=").unwrap_err(), "illegal base64 data at input byte 7");
        assert_eq!(go_base64(b"Zm9vYg=x").unwrap_err(), "illegal base64 data at input byte 6");
        assert_eq!(go_base64(b"Zm9vYmE=x").unwrap_err(), "illegal base64 data at input byte 8");
        assert_eq!(go_base64(b"Z===").unwrap_err(), "illegal base64 data at input byte 1");
        assert_eq!(go_base64(b"Zm9vY").unwrap_err(), "illegal base64 data at input byte 4");
        assert_eq!(go_base64(b"Zm9vYmF").unwrap_err(), "illegal base64 data at input byte 4");
        assert_eq!(go_base64(b"Zm9vYg=\n=").unwrap(), b"foob");
        assert_eq!(go_base64(b"=").unwrap_err(), "illegal base64 data at input byte 0");
        assert_eq!(go_base64(b"Zm==").unwrap(), b"f");
    }

    #[test]
    fn base64_agrees_with_a_plain_encoder() {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        for length in 0..40u8 {
            let data: Vec<u8> =
                (0..length).map(|i| i.wrapping_mul(37).wrapping_add(length)).collect();
            assert_eq!(go_base64(engine.encode(&data).as_bytes()).unwrap(), data);
        }
    }
}
