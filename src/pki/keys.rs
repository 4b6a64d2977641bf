//! Private keys as users bring them and as the store keeps them.
//!
//! Read: PKCS#8 (`PRIVATE KEY`), SEC1 (`EC PRIVATE KEY`), PKCS#1 (`RSA
//! PRIVATE KEY`), encrypted PKCS#8 (`ENCRYPTED PRIVATE KEY`, what OpenSSL 3
//! writes with `-passout`) and the traditional `Proc-Type: 4,ENCRYPTED` PEM
//! of older CAs (OpenSSL's `EVP_BytesToKey` with MD5, then DES-EDE3 or AES
//! in CBC mode). Every key comes out as PKCS#8 DER, which rcgen signs with.
//!
//! Written: PKCS#8 encrypted with PBES2 (PBKDF2-HMAC-SHA256, 600,000
//! rounds, AES-256-CBC), which `openssl pkey -passin` reads.

use aes::cipher::{BlockModeDecrypt, KeyIvInit, block_padding::Pkcs7};
use aws_lc_rs::encoding::AsDer;
use md5::Digest;
use pkcs8::der::{Decode, EncodePem};
use zeroize::Zeroizing;

/// A passphrase, wiped from memory when dropped.
pub type Passphrase = Zeroizing<String>;

/// PKCS#8 DER of a private key in the clear, wiped when dropped.
pub type Pkcs8 = Zeroizing<Vec<u8>>;

/// PBKDF2 rounds of the keys the store encrypts (OWASP's figure for
/// PBKDF2-HMAC-SHA256, and what the pkcs5 crate recommends).
const PBKDF2_ROUNDS: u32 = 600_000;

/// Whether a PEM key needs a passphrase to be read.
pub fn is_encrypted(pem: &[u8]) -> bool {
    match key_block(pem) {
        Ok(block) => {
            block.tag() == "ENCRYPTED PRIVATE KEY"
                || block
                    .headers()
                    .get("Proc-Type")
                    .is_some_and(|v| v.contains("ENCRYPTED"))
        }
        Err(_) => false,
    }
}

/// The file's private key block: the first that is one (`openssl ecparam
/// -genkey` writes `EC PARAMETERS` before the key), else the first block.
fn key_block(pem: &[u8]) -> Result<pem::Pem, pem::PemError> {
    let blocks = pem::parse_many(pem)?;
    let is_key = |b: &pem::Pem| b.tag().ends_with("PRIVATE KEY");
    match blocks.iter().position(is_key) {
        Some(at) => Ok(blocks.into_iter().nth(at).expect("found")),
        None => blocks
            .into_iter()
            .next()
            .ok_or(pem::PemError::MissingBeginTag),
    }
}

/// The key in `pem` as PKCS#8 DER; `passphrase` is asked only when the key
/// is encrypted. Errors say what is wrong in words, never the key.
pub fn read(
    pem: &[u8],
    passphrase: impl FnOnce() -> Result<Passphrase, String>,
) -> Result<Pkcs8, String> {
    let block = key_block(pem).map_err(|e| format!("not a PEM private key ({e})"))?;
    let der = Zeroizing::new(block.contents().to_vec());
    let proc_type = block.headers().get("Proc-Type").unwrap_or_default();
    match block.tag() {
        "ENCRYPTED PRIVATE KEY" => {
            let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(&der)
                .map_err(|e| format!("not an encrypted PKCS#8 key ({e})"))?;
            let secret = passphrase()?;
            let plain = info.decrypt(secret.as_bytes()).map_err(|_| {
                "the passphrase does not open the key (or its cipher is not supported)".to_string()
            })?;
            normalize(Kind::Pkcs8, plain.as_bytes())
        }
        "PRIVATE KEY" => normalize(Kind::Pkcs8, &der),
        tag @ ("RSA PRIVATE KEY" | "EC PRIVATE KEY") => {
            let kind = if tag.starts_with("RSA") {
                Kind::Pkcs1
            } else {
                Kind::Sec1
            };
            if proc_type.contains("ENCRYPTED") {
                let dek = block
                    .headers()
                    .get("DEK-Info")
                    .ok_or("an encrypted PEM key without DEK-Info")?;
                let secret = passphrase()?;
                let plain = legacy_decrypt(dek, secret.as_bytes(), &der)?;
                normalize(kind, &plain)
                    .map_err(|_| "the passphrase does not open the key".to_string())
            } else {
                normalize(kind, &der)
            }
        }
        other => Err(format!(
            "a PEM block `{other}`, not a private key (PRIVATE KEY, ENCRYPTED PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY)"
        )),
    }
}

/// `pkcs8` encrypted under `passphrase`, as PEM.
pub fn encrypt(pkcs8: &[u8], passphrase: &str) -> Result<Zeroizing<String>, String> {
    let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8).map_err(|e| e.to_string())?;
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    crate::random::fill(&mut salt);
    crate::random::fill(&mut iv);
    let params =
        pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(PBKDF2_ROUNDS, &salt, iv)
            .map_err(|e| e.to_string())?;
    let sealed = info
        .encrypt_with_params(params, passphrase.as_bytes())
        .map_err(|e| format!("cannot encrypt the key: {e}"))?;
    let info = pkcs8::EncryptedPrivateKeyInfoRef::from_der(sealed.as_bytes())
        .map_err(|e| e.to_string())?;
    info.to_pem(pkcs8::der::pem::LineEnding::LF)
        .map(Zeroizing::new)
        .map_err(|e| e.to_string())
}

/// `pkcs8` as a plain `PRIVATE KEY` PEM.
pub fn to_pem(pkcs8: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(pem::encode(&pem::Pem::new("PRIVATE KEY", pkcs8.to_vec())))
}

#[derive(Clone, Copy)]
enum Kind {
    Pkcs8,
    Pkcs1,
    Sec1,
}

/// Any supported key as PKCS#8, checked by loading it (RSA, or ECDSA on
/// P-256, P-384 or P-521; Ed25519 in PKCS#8).
fn normalize(kind: Kind, der: &[u8]) -> Result<Pkcs8, String> {
    use aws_lc_rs::signature::{
        ECDSA_P256_SHA256_ASN1_SIGNING, ECDSA_P384_SHA384_ASN1_SIGNING,
        ECDSA_P521_SHA512_ASN1_SIGNING, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair,
    };
    let curves = [
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &ECDSA_P384_SHA384_ASN1_SIGNING,
        &ECDSA_P521_SHA512_ASN1_SIGNING,
    ];
    let unreadable = || "the key cannot be read (RSA or ECDSA P-256/384/521 expected)".to_string();
    let rsa = |key: RsaKeyPair| {
        key.as_der()
            .map(|d| Zeroizing::new(d.as_ref().to_vec()))
            .map_err(|_| unreadable())
    };
    let ec = |der: &[u8],
              from: fn(
        &'static aws_lc_rs::signature::EcdsaSigningAlgorithm,
        &[u8],
    ) -> Result<EcdsaKeyPair, aws_lc_rs::error::KeyRejected>| {
        curves
            .iter()
            .find_map(|curve| from(curve, der).ok())
            .and_then(|key| key.to_pkcs8v1().ok())
            .map(|doc| Zeroizing::new(doc.as_ref().to_vec()))
    };
    match kind {
        Kind::Pkcs1 => rsa(RsaKeyPair::from_der(der).map_err(|_| unreadable())?),
        Kind::Sec1 => ec(der, EcdsaKeyPair::from_private_key_der).ok_or_else(unreadable),
        Kind::Pkcs8 => {
            if let Ok(key) = RsaKeyPair::from_pkcs8(der) {
                return rsa(key);
            }
            if let Some(key) = ec(der, EcdsaKeyPair::from_pkcs8) {
                return Ok(key);
            }
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map(|_| Zeroizing::new(der.to_vec()))
                .map_err(|_| unreadable())
        }
    }
}

/// The traditional encrypted PEM: the key is OpenSSL's `EVP_BytesToKey`
/// (MD5, one round, the IV's first 8 bytes as salt) and the cipher one of
/// `DES-EDE3-CBC`, `AES-128-CBC`, `AES-192-CBC`, `AES-256-CBC`.
fn legacy_decrypt(dek_info: &str, passphrase: &[u8], data: &[u8]) -> Result<Pkcs8, String> {
    let (cipher, iv_hex) = dek_info
        .split_once(',')
        .ok_or("DEK-Info is not `CIPHER,IV`")?;
    let iv = hex_decode(iv_hex.trim()).ok_or("DEK-Info's IV is not hex")?;
    let key_len = match cipher.trim() {
        "DES-EDE3-CBC" => 24,
        "AES-128-CBC" => 16,
        "AES-192-CBC" => 24,
        "AES-256-CBC" => 32,
        other => {
            return Err(format!(
                "the key's cipher {other} is not supported (DES-EDE3-CBC or AES-128/192/256-CBC): convert it with `openssl pkcs8 -topk8`"
            ));
        }
    };
    if iv.len() < 8 {
        return Err("DEK-Info's IV is too short".into());
    }
    let key = bytes_to_key(passphrase, &iv[..8], key_len);
    let mut buf = Zeroizing::new(data.to_vec());
    let wrong = |_| "the passphrase does not open the key".to_string();
    let len = match cipher.trim() {
        "DES-EDE3-CBC" => cbc::Decryptor::<des::TdesEde3>::new_from_slices(&key, &iv)
            .map_err(|_| "DEK-Info's IV has the wrong length".to_string())?
            .decrypt_padded::<Pkcs7>(&mut buf)
            .map_err(wrong)?
            .len(),
        "AES-128-CBC" => cbc::Decryptor::<aes::Aes128>::new_from_slices(&key, &iv)
            .map_err(|_| "DEK-Info's IV has the wrong length".to_string())?
            .decrypt_padded::<Pkcs7>(&mut buf)
            .map_err(wrong)?
            .len(),
        "AES-192-CBC" => cbc::Decryptor::<aes::Aes192>::new_from_slices(&key, &iv)
            .map_err(|_| "DEK-Info's IV has the wrong length".to_string())?
            .decrypt_padded::<Pkcs7>(&mut buf)
            .map_err(wrong)?
            .len(),
        _ => cbc::Decryptor::<aes::Aes256>::new_from_slices(&key, &iv)
            .map_err(|_| "DEK-Info's IV has the wrong length".to_string())?
            .decrypt_padded::<Pkcs7>(&mut buf)
            .map_err(wrong)?
            .len(),
    };
    buf.truncate(len);
    Ok(buf)
}

/// OpenSSL's `EVP_BytesToKey` with MD5 and one round.
fn bytes_to_key(passphrase: &[u8], salt: &[u8], len: usize) -> Zeroizing<Vec<u8>> {
    let mut key = Zeroizing::new(Vec::with_capacity(len + 16));
    let mut previous: Vec<u8> = Vec::new();
    while key.len() < len {
        let mut md5 = md5::Md5::new();
        md5.update(&previous);
        md5.update(passphrase);
        md5.update(salt);
        previous = md5.finalize().to_vec();
        key.extend_from_slice(&previous);
    }
    key.truncate(len);
    key
}

/// Hex digits, two a byte, either case; anything else is `None` (a sign
/// too, which `u8::from_str_radix` would take).
pub(super) fn hex_decode(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    let nibble = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    hex.as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
#[path = "keys_tests.rs"]
pub(super) mod tests;
