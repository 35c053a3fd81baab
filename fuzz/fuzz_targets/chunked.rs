//! Feeds arbitrary bytes to the chunked-body scanner and checks that its
//! verdict does not depend on how the bytes are split across reads and that
//! a lenient reader ends an accepted body where it does (the proptests call
//! the same function).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringside::http::invariants::check_chunked_invariants;

fuzz_target!(|input: &[u8]| {
    check_chunked_invariants(input);
});
