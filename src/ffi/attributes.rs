//! The request attributes a callback reads, found in one walk of the request's list.
//!
//! Each `fr_pair_find_by_num` walks the list from its head, with the server's
//! cursor and checks: about 150 instructions, and authorize and authenticate made
//! ten of them per login. One walk finds them all, the first of each as the
//! server's lookup does (tags ignored, as with `TAG_ANY`); for NAS-IP-Address and
//! NAS-Port, the first of the right length.

use super::bindings::{
    PW_CALLING_STATION_ID, PW_CHAP_CHALLENGE, PW_CHAP_PASSWORD, PW_EAP_MESSAGE, PW_MSCHAP2_RESPONSE,
    PW_MSCHAP_CHALLENGE, PW_MS_CHAP_USER_NAME, PW_NAS_IDENTIFIER, PW_NAS_IP_ADDRESS, PW_NAS_PORT, PW_STATE,
    PW_USER_NAME, PW_USER_PASSWORD, VALUE_PAIR, VENDORPEC_MICROSOFT,
};
use super::request::{pair_bytes, pair_integer, List, Request};

/// The values of the request attributes the module reads; `None` when absent.
#[derive(Clone, Copy, Default)]
pub struct Attributes<'r> {
    pub user_name: Option<&'r [u8]>,
    pub user_password: Option<&'r [u8]>,
    pub state: Option<&'r [u8]>,
    pub eap_message: Option<&'r [u8]>,
    pub chap_password: Option<&'r [u8]>,
    pub chap_challenge: Option<&'r [u8]>,
    /// What rlm_eap_mschapv2 sets: the name the client hashed.
    pub ms_chap_user_name: Option<&'r [u8]>,
    pub mschap2_response: Option<&'r [u8]>,
    pub mschap_challenge: Option<&'r [u8]>,
    pub nas_identifier: Option<&'r [u8]>,
    pub calling_station_id: Option<&'r [u8]>,
    /// NAS-IP-Address as the packet carries it (network order).
    pub nas_ip_address: Option<[u8; 4]>,
    pub nas_port: Option<u32>,
}

impl Attributes<'_> {
    /// Calling-Station-Id and NAS-Port: what tells two logins of one user at one NAS apart.
    pub fn session(&self) -> String {
        let station = self.calling_station_id.map(String::from_utf8_lossy).unwrap_or_default();
        let port = self.nas_port.map(|p| p.to_string()).unwrap_or_default();
        format!("{station}|{port}")
    }
}

/// Where a string or octets attribute goes.
fn bytes_slot<'a, 'r>(found: &'a mut Attributes<'r>, vendor: u32, attr: u32) -> Option<&'a mut Option<&'r [u8]>> {
    Some(match (vendor, attr) {
        (0, PW_USER_NAME) => &mut found.user_name,
        (0, PW_USER_PASSWORD) => &mut found.user_password,
        (0, PW_STATE) => &mut found.state,
        (0, PW_EAP_MESSAGE) => &mut found.eap_message,
        (0, PW_CHAP_PASSWORD) => &mut found.chap_password,
        (0, PW_CHAP_CHALLENGE) => &mut found.chap_challenge,
        (0, PW_MS_CHAP_USER_NAME) => &mut found.ms_chap_user_name,
        (0, PW_NAS_IDENTIFIER) => &mut found.nas_identifier,
        (0, PW_CALLING_STATION_ID) => &mut found.calling_station_id,
        (VENDORPEC_MICROSOFT, PW_MSCHAP2_RESPONSE) => &mut found.mschap2_response,
        (VENDORPEC_MICROSOFT, PW_MSCHAP_CHALLENGE) => &mut found.mschap_challenge,
        _ => return None,
    })
}

impl<'a> Request<'a> {
    /// The attributes of the request's list, in one walk. They borrow the request,
    /// as [`Request::bytes`] does.
    pub fn attributes(&self) -> Attributes<'_> {
        let mut found = Attributes::default();
        // SAFETY: the list head is valid (from_raw); the walk only reads, and each pair
        // it reads is valid until the request's list changes, which only `&mut self`
        // methods do, and the borrow of `self` keeps them from running.
        unsafe {
            let mut vp: *const VALUE_PAIR = *self.list_head(List::Request);
            while !vp.is_null() {
                let da = (*vp).da;
                if !da.is_null() {
                    let (vendor, attr) = ((*da).vendor, (*da).attr);
                    if let Some(slot) = bytes_slot(&mut found, vendor, attr) {
                        if slot.is_none() {
                            *slot = Some(pair_bytes(vp));
                        }
                    } else if vendor == 0 && attr == PW_NAS_IP_ADDRESS {
                        // An ipaddr pair keeps the address in `data.ipaddr`; the length
                        // check refuses a malformed attribute decoded as octets.
                        if found.nas_ip_address.is_none() && (*vp).length == 4 {
                            found.nas_ip_address = Some((*vp).data.ipaddr.s_addr.to_ne_bytes());
                        }
                    } else if vendor == 0 && attr == PW_NAS_PORT && found.nas_port.is_none() {
                        found.nas_port = pair_integer(vp);
                    }
                }
                vp = (*vp).next;
            }
        }
        found
    }
}
