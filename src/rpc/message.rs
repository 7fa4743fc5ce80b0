//! The two protobuf messages of isp's service, declared in Rust (no
//! `protoc`, no build script): `isp.Message` and the `google.rpc.Status`
//! that carries an error's detail.
//!
//! Go: `isp-kit/grpc/isp` (`backend_service.proto`).

use bytes::Bytes;

/// `isp.Message`: a request or response body. isp-kit puts JSON in
/// [`Body::BytesBody`]; an empty body is an empty `BytesBody` or no body.
///
/// Go: `isp.Message`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// `oneof body`.
    #[prost(oneof = "Body", tags = "1, 2, 3, 4")]
    pub body: Option<Body>,
}

/// The `body` oneof of [`Message`], field names as in the `.proto`.
#[derive(Clone, PartialEq, prost::Oneof)]
#[allow(clippy::enum_variant_names)]
pub enum Body {
    /// `google.protobuf.Struct structBody = 1`.
    #[prost(message, tag = "1")]
    StructBody(prost_types::Struct),
    /// `google.protobuf.ListValue listBody = 2`.
    #[prost(message, tag = "2")]
    ListBody(prost_types::ListValue),
    /// `google.protobuf.NullValue NullBody = 3`.
    #[prost(enumeration = "prost_types::NullValue", tag = "3")]
    NullBody(i32),
    /// `bytes BytesBody = 4`: JSON, as isp-kit writes every body.
    #[prost(bytes = "bytes", tag = "4")]
    BytesBody(Bytes),
}

/// The type URL of an `isp.Message` packed in a `google.protobuf.Any`, as
/// a status detail.
pub const MESSAGE_TYPE_URL: &str = "type.googleapis.com/isp.Message";

impl Message {
    /// A message whose `BytesBody` is `json`.
    pub fn json(json: impl Into<Bytes>) -> Self {
        Self {
            body: Some(Body::BytesBody(json.into())),
        }
    }

    /// The body as JSON bytes: `BytesBody` as it is; a `structBody`,
    /// `listBody` or `NullBody` (older isp modules) turned into JSON; no
    /// body empty.
    pub fn into_json(self) -> Bytes {
        match self.body {
            None => Bytes::new(),
            Some(Body::BytesBody(bytes)) => bytes,
            Some(Body::NullBody(_)) => Bytes::from_static(b"null"),
            Some(Body::StructBody(s)) => {
                Bytes::from(serde_json::Value::Object(struct_to_json(s)).to_string())
            }
            Some(Body::ListBody(l)) => Bytes::from(list_to_json(l).to_string()),
        }
    }
}

fn struct_to_json(s: prost_types::Struct) -> serde_json::Map<String, serde_json::Value> {
    s.fields
        .into_iter()
        .map(|(k, v)| (k, value_to_json(v)))
        .collect()
}

fn list_to_json(l: prost_types::ListValue) -> serde_json::Value {
    serde_json::Value::Array(l.values.into_iter().map(value_to_json).collect())
}

fn value_to_json(v: prost_types::Value) -> serde_json::Value {
    use prost_types::value::Kind;
    match v.kind {
        None | Some(Kind::NullValue(_)) => serde_json::Value::Null,
        Some(Kind::NumberValue(n)) => serde_json::Number::from_f64(n)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null),
        Some(Kind::StringValue(s)) => serde_json::Value::String(s),
        Some(Kind::BoolValue(b)) => serde_json::Value::Bool(b),
        Some(Kind::StructValue(s)) => serde_json::Value::Object(struct_to_json(s)),
        Some(Kind::ListValue(l)) => list_to_json(l),
    }
}

/// `google.rpc.Status`: what `grpc-status-details-bin` holds.
#[derive(Clone, PartialEq, prost::Message)]
pub(crate) struct RpcStatus {
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
    #[prost(message, repeated, tag = "3")]
    pub details: Vec<prost_types::Any>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message as _;

    #[test]
    fn bytes_body_is_field_four() {
        let encoded = Message::json(&b"{}"[..]).encode_to_vec();
        // field 4, wire type 2 (length-delimited), 2 bytes.
        assert_eq!(encoded, [0x22, 2, b'{', b'}']);
        let decoded = Message::decode(&encoded[..]).unwrap();
        assert_eq!(decoded.into_json(), &b"{}"[..]);
        assert_eq!(Message::default().encode_to_vec(), [0u8; 0]);
        assert!(Message::decode(&[][..]).unwrap().into_json().is_empty());
    }

    #[test]
    fn struct_and_list_bodies_read_as_json() {
        use prost_types::{value::Kind, ListValue, Struct, Value};
        let mut fields = std::collections::BTreeMap::new();
        fields.insert(
            "a".to_owned(),
            Value {
                kind: Some(Kind::NumberValue(1.0)),
            },
        );
        let message = Message {
            body: Some(Body::StructBody(Struct { fields })),
        };
        let again = Message::decode(&message.encode_to_vec()[..]).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&again.into_json()).unwrap();
        assert_eq!(json, serde_json::json!({"a": 1.0}));
        let list = Message {
            body: Some(Body::ListBody(ListValue {
                values: vec![Value {
                    kind: Some(Kind::StringValue("x".into())),
                }],
            })),
        };
        assert_eq!(list.into_json(), &br#"["x"]"#[..]);
        let null = Message {
            body: Some(Body::NullBody(0)),
        };
        assert_eq!(null.into_json(), &b"null"[..]);
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(Message::decode(&[0x22, 9, 1][..]).is_err());
        assert!(Message::decode(&[0xff, 0xff, 0xff][..]).is_err());
    }
}
