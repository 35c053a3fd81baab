//! What the soak sends and how it checks what came back: bytes drawn from a
//! seeded generator, and a streaming hash both ends compute as the bytes
//! pass, so nothing is buffered whole and a chunk boundary changes nothing.

/// A small seeded generator (xorshift64*): payloads, sizes and choices.
/// Not for secrets; it only has to be fast in a debug build and repeatable.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        // Zero is xorshift's one fixed point.
        Self(seed ^ 0x9e37_79b9_7f4a_7c15 | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in `0..bound` (bound > 0).
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next_u64() % bound
    }

    /// True with probability `percent`/100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A size spread evenly over the powers of two up to `max`, so most
    /// transfers are small and a few are large, as real traffic is.
    pub fn size(&mut self, max: usize) -> usize {
        if max == 0 {
            return 0;
        }
        let bits = usize::BITS - max.leading_zeros();
        let top = 1usize << self.below(bits as u64);
        (top + self.below(top as u64) as usize).min(max)
    }

    /// Fills `buffer` with the next bytes of this stream.
    pub fn fill(&mut self, buffer: &mut [u8]) {
        let mut words = buffer.chunks_exact_mut(8);
        for word in &mut words {
            word.copy_from_slice(&self.next_u64().to_le_bytes());
        }
        let tail = words.into_remainder();
        if !tail.is_empty() {
            let len = tail.len();
            tail.copy_from_slice(&self.next_u64().to_le_bytes()[..len]);
        }
    }
}

/// A payload of `len` bytes from `seed`, produced in pieces. Every piece
/// but the last is a whole number of 8-byte words, so the bytes are the same
/// whatever buffer each end uses.
pub struct Payload {
    rng: Rng,
    left: usize,
}

impl Payload {
    pub fn new(seed: u64, len: usize) -> Self {
        Self {
            rng: Rng::new(seed),
            left: len,
        }
    }

    /// The next piece into `buffer`; empty once the payload is all out.
    pub fn next<'a>(&mut self, buffer: &'a mut [u8]) -> &'a [u8] {
        let len = (buffer.len() & !7).min(self.left);
        self.rng.fill(&mut buffer[..len]);
        self.left -= len;
        &buffer[..len]
    }

    /// The hash of the whole payload, without keeping it.
    pub fn digest(seed: u64, len: usize) -> Digest {
        let mut payload = Self::new(seed, len);
        let mut buffer = vec![0u8; 64 * 1024];
        let mut hash = StreamHash::default();
        loop {
            let piece = payload.next(&mut buffer);
            if piece.is_empty() {
                return hash.finish();
            }
            hash.update(piece);
        }
    }
}

/// Length and hash of a byte stream: what "byte-exact" is checked by.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Digest {
    pub len: u64,
    pub hash: u64,
}

impl std::fmt::Display for Digest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{:016x}", self.len, self.hash)
    }
}

impl std::str::FromStr for Digest {
    type Err = ();

    fn from_str(text: &str) -> Result<Self, ()> {
        let (len, hash) = text.trim().split_once(':').ok_or(())?;
        Ok(Digest {
            len: len.parse().map_err(|_| ())?,
            hash: u64::from_str_radix(hash, 16).map_err(|_| ())?,
        })
    }
}

/// A 64-bit multiply-xorshift hash over 8-byte words, fed in any pieces:
/// the bytes that do not fill a word wait for the next piece. Any change of
/// a byte, its order or the length changes it with overwhelming likelihood,
/// which is all a transfer check needs (no adversary here).
#[derive(Clone, Debug, Default)]
pub struct StreamHash {
    state: u64,
    len: u64,
    pending: [u8; 8],
    pending_len: usize,
}

impl StreamHash {
    pub fn update(&mut self, mut bytes: &[u8]) {
        self.len += bytes.len() as u64;
        if self.pending_len > 0 {
            let take = (8 - self.pending_len).min(bytes.len());
            self.pending[self.pending_len..self.pending_len + take].copy_from_slice(&bytes[..take]);
            self.pending_len += take;
            bytes = &bytes[take..];
            if self.pending_len < 8 {
                return;
            }
            self.mix(u64::from_le_bytes(self.pending));
            self.pending_len = 0;
        }
        let mut words = bytes.chunks_exact(8);
        for word in &mut words {
            self.mix(u64::from_le_bytes(word.try_into().expect("8 bytes")));
        }
        let tail = words.remainder();
        self.pending[..tail.len()].copy_from_slice(tail);
        self.pending_len = tail.len();
    }

    /// Bytes seen so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn mix(&mut self, word: u64) {
        let x = (self.state ^ word).wrapping_mul(0xff51_afd7_ed55_8ccd);
        self.state = (x ^ (x >> 29)).rotate_left(23);
    }

    pub fn finish(&self) -> Digest {
        let mut last = [0u8; 8];
        last[..self.pending_len].copy_from_slice(&self.pending[..self.pending_len]);
        let mut copy = self.clone();
        copy.mix(u64::from_le_bytes(last) ^ self.len.rotate_left(32));
        copy.mix(self.len);
        Digest {
            len: self.len,
            hash: copy.state,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_does_not_depend_on_how_bytes_are_split() {
        let mut bytes = vec![0u8; 1000];
        Rng::new(7).fill(&mut bytes);
        let mut whole = StreamHash::default();
        whole.update(&bytes);
        let mut pieces = StreamHash::default();
        for piece in bytes.chunks(3) {
            pieces.update(piece);
        }
        assert_eq!(whole.finish(), pieces.finish());
        assert_eq!(whole.finish(), Payload::digest(7, 1000));
        let mut small = Payload::new(7, 1000);
        let mut by_pieces = StreamHash::default();
        let mut buffer = [0u8; 24];
        loop {
            let piece = small.next(&mut buffer);
            if piece.is_empty() {
                break;
            }
            by_pieces.update(piece);
        }
        assert_eq!(by_pieces.finish(), whole.finish());
        bytes[500] ^= 1;
        let mut changed = StreamHash::default();
        changed.update(&bytes);
        assert_ne!(changed.finish(), whole.finish());
    }

    #[test]
    fn a_digest_reads_back_what_it_writes() {
        let digest = Payload::digest(3, 12345);
        assert_eq!(digest.to_string().parse(), Ok(digest));
    }
}
