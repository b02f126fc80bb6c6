#!/usr/bin/env bash
# Writes tests/go_templates/fixtures.yaml: throwaway keys, certificates, PKCS#12 files,
# JWKs and RSA-OAEP ciphertexts for the ESO functions of the differential corpus. Run
# once; the output is committed (the keys protect nothing). Needs openssl and Python's
# `cryptography`.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
ext() { printf '%s\n' "$@" > "$1.ext.tmp"; }
openssl req -x509 -newkey rsa:2048 -nodes -keyout root.key -out root.crt -days 36500 \
  -subj "/CN=courier test root" -addext "basicConstraints=critical,CA:true" \
  -addext "subjectKeyIdentifier=hash" 2>/dev/null
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout inter.key -out inter.csr \
  -subj "/CN=courier test intermediate" 2>/dev/null
printf 'basicConstraints=critical,CA:true\nsubjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\n' > inter.ext
openssl x509 -req -in inter.csr -CA root.crt -CAkey root.key -CAcreateserial -days 36500 \
  -extfile inter.ext -out inter.crt 2>/dev/null
openssl req -newkey rsa:2048 -nodes -keyout leaf.key -out leaf.csr -subj "/CN=leaf.example.com" 2>/dev/null
printf 'subjectKeyIdentifier=hash\nauthorityKeyIdentifier=keyid\nsubjectAltName=DNS:leaf.example.com,DNS:*.leaf.example.com,IP:10.1.2.3,IP:2001:db8::1,email:ops@example.com,URI:spiffe://example.com/leaf\n' > leaf.ext
openssl x509 -req -in leaf.csr -CA inter.crt -CAkey inter.key -CAcreateserial -days 36500 \
  -extfile leaf.ext -out leaf.crt 2>/dev/null
openssl ec -in inter.key -out inter-sec1.key 2>/dev/null
openssl pkey -in leaf.key -traditional -out leaf-pkcs1.key 2>/dev/null
openssl genpkey -algorithm ed25519 -out ed.key 2>/dev/null
# Go decrypts with a 1024-bit RSA key; courier (aws-lc) takes 2048 to 8192 bits.
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:1024 -out rsa1024.key 2>/dev/null
openssl req -x509 -key ed.key -out ed.crt -days 36500 -subj "/CN=ed25519 leaf" 2>/dev/null
cat leaf.crt inter.crt root.crt > chain.pem
cat root.crt leaf.crt inter.crt > shuffled.pem
openssl pkcs12 -export -in leaf.crt -inkey leaf.key -certfile <(cat root.crt inter.crt) \
  -passout pass: -out leaf-nopass.p12
openssl pkcs12 -export -in leaf.crt -inkey leaf.key -certfile <(cat inter.crt root.crt) \
  -passout pass:s3cret -out leaf-pass.p12
openssl pkcs12 -export -legacy -in leaf.crt -inkey leaf.key -passout pass:legacy -out leaf-legacy.p12 2>/dev/null \
  || openssl pkcs12 -export -keypbe PBE-SHA1-3DES -certpbe PBE-SHA1-3DES -macalg sha1 \
     -in leaf.crt -inkey leaf.key -passout pass:legacy -out leaf-legacy.p12
openssl pkcs12 -export -in inter.crt -inkey inter.key -passout pass: -out ec-nopass.p12
python3 - <<'PY'
import base64, json
from cryptography.hazmat.primitives import serialization, hashes
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519, padding

def b64u(n, size=None):
    if isinstance(n, int):
        size = size or (n.bit_length() + 7) // 8
        n = n.to_bytes(size, "big")
    return base64.urlsafe_b64encode(n).rstrip(b"=").decode()

leaf = serialization.load_pem_private_key(open("leaf.key", "rb").read(), None)
inter = serialization.load_pem_private_key(open("inter.key", "rb").read(), None)
ed = serialization.load_pem_private_key(open("ed.key", "rb").read(), None)
rn = leaf.private_numbers()
pub = rn.public_numbers
jwk_rsa = {"kty": "RSA", "n": b64u(pub.n), "e": b64u(pub.e)}
jwk_rsa_priv = dict(jwk_rsa, d=b64u(rn.d), p=b64u(rn.p), q=b64u(rn.q),
                    dp=b64u(rn.dmp1), dq=b64u(rn.dmq1), qi=b64u(rn.iqmp))
en = inter.private_numbers()
jwk_ec = {"kty": "EC", "crv": "P-256", "x": b64u(en.public_numbers.x, 32), "y": b64u(en.public_numbers.y, 32)}
jwk_ec_priv = dict(jwk_ec, d=b64u(en.private_value, 32))
raw = lambda k: k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
seed = ed.private_bytes(serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
jwk_ed = {"kty": "OKP", "crv": "Ed25519", "x": b64u(raw(ed))}
jwk_ed_priv = dict(jwk_ed, d=b64u(seed))
out = {}
def put(name, data):
    out[name] = base64.b64encode(data if isinstance(data, bytes) else data.encode()).decode()
for name in ["root.crt", "inter.crt", "leaf.crt", "ed.crt", "chain.pem", "shuffled.pem",
             "leaf.key", "leaf-pkcs1.key", "inter.key", "inter-sec1.key", "ed.key",
             "leaf-nopass.p12", "leaf-pass.p12", "leaf-legacy.p12", "ec-nopass.p12", "rsa1024.key"]:
    put(name.replace(".", "_").replace("-", "_"), open(name, "rb").read())
put("jwk_rsa", json.dumps(jwk_rsa)); put("jwk_rsa_private", json.dumps(jwk_rsa_priv))
put("jwk_ec", json.dumps(jwk_ec)); put("jwk_ec_private", json.dumps(jwk_ec_priv))
put("jwk_ed25519", json.dumps(jwk_ed)); put("jwk_ed25519_private", json.dumps(jwk_ed_priv))
for h, algo in [("sha1", hashes.SHA1()), ("sha256", hashes.SHA256()), ("sha512", hashes.SHA512())]:
    put("oaep_" + h, leaf.public_key().encrypt(b"db-password-\xe2\x98\x83",
        padding.OAEP(mgf=padding.MGF1(algorithm=algo), algorithm=algo, label=None)))
rsa1024 = serialization.load_pem_private_key(open("rsa1024.key", "rb").read(), None)
put("oaep_sha256_rsa1024", rsa1024.public_key().encrypt(b"db-password-\xe2\x98\x83",
    padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None)))
with open("fixtures.yaml", "w") as f:
    f.write("# Generated by make-fixtures.sh: throwaway test keys and certificates, base64.\n")
    for k in sorted(out):
        f.write(f"{k}: {out[k]}\n")
PY
cp fixtures.yaml "$here/fixtures.yaml"
echo "wrote $here/fixtures.yaml" >&2
