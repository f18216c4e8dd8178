//! Reading structured values off the fuzzer's bytes. Past the end every read
//! gives zero or empty, so any input decodes to something.

pub(crate) struct Input<'a> {
    bytes: &'a [u8],
}

impl<'a> Input<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Input { bytes }
    }

    pub fn byte(&mut self) -> u8 {
        match self.bytes.split_first() {
            Some((&b, rest)) => {
                self.bytes = rest;
                b
            }
            None => 0,
        }
    }

    pub fn flag(&mut self) -> bool {
        self.byte() & 1 == 1
    }

    /// Up to `n` bytes.
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.bytes.split_at(n.min(self.bytes.len()));
        self.bytes = rest;
        head
    }

    pub fn u64(&mut self) -> u64 {
        let mut raw = [0u8; 8];
        let head = self.take(8);
        raw[..head.len()].copy_from_slice(head);
        u64::from_le_bytes(raw)
    }

    /// A number that is mostly small (configuration ranges end at a few
    /// thousand), sometimes anything.
    pub fn number(&mut self) -> u32 {
        match self.byte() {
            b @ 0..=0x7F => u32::from(b),
            0x80..=0xEF => u32::from(u16::from_le_bytes([self.byte(), self.byte()])),
            _ => self.u64() as u32,
        }
    }

    /// A length-prefixed string (invalid UTF-8 replaced, as FreeRADIUS's strings may be anything).
    pub fn text(&mut self) -> String {
        let len = usize::from(self.byte());
        String::from_utf8_lossy(self.take(len)).into_owned()
    }

    /// A string or nothing.
    pub fn option_text(&mut self) -> Option<String> {
        self.flag().then(|| self.text())
    }

    pub fn rest(self) -> &'a [u8] {
        self.bytes
    }
}
