//! MS-CHAPv2 (RFC 2759) with a one-time code as the password, and the MPPE keys
//! (RFC 3079, RFC 2548) that bring up the NAS's encrypted tunnel. The code never
//! arrives: every candidate code is tried against the NT-Response (see
//! `verify::find_by`), and for the one that answers, the authenticator response
//! ("S=...") and the keys are computed as FreeRADIUS's own mschap module does.

use des::cipher::{BlockEncrypt, KeyInit};
use md4::{Digest, Md4};
use sha1::Sha1;
use subtle::ConstantTimeEq;

/// What the NAS sent: MS-CHAP-Challenge and MS-CHAP2-Response (RFC 2548 section 2.3.2).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MsChap2 {
    /// The response's ident, echoed in MS-CHAP2-Success.
    pub ident: u8,
    /// MS-CHAP-Challenge: the authenticator challenge.
    pub auth_challenge: [u8; 16],
    pub peer_challenge: [u8; 16],
    pub nt_response: [u8; 24],
    /// The user name the client hashed: without a "DOMAIN\" in front.
    pub user_name: Vec<u8>,
}

impl MsChap2 {
    /// From the attributes' values; None when their lengths are not the protocol's.
    /// `user_name` is MS-CHAP-User-Name or User-Name; a "DOMAIN\" before it is dropped,
    /// as the client does (and mschap's with_ntdomain_hack).
    pub fn from_attributes(challenge: &[u8], response: &[u8], user_name: &[u8]) -> Option<MsChap2> {
        if response.len() != 50 {
            return None;
        }
        let user = match user_name.iter().position(|&b| b == b'\\') {
            Some(at) => &user_name[at + 1..],
            None => user_name,
        };
        Some(MsChap2 {
            ident: response[0],
            auth_challenge: challenge.try_into().ok()?,
            peer_challenge: response[2..18].try_into().ok()?,
            nt_response: response[26..50].try_into().ok()?,
            user_name: user.to_vec(),
        })
    }

    /// RFC 2759 ChallengeHash: the 8 bytes the NT-Response encrypts, the same for
    /// every candidate code.
    pub fn challenge_hash(&self) -> [u8; 8] {
        let digest = Sha1::new()
            .chain_update(self.peer_challenge)
            .chain_update(self.auth_challenge)
            .chain_update(&self.user_name)
            .finalize();
        digest[..8].try_into().expect("SHA-1 is 20 bytes")
    }

    /// Whether `code` is the password behind the NT-Response (constant time in the answer).
    pub fn answers(&self, challenge_hash: &[u8; 8], code: &str) -> bool {
        bool::from(nt_response(challenge_hash, &nt_password_hash(code)).ct_eq(&self.nt_response))
    }

    /// What the reply carries once `code` has answered: MS-CHAP2-Success (ident,
    /// then "S=" and 40 upper-case hex digits) and the MPPE keys.
    pub fn success(&self, code: &str) -> Success {
        let hash_hash: [u8; 16] = Md4::digest(nt_password_hash(code)).into();
        let digest = Sha1::new().chain_update(hash_hash).chain_update(self.nt_response).chain_update(MAGIC1).finalize();
        let digest =
            Sha1::new().chain_update(digest).chain_update(self.challenge_hash()).chain_update(MAGIC2).finalize();
        let mut message = Vec::with_capacity(43);
        message.push(self.ident);
        message.extend_from_slice(b"S=");
        message.extend_from_slice(data_encoding::HEXUPPER.encode(&digest).as_bytes());
        let master = master_key(&hash_hash, &self.nt_response);
        Success {
            mschap2_success: message,
            send_key: start_key(&master, &KEY_MAGIC3),
            recv_key: start_key(&master, &KEY_MAGIC2),
        }
    }
}

#[cfg(test)]
impl MsChap2 {
    /// What a client typing `code` sends (for the engine's tests).
    pub(crate) fn as_client(auth_challenge: [u8; 16], peer_challenge: [u8; 16], user: &str, code: &str) -> MsChap2 {
        let mut m = MsChap2 { ident: 1, auth_challenge, peer_challenge, nt_response: [0; 24], user_name: user.into() };
        m.nt_response = nt_response(&m.challenge_hash(), &nt_password_hash(code));
        m
    }
}

/// The reply of an accepted MS-CHAPv2 login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Success {
    /// MS-CHAP2-Success's value.
    pub mschap2_success: Vec<u8>,
    /// MS-MPPE-Send-Key (the server's send key), 128 bits; FreeRADIUS encrypts it
    /// with the shared secret on the way out (the dictionary's encrypt=2).
    pub send_key: [u8; 16],
    /// MS-MPPE-Recv-Key.
    pub recv_key: [u8; 16],
}

/// MD4 of the password in UTF-16LE (RFC 2759 NtPasswordHash).
fn nt_password_hash(code: &str) -> [u8; 16] {
    let mut md4 = Md4::new();
    for unit in code.encode_utf16() {
        md4.update(unit.to_le_bytes());
    }
    md4.finalize().into()
}

/// RFC 2759 ChallengeResponse: the challenge hash DES-encrypted under three keys cut
/// from the password hash padded to 21 bytes.
fn nt_response(challenge_hash: &[u8; 8], password_hash: &[u8; 16]) -> [u8; 24] {
    let mut padded = [0u8; 21];
    padded[..16].copy_from_slice(password_hash);
    let mut out = [0u8; 24];
    for (key, block) in padded.chunks(7).zip(out.chunks_mut(8)) {
        let cipher = des::Des::new(&des_key(key.try_into().expect("21 = 3 x 7")).into());
        let mut b = (*challenge_hash).into();
        cipher.encrypt_block(&mut b);
        block.copy_from_slice(&b);
    }
    out
}

/// A 56-bit key spread over 8 bytes, 7 bits each (the low bit is parity, ignored by DES).
fn des_key(k: &[u8; 7]) -> [u8; 8] {
    let bits = k.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
    let mut key = [0u8; 8];
    for (i, byte) in key.iter_mut().enumerate() {
        *byte = (((bits >> (49 - 7 * i)) & 0x7f) as u8) << 1;
    }
    key
}

/// RFC 3079 GetMasterKey.
fn master_key(hash_hash: &[u8; 16], nt_response: &[u8; 24]) -> [u8; 16] {
    let digest = Sha1::new().chain_update(hash_hash).chain_update(nt_response).chain_update(KEY_MAGIC1).finalize();
    digest[..16].try_into().expect("SHA-1 is 20 bytes")
}

/// RFC 3079 GetAsymmetricStartKey for a 128-bit key.
fn start_key(master: &[u8; 16], magic: &[u8; 84]) -> [u8; 16] {
    let digest = Sha1::new()
        .chain_update(master)
        .chain_update([0u8; 40])
        .chain_update(magic)
        .chain_update([0xf2u8; 40])
        .finalize();
    digest[..16].try_into().expect("SHA-1 is 20 bytes")
}

// RFC 2759 section 8.7.
const MAGIC1: &[u8; 39] = b"Magic server to client signing constant";
const MAGIC2: &[u8; 41] = b"Pad to make it do more than one iteration";
// RFC 3079 section 3.4.
const KEY_MAGIC1: &[u8; 27] = b"This is the MPPE Master Key";
const KEY_MAGIC2: [u8; 84] = *b"On the client side, this is the send key; on the server side, it is the receive key.";
const KEY_MAGIC3: [u8; 84] = *b"On the client side, this is the receive key; on the server side, it is the send key.";

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        data_encoding::HEXUPPER.decode(s.replace(' ', "").as_bytes()).unwrap()
    }

    /// RFC 2759 section 9.2 (user "User", password "clientPass").
    fn rfc2759() -> MsChap2 {
        let mut response = vec![7u8, 0];
        response.extend(hex("21 40 23 24 25 5E 26 2A 28 29 5F 2B 3A 33 7C 7E"));
        response.extend([0u8; 8]);
        response.extend(hex("82 30 9E CD 8D 70 8B 5E A0 8F AA 39 81 CD 83 54 42 33 11 4A 3D 85 D6 DF"));
        MsChap2::from_attributes(&hex("5B 5D 7C 7D 7B 3F 2F 3E 3C 2C 60 21 32 26 26 28"), &response, b"User").unwrap()
    }

    #[test]
    fn the_rfc_2759_example_answers_and_its_authenticator_response_matches() {
        let m = rfc2759();
        assert_eq!(m.challenge_hash().to_vec(), hex("D0 2E 43 86 BC E9 12 26"));
        assert_eq!(nt_password_hash("clientPass").to_vec(), hex("44 EB BA 8D 53 12 B8 D6 11 47 44 11 F5 69 89 AE"));
        assert!(m.answers(&m.challenge_hash(), "clientPass"));
        assert!(!m.answers(&m.challenge_hash(), "clientPasS"));
        let success = m.success("clientPass");
        assert_eq!(success.mschap2_success[0], 7, "the ident");
        assert_eq!(&success.mschap2_success[1..], b"S=407A5589115FD0D6209F510FE9C04566932CDA56");
    }

    #[test]
    fn the_rfc_3079_example_gives_its_master_and_send_keys() {
        let m = rfc2759();
        let hash_hash: [u8; 16] = Md4::digest(nt_password_hash("clientPass")).into();
        assert_eq!(hash_hash.to_vec(), hex("41 C0 0C 58 4B D2 D9 1C 40 17 A2 A1 2F A5 9F 3F"));
        let master = master_key(&hash_hash, &m.nt_response);
        assert_eq!(master.to_vec(), hex("FD EC E3 71 7A 8C 83 8C B3 88 E5 27 AE 3C DD 31"));
        // RFC 3079 section 3.5.3's SendStartKey128 (Magic3: the server's send key).
        let keys = m.success("clientPass");
        assert_eq!(keys.send_key.to_vec(), hex("8B 7C DC 14 9B 99 3A 1B A1 18 CB 15 3F 56 DC CB"));
        assert_ne!(keys.recv_key, keys.send_key);
    }

    #[test]
    fn a_domain_before_the_name_is_dropped_and_bad_lengths_are_refused() {
        let m = rfc2759();
        let mut response = vec![7u8, 0];
        response.extend(m.peer_challenge);
        response.extend([0u8; 8]);
        response.extend(m.nt_response);
        let with_domain = MsChap2::from_attributes(&m.auth_challenge, &response, b"CORP\\User").unwrap();
        assert_eq!(with_domain, m);
        assert!(MsChap2::from_attributes(&m.auth_challenge, &response[..49], b"User").is_none());
        assert!(MsChap2::from_attributes(&m.auth_challenge[..8], &response, b"User").is_none());
    }
}
