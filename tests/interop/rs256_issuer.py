"""An independent RS256 JWT issuer for orderflow's auth tests.

    rs256_issuer.py OUT_DIR ISSUER AUDIENCE

Makes a 2048-bit RSA key with pyca/cryptography (no code shared with the
node), writes its public key to OUT_DIR/public.pem (SubjectPublicKeyInfo
PEM, what issuers publish), and prints JSON tokens signed with it:
`customer` (sub alice), `admin` (sub ops), `wrong_issuer`, `expired`, and
`other_key` (signed by a second key the node never saw).
"""

import base64
import json
import os
import sys
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def token(key, claims: dict) -> str:
    header = b64url(json.dumps({"alg": "RS256", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(claims).encode())
    signing_input = f"{header}.{payload}".encode()
    # RS256 = RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518, 3.3).
    signature = key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{header}.{payload}.{b64url(signature)}"


def main() -> None:
    out_dir, issuer, audience = sys.argv[1], sys.argv[2], sys.argv[3]
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    with open(os.path.join(out_dir, "public.pem"), "wb") as f:
        f.write(pem)
    now = int(time.time())

    def claims(sub, role, iss=issuer, exp=now + 600):
        return {"sub": sub, "role": role, "exp": exp, "iss": iss, "aud": audience}

    print(json.dumps({
        "customer": token(key, claims("alice", "customer")),
        "admin": token(key, claims("ops", "admin")),
        "wrong_issuer": token(key, claims("ops", "admin", iss="https://elsewhere.test")),
        "expired": token(key, claims("ops", "admin", exp=now - 3600)),
        "other_key": token(other, claims("ops", "admin")),
    }))


if __name__ == "__main__":
    main()
