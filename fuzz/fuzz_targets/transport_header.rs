//! Feeds arbitrary bytes to the transport header decoder as the first bytes
//! of a connection and checks that it never panics, that how the bytes are
//! split changes nothing, and that a decoded header encodes back to itself
//! (the proptests call the same function).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringside::tls::invariants::check_transport_header_invariants;

fuzz_target!(|input: &[u8]| {
    check_transport_header_invariants(input);
});
