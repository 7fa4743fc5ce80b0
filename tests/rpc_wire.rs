//! isp RPC on the wire: the exact header block of isp-kit's Go client
//! (empty `:authority` as HPACK static entry 1, `0x81`), and what the
//! server answers to calls no well-behaved client of ours makes.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use isp_cluster::rpc::{Error, Json, Message, Router, RpcServer};
use prost::Message as _;
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};

async fn echo(Json(body): Json<Value>) -> Result<Value, Error> {
    Ok(body)
}

fn server() -> RpcServer {
    common::init_logs();
    RpcServer::builder(Router::new().route("rpc/echo", echo))
        .max_message_size(1024)
        .bind("127.0.0.1:0")
        .unwrap()
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// A literal header field without indexing, new name, no Huffman.
fn literal(name: &str, value: &str) -> Vec<u8> {
    let mut out = vec![0x00, name.len() as u8];
    out.extend_from_slice(name.as_bytes());
    out.push(value.len() as u8);
    out.extend_from_slice(value.as_bytes());
    out
}

/// The header block grpc-go writes for an isp-kit call: `:path` enters the
/// dynamic table on the first call (index 62) and is indexed on the next;
/// `:authority` is the empty static entry 1 right after `:path`.
fn go_block(first: bool, request_id: &str) -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    if first {
        let path = b"/isp.BackendService/Request";
        block.push(0x44); // literal, incremental indexing, name :path
        block.push(path.len() as u8);
        block.extend_from_slice(path);
    } else {
        block.push(0x80 | 62); // :path from the dynamic table
    }
    block.push(0x81); // :authority ""
    for (k, v) in [
        ("content-type", "application/grpc"),
        ("user-agent", "grpc-go/1.77.0"),
        ("te", "trailers"),
        ("grpc-timeout", "14999916u"),
        ("proxy_method_name", "rpc/echo"),
        ("x-request-id", request_id),
    ] {
        block.extend(literal(k, v));
    }
    block
}

fn grpc_frame(message: &[u8]) -> Vec<u8> {
    let mut out = vec![0];
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out
}

#[derive(Default, Debug)]
struct Seen {
    data: HashMap<u32, Vec<u8>>,
    ended: Vec<u32>,
    resets: Vec<(u32, u32)>,
    goaway: Option<u32>,
}

#[tokio::test]
async fn calls_with_gos_exact_header_block_are_served_on_one_connection() {
    let rpc = server();
    let mut tcp = tokio::net::TcpStream::connect(rpc.local_addr())
        .await
        .unwrap();
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    out.extend(frame(0x4, 0, 0, &[])); // SETTINGS
    let bodies = [(1u32, r#"{"call":1}"#), (3, r#"{"call":2}"#)];
    for (i, (stream, body)) in bodies.iter().enumerate() {
        out.extend(frame(
            0x1,
            0x4,
            *stream,
            &go_block(i == 0, &format!("go-{i}")),
        ));
        let message = Message::json(body.to_string()).encode_to_vec();
        out.extend(frame(0x0, 0x1, *stream, &grpc_frame(&message)));
    }
    tcp.write_all(&out).await.unwrap();

    let mut seen = Seen::default();
    let mut buf = BytesMut::new();
    let read = async {
        while seen.ended.len() < 2 && seen.goaway.is_none() {
            while buf.len() >= 9 {
                let len =
                    (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
                if buf.len() < 9 + len {
                    break;
                }
                let (kind, flags) = (buf[3], buf[4]);
                let stream = u32::from_be_bytes([buf[5], buf[6], buf[7], buf[8]]) & 0x7fff_ffff;
                buf.advance(9);
                let payload = buf.split_to(len);
                match kind {
                    0x0 => seen
                        .data
                        .entry(stream)
                        .or_default()
                        .extend_from_slice(&payload),
                    0x1 if flags & 0x1 != 0 => seen.ended.push(stream),
                    0x3 => seen
                        .resets
                        .push((stream, u32::from_be_bytes(payload[..4].try_into().unwrap()))),
                    0x4 if flags & 0x1 == 0 => {
                        tcp.write_all(&frame(0x4, 0x1, 0, &[])).await.unwrap()
                    }
                    0x7 => {
                        seen.goaway = Some(u32::from_be_bytes(payload[4..8].try_into().unwrap()))
                    }
                    _ => {}
                }
                if !seen.resets.is_empty() {
                    return;
                }
            }
            if seen.ended.len() >= 2 {
                return;
            }
            let mut chunk = [0u8; 4096];
            let n = tcp.read(&mut chunk).await.unwrap();
            if n == 0 {
                return;
            }
            buf.put_slice(&chunk[..n]);
        }
    };
    let answered = tokio::time::timeout(Duration::from_secs(10), read).await;
    assert!(answered.is_ok(), "answered in time: {seen:?}");
    assert!(seen.resets.is_empty(), "no RST_STREAM: {seen:?}");
    assert_eq!(seen.goaway, None, "{seen:?}");
    for (stream, body) in bodies {
        let data = &seen.data[&stream];
        assert_eq!(data[0], 0, "not compressed");
        let message = Message::decode(&data[5..]).unwrap();
        assert_eq!(message.into_json(), Bytes::from(body), "stream {stream}");
    }
    assert_eq!(seen.ended.len(), 2, "both ended with trailers: {seen:?}");
    drop(tcp); // a raw peer answers no GOAWAY ping: close it first
    rpc.shutdown().await;
}

/// Sends raw bytes as the message: what a broken or foreign peer may send.
#[derive(Clone, Copy)]
struct RawCodec;

struct Raw;

impl Codec for RawCodec {
    type Encode = Bytes;
    type Decode = Bytes;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Bytes;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, tonic::Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

async fn raw_call(
    rpc: &RpcServer,
    path: &'static str,
    endpoint: Option<&str>,
    message: Bytes,
) -> Result<Bytes, tonic::Status> {
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", rpc.local_addr()))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let mut request = tonic::Request::new(message);
    if let Some(endpoint) = endpoint {
        request
            .metadata_mut()
            .insert("proxy_method_name", endpoint.parse().unwrap());
    }
    grpc.unary(
        request,
        http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(|r| r.into_inner())
}

fn json_message(json: &str) -> Bytes {
    Message::json(json.to_owned()).encode_to_vec().into()
}

#[tokio::test]
async fn the_server_answers_bad_calls_as_go_does() {
    let rpc = server();
    let ok = raw_call(
        &rpc,
        "/isp.BackendService/Request",
        Some("rpc/echo"),
        json_message("[1]"),
    )
    .await
    .unwrap();
    assert_eq!(Message::decode(ok).unwrap().into_json(), Bytes::from("[1]"));

    let status = raw_call(
        &rpc,
        "/isp.BackendService/Request",
        None,
        json_message("{}"),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unknown);
    assert_eq!(
        status.message(),
        "'proxy_method_name' is expected in metadata"
    );
    assert!(status.details().is_empty());

    let status = raw_call(
        &rpc,
        "/isp.BackendService/RequestStream",
        Some("rpc/echo"),
        json_message("{}"),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unimplemented);
    assert_eq!(status.message(), "service does not support streaming RPC");

    let status = raw_call(
        &rpc,
        "/isp.BackendService/Request",
        Some("rpc/echo"),
        Bytes::from_static(b"\xff\xff\xff"),
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Internal);
    assert!(
        status
            .message()
            .starts_with("grpc: error unmarshalling request: "),
        "{}",
        status.message()
    );

    let big = json_message(&format!("\"{}\"", "x".repeat(2000)));
    let status = raw_call(&rpc, "/isp.BackendService/Request", Some("rpc/echo"), big)
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);

    // No body at all, and an empty BytesBody: a business error, 400.
    for empty in [
        Bytes::new(),
        Message::json(Bytes::new()).encode_to_vec().into(),
    ] {
        let status = raw_call(&rpc, "/isp.BackendService/Request", Some("rpc/echo"), empty)
            .await
            .unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
    }
    rpc.shutdown().await;
}
