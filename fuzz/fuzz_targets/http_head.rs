//! Feeds arbitrary bytes to the HTTP/1 head parsers and checks that every
//! head that parses is passed on in a form that parses back to the same
//! message (the proptests call the same function).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringside::http::invariants::check_head_invariants;

fuzz_target!(|input: &[u8]| {
    check_head_invariants(input);
});
