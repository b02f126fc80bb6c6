//! sprig's functions whose output is random by design (`randAlphaNum`, `uuidv4`,
//! `bcrypt`, `encryptAES`, ...) and `decryptAES`. Their results cannot equal ESO's byte
//! for byte; the differential corpus checks their shape (length, alphabet, format) and
//! round trips (`decryptAES` of `encryptAES`); a unit test verifies the bcrypt hashes.

use std::sync::Arc;

use aes::cipher::{BlockCipherDecrypt as _, BlockCipherEncrypt as _, KeyInit as _};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gotmpl::{FuncMap, TemplateError, Value, ValueFunc};

use super::binary::{from_bytes, to_bytes};
use super::sprig::{arity, error, int_arg, string_arg, text, to_int64};

type Result<T> = std::result::Result<T, TemplateError>;

fn random_bytes(count: usize) -> Result<Vec<u8>> {
    let mut bytes = vec![0u8; count];
    getrandom::fill(&mut bytes).map_err(|e| error(format!("random: {e}")))?;
    Ok(bytes)
}

/// A uniformly drawn index below `bound`.
fn random_below(bound: u64) -> Result<u64> {
    let zone = u64::MAX - u64::MAX % bound;
    loop {
        let mut bytes = [0u8; 8];
        getrandom::fill(&mut bytes).map_err(|e| error(format!("random: {e}")))?;
        let n = u64::from_le_bytes(bytes);
        if n < zone {
            return Ok(n % bound);
        }
    }
}

/// `count` characters drawn from `alphabet`.
fn random_string(count: i64, alphabet: &[u8], function: &str) -> Result<String> {
    // sprig drops goutils' error for a negative count and returns "".
    if count < 0 {
        return Ok(String::new());
    }
    if count > 1 << 20 {
        return Err(error(format!("{function}: more than 1 MiB requested")));
    }
    (0..count)
        .map(|_| random_below(alphabet.len() as u64).map(|i| alphabet[i as usize] as char))
        .collect()
}

const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
const ALPHANUMERIC: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const NUMERIC: &[u8] = b"0123456789";

fn ascii() -> Vec<u8> {
    (32u8..=126).collect()
}

/// sprig's key for `encryptAES`: the password's bytes, zero-padded or cut to 32.
fn aes_key(password: &str) -> aes::Aes256 {
    let mut key = [0u8; 32];
    let bytes = password.as_bytes();
    let len = bytes.len().min(32);
    key[..len].copy_from_slice(&bytes[..len]);
    aes::Aes256::new(&key.into())
}

fn encrypt_aes(password: &str, plaintext: &str) -> Result<String> {
    if plaintext.is_empty() {
        return Ok(String::new());
    }
    let cipher = aes_key(password);
    let mut content = to_bytes(plaintext).into_owned();
    let padding = 16 - content.len() % 16;
    content.extend(std::iter::repeat_n(padding as u8, padding));
    let mut out = random_bytes(16)?;
    let mut previous: [u8; 16] = out[..16].try_into().unwrap_or_default();
    for chunk in content.chunks(16) {
        let mut block = [0u8; 16];
        for (i, byte) in chunk.iter().enumerate() {
            block[i] = byte ^ previous[i];
        }
        let mut block = block.into();
        cipher.encrypt_block(&mut block);
        previous = block.into();
        out.extend_from_slice(&previous);
    }
    Ok(STANDARD.encode(out))
}

fn decrypt_aes(password: &str, encoded: &str) -> Result<String> {
    if encoded.is_empty() {
        return Ok(String::new());
    }
    let data = STANDARD
        .decode(encoded)
        .map_err(|_| error("decryptAES: illegal base64 data"))?;
    // Go slices and unpads without checks, so malformed input panics there too.
    if data.len() < 32 || data.len() % 16 != 0 {
        return Err(error("decryptAES: crypto/cipher: input not full blocks"));
    }
    let cipher = aes_key(password);
    let mut previous: [u8; 16] = data[..16].try_into().unwrap_or_default();
    let mut plain = Vec::with_capacity(data.len() - 16);
    for chunk in data[16..].chunks(16) {
        let mut block: [u8; 16] = chunk.try_into().unwrap_or_default();
        let saved = block;
        let mut b = block.into();
        cipher.decrypt_block(&mut b);
        block = b.into();
        for (i, byte) in block.iter().enumerate() {
            plain.push(byte ^ previous[i]);
        }
        previous = saved;
    }
    let pad = usize::from(*plain.last().unwrap_or(&0));
    if pad > plain.len() {
        return Err(error(
            "decryptAES: runtime error: slice bounds out of range",
        ));
    }
    plain.truncate(plain.len() - pad);
    Ok(from_bytes(&plain).into_owned())
}

fn bcrypt_hash(password: &str) -> Result<String> {
    // sprig's cost, bcrypt.DefaultCost, and its `$2a$` prefix.
    let parts = bcrypt::hash_with_result(to_bytes(password), 10)
        .map_err(|e| error(format!("bcrypt: {e}")))?;
    Ok(parts.format_for_version(bcrypt::Version::TwoA))
}

/// The functions of this module.
pub fn functions() -> FuncMap {
    let mut table = FuncMap::new();
    let mut add = |name: &str, f: ValueFunc| {
        table.insert(name.to_owned(), f);
    };
    for (name, alphabet) in [
        ("randAlpha", ALPHA.to_vec()),
        ("randAlphaNum", ALPHANUMERIC.to_vec()),
        ("randNumeric", NUMERIC.to_vec()),
        ("randAscii", ascii()),
    ] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 1, name)?;
                Ok(text(random_string(
                    int_arg(args, 0, name)?,
                    &alphabet,
                    name,
                )?))
            }),
        );
    }
    add(
        "randBytes",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "randBytes")?;
            let count = int_arg(args, 0, "randBytes")?;
            if !(0..=1 << 20).contains(&count) {
                return Err(error("randBytes: count out of range"));
            }
            Ok(text(STANDARD.encode(random_bytes(count as usize)?)))
        }),
    );
    add(
        "randInt",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "randInt")?;
            let (min, max) = (to_int64(&args[0]), to_int64(&args[1]));
            if max <= min {
                return Err(error("randInt: invalid argument to Intn"));
            }
            Ok(Value::Int(min + random_below((max - min) as u64)? as i64))
        }),
    );
    add(
        "uuidv4",
        Arc::new(|_: &[Value]| {
            let mut b = random_bytes(16)?;
            b[6] = (b[6] & 0x0F) | 0x40;
            b[8] = (b[8] & 0x3F) | 0x80;
            let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
            Ok(text(format!(
                "{}-{}-{}-{}-{}",
                &hex[..8],
                &hex[8..12],
                &hex[12..16],
                &hex[16..20],
                &hex[20..]
            )))
        }),
    );
    add(
        "shuffle",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "shuffle")?;
            let mut chars: Vec<char> = string_arg(args, 0, "shuffle")?.chars().collect();
            for i in (1..chars.len()).rev() {
                let j = random_below(i as u64 + 1)? as usize;
                chars.swap(i, j);
            }
            Ok(text(chars.into_iter().collect::<String>()))
        }),
    );
    add(
        "bcrypt",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "bcrypt")?;
            Ok(text(bcrypt_hash(string_arg(args, 0, "bcrypt")?)?))
        }),
    );
    add(
        "htpasswd",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "htpasswd")?;
            let user = string_arg(args, 0, "htpasswd")?;
            if user.contains(':') {
                return Ok(text(format!("invalid username: {user}")));
            }
            let hash = bcrypt_hash(string_arg(args, 1, "htpasswd")?)?;
            Ok(text(format!("{user}:{hash}")))
        }),
    );
    add(
        "encryptAES",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "encryptAES")?;
            Ok(text(encrypt_aes(
                string_arg(args, 0, "encryptAES")?,
                string_arg(args, 1, "encryptAES")?,
            )?))
        }),
    );
    add(
        "decryptAES",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "decryptAES")?;
            Ok(text(decrypt_aes(
                string_arg(args, 0, "decryptAES")?,
                string_arg(args, 1, "decryptAES")?,
            )?))
        }),
    );
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bcrypt_hashes_verify_and_aes_round_trips() {
        let hash = bcrypt_hash("hunter2").unwrap();
        assert!(hash.starts_with("$2a$10$"), "{hash}");
        assert!(bcrypt::verify("hunter2", &hash).unwrap());
        let sealed = encrypt_aes("k", "żółw").unwrap();
        assert_eq!(decrypt_aes("k", &sealed).unwrap(), "żółw");
    }
}
