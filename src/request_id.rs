//! isp-kit's request id (Go: `requestid`): the one header name and the one
//! way of making a new id, for the balanced HTTP client and isp RPC alike.

/// The request id header and metadata key (Go: `requestid.Header`).
pub(crate) const REQUEST_ID_HEADER: &str = "x-request-id";

const HEX: &[u8; 16] = b"0123456789abcdef";

/// A new request id: 16 random bytes as 32 lower-case hex digits (Go:
/// `requestid.Next`).
pub(crate) fn new_request_id() -> String {
    let digits = new_request_id_digits();
    digits.iter().copied().map(char::from).collect()
}

/// The 32 digits of a new request id, without an allocation.
pub(crate) fn new_request_id_digits() -> [u8; 32] {
    let bytes: [u8; 16] = rand::random();
    let mut digits = [0u8; 32];
    for (i, b) in bytes.into_iter().enumerate() {
        digits[2 * i] = HEX[usize::from(b >> 4)];
        digits[2 * i + 1] = HEX[usize::from(b & 0xf)];
    }
    digits
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_id_is_32_lower_case_hex_digits_and_new_each_time() {
        let (a, b) = (new_request_id(), new_request_id());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|b| HEX.contains(&b)), "{a}");
        assert_ne!(a, b);
    }
}
