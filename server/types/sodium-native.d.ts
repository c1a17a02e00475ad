/** The part of sodium-native's API this project calls (the package ships no types). */
declare module 'sodium-native' {
  /** Writes the ciphertext and its 16-byte tag into `c` (`m.byteLength + 16` bytes); returns its length. */
  function crypto_aead_xchacha20poly1305_ietf_encrypt(
    c: Uint8Array,
    m: Uint8Array,
    ad: Uint8Array | null,
    nsec: null,
    npub: Uint8Array,
    k: Uint8Array,
  ): number;
  /** Writes the plaintext into `m` (`c.byteLength - 16` bytes); throws when `c` does not authenticate. */
  function crypto_aead_xchacha20poly1305_ietf_decrypt(
    m: Uint8Array,
    nsec: null,
    c: Uint8Array,
    ad: Uint8Array | null,
    npub: Uint8Array,
    k: Uint8Array,
  ): number;
  const sodium: {
    crypto_aead_xchacha20poly1305_ietf_encrypt: typeof crypto_aead_xchacha20poly1305_ietf_encrypt;
    crypto_aead_xchacha20poly1305_ietf_decrypt: typeof crypto_aead_xchacha20poly1305_ietf_decrypt;
  };
  export default sodium;
}
