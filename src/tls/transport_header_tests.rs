use super::*;

/// Shorthand for the decoder's answer on a whole header.
fn complete(header: TransportHeader, consumed: usize) -> Result<Decoded, HeaderError> {
    Ok(Decoded::Complete { header, consumed })
}

/// The preface followed by a length and a message, each written by hand.
fn framed(length: [u8; 4], message: &[u8]) -> Vec<u8> {
    [b"transport.l5d.io/v1\r\n\r\n".as_slice(), &length, message].concat()
}

fn samples() -> Vec<TransportHeader> {
    let mut samples = Vec::new();
    for port in [1, 80, 4143, 65535] {
        for name in [
            None,
            Some("web.ns.svc.cluster.local"),
            Some("db_1.example."),
        ] {
            for protocol in [
                None,
                Some(SessionProtocol::Http1),
                Some(SessionProtocol::Http2),
            ] {
                samples.push(TransportHeader {
                    port,
                    name: name.map(String::from),
                    protocol,
                });
            }
        }
    }
    samples
}

#[test]
fn the_preface_is_the_alpn_name_and_a_blank_line() {
    // 19 bytes of "transport.l5d.io/v1", then CR LF CR LF.
    assert_eq!(PREFACE.len(), 23);
    assert_eq!(&PREFACE[..19], ALPN);
    assert_eq!(&PREFACE[19..], b"\r\n\r\n");
}

#[test]
fn a_hand_written_header_with_a_name_decodes_and_encodes_alike() {
    // Linkerd's own tests use these values (port 4040, foo.bar.example.com,
    // HTTP/2) but build their bytes with the encoder; these are by hand.
    let message = [
        0x08, 0xc8, 0x1f, // field 1 (port), varint: 4040 = 0x48 | 0x80, then 4040 >> 7 = 0x1f
        0x12, 0x13, // field 2 (name), length-delimited, 19 bytes:
        b'f', b'o', b'o', b'.', b'b', b'a', b'r', b'.', b'e', b'x', b'a', b'm', b'p', b'l', b'e',
        b'.', b'c', b'o', b'm', //
        0x1a, 0x02, // field 3 (session_protocol), length-delimited, 2 bytes:
        0x12, 0x00, // its field 2 (http2), an empty message
    ];
    // 3 + 2 + 19 + 4 = 28 bytes of message.
    let wire = framed([0x00, 0x00, 0x00, 0x1c], &message);
    let header = TransportHeader {
        port: 4040,
        name: Some("foo.bar.example.com".to_string()),
        protocol: Some(SessionProtocol::Http2),
    };
    let mut with_data = wire.clone();
    with_data.extend_from_slice(b"GET / HTTP/1.1\r\n");
    assert_eq!(
        TransportHeader::decode(&with_data),
        complete(header.clone(), wire.len())
    );
    assert_eq!(header.encode(), wire);
}

#[test]
fn a_hand_written_header_without_a_name_decodes_and_encodes_alike() {
    let message = [
        0x08, 0x50, // field 1 (port), varint 80
        0x1a, 0x02, // field 3 (session_protocol), 2 bytes:
        0x0a, 0x00, // its field 1 (http1), an empty message
    ];
    let wire = framed([0x00, 0x00, 0x00, 0x06], &message);
    let header = TransportHeader {
        port: 80,
        name: None,
        protocol: Some(SessionProtocol::Http1),
    };
    assert_eq!(
        TransportHeader::decode(&wire),
        complete(header.clone(), wire.len())
    );
    assert_eq!(header.encode(), wire);
}

#[test]
fn a_hand_written_opaque_header_decodes_and_encodes_alike() {
    // Field 1, varint 65535: 0x7f | 0x80, 0x7f | 0x80, 0x03. No protocol.
    let wire = framed([0x00, 0x00, 0x00, 0x04], &[0x08, 0xff, 0xff, 0x03]);
    let header = TransportHeader {
        port: 65535,
        name: None,
        protocol: None,
    };
    assert_eq!(
        TransportHeader::decode(&wire),
        complete(header.clone(), wire.len())
    );
    assert_eq!(header.encode(), wire);
}

#[test]
fn every_header_round_trips_and_leaves_the_data_after_it() {
    for header in samples() {
        let mut wire = header.encode();
        let consumed = wire.len();
        assert_eq!(
            TransportHeader::decode(&wire),
            complete(header.clone(), consumed)
        );
        wire.extend_from_slice(b"\x16\x03\x01 application bytes");
        assert_eq!(TransportHeader::decode(&wire), complete(header, consumed));
    }
}

#[test]
fn an_empty_name_is_sent_as_none() {
    let header = TransportHeader {
        port: 8080,
        name: Some(String::new()),
        protocol: None,
    };
    let decoded = TransportHeader::decode(&header.encode());
    let expected = TransportHeader {
        name: None,
        ..header
    };
    assert_eq!(decoded, complete(expected, 27 + 3));
}

#[test]
fn every_prefix_is_incomplete_and_one_byte_at_a_time_decodes_the_same() {
    for header in samples() {
        let wire = header.encode();
        let mut stream = wire.clone();
        stream.extend_from_slice(b"after");
        let mut received = Vec::new();
        for &byte in &stream {
            received.push(byte);
            let decoded = TransportHeader::decode(&received);
            if received.len() < wire.len() {
                assert_eq!(decoded, Ok(Decoded::Incomplete), "{} bytes", received.len());
            } else {
                assert_eq!(decoded, complete(header.clone(), wire.len()));
            }
        }
    }
}

#[test]
fn a_wrong_preface_is_refused_at_its_first_wrong_byte() {
    assert_eq!(TransportHeader::decode(b""), Ok(Decoded::Incomplete));
    assert_eq!(TransportHeader::decode(b"G"), Err(HeaderError::BadPreface));
    assert_eq!(
        TransportHeader::decode(b"GET / HTTP/1.1\r\n"),
        Err(HeaderError::BadPreface)
    );
    let v2 = b"transport.l5d.io/v2\r\n\r\n";
    assert_eq!(TransportHeader::decode(&v2[..18]), Ok(Decoded::Incomplete));
    assert_eq!(
        TransportHeader::decode(&v2[..19]),
        Err(HeaderError::BadPreface)
    );
    let bare_lf = b"transport.l5d.io/v1\r\n\n";
    assert_eq!(
        TransportHeader::decode(bare_lf),
        Err(HeaderError::BadPreface)
    );
}

#[test]
fn a_length_over_the_limit_is_refused_before_the_message_arrives() {
    assert_eq!(
        TransportHeader::decode(&framed([0x00, 0x00, 0x04, 0x01], &[])),
        Err(HeaderError::TooLong { length_bytes: 1025 })
    );
    assert_eq!(
        TransportHeader::decode(&framed([0xff; 4], &[])),
        Err(HeaderError::TooLong {
            length_bytes: u32::MAX
        })
    );
    // The limit itself is allowed: wait for the message.
    assert_eq!(
        TransportHeader::decode(&framed([0x00, 0x00, 0x04, 0x00], &[])),
        Ok(Decoded::Incomplete)
    );
}

#[test]
fn a_port_outside_1_to_65535_is_refused() {
    let cases: [(&[u8], i32); 4] = [
        // An empty message: the port is proto3's default, 0.
        (&[], 0),
        (&[0x08, 0x00], 0),
        // -1 as int32 is sign-extended to 64 bits: ten varint bytes.
        (
            &[
                0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
            ],
            -1,
        ),
        // 65536 = 0x80, 0x80, 0x04.
        (&[0x08, 0x80, 0x80, 0x04], 65536),
    ];
    for (message, port) in cases {
        let length = u32::try_from(message.len()).unwrap().to_be_bytes();
        assert_eq!(
            TransportHeader::decode(&framed(length, message)),
            Err(HeaderError::BadPort { port }),
            "{message:02x?}"
        );
    }
}

#[test]
fn a_malformed_message_is_refused() {
    let cases: [&[u8]; 5] = [
        &[0x08, 0x50, 0x12, 0x05],             // a name of 5 bytes with none there
        &[0x08, 0x80],                         // a varint cut short
        &[0x08, 0x50, 0x12, 0x01, 0xff],       // a name that is not UTF-8
        &[0x0f],                               // wire type 7 does not exist
        &[0x08, 0x50, 0x1a, 0x02, 0x0a, 0x05], // http1 of 5 bytes, none there
    ];
    for message in cases {
        let length = u32::try_from(message.len()).unwrap().to_be_bytes();
        let decoded = TransportHeader::decode(&framed(length, message));
        assert!(
            matches!(decoded, Err(HeaderError::Malformed(_))),
            "{message:02x?}: {decoded:?}"
        );
    }
}

#[test]
fn a_name_that_is_not_a_dns_name_is_refused() {
    let too_long = format!("{}.com", "a".repeat(250)); // 254 bytes
    let long_label = format!("{}.com", "a".repeat(64));
    for name in [
        "-web.ns",
        "web-.ns",
        "a..b",
        ".",
        "1.2.3.4",
        "web ns",
        &too_long,
        &long_label,
    ] {
        let header = TransportHeader {
            port: 80,
            name: Some(name.to_string()),
            protocol: None,
        };
        assert_eq!(
            TransportHeader::decode(&header.encode()),
            Err(HeaderError::BadName),
            "{name}"
        );
    }
    // 3 labels of 63 bytes, one of 61 and 3 dots: 253 bytes.
    let longest = format!("{0}.{0}.{0}.{1}", "a".repeat(63), "b".repeat(61));
    assert_eq!(longest.len(), 253);
    for name in ["localhost.", "web_1.ns.svc.cluster.local", "x.1a", &longest] {
        assert!(is_dns_name(name), "{name}");
    }
}

#[test]
fn unknown_fields_and_protocols_are_skipped_as_linkerd_does() {
    let message = [
        0x08, 0x50, // port 80
        0x1a, 0x02, 0x1a, 0x00, // a session protocol of a kind not known here (field 3)
        0x20, 0x01, // field 4, varint 1: not in this version's message
    ];
    let wire = framed([0x00, 0x00, 0x00, 0x08], &message);
    let header = TransportHeader {
        port: 80,
        name: None,
        protocol: None,
    };
    assert_eq!(TransportHeader::decode(&wire), complete(header, wire.len()));
}

#[test]
fn every_refusal_has_its_own_label() {
    let inputs = [
        b"GET".to_vec(),
        framed([0xff; 4], &[]),
        framed([0x00, 0x00, 0x00, 0x01], &[0x0f]),
        framed([0x00; 4], &[]),
        framed([0x00, 0x00, 0x00, 0x05], &[0x08, 0x50, 0x12, 0x01, b'.']),
    ];
    let labels = inputs.map(|input| match TransportHeader::decode(&input) {
        Err(error) => error.as_str(),
        Ok(decoded) => panic!("{input:02x?} decodes as {decoded:?}"),
    });
    assert_eq!(
        labels,
        [
            "bad_preface",
            "too_long",
            "malformed",
            "bad_port",
            "bad_name"
        ]
    );
}
