"""What a NAS speaking MS-CHAPv2 (RFC 2759) sends for a user and password: the
MS-CHAP-Challenge and MS-CHAP2-Response attributes, as a radclient line.

    client.py USER PASSWORD

Written from RFC 2759 with passlib's MD4 and DES, so that tests/mschap.rs checks
rlm_mfa against an implementation that is not its own; FreeRADIUS's mschap
module accepting the same line shows that this one is right.
"""
import hashlib
import os
import sys

from passlib.crypto.des import des_encrypt_block
from passlib.hash import nthash


def nt_response(auth_challenge, peer_challenge, user, password):
    challenge = hashlib.sha1(peer_challenge + auth_challenge + user.encode()).digest()[:8]
    key = nthash.raw(password) + bytes(5)
    return b"".join(des_encrypt_block(key[i:i + 7], challenge) for i in (0, 7, 14))


def main():
    user, password = sys.argv[1], sys.argv[2]
    auth_challenge, peer_challenge = os.urandom(16), os.urandom(16)
    ident = 1
    response = bytes([ident, 0]) + peer_challenge + bytes(8) + nt_response(auth_challenge, peer_challenge, user, password)
    print(f"MS-CHAP-Challenge = 0x{auth_challenge.hex()}, MS-CHAP2-Response = 0x{response.hex()}")


if __name__ == "__main__":
    main()
