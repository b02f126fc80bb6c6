//! ESO's own template functions (its `template/v2` package): PEM filtering, certificate
//! chains and SANs, PKCS#12 in and out, JWK to PEM, RSA-OAEP decryption. Outputs are
//! laid out as Go's `crypto/x509` and `encoding/pem` lay them out, so they match ESO
//! byte for byte (`tests/go_templates.rs`); a PKCS#12 file ESO writes has a random salt,
//! so courier's is proven by ESO reading it back.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use gotmpl::{FuncMap, Value, ValueFunc};
use x509_parser::extensions::{GeneralName, ParsedExtension};

use super::binary::{from_bytes, to_bytes};
use super::der::{self, oids};
use super::pem;
use super::sprig::{arity, error, string_arg, text};

const CERTIFICATE: &str = "CERTIFICATE";

/// A function of string parameters returning a string or an error.
fn strings_fn<const N: usize>(
    name: &'static str,
    f: fn([&str; N]) -> std::result::Result<String, String>,
) -> ValueFunc {
    Arc::new(move |args: &[Value]| {
        arity(args, N, name)?;
        let mut strings = [""; N];
        for (index, slot) in strings.iter_mut().enumerate() {
            *slot = string_arg(args, index, name)?;
        }
        f(strings).map(text).map_err(error)
    })
}

/// ESO's functions, by the names templates call them.
pub fn functions() -> FuncMap {
    let mut table = FuncMap::new();
    let mut add = |name: &str, f: ValueFunc| {
        table.insert(name.to_owned(), f);
    };
    add(
        "toYaml",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "toYaml")?;
            Ok(text(super::yaml::to_yaml(&args[0])))
        }),
    );
    add(
        "fromYaml",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "fromYaml")?;
            Ok(super::yaml::from_yaml(string_arg(args, 0, "fromYaml")?))
        }),
    );
    add(
        "filterPEM",
        strings_fn("filterPEM", |[kind, input]| filter_pem(kind, input)),
    );
    add(
        "filterCertChain",
        strings_fn("filterCertChain", |[kind, input]| {
            filter_cert_chain(kind, input)
        }),
    );
    add(
        "certSANs",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "certSANs")?;
            let sans = cert_sans(string_arg(args, 0, "certSANs")?).map_err(error)?;
            Ok(Value::List(sans.into_iter().map(text).collect()))
        }),
    );
    add(
        "pkcs12key",
        strings_fn("pkcs12key", |[input]| pkcs12_key("", input)),
    );
    add(
        "pkcs12keyPass",
        strings_fn("pkcs12keyPass", |[pass, input]| pkcs12_key(pass, input)),
    );
    add(
        "pkcs12cert",
        strings_fn("pkcs12cert", |[input]| pkcs12_cert("", input)),
    );
    add(
        "pkcs12certPass",
        strings_fn("pkcs12certPass", |[pass, input]| pkcs12_cert(pass, input)),
    );
    add(
        "pemToPkcs12",
        strings_fn("pemToPkcs12", |[cert, key]| {
            pem_to_pkcs12(cert, key, "", false)
        }),
    );
    add(
        "pemToPkcs12Pass",
        strings_fn("pemToPkcs12Pass", |[cert, key, pass]| {
            pem_to_pkcs12(cert, key, pass, false)
        }),
    );
    add(
        "fullPemToPkcs12",
        strings_fn("fullPemToPkcs12", |[cert, key]| {
            pem_to_pkcs12(cert, key, "", true)
        }),
    );
    add(
        "fullPemToPkcs12Pass",
        strings_fn("fullPemToPkcs12Pass", |[cert, key, pass]| {
            pem_to_pkcs12(cert, key, pass, true)
        }),
    );
    add(
        "pemTruststoreToPKCS12",
        strings_fn("pemTruststoreToPKCS12", |[cert]| {
            truststore_to_pkcs12(cert, "")
        }),
    );
    add(
        "pemTruststoreToPKCS12Pass",
        strings_fn("pemTruststoreToPKCS12Pass", |[cert, pass]| {
            truststore_to_pkcs12(cert, pass)
        }),
    );
    add(
        "jwkPublicKeyPem",
        strings_fn("jwkPublicKeyPem", |[jwk]| jwk_pem(jwk, false)),
    );
    add(
        "jwkPrivateKeyPem",
        strings_fn("jwkPrivateKeyPem", |[jwk]| jwk_pem(jwk, true)),
    );
    add(
        "rsaDecrypt",
        strings_fn("rsaDecrypt", |[scheme, hash, input, key]| {
            rsa_decrypt(scheme, hash, input, key)
        }),
    );
    table
}

/// `filterPEM`: the blocks of one type, re-encoded.
fn filter_pem(kind: &str, input: &str) -> std::result::Result<String, String> {
    let bytes = to_bytes(input);
    // ESO v2 first drops everything before the first `-----BEGIN` (its trimJunk, what Go's
    // pem.Decode did before golang/go#76124), so junk on the line of a block is no error.
    let start = bytes
        .windows(10)
        .position(|w| w == b"-----BEGIN")
        .unwrap_or(0);
    let mut data: &[u8] = &bytes[start..];
    let mut out = String::new();
    loop {
        let (block, rest) = pem::decode(data);
        data = rest;
        let Some(block) = block else { break };
        if block.kind.to_lowercase() == kind.to_lowercase() {
            out.push_str(&pem::encode(&block)?);
        }
    }
    if out.is_empty() && !data.is_empty() {
        return Err("error filtering pem: found junk".into());
    }
    Ok(out)
}

/// What chain ordering needs of a certificate.
struct Certificate {
    der: Vec<u8>,
    subject_key_id: Option<Vec<u8>>,
    authority_key_id: Option<Vec<u8>>,
}

impl Certificate {
    fn parse(der: Vec<u8>) -> std::result::Result<Self, String> {
        let (subject_key_id, authority_key_id) = {
            let cert = parse_x509(&der)?;
            let mut ski = None;
            let mut aki = None;
            for extension in cert.extensions() {
                match extension.parsed_extension() {
                    ParsedExtension::SubjectKeyIdentifier(id) => ski = Some(id.0.to_vec()),
                    ParsedExtension::AuthorityKeyIdentifier(id) => {
                        aki = id.key_identifier.as_ref().map(|k| k.0.to_vec());
                    }
                    _ => {}
                }
            }
            (ski, aki)
        };
        Ok(Self {
            der,
            subject_key_id,
            authority_key_id,
        })
    }

    /// ESO's test: no authority key id, or its own.
    fn is_root(&self) -> bool {
        self.authority_key_id.is_none() || self.authority_key_id == self.subject_key_id
    }

    fn pem(&self) -> String {
        pem::encode_der(&self.der, CERTIFICATE)
    }
}

fn parse_x509(
    der: &[u8],
) -> std::result::Result<x509_parser::certificate::X509Certificate<'_>, String> {
    match x509_parser::parse_x509_certificate(der) {
        Ok(([], cert)) => Ok(cert),
        Ok(_) => Err("x509: trailing data".into()),
        Err(e) => Err(format!("x509: malformed certificate ({e})")),
    }
}

/// Go's `bytes.Equal` on optional ids: nil equals empty.
fn same_id(a: &Option<Vec<u8>>, b: &Option<Vec<u8>>) -> bool {
    a.as_deref().unwrap_or_default() == b.as_deref().unwrap_or_default()
}

/// The certificates of every PEM block in `data`, which must all be certificates.
fn certificates(data: &[u8]) -> std::result::Result<Vec<Certificate>, String> {
    let mut rest = data;
    let mut certs = Vec::new();
    loop {
        let (block, after) = pem::decode(rest);
        rest = after;
        let Some(block) = block else { break };
        certs.push(Certificate::parse(block.bytes)?);
    }
    Ok(certs)
}

/// ESO's chain ordering: each certificate's parent is the first other one whose
/// subject key id is its authority key id; the one certificate that is nobody's parent
/// is the leaf; the chain runs from it up.
fn ordered_chain(mut certs: Vec<Certificate>) -> std::result::Result<Vec<Certificate>, String> {
    let count = certs.len();
    let mut parent: Vec<Option<usize>> = vec![None; count];
    let mut is_parent = vec![false; count];
    for i in 0..count {
        if let Some(j) = (0..count)
            .find(|&j| j != i && same_id(&certs[i].authority_key_id, &certs[j].subject_key_id))
        {
            is_parent[j] = true;
            parent[i] = Some(j);
        }
    }
    let mut leaves = (0..count).filter(|&i| !is_parent[i]);
    let Some(leaf) = leaves.next() else {
        return Err("no leaf certificate found".into());
    };
    if leaves.next().is_some() {
        return Err("found multiple leaf or disjunct certificates".into());
    }
    let mut order = Vec::new();
    let mut at = Some(leaf);
    while let Some(i) = at {
        if order.len() == count {
            return Err("constructing chain resulted in cycle".into());
        }
        order.push(i);
        at = parent[i];
    }
    let mut slots: Vec<Option<Certificate>> = certs.drain(..).map(Some).collect();
    Ok(order.into_iter().filter_map(|i| slots[i].take()).collect())
}

/// `filterCertChain`: the leaf, the intermediates or the root of a chain.
fn filter_cert_chain(kind: &str, input: &str) -> std::result::Result<String, String> {
    let chain = ordered_chain(certificates(&to_bytes(input))?)?;
    let out = match kind {
        "leaf" => {
            let leaf = &chain[0];
            let signed_by_other = leaf.authority_key_id.is_some()
                && !same_id(&leaf.authority_key_id, &leaf.subject_key_id);
            if signed_by_other {
                leaf.pem()
            } else {
                String::new()
            }
        }
        "intermediate" => chain
            .iter()
            .skip(1)
            .take_while(|cert| !cert.is_root())
            .map(Certificate::pem)
            .collect(),
        "root" => {
            let root = &chain[chain.len() - 1];
            if root.is_root() {
                root.pem()
            } else {
                String::new()
            }
        }
        _ => String::new(),
    };
    Ok(out)
}

/// `certSANs`: DNS names, then IP addresses, e-mail addresses and URIs, as Go lists them.
fn cert_sans(input: &str) -> std::result::Result<Vec<String>, String> {
    let bytes = to_bytes(input);
    // ESO skips text before the first BEGIN even on the same line.
    let start = bytes
        .windows(10)
        .position(|w| w == b"-----BEGIN")
        .unwrap_or(0);
    let Some(block) = pem::decode(&bytes[start..]).0 else {
        return Err("failed to decode PEM block".into());
    };
    let cert = parse_x509(&block.bytes).map_err(|e| format!("failed to parse certificate: {e}"))?;
    let (mut dns, mut ips, mut emails, mut uris) = (vec![], vec![], vec![], vec![]);
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            match name {
                GeneralName::DNSName(n) => dns.push((*n).to_owned()),
                GeneralName::IPAddress(ip) => ips.push(go_ip(ip)),
                GeneralName::RFC822Name(e) => emails.push((*e).to_owned()),
                GeneralName::URI(u) => uris.push((*u).to_owned()),
                _ => {}
            }
        }
    }
    Ok([dns, ips, emails, uris].concat())
}

/// Go's `net.IP.String`: IPv4 (also IPv4-mapped IPv6) dotted, IPv6 compressed.
fn go_ip(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        16 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(bytes);
            let v6 = std::net::Ipv6Addr::from(octets);
            match v6.to_ipv4_mapped() {
                Some(v4) => v4.to_string(),
                None => v6.to_string(),
            }
        }
        _ => format!(
            "?{}",
            bytes.iter().map(|b| format!("{b:02x}")).collect::<String>()
        ),
    }
}

/// A private key as Go's `x509` holds it, enough to write it back as Go does.
enum PrivateKey {
    Rsa(RsaKey),
    /// Curve OID, the scalar padded to the curve's size, the uncompressed point.
    Ec {
        curve: &'static [u8],
        scalar: Vec<u8>,
        point: Vec<u8>,
    },
    /// Ed25519 or X25519: the OID and the 32-byte seed.
    Edwards {
        oid: &'static [u8],
        seed: Vec<u8>,
    },
}

fn curve(oid: &[u8]) -> Option<(&'static [u8], usize)> {
    [(oids::P256, 32), (oids::P384, 48), (oids::P521, 66)]
        .into_iter()
        .find(|(known, _)| *known == oid)
}

impl PrivateKey {
    /// ESO's `parsePrivateKey`: PKCS#1, then PKCS#8, then SEC 1.
    fn parse(der_bytes: &[u8]) -> std::result::Result<Self, String> {
        if let Ok(key) = RsaKey::from_pkcs1(der_bytes) {
            return Ok(Self::Rsa(key));
        }
        if let Some(key) = Self::parse_pkcs8(der_bytes) {
            return key;
        }
        Self::parse_sec1(der_bytes, None).ok_or_else(|| "unable to parse private key type".into())
    }

    fn parse_pkcs8(der_bytes: &[u8]) -> Option<std::result::Result<Self, String>> {
        let (info, _) = der::expect(der_bytes, 0x30)?;
        let (_version, rest) = der::expect(info, 0x02)?;
        let (algorithm, rest) = der::expect(rest, 0x30)?;
        let (key, _) = der::expect(rest, 0x04)?;
        let (oid, parameters) = der::expect(algorithm, 0x06)?;
        Some(match oid {
            oids::RSA => RsaKey::from_pkcs1(key).map(Self::Rsa).map_err(|e| {
                format!("x509: failed to parse RSA private key embedded in PKCS#8: {e}")
            }),
            oids::EC => {
                let curve_oid = der::expect(parameters, 0x06).map(|(c, _)| c);
                Self::parse_sec1(key, curve_oid)
                    .ok_or_else(|| "x509: failed to parse EC private key embedded in PKCS#8".into())
            }
            oids::ED25519 | oids::X25519 => {
                let oid = if oid == oids::ED25519 {
                    oids::ED25519
                } else {
                    oids::X25519
                };
                match der::expect(key, 0x04) {
                    Some((seed, _)) if seed.len() == 32 => Ok(Self::Edwards {
                        oid,
                        seed: seed.to_vec(),
                    }),
                    _ => Err("x509: invalid private key length".into()),
                }
            }
            _ => Err("x509: PKCS#8 wrapping contained private key with unknown algorithm".into()),
        })
    }

    /// SEC 1 ECPrivateKey; the curve comes from PKCS#8 or from the key itself.
    fn parse_sec1(der_bytes: &[u8], outer_curve: Option<&[u8]>) -> Option<Self> {
        let (body, _) = der::expect(der_bytes, 0x30)?;
        let (version, mut rest) = der::expect(body, 0x02)?;
        if version != [1] {
            return None;
        }
        let (scalar, after) = der::expect(rest, 0x04)?;
        rest = after;
        let mut curve_oid = outer_curve;
        let mut point = None;
        while let Some((tag, content, after)) = der::read(rest) {
            rest = after;
            match tag {
                0xA0 => curve_oid = der::expect(content, 0x06).map(|(c, _)| c).or(curve_oid),
                0xA1 => {
                    point = der::expect(content, 0x03)
                        .and_then(|(bits, _)| bits.get(1..))
                        .map(<[u8]>::to_vec);
                }
                _ => {}
            }
        }
        let (curve_oid, size) = curve(curve_oid?)?;
        let trimmed = &scalar[scalar.iter().take_while(|&&b| b == 0).count()..];
        if trimmed.len() > size {
            return None;
        }
        let mut padded = vec![0; size - trimmed.len()];
        padded.extend_from_slice(trimmed);
        // Go derives a missing public point from the scalar; courier has no curve
        // arithmetic, so such a key is refused rather than written differently.
        Some(Self::Ec {
            curve: curve_oid,
            scalar: padded,
            point: point?,
        })
    }

    /// Go's `x509.MarshalPKCS8PrivateKey`.
    fn pkcs8(&self) -> std::result::Result<Vec<u8>, String> {
        match self {
            Self::Rsa(key) => Ok(key.pkcs8()),
            Self::Ec {
                curve,
                scalar,
                point,
            } => Ok(ec_pkcs8(curve, scalar, point)),
            Self::Edwards { oid, seed } => Ok(der::private_key_info(
                &der::algorithm(oid, None),
                &der::octet_string(seed),
            )),
        }
    }
}

/// A two-prime RSA private key, kept as the PKCS#1 `RSAPrivateKey` Go's `x509` writes
/// back (its nine integers, minimally encoded). aws-lc checks that the numbers form a key
/// when it is parsed, and decrypts with it in constant time: the `rsa` crate, which did
/// both before, leaks the private key through decryption timing (RUSTSEC-2023-0071).
struct RsaKey {
    pkcs1: zeroize::Zeroizing<Vec<u8>>,
    modulus_bits: usize,
}

impl RsaKey {
    /// Go's `x509.ParsePKCS1PrivateKey` for a two-prime key: every integer positive and
    /// minimally encoded, nothing after the sequence, and the numbers a consistent key.
    fn from_pkcs1(der_bytes: &[u8]) -> std::result::Result<Self, String> {
        let malformed = || "x509: malformed RSA private key".to_owned();
        let (body, trailing) = der::expect(der_bytes, 0x30).ok_or_else(malformed)?;
        if !trailing.is_empty() {
            return Err("x509: trailing data".into());
        }
        let mut integers = Vec::with_capacity(9);
        let mut rest = body;
        while !rest.is_empty() {
            let (content, after) = der::expect(rest, 0x02).ok_or_else(malformed)?;
            integers.push(content);
            rest = after;
        }
        let [version, numbers @ ..] = integers.as_slice() else {
            return Err(malformed());
        };
        match *version {
            [0] if numbers.len() == 8 => {}
            [0] => return Err(malformed()),
            // Go reads them; courier, like the `rsa` crate before it, does not.
            [1] => return Err("x509: multi-prime RSA private keys are not supported".into()),
            _ => return Err("x509: unsupported private key version".into()),
        }
        for number in numbers {
            let minimal = match number {
                [] => false,
                [0, next, ..] => next & 0x80 != 0,
                [first, ..] => first & 0x80 == 0,
            };
            if !minimal {
                return Err(malformed());
            }
            if number.iter().all(|&b| b == 0) {
                return Err("x509: private key contains zero or negative value".into());
            }
        }
        let mut parts = zeroize::Zeroizing::new(vec![der::small(0)]);
        parts.extend(numbers.iter().map(|number| der::unsigned(number)));
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        let modulus = &numbers[0][usize::from(numbers[0][0] == 0)..];
        let key = Self {
            pkcs1: zeroize::Zeroizing::new(der::sequence(&refs)),
            modulus_bits: modulus.len() * 8 - modulus[0].leading_zeros() as usize,
        };
        // aws-lc's parser runs RSA_check_key (n = pq, d, and the CRT values agree); its
        // size limits are for decryption only, which says so itself.
        match key.decrypting_key() {
            Ok(_) => Ok(key),
            Err(e) if matches!(e.description_(), "TooSmall" | "TooLarge") => Ok(key),
            Err(_) => Err("crypto/rsa: invalid RSA private key".into()),
        }
    }

    /// Go's `x509.MarshalPKCS8PrivateKey`: rsaEncryption with NULL parameters.
    fn pkcs8(&self) -> Vec<u8> {
        der::private_key_info(&der::algorithm(oids::RSA, Some(der::null())), &self.pkcs1)
    }

    fn decrypting_key(
        &self,
    ) -> std::result::Result<aws_lc_rs::rsa::PrivateDecryptingKey, aws_lc_rs::error::KeyRejected>
    {
        aws_lc_rs::rsa::PrivateDecryptingKey::from_pkcs8(&zeroize::Zeroizing::new(self.pkcs8()))
    }

    /// RSA-OAEP decryption, with `hash` for both the label and MGF1 as Go's
    /// `rsa.DecryptOAEP`, no label. aws-lc takes keys of 2048 to 8192 bits; Go refuses
    /// keys under 1024 bits, and decrypts with 1024 to 2047 where courier cannot.
    fn decrypt_oaep(
        &self,
        algorithm: &'static aws_lc_rs::rsa::OaepAlgorithm,
        ciphertext: &[u8],
    ) -> std::result::Result<zeroize::Zeroizing<Vec<u8>>, String> {
        let bits = self.modulus_bits;
        let key = match self.decrypting_key() {
            Ok(key) => key,
            Err(_) if bits < 1024 => {
                return Err(format!(
                    "crypto/rsa: {bits}-bit keys are insecure \
                     (see https://go.dev/pkg/crypto/rsa#hdr-Minimum_key_size)"
                ));
            }
            Err(_) => {
                return Err(format!(
                    "courier decrypts with RSA keys of 2048 to 8192 bits, this one has {bits}"
                ));
            }
        };
        let key = aws_lc_rs::rsa::OaepPrivateDecryptingKey::new(key)
            .map_err(|_| "crypto/rsa: decryption error".to_owned())?;
        let mut plain = zeroize::Zeroizing::new(vec![0u8; key.key_size_bytes()]);
        let len = key
            .decrypt(algorithm, ciphertext, &mut plain, None)
            .map_err(|_| "crypto/rsa: decryption error".to_owned())?
            .len();
        plain.truncate(len);
        Ok(plain)
    }
}

fn ec_pkcs8(curve: &[u8], scalar: &[u8], point: &[u8]) -> Vec<u8> {
    let sec1 = der::sequence(&[
        &der::small(1),
        &der::octet_string(scalar),
        &der::explicit(1, &der::bit_string(point)),
    ]);
    der::private_key_info(&der::algorithm(oids::EC, Some(der::oid(curve))), &sec1)
}

fn pkcs12_archive(pass: &str, input: &str) -> std::result::Result<(Vec<u8>, Vec<Vec<u8>>), String> {
    let archive = p12_keystore::Pkcs12Archive::from_pkcs12(&to_bytes(input), pass)
        .map_err(|e| format!("pkcs12: {e}"))?;
    let mut keys = archive.keys.into_iter();
    let key = match (keys.next(), keys.next()) {
        (Some(key), None) => key.key.as_der().to_vec(),
        (None, _) => return Err("pkcs12: private key missing".into()),
        (Some(_), Some(_)) => return Err("pkcs12: expected exactly one key bag".into()),
    };
    let certs: Vec<Vec<u8>> = archive
        .certs
        .into_iter()
        .map(|bag| bag.cert.as_der().to_vec())
        .collect();
    if certs.is_empty() {
        return Err("pkcs12: certificate missing".into());
    }
    Ok((key, certs))
}

/// `pkcs12key`/`pkcs12keyPass`: the key as Go writes PKCS#8.
fn pkcs12_key(pass: &str, input: &str) -> std::result::Result<String, String> {
    let (key, _) = pkcs12_archive(pass, input)
        .map_err(|e| format!("unable to decode pkcs12 with password: {e}"))?;
    let der_bytes = PrivateKey::parse(&key)?.pkcs8()?;
    Ok(pem::encode_der(&der_bytes, "PRIVATE KEY"))
}

/// `pkcs12cert`/`pkcs12certPass`: the certificate, then the CA certificates, as a
/// chain from the leaf up when they form one, else in the file's order.
fn pkcs12_cert(pass: &str, input: &str) -> std::result::Result<String, String> {
    let (_, certs) = pkcs12_archive(pass, input)
        .map_err(|e| format!("unable to decode pkcs12 certificate with password: {e}"))?;
    let mut parsed = Vec::with_capacity(certs.len());
    for der_bytes in certs {
        parsed.push(Certificate::parse(der_bytes)?);
    }
    let unordered: String = parsed.iter().map(Certificate::pem).collect();
    Ok(match ordered_chain(parsed) {
        Ok(chain) => chain.iter().map(Certificate::pem).collect(),
        Err(_) => unordered,
    })
}

/// The first PEM block of `input` as a certificate, and what follows it.
fn first_certificate(input: &[u8]) -> std::result::Result<(Vec<u8>, &[u8]), String> {
    match pem::decode(input) {
        (Some(block), rest) => {
            parse_x509(&block.bytes)?;
            Ok((block.bytes, rest))
        }
        // Go dereferences the missing block and the template reports the panic.
        (None, _) => Err("runtime error: invalid memory address or nil pointer dereference".into()),
    }
}

fn keystore_bytes(
    store: &p12_keystore::KeyStore,
    pass: &str,
) -> std::result::Result<String, String> {
    store
        .writer(pass)
        .write()
        .map(|bytes| STANDARD.encode(bytes))
        .map_err(|e| format!("pkcs12: {e}"))
}

/// `pemToPkcs12` and `fullPemToPkcs12` (with the CA certificates after the first).
fn pem_to_pkcs12(
    cert: &str,
    key: &str,
    pass: &str,
    full: bool,
) -> std::result::Result<String, String> {
    let cert_bytes = to_bytes(cert);
    let (leaf, rest) = first_certificate(&cert_bytes)?;
    let mut chain = vec![leaf];
    if full {
        let mut rest = rest;
        while !rest.is_empty() {
            let (ca, after) = first_certificate(rest)?;
            chain.push(ca);
            rest = after;
        }
    }
    let key_bytes = to_bytes(key);
    let Some(key_block) = pem::decode(&key_bytes).0 else {
        return Err("runtime error: invalid memory address or nil pointer dereference".into());
    };
    let pkcs8 = PrivateKey::parse(&key_block.bytes)?.pkcs8()?;
    let local_key_id = sha1_of(&chain[0]);
    let certs = chain
        .iter()
        .map(|der_bytes| p12_keystore::Certificate::from_der(der_bytes))
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| format!("pkcs12: {e}"))?;
    let key = p12_keystore::PrivateKey::from_der(&pkcs8).map_err(|e| format!("pkcs12: {e}"))?;
    let mut store = p12_keystore::KeyStore::new();
    store.add_entry(
        "1",
        p12_keystore::KeyStoreEntry::PrivateKeyChain(p12_keystore::PrivateKeyChain::new(
            local_key_id,
            key,
            certs,
        )),
    );
    keystore_bytes(&store, pass)
}

fn sha1_of(bytes: &[u8]) -> Vec<u8> {
    use sha1::Digest as _;
    sha1::Sha1::digest(bytes).to_vec()
}

/// `pemTruststoreToPKCS12`: every certificate as a trusted entry.
fn truststore_to_pkcs12(cert: &str, pass: &str) -> std::result::Result<String, String> {
    let bytes = to_bytes(cert);
    let mut rest: &[u8] = &bytes;
    let mut store = p12_keystore::KeyStore::new();
    let mut index = 0;
    while !rest.is_empty() {
        let (der_bytes, after) = first_certificate(rest)?;
        rest = after;
        let certificate =
            p12_keystore::Certificate::from_der(&der_bytes).map_err(|e| format!("pkcs12: {e}"))?;
        index += 1;
        store.add_entry(
            &index.to_string(),
            p12_keystore::KeyStoreEntry::Certificate(certificate),
        );
    }
    keystore_bytes(&store, pass)
}

/// A JWK field: base64url as the spec says, standard base64 and padding tolerated as
/// jwx tolerates them.
fn jwk_bytes(
    jwk: &serde_json::Map<String, serde_json::Value>,
    field: &str,
) -> std::result::Result<Vec<u8>, String> {
    let value = jwk
        .get(field)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("failed to parse key: required field {field} is missing"))?;
    [URL_SAFE_NO_PAD, URL_SAFE]
        .iter()
        .find_map(|engine| engine.decode(value).ok())
        .or_else(|| {
            [STANDARD_NO_PAD, STANDARD]
                .iter()
                .find_map(|e| e.decode(value).ok())
        })
        .ok_or_else(|| format!("failed to decode field {field}"))
}

/// `jwkPublicKeyPem` / `jwkPrivateKeyPem`: PKIX or PKCS#8 PEM of a JSON Web Key.
fn jwk_pem(input: &str, private: bool) -> std::result::Result<String, String> {
    let jwk: serde_json::Map<String, serde_json::Value> = serde_json::from_str(input)
        .map_err(|e| format!("failed to unmarshal JSON into key: {e}"))?;
    let kty = jwk
        .get("kty")
        .and_then(serde_json::Value::as_str)
        .unwrap_or_default();
    let has_private = jwk.contains_key("d");
    // Go cannot write a private key as PKIX nor a public key as PKCS#8.
    if has_private != private {
        return Err(if private {
            "x509: unknown key type while marshaling PKCS#8".into()
        } else {
            "x509: unsupported public key type".into()
        });
    }
    let field = |name: &str| jwk_bytes(&jwk, name);
    let der_bytes = match kty {
        "RSA" => {
            let (n, e) = (der::unsigned(&field("n")?), der::unsigned(&field("e")?));
            if private {
                let mut parts = vec![der::small(0), n, e];
                for name in ["d", "p", "q", "dp", "dq", "qi"] {
                    parts.push(der::unsigned(&field(name)?));
                }
                let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
                der::private_key_info(
                    &der::algorithm(oids::RSA, Some(der::null())),
                    &der::sequence(&refs),
                )
            } else {
                der::public_key_info(
                    &der::algorithm(oids::RSA, Some(der::null())),
                    &der::sequence(&[&n, &e]),
                )
            }
        }
        "EC" => {
            let crv = jwk
                .get("crv")
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default();
            let (oid, size) = match crv {
                "P-256" => (oids::P256, 32),
                "P-384" => (oids::P384, 48),
                "P-521" => (oids::P521, 66),
                other => return Err(format!("failed to parse key: invalid curve {other:?}")),
            };
            let pad = |bytes: Vec<u8>| -> std::result::Result<Vec<u8>, String> {
                if bytes.len() > size {
                    return Err("failed to parse key: invalid coordinate".into());
                }
                let mut padded = vec![0; size - bytes.len()];
                padded.extend_from_slice(&bytes);
                Ok(padded)
            };
            let mut point = vec![0x04];
            point.extend(pad(field("x")?)?);
            point.extend(pad(field("y")?)?);
            if private {
                ec_pkcs8(oid, &pad(field("d")?)?, &point)
            } else {
                der::public_key_info(&der::algorithm(oids::EC, Some(der::oid(oid))), &point)
            }
        }
        "OKP" => {
            let oid = match jwk.get("crv").and_then(serde_json::Value::as_str) {
                Some("Ed25519") => oids::ED25519,
                Some("X25519") => oids::X25519,
                _ => return Err("failed to parse key: unsupported OKP curve".into()),
            };
            if private {
                let seed = field("d")?;
                der::private_key_info(&der::algorithm(oid, None), &der::octet_string(&seed))
            } else {
                der::public_key_info(&der::algorithm(oid, None), &field("x")?)
            }
        }
        other => {
            return Err(format!(
                "failed to parse key: unsupported key type {other:?}"
            ));
        }
    };
    let kind = if private { "PRIVATE KEY" } else { "PUBLIC KEY" };
    Ok(pem::encode_der(&der_bytes, kind))
}

/// `rsaDecrypt`: scheme `None` passes the input through; `RSA-OAEP` decrypts with the
/// PEM key and the hash (SHA1, SHA256, SHA512; anything else SHA256).
fn rsa_decrypt(
    scheme: &str,
    hash: &str,
    input: &str,
    key: &str,
) -> std::result::Result<String, String> {
    match scheme {
        "None" => return Ok(input.to_owned()),
        "RSA-OAEP" => {}
        other => return Err(format!("decryption scheme {other} is not supported")),
    }
    let key_bytes = to_bytes(key);
    let Some(block) = pem::decode(&key_bytes).0 else {
        return Err("failed to decode PEM block".into());
    };
    let parsed =
        PrivateKey::parse(&block.bytes).map_err(|e| format!("could not parse private key: {e}"))?;
    let PrivateKey::Rsa(rsa_key) = parsed else {
        return Err("could not parse RSA private key".into());
    };
    let algorithm = match hash {
        "SHA1" => &aws_lc_rs::rsa::OAEP_SHA1_MGF1SHA1,
        "SHA512" => &aws_lc_rs::rsa::OAEP_SHA512_MGF1SHA512,
        _ => &aws_lc_rs::rsa::OAEP_SHA256_MGF1SHA256,
    };
    let plain = rsa_key
        .decrypt_oaep(algorithm, &to_bytes(input))
        .map_err(|e| format!("error decrypting data with RSA: {e}"))?;
    Ok(from_bytes(&plain).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: &str = include_str!("../../../tests/go_templates/fixtures.yaml");

    fn fixture(name: &str) -> String {
        let line = CHAIN
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap();
        String::from_utf8(STANDARD.decode(line).unwrap()).unwrap()
    }

    /// ESO added certSANs after v0.20.4, the oracle's release: checked here against what
    /// make-fixtures.sh put in the certificate, in Go's order.
    #[test]
    fn cert_sans_lists_dns_ip_email_and_uri_names() {
        let sans = cert_sans(&format!("junk{}", fixture("leaf_crt"))).unwrap();
        assert_eq!(
            sans,
            [
                "leaf.example.com",
                "*.leaf.example.com",
                "10.1.2.3",
                "2001:db8::1",
                "ops@example.com",
                "spiffe://example.com/leaf"
            ]
        );
        assert!(cert_sans(&fixture("root_crt")).unwrap().is_empty());
        assert!(cert_sans("none").is_err());
    }

    #[test]
    fn a_truststore_holds_every_certificate_as_trusted() {
        let b64 = truststore_to_pkcs12(&fixture("chain_pem"), "pw").unwrap();
        let archive =
            p12_keystore::Pkcs12Archive::from_pkcs12(&STANDARD.decode(b64).unwrap(), "pw").unwrap();
        assert!(archive.keys.is_empty());
        assert_eq!(archive.certs.len(), 3);
        assert!(archive.certs.iter().all(|bag| bag.trusted));
    }

    fn pem_der(name: &str) -> Vec<u8> {
        pem::decode(fixture(name).as_bytes()).0.unwrap().bytes
    }

    /// The nine INTEGER contents of a PKCS#1 key.
    fn pkcs1_integers(der_bytes: &[u8]) -> Vec<Vec<u8>> {
        let (mut rest, _) = der::expect(der_bytes, 0x30).unwrap();
        let mut integers = Vec::new();
        while let Some((content, after)) = der::expect(rest, 0x02) {
            integers.push(content.to_vec());
            rest = after;
        }
        integers
    }

    fn pkcs1_of(integers: &[Vec<u8>]) -> Vec<u8> {
        let parts: Vec<Vec<u8>> = integers.iter().map(|i| der::unsigned(i)).collect();
        der::sequence(&parts.iter().map(Vec::as_slice).collect::<Vec<_>>())
    }

    /// A PKCS#1 key and the same key as PKCS#8 (openssl wrote both) become the PKCS#8
    /// Go writes, which is openssl's.
    #[test]
    fn an_rsa_key_reads_from_pkcs1_and_pkcs8_and_writes_go_s_pkcs8() {
        let pkcs8 = pem_der("leaf_key");
        let PrivateKey::Rsa(from_pkcs1) = PrivateKey::parse(&pem_der("leaf_pkcs1_key")).unwrap()
        else {
            panic!("not an RSA key");
        };
        assert_eq!(from_pkcs1.modulus_bits, 2048);
        assert!(from_pkcs1.pkcs8() == pkcs8);
        let PrivateKey::Rsa(from_pkcs8) = PrivateKey::parse(&pkcs8).unwrap() else {
            panic!("not an RSA key");
        };
        assert!(from_pkcs8.pkcs8() == pkcs8);
    }

    /// aws-lc checks the numbers: a key whose CRT values or modulus disagree with its
    /// primes is refused, as Go refuses it.
    #[test]
    fn an_rsa_key_whose_numbers_disagree_is_refused() {
        let integers = pkcs1_integers(&pem_der("leaf_pkcs1_key"));
        assert_eq!(integers.len(), 9);
        assert!(RsaKey::from_pkcs1(&pkcs1_of(&integers)).is_ok());
        // n, d, dp, dq, qinv
        for index in [1, 3, 6, 7, 8] {
            let mut broken = integers.clone();
            *broken[index].last_mut().unwrap() ^= 0x02;
            let err = RsaKey::from_pkcs1(&pkcs1_of(&broken)).err();
            assert_eq!(
                err.as_deref(),
                Some("crypto/rsa: invalid RSA private key"),
                "integer {index}"
            );
        }
    }

    #[test]
    fn an_rsa_key_with_a_non_minimal_or_zero_integer_or_trailing_data_is_refused() {
        let der_bytes = pem_der("leaf_pkcs1_key");
        let integers = pkcs1_integers(&der_bytes);
        let mut padded = integers.clone();
        padded[2] = [vec![0, 0], padded[2].clone()].concat();
        let raw: Vec<Vec<u8>> = padded
            .iter()
            .map(|i| [vec![0x02, i.len() as u8], i.clone()].concat())
            .collect();
        let mut zero = integers.clone();
        zero[7] = vec![0];
        let trailing = [der_bytes.clone(), vec![0]].concat();
        let mut version2 = integers;
        version2[0] = vec![2];
        for (case, der_bytes) in [
            (
                "non-minimal e",
                der::sequence(&raw.iter().map(Vec::as_slice).collect::<Vec<_>>()),
            ),
            ("zero dq", pkcs1_of(&zero)),
            ("trailing", trailing),
            ("version 2", pkcs1_of(&version2)),
        ] {
            assert!(RsaKey::from_pkcs1(&der_bytes).is_err(), "{case}");
        }
    }

    /// rsaDecrypt decrypts what Go's RSA-OAEP encrypts (the differential proves it against
    /// ESO), and a key under 2048 bits, which aws-lc refuses, says so without the key.
    #[test]
    fn rsa_decrypt_reads_oaep_and_refuses_keys_aws_lc_cannot_take() {
        let ciphertext = from_bytes(
            &STANDARD
                .decode(
                    CHAIN
                        .lines()
                        .find_map(|l| l.strip_prefix("oaep_sha512: "))
                        .unwrap(),
                )
                .unwrap(),
        )
        .into_owned();
        let plain = rsa_decrypt("RSA-OAEP", "SHA512", &ciphertext, &fixture("leaf_key")).unwrap();
        assert_eq!(plain, "db-password-\u{2603}");
        let small = CHAIN
            .lines()
            .find_map(|l| l.strip_prefix("oaep_sha256_rsa1024: "))
            .unwrap();
        let small = from_bytes(&STANDARD.decode(small).unwrap()).into_owned();
        let err = rsa_decrypt("RSA-OAEP", "SHA256", &small, &fixture("rsa1024_key")).unwrap_err();
        assert_eq!(
            err,
            "error decrypting data with RSA: courier decrypts with RSA keys of 2048 to 8192 bits, this one has 1024"
        );
    }
}
