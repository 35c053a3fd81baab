//! The ClientHello body (RFC 8446 section 4.1.2): what it tells us, and a
//! parser that copes with having only the first part of it.
//!
//! Every read is bounds-checked twice: against the length the enclosing field
//! declares (overrunning it means the hello is malformed, whatever arrives
//! later) and against the bytes that have arrived (running out only means we
//! must wait). Keeping those two apart is what lets the detector tell
//! "incomplete" from "not TLS" without ever reading past the slice.

/// What the detector learned from a ClientHello.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientHelloInfo {
    /// The SNI host name followed by the ALPN `protocol_name_list` as sent
    /// (already validated): one allocation instead of two, because this runs
    /// on every TLS connection.
    owned_bytes: Vec<u8>,
    /// How many leading bytes of `owned_bytes` are the host name. `None`
    /// without SNI; we keep only a non-empty ASCII first `host_name`, which is
    /// all RFC 6066 allows, rather than trust anything else.
    server_name_len: Option<usize>,
    /// False when the hello was cut off (spans several records, or the peek
    /// buffer was full): absent fields may then simply not have been seen.
    complete: bool,
}

impl ClientHelloInfo {
    /// The SNI host name, if the client sent one and we saw it.
    pub fn server_name(&self) -> Option<&str> {
        let name = self.owned_bytes.get(..self.server_name_len?)?;
        std::str::from_utf8(name).ok()
    }

    /// The ALPN protocols the client offers, in its order of preference.
    pub fn alpn_protocols(&self) -> AlpnProtocols<'_> {
        let alpn_start = self.server_name_len.unwrap_or(0);
        AlpnProtocols {
            remaining: self.owned_bytes.get(alpn_start..).unwrap_or_default(),
        }
    }

    /// Whether the whole ClientHello was parsed. When false, a missing SNI or
    /// ALPN may be in the part that was not seen.
    pub fn is_complete(&self) -> bool {
        self.complete
    }
}

/// The fields we keep, still borrowed from the peeked bytes while parsing.
#[derive(Default)]
struct HelloFields<'a> {
    server_name: Option<&'a [u8]>,
    alpn_wire: &'a [u8],
}

impl HelloFields<'_> {
    fn into_info(self, complete: bool) -> ClientHelloInfo {
        let server_name = self.server_name.unwrap_or_default();
        let mut owned_bytes = Vec::with_capacity(server_name.len() + self.alpn_wire.len());
        owned_bytes.extend_from_slice(server_name);
        owned_bytes.extend_from_slice(self.alpn_wire);
        ClientHelloInfo {
            owned_bytes,
            server_name_len: self.server_name.map(<[u8]>::len),
            complete,
        }
    }
}

/// Iterator over the ALPN protocol names of a [`ClientHelloInfo`].
#[derive(Debug, Clone)]
pub struct AlpnProtocols<'a> {
    remaining: &'a [u8],
}

impl<'a> Iterator for AlpnProtocols<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let (&len, rest) = self.remaining.split_first()?;
        let name = rest.get(..usize::from(len))?;
        self.remaining = &rest[name.len()..];
        Some(name)
    }
}

/// Why parsing stopped before the end of the hello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stop {
    /// A length field overruns its container: no later byte can fix that.
    Malformed,
    /// The next field lies beyond the bytes we have.
    OutOfBytes,
}

/// Parses a ClientHello body (after the 4-byte handshake header) whose
/// declared length is `declared_len`, of which only `available` has arrived.
/// On [`Stop::OutOfBytes`] the partial info is still returned: the SNI and
/// ALPN of extensions that arrived whole are as good as in a complete hello.
pub(crate) fn parse_client_hello_body(
    available: &[u8],
    declared_len: usize,
) -> (ClientHelloInfo, Option<Stop>) {
    let mut fields = HelloFields::default();
    let mut cursor = Cursor {
        available,
        position: 0,
        end: declared_len,
    };
    let stop = parse_fields(&mut cursor, &mut fields).err();
    (fields.into_info(stop.is_none()), stop)
}

fn parse_fields<'a>(cursor: &mut Cursor<'a>, fields: &mut HelloFields<'a>) -> Result<(), Stop> {
    let legacy_version = cursor.take(2)?;
    if legacy_version[0] != 0x03 {
        return Err(Stop::Malformed);
    }
    cursor.take(32)?; // random
    let session_id_len = cursor.take_u8()?;
    if session_id_len > 32 {
        return Err(Stop::Malformed);
    }
    cursor.take(usize::from(session_id_len))?;
    let cipher_suites_len = cursor.take_u16()?;
    if cipher_suites_len < 2 || cipher_suites_len % 2 != 0 {
        return Err(Stop::Malformed);
    }
    cursor.take(usize::from(cipher_suites_len))?;
    let compression_methods_len = cursor.take_u8()?;
    if compression_methods_len == 0 {
        return Err(Stop::Malformed);
    }
    cursor.take(usize::from(compression_methods_len))?;
    if cursor.is_at_end() {
        return Ok(()); // pre-TLS 1.2 clients may send no extensions at all
    }
    // The extensions must fill the rest of the hello exactly.
    if usize::from(cursor.take_u16()?) != cursor.remaining_declared() {
        return Err(Stop::Malformed);
    }
    while !cursor.is_at_end() {
        let extension_type = cursor.take_u16()?;
        let extension_len = cursor.take_u16()?;
        let body = cursor.take(usize::from(extension_len))?;
        match extension_type {
            SERVER_NAME if fields.server_name.is_none() => {
                fields.server_name = parse_server_name(body)?;
            }
            ALPN if fields.alpn_wire.is_empty() => {
                fields.alpn_wire = parse_alpn(body)?;
            }
            _ => {}
        }
    }
    Ok(())
}

const SERVER_NAME: u16 = 0;
const ALPN: u16 = 16;
const HOST_NAME: u8 = 0;

/// The first host name of a `ServerNameList` (RFC 6066 section 3).
fn parse_server_name(body: &[u8]) -> Result<Option<&[u8]>, Stop> {
    let mut cursor = Cursor::whole(body);
    if usize::from(cursor.take_u16()?) != cursor.remaining_declared() {
        return Err(Stop::Malformed);
    }
    let mut host_name = None;
    while !cursor.is_at_end() {
        let name_type = cursor.take_u8()?;
        let name_len = cursor.take_u16()?;
        let name = cursor.take(usize::from(name_len))?;
        if name_type == HOST_NAME && host_name.is_none() && !name.is_empty() && name.is_ascii() {
            host_name = Some(name);
        }
    }
    Ok(host_name)
}

/// A validated `ProtocolNameList` (RFC 7301 section 3.1), without its length.
fn parse_alpn(body: &[u8]) -> Result<&[u8], Stop> {
    let mut cursor = Cursor::whole(body);
    if usize::from(cursor.take_u16()?) != cursor.remaining_declared() {
        return Err(Stop::Malformed);
    }
    let list_start = cursor.position;
    while !cursor.is_at_end() {
        let name_len = cursor.take_u8()?;
        if name_len == 0 {
            return Err(Stop::Malformed);
        }
        cursor.take(usize::from(name_len))?;
    }
    Ok(&body[list_start..])
}

/// A read position inside a field whose declared length may exceed the bytes
/// that have arrived.
struct Cursor<'a> {
    available: &'a [u8],
    position: usize,
    /// Where the enclosing field ends by its declared length.
    end: usize,
}

impl<'a> Cursor<'a> {
    /// A cursor over a field that has fully arrived.
    fn whole(field: &'a [u8]) -> Self {
        Cursor {
            available: field,
            position: 0,
            end: field.len(),
        }
    }

    fn take(&mut self, len: usize) -> Result<&'a [u8], Stop> {
        if len > self.remaining_declared() {
            return Err(Stop::Malformed);
        }
        let bytes = self
            .available
            .get(self.position..self.position + len)
            .ok_or(Stop::OutOfBytes)?;
        self.position += len;
        Ok(bytes)
    }

    fn take_u8(&mut self) -> Result<u8, Stop> {
        Ok(self.take(1)?[0])
    }

    fn take_u16(&mut self) -> Result<u16, Stop> {
        let bytes = self.take(2)?;
        Ok(u16::from_be_bytes([bytes[0], bytes[1]]))
    }

    fn remaining_declared(&self) -> usize {
        self.end - self.position
    }

    fn is_at_end(&self) -> bool {
        self.position == self.end
    }
}

#[cfg(test)]
mod tests {
    use super::super::sample_client_hello::OPENSSL_CLIENT_HELLO;
    use super::*;

    /// The sample's body: after the 5-byte record and 4-byte handshake headers.
    fn sample_body() -> &'static [u8] {
        &OPENSSL_CLIENT_HELLO[9..]
    }

    #[test]
    fn openssl_hello_gives_sni_and_alpn() {
        let (info, stop) = parse_client_hello_body(sample_body(), sample_body().len());
        assert_eq!(stop, None);
        assert!(info.is_complete());
        assert_eq!(info.server_name(), Some("example.test"));
        let alpn: Vec<&[u8]> = info.alpn_protocols().collect();
        assert_eq!(alpn, [&b"h2"[..], &b"http/1.1"[..]]);
    }

    #[test]
    fn every_truncation_runs_out_of_bytes_without_panicking() {
        let body = sample_body();
        for len in 0..body.len() {
            let (info, stop) = parse_client_hello_body(&body[..len], body.len());
            assert_eq!(stop, Some(Stop::OutOfBytes), "truncated to {len} bytes");
            assert!(!info.is_complete());
        }
    }

    #[test]
    fn sni_is_kept_once_its_extension_arrived_whole() {
        let body = sample_body();
        // The SNI extension ends right after "example.test".
        let sni_end = body.windows(12).position(|w| w == b"example.test").unwrap() + 12;
        let (info, _) = parse_client_hello_body(&body[..sni_end], body.len());
        assert_eq!(info.server_name(), Some("example.test"));
        let (info, _) = parse_client_hello_body(&body[..sni_end - 1], body.len());
        assert_eq!(info.server_name(), None);
    }

    #[test]
    fn lying_inner_lengths_are_malformed() {
        let body = sample_body();
        let mut oversized_session_id = body.to_vec();
        oversized_session_id[34] = 33;
        let mut odd_cipher_suites = body.to_vec();
        odd_cipher_suites[35 + 32 + 1] ^= 1;
        for lying in [oversized_session_id, odd_cipher_suites] {
            let (_, stop) = parse_client_hello_body(&lying, lying.len());
            assert_eq!(stop, Some(Stop::Malformed));
        }
        // A declared hello shorter than its contents.
        let (_, stop) = parse_client_hello_body(body, 40);
        assert_eq!(stop, Some(Stop::Malformed));
    }

    #[test]
    fn hello_without_extensions_is_complete() {
        let mut body = vec![0x03, 0x03];
        body.extend_from_slice(&[7; 32]);
        body.extend_from_slice(&[0, 0, 2, 0x13, 0x01, 1, 0]);
        let (info, stop) = parse_client_hello_body(&body, body.len());
        assert_eq!(stop, None);
        assert_eq!(info.server_name(), None);
        assert_eq!(info.alpn_protocols().count(), 0);
    }

    #[test]
    fn non_ascii_host_name_is_dropped_not_trusted() {
        let body = [0, 6, HOST_NAME, 0, 3, b'a', 0xff, b'b'];
        assert_eq!(parse_server_name(&body), Ok(None));
    }

    #[test]
    fn empty_alpn_name_is_malformed() {
        assert_eq!(parse_alpn(&[0, 3, 2, b'h', b'2']), Ok(&[2, b'h', b'2'][..]));
        assert_eq!(parse_alpn(&[0, 1, 0]), Err(Stop::Malformed));
    }
}
